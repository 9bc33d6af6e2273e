// The daemon with gateway.dataPlane.queues: 2 on both gateways of the netns lab (vpcgw ⇄ vpcgw, IKE
// included): IKE on 4500 reaches the main thread's IKE through queue 0, the SAs IKE installs are
// spread to the worker queue, traffic passes both ways, status sums the queues, SIGTERM exits 0.
// Needs root and the built daemon (dist/).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, iperf3Tcp, ping, type Topology } from '../../helpers/netns.js';
import { waitFor } from '../../helpers/proc.js';
import { s2cConfig, Vpcgw, VPCGW_CLI, type VpcgwConfig, type VpcgwStatus } from '../../helpers/vpcgw.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-psk-multiqueue-not-a-secret';

let topo: Topology;
const gws: Vpcgw[] = [];

function config(side: 'site' | 'cloud'): VpcgwConfig {
  const a = topo.addr;
  const site = side === 'site';
  const c = s2cConfig({
    gatewayName: `mq-${side}`,
    dataDir: join(topo.workDir, `var-${side}`),
    publicAddress: site ? a.siteGwOutside : a.cloudGwOutside,
    peerAddress: site ? a.cloudGwOutside : a.siteGwOutside,
    localId: site ? a.siteGwOutside : a.cloudGwOutside,
    peerId: site ? a.cloudGwOutside : a.siteGwOutside,
    localSubnets: [site ? a.siteSubnet : a.vpcSubnet],
    remoteSubnets: [site ? a.vpcSubnet : a.siteSubnet],
    psk: PSK,
    ikeProposals: 'aes128gcm16-prfsha256-x25519',
    espProposals: 'aes128gcm16',
    startAction: site ? 'start' : 'none',
  });
  return { ...c, gateway: { ...c.gateway, dataPlane: { queues: 2 } } } as VpcgwConfig;
}

function child(s: VpcgwStatus): VpcgwStatus['connections'][number]['children'][number] {
  const ch = s.connections[0]?.children.find((c) => c.state === 'INSTALLED');
  if (!ch) throw new Error(`no INSTALLED child: ${JSON.stringify(s)}`);
  return ch;
}

beforeAll(async () => {
  spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: new URL('../../../', import.meta.url).pathname, timeout: 180_000 });
  if (!existsSync(VPCGW_CLI)) throw new Error(`build did not produce ${VPCGW_CLI}`);
  topo = await createTopology({ tag: 'mqd' });
}, 200_000);

afterAll(async () => {
  for (const g of gws) await g.stop();
  await topo?.destroy();
});

describe('vpcgw with gateway.dataPlane.queues: 2', () => {
  it('negotiates, carries ping and TCP both ways, sums per-queue counters in status, and stops cleanly', async () => {
    const cloud = await Vpcgw.start(topo, 'cloudGw', config('cloud'));
    gws.push(cloud);
    const site = await Vpcgw.start(topo, 'siteGw', config('site'));
    gws.push(site);
    await site.waitInstalled(20_000);
    await cloud.waitInstalled(20_000);
    for (const g of [site, cloud]) {
      expect(g.output()).toContain('multi-queue data plane started');
      expect(g.output()).not.toContain('running one queue');
    }
    const r = await ping(topo, 'siteHost', topo.addr.vpcHost, { count: 4, intervalSec: 0.1 });
    const back = await ping(topo, 'vpcHost', topo.addr.siteHost, { count: 2, intervalSec: 0.1, size: 1200 });
    const tcp = await iperf3Tcp(topo, { serverNs: 'vpcHost', serverAddr: topo.addr.vpcHost, clientNs: 'siteHost', seconds: 2 });
    expect(r.received).toBe(4);
    expect(back.received).toBe(2);
    expect(tcp.bytes).toBeGreaterThan(1_000_000);
    // worker counters reach status within a refresh period: what one side sent, the other received
    await waitFor(
      async () => {
        const [s, c] = [child(await site.status()), child(await cloud.status())];
        return s.packetsOut > 1000 && s.packetsOut === c.packetsIn && c.packetsOut === s.packetsIn;
      },
      { timeoutMs: 5000, intervalMs: 300, what: 'matching per-SA packet counts on both gateways' },
    );
    for (const g of gws.splice(0)) {
      const exit = await g.stop();
      expect(exit.code).toBe(0);
      expect(g.output()).toContain('multi-queue data plane closed');
    }
  }, 90_000);
});
