// Data plane ⇄ data plane TCP throughput in the netns lab, per offload setting, with hand-installed
// SAs (no IKE): bench/dp-runner.mjs on both gateways, iperf3 site-host -> vpc-host.
//   node bench/dp-offloads.mjs [seconds=4] [runs=3] [variants=ts,native,native-gso,native-tso-gso,native-all]
// Build first: npm run build (addon + dist). Prints one line per variant: median Mbit/s and runs.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ADDR, createTopology, iperf3Mbps, median, waitFor, waitForTunnel } from './e2e/lib.mjs';

const RUNNER = fileURLToPath(new URL('./dp-runner.mjs', import.meta.url));
const seconds = Number(process.argv[2] ?? 4);
const runs = Number(process.argv[3] ?? 3);
const VARIANTS = {
  ts: { backend: 'ts' },
  native: { backend: 'native', offload: false, gso: false },
  'native-gso': { backend: 'native', offload: false, gso: true },
  'native-tso-gso': { backend: 'native', offload: true, gso: true, gro: false },
  'native-all': { backend: 'native', offload: true, gso: true, gro: true },
};
const wanted = (process.argv[4] ?? Object.keys(VARIANTS).join(',')).split(',');

async function startPair(topo, v) {
  const key = () => randomBytes(20).toString('hex'); // AES-128-GCM key + salt (bench fixture)
  const toCloud = key();
  const toSite = key();
  const base = { ...v, mtu: 1400, port: 4500, encr: 20, encrKeyBits: 128, integ: 0, tunName: 'dp0' };
  const cfgs = [
    ['siteGw', { ...base, local: ADDR.siteGwOutside, peer: ADDR.cloudGwOutside, localNet: ADDR.siteSubnet, remoteNet: ADDR.vpcSubnet, spiIn: 0xa0000001, spiOut: 0xb0000001, encrKeyIn: toSite, encrKeyOut: toCloud }],
    ['cloudGw', { ...base, local: ADDR.cloudGwOutside, peer: ADDR.siteGwOutside, localNet: ADDR.vpcSubnet, remoteNet: ADDR.siteSubnet, spiIn: 0xb0000001, spiOut: 0xa0000001, encrKeyIn: toCloud, encrKeyOut: toSite }],
  ];
  const procs = cfgs.map(([ns, cfg]) => topo.spawnIn(ns, process.execPath, [RUNNER], { env: { ...process.env, VPCGW_DP_RUNNER: JSON.stringify(cfg) } }));
  for (const p of procs) {
    await waitFor(async () => {
      if (!p.running) throw new Error(p.output());
      return p.output().includes('READY');
    }, { timeoutMs: 10_000, intervalMs: 50, what: 'runner' });
  }
  return procs;
}

const topo = await createTopology();
try {
  for (const name of wanted) {
    const v = VARIANTS[name];
    if (!v) throw new Error(`unknown variant ${name}`);
    const procs = await startPair(topo, v);
    try {
      await waitForTunnel(topo);
      const xs = [];
      for (let i = 0; i < runs; i++) xs.push(await iperf3Mbps(topo, seconds));
      for (const p of procs) await p.stop('SIGTERM', 3000);
      const stats = procs.map((p) => JSON.parse((p.output().split('\n').find((l) => l.startsWith('STATS ')) ?? 'STATS null').slice(6)));
      const n = stats[0]?.native;
      const extra = n ? ` tso=${n.tsoSuperPackets} gsoSends=${n.gsoSends} groWrites(cloud)=${stats[1]?.native?.groWrites}` : '';
      console.log(`${name.padEnd(16)} ${median(xs).toFixed(0).padStart(6)} Mbit/s  runs: ${xs.map((x) => x.toFixed(0)).join(', ')}${extra}`);
    } finally {
      for (const p of procs) await p.stop('SIGTERM', 3000);
    }
  }
} finally {
  await topo.destroy();
}
