// Live changes: a running tunnel (strongSwan site <-> `vpcgw start --config`) carries an iperf3
// TCP stream while `vpcgw apply -f` adds a second customer gateway and connection, then changes and
// removes it. The stream never stalls (every one-second interval moves data), the first
// connection keeps its IKE and CHILD SA (same SPIs), and the second one appears and goes as asked.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ADDR, createTopology, type Topology } from '../helpers/netns.js';
import { ensureBuilt } from '../helpers/openvpn.js';
import { run, sleep, waitFor } from '../helpers/proc.js';
import { Charon } from '../helpers/strongswan.js';
import { s2cConfig, Vpcgw, VPCGW_CLI, type VpcgwConfig } from '../helpers/vpcgw.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-live-change-psk-0123';
const IPERF_SECONDS = 8;

let topo: Topology;
let gw: Vpcgw;
let sw: Charon;
let base: VpcgwConfig;

beforeAll(async () => {
  await ensureBuilt();
  topo = await createTopology({ tag: 'live' });
  base = s2cConfig({
    gatewayName: 'live', dataDir: join(topo.workDir, 'var'), publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
    psk: PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', startAction: 'none',
  });
  gw = await Vpcgw.start(topo, 'cloudGw', base);
  sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
    psk: PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
    startAction: 'start',
  });
  await gw.waitInstalled(20_000);
}, 90_000);

afterAll(async () => {
  await sw?.stop().catch(() => undefined);
  await gw?.stop();
  await topo?.destroy();
});

/** `vpcgw apply -f` with `cfg` written next to the daemon's own file. */
async function apply(cfg: VpcgwConfig, tag: string): Promise<string> {
  const file = join(topo.workDir, `apply-${tag}.yaml`);
  writeFileSync(file, stringify(cfg), { mode: 0o600 });
  const r = await topo.exec('cloudGw', process.execPath, [VPCGW_CLI, 'apply', '-f', file, '--control', gw.controlPath], { timeoutMs: 60_000 });
  return r.stdout;
}

function withSecond(remote: string, startAction: 'start' | 'none'): VpcgwConfig {
  return {
    ...base,
    customerGateways: [...base.customerGateways, { name: 'cgw2', address: '192.0.2.77', id: '192.0.2.77' }],
    vpnConnections: [...base.vpnConnections, { ...base.vpnConnections[0]!, name: 'cgw2-main', customerGateway: 'cgw2', remoteSubnets: [remote], startAction }],
  };
}

describe('live changes while a tunnel carries traffic', () => {
  it('apply adds, changes and removes a second connection; the first one\'s stream never stalls and its SAs stay', async () => {
    const before = (await gw.status()).connections.find((c) => c.name === 'cgw1-main')!;
    const spis = before.children.map((c) => `${c.spiIn}/${c.spiOut}`);
    expect(spis).toHaveLength(1);

    const server = topo.spawnIn('vpcHost', 'iperf3', ['-s', '-1', '-B', ADDR.vpcHost, '-p', '5211'], { label: 'iperf3 server' });
    await waitFor(async () => (await topo.exec('vpcHost', 'ss', ['-Hltn', 'sport = :5211'], { allowFail: true })).stdout.includes(':5211'),
      { timeoutMs: 5000, intervalMs: 100, what: 'the iperf3 server' });
    const client = topo.exec('siteHost', 'iperf3', ['-c', ADDR.vpcHost, '-p', '5211', '-t', String(IPERF_SECONDS), '-i', '1', '-J', '--connect-timeout', '3000'],
      { timeoutMs: (IPERF_SECONDS + 20) * 1000, allowFail: true });

    await sleep(1500);
    const added = await apply(withSecond('10.77.0.0/16', 'none'), 'add');
    expect(added).toMatch(/\+ create customer-gateway cgw2/);
    expect(added).toMatch(/\+ create vpn-connection cgw2-main/);
    expect(added).toMatch(/applied: 2 changes/);
    await sleep(1500);
    const changed = await apply(withSecond('10.78.0.0/16', 'start'), 'change');
    expect(changed).toMatch(/~ update vpn-connection cgw2-main/);
    expect(changed).not.toMatch(/cgw1/);
    await sleep(1500);
    const removed = await apply(base, 'remove');
    expect(removed).toMatch(/- delete vpn-connection cgw2-main/);
    expect(removed).toMatch(/- delete customer-gateway cgw2/);

    const r = await client;
    await server.stop('SIGTERM', 2000);
    const j = JSON.parse(r.stdout) as { error?: string; intervals: { sum: { bytes: number; bits_per_second: number } }[]; end: { sum_received: { bits_per_second: number } } };
    expect(j.error).toBeUndefined();
    const perSecond = j.intervals.map((i) => Math.round(i.sum.bits_per_second / 1e6));
    console.log(`[live] iperf3 Mbit/s per second while applying: ${perSecond.join(' ')}`);
    expect(j.intervals.length).toBeGreaterThanOrEqual(IPERF_SECONDS - 1);
    // no interval stalls: each moves at least a tenth of the run's average
    const avg = j.end.sum_received.bits_per_second;
    for (const i of j.intervals) expect(i.sum.bits_per_second, `interval rates ${perSecond.join(' ')}`).toBeGreaterThan(avg / 10);

    const after = await gw.status();
    const first = after.connections.find((c) => c.name === 'cgw1-main')!;
    expect(first.state).toBe('ESTABLISHED');
    expect(first.children.map((c) => `${c.spiIn}/${c.spiOut}`)).toEqual(spis);
    expect(after.connections.map((c) => c.name)).toEqual(['cgw1-main']);
  }, 120_000);

  it('apply of the same file again changes nothing; --dry-run prints the plan and changes nothing', async () => {
    expect(await apply(base, 'same')).toMatch(/no changes/);
    const file = join(topo.workDir, 'apply-dry.yaml');
    writeFileSync(file, stringify(withSecond('10.79.0.0/16', 'none')), { mode: 0o600 });
    const r = await run(process.execPath, [VPCGW_CLI, 'apply', '-f', file, '--dry-run', '--control', gw.controlPath], { timeoutMs: 30_000 });
    expect(r.stdout).toMatch(/\+ create vpn-connection cgw2-main/);
    expect((await gw.status()).connections.map((c) => c.name)).toEqual(['cgw1-main']);
  }, 60_000);
});
