#!/usr/bin/env node
// Multi-queue data plane: vpcgw <-> vpcgw (the real daemon, IKE included) in the site-to-cloud netns
// lab, TCP through the tunnel (iperf3 site-host -> vpc-host) with gateway.dataPlane.queues = 1 and 2,
// with 1 and with 4 parallel TCP streams. Runs are interleaved per rep (1, 2, 1, 2, ...) so drift on
// the shared machine hits both settings alike. Prints the median Mbit/s per setting and the ratio.
//
//   node bench/dp-multiqueue.mjs [--seconds 5] [--reps 3] [--queues 1,2] [--parallel 1,4] [--json]
//
// Needs root and the built gateway (npm run build). Checks from the daemon's log that the multi-queue
// data plane really ran (and did not fall back to one queue).
//
// --mode sas: the data planes alone (bench/dp-runner.mjs, hand-installed keys, TSO/GSO/GRO on) with
// TWO SA pairs whose inbound SPIs fall on different queues (even: queue 0, odd: queue 1), each
// carrying one TCP stream between its own pair of host addresses (10.1.0.1x <-> 10.2.0.1x). This
// is the case multi-queue is for: one SA is always handled by one queue (its inbound SPI picks the
// socket; the TUN then reads the SA's flows on the queue that writes their replies).
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { ADDR, createTopology, iperf3Mbps, median, sleep, startVpcgw, waitFor, waitForTunnel } from './e2e/lib.mjs';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    reps: { type: 'string', default: '3' },
    queues: { type: 'string', default: '1,2' },
    parallel: { type: 'string', default: '1,4' },
    json: { type: 'boolean', default: false },
    mode: { type: 'string', default: 'daemon' },
  },
});
const sasMode = opt.mode === 'sas';
const seconds = Number(opt.seconds);
const reps = Number(opt.reps);
const queueList = opt.queues.split(',').map(Number);
const parallelList = opt.parallel.split(',').map(Number);
if (!(seconds > 0 && seconds <= 60) || !(reps > 0 && reps <= 10) || queueList.some((q) => !(q >= 1 && q <= 16))) {
  console.error('--seconds 1..60, --reps 1..10, --queues a list of 1..16');
  process.exit(2);
}
const PROPOSALS = { ike: 'aes128gcm16-prfsha256-x25519', esp: 'aes128gcm16' };

/** One gateway pair with `queues`, measured once per parallel setting. */
async function once(queues) {
  const topo = await createTopology();
  const gws = [];
  try {
    gws.push(await startVpcgw(topo, 'cloud', { ...PROPOSALS, initiate: false, queues }));
    gws.push(await startVpcgw(topo, 'site', { ...PROPOSALS, initiate: true, queues }));
    await waitForTunnel(topo, 20_000);
    if (queues > 1) {
      for (const g of gws) {
        if (!g.output().includes('multi-queue data plane started')) {
          throw new Error(`queues=${queues}: the daemon did not start the multi-queue data plane\n${g.diagnostics()}`);
        }
      }
    }
    const out = {};
    for (const p of parallelList) out[p] = await iperf3Mbps(topo, seconds, 5201, p);
    return out;
  } finally {
    for (const g of gws) await g.stop();
    await topo.destroy();
  }
}

const RUNNER = new URL('./dp-runner.mjs', import.meta.url).pathname;
const key = () => randomBytes(20).toString('hex');

