// Several CHILD_SAs per connection and route-based mode through `vpcgw start`, against the REAL
// strongSwan 5.9.8, with the vpcgw YAML and the customer-side swanctl.conf of README.md's
// "Several subnets: children and route-based mode" (only the data dir and the PSK are replaced):
// 1. vpcgw initiates two children (app in IKE_AUTH, db with 2+2 subnets by CREATE_CHILD_SA): pings in
//    both directions pass, each pair over its own SA (SPIs and counters in swanctl --list-sas and
//    vpcgw status), the db child carries both subnets per side, a CREATE_CHILD_SA from strongSwan for
//    a child vpcgw does not have is refused with TS_UNACCEPTABLE, and strongSwan's rekey of one child
//    leaves the other's SPIs alone.
// 2. strongSwan initiates both children (vpcgw responds, picking each child config by its TS); one
//    child deleted and created again leaves the other alone.
// 3. mode route: one child 0.0.0.0/0 === 0.0.0.0/0 (swanctl local_ts/remote_ts 0.0.0.0/0); the
//    routed prefix passes traffic.
// Runs once per data plane (scripts/test.mjs sets VPCGW_DATAPLANE=ts for the TypeScript one).
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ADDR, createTopology, ping, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon, type IkeSaInfo } from '../helpers/strongswan.js';
import { waitFor } from '../helpers/proc.js';
import { Vpcgw, type VpcgwConfig } from '../helpers/vpcgw.js';
import { REPO_ROOT } from '../helpers/openvpn.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-psk-children-example-1234';

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

/** The README subsection's blocks, in order: YAML and swanctl.conf for children, then for route mode. */
function readmeBlocks(): { childrenYaml: string; childrenSwan: string; routeYaml: string; routeSwan: string } {
  const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = md.indexOf('### Several subnets: children and route-based mode');
  if (start < 0) throw new Error('README lost its "Several subnets" subsection');
  const section = md.slice(start, md.indexOf('\n## ', start));
  const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)];
  const yaml = blocks.filter((b) => b[1] === 'yaml').map((b) => b[2]!);
  const swan = blocks.filter((b) => b[2]!.includes('connections {')).map((b) => b[2]!);
  if (yaml.length !== 2 || swan.length !== 2) throw new Error('README "Several subnets" subsection lost a YAML or swanctl.conf block');
  return { childrenYaml: yaml[0]!, childrenSwan: swan[0]!, routeYaml: yaml[1]!, routeSwan: swan[1]! };
}

/** A whole vpcgw config around the README's connection (the README's gateway section's values). */
function vpcgwConfig(yaml: string, startAction: 'start' | 'none'): VpcgwConfig {
  const conn = (parse(yaml) as { vpnConnections: Record<string, unknown>[] }).vpnConnections[0]!;
  conn.auth = { psk: PSK };
  conn.startAction = startAction;
  return {
    gateway: {
      name: 'gw-children', dataDir: join(topo!.workDir, 'var'), publicAddresses: [ADDR.cloudGwOutside],
      vpcSubnets: [ADDR.vpcSubnet], tun: { name: 'vpcgw0', mtu: 1400 },
    },
    customerGateways: [{ name: 'dc1', address: ADDR.siteGwOutside, id: ADDR.siteGwOutside }],
    vpnConnections: [conn],
  } as unknown as VpcgwConfig;
}

/** strongSwan with the README's swanctl.conf (PSK replaced, `extraChild` added to its children). */
async function charonWith(swanctl: string, o: { extraChild?: string } = {}): Promise<Charon> {
  const sw = await Charon.start(topo!, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
    psk: PSK, ikeProposals: 'default', espProposals: 'default', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
    connName: 'unused', logLevels: { default: 1, ike: 2, cfg: 1, knl: 1 },
  });
  running.push(sw);
  let text = swanctl.replace(/secret = "[^"]*"/, `secret = "${PSK}"`);
  if (o.extraChild) text = text.replace(/children \{\n/, `children {\n${o.extraChild}\n`);
  writeFileSync(sw.swanctlPath, text, { mode: 0o600 });
  // the harness's own connection is replaced: --load-all drops connections no longer in the file
  await sw.loadAll();
  return sw;
}

