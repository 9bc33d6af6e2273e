// Native data plane micro benchmark: packets/s per stage at 64 and 1400 bytes (one core, this process).
//   encap   — EspCore.encapBatch (the test addon, vpcgw_native_test.node), 64 packets per call, in place (AES-128-GCM, ChaCha20, AES-CBC+SHA256)
//   decap   — (encap + decap) − encap per packet, same batches
//   ts      — the TypeScript codec (src/esp via dist/) for comparison
//   pipeline out — a NativeDataPlane reading its TUN (TUN read + LPM + encap + sendmmsg/GSO), fed by
//                  sendmmsg bursts routed into the TUN from this process (generator shares the CPU)
//   pipeline in  — ESP datagrams (pre-sealed) sent to the data plane's UDP port: recvmmsg + decap +
//                  TUN write (inner destination blackholed)
// Usage (root, after `npm run build`): node bench/micro/dataplane.mjs [secondsPerStage=1]
import { randomBytes } from 'node:crypto';
import { createNativeEspCore, NativeDataPlane } from '../../dist/dataplane/native-data-plane.js';
import { createEncTransform } from '../../dist/crypto/aead.js';
import { espEncap } from '../../dist/esp/encap.js';
import { espDecap } from '../../dist/esp/decap.js';
import { EspSa, EspSpan } from '../../dist/esp/esp-sa.js';
import { PacketBatch } from '../../dist/common/batch.js';
import { parsePrefix, parseIp } from '../../dist/common/ip.js';
import { LinuxTun } from '../../dist/tun/linux-tun.js';
import { NativeUdp } from '../../dist/net/native-udp.js';
import { addAddress, addRoute } from '../../dist/tun/netcfg.js';
import { execFileSync } from 'node:child_process';

const SECS = Number(process.argv[2] ?? 1);
const P = (s) => parsePrefix(s);
const SUITES = [
  { name: 'aes128gcm16', encr: 20, encrKeyBits: 128, integ: 0, ek: 20, ik: 0 },
  { name: 'chacha20poly1305', encr: 28, encrKeyBits: 256, integ: 0, ek: 36, ik: 0 },
  { name: 'aes128-sha256', encr: 12, encrKeyBits: 128, integ: 12, ek: 16, ik: 32 },
];
const fmt = (pps) => (pps >= 1e6 ? `${(pps / 1e6).toFixed(2)} M` : `${(pps / 1e3).toFixed(0)} k`);

function sa(s, dir, keys, spi = 0x1234) {
  return {
    direction: dir, spi, encr: s.encr, encrKeyBits: s.encrKeyBits, integ: s.integ, encrKey: keys.e, integKey: keys.i,
    localAddr: '127.0.0.1', localPort: 4500, remoteAddr: '127.0.0.1', remotePort: 4500,
    localTs: dir === 'out' ? [P('10.1.0.0/16')] : [P('10.2.0.0/16')],
    remoteTs: dir === 'out' ? [P('10.2.0.0/16')] : [P('10.1.0.0/16')],
    replayWindow: 4096,
  };
}

function batchOf(size) {
  const b = new PacketBatch(64, 2048, 64);
  const pkt = Buffer.alloc(size);
  pkt[0] = 0x45;
  pkt.writeUInt16BE(size, 2);
  pkt[9] = 17;
  Buffer.from([10, 1, 0, 1]).copy(pkt, 12);
  Buffer.from([10, 2, 0, 1]).copy(pkt, 16);
  for (let i = 0; i < 64; i++) b.push(pkt);
  return { b, pkt };
}

function refill(b, pkt) {
  for (let i = 0; i < 64; i++) {
    b.off[i] = i * 2048 + 64;
    b.len[i] = pkt.length;
    pkt.copy(b.buf, b.off[i]);
  }
}

function timeLoop(fn) {
  const end = performance.now() + SECS * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) n += fn();
  return n / ((performance.now() - t0) / 1000);
}

console.log(`stage                          size   alg                pkt/s`);
for (const size of [64, 1400]) {
  for (const s of SUITES) {
    const keys = { e: randomBytes(s.ek), i: randomBytes(s.ik) };
    const out = createNativeEspCore(sa(s, 'out', keys));
    const { b, pkt } = batchOf(size);
    const enc = timeLoop(() => {
      refill(b, pkt);
      return out.encapBatch(b.buf, b.off, b.len, 64, 2048);
    });
    const out2 = createNativeEspCore(sa(s, 'out', keys));
    const inb = createNativeEspCore(sa(s, 'in', keys));
    const both = timeLoop(() => {
      refill(b, pkt);
      out2.encapBatch(b.buf, b.off, b.len, 64, 2048);
      return inb.decapBatch(b.buf, b.off, b.len, 64, 2048);
    });
    const dec = 1 / (1 / both - 1 / enc);
    console.log(`native encap                   ${String(size).padStart(4)}   ${s.name.padEnd(18)} ${fmt(enc)}`);
    console.log(`native decap                   ${String(size).padStart(4)}   ${s.name.padEnd(18)} ${fmt(dec)}`);
  }
  // the TypeScript codec for comparison (AES-128-GCM)
  const s = SUITES[0];
  const keys = { e: randomBytes(s.ek), i: Buffer.alloc(0) };
  const mk = (dir) => new EspSa({ ...sa(s, dir, keys), transform: createEncTransform(s, keys.e, keys.i) });
  const tOut = mk('out');
  const { b, pkt } = batchOf(size);
  const span = new EspSpan();
  const tsEnc = timeLoop(() => {
    refill(b, pkt);
    for (let i = 0; i < 64; i++) espEncap(tOut, b.buf, b.off[i], b.len[i], (i + 1) * 2048, span);
    return 64;
  });
  const tOut2 = mk('out');
  const tIn = mk('in');
  const tsBoth = timeLoop(() => {
    refill(b, pkt);
    for (let i = 0; i < 64; i++) {
      espEncap(tOut2, b.buf, b.off[i], b.len[i], (i + 1) * 2048, span);
      espDecap(tIn, b.buf, span.off, span.len, span);
    }
    return 64;
  });
  console.log(`ts encap                       ${String(size).padStart(4)}   aes128gcm16        ${fmt(tsEnc)}`);
  console.log(`ts decap                       ${String(size).padStart(4)}   aes128gcm16        ${fmt(1 / (1 / tsBoth - 1 / tsEnc))}`);
}

