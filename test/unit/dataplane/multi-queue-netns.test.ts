// End to end: the multi-queue native data plane (2 queues: the main thread + 1 worker, a 2-queue TUN
// and an SO_REUSEPORT pair on UDP 4500 steered by SPI) as both gateways of the netns lab, through
// bench/dp-runner.mjs with hand-installed SAs. Needs root and the built code (dist/).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { buildDistFor, dataDrops, startRunnerPair } from '../../helpers/dp-runner.js';
import { createTopology, iperf3Tcp, parseEspLines, ping, startCapture } from '../../helpers/netns.js';
import type { Topology } from '../../helpers/netns.js';

const DIST = new URL('../../../dist/dataplane/multi-queue-worker.js', import.meta.url).pathname;

const GCM128 = { encr: 20, encrKeyBits: 128, integ: 0 };
const SITE_SPI_IN = 0xa0000001; // odd: queue 1 of the site gateway
const CLOUD_SPI_IN = 0xb0000002; // even: queue 0 (the main thread) of the cloud gateway

type QueueStats = Record<string, number>;
interface RunnerStats {
  queues: QueueStats[] | null;
  stats: Record<string, number>;
  drops: Record<string, number>;
  native: Record<string, number>;
  saIn: { packets: number; seq: number; drops: Record<string, number> } | undefined;
  saOut: { packets: number; seq: number } | undefined;
}

interface Side {
  queues: number;
  offload?: boolean;
  gso?: boolean;
}

let topo: Topology;

function sum(list: QueueStats[], k: string): number {
  return list.reduce((a, q) => a + (q[k] ?? 0), 0);
}

async function startPair(site: Side, cloud: Side): Promise<{ stop: () => Promise<[RunnerStats, RunnerStats]> }> {
  const toCloud = randomBytes(20).toString('hex');
  const toSite = randomBytes(20).toString('hex');
  const base = { backend: 'native', mtu: 1400, port: 4500, ...GCM128 };
  const siteCfg = {
    ...base,
    ...site,
    tunName: 'mq0',
    local: topo.addr.siteGwOutside,
    peer: topo.addr.cloudGwOutside,
    localNet: topo.addr.siteSubnet,
    remoteNet: topo.addr.vpcSubnet,
    spiIn: SITE_SPI_IN,
    spiOut: CLOUD_SPI_IN,
    encrKeyIn: toSite,
    encrKeyOut: toCloud,
  };
  const cloudCfg = {
    ...base,
    ...cloud,
    tunName: 'mq0',
    local: topo.addr.cloudGwOutside,
    peer: topo.addr.siteGwOutside,
    localNet: topo.addr.vpcSubnet,
    remoteNet: topo.addr.siteSubnet,
    spiIn: CLOUD_SPI_IN,
    spiOut: SITE_SPI_IN,
    encrKeyIn: toCloud,
    encrKeyOut: toSite,
  };
  return startRunnerPair<RunnerStats>(topo, siteCfg, cloudCfg, 5000);
}

/** Sends `count` UDP datagrams of `payloadHex`, each from a fresh source port, from a namespace. */
async function sendFromManyPorts(ns: 'siteGw', to: string, port: number, payloadHex: string, count: number): Promise<void> {
  const js = `
    const dgram = require('node:dgram');
    const [to, port, hex, count] = process.argv.slice(1);
    let left = Number(count);
    for (let i = 0; i < Number(count); i++) {
      const s = dgram.createSocket('udp4');
      s.send(Buffer.from(hex, 'hex'), Number(port), to, () => { s.close(); if (--left === 0) process.exit(0); });
    }
    setTimeout(() => process.exit(1), 3000);`;
  await topo.exec(ns, process.execPath, ['-e', js, to, String(port), payloadHex, String(count)], { timeoutMs: 5000 });
}

/**
 * One-way UDP flows from the site host (16 source ports, dropped by nftables at the VPC host so no
 * reply or ICMP comes back): the site's TUN spreads them over its queues by flow hash. (A flow with
 * replies would follow them: the TUN reads a flow on the queue that last wrote its reverse direction.)
 */
async function oneWayUdpFlows(flows: number, perFlow: number): Promise<void> {
  const port = 9999;
  await topo.exec('vpcHost', 'nft', ['add table inet mqt; add chain inet mqt in { type filter hook input priority 0; }; add rule inet mqt in udp dport 9999 drop']);
  const js = `
    const dgram = require('node:dgram');
    const [to, port, flows, perFlow] = process.argv.slice(1).map((v, i) => (i ? Number(v) : v));
    const socks = Array.from({ length: flows }, () => dgram.createSocket('udp4'));
    const payload = Buffer.alloc(1000, 0x5a);
    let round = 0;
    const tick = () => {
      for (const s of socks) s.send(payload, port, to);
      if (++round < perFlow) setTimeout(tick, 1);
      else setTimeout(() => process.exit(0), 200);
    };
    tick();
    setTimeout(() => process.exit(1), 10000);`;
  await topo.exec('siteHost', process.execPath, ['-e', js, topo.addr.vpcHost, String(port), String(flows), String(perFlow)], { timeoutMs: 15_000 });
}

