import { isIPv4, isIPv6 } from 'node:net';
import { VpnError } from './errors.js';

/** IP family as a number, the way the wire and the kernel count it. */
export type Family = 4 | 6;

/** An address in network byte order: 4 or 16 bytes. */
export interface IpAddr {
  readonly family: Family;
  readonly bytes: Buffer;
}

/** A prefix: network address (host bits zero) and length in bits. */
export interface Prefix {
  readonly family: Family;
  readonly bytes: Buffer;
  readonly len: number;
}

export function parseIp(text: string): IpAddr | null {
  if (isIPv4(text)) {
    const b = Buffer.alloc(4);
    const parts = text.split('.');
    for (let i = 0; i < 4; i++) b[i] = Number(parts[i]);
    return { family: 4, bytes: b };
  }
  if (isIPv6(text)) return { family: 6, bytes: ipv6ToBytes(text) };
  return null;
}

function ipv6ToBytes(text: string): Buffer {
  const b = Buffer.alloc(16);
  let s = text;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  // an embedded IPv4 tail (::ffff:1.2.3.4)
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  let v4: number[] | null = null;
  if (tail.includes('.')) {
    v4 = tail.split('.').map(Number);
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...new Array(8 - h.length - r.length).fill('0'), ...r];
  for (let i = 0; i < 8; i++) b.writeUInt16BE(parseInt(groups[i] ?? '0', 16), i * 2);
  if (v4) for (let i = 0; i < 4; i++) b[12 + i] = v4[i]!;
  return b;
}

export function formatIp(a: { family: Family; bytes: Buffer }): string {
  return bytesToIp(a.bytes);
}

export function bytesToIp(b: Buffer | Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new VpnError('ERR_INVALID_ARG', `bad address length ${b.length}`);
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  // compress the longest run of zero groups (RFC 5952)
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

/** Parses "10.1.0.0/16", "fd00::/64" or a bare address (a host prefix). Host bits must be zero unless `loose`. */
export function parsePrefix(text: string, loose = false): Prefix | null {
  const slash = text.indexOf('/');
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!addr) return null;
  const max = addr.family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l)) return null;
    len = Number(l);
    if (len > max) return null;
  }
  const masked = maskBytes(addr.bytes, len);
  if (!loose && !masked.equals(addr.bytes)) return null;
  return { family: addr.family, bytes: masked, len };
}

export function formatPrefix(p: Prefix): string {
  return `${bytesToIp(p.bytes)}/${p.len}`;
}

export function maskBytes(bytes: Buffer, len: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bits = len - i * 8;
    if (bits >= 8) continue;
    out[i] = bits <= 0 ? 0 : out[i]! & (0xff << (8 - bits));
  }
  return out;
}

/** Last address of a prefix (all host bits set). */
export function prefixLast(p: Prefix): Buffer {
  const out = Buffer.from(p.bytes);
  for (let i = 0; i < out.length; i++) {
    const bits = p.len - i * 8;
    if (bits >= 8) continue;
    out[i] = bits <= 0 ? 0xff : out[i]! | (0xff >> bits);
  }
  return out;
}

export function prefixContains(p: Prefix, addr: Buffer | Uint8Array): boolean {
  if (addr.length !== p.bytes.length) return false;
  const full = p.len >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== p.bytes[i]) return false;
  const rem = p.len & 7;
  if (rem === 0) return true;
  const m = (0xff << (8 - rem)) & 0xff;
  return (addr[full]! & m) === p.bytes[full];
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  return a.len <= b.len ? prefixContains(a, b.bytes) : prefixContains(b, a.bytes);
}

/** Compares two equal-length addresses as unsigned big-endian numbers. */
export function compareAddr(a: Buffer | Uint8Array, b: Buffer | Uint8Array): number {
  return Buffer.compare(a as Buffer, b as Buffer);
}

/**
 * Longest-prefix-match table (binary trie), one per family. Values are whatever the caller routes to.
 * Tested against a naive model (test/unit/common/ip.test.ts).
 */
export class PrefixTable<V> {
  private readonly roots: [TrieNode<V> | null, TrieNode<V> | null] = [null, null];
  private count = 0;

  get size(): number {
    return this.count;
  }

  insert(p: Prefix, value: V): void {
    const idx = p.family === 4 ? 0 : 1;
    let node: TrieNode<V> = this.roots[idx] ?? (this.roots[idx] = new TrieNode<V>());
    for (let i = 0; i < p.len; i++) {
      const bit = (p.bytes[i >> 3]! >> (7 - (i & 7))) & 1;
      let next: TrieNode<V> | null = node.child[bit]!;
      if (!next) next = node.child[bit] = new TrieNode<V>();
      node = next;
    }
    if (!node.has) this.count++;
    node.has = true;
    node.value = value;
  }

  remove(p: Prefix): boolean {
    const idx = p.family === 4 ? 0 : 1;
    let node = this.roots[idx];
    for (let i = 0; node && i < p.len; i++) {
      const bit = (p.bytes[i >> 3]! >> (7 - (i & 7))) & 1;
      node = node.child[bit];
    }
    if (!node || !node.has) return false;
    node.has = false;
    node.value = undefined;
    this.count--;
    return true;
  }

  /** Exact-prefix lookup. */
  get(p: Prefix): V | undefined {
    const idx = p.family === 4 ? 0 : 1;
    let node = this.roots[idx];
    for (let i = 0; node && i < p.len; i++) {
      const bit = (p.bytes[i >> 3]! >> (7 - (i & 7))) & 1;
      node = node.child[bit];
    }
    return node && node.has ? node.value : undefined;
  }

  /** Longest-prefix match for an address of `len` 4 or 16 bytes at `off` within `buf` (no allocation). */
  lookup(buf: Uint8Array, off: number, addrLen: 4 | 16): V | undefined {
    let node = this.roots[addrLen === 4 ? 0 : 1];
    let best: V | undefined;
    const bits = addrLen * 8;
    for (let i = 0; node; i++) {
      if (node.has) best = node.value;
      if (i === bits) break;
      const bit = (buf[off + (i >> 3)]! >> (7 - (i & 7))) & 1;
      node = node.child[bit];
    }
    return best;
  }
}

class TrieNode<V> {
  child: [TrieNode<V> | null, TrieNode<V> | null] = [null, null];
  has = false;
  value: V | undefined = undefined;
}
