import { fillRandomIv } from '../crypto/aead.js';
import { DropReason } from './drop-reason.js';
import type { EspSa, EspSpan } from './esp-sa.js';
import { SA_EVENT_SEQ_EXHAUSTED, SEQ_MAX } from './esp-sa.js';

/**
 * ESP tunnel-mode encapsulation, in place (RFC 4303 §2, §3.3; UDP encapsulation RFC 3948).
 *
 *   hdrOff          ivOff            off (inner packet)       off+len
 *   | SPI | Seq     | IV (ivLen)     | inner IP packet         | Padding 1,2,3… | PadLen | NextHdr | ICV |
 *   |<-- ESP_HEADER_SIZE -->|                                  |<----------- trailer ------------>|
 *
 * Outbound flow for one packet:
 *   1. refuse if the SA is past its hard lifetime or its sequence numbers are used up (2^32 − 1, or
 *      with ESN 2^64 − 1: the counter never cycles, RFC 4303 §3.3.3);
 *   2. pick the next header from the inner version nibble (4 → 4, 6 → 41);
 *   3. pad to the transform's block length with bytes 1, 2, 3, … (libipsec rejects anything else);
 *   4. write SPI, Seq (the low 32 bits with ESN) and IV in the headroom before the inner packet:
 *      AEAD IV = the 64-bit sequence number (seq-hi | seq-lo, 0 | seq without ESN: unique per SA
 *      because seq never repeats; RFC 4106 §3.1), CBC IV = random bytes (RFC 3602 §2.4: unpredictable);
 *   5. seal in place (AAD / MAC input starts at the SPI; with ESN seq-hi is authenticated but not
 *      sent, RFC 4303 §2.2.1) and report the span of the ESP packet, which is exactly the UDP payload
 *      for ESP-in-UDP (no marker; RFC 3948 §2.2).
 */

// RFC 4303 §2
export const ESP_HEADER_SIZE = 8;
export const ESP_SEQ_OFFSET = 4;
/** pad length + next header */
export const ESP_TRAILER_FIXED = 2;
/** RFC 4303 §2.6 / IANA protocol numbers */
export const NEXT_HEADER_IPV4 = 4;
export const NEXT_HEADER_IPV6 = 41;
export const NEXT_HEADER_NONE = 59;

/** Largest trailer + ICV a packet can need: padding up to 15, pad length, next header, 32-byte ICV. */
export const ESP_MAX_TAILROOM = 15 + ESP_TRAILER_FIXED + 32;
/** Largest ESP header + IV (CBC). */
export const ESP_MAX_HEADROOM = ESP_HEADER_SIZE + 16;

/** Bytes of ESP overhead around an inner packet of `len` bytes (header + IV + padding + trailer + ICV). */
export function espOverhead(sa: EspSa, len: number): number {
  const t = sa.transform;
  const padLen = (t.blockLen - ((len + ESP_TRAILER_FIXED) % t.blockLen)) % t.blockLen;
  return ESP_HEADER_SIZE + t.ivLen + padLen + ESP_TRAILER_FIXED + t.icvLen;
}

/**
 * Encapsulates the inner IP packet at buf[off, off+len) in place. `limit` is the end of the space the
 * packet may grow into (the end of its batch slot). On success returns DropReason.NONE and sets
 * span.off/len to the ESP packet; otherwise returns the reason and counts it on the SA.
 * span.event carries SA_EVENT_* bits (soft/hard lifetime crossed, sequence numbers exhausted).
 */
export function espEncap(sa: EspSa, buf: Buffer, off: number, len: number, limit: number, span: EspSpan): DropReason {
  span.event = 0;
  const t = sa.transform;
  if (sa.hardReached) return drop(sa, DropReason.EXPIRED);
  if (sa.seq >= SEQ_MAX && (!sa.esn || sa.seqHi >= SEQ_MAX)) {
    if (!sa.seqExhausted) {
      sa.seqExhausted = true;
      span.event = SA_EVENT_SEQ_EXHAUSTED;
    }
    return drop(sa, DropReason.SEQ_EXHAUSTED);
  }
  if (len < 1) return drop(sa, DropReason.BAD_INNER);
  const v = buf[off]! >> 4;
  const nextHeader = v === 4 ? NEXT_HEADER_IPV4 : v === 6 ? NEXT_HEADER_IPV6 : 0;
  if (nextHeader === 0) return drop(sa, DropReason.BAD_INNER);

  const padLen = (t.blockLen - ((len + ESP_TRAILER_FIXED) % t.blockLen)) % t.blockLen;
  const hdrOff = off - ESP_HEADER_SIZE - t.ivLen;
  const dataLen = len + padLen + ESP_TRAILER_FIXED;
  const end = off + dataLen + t.icvLen;
  if (hdrOff < 0 || end > limit || end > buf.length) return drop(sa, DropReason.NO_ROOM);

  let seq: number;
  if (sa.seq >= SEQ_MAX) {
    // only reachable with ESN: the low half wraps into the next 2^32 subspace (RFC 4303 §2.2.1)
    sa.seqHi++;
    seq = sa.seq = 0;
  } else {
    seq = ++sa.seq;
  }
  const seqHi = sa.seqHi;
  buf.writeUInt32BE(sa.spi, hdrOff);
  buf.writeUInt32BE(seq, hdrOff + ESP_SEQ_OFFSET);
  const ivOff = hdrOff + ESP_HEADER_SIZE;
  if (t.ivLen === 8) {
    buf.writeUInt32BE(seqHi, ivOff);
    buf.writeUInt32BE(seq, ivOff + 4);
  } else {
    fillRandomIv(buf, ivOff, t.ivLen);
  }
  let p = off + len;
  for (let i = 1; i <= padLen; i++) buf[p++] = i;
  buf[p++] = padLen;
  buf[p] = nextHeader;

  t.seal(buf, hdrOff, ivOff, off, dataLen, sa.esn ? seqHi : -1);
  span.off = hdrOff;
  span.len = end - hdrOff;
  span.event |= sa.count(len);
  return DropReason.NONE;
}

function drop(sa: EspSa, r: DropReason): DropReason {
  sa.drops[r]!++;
  return r;
}