beforeAll(async () => {
  // the runners (and their worker threads) import the built code
  buildDistFor(DIST);
  topo = await createTopology({ tag: 'mq' });
}, 200_000);

afterAll(async () => {
  await topo?.destroy();
});

describe('MultiQueueDataPlane (2 queues) in network namespaces', () => {
  it('with TSO/GSO/GRO on both sides: ping both ways and TCP pass; counters are the sum of the queues', async () => {
    const pair = await startPair({ queues: 2, offload: true }, { queues: 2, offload: true });
    const r = await ping(topo, 'siteHost', topo.addr.vpcHost, { count: 4, intervalSec: 0.1 });
    const back = await ping(topo, 'vpcHost', topo.addr.siteHost, { count: 2, intervalSec: 0.1, size: 1300 });
    const tcp = await iperf3Tcp(topo, { serverNs: 'vpcHost', serverAddr: topo.addr.vpcHost, clientNs: 'siteHost', seconds: 2 });
    const [site, cloud] = await pair.stop();
    expect(r.received).toBe(4);
    expect(back.received).toBe(2);
    expect(tcp.bytes).toBeGreaterThan(1_000_000);
    for (const s of [site, cloud]) {
      expect(s.queues).toHaveLength(2);
      expect(s.stats.espTxPackets).toBe(sum(s.queues!, 'espTxPackets'));
      expect(s.stats.espRxPackets).toBe(sum(s.queues!, 'espRxPackets'));
      expect(s.saOut!.packets).toBe(s.stats.espTxPackets);
      expect(s.saIn!.packets).toBe(s.stats.espRxPackets);
      // one shared counter per outbound SA: every ESP packet took exactly one sequence number
      expect(s.saOut!.seq).toBe(s.stats.espTxPackets);
      expect(dataDrops(s.drops)).toEqual({});
    }
    // inbound ESP is steered by SPI: all of the site's (odd SPI) to queue 1, the cloud's (even) to queue 0
    expect(site.queues![1]!.espRxPackets).toBe(site.stats.espRxPackets);
    expect(cloud.queues![0]!.espRxPackets).toBe(cloud.stats.espRxPackets);
  }, 60_000);

  it('one outbound SA used by both queues at once never repeats a sequence number', async () => {
    // GSO off on the site: one datagram per ESP packet, so tcpdump sees every sequence number
    const pair = await startPair({ queues: 2, gso: false }, { queues: 2 });
    const cap = await startCapture(topo, 'cloudGw', 'out0', ['udp', 'port', '4500', 'and', 'src', topo.addr.siteGwOutside], 20_000);
    await oneWayUdpFlows(16, 100);
    const esp = parseEspLines(await cap.stop());
    const [site, cloud] = await pair.stop();
    // both TUN queues of the site read and encrypted packets of the same SA
    expect(site.queues![0]!.espTxPackets).toBeGreaterThan(50);
    expect(site.queues![1]!.espTxPackets).toBeGreaterThan(50);
    expect(site.saOut!.seq).toBe(site.stats.espTxPackets);
    const seqs = esp.filter((p) => p.spi === CLOUD_SPI_IN.toString(16)).map((p) => p.seq);
    expect(seqs.length).toBeGreaterThan(500);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(Math.max(...seqs)).toBeLessThanOrEqual(site.saOut!.seq);
    // the receiver's replay window saw no duplicate
    expect(cloud.saIn!.drops.REPLAY ?? 0).toBe(0);
    expect(cloud.drops.REPLAY ?? 0).toBe(0);
  }, 60_000);

  it('steers UDP 4500 by SPI, not by source port: IKE to the main thread, ESP to queue SPI % 2', async () => {
    const pair = await startPair({ queues: 2 }, { queues: 2 });
    const to = topo.addr.cloudGwOutside;
    // IKE behind the non-ESP marker, then "ESP" with unknown SPIs (dropped NO_SA after steering)
    await sendFromManyPorts('siteGw', to, 4500, '00000000' + '11'.repeat(28), 8);
    await sendFromManyPorts('siteGw', to, 4500, '00001001' + '00000001' + '22'.repeat(40), 8);
    await sendFromManyPorts('siteGw', to, 4500, '00001002' + '00000001' + '22'.repeat(40), 8);
    const [, cloud] = await pair.stop();
    const q = cloud.queues!;
    expect(q[0]!.controlPackets).toBe(8);
    expect(q[1]!.controlPackets).toBe(0);
    // 8 IKE + 8 even-SPI datagrams on queue 0, the 8 odd-SPI ones on queue 1, whatever the source port
    expect(q[0]!.udpRxDatagrams).toBe(16);
    expect(q[1]!.udpRxDatagrams).toBe(8);
    expect(cloud.drops.NO_SA).toBe(16);
  }, 30_000);
});
