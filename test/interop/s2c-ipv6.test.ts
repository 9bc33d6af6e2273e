// IPv6 site-to-cloud through `vpcgw start`, with the REAL strongSwan 5.9.8 as the customer gateway:
// 1. IPv6 and IPv4 subnets in one connection (two traffic selectors each way) over an IPv4 outer:
//    ping6 and ping pass both ways.
// 2. An IPv6 outer (IKE on UDP 500/4500 over IPv6, the customer gateway and the public address are
//    IPv6; veth addresses with `nodad` so they are usable at once) with IPv4 and IPv6 inner; strongSwan
//    initiates.
// 3. The README's "IPv6" example verbatim (its YAML and swanctl.conf; only the data dir and PSK are
//    replaced): vpcgw initiates over IPv6 from the IPv6 one of its two public addresses.
// The suite runs on the native data plane, and on the TypeScript one with VPCGW_DATAPLANE=ts
// (scripts/test.mjs FALLBACK_SUITES).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ADDR, IFACE, createTopology, ping, waitForPing, type NodeName, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { REPO_ROOT, s2cConfig, Vpcgw } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

const IKE = 'aes128gcm16-prfsha256-x25519';
/** vpcgw's start (TUN, sockets, control socket) on a loaded 2-core machine */
const START_TIMEOUT_MS = 20_000;
const ESP = 'aes128gcm16';

// TEST FIXTURE ONLY: not a real secret.
const README_PSK = 'test-fixture-psk-readme-ipv6-5678';

/** IPv6 addresses the test adds to the lab topology (ULA inside, documentation prefix outside). */
const ADDR6 = Object.freeze({
  siteHost: 'fd00:1::10',
  siteGwInside: 'fd00:1::1',
  siteGwOutside: '2001:db8:ff::1',
  cloudGwOutside: '2001:db8:ff::2',
  cloudGwInside: 'fd00:2::1',
  vpcHost: 'fd00:2::10',
  siteSubnet: 'fd00:1::/64',
  vpcSubnet: 'fd00:2::/64',
});

async function addr6(t: Topology, n: NodeName, ifname: string, cidr: string): Promise<void> {
  await t.exec(n, 'ip', ['-6', 'addr', 'add', cidr, 'dev', ifname, 'nodad']);
}

/** Adds IPv6 to every link of the lab (inner subnets, and the outer link when `outer`). */
async function addIpv6(t: Topology, outer: boolean): Promise<void> {
  for (const n of ['siteHost', 'siteGw', 'cloudGw', 'vpcHost'] as const) {
    await t.exec(n, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=0']);
  }
  await addr6(t, 'siteHost', IFACE.siteHost, `${ADDR6.siteHost}/64`);
  await addr6(t, 'siteGw', IFACE.siteGwInside, `${ADDR6.siteGwInside}/64`);
  await addr6(t, 'cloudGw', IFACE.cloudGwInside, `${ADDR6.cloudGwInside}/64`);
  await addr6(t, 'vpcHost', IFACE.vpcHost, `${ADDR6.vpcHost}/64`);
  if (outer) {
    await addr6(t, 'siteGw', IFACE.siteGwOutside, `${ADDR6.siteGwOutside}/64`);
    await addr6(t, 'cloudGw', IFACE.cloudGwOutside, `${ADDR6.cloudGwOutside}/64`);
  }
  await t.exec('siteHost', 'ip', ['-6', 'route', 'add', 'default', 'via', ADDR6.siteGwInside]);
  await t.exec('vpcHost', 'ip', ['-6', 'route', 'add', 'default', 'via', ADDR6.cloudGwInside]);
  await t.exec('siteGw', 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
}

async function lab(tag: string, outer: 4 | 6) {
  topo = await createTopology({ tag });
  await addIpv6(topo, outer === 6);
  const pub = outer === 6 ? ADDR6.cloudGwOutside : ADDR.cloudGwOutside;
  const peer = outer === 6 ? ADDR6.siteGwOutside : ADDR.siteGwOutside;
  const cfg = s2cConfig({
    gatewayName: `gw-${tag}`, dataDir: `${topo.workDir}/var`, publicAddress: pub, peerAddress: peer,
    localId: pub, peerId: peer, localSubnets: [ADDR.vpcSubnet, ADDR6.vpcSubnet], remoteSubnets: [ADDR.siteSubnet, ADDR6.siteSubnet],
    psk: TEST_PSK, ikeProposals: IKE, espProposals: ESP, startAction: 'none',
  });
  const gw = await Vpcgw.start(topo, 'cloudGw', cfg, START_TIMEOUT_MS);
  running.push(gw);
  const sw = await Charon.start(topo, 'siteGw', {
    localAddr: peer, remoteAddr: pub, localId: peer, remoteId: pub,
    psk: TEST_PSK, ikeProposals: IKE, espProposals: ESP,
    localTs: `${ADDR.siteSubnet},${ADDR6.siteSubnet}`, remoteTs: `${ADDR.vpcSubnet},${ADDR6.vpcSubnet}`,
    logLevels: { default: 1, ike: 2, enc: 1, cfg: 1, knl: 1 },
  });
  running.push(sw);
  await sw.initiate();
  return { gw, sw };
}

async function trafficBothFamilies(t: Topology, gw: Vpcgw, sw: Charon): Promise<void> {
  await waitForPing(t, 'siteHost', ADDR6.vpcHost).catch((e: Error) => {
    throw new Error(`${e.message}\nvpcgw: ${gw.output().slice(-3000)}\ncharon: ${sw.log().slice(-3000)}`);
  });
  expect((await ping(t, 'siteHost', ADDR6.vpcHost, { count: 3 })).received).toBe(3);
  expect((await ping(t, 'vpcHost', ADDR6.siteHost, { count: 3 })).received).toBe(3);
  await waitForPing(t, 'siteHost', ADDR.vpcHost);
  expect((await ping(t, 'vpcHost', ADDR.siteHost, { count: 3 })).received).toBe(3);
}

/** The YAML and the swanctl.conf block of the README's "### IPv6" subsection. */
function readmeIpv6Blocks(): { yaml: string; swanctl: string } {
  const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = md.indexOf('### IPv6');
  const section = md.slice(start, md.indexOf('\n## ', start));
  const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)];
  const yaml = blocks.find((b) => b[1] === 'yaml')?.[2];
  const swanctl = blocks.find((b) => b[2]!.includes('connections {'))?.[2];
  if (start < 0 || !yaml || !swanctl) throw new Error('README lost its "### IPv6" subsection or one of its YAML and swanctl.conf blocks');
  return { yaml, swanctl };
}

