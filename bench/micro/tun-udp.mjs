#!/usr/bin/env node
// Micro-benchmark of the native TUN/UDP batch I/O (build/Release/vpcgw_native.node, no dist needed):
// packets/s for TUN read, TUN write, UDP send and UDP recv at 64 and 1400 bytes (IP packet size for
// TUN; UDP payload size for UDP). Needs root (creates a TUN named vpb<pid>, test-only addresses in
// 198.18.0.0/15, deleted at exit). Bounded: N packets per case, each case stops after 5 s.
//
//   node bench/micro/tun-udp.mjs [N=20000]
//
// Method: for reads, fill the queue first with the reader paused, then time the drain (so the figure
// is the read path alone, not the sender); for writes/sends, time the C loop over batches of 64.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const native = createRequire(import.meta.url)(process.env.VPCGW_NATIVE ?? join(root, 'build/Release/vpcgw_native.node'));
const N = Number(process.argv[2] ?? 20000);
const CASE_LIMIT_MS = 5000;
const BATCH = 64;
const SLOT = 2048;
const HEADROOM = 64;

function makeBatch(cap = BATCH) {
  const off = new Uint32Array(cap);
  for (let i = 0; i < cap; i++) off[i] = i * SLOT + HEADROOM;
  return {
    cap,
    buf: Buffer.alloc(cap * SLOT),
    off,
    len: new Uint32Array(cap),
    family: new Uint8Array(cap),
    addr: Buffer.alloc(cap * 16),
    port: new Uint16Array(cap),
  };
}

function check(rc, what) {
  if (rc !== 0) throw new Error(`${what}: ${native.strerror(rc)}`);
}

function csum(b, start, end, acc = 0) {
  for (let i = start; i < end; i += 2) acc += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

/** IPv4/UDP packet of `size` bytes (IP total length) into b at o; UDP checksum 0 (allowed for IPv4). */
function writeIpv4Udp(b, o, size, src, dst) {
  b.fill(0, o, o + size);
  b[o] = 0x45;
  b.writeUInt16BE(size, o + 2);
  b[o + 8] = 64;
  b[o + 9] = 17;
  b.set(src, o + 12);
  b.set(dst, o + 16);
  b.writeUInt16BE(csum(b, o, o + 20), o + 10);
  b.writeUInt16BE(40000, o + 20);
  b.writeUInt16BE(9, o + 22); // discard
  b.writeUInt16BE(size - 20, o + 24);
}

const fmt = (pps) => (pps >= 1e6 ? `${(pps / 1e6).toFixed(2)} M` : `${(pps / 1e3).toFixed(0)} k`);
const results = [];
function report(name, size, packets, ns) {
  const pps = packets / (Number(ns) / 1e9);
  results.push({ name, size, packets, pps });
  console.log(`${name.padEnd(10)} ${String(size).padStart(5)} B  ${String(packets).padStart(7)} pkts  ${fmt(pps).padStart(8)} pps  ${((pps * size * 8) / 1e9).toFixed(2)} Gbit/s`);
}

const waitTurn = () => new Promise((r) => setImmediate(r));

/** Runs the loop until `done()` or the case time limit; resolves with elapsed ns. */
function drain(done) {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    const poll = () => {
      const ns = process.hrtime.bigint() - t0;
      if (done() || ns > BigInt(CASE_LIMIT_MS) * 1000000n) resolve(ns);
      else setImmediate(poll);
    };
    poll();
  });
}

