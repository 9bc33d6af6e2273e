import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ReplayWindow,
  REPLAY_EXPIRED,
  REPLAY_OK,
  REPLAY_SEEN,
  REPLAY_TOO_OLD,
  REPLAY_ZERO,
} from '../../../../src/ssl/data/replay-window.js';

const accept = (w: ReplayWindow, id: number, now = 0) => {
  const r = w.check(id, now);
  if (r === REPLAY_OK) w.record(id, now);
  return r;
};

describe('ReplayWindow (64 packets, 15 s backtrack)', () => {
  it('accepts increasing ids, rejects 0 and duplicates', () => {
    const w = new ReplayWindow();
    expect(accept(w, 0)).toBe(REPLAY_ZERO);
    expect(accept(w, 1)).toBe(REPLAY_OK);
    expect(accept(w, 2)).toBe(REPLAY_OK);
    expect(accept(w, 2)).toBe(REPLAY_SEEN);
    expect(accept(w, 1)).toBe(REPLAY_SEEN);
  });

  it('accepts gaps once within 64, rejects below the window', () => {
    const w = new ReplayWindow();
    expect(accept(w, 100)).toBe(REPLAY_OK);
    expect(accept(w, 37)).toBe(REPLAY_OK); // 100-63
    expect(accept(w, 37)).toBe(REPLAY_SEEN);
    expect(accept(w, 36)).toBe(REPLAY_TOO_OLD);
    expect(accept(w, 99)).toBe(REPLAY_OK);
  });

  it('check alone does not move the window (forged packets)', () => {
    const w = new ReplayWindow();
    accept(w, 5);
    expect(w.check(1000, 0)).toBe(REPLAY_OK);
    expect(w.highest).toBe(5);
    expect(accept(w, 4)).toBe(REPLAY_OK);
  });

  it('a late packet is refused once it has been late for more than the time backtrack', () => {
    const w = new ReplayWindow(15_000);
    accept(w, 10, 0);
    expect(w.check(9, 15_000)).toBe(REPLAY_OK);
    expect(w.check(9, 15_001)).toBe(REPLAY_EXPIRED);
    accept(w, 12, 20_000); // 11 becomes late at 20 s
    expect(w.check(11, 30_000)).toBe(REPLAY_OK);
    expect(w.check(9, 30_000)).toBe(REPLAY_EXPIRED);
  });

  it('matches a naive model on random sequences', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 300 }), (ids) => {
        const w = new ReplayWindow(0);
        const seen = new Set<number>();
        let top = 0;
        for (const id of ids) {
          const want = id !== 0 && !seen.has(id) && (id > top || top - id < 64);
          const got = accept(w, id) === REPLAY_OK;
          if (got !== want) return false;
          if (got) {
            seen.add(id);
            top = Math.max(top, id);
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
