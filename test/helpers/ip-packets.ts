// IPv4/IPv6 packets with correct checksums for the policy stage's tests and fuzz target, and
// checks that recompute checksums from scratch (no test framework here: test/fuzz-ts imports it).
import { ip4ToNumber, numberToIp4, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../../src/vpcep/policy.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export function sum16(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  let i = off;
  for (; i + 1 < off + len; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < off + len) s += b[i]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

export function ip4Bytes(text: string): Buffer {
  const n = ip4ToNumber(text);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

export interface Ip4Options {
  src: string;
  dst: string;
  proto: number;
  payload: Buffer;
  /** extra option bytes (a multiple of 4, filled with NOP 0x01 and ending in EOL) */
  options?: number;
  /** flags+fragment offset field (e.g. 0x2000 = MF, 0x0001 = offset 8) */
  frag?: number;
  id?: number;
  ttl?: number;
}

/** An IPv4 packet with a correct header checksum (the payload is taken as it is). */
export function ip4(o: Ip4Options): Buffer {
  const opt = o.options ?? 0;
  const ihl = 20 + opt;
  const b = Buffer.alloc(ihl + o.payload.length);
  b[0] = 0x40 | (ihl / 4);
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(o.id ?? 0x1234, 4);
  b.writeUInt16BE(o.frag ?? 0, 6);
  b[8] = o.ttl ?? 64;
  b[9] = o.proto;
  ip4Bytes(o.src).copy(b, 12);
  ip4Bytes(o.dst).copy(b, 16);
  for (let i = 0; i < opt; i++) b[20 + i] = i === opt - 1 ? 0 : 1;
  o.payload.copy(b, ihl);
  b.writeUInt16BE(~sum16(b, 0, ihl) & 0xffff, 10);
  return b;
}

export function pseudo(src: string, dst: string, proto: number, len: number): number {
  const s = ip4Bytes(src);
  const d = ip4Bytes(dst);
  return sum16(s, 0, 4, sum16(d, 0, 4, proto + len));
}

export interface L4Options {
  options?: number;
  frag?: number;
  /** UDP: send a zero checksum ("none", RFC 768) */
  zeroChecksum?: boolean;
}

export function udp4(src: string, sport: number, dst: string, dport: number, payload: Buffer | string = 'hello', o: L4Options = {}): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const u = Buffer.alloc(8 + p.length);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(u.length, 4);
  p.copy(u, 8);
  if (!o.zeroChecksum) u.writeUInt16BE(~sum16(u, 0, u.length, pseudo(src, dst, PROTO_UDP, u.length)) & 0xffff || 0xffff, 6);
  return ip4({ src, dst, proto: PROTO_UDP, payload: u, options: o.options, frag: o.frag });
}

export function tcp4(src: string, sport: number, dst: string, dport: number, flags: number, payload: Buffer | string = '', o: L4Options & { seq?: number; ack?: number } = {}): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const t = Buffer.alloc(20 + p.length);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(o.seq ?? 1000, 4);
  t.writeUInt32BE(o.ack ?? 0, 8);
  t[12] = 5 << 4;
  t[13] = flags;
  t.writeUInt16BE(65535, 14);
  p.copy(t, 20);
  t.writeUInt16BE(~sum16(t, 0, t.length, pseudo(src, dst, PROTO_TCP, t.length)) & 0xffff, 16);
  return ip4({ src, dst, proto: PROTO_TCP, payload: t, options: o.options, frag: o.frag });
}

/** An ICMP message (type, code) carrying `body` after the 4 unused/rest-of-header bytes. */
export function icmp4(src: string, dst: string, type: number, code: number, body: Buffer): Buffer {
  const m = Buffer.alloc(8 + body.length);
  m[0] = type;
  m[1] = code;
  body.copy(m, 8);
  m.writeUInt16BE(~sum16(m, 0, m.length) & 0xffff, 2);
  return ip4({ src, dst, proto: PROTO_ICMP, payload: m });
}

/** An ICMP error (e.g. 3/3 port unreachable) about `original`, carrying its first `keep` bytes (all by default). */
export function icmpError4(src: string, dst: string, type: number, code: number, original: Buffer, keep = original.length): Buffer {
  return icmp4(src, dst, type, code, original.subarray(0, keep));
}

export interface Tuple {
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
}

export function tupleOf(p: Uint8Array, off = 0): Tuple {
  const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  const ihl = (b[off]! & 15) * 4;
  const proto = b[off + 9]!;
  const l4 = proto === PROTO_TCP || proto === PROTO_UDP;
  return {
    src: numberToIp4(b.readUInt32BE(off + 12)),
    dst: numberToIp4(b.readUInt32BE(off + 16)),
    proto,
    sport: l4 ? b.readUInt16BE(off + ihl) : 0,
    dport: l4 ? b.readUInt16BE(off + ihl + 2) : 0,
  };
}

/** The IPv4 header checksum verifies (the sum over the header including it is 0xffff). */
export function ipChecksumOk(p: Uint8Array, off = 0): boolean {
  return sum16(p, off, (p[off]! & 15) * 4) === 0xffff;
}

/** The TCP or UDP checksum of a complete packet verifies (a UDP checksum of 0 counts as fine). */
export function l4ChecksumOk(p: Uint8Array, off = 0): boolean {
  const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  const ihl = (b[off]! & 15) * 4;
  const total = b.readUInt16BE(off + 2);
  const proto = b[off + 9]!;
  const l4len = total - ihl;
  if (proto === PROTO_UDP && b.readUInt16BE(off + ihl + 6) === 0) return true;
  const ps = sum16(b, off + 12, 8, proto + l4len);
  return sum16(b, off + ihl, l4len, ps) === 0xffff;
}

/** The ICMP checksum verifies; for an error carrying a whole packet, that packet's checksums too. */
export function icmpChecksumsOk(p: Uint8Array): boolean {
  const ihl = (p[0]! & 15) * 4;
  const total = (p[2]! << 8) | p[3]!;
  if (sum16(p, ihl, total - ihl) !== 0xffff) return false;
  const q = ihl + 8;
  if (total - q >= 20 && p[q]! >>> 4 === 4) {
    if (!ipChecksumOk(p, q)) return false;
    const inner = (p[q + 2]! << 8) | p[q + 3]!;
    if (q + inner === total) return l4ChecksumOk(p, q);
  }
  return true;
}

export function allChecksumsOk(p: Uint8Array): boolean {
  if (!ipChecksumOk(p)) return false;
  const proto = p[9]!;
  if (proto === PROTO_ICMP) return icmpChecksumsOk(p);
  return l4ChecksumOk(p);
}