describe('IPv6 site-to-cloud against strongSwan (vpcgw start)', () => {
  it('IPv6 and IPv4 subnets in one connection over an IPv4 outer: ping6 and ping pass both ways', async () => {
    const { gw, sw } = await lab('v6in', 4);
    const sas = await sw.listSas();
    expect(sas).toHaveLength(1);
    // one CHILD_SA with two selector pairs, one per family (RFC 7296 §3.13.1)
    expect(sas[0]!.children).toHaveLength(1);
    expect(sas[0]!.children[0]!.localTs).toEqual([ADDR.siteSubnet, ADDR6.siteSubnet]);
    expect(sas[0]!.children[0]!.remoteTs).toEqual([ADDR.vpcSubnet, ADDR6.vpcSubnet]);
    await trafficBothFamilies(topo!, gw, sw);
    const child = (await gw.status()).connections[0]!.children[0]!;
    expect(child.packetsIn).toBeGreaterThanOrEqual(6);
  }, 60_000);

  it('an IPv6 outer (IKE and ESP-in-UDP over IPv6) carries IPv4 and IPv6 inner', async () => {
    const { gw, sw } = await lab('v6out', 6);
    await trafficBothFamilies(topo!, gw, sw);
    expect(sw.log()).toMatch(/IKE_SA s2c\[\d+\] established between 2001:db8:ff::1\[[^\]]+\]\.\.\.2001:db8:ff::2/);
  }, 60_000);

  it('the README IPv6 example: vpcgw initiates over IPv6 from its IPv6 public address, IPv4 and IPv6 pass', async () => {
    const { yaml, swanctl } = readmeIpv6Blocks();
    topo = await createTopology({ tag: 'v6rdm' });
    await addIpv6(topo, true);
    const cfg = parse(yaml) as { gateway: { dataDir: string }; vpnConnections: { auth: { psk: string } }[] };
    expect(cfg.vpnConnections).toHaveLength(1);
    cfg.gateway.dataDir = join(topo.workDir, 'var');
    cfg.vpnConnections[0]!.auth.psk = README_PSK;
    // strongSwan first (the README's connection has startAction: start: vpcgw initiates at boot)
    const sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR6.siteGwOutside, remoteAddr: ADDR6.cloudGwOutside, localId: ADDR6.siteGwOutside, remoteId: ADDR6.cloudGwOutside,
      psk: README_PSK, ikeProposals: 'default', espProposals: 'default', localTs: ADDR6.siteSubnet, remoteTs: ADDR6.vpcSubnet,
    });
    running.push(sw);
    mkdirSync(sw.dir, { recursive: true });
    writeFileSync(sw.swanctlPath, swanctl.replace(/secret = "[^"]*"/, `secret = "${README_PSK}"`), { mode: 0o600 });
    await sw.loadAll();
    const gw = await Vpcgw.start(topo, 'cloudGw', cfg as never, START_TIMEOUT_MS);
    running.push(gw);
    await gw.waitInstalled(30_000);
    const sas = await sw.waitInstalled(10_000);
    expect(sas[0]!.children[0]!.encap).toBe(true);
    expect(sw.log()).toMatch(/IKE_SA dc6-dual\[\d+\] established between 2001:db8:ff::1\[2001:db8:ff::1\]\.\.\.2001:db8:ff::2\[2001:db8:ff::2\]/);
    await trafficBothFamilies(topo, gw, sw);
  }, 60_000);
});
