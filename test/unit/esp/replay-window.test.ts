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
