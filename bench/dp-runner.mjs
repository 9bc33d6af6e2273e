// A tiny gateway for data-plane tests and benches: one data plane (native or TypeScript) with
// hand-installed SAs, run inside a network namespace. Built code only (dist/): run `npx tsc -p
// tsconfig.build.json` first. Config comes as JSON in the env var VPCGW_DP_RUNNER (keys are test
// fixtures, kept off the command line):
//   { backend: 'native'|'ts', tunName, mtu, offload (vnet-header TUN: TSO + GRO), gso, gro,
//     local, peer, port, localNet, remoteNet, encr, encrKeyBits, integ,
//     spiIn, spiOut, encrKeyIn, encrKeyOut, integKeyIn, integKeyOut (hex),
//     queues (native only: > 1 runs the multi-queue data plane, one worker thread per extra queue),
//     extraSas: [{ spiIn, spiOut, encrKeyIn, encrKeyOut, route }] (more SA pairs, same selectors;
//       `route`, e.g. a /32 inside remoteNet, goes out through spiOut) }
// Prints "READY <json>" once packets flow, and "STATS <json>" on SIGTERM before exiting.
import { NativeDataPlane, openOffloadTun } from '../dist/dataplane/native-data-plane.js';
import { MultiQueueDataPlane, bindQueueSockets, openMultiQueueTun } from '../dist/dataplane/multi-queue.js';
import { TsDataPlane } from '../dist/dataplane/ts-data-plane.js';
import { LinuxTun } from '../dist/tun/linux-tun.js';
import { NativeUdp } from '../dist/net/native-udp.js';
import { addRoute } from '../dist/tun/netcfg.js';
import { parsePrefix } from '../dist/common/ip.js';

const cfg = JSON.parse(process.env.VPCGW_DP_RUNNER ?? '{}');
const port = cfg.port ?? 4500;
const queues = cfg.queues ?? 1;
const udp = NativeUdp.bind({ address: cfg.local, port, reusePort: queues > 1 });
let tun;
let dp;
let extraUdp = [];
if (cfg.backend === 'native' && queues > 1) {
  const tuns = openMultiQueueTun(cfg.tunName, cfg.mtu, queues, !!cfg.offload);
  tun = tuns[0];
  extraUdp = bindQueueSockets(udp, queues);
  dp = await MultiQueueDataPlane.start({ tuns, binds: [[udp], ...extraUdp.map((u) => [u])] }, { gso: cfg.gso ?? true, gro: cfg.gro ?? true });
} else if (cfg.backend === 'native') {
  tun = cfg.offload ? openOffloadTun(cfg.tunName, cfg.mtu, true) : LinuxTun.open({ name: cfg.tunName, mtu: cfg.mtu });
  dp = new NativeDataPlane(tun, [udp], { gso: cfg.gso ?? true, gro: cfg.gro ?? true });
} else {
  tun = LinuxTun.open({ name: cfg.tunName, mtu: cfg.mtu });
  dp = new TsDataPlane(tun, [udp]);
}
addRoute(cfg.remoteNet, tun.name);
const localTs = [parsePrefix(cfg.localNet)];
const remoteTs = [parsePrefix(cfg.remoteNet)];
const common = {
  encr: cfg.encr,
  encrKeyBits: cfg.encrKeyBits,
  integ: cfg.integ ?? 0,
  localAddr: cfg.local,
  localPort: port,
  remoteAddr: cfg.peer,
  remotePort: port,
  localTs,
  remoteTs,
};
dp.installSa({
  ...common,
  direction: 'in',
  spi: cfg.spiIn,
  encrKey: Buffer.from(cfg.encrKeyIn, 'hex'),
  integKey: Buffer.from(cfg.integKeyIn ?? '', 'hex'),
});
dp.installSa({
  ...common,
  direction: 'out',
  spi: cfg.spiOut,
  encrKey: Buffer.from(cfg.encrKeyOut, 'hex'),
  integKey: Buffer.from(cfg.integKeyOut ?? '', 'hex'),
});
dp.addRoute(remoteTs[0], cfg.spiOut);
for (const x of cfg.extraSas ?? []) {
  dp.installSa({ ...common, direction: 'in', spi: x.spiIn, encrKey: Buffer.from(x.encrKeyIn, 'hex'), integKey: Buffer.alloc(0) });
  dp.installSa({ ...common, direction: 'out', spi: x.spiOut, encrKey: Buffer.from(x.encrKeyOut, 'hex'), integKey: Buffer.alloc(0) });
  dp.addRoute(parsePrefix(x.route), x.spiOut);
}
console.log(`READY ${JSON.stringify({ backend: cfg.backend, tun: tun.name, offloads: dp.offloads ?? null })}`);

let finishing = false;
async function finish() {
  if (finishing) return;
  finishing = true;
  if (typeof dp.refreshCounters === 'function') await dp.refreshCounters();
  const out = {
    queues: typeof dp.queueStats === 'function' ? dp.queueStats() : null,
    stats: dp.stats(),
    drops: Object.fromEntries(Object.entries(dp.dropCounters()).filter(([, v]) => v > 0)),
    native: typeof dp.nativeStats === 'function' ? dp.nativeStats() : null,
    saIn: dp.saCounters(cfg.spiIn, 'in'),
    saOut: dp.saCounters(cfg.spiOut, 'out'),
  };
  console.log(`STATS ${JSON.stringify(out)}`);
  await dp.close();
  if (typeof tun.close === 'function') tun.close();
  udp.close();
  for (const u of extraUdp) u.close();
  process.exit(0);
}
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