async function benchUdp(size) {
  const sA = new Float64Array(10);
  const sB = new Float64Array(10);
  const lo = Buffer.from([127, 0, 0, 1]);
  const a = new native.UdpHandle(4, lo, 0, false, sA);
  const b = new native.UdpHandle(4, lo, 0, false, sB);
  try {
    const out = makeBatch();
    for (let i = 0; i < BATCH; i++) {
      out.len[i] = size;
      out.family[i] = 4;
      out.addr.set(lo, i * 16);
      out.port[i] = b.port;
    }
    // send: B is paused (32 MB SO_RCVBUFFORCE); time A's sendmmsg loop
    let sent = 0;
    const t0 = process.hrtime.bigint();
    while (sent < N && process.hrtime.bigint() - t0 < BigInt(CASE_LIMIT_MS) * 1000000n) {
      sent += a.send(out.buf, out.off, out.len, out.family, out.addr, out.port, Math.min(BATCH, N - sent));
    }
    report('udp send', size, sent, process.hrtime.bigint() - t0);
    // recv: drain what B queued
    const inb = makeBatch();
    let got = 0;
    const queued = sA[2];
    b.start(inb.buf, inb.off, inb.len, inb.family, inb.addr, inb.port, BATCH, SLOT, HEADROOM, SLOT - HEADROOM, (n) => {
      got += n;
    });
    const ns = await drain(() => got >= queued);
    report('udp recv', size, got, ns);
    if (sA[4] + sB[5] > 0) console.log(`  (send errors ${sA[4]}, recv errors ${sB[5]})`);
  } finally {
    a.close();
    b.close();
  }
  await waitTurn();
}

async function benchTun(size) {
  const stats = new Float64Array(8);
  const tun = new native.TunHandle(`vpb${process.pid % 100000}`, stats);
  const name = tun.name;
  const sU = new Float64Array(10);
  let blaster;
  try {
    check(native.nlLink(name, 1, 1500), `link ${name}`);
    check(native.nlAddr(true, name, 4, Buffer.from([198, 18, 120, 1]), 24), 'addr');
    check(native.nlRoute(true, 4, Buffer.from([198, 18, 121, 0]), 24, name, -1), 'route');
    execFileSync('ip', ['link', 'set', 'dev', name, 'txqueuelen', String(N + 1000)]);

    // read: fill the TUN queue with UDP datagrams routed into it (reader paused), then time the drain
    blaster = new native.UdpHandle(4, Buffer.from([198, 18, 120, 1]), 0, false, sU);
    const out = makeBatch();
    const payload = size - 28;
    for (let i = 0; i < BATCH; i++) {
      out.len[i] = payload;
      out.family[i] = 4;
      out.addr.set([198, 18, 121, 2], i * 16);
      out.port[i] = 9;
    }
    let sent = 0;
    const tf = process.hrtime.bigint();
    while (sent < N && process.hrtime.bigint() - tf < BigInt(CASE_LIMIT_MS) * 1000000n) {
      const k = blaster.send(out.buf, out.off, out.len, out.family, out.addr, out.port, Math.min(BATCH, N - sent));
      sent += k;
      if (k === 0) break;
    }
    const inb = makeBatch();
    let got = 0;
    const queued = sent;
    tun.start(inb.buf, inb.off, inb.len, BATCH, SLOT, HEADROOM, 1500, (n) => {
      got += n;
    });
    const ns = await drain(() => got >= queued);
    report('tun read', size, got, ns);

    // write: valid IPv4/UDP packets to a routed-out, non-local address (dropped: forwarding is off)
    const wb = makeBatch();
    for (let i = 0; i < BATCH; i++) {
      writeIpv4Udp(wb.buf, wb.off[i], size, [198, 18, 121, 9], [198, 18, 122, 9]);
      wb.len[i] = size;
    }
    let written = 0;
    const tw = process.hrtime.bigint();
    while (written < N && process.hrtime.bigint() - tw < BigInt(CASE_LIMIT_MS) * 1000000n) {
      written += tun.write(wb.buf, wb.off, wb.len, Math.min(BATCH, N - written));
    }
    report('tun write', size, written, process.hrtime.bigint() - tw);
    if (stats[5] > 0) console.log(`  (tun write errors ${stats[5]})`);
  } finally {
    if (blaster) blaster.close();
    tun.close();
  }
  await waitTurn();
}

console.log(`vpcgw native TUN/UDP micro-benchmark, N=${N} per case, batches of ${BATCH}`);
for (const size of [64, 1400]) {
  await benchTun(size);
  await benchUdp(size);
}