/** `--mode sas`: two SA pairs on different queues, one TCP stream each; returns { 2: summed Mbit/s }. */
async function onceSas(queues) {
  const topo = await createTopology();
  const procs = [];
  try {
    await topo.exec('siteHost', 'ip', ['addr', 'add', '10.1.0.11/24', 'dev', 'eth0']);
    await topo.exec('vpcHost', 'ip', ['addr', 'add', '10.2.0.11/24', 'dev', 'eth0']);
    const k = { sc1: key(), cs1: key(), sc2: key(), cs2: key() };
    const base = { backend: 'native', offload: true, mtu: 1400, port: 4500, encr: 20, encrKeyBits: 128, integ: 0, tunName: 'mq0', queues };
    const site = {
      ...base, local: ADDR.siteGwOutside, peer: ADDR.cloudGwOutside, localNet: ADDR.siteSubnet, remoteNet: ADDR.vpcSubnet,
      spiIn: 0xd0000002, spiOut: 0xc0000002, encrKeyIn: k.cs1, encrKeyOut: k.sc1,
      extraSas: [{ spiIn: 0xd0000003, spiOut: 0xc0000003, encrKeyIn: k.cs2, encrKeyOut: k.sc2, route: '10.2.0.11/32' }],
    };
    const cloud = {
      ...base, local: ADDR.cloudGwOutside, peer: ADDR.siteGwOutside, localNet: ADDR.vpcSubnet, remoteNet: ADDR.siteSubnet,
      spiIn: 0xc0000002, spiOut: 0xd0000002, encrKeyIn: k.sc1, encrKeyOut: k.cs1,
      extraSas: [{ spiIn: 0xc0000003, spiOut: 0xd0000003, encrKeyIn: k.sc2, encrKeyOut: k.cs2, route: '10.1.0.11/32' }],
    };
    for (const [ns, cfg] of [['siteGw', site], ['cloudGw', cloud]]) {
      const p = topo.spawnIn(ns, process.execPath, [RUNNER], { env: { ...process.env, VPCGW_DP_RUNNER: JSON.stringify(cfg) } });
      procs.push(p);
      await waitFor(async () => {
        if (!p.running) throw new Error(`runner exited: ${p.output()}`);
        return p.output().includes('READY');
      }, { timeoutMs: 10_000, intervalMs: 50, what: 'dp-runner' });
    }
    const servers = [5201, 5202].map((port, i) => topo.spawnIn('vpcHost', 'iperf3', ['-s', '-1', '-B', `10.2.0.1${i}`, '-p', String(port)]));
    await sleep(300);
    const res = await Promise.all([0, 1].map((i) =>
      topo.exec('siteHost', 'iperf3', ['-B', `10.1.0.1${i}`, '-c', `10.2.0.1${i}`, '-p', String(5201 + i), '-t', String(seconds), '-J', '--connect-timeout', '3000'], {
        timeoutMs: (seconds + 15) * 1000, allowFail: true,
      })));
    for (const s of servers) await s.stop('SIGTERM', 2000);
    const mbps = res.map((r) => {
      const j = JSON.parse(r.stdout);
      if (j.error) throw new Error(`iperf3: ${j.error}`);
      return j.end.sum_received.bits_per_second / 1e6;
    });
    const split = [];
    for (const p of procs) {
      await p.stop('SIGTERM', 5000);
      const line = p.output().split('\n').find((l) => l.startsWith('STATS '));
      const st = line ? JSON.parse(line.slice(6)) : null;
      split.push(st?.queues ? st.queues.map((q) => q.espTxPackets + q.espRxPackets) : null);
    }
    process.stderr.write(`  streams ${mbps.map((m) => m.toFixed(0)).join(' + ')} Mbit/s; ESP packets per queue site ${JSON.stringify(split[0])} cloud ${JSON.stringify(split[1])}\n`);
    return { 2: mbps[0] + mbps[1] };
  } finally {
    for (const p of procs) await p.stop('SIGTERM', 3000);
    await topo.destroy();
  }
}

if (sasMode) parallelList.splice(0, parallelList.length, 2);
const runs = {}; // runs[queues][parallel] = Mbit/s list
for (const q of queueList) runs[q] = Object.fromEntries(parallelList.map((p) => [p, []]));
for (let r = 0; r < reps; r++) {
  for (const q of queueList) {
    process.stderr.write(`[dp-multiqueue] rep ${r + 1}/${reps} queues=${q} ...\n`);
    const m = sasMode ? await onceSas(q) : await once(q);
    for (const p of parallelList) runs[q][p].push(m[p]);
  }
}

const result = { seconds, reps, cores: (await import('node:os')).availableParallelism(), medians: {}, runs };
for (const q of queueList) result.medians[q] = Object.fromEntries(parallelList.map((p) => [p, median(runs[q][p])]));
if (opt.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  console.log(sasMode
    ? `data plane <-> data plane, 2 SA pairs on different queues, 2 TCP streams (summed), AES-GCM-128, median of ${reps} x ${seconds} s, ${result.cores} cores`
    : `vpcgw <-> vpcgw TCP (iperf3), ESP aes128gcm16, median of ${reps} x ${seconds} s, ${result.cores} cores`);
  for (const p of parallelList) {
    const line = queueList.map((q) => `queues=${q}: ${result.medians[q][p].toFixed(0).padStart(5)} Mbit/s [${runs[q][p].map((v) => v.toFixed(0)).join(', ')}]`);
    console.log(`  ${sasMode ? '2 SAs' : `-P ${p}`}  ${line.join('   ')}`);
    if (queueList.length >= 2) {
      const base = result.medians[queueList[0]][p];
      console.log(`        ratio queues=${queueList.at(-1)} / queues=${queueList[0]}: ${(result.medians[queueList.at(-1)][p] / base).toFixed(2)}x`);
    }
  }
}
