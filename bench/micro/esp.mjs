// Microbenchmark: ESP encap/decap packets per second per transform at 64 and 1400 B inner packets.
// Uses the compiled tree: run `npm run build` (or `npx tsc -p tsconfig.build.json`) first, then
//   node bench/micro/esp.mjs [msPerCase=250]
// Each case runs for at most msPerCase milliseconds (and at most 500k packets), one core, no I/O.
// Decap copies each sealed packet into a work slot first (decryption is in place); that copy is included.
import { createEncTransform } from '../../dist/crypto/aead.js';
import { EspSa, EspSpan } from '../../dist/esp/esp-sa.js';
import { espEncap } from '../../dist/esp/encap.js';
import { espDecap } from '../../dist/esp/decap.js';
import { parsePrefix } from '../../dist/common/ip.js';

const MS = Number(process.argv[2] ?? 250);
const MAX_PACKETS = 500_000;
const SUITES = [
  ['aes128gcm16', 20, 128, 0, 20, 0],
  ['aes256gcm16', 20, 256, 0, 36, 0],
  ['chacha20poly1305', 28, 256, 0, 36, 0],
  ['aes128-sha256', 12, 128, 12, 16, 32],
  ['aes256-sha1', 12, 256, 2, 32, 20],
];
const ts = (s) => [parsePrefix(s)];

function sa(dir, s) {
  const [, encr, bits, integ, ekLen, ikLen] = s;
  const ek = Buffer.alloc(ekLen, 0x11);
  const ik = Buffer.alloc(ikLen, 0x22);
  const common = { spi: 0x1000, direction: dir, transform: createEncTransform({ encr, encrKeyBits: bits, integ }, ek, ik),
    localAddr: '192.0.2.1', localPort: 4500, remoteAddr: '192.0.2.2', remotePort: 4500, replayWindow: 4096 };
  return dir === 'out'
    ? new EspSa({ ...common, localTs: ts('10.1.0.0/16'), remoteTs: ts('10.2.0.0/16') })
    : new EspSa({ ...common, localTs: ts('10.2.0.0/16'), remoteTs: ts('10.1.0.0/16') });
}

function inner(len) {
  const b = Buffer.alloc(len, 0xab);
  b[0] = 0x45;
  b.writeUInt16BE(len, 2);
  Buffer.from([10, 1, 0, 1, 10, 2, 0, 1]).copy(b, 12);
  return b;
}

const SLOT = 2048;
const HEAD = 64;

function benchEncap(s, len, ms = MS) {
  const out = sa('out', s);
  const pkt = inner(len);
  const buf = Buffer.alloc(SLOT);
  const span = new EspSpan();
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(ms) * 1_000_000n;
  let n = 0;
  while (n < MAX_PACKETS) {
    pkt.copy(buf, HEAD);
    if (espEncap(out, buf, HEAD, len, SLOT, span) !== 0) throw new Error('encap failed');
    n++;
    if ((n & 255) === 0 && process.hrtime.bigint() > deadline) break;
  }
  return (n * 1e9) / Number(process.hrtime.bigint() - t0);
}

function benchDecap(s, len, ms = MS) {
  const out = sa('out', s);
  const inb = sa('in', s);
  const M = 2048;
  const sealed = [];
  const span = new EspSpan();
  for (let i = 0; i < M; i++) {
    const buf = Buffer.alloc(SLOT);
    inner(len).copy(buf, HEAD);
    espEncap(out, buf, HEAD, len, SLOT, span);
    sealed.push(Buffer.from(buf.subarray(span.off, span.off + span.len)));
  }
  const work = Buffer.alloc(SLOT);
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(ms) * 1_000_000n;
  let n = 0;
  while (n < MAX_PACKETS) {
    const i = n % M;
    if (i === 0) inb.replay.reset(); // replay the same M packets: a fresh window per pass
    const p = sealed[i];
    p.copy(work, 0);
    const r = espDecap(inb, work, 0, p.length, span);
    if (r !== 0) throw new Error(`decap failed: ${r}`);
    n++;
    if ((n & 255) === 0 && process.hrtime.bigint() > deadline) break;
  }
  return (n * 1e9) / Number(process.hrtime.bigint() - t0);
}

const fmt = (pps) => `${(pps / 1000).toFixed(1).padStart(7)} kpps`;
const gbit = (pps, len) => `${((pps * len * 8) / 1e9).toFixed(2).padStart(5)} Gbit/s`;
// warm up the JIT on every path once, untimed
for (const s of SUITES) { benchEncap(s, 64, 20); benchDecap(s, 64, 20); }
console.log(`ESP micro (node ${process.version}, ${MS} ms per case)`);
console.log('suite               size  encap                         decap');
for (const s of SUITES) {
  for (const len of [64, 1400]) {
    const e = benchEncap(s, len);
    const d = benchDecap(s, len);
    console.log(`${s[0].padEnd(18)} ${String(len).padStart(5)}  ${fmt(e)} ${gbit(e, len)}   ${fmt(d)} ${gbit(d, len)}`);
  }
}
