/**
 * Anti-replay window for 32-bit ESP sequence numbers (RFC 4303 §3.4.3, Appendix A; RFC 6479).
 *
 * RFC 6479 ring bitmap: the window is kept in a ring of 32-bit words; bit (S & 31) of word
 * ((S >>> 5) mod ringWords) stands for sequence number S. When the top moves forward, only the words
 * between the old and the new top are cleared; nothing is shifted. With ringWords ≥ windowSize/32 + 1
 * every sequence number inside [top − windowSize + 1, top] has its own bit.
 *
 * Use: `check(seq)` before the ICV (no state change), `accept(seq)` once the ICV verified
 * (RFC 4303 §3.4.3; strongSwan libipsec verify_seqno / set_authenticated_seqno). No ESN:
 * seq 0 is never valid, and the window never wraps (the sender rekeys before 2^32 − 1).
 */

// Implementation choices
export const REPLAY_WINDOW_DEFAULT = 1024;
const WORD_BITS = 32;
const WORD_SHIFT = 5;
const BIT_MASK = 31;

export class ReplayWindow {
  /** Window size in sequence numbers (a multiple of 32). */
  readonly size: number;
  /** Highest authenticated sequence number so far (0 = none yet). */
  top: number;
  private readonly ring: Uint32Array;
  private readonly ringMask: number;

  constructor(size: number = REPLAY_WINDOW_DEFAULT) {
    if (!Number.isInteger(size) || size < WORD_BITS || size % WORD_BITS !== 0 || size > 1 << 20) {
      throw new RangeError(`replay window size must be a multiple of ${WORD_BITS} in [32, 2^20], got ${size}`);
    }
    this.size = size;
    this.top = 0;
    // power-of-two ring so that the index is a mask; at least size/32 + 1 words (RFC 6479 §2)
    let words = 1;
    while (words < size / WORD_BITS + 1) words <<= 1;
    this.ring = new Uint32Array(words);
    this.ringMask = words - 1;
  }

  /** True when `seq` is new and inside the window. Changes nothing. */
  check(seq: number): boolean {
    if (seq === 0) return false;
    const top = this.top;
    if (seq > top) return true;
    if (top - seq >= this.size) return false;
    return (this.ring[(seq >>> WORD_SHIFT) & this.ringMask]! & (1 << (seq & BIT_MASK))) === 0;
  }

  /**
   * Records `seq` as received. Call only after the ICV verified. Returns false (and changes nothing)
   * when `seq` does not pass `check`, so a duplicate racing through a batch is still caught.
   */
  accept(seq: number): boolean {
    if (!this.check(seq)) return false;
    const top = this.top;
    if (seq > top) {
      const topWord = top >>> WORD_SHIFT;
      const newWord = seq >>> WORD_SHIFT;
      let n = newWord - topWord;
      if (n > this.ringMask + 1) n = this.ringMask + 1;
      for (let i = 1; i <= n; i++) this.ring[(topWord + i) & this.ringMask] = 0;
      this.top = seq;
    }
    const w = (seq >>> WORD_SHIFT) & this.ringMask;
    this.ring[w] = this.ring[w]! | (1 << (seq & BIT_MASK));
    return true;
  }

  reset(): void {
    this.top = 0;
    this.ring.fill(0);
  }
}
