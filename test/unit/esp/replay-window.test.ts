import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReplayWindow } from '../../../src/esp/replay-window.js';

/** The obvious model: a set of accepted numbers and the highest one. */
class NaiveWindow {
  readonly seen = new Set<number>();
  top = 0;
  constructor(readonly size: number) {}
  check(s: number): boolean {
    if (s === 0 || this.seen.has(s)) return false;
    return s > this.top || this.top - s < this.size;
  }
  accept(s: number): boolean {
    if (!this.check(s)) return false;
    this.seen.add(s);
    if (s > this.top) this.top = s;
    return true;
  }
}

describe('ReplayWindow (RFC 6479 ring)', () => {
  it('accepts in-order, rejects duplicates, zero and too-old numbers', () => {
    const w = new ReplayWindow(64);
    expect(w.check(0)).toBe(false);
    for (let s = 1; s <= 200; s++) expect(w.accept(s)).toBe(true);
    expect(w.check(200)).toBe(false);
    expect(w.check(137)).toBe(false); // inside the window, already seen
    expect(w.check(136)).toBe(false); // 200 - 136 = 64: just outside
    expect(w.check(201)).toBe(true);
  });

  it('accepts late packets within the window exactly once', () => {
    const w = new ReplayWindow(1024);
    expect(w.accept(5000)).toBe(true);
    expect(w.check(5000 - 1023)).toBe(true);
    expect(w.check(5000 - 1024)).toBe(false);
    expect(w.accept(4500)).toBe(true);
    expect(w.accept(4500)).toBe(false);
  });

  it('check does not change state: only accept records', () => {
    const w = new ReplayWindow(32);
    expect(w.check(10)).toBe(true);
    expect(w.check(10)).toBe(true);
    expect(w.top).toBe(0);
    w.accept(10);
    expect(w.check(10)).toBe(false);
  });

  it('clears stale bits when the top jumps by more than the ring', () => {
    const w = new ReplayWindow(32);
    w.accept(1);
    w.accept(2);
    w.accept(1_000_000 + 2); // far jump
    expect(w.check(1_000_000 + 1)).toBe(true); // same ring slot as 1/2 epochs ago: must not look "seen"
    expect(w.check(1_000_000 - 29 + 2)).toBe(true);
  });

  it('handles sequence numbers up to 2^32 - 1', () => {
    const w = new ReplayWindow(128);
    expect(w.accept(0xffffffff)).toBe(true);
    expect(w.accept(0xffffffff)).toBe(false);
    expect(w.accept(0xffffffff - 127)).toBe(true);
    expect(w.check(0xffffffff - 128)).toBe(false);
  });

  it('rejects sizes that are not multiples of 32', () => {
    expect(() => new ReplayWindow(100)).toThrow(RangeError);
    expect(() => new ReplayWindow(0)).toThrow(RangeError);
  });

  it('matches the naive model on random traffic (property)', () => {
    const sizes = fc.constantFrom(32, 64, 96, 1024);
    // numbers cluster around the current top (scaled to the window size), with forward jumps of a few
    // windows (so ring slots get reused across epochs), exact repeats and arbitrary 32-bit values
    const op = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant<'near'>('near'), d: fc.integer({ min: -2048, max: 1024 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant<'jump'>('jump'), d: fc.integer({ min: 1, max: 6000 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant<'abs'>('abs'), d: fc.integer({ min: 0, max: 0xffffffff }) }) },
    );
    fc.assert(
      fc.property(sizes, fc.array(op, { minLength: 50, maxLength: 400, size: 'max' }), fc.array(fc.boolean(), { minLength: 400, maxLength: 400 }), (size, ops, icvOk) => {
        const real = new ReplayWindow(size);
        const model = new NaiveWindow(size);
        const clamp = (x: number): number => Math.max(0, Math.min(0xffffffff, x));
        ops.forEach((o, i) => {
          let s: number;
          if (o.kind === 'abs') s = o.d;
          else if (o.kind === 'jump') s = clamp(model.top + Math.trunc((o.d * size) / 1024));
          else s = clamp(model.top + Math.trunc((o.d * size) / 1024));
          expect(real.check(s)).toBe(model.check(s));
          // a packet whose ICV fails is checked but never accepted
          if (icvOk[i] ?? true) expect(real.accept(s)).toBe(model.accept(s));
          expect(real.top).toBe(model.top);
        });
      }),
      { numRuns: 100 },
    );
  });
});

/** The naive model over 64 bits (as doubles: exact for every value these tests use, < 2^53). */
const TWO_32 = 2 ** 32;

