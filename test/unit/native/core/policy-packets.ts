// IPv4 / IPv6 packet builders and full-recompute checksum checks for the policy stage tests
// (test/unit/native/core/policy.test.ts, test/unit/dataplane/native-policy-engine.test.ts).
import { ip4ToNumber } from '../../../../src/vpcep/policy.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

/** RFC 1071 one's-complement sum of buf[off, off + len) added to `sum`, unfolded. */
export function sum16(buf: Uint8Array, off: number, len: number, sum = 0): number {
  let s = sum;
  let i = 0;
  for (; i + 1 < len; i += 2) s += (buf[off + i]! << 8) | buf[off + i + 1]!;
  if (i < len) s += buf[off + i]! << 8;
  return s;
}

export function fold(s: number): number {
  let x = s;
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000);
  return x;
}

function csum(buf: Uint8Array, off: number, len: number, sum = 0): number {
  return ~fold(sum16(buf, off, len, sum)) & 0xffff;
}

function pseudo4(p: Buffer, proto: number, l4len: number): number {
  return sum16(p, 12, 8) + proto + l4len;
}

export interface Ip4Opts {
  ttl?: number;
  id?: number;
  /** flags + fragment offset field */
  frag?: number;
  /** extra header option bytes (multiple of 4) */
  options?: number;
}

/** An IPv4 packet around `l4` (protocol `proto`) with a valid header checksum; the transport checksum is the caller's. */
export function ip4Packet(src: string, dst: string, proto: number, l4: Buffer, o: Ip4Opts = {}): Buffer {
  const ihl = 20 + (o.options ?? 0);
  const p = Buffer.alloc(ihl + l4.length);
  p[0] = 0x40 | (ihl / 4);
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(o.id ?? 0x1234, 4);
  p.writeUInt16BE(o.frag ?? 0x4000, 6);
  p[8] = o.ttl ?? 64;
  p[9] = proto;
  p.writeUInt32BE(ip4ToNumber(src), 12);
  p.writeUInt32BE(ip4ToNumber(dst), 16);
  for (let i = 20; i < ihl; i++) p[i] = 1; // NOPs
  p.writeUInt16BE(csum(p, 0, ihl), 10);
  l4.copy(p, ihl);
  return p;
}

/** UDP over IPv4 with a valid checksum (or 0 with `noCsum`). */
export function udp4(src: string, sport: number, dst: string, dport: number, payload: Buffer = Buffer.from('hello'), noCsum = false): Buffer {
  const u = Buffer.alloc(8 + payload.length);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(u.length, 4);
  payload.copy(u, 8);
  const p = ip4Packet(src, dst, 17, u);
  if (!noCsum) {
    let c = csum(p, 20, u.length, pseudo4(p, 17, u.length));
    if (c === 0) c = 0xffff;
    p.writeUInt16BE(c, 26);
  }
  return p;
}

/** TCP (20-byte header) over IPv4 with a valid checksum. */
export function tcp4(src: string, sport: number, dst: string, dport: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const t = Buffer.alloc(20 + payload.length);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(1000, 4);
  t.writeUInt32BE(flags & TCP_ACK ? 2000 : 0, 8);
  t[12] = 5 << 4;
  t[13] = flags;
  t.writeUInt16BE(65535, 14);
  payload.copy(t, 20);
  const p = ip4Packet(src, dst, 6, t);
  p.writeUInt16BE(csum(p, 20, t.length, pseudo4(p, 6, t.length)), 36);
  return p;
}

/** An ICMP error (type/code) from `src` to `dst` quoting the first `quote` bytes of `orig` (default IP header + 8). */
export function icmpError(type: number, code: number, src: string, dst: string, orig: Buffer, quote?: number): Buffer {
  const ihl = (orig[0]! & 15) * 4;
  const q = orig.subarray(0, Math.min(orig.length, quote ?? ihl + 8));
  const m = Buffer.alloc(8 + q.length);
  m[0] = type;
  m[1] = code;
  q.copy(m, 8);
  m.writeUInt16BE(csum(m, 0, m.length), 2);
  return ip4Packet(src, dst, 1, m);
}

export function icmpEcho(src: string, dst: string): Buffer {
  const m = Buffer.alloc(16);
  m[0] = 8;
  m.writeUInt16BE(csum(m, 0, m.length), 2);
  return ip4Packet(src, dst, 1, m);
}

/** A minimal IPv6 packet (no extension headers) with `proto` and, for TCP/UDP, a destination port. */
export function ip6Packet(src: Buffer, dst: Buffer, proto: number, dport = 0): Buffer {
  const p = Buffer.alloc(40 + 8);
  p[0] = 0x60;
  p.writeUInt16BE(8, 4);
  p[6] = proto;
  p[7] = 64;
  src.copy(p, 8);
  dst.copy(p, 24);
  p.writeUInt16BE(40000, 40);
  p.writeUInt16BE(dport, 42);
  return p;
}

/** True when the IPv4 header checksum and (for TCP/UDP with a checksum; ICMP) the transport checksum verify by full recompute. */
export function checksumsValid(p: Buffer): boolean {
  const ihl = (p[0]! & 15) * 4;
  if (fold(sum16(p, 0, ihl)) !== 0xffff) return false;
  const tot = p.readUInt16BE(2);
  const proto = p[9]!;
  const l4len = tot - ihl;
  if (proto === 17) {
    if (p.readUInt16BE(ihl + 6) === 0) return true;
    return fold(sum16(p, ihl, l4len, pseudo4(p, 17, l4len))) === 0xffff;
  }
  if (proto === 6) return fold(sum16(p, ihl, l4len, pseudo4(p, 6, l4len))) === 0xffff;
  if (proto === 1) {
    if (fold(sum16(p, ihl, l4len)) !== 0xffff) return false;
    // the quoted IP header, when whole
    const q = ihl + 8;
    const qihl = (p[q]! & 15) * 4;
    return q + qihl > tot || fold(sum16(p, q, qihl)) === 0xffff;
  }
  return true;
}

export interface Tuple {
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

function ntoa(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Addresses and ports of an IPv4 TCP/UDP packet (or, with `quoted`, of the datagram an ICMP error quotes). */
export function tupleOf(p: Buffer, quoted = false): Tuple {
  let o = 0;
  if (quoted) o = (p[0]! & 15) * 4 + 8;
  const ihl = (p[o]! & 15) * 4;
  return {
    src: ntoa(p.readUInt32BE(o + 12)),
    dst: ntoa(p.readUInt32BE(o + 16)),
    sport: p.readUInt16BE(o + ihl),
    dport: p.readUInt16BE(o + ihl + 2),
  };
}
