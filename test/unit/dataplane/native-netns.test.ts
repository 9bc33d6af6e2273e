// End to end: two data planes (bench/dp-runner.mjs) as the site and cloud gateways of the netns lab
// (site-host — site-gw ═ESP-in-UDP═ cloud-gw — vpc-host), hand-installed SAs, real TUNs and sockets.
// Native ⇄ native (plain and with offloads), and native ⇄ TypeScript backend. Needs root.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { buildDistFor, dataDrops, startRunnerPair } from '../../helpers/dp-runner.js';
import { createTopology, iperf3Tcp, ping } from '../../helpers/netns.js';
import type { Topology } from '../../helpers/netns.js';

const DIST = new URL('../../../dist/dataplane/native-data-plane.js', import.meta.url).pathname;

interface Alg {
  encr: number;
  encrKeyBits: number;
  integ: number;
  encrKeyLen: number;
  integKeyLen: number;
}
const GCM128: Alg = { encr: 20, encrKeyBits: 128, integ: 0, encrKeyLen: 20, integKeyLen: 0 };
const CHACHA: Alg = { encr: 28, encrKeyBits: 256, integ: 0, encrKeyLen: 36, integKeyLen: 0 };
const CBC_SHA256: Alg = { encr: 12, encrKeyBits: 128, integ: 12, encrKeyLen: 16, integKeyLen: 32 };

interface Side {
  backend: 'native' | 'ts';
  offload?: boolean;
}

interface RunnerStats {
  stats: Record<string, number>;
  drops: Record<string, number>;
  native: Record<string, number> | null;
  saIn: { packets: number } | undefined;
  saOut: { packets: number } | undefined;
}

let topo: Topology;

/** Starts both gateways with fresh keys; returns a stop() that yields each side's final counters. */
async function startPair(site: Side, cloud: Side, alg: Alg): Promise<{ stop: () => Promise<[RunnerStats, RunnerStats]> }> {
  const k = () => ({ e: randomBytes(alg.encrKeyLen).toString('hex'), i: randomBytes(alg.integKeyLen).toString('hex') });
  const toCloud = k();
  const toSite = k();
  const base = { mtu: 1400, port: 4500, ...alg };
  const siteCfg = {
    ...base,
    ...site,
    tunName: 'dp0',
    local: topo.addr.siteGwOutside,
    peer: topo.addr.cloudGwOutside,
    localNet: topo.addr.siteSubnet,
    remoteNet: topo.addr.vpcSubnet,
    spiIn: 0xa0000001,
    spiOut: 0xb0000001,
    encrKeyIn: toSite.e,
    integKeyIn: toSite.i,
    encrKeyOut: toCloud.e,
    integKeyOut: toCloud.i,
  };
  const cloudCfg = {
    ...base,
    ...cloud,
    tunName: 'dp0',
    local: topo.addr.cloudGwOutside,
    peer: topo.addr.siteGwOutside,
    localNet: topo.addr.vpcSubnet,
    remoteNet: topo.addr.siteSubnet,
    spiIn: 0xb0000001,
    spiOut: 0xa0000001,
    encrKeyIn: toCloud.e,
    integKeyIn: toCloud.i,
    encrKeyOut: toSite.e,
    integKeyOut: toSite.i,
  };
  return startRunnerPair<RunnerStats>(topo, siteCfg, cloudCfg, 3000);
}

beforeAll(async () => {
  // the runners import the built code
  buildDistFor(DIST);
  topo = await createTopology({ tag: 'ndp' });
}, 200_000);

afterAll(async () => {
  await topo?.destroy();
});

describe('NativeDataPlane in network namespaces', () => {
  it('native ⇄ native (AES-GCM-128): site host pings the VPC host through the tunnel', async () => {
    const pair = await startPair({ backend: 'native' }, { backend: 'native' }, GCM128);
    const r = await ping(topo, 'siteHost', topo.addr.vpcHost, { count: 5, intervalSec: 0.1 });
    const big = await ping(topo, 'siteHost', topo.addr.vpcHost, { count: 2, intervalSec: 0.1, size: 1300 });
    const [site, cloud] = await pair.stop();
    expect(r.received).toBe(5);
    expect(big.received).toBe(2);
    expect(site.stats.espTxPackets).toBeGreaterThanOrEqual(7);
    expect(cloud.stats.espRxPackets).toBeGreaterThanOrEqual(7);
    expect(cloud.saIn!.packets).toBe(cloud.stats.espRxPackets);
    expect(dataDrops(site.drops)).toEqual({});
    expect(dataDrops(cloud.drops)).toEqual({});
  }, 30_000);

  it('native with a vnet-header TUN (TSO, GRO) and UDP GSO on both sides carries TCP; offloads are used', async () => {
    const pair = await startPair({ backend: 'native', offload: true }, { backend: 'native', offload: true }, GCM128);
    const r = await ping(topo, 'siteHost', topo.addr.vpcHost, { count: 3, intervalSec: 0.1 });
    const tcp = await iperf3Tcp(topo, { serverNs: 'vpcHost', serverAddr: topo.addr.vpcHost, clientNs: 'siteHost', seconds: 2 });
    const [site, cloud] = await pair.stop();
    expect(r.received).toBe(3);
    expect(tcp.bytes).toBeGreaterThan(1_000_000);
    // forwarded TCP reaches a vnet TUN as TSO super-packets; the receiver coalesces on write
    expect(site.native!.tsoSuperPackets).toBeGreaterThan(0);
    expect(site.native!.gsoSends).toBeGreaterThan(0);
    expect(cloud.native!.groWrites).toBeGreaterThan(0);
    expect(dataDrops(cloud.drops)).toEqual({});
  }, 60_000);

  for (const [name, alg] of [
    ['ChaCha20-Poly1305', CHACHA],
    ['AES-CBC + HMAC-SHA2-256', CBC_SHA256],
  ] as const) {
    it(`native ⇄ TypeScript backend (${name}) interoperate both ways`, async () => {
      const pair = await startPair({ backend: 'native' }, { backend: 'ts' }, alg);
      const r = await ping(topo, 'siteHost', topo.addr.vpcHost, { count: 4, intervalSec: 0.1 });
      const back = await ping(topo, 'vpcHost', topo.addr.siteHost, { count: 2, intervalSec: 0.1, size: 1200 });
      const [site, cloud] = await pair.stop();
      expect(r.received).toBe(4);
      expect(back.received).toBe(2);
      expect(site.stats.espRxPackets).toBeGreaterThanOrEqual(6);
      expect(cloud.stats.espRxPackets).toBeGreaterThanOrEqual(6);
      expect(dataDrops(site.drops)).toEqual({});
    }, 30_000);
  }
});