describe('ReplayWindow with extended sequence numbers (RFC 4303 Appendix A2.2)', () => {
  it('Case A (window inside one subspace): lo ≥ Bl → Th, lo < Bl → Th + 1', () => {
    const w = new ReplayWindow(64);
    w.accept(1000, 3);
    // Bl = 1000 - 64 + 1 = 937
    expect(w.inferHi(937)).toBe(3);
    expect(w.inferHi(1000)).toBe(3);
    expect(w.inferHi(0xffffffff)).toBe(3);
    expect(w.inferHi(936)).toBe(4);
    expect(w.inferHi(0)).toBe(4);
  });

  it('Case B (window straddling 2^32): lo ≥ Bl → Th − 1 (late packet of the previous epoch), lo < Bl → Th', () => {
    const w = new ReplayWindow(64);
    w.accept(0xfffffff0, 6);
    w.accept(10, 7); // the sender wrapped: top (7, 10); Bl = 10 - 63 mod 2^32 = 0xffffffcb
    expect(w.inferHi(0xffffffcb)).toBe(6);
    expect(w.inferHi(0xfffffff5)).toBe(6);
    expect(w.inferHi(0xffffffca)).toBe(7);
    expect(w.inferHi(11)).toBe(7);
    expect(w.inferHi(5)).toBe(7);
  });

  it('Tl = W − 1 exactly is Case A (Bl = 0)', () => {
    const w = new ReplayWindow(32);
    w.accept(31, 2);
    expect(w.inferHi(0)).toBe(2);
    expect(w.inferHi(31)).toBe(2);
  });

  it('out of range epochs give -1: before the first subspace, past the last one', () => {
    const fresh = new ReplayWindow(64);
    expect(fresh.inferHi(0xfffffff0)).toBe(-1); // Case B with Th = 0: "Th − 1" does not exist
    expect(fresh.inferHi(5)).toBe(0);
    const last = new ReplayWindow(64);
    last.accept(0x80000000, 0xffffffff);
    expect(last.inferHi(5)).toBe(-1); // Th + 1 would be 2^32
    expect(last.inferHi(0x80000001)).toBe(0xffffffff);
  });

  it('the window slides across 2^32: late packets of the previous epoch pass once, older ones are dropped', () => {
    const w = new ReplayWindow(64);
    for (let lo = 0xffffffe0; lo <= 0xffffffff; lo += 2) expect(w.accept(lo >>> 0, 0)).toBe(true);
    expect(w.accept(3, 1)).toBe(true);
    expect(w.top).toBe(3);
    expect(w.topHi).toBe(1);
    // odd numbers of the old epoch still inside [top − 63, top] were never received
    for (let lo = 0xffffffe1; lo <= 0xffffffff; lo += 2) {
      const hi = w.inferHi(lo >>> 0);
      expect(hi).toBe(0);
      const inside = TWO_32 + 3 - (lo + 0) < 64;
      expect(w.check(lo >>> 0, hi)).toBe(inside);
      if (inside) {
        expect(w.accept(lo >>> 0, hi)).toBe(true);
        expect(w.check(lo >>> 0, hi)).toBe(false);
      }
    }
    // even ones were received already
    expect(w.check(0xfffffffe, 0)).toBe(false);
    expect(w.check(0, 1)).toBe(true); // (1, 0) = 2^32 is a valid ESN number, not yet seen
    expect(w.check(3, 1)).toBe(false);
    expect(w.check(0, 0)).toBe(false);
  });

  it('a jump by whole epochs clears the ring', () => {
    const w = new ReplayWindow(64);
    for (let i = 1; i <= 64; i++) w.accept(i, 0);
    expect(w.accept(64, 2)).toBe(true);
    for (let i = 1; i < 64; i++) expect(w.check(i, 2)).toBe(true); // stale bits of (0, i) are gone
    expect(w.check(64, 0)).toBe(false); // far left of the window
  });

  it('matches a 64-bit naive model on random traffic around the 2^32 boundaries (property)', () => {
    const sizes = fc.constantFrom(32, 64, 1024);
    const ops = fc.array(fc.integer({ min: -1500, max: 700 }), { minLength: 50, maxLength: 300 });
    fc.assert(
      fc.property(sizes, fc.integer({ min: 0, max: 3 }), ops, fc.array(fc.boolean(), { minLength: 300, maxLength: 300 }), (size, epoch, deltas, icvOk) => {
        const real = new ReplayWindow(size);
        const seen = new Set<number>();
        let top = 0;
        // start just below a 2^32 boundary so that the traffic straddles it
        const start = epoch * TWO_32 + TWO_32 - 200;
        real.accept(start % TWO_32, Math.floor(start / TWO_32));
        seen.add(start);
        top = start;
        deltas.forEach((d, i) => {
          const s = Math.max(1, top + Math.trunc((d * size) / 1024));
          const lo = s % TWO_32;
          const hi = real.inferHi(lo);
          if (s <= top - size) {
            // left of the window: A2.2 yields another epoch, so the ICV (over seq-hi) would fail;
            // whatever check says, nothing is accepted
            expect(hi < 0 ? -1 : hi * TWO_32 + lo).not.toBe(s);
            return;
          }
          // the sender's true number is s; the receiver only sees lo and infers hi (A2.2). Within the
          // window or ahead of it by less than 2^32 − W, the inference recovers s exactly.
          expect(hi * TWO_32 + lo).toBe(s);
          const ok = !seen.has(s);
          expect(real.check(lo, hi)).toBe(ok);
          if (icvOk[i] ?? true) {
            expect(real.accept(lo, hi)).toBe(ok);
            if (ok) {
              seen.add(s);
              if (s > top) top = s;
            }
          }
          expect(real.topHi * TWO_32 + real.top).toBe(top);
        });
      }),
      { numRuns: 100 },
    );
  });
});
