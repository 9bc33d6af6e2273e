// NAT traversal through `vpcgw start`, with the REAL strongSwan 5.9.8 as the customer gateway:
// 1. strongSwan behind an nftables masquerade in a router namespace, with the README's "NAT
//    traversal" swanctl.conf: the tunnel comes up, pings flow; then the NAT's mapping changes
//    (new port range, conntrack flushed) while pings run; strongSwan's next packets come from a new
//    port and vpcgw follows (status shows the new port, one "peer moved" line, the same IKE SA).
// 2. ike.encap false with strongSwan (encap = no) behind the NAT: both sides detect it.
// 3. ike.encap false without a NAT: strongSwan verifies vpcgw's honest hashes (no NAT) but, on
//    kernel-libipsec, fakes its own, so vpcgw's status says `peer` and never `local`.
//
//   site-host -- site-gw (strongSwan, 192.168.99.2) -- nat (192.168.99.1 | 192.0.2.1, masquerade)
//             -- cloud-gw (vpcgw, 192.0.2.2) -- vpc-host
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, IFACE, createTopology, ping, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { run, waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw } from '../helpers/vpcgw.js';
import { REPO_ROOT } from '../helpers/openvpn.js';
import { TEST_PSK } from '../helpers/scenario.js';
import { controlCall } from '../../src/gateway/control.js';
import type { ConnectionStatus } from '../../src/gateway/status.js';

const SITE_PRIVATE = '192.168.99.2';
const NAT_INSIDE = '192.168.99.1';
const NAT_PUBLIC = ADDR.siteGwOutside; // 192.0.2.1: what vpcgw sees
const FIRST_PORTS = [41000, 41999] as const;
const SECOND_PORTS = [42000, 42999] as const;

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];
let natNs: string | null = null;

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  if (natNs) await run('ip', ['netns', 'del', natNs], { timeoutMs: 10_000, allowFail: true });
  natNs = null;
  await topo?.destroy();
  topo = null;
});

/** The README's NAT traversal swanctl.conf, verbatim but for the PSK. */
function readmeSwanctl(): string {
  const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = md.indexOf('### NAT traversal');
  const section = md.slice(start, md.indexOf('\n### ', start + 1));
  const block = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].find((b) => b[2]!.includes('connections {'))?.[2];
  if (start < 0 || !block) throw new Error('README lost its NAT traversal swanctl.conf block');
  return block.replace(/secret = "[^"]*"/, `secret = "${TEST_PSK}"`);
}

/**
 * Puts a router namespace with an nftables masquerade between site-gw and cloud-gw: site-gw's outside
 * becomes SITE_PRIVATE, the router owns 192.0.2.1. Returns the router's netns name.
 */
