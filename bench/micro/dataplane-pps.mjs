// Packets/s through the whole native data plane with the traffic generator on the OTHER core (a
// worker thread), so the figure is the data plane's, not the generator's. One direction at a time:
//   out — 64 B (or 1400 B) UDP packets routed into the TUN → TUN read + LPM + ESP encap + sendmmsg/GSO
//   in  — pre-sealed ESP datagrams to the data plane's UDP port → recvmmsg + ESP decap + TUN write
// Counts what the data plane processed (espTxPackets / espRxPackets), AES-128-GCM.
// Usage (root, after `npm run build`): node bench/micro/dataplane-pps.mjs [seconds=3]
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createNativeEspCore, NativeDataPlane } from '../../dist/dataplane/native-data-plane.js';
import { PacketBatch } from '../../dist/common/batch.js';
import { parsePrefix, parseIp } from '../../dist/common/ip.js';
import { LinuxTun } from '../../dist/tun/linux-tun.js';
import { NativeUdp } from '../../dist/net/native-udp.js';
import { addAddress, addRoute } from '../../dist/tun/netcfg.js';

const P = (s) => parsePrefix(s);
const SUITE = { encr: 20, encrKeyBits: 128, integ: 0 };

function saParams(dir, spi, key, o) {
  return {
    direction: dir, spi, ...SUITE, encrKey: key, integKey: Buffer.alloc(0), replayWindow: 4096,
    localAddr: '127.0.0.1', localPort: o.localPort, remoteAddr: '127.0.0.1', remotePort: o.remotePort,
    localTs: [P(o.localTs)], remoteTs: [P(o.remoteTs)],
  };
}

if (!isMainThread) {
  // ---- generator (worker thread): blast until told to stop
  const { mode, size, port, key, secs, spi } = workerData;
  const b = new PacketBatch(64, 2048, 64);
  let sendSock;
  if (mode === 'out') {
    sendSock = NativeUdp.bind({ address: '10.1.0.1', port: 0 });
    for (let i = 0; i < 64; i++) b.push(Buffer.alloc(size - 28, 7), 4, parseIp('10.2.0.9').bytes, 9);
  } else {
    sendSock = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    const sealer = createNativeEspCore(saParams('out', spi, Buffer.from(key), { localPort: sendSock.port, remotePort: port, localTs: '10.2.0.0/16', remoteTs: '10.1.0.0/16' }));
    const inner = Buffer.alloc(size);
    inner[0] = 0x45;
    inner.writeUInt16BE(size, 2);
    inner[9] = 17;
    Buffer.from([10, 2, 0, 1]).copy(inner, 12);
    Buffer.from([10, 1, 9, 1]).copy(inner, 16); // blackholed after the TUN write
    const end = Date.now() + secs * 1000;
    while (Date.now() < end) {
      b.count = 0;
      for (let i = 0; i < 64; i++) b.push(inner, 4, parseIp('127.0.0.1').bytes, port);
      sealer.encapBatch(b.buf, b.off, b.len, 64, 2048);
      sendSock.send(b);
    }
    sendSock.close();
    parentPort.postMessage('done');
    process.exit(0);
  }
  const end = Date.now() + secs * 1000;
  while (Date.now() < end) sendSock.send(b);
  sendSock.close();
  parentPort.postMessage('done');
  process.exit(0);
}

// ---- data plane (main thread)
const SECS = Number(process.argv[2] ?? 3);
const tunName = `dpp${randomBytes(2).toString('hex')}`;
const tun = LinuxTun.open({ name: tunName, mtu: 1500 });
addAddress(tun.name, '10.1.0.1/24');
addRoute('10.2.0.0/16', tun.name);
execFileSync('ip', ['route', 'add', 'blackhole', '10.1.9.0/24']);
const udp = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
const sink = NativeUdp.bind({ address: '127.0.0.1', port: 0 }); // ESP out lands here, unread (drops are the kernel's)
const key = randomBytes(20);
const dp = new NativeDataPlane(tun, [udp], { gso: true });
dp.installSa(saParams('out', 0x5001, key, { localPort: udp.port, remotePort: sink.port, localTs: '10.1.0.0/16', remoteTs: '10.2.0.0/16' }));
dp.addRoute(P('10.2.0.0/16'), 0x5001);

async function measure(mode, size) {
  // a fresh inbound SA per run: each generator's sequence numbers start at 1 again
  const spi = 0x6000 + size;
  if (mode === 'in') dp.installSa(saParams('in', spi, key, { localPort: udp.port, remotePort: 0, localTs: '10.1.0.0/16', remoteTs: '10.2.0.0/16' }));
  const w = new Worker(new URL(import.meta.url), { workerData: { mode, size, port: udp.port, key, secs: SECS + 1, spi } });
  await new Promise((r) => setTimeout(r, 500)); // warm-up
  const a = dp.nativeStats();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECS * 1000));
  const b = dp.nativeStats();
  const secs = (performance.now() - t0) / 1000;
  await new Promise((r) => w.once('exit', r));
  const n = mode === 'out' ? b.espTxPackets - a.espTxPackets : b.espRxPackets - a.espRxPackets;
  return n / secs;
}

try {
  for (const size of [64, 1400]) {
    for (const mode of ['out', 'in']) {
      const pps = await measure(mode, size);
      console.log(`native data plane ${mode === 'out' ? 'out (TUN→ESP→UDP)' : 'in  (UDP→ESP→TUN)'} ${String(size).padStart(4)} B  aes128gcm16  ${(pps / 1000).toFixed(0)} k pps  ${((pps * size * 8) / 1e9).toFixed(2)} Gbit/s`);
    }
  }
  const drops = Object.fromEntries(Object.entries(dp.dropCounters()).filter(([, v]) => v));
  console.log(`drops: ${JSON.stringify(drops)}`);
} finally {
  dp.close();
  tun.close();
  udp.close();
  sink.close();
  execFileSync('ip', ['route', 'del', 'blackhole', '10.1.9.0/24']);
}