/** Extra source/destination addresses for the db child's two subnets on each side. */
async function addHostAddresses(t: Topology): Promise<void> {
  for (const n of [1, 2]) {
    await t.exec('siteHost', 'ip', ['addr', 'add', `10.1.${n}.10/32`, 'dev', 'eth0']);
    await t.exec('siteGw', 'ip', ['route', 'add', `10.1.${n}.10/32`, 'via', ADDR.siteHost]);
    // strongSwan's kernel-libipsec installs a child's routes with a source address of its own inside local_ts
    await t.exec('siteGw', 'ip', ['addr', 'add', `10.1.${n}.1/32`, 'dev', 'in0']);
  }
  for (const a of ['10.2.1.10', '10.2.2.10']) {
    await t.exec('vpcHost', 'ip', ['addr', 'add', `${a}/32`, 'dev', 'eth0']);
    await t.exec('cloudGw', 'ip', ['route', 'add', `${a}/32`, 'via', ADDR.vpcHost]);
  }
}

/** strongSwan's established SA with both children INSTALLED and vpcgw's matching pairs, by child name. */
async function bothChildren(gw: Vpcgw, sw: Charon, timeoutMs = 20_000) {
  return waitFor(
    async () => {
      const sas = (await sw.listSas()).filter((s) => s.state === 'ESTABLISHED');
      if (sas.length !== 1) return undefined;
      const theirs = new Map(sas[0]!.children.filter((c) => c.state === 'INSTALLED').map((c) => [c.name, c]));
      const conn = (await gw.status()).connections[0]!;
      const ours = new Map(conn.children.filter((c) => c.state === 'INSTALLED').map((c) => [c.name, c]));
      if (theirs.size !== 2 || ours.size !== 2) return undefined;
      for (const n of ['app', 'db']) {
        const [o, t] = [ours.get(n), theirs.get(n)];
        if (!o || !t || o.spiIn !== t.spiOut || o.spiOut !== t.spiIn) return undefined;
      }
      return { ours, theirs, sa: sas[0]! as IkeSaInfo };
    },
    { timeoutMs, intervalMs: 250, what: 'children app and db INSTALLED with the same SPIs on both sides' },
  );
}

async function pingsBothWays(t: Topology): Promise<void> {
  await waitForPing(t, 'siteHost', ADDR.vpcHost);
  for (const [from, to] of [[ADDR.siteHost, ADDR.vpcHost], ['10.1.1.10', '10.2.1.10'], ['10.1.2.10', '10.2.2.10']] as const) {
    expect((await ping(t, 'siteHost', to, { count: 2, from })).received, `${from} -> ${to}`).toBe(2);
    expect((await ping(t, 'vpcHost', from, { count: 2, from: to })).received, `${to} -> ${from}`).toBe(2);
  }
}