async function insertNat(t: Topology): Promise<string> {
  const ns = `${t.id}-nat`;
  natNs = ns;
  const ip = (args: string[]) => run('ip', args, { timeoutMs: 10_000 });
  await ip(['netns', 'add', ns]);
  await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  await ip(['-n', t.ns.siteGw, 'link', 'del', IFACE.siteGwOutside]); // the direct site-gw -- cloud-gw link
  await ip(['-n', t.ns.siteGw, 'link', 'add', IFACE.siteGwOutside, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', ns]);
  await ip(['-n', ns, 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', IFACE.cloudGwOutside, 'netns', t.ns.cloudGw]);
  for (const [n, dev, cidr] of [
    [t.ns.siteGw, IFACE.siteGwOutside, `${SITE_PRIVATE}/24`], [ns, 'lan0', `${NAT_INSIDE}/24`],
    [ns, 'wan0', `${NAT_PUBLIC}/24`], [t.ns.cloudGw, IFACE.cloudGwOutside, `${ADDR.cloudGwOutside}/24`],
  ] as const) {
    await ip(['-n', n, 'addr', 'add', cidr, 'dev', dev]);
    await ip(['-n', n, 'link', 'set', dev, 'up']);
  }
  await ip(['-n', t.ns.siteGw, 'route', 'add', 'default', 'via', NAT_INSIDE]);
  await t.exec(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  await setMasquerade(t, ns, FIRST_PORTS);
  return ns;
}

/** (Re)writes the router's masquerade with source ports from `ports`. */
async function setMasquerade(t: Topology, ns: string, ports: readonly [number, number]): Promise<void> {
  await t.exec(ns, 'nft', ['-f', '-'], {
    input: `table ip vgnat\ndelete table ip vgnat\ntable ip vgnat {\n  chain post {\n    type nat hook postrouting priority srcnat;\n`
      + `    oifname "wan0" meta l4proto udp masquerade to :${ports[0]}-${ports[1]}\n    oifname "wan0" masquerade\n  }\n}\n`,
  });
}

/** vpcgw's status document (the control socket), the first connection. */
async function connStatus(gw: Vpcgw): Promise<ConnectionStatus> {
  const st = await controlCall(gw.controlPath, 'status', {}, { timeoutMs: 5000 }) as { connections: ConnectionStatus[] };
  return st.connections[0]!;
}

function portOf(peer: string | undefined): number {
  return Number(/:(\d+)$/.exec(peer ?? '')?.[1] ?? 0);
}

async function startGw(t: Topology, tag: string, encap: boolean, peerAddress: string): Promise<Vpcgw> {
  const cfg = s2cConfig({
    gatewayName: `gw-${tag}`, dataDir: `${t.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress,
    localId: ADDR.cloudGwOutside, peerId: peerAddress, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
    psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', startAction: 'none',
  });
  Object.assign(cfg.vpnConnections[0]!.ike, { encap });
  const gw = await Vpcgw.start(t, 'cloudGw', cfg, 30_000); // a loaded CI machine can take a while to start node
  running.push(gw);
  return gw;
}

/** `swanctl --list-sas --raw`: strongSwan's NAT conditions of its one IKE SA. */
async function swanNat(sw: Charon): Promise<{ local: boolean; remote: boolean; fake: boolean }> {
  const out = (await sw.swanctl(['--list-sas', '--raw', '--noblock'])).stdout;
  return { local: /nat-local=yes/.test(out), remote: /nat-remote=yes/.test(out), fake: /nat-fake=yes/.test(out) };
}

function failWith(gw: Vpcgw, sw: Charon): (err: Error) => never {
  return (err: Error) => {
    throw new Error(`${err.message}\nvpcgw log: ${gw.output().slice(-4000)}\ncharon log: ${sw.logForDiagnostics().slice(-4000)}`);
  };
}

describe('NAT traversal against strongSwan', () => {
  it('strongSwan behind a masquerade: the NAT mapping changes mid-flow and vpcgw follows on the same IKE SA', async () => {
    topo = await createTopology({ tag: 'nat' });
    const nat = await insertNat(topo);
    const gw = await startGw(topo, 'nat', true, NAT_PUBLIC);
    const sw = await Charon.start(topo, 'siteGw', {
      localAddr: SITE_PRIVATE, remoteAddr: ADDR.cloudGwOutside, localId: NAT_PUBLIC, remoteId: ADDR.cloudGwOutside,
      psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16',
      localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
    });
    running.push(sw);
    // the README's customer-side config (start_action = start: it initiates once loaded)
    writeFileSync(sw.swanctlPath, readmeSwanctl(), { mode: 0o600 });
    await sw.loadAll();
    await gw.waitInstalled(20_000).catch(failWith(gw, sw));
    await waitForPing(topo, 'siteHost', ADDR.vpcHost, 10_000);
    const before = await connStatus(gw);
    const firstPort = portOf(before.peer);
    expect(before.peer).toMatch(new RegExp(`^${NAT_PUBLIC.replace(/\./g, '\\.')}:41\\d\\d\\d$`));
    expect(before.nat).toMatchObject({ behindNat: 'peer', udpEncap: true, encapForced: true, peerMoves: 0 });
    const swBefore = (await sw.listSas())[0]!;

    // continuous pings across the change (bounded: 60 at 0.1 s)
    const pinger = topo.spawnIn('siteHost', 'ping', ['-n', '-i', '0.1', '-c', '60', '-W', '1', ADDR.vpcHost], { label: 'ping' });
    await waitFor(async () => /icmp_seq=5 /.test(pinger.output()), { timeoutMs: 5000, intervalMs: 50, what: 'pings to flow' });
    await setMasquerade(topo, nat, SECOND_PORTS);
    await topo.exec(nat, 'conntrack', ['-F'], { allowFail: true }); // "flow entries have been deleted" goes to stderr
    const changedAt = Date.now();
    const after = await waitFor(async () => {
      const c = await connStatus(gw);
      return portOf(c.peer) >= SECOND_PORTS[0] ? c : undefined;
    }, { timeoutMs: 10_000, intervalMs: 100, what: 'vpcgw to follow the new NAT port' }).catch(failWith(gw, sw));
    // pings resume within a few seconds
    await waitForPing(topo, 'siteHost', ADDR.vpcHost, 5000);
    expect(Date.now() - changedAt).toBeLessThan(8000);
    await waitFor(async () => !pinger.running, { timeoutMs: 15_000, intervalMs: 200, what: 'the ping run to end' });
    const m = /(\d+) packets transmitted, (\d+) received/.exec(pinger.output());
    expect(Number(m?.[2] ?? 0), pinger.output().slice(-500)).toBeGreaterThan(40); // a short gap, not an outage

    expect(after.ikeSa).toBe(before.ikeSa); // no new IKE SA was needed
    expect(after.nat!.peerMoves).toBeGreaterThanOrEqual(1);
    expect(after.children[0]!.spiIn).toBe(before.children[0]!.spiIn);
    const newPort = portOf(after.peer);
    // one log line for the move, with the old and the new endpoint
    const moves = gw.output().split('\n').filter((l) => l.includes('peer moved: NAT mapping changed'));
    expect(moves, gw.output().slice(-3000)).toHaveLength(1);
    expect(moves[0]).toContain(`${NAT_PUBLIC}:${firstPort}`);
    expect(moves[0]).toContain(`${NAT_PUBLIC}:${newPort}`);
    expect(gw.output()).not.toMatch(/malformed|dropped invalid IKE message/);
    const swAfter = await sw.listSas();
    expect(swAfter).toHaveLength(1);
    expect(swAfter[0]!.spiI).toBe(swBefore.spiI);
    expect((await ping(topo, 'vpcHost', ADDR.siteHost, { count: 3 })).received).toBe(3);
  }, 90_000);

  it('encap off, strongSwan behind the NAT: both sides detect it, ESP in UDP', async () => {
    topo = await createTopology({ tag: 'natd' });
    await insertNat(topo);
    const gw = await startGw(topo, 'natd', false, NAT_PUBLIC);
    const sw = await Charon.start(topo, 'siteGw', {
      localAddr: SITE_PRIVATE, remoteAddr: ADDR.cloudGwOutside, localId: NAT_PUBLIC, remoteId: ADDR.cloudGwOutside,
      psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16',
      localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet, encap: false,
    });
    running.push(sw);
    await sw.initiate().catch(failWith(gw, sw));
    await waitForPing(topo, 'siteHost', ADDR.vpcHost, 10_000);
    const c = await connStatus(gw);
    expect(c.nat).toMatchObject({ behindNat: 'peer', udpEncap: true, encapForced: false });
    // strongSwan sees itself behind the NAT and vpcgw not (a real NAT: it needs no fake)
    expect(await swanNat(sw)).toEqual({ local: true, remote: false, fake: false });
    expect((await sw.listSas())[0]!.children[0]!.encap).toBe(true);
  }, 60_000);

  it('encap off, no NAT between: vpcgw finds no NAT on its side and strongSwan verifies both of its hashes', async () => {
    topo = await createTopology({ tag: 'nonat' });
    const gw = await startGw(topo, 'nonat', false, ADDR.siteGwOutside);
    const sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16',
      localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet, encap: false,
    });
    running.push(sw);
    await sw.initiate().catch(failWith(gw, sw));
    await waitForPing(topo, 'siteHost', ADDR.vpcHost, 10_000);
    const c = await connStatus(gw);
    // charon on kernel-libipsec must have ESP in UDP, so it fakes its own source hash (encap = no
    // notwithstanding): vpcgw sees that as "peer", and nothing on its own side
    expect(c.nat, `charon log: ${sw.logForDiagnostics().slice(-3000)}`).toMatchObject({ behindNat: 'peer', udpEncap: true, encapForced: false });
    // strongSwan checked vpcgw's honest hashes, found no NAT, and forces encapsulation itself
    expect(sw.log()).toMatch(/faking NAT situation to enforce UDP encapsulation/);
    expect(await swanNat(sw)).toEqual({ local: false, remote: false, fake: true });
    expect((await sw.listSas())[0]!.children[0]!.encap).toBe(true);
  }, 60_000);
});
