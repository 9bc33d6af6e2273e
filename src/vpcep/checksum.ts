/**
 * Internet checksum arithmetic for in-place header rewriting (RFC 1071 one's complement sums, RFC 1624
 * incremental updates). A rewrite accumulates, per checksum it touches, the sum of `~old + new` over the
 * 16-bit words it changed (`delta16`, `delta32`), then applies it once with RFC 1624 eqn. 3:
 *   HC' = ~(~HC + ~m + m')
 * Accumulators are plain numbers (a translation adds a few dozen words, far below 2^32); every word changed here is 16-bit aligned
 * relative to the start of the header or message its checksum covers.
 */

/** folds a sum of 16-bit words (below 2^32: fewer than 65,537 words) to 16 bits with end-around carry */
export function csumFold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** `~old + new` for one 16-bit word */
export function delta16(oldWord: number, newWord: number): number {
  return (~oldWord & 0xffff) + (newWord & 0xffff);
}

/** `~old + new` for a 32-bit value (two 16-bit words), e.g. an IPv4 address as an unsigned number */
export function delta32(oldValue: number, newValue: number): number {
  return (~oldValue >>> 16 & 0xffff) + (~oldValue & 0xffff) + (newValue >>> 16 & 0xffff) + (newValue & 0xffff);
}

/** applies an accumulated delta to the big-endian checksum at buf[pos] (RFC 1624 eqn. 3) */
export function applyDelta(buf: Uint8Array, pos: number, acc: number): void {
  const c = (buf[pos]! << 8) | buf[pos + 1]!;
  const s = csumFold((~c & 0xffff) + acc);
  const n = ~s & 0xffff;
  buf[pos] = n >>> 8;
  buf[pos + 1] = n & 0xff;
}

/**
 * The same for a UDP checksum: 0 means "no checksum" and stays 0 (RFC 768); a computed 0 is sent as
 * 0xffff (RFC 768: "if the computed checksum is zero, it is transmitted as all ones").
 */
export function applyDeltaUdp(buf: Uint8Array, pos: number, acc: number): void {
  const c = (buf[pos]! << 8) | buf[pos + 1]!;
  if (c === 0) return;
  const s = csumFold((~c & 0xffff) + acc);
  const n = ~s & 0xffff || 0xffff;
  buf[pos] = n >>> 8;
  buf[pos + 1] = n & 0xff;
}
