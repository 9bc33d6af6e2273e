#!/usr/bin/env node
// `npm run bench:s2c`: site-to-cloud TCP throughput (iperf3, site-host -> vpc-host) through
//   (a) strongSwan(site) <-> vpcgw(cloud)
//   (b) vpcgw(site)      <-> vpcgw(cloud)
//   (c) strongSwan(site) <-> strongSwan(cloud)   (the baseline)
// all with IKE aes128gcm16-prfsha256-x25519 / ESP aes128gcm16, the site gateway initiating.
// Prints the median Mbit/s of each pairing and the ratios (b)/(c) and (a)/(c).
//
// Options: --seconds N (default 8)  --reps N (default 2)  --only a,b,c  --json
//          --queues N|auto (vpcgw gateway.dataPlane.queues; default: the config default)
//          --parallel N (iperf3 -P streams, default 1)
// Needs root. Exit code 1 if any selected pairing could not be measured.
import { parseArgs } from 'node:util';
import { createTopology, iperf3Mbps, median, startStrongswan, startVpcgw, waitForTunnel } from './lib.mjs';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    reps: { type: 'string', default: '2' },
    only: { type: 'string', default: 'a,b,c' },
    json: { type: 'boolean', default: false },
    queues: { type: 'string' },
    parallel: { type: 'string', default: '1' },
  },
});
const seconds = Number(opt.seconds);
const reps = Number(opt.reps);
if (!(seconds > 0 && seconds <= 60) || !(reps > 0 && reps <= 10)) {
  console.error('--seconds must be in 1..60 and --reps in 1..10');
  process.exit(2);
}

const queues = opt.queues === undefined || opt.queues === 'auto' ? opt.queues : Number(opt.queues);
const parallel = Number(opt.parallel);
const PROPOSALS = { ike: 'aes128gcm16-prfsha256-x25519', esp: 'aes128gcm16', ...(queues === undefined ? {} : { queues }) };
const PAIRINGS = {
  a: { label: 'strongSwan <-> vpcgw', site: startStrongswan, cloud: startVpcgw },
  b: { label: 'vpcgw <-> vpcgw', site: startVpcgw, cloud: startVpcgw },
  c: { label: 'strongSwan <-> strongSwan', site: startStrongswan, cloud: startStrongswan },
};
const selected = opt.only.split(',').map((s) => s.trim()).filter((k) => k in PAIRINGS);

async function measure(key) {
  const p = PAIRINGS[key];
  const topo = await createTopology();
  const gws = [];
  try {
    gws.push(await p.cloud(topo, 'cloud', { ...PROPOSALS, initiate: false }));
    gws.push(await p.site(topo, 'site', { ...PROPOSALS, initiate: true }));
    try {
      await waitForTunnel(topo, 20_000);
    } catch (e) {
      throw new Error(`${e.message}\n${gws.map((g) => `--- ${g.kind} ---\n${g.diagnostics()}`).join('\n')}`);
    }
    const runs = [];
    for (let i = 0; i < reps; i++) runs.push(await iperf3Mbps(topo, seconds, 5201, parallel));
    return { mbps: median(runs), runs };
  } finally {
    for (const g of gws) await g.stop();
    await topo.destroy();
  }
}

const results = {};
for (const key of selected) {
  process.stderr.write(`[bench:s2c] (${key}) ${PAIRINGS[key].label}: ${reps} x ${seconds} s ...\n`);
  try {
    results[key] = await measure(key);
  } catch (e) {
    results[key] = { error: e.message.split('\n')[0], detail: e.message };
    process.stderr.write(`[bench:s2c] (${key}) failed: ${e.message}\n`);
  }
}

const fmt = (r) => (r === undefined ? 'not run' : 'error' in r ? `n/a (${r.error})` : `${r.mbps.toFixed(1)} Mbit/s  [${r.runs.map((x) => x.toFixed(1)).join(', ')}]`);
const ratio = (x, y) => (x && y && !('error' in x) && !('error' in y) ? (x.mbps / y.mbps).toFixed(2) : 'n/a');

console.log(`s2c iperf3 TCP, ike ${PROPOSALS.ike} / esp ${PROPOSALS.esp}, median of ${reps} x ${seconds} s`);
for (const key of ['a', 'b', 'c']) console.log(`  (${key}) ${PAIRINGS[key].label.padEnd(26)} ${fmt(results[key])}`);
console.log(`  ratio (b)/(c) vpcgw-pair vs strongSwan-pair: ${ratio(results.b, results.c)}`);
console.log(`  ratio (a)/(c) mixed vs strongSwan-pair:      ${ratio(results.a, results.c)}`);
if (opt.json) {
  const clean = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, 'error' in v ? { error: v.error } : v]));
  console.log(JSON.stringify({ seconds, reps, proposals: PROPOSALS, results: clean, ratioBC: ratio(results.b, results.c), ratioAC: ratio(results.a, results.c) }));
}
process.exit(selected.some((k) => 'error' in results[k]) ? 1 : 0);
