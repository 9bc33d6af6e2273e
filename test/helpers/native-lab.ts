// Small helpers for the native-code tests that run over a real TUN and loopback sockets
// (test/unit/dataplane/native-*.test.ts, test/unit/net/native-udp.test.ts, test/unit/tun/linux-tun.test.ts).
import { randomBytes } from 'node:crypto';
import { parseIp } from '../../src/common/ip.js';
import type { DataKeyMaterial } from '../../src/ssl/data/data-channel.js';

/**
 * Random AES-256-GCM data-channel keys (key-id 0) for a server session and its client twin: what one
 * encrypts the other decrypts. Returns the key material of either side.
 */
export function mirroredDataKeys(): (side: 'server' | 'client') => DataKeyMaterial {
  const seed = randomBytes(144);
  const a = seed.subarray(0, 64);
  const b = seed.subarray(64, 128);
  const ivA = seed.subarray(128, 136);
  const ivB = seed.subarray(136, 144);
  return (side) => side === 'server'
    ? { keyId: 0, cipher: 'AES-256-GCM', encKey: a, encImplicitIv: ivA, decKey: b, decImplicitIv: ivB }
    : { keyId: 0, cipher: 'AES-256-GCM', encKey: b, encImplicitIv: ivB, decKey: a, decImplicitIv: ivA };
}

/** Polls `cond` every 5 ms; rejects with "timed out waiting for <what>" once `ms` have passed. */
export async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** RFC 1071 Internet checksum of `b` (an odd last byte is padded with zero). */
export function csum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length & 1) s += b[b.length - 1]! << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/** The default echo payload: 32 bytes, each its own offset in the packet (28..59). */
const ECHO_PAYLOAD = Buffer.from(Array.from({ length: 32 }, (_, i) => 28 + i));

/** An IPv4 ICMP echo request carrying `payload` (default ECHO_PAYLOAD), both checksums set. */
export function icmpEcho(src: string, dst: string, id: number, seq: number, payload: Buffer = ECHO_PAYLOAD): Buffer {
  const b = Buffer.alloc(20 + 8 + payload.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[8] = 64;
  b[9] = 1;
  parseIp(src)!.bytes.copy(b, 12);
  parseIp(dst)!.bytes.copy(b, 16);
  b.writeUInt16BE(csum(b.subarray(0, 20)), 10);
  b[20] = 8;
  b.writeUInt16BE(id, 24);
  b.writeUInt16BE(seq, 26);
  payload.copy(b, 28);
  b.writeUInt16BE(csum(b.subarray(20)), 22);
  return b;
}
