// Microbenchmark: OpenVPN data channel (P_DATA_V2 AEAD) encrypt / decrypt packets per second per cipher
// at 64 and 1400 B IP packets. Uses the compiled tree: run `npx tsc -p tsconfig.build.json` first, then
//   node bench/micro/ssl-data.mjs [msPerCase=250]
// Each case runs for at most msPerCase ms (and at most 500k packets), one core, no I/O. Decrypt copies each
// sealed packet into a work buffer first (decryption is in place); that copy is included.
import { randomBytes } from 'node:crypto';
import { DataChannel, DATA_IP, DATA_MAX_OVERHEAD } from '../../dist/ssl/data/data-channel.js';

const MS = Number(process.argv[2] ?? 250);
const MAX_PACKETS = 500_000;
const CIPHERS = ['AES-128-GCM', 'AES-256-GCM', 'CHACHA20-POLY1305'];

function pair(cipher) {
  const kb = randomBytes(256);
  const server = new DataChannel({ peerId: 1 }, 0);
  const keys = { keyId: 0, cipher, decKey: kb.subarray(0, 64), decImplicitIv: kb.subarray(64, 72), encKey: kb.subarray(128, 192), encImplicitIv: kb.subarray(192, 200) };
  server.installKey(keys, 0);
  server.keysForBench = keys;
  // the mirror image decrypts what the server sends
  const client = new DataChannel({ peerId: 1, replayBacktrackMs: 0 }, 0);
  client.installKey({ keyId: 0, cipher, decKey: kb.subarray(128, 192), decImplicitIv: kb.subarray(192, 200), encKey: kb.subarray(0, 64), encImplicitIv: kb.subarray(64, 72) }, 0);
  return { server, client };
}

function run(label, fn) {
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(MS) * 1_000_000n;
  let n = 0;
  while (n < MAX_PACKETS) {
    for (let i = 0; i < 256; i++) fn(n++);
    if (process.hrtime.bigint() > end) break;
  }
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  return { label, pps: n / sec };
}

console.log(`ssl data channel, ${MS} ms per case`);
for (const cipher of CIPHERS) {
  for (const size of [64, 1400]) {
    const { server, client } = pair(cipher);
    const ip = randomBytes(size);
    ip[0] = 0x45;
    const out = Buffer.alloc(size + DATA_MAX_OVERHEAD);
    const enc = run('encrypt', () => server.encrypt(ip, 0, size, out, 0, 0));
    // pre-seal a ring of packets for decrypt
    const ring = [];
    for (let i = 0; i < 1024; i++) {
      const b = Buffer.alloc(size + DATA_MAX_OVERHEAD);
      const len = client.encrypt(ip, 0, size, b, 0, 0);
      ring.push(b.subarray(0, len));
    }
    const work = Buffer.alloc(size + DATA_MAX_OVERHEAD);
    const keys = server.keysForBench;
    let ok = 0;
    const dec = run('decrypt', (i) => {
      // the ring repeats packet-ids: start a fresh replay window each pass (re-installing the key)
      if ((i & 1023) === 0) server.installKey(keys, 0);
      const p = ring[i & 1023];
      p.copy(work);
      if (server.decrypt(work, 0, p.length, 0) === DATA_IP) ok++;
    });
    if (ok === 0) throw new Error('decrypt failed');
    console.log(`  ${cipher.padEnd(18)} ${String(size).padStart(4)} B  encrypt ${(enc.pps / 1000).toFixed(0).padStart(5)} kpps  decrypt ${(dec.pps / 1000).toFixed(0).padStart(5)} kpps`);
  }
}
