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
import { parseArgs } from 'node:util';
import { createTopology, iperf3Mbps, median, startVpcgw, waitForTunnel } from './e2e/lib.mjs';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    reps: { type: 'string', default: '3' },
    queues: { type: 'string', default: '1,2' },
    parallel: { type: 'string', default: '1,4' },
    json: { type: 'boolean', default: false },
  },
});
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

const runs = {}; // runs[queues][parallel] = Mbit/s list
for (const q of queueList) runs[q] = Object.fromEntries(parallelList.map((p) => [p, []]));
for (let r = 0; r < reps; r++) {
  for (const q of queueList) {
    process.stderr.write(`[dp-multiqueue] rep ${r + 1}/${reps} queues=${q} ...\n`);
    const m = await once(q);
    for (const p of parallelList) runs[q][p].push(m[p]);
  }
}

const result = { seconds, reps, cores: (await import('node:os')).availableParallelism(), medians: {}, runs };
for (const q of queueList) result.medians[q] = Object.fromEntries(parallelList.map((p) => [p, median(runs[q][p])]));
if (opt.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  console.log(`vpcgw <-> vpcgw TCP (iperf3), ESP aes128gcm16, median of ${reps} x ${seconds} s, ${result.cores} cores`);
  for (const p of parallelList) {
    const line = queueList.map((q) => `queues=${q}: ${result.medians[q][p].toFixed(0).padStart(5)} Mbit/s [${runs[q][p].map((v) => v.toFixed(0)).join(', ')}]`);
    console.log(`  -P ${p}  ${line.join('   ')}`);
    if (queueList.length >= 2) {
      const base = result.medians[queueList[0]][p];
      console.log(`        ratio queues=${queueList.at(-1)} / queues=${queueList[0]}: ${(result.medians[queueList.at(-1)][p] / base).toFixed(2)}x`);
    }
  }
}