// ---------------------------------------------------------------- whole native pipeline, one process
const tunName = `dpb${randomBytes(2).toString('hex')}`;
const tun = LinuxTun.open({ name: tunName, mtu: 1500 });
addAddress(tun.name, '10.1.0.1/24');
addRoute('10.2.0.0/16', tun.name);
execFileSync('ip', ['route', 'add', 'blackhole', '10.1.9.0/24']);
const udp = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
const sinkUdp = NativeUdp.bind({ address: '127.0.0.1', port: 0, batchSize: 64 });
let sunk = 0;
sinkUdp.start((bb) => (sunk += bb.count));
const gen = NativeUdp.bind({ address: '10.1.0.1', port: 0 });
const keys = { e: randomBytes(20), i: Buffer.alloc(0) };
const dp = new NativeDataPlane(tun, [udp], { gso: true });
const s0 = SUITES[0];
dp.installSa({ ...sa(s0, 'out', keys, 0x5001), localPort: udp.port, remotePort: sinkUdp.port, localTs: [P('10.1.0.0/16')] });
dp.installSa({ ...sa(s0, 'in', keys, 0x5002), localPort: udp.port, localTs: [P('10.1.0.0/16')], remoteTs: [P('10.2.0.0/16')] });
dp.addRoute(P('10.2.0.0/16'), 0x5001);

// one sealer for both sizes: its sequence numbers must keep rising for the data plane's replay window
const sealer = createNativeEspCore({ ...sa(s0, 'out', keys, 0x5002), localTs: [P('10.2.0.0/16')], remoteTs: [P('10.1.0.0/16')] });

async function pump(sizeInner, sendBatch) {
  const t0 = performance.now();
  const start = dp.nativeStats();
  const end = t0 + SECS * 1000;
  while (performance.now() < end) {
    sendBatch();
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 50));
  const st = dp.nativeStats();
  return { st, start, secs: (performance.now() - t0) / 1000 };
}

for (const size of [64, 1400]) {
  // outbound: UDP payload sized so the IP packet is `size` bytes, sent into the TUN by the kernel
  const gb = new PacketBatch(64, 2048, 0);
  const dst = parseIp('10.2.0.9').bytes;
  for (let i = 0; i < 64; i++) gb.push(Buffer.alloc(size - 28, 7), 4, dst, 9);
  const o = await pump(size, () => gen.send(gb));
  const outPps = (o.st.espTxPackets - o.start.espTxPackets) / o.secs;
  // inbound: pre-sealed ESP (fresh sequence numbers per batch) from a plain socket to the data plane
  const inner = Buffer.alloc(size);
  inner[0] = 0x45;
  inner.writeUInt16BE(size, 2);
  inner[9] = 17;
  Buffer.from([10, 2, 0, 1]).copy(inner, 12);
  Buffer.from([10, 1, 9, 1]).copy(inner, 16); // blackholed after the TUN write
  const eb = new PacketBatch(64, 2048, 64);
  for (let i = 0; i < 64; i++) eb.push(inner, 4, parseIp('127.0.0.1').bytes, udp.port);
  const i = await pump(size, () => {
    refill(eb, inner);
    sealer.encapBatch(eb.buf, eb.off, eb.len, 64, 2048);
    sinkUdp.send(eb);
  });
  const inPps = (i.st.espRxPackets - i.start.espRxPackets) / i.secs;
  console.log(`pipeline out (TUN→ESP→UDP)     ${String(size).padStart(4)}   aes128gcm16        ${fmt(outPps)}  (gso sends ${o.st.gsoSends - o.start.gsoSends})`);
  console.log(`pipeline in (UDP→ESP→TUN)      ${String(size).padStart(4)}   aes128gcm16        ${fmt(inPps)}  (drops ${JSON.stringify(Object.fromEntries(Object.entries(dp.dropCounters()).filter(([, v]) => v)))})`);
}
dp.close();
tun.close();
udp.close();
sinkUdp.close();
gen.close();
execFileSync('ip', ['route', 'del', 'blackhole', '10.1.9.0/24']);
