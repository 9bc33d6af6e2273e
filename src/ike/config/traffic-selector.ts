import { TsType } from '../wire/constants.js';
import type { TrafficSelector } from '../wire/types.js';
import { type Prefix, prefixLast, bytesToIp, compareAddr } from '../../common/ip.js';

/**
 * Traffic selectors (RFC 7296 §3.13) as address ranges, with the narrowing the responder does
 * (§2.9): the result is the intersection of what was proposed with the local policy.
 */

export function prefixToTs(p: Prefix, ipProtocol = 0, startPort = 0, endPort = 0xffff): TrafficSelector {
  return {
    tsType: p.family === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE,
    ipProtocol,
    startPort,
    endPort,
    startAddr: Buffer.from(p.bytes),
    endAddr: prefixLast(p),
  };
}

function maxBuf(a: Buffer, b: Buffer): Buffer {
  return compareAddr(a, b) >= 0 ? a : b;
}
function minBuf(a: Buffer, b: Buffer): Buffer {
  return compareAddr(a, b) <= 0 ? a : b;
}

/** Intersection of two selectors, or null when they do not overlap. */
export function tsIntersect(a: TrafficSelector, b: TrafficSelector): TrafficSelector | null {
  if (a.tsType !== b.tsType) return null;
  let proto: number;
  if (a.ipProtocol === 0) proto = b.ipProtocol;
  else if (b.ipProtocol === 0 || b.ipProtocol === a.ipProtocol) proto = a.ipProtocol;
  else return null;
  const sp = Math.max(a.startPort, b.startPort);
  const ep = Math.min(a.endPort, b.endPort);
  if (sp > ep) return null;
  const start = maxBuf(a.startAddr, b.startAddr);
  const end = minBuf(a.endAddr, b.endAddr);
  if (compareAddr(start, end) > 0) return null;
  return { tsType: a.tsType, ipProtocol: proto, startPort: sp, endPort: ep, startAddr: Buffer.from(start), endAddr: Buffer.from(end) };
}

/** Narrows `proposed` to `policy`: every non-empty pairwise intersection, deduplicated. */
export function narrow(proposed: TrafficSelector[], policy: TrafficSelector[]): TrafficSelector[] {
  const out: TrafficSelector[] = [];
  for (const p of proposed) {
    for (const q of policy) {
      const i = tsIntersect(p, q);
      if (i && !out.some((o) => tsEquals(o, i))) out.push(i);
    }
  }
  return out;
}

export function tsEquals(a: TrafficSelector, b: TrafficSelector): boolean {
  return (
    a.tsType === b.tsType && a.ipProtocol === b.ipProtocol && a.startPort === b.startPort && a.endPort === b.endPort &&
    a.startAddr.equals(b.startAddr) && a.endAddr.equals(b.endAddr)
  );
}

/** True when `inner` lies within one of `outer` (used by the initiator to check a narrowed answer). */
export function tsWithin(inner: TrafficSelector, outer: TrafficSelector[]): boolean {
  return outer.some((o) => {
    const i = tsIntersect(inner, o);
    return i !== null && tsEquals(i, inner);
  });
}

/** The smallest set of prefixes that exactly covers an address range (for routes and the SPD). */
export function tsToPrefixes(ts: TrafficSelector): Prefix[] {
  const family = ts.startAddr.length === 4 ? 4 : 6;
  const bits = ts.startAddr.length * 8;
  let cur = BigInt('0x' + ts.startAddr.toString('hex'));
  const end = BigInt('0x' + ts.endAddr.toString('hex'));
  const out: Prefix[] = [];
  while (cur <= end && out.length < 256) {
    // the largest block aligned at cur that does not pass end
    let size = 0;
    while (size < bits) {
      const blk = 1n << BigInt(size + 1);
      if (cur % blk !== 0n || cur + blk - 1n > end) break;
      size++;
    }
    const hex = cur.toString(16).padStart(bits / 4, '0');
    out.push({ family, bytes: Buffer.from(hex, 'hex'), len: bits - size });
    cur += 1n << BigInt(size);
  }
  return out;
}

export function tsToString(ts: TrafficSelector): string {
  const ps = tsToPrefixes(ts);
  const addr = ps.length === 1 ? `${bytesToIp(ps[0]!.bytes)}/${ps[0]!.len}` : `${bytesToIp(ts.startAddr)}..${bytesToIp(ts.endAddr)}`;
  const proto = ts.ipProtocol === 0 ? '' : `[${ts.ipProtocol}`;
  const ports = ts.startPort === 0 && ts.endPort === 0xffff ? '' : `${proto ? '/' : '['}${ts.startPort}-${ts.endPort}`;
  return `${addr}${proto}${ports}${proto || ports ? ']' : ''}`;
}
