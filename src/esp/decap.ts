import { DropReason } from './drop-reason.js';
import type { EspSa, EspSpan } from './esp-sa.js';
import { ESP_HEADER_SIZE, ESP_SEQ_OFFSET, ESP_TRAILER_FIXED, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE } from './encap.js';
import { innerIpLength, policyAllows } from './spd.js';

/**
 * ESP tunnel-mode decapsulation, in place (RFC 4303 §3.4).
 *
 * Inbound flow for one packet (the caller found `sa` by the SPI in the first 4 bytes):
 *   1. length sanity: header, IV, at least pad length + next header, ICV; CBC data whole blocks;
 *   2. with ESN, infer the high 32 bits of the sequence number from the window (RFC 4303 Appendix
 *      A2.2); replay pre-check on the full number (no state change) — RFC 4303 §3.4.3: before the ICV;
 *   3. verify the ICV (with ESN over seq-hi too, RFC 4303 §2.2.1) and decrypt (the transform does
 *      both, in place);
 *   4. record the sequence number in the replay window (only now);
 *   5. padding: pad length fits, bytes are 1, 2, 3, … (RFC 4303 §2.4);
 *   6. next header 4 or 41 with a matching, well-formed inner IP header (59 = dummy: drop quietly);
 *   7. policy: inner src/dst inside the SA's remote/local selectors;
 *   8. count, and report the inner packet's span (trimmed to its IP length, dropping any TFC padding).
 */
export function espDecap(sa: EspSa, buf: Buffer, off: number, len: number, span: EspSpan): DropReason {
  span.event = 0;
  const t = sa.transform;
  if (sa.hardReached) return drop(sa, DropReason.EXPIRED);
  const ivOff = off + ESP_HEADER_SIZE;
  const dataOff = ivOff + t.ivLen;
  const dataLen = len - ESP_HEADER_SIZE - t.ivLen - t.icvLen;
  if (dataLen < ESP_TRAILER_FIXED || off + len > buf.length) return drop(sa, DropReason.SHORT);
  if (dataLen % t.blockLen !== 0) return drop(sa, DropReason.MALFORMED);

  const seq = buf.readUInt32BE(off + ESP_SEQ_OFFSET);
  const replay = sa.replay!;
  let seqHi = 0;
  if (sa.esn) {
    seqHi = replay.inferHi(seq);
    if (seqHi < 0) return drop(sa, DropReason.REPLAY);
  }
  if (!replay.check(seq, seqHi)) return drop(sa, DropReason.REPLAY);
  if (!t.open(buf, off, ivOff, dataOff, dataLen, sa.esn ? seqHi : -1)) return drop(sa, DropReason.ICV);
  replay.accept(seq, seqHi);

  const end = dataOff + dataLen;
  const padLen = buf[end - 2]!;
  const nextHeader = buf[end - 1]!;
  const innerLen = dataLen - ESP_TRAILER_FIXED - padLen;
  if (innerLen < 0) return drop(sa, DropReason.BAD_PAD);
  for (let i = 1, p = end - 2 - padLen; i <= padLen; i++, p++) {
    if (buf[p] !== i) return drop(sa, DropReason.BAD_PAD);
  }
  if (nextHeader === NEXT_HEADER_NONE) return drop(sa, DropReason.DUMMY);
  const v = innerLen > 0 ? buf[dataOff]! >> 4 : 0;
  if (!((nextHeader === NEXT_HEADER_IPV4 && v === 4) || (nextHeader === NEXT_HEADER_IPV6 && v === 6))) {
    return drop(sa, DropReason.BAD_INNER);
  }
  const ipLen = innerIpLength(buf, dataOff, innerLen);
  if (ipLen < 0) return drop(sa, DropReason.BAD_INNER);
  if (!policyAllows(sa, buf, dataOff, true)) return drop(sa, DropReason.POLICY);

  span.off = dataOff;
  span.len = ipLen;
  span.event = sa.count(ipLen);
  return DropReason.NONE;
}

function drop(sa: EspSa, r: DropReason): DropReason {
  sa.drops[r]!++;
  return r;
}