describe('several CHILD_SAs per connection and route-based mode against strongSwan', () => {
  it('vpcgw initiates two children (2+2 subnets in one), each pair over its own SA; an unknown child is refused; one child rekeys alone', async () => {
    const b = readmeBlocks();
    topo = await createTopology({ tag: 'kids' });
    await addHostAddresses(topo);
    const sw = await charonWith(b.childrenSwan, {
      extraChild: '      other {\n        local_ts = 10.1.9.0/24\n        remote_ts = 10.2.9.0/24\n        esp_proposals = aes128gcm16\n        start_action = none\n      }',
    });
    const gw = await Vpcgw.start(topo, 'cloudGw', vpcgwConfig(b.childrenYaml, 'start'), 20_000);
    running.push(gw);
    const first = await bothChildren(gw, sw);
    // db is one SA with both subnets on each side (narrowed to exactly what both sides configured)
    expect(first.theirs.get('db')!.localTs.sort()).toEqual(['10.1.1.0/24', '10.1.2.0/24']);
    expect(first.theirs.get('db')!.remoteTs.sort()).toEqual(['10.2.1.0/24', '10.2.2.0/24']);
    expect(first.ours.get('db')!.localTs.sort()).toEqual(['10.2.1.0/24', '10.2.2.0/24']);
    expect(sw.log()).toMatch(/parsed CREATE_CHILD_SA request \d+ \[ SA No TSi TSr \]/);
    await pingsBothWays(topo);
    // every pair went over its own SA: both children counted packets, each in its direction
    const after = await bothChildren(gw, sw);
    for (const n of ['app', 'db']) {
      const t = after.theirs.get(n)!;
      const o = after.ours.get(n)!;
      expect(t.packetsIn, `strongSwan child ${n}`).toBeGreaterThanOrEqual(4);
      expect(t.packetsOut, `strongSwan child ${n}`).toBeGreaterThanOrEqual(4);
      expect(o.packetsIn, `vpcgw child ${n}`).toBeGreaterThanOrEqual(4);
      expect(o.packetsOut, `vpcgw child ${n}`).toBeGreaterThanOrEqual(4);
    }
    // db carried the 2 x (2+2) pings of two subnet pairs, app only one pair's
    expect(after.theirs.get('db')!.packetsOut).toBeGreaterThanOrEqual(8);

    // a CREATE_CHILD_SA for a child vpcgw does not have: TS_UNACCEPTABLE, the IKE SA and children stay
    const r = await sw.swanctl(['--initiate', '--child', 'other', '--timeout', '10'], { timeoutMs: 15_000, allowFail: true });
    expect(r.code).not.toBe(0);
    expect(sw.log()).toMatch(/received TS_UNACCEPTABLE notify/);
    expect(gw.output()).toMatch(/CREATE_CHILD_SA refused: traffic selectors unacceptable/);

    // strongSwan rekeys app: new SPIs for app, db's untouched
    await sw.swanctl(['--rekey', '--child', 'app']);
    const rekeyed = await waitFor(async () => {
      const s = await bothChildren(gw, sw);
      return s.theirs.get('app')!.spiIn !== after.theirs.get('app')!.spiIn ? s : undefined;
    }, { timeoutMs: 15_000, intervalMs: 250, what: 'child app rekeyed' });
    expect(rekeyed.theirs.get('app')!.spiOut).not.toBe(after.theirs.get('app')!.spiOut);
    expect(rekeyed.theirs.get('db')!.spiIn).toBe(after.theirs.get('db')!.spiIn);
    expect(rekeyed.theirs.get('db')!.spiOut).toBe(after.theirs.get('db')!.spiOut);
    expect(rekeyed.ours.get('db')!.spiIn).toBe(after.ours.get('db')!.spiIn);
    await pingsBothWays(topo);
  }, 90_000);

  it('strongSwan initiates both children; vpcgw picks each child config by its traffic selectors', async () => {
    const b = readmeBlocks();
    topo = await createTopology({ tag: 'kidr' });
    await addHostAddresses(topo);
    const gw = await Vpcgw.start(topo, 'cloudGw', vpcgwConfig(b.childrenYaml, 'none'), 20_000);
    running.push(gw);
    const sw = await charonWith(b.childrenSwan);
    await sw.initiate('db');
    await sw.initiate('app');
    const s = await bothChildren(gw, sw);
    expect(s.sa.initiator).toBe(true);
    expect(s.ours.get('db')!.remoteTs.sort()).toEqual(['10.1.1.0/24', '10.1.2.0/24']);
    await pingsBothWays(topo);
    // db deleted and created again on the same IKE SA: new SPIs for db, app's untouched
    await sw.swanctl(['--terminate', '--child', 'db', '--timeout', '10'], { timeoutMs: 15_000 });
    await waitFor(async () => !(await gw.status()).connections[0]!.children.some((c) => c.name === 'db'),
      { timeoutMs: 10_000, intervalMs: 250, what: 'vpcgw to drop child db' });
    await sw.initiate('db');
    const again = await bothChildren(gw, sw);
    expect(again.ours.get('db')!.spiIn).not.toBe(s.ours.get('db')!.spiIn);
    expect(again.ours.get('app')!.spiIn).toBe(s.ours.get('app')!.spiIn);
    expect(again.sa.spiI).toBe(s.sa.spiI);
    expect((await ping(topo, 'siteHost', '10.2.2.10', { count: 2, from: '10.1.2.10' })).received).toBe(2);
  }, 60_000);

  it('mode route: one child 0.0.0.0/0 === 0.0.0.0/0, the routed prefix passes traffic', async () => {
    const b = readmeBlocks();
    topo = await createTopology({ tag: 'route' });
    // strongSwan's kernel-libipsec routes the 0.0.0.0/0 TS into its TUN (routing table 220, all but
    // the peer's address); the README's route keeps the site's own subnet local
    await topo.exec('siteGw', 'ip', ['route', 'add', '10.1.0.0/24', 'dev', 'in0', 'table', '220']);
    const sw = await charonWith(b.routeSwan);
    const gw = await Vpcgw.start(topo, 'cloudGw', vpcgwConfig(b.routeYaml, 'start'), 20_000);
    running.push(gw);
    const sas = await sw.waitInstalled(20_000);
    const child = sas[0]!.children[0]!;
    expect(child.localTs).toEqual(['0.0.0.0/0']);
    expect(child.remoteTs).toEqual(['0.0.0.0/0']);
    await waitForPing(topo, 'siteHost', ADDR.vpcHost);
    expect((await ping(topo, 'vpcHost', ADDR.siteHost, { count: 3 })).received).toBe(3);
    const ours = (await gw.status()).connections[0]!.children[0]!;
    expect(ours.spiIn).toBe(child.spiOut);
    expect(ours.localTs).toEqual(['0.0.0.0/0']);
    expect(ours.packetsOut).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
