/**
 * Anti-replay window for ESP sequence numbers, 32-bit or 64-bit extended (RFC 4303 §3.4.3,
 * Appendix A; RFC 6479).
 *
 * A 64-bit sequence number is kept as two 32-bit halves (hi, lo); without ESN hi is always 0.
 *
 * RFC 6479 ring bitmap: the window is kept in a ring of 32-bit words; bit (S & 31) of word
 * ((S >>> 5) mod ringWords) stands for sequence number S. The ring has a power-of-two number of
 * words (≤ 2^15), so the word index depends on lo alone and stays consistent when lo wraps into
 * the next hi. When the top moves forward, only the words between the old and the new top are
 * cleared; nothing is shifted. With ringWords ≥ windowSize/32 + 1 every sequence number inside
 * [top − windowSize + 1, top] has its own bit.
 *
 * Use: `check` before the ICV (no state change), `accept` once the ICV verified (RFC 4303 §3.4.3;
 * strongSwan libipsec verify_seqno / set_authenticated_seqno). Sequence number 0 (64-bit) is never
 * valid. With ESN the receiver first infers hi from lo with `inferHi` (Appendix A2.2); the window
 * then works on the 64-bit value, across the 2^32 boundaries. Appendix A3 (resynchronising after
 * 2^32 consecutive lost packets) is not implemented: such packets fail the ICV and are dropped.
 */

// Implementation choices
export const REPLAY_WINDOW_DEFAULT = 1024;
const WORD_BITS = 32;
const WORD_SHIFT = 5;
const BIT_MASK = 31;
const TWO_32 = 4294967296;
/** words per 2^32 sequence numbers: (hi + 1, lo) lies this many words after (hi, lo) */
const WORDS_PER_HI = TWO_32 / WORD_BITS;
const U32_MAX = 0xffffffff;

export class ReplayWindow {
  /** Window size in sequence numbers (a multiple of 32). */
  readonly size: number;
  /** Low 32 bits of the highest authenticated sequence number so far (0 with topHi 0 = none yet). */
  top: number;
  /** High 32 bits of the highest authenticated sequence number (always 0 without ESN). */
  topHi: number;
  private readonly ring: Uint32Array;
  private readonly ringMask: number;

  constructor(size: number = REPLAY_WINDOW_DEFAULT) {
    if (!Number.isInteger(size) || size < WORD_BITS || size % WORD_BITS !== 0 || size > 1 << 20) {
      throw new RangeError(`replay window size must be a multiple of ${WORD_BITS} in [32, 2^20], got ${size}`);
    }
    this.size = size;
    this.top = 0;
    this.topHi = 0;
    // power-of-two ring so that the index is a mask; at least size/32 + 1 words (RFC 6479 §2)
    let words = 1;
    while (words < size / WORD_BITS + 1) words <<= 1;
    this.ring = new Uint32Array(words);
    this.ringMask = words - 1;
  }

  /**
   * RFC 4303 Appendix A2.2: the high 32 bits of the sequence number whose low 32 bits `lo` arrived,
   * chosen relative to the window [T − W + 1, T] (T = top, W = size, Bl = low 32 bits of T − W + 1):
   *   Case A, window inside one 2^32 subspace (Tl ≥ W − 1): lo ≥ Bl → Th, else Th + 1 (the sender
   *     moved on to the next subspace);
   *   Case B, window straddling a 2^32 boundary (Tl < W − 1): lo ≥ Bl → Th − 1 (a late packet
   *     from the previous subspace), else Th.
   * Returns -1 when the result is outside [0, 2^32 − 1] (before the first or past the last number):
   * the caller drops the packet as a replay.
   */
  inferHi(lo: number): number {
    const tl = this.top;
    const th = this.topHi;
    const bl = (tl - this.size + 1) >>> 0;
    if (tl >= this.size - 1) {
      if (lo >= bl) return th;
      return th === U32_MAX ? -1 : th + 1;
    }
    if (lo >= bl) return th - 1; // -1 when th is 0: nothing precedes the first subspace
    return th;
  }

  /** True when (hi, lo) is new and inside the window. Changes nothing. Without ESN hi is 0. */
  check(lo: number, hi = 0): boolean {
    const th = this.topHi;
    const tl = this.top;
    if (hi === th) {
      if (lo > tl) return true;
      if (tl - lo >= this.size) return false;
    } else if (hi > th) {
      return true;
    } else {
      // hi < th: distance in doubles (exact for every distance that can fall inside a window)
      if ((th - hi) * TWO_32 + tl - lo >= this.size) return false;
    }
    if (lo === 0 && hi === 0) return false;
    return (this.ring[(lo >>> WORD_SHIFT) & this.ringMask]! & (1 << (lo & BIT_MASK))) === 0;
  }

  /**
   * Records (hi, lo) as received. Call only after the ICV verified. Returns false (and changes
   * nothing) when it does not pass `check`, so a duplicate racing through a batch is still caught.
   */
  accept(lo: number, hi = 0): boolean {
    if (!this.check(lo, hi)) return false;
    const th = this.topHi;
    const tl = this.top;
    if (hi > th || (hi === th && lo > tl)) {
      const topWord = tl >>> WORD_SHIFT;
      // words to clear between the old and the new top, capped at the ring size
      let n = (hi - th) * WORDS_PER_HI + (lo >>> WORD_SHIFT) - topWord;
      if (n > this.ringMask + 1) n = this.ringMask + 1;
      for (let i = 1; i <= n; i++) this.ring[(topWord + i) & this.ringMask] = 0;
      this.top = lo;
      this.topHi = hi;
    }
    const w = (lo >>> WORD_SHIFT) & this.ringMask;
    this.ring[w] = this.ring[w]! | (1 << (lo & BIT_MASK));
    return true;
  }

  reset(): void {
    this.top = 0;
    this.topHi = 0;
    this.ring.fill(0);
  }
}
