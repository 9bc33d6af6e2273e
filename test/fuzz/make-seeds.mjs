// Seeds for test/fuzz/fuzz_decap.cc, made by the TypeScript ESP encoder (dist/esp): valid ESP
// packets for every suite (mode 0), valid and odd plaintexts (mode 1), TCP super-packets (mode 2).
// Keys follow test/unit/esp/packets.ts keys(suite, 1). Usage: node test/fuzz/make-seeds.mjs DIR
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEncTransform } from '../../dist/crypto/aead.js';
import { espEncap } from '../../dist/esp/encap.js';
import { EspSa, EspSpan } from '../../dist/esp/esp-sa.js';
import { parsePrefix } from '../../dist/common/ip.js';

const dir = process.argv[2];
mkdirSync(dir, { recursive: true });
const SUITES = [
  [20, 128, 0, 20, 0],
  [20, 256, 0, 36, 0],
  [28, 256, 0, 36, 0],
  [12, 128, 12, 16, 32],
  [12, 256, 2, 32, 20],
  [18, 128, 0, 20, 0],
];
const P = (s) => parsePrefix(s);
function ipv4(total, seed, proto = 17) {
  const b = Buffer.alloc(total);
  b[0] = 0x45;
  b.writeUInt16BE(total, 2);
  b[8] = 64;
  b[9] = proto;
  Buffer.from([10, 1, 0, 5]).copy(b, 12);
  Buffer.from([10, 2, 0, 9]).copy(b, 16);
  for (let i = 20; i < total; i++) b[i] = (seed + i) & 0xff;
  return b;
}
function ipv6(total, seed) {
  const b = Buffer.alloc(total);
  b[0] = 0x60;
  b.writeUInt16BE(total - 40, 4);
  b[6] = 17;
  b[7] = 64;
  b[8] = 0xfd; b[9] = 0x01; b[23] = 5;
  b[24] = 0xfd; b[25] = 0x02; b[39] = 9;
  for (let i = 40; i < total; i++) b[i] = (seed + i) & 0xff;
  return b;
}
let n = 0;
const put = (mode, suite, body) => writeFileSync(join(dir, `seed-${n++}`), Buffer.concat([Buffer.from([(mode << 6) | suite]), body]));
SUITES.forEach(([encr, bits, integ, ekl, ikl], s) => {
  const ek = Buffer.alloc(ekl, 0).map((_, i) => (31 + i * 7) & 0xff);
  const ik = Buffer.alloc(ikl, 0).map((_, i) => (17 + i * 13 + 1) & 0xff);
  const sa = new EspSa({
    spi: 0xc0ffee01, direction: 'out',
    transform: createEncTransform({ encr, encrKeyBits: bits, integ }, ek, ik),
    localTs: [P('10.1.0.0/16'), P('fd01::/64')], remoteTs: [P('10.2.0.0/16'), P('fd02::/64')],
    localAddr: '192.0.2.1', localPort: 4500, remoteAddr: '192.0.2.2', remotePort: 4500,
  });
  for (const inner of [ipv4(20, 1), ipv4(84, 2), ipv4(1400, 3), ipv6(40, 4), ipv6(200, 5)]) {
    const b = Buffer.alloc(2048);
    inner.copy(b, 64);
    const span = new EspSpan();
    if (espEncap(sa, b, 64, inner.length, b.length, span) !== 0) throw new Error('encap failed');
    put(0, s, b.subarray(span.off, span.off + span.len));
  }
});
// mode 1: plaintexts (inner | padding 1,2,.. | pad length | next header)
for (const inner of [ipv4(46, 1), ipv6(62, 2)]) {
  const nh = inner[0] >> 4 === 4 ? 4 : 41;
  const pad = (4 - ((inner.length + 2) % 4)) % 4;
  put(1, 0, Buffer.concat([inner, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1)), Buffer.from([pad, nh])]));
}
// mode 2: a TCP super-packet (IPv4, 20-byte TCP header, ACK|PSH) with gso size 1000
const tcp = ipv4(20 + 20 + 3000, 7, 6);
tcp[20 + 12] = 0x50;
tcp[20 + 13] = 0x18;
put(2, 0, Buffer.concat([Buffer.from([1000 >> 8, 1000 & 0xff]), tcp]));
console.log(`${n} seeds in ${dir}`);
