import { PrefixTable } from '../common/ip.js';
import type { Prefix } from '../common/ip.js';
import type { EspSa } from './esp-sa.js';

/**
 * Security policy: which packets may use which SA (RFC 4301 §4.4.1, tunnel mode, selectors as
 * address prefixes; protocol/port selectors are "any" in this gateway).
 *
 * - Outbound: longest-prefix match on the inner destination picks a route (an SA's SPI or another
 *   tunnel's sink); the inner source must then lie in the SA's local selectors and the destination in
 *   its remote selectors, else the packet is dropped POLICY.
 * - Inbound: after decryption, inner src must lie in the SA's remote selectors and dst in its local
 *   selectors (libipsec drops mismatches "due to policy").
 */

// IPv4 (RFC 791) and IPv6 (RFC 8200) header offsets
export const IPV4_SRC_OFFSET = 12;
export const IPV4_DST_OFFSET = 16;
export const IPV4_MIN_HEADER = 20;
export const IPV6_SRC_OFFSET = 8;
export const IPV6_DST_OFFSET = 24;
export const IPV6_HEADER = 40;

/** True when the `addrLen`-byte address at buf[off] lies in one of `list` (no allocation). */
export function selectorsContain(list: readonly Prefix[], buf: Uint8Array, off: number, addrLen: 4 | 16): boolean {
  for (let k = 0; k < list.length; k++) {
    const p = list[k]!;
    if (p.bytes.length !== addrLen) continue;
    const full = p.len >> 3;
    let i = 0;
    for (; i < full; i++) if (buf[off + i] !== p.bytes[i]) break;
    if (i < full) continue;
    const rem = p.len & 7;
    if (rem === 0) return true;
    const m = (0xff << (8 - rem)) & 0xff;
    if ((buf[off + full]! & m) === p.bytes[full]) return true;
  }
  return false;
}

/**
 * Checks the inner IP packet at buf[off, off+len) against an SA's selectors.
 * `inbound`: src ∈ remoteTs and dst ∈ localTs; outbound: src ∈ localTs and dst ∈ remoteTs.
 * The caller has already checked the IP version and that the header fits.
 */
export function policyAllows(sa: EspSa, buf: Uint8Array, off: number, inbound: boolean): boolean {
  const v6 = buf[off]! >> 4 === 6;
  const alen = v6 ? 16 : 4;
  const src = off + (v6 ? IPV6_SRC_OFFSET : IPV4_SRC_OFFSET);
  const dst = off + (v6 ? IPV6_DST_OFFSET : IPV4_DST_OFFSET);
  const srcSel = inbound ? sa.remoteTs : sa.localTs;
  const dstSel = inbound ? sa.localTs : sa.remoteTs;
  return selectorsContain(srcSel, buf, src, alen) && selectorsContain(dstSel, buf, dst, alen);
}

/**
 * Validates an IP packet's version and header size; returns the length the IP header claims
 * (IPv4 total length, IPv6 40 + payload length), or -1 when it is not a well-formed header
 * fitting inside `len`.
 */
export function innerIpLength(buf: Uint8Array, off: number, len: number): number {
  if (len < 1) return -1;
  const v = buf[off]! >> 4;
  if (v === 4) {
    if (len < IPV4_MIN_HEADER) return -1;
    const ihl = (buf[off]! & 0x0f) * 4;
    const total = (buf[off + 2]! << 8) | buf[off + 3]!;
    if (ihl < IPV4_MIN_HEADER || total < ihl || total > len) return -1;
    return total;
  }
  if (v === 6) {
    if (len < IPV6_HEADER) return -1;
    const total = IPV6_HEADER + ((buf[off + 4]! << 8) | buf[off + 5]!);
    if (total > len) return -1;
    return total;
  }
  return -1;
}

/** What a destination prefix routes to: an outbound SA by SPI, or a sink (another tunnel type) by index. */
export class Route {
  /** outbound SPI, or -1 for a sink route */
  readonly outSpi: number;
  /** index into the owner's sink list, or -1 */
  readonly sinkIndex: number;
  constructor(outSpi: number, sinkIndex: number) {
    this.outSpi = outSpi;
    this.sinkIndex = sinkIndex;
  }
}

/** Outbound routing table: LPM on the inner destination (PrefixTable from common/ip). */
export class Spd {
  private readonly table = new PrefixTable<Route>();

  get size(): number {
    return this.table.size;
  }

  set(prefix: Prefix, route: Route): void {
    this.table.insert(prefix, route);
  }

  remove(prefix: Prefix): boolean {
    return this.table.remove(prefix);
  }

  get(prefix: Prefix): Route | undefined {
    return this.table.get(prefix);
  }

  /** LPM on the destination of the IP packet at buf[off] (version from the first nibble); no allocation. */
  lookup(buf: Uint8Array, off: number): Route | undefined {
    const v6 = buf[off]! >> 4 === 6;
    return v6 ? this.table.lookup(buf, off + IPV6_DST_OFFSET, 16) : this.table.lookup(buf, off + IPV4_DST_OFFSET, 4);
  }
}
