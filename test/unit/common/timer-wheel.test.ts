import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TimerWheel } from '../../../src/common/timer-wheel.js';

describe('TimerWheel', () => {
  it('fires a timer at its deadline, not before, and only once', () => {
    const w = new TimerWheel<string>({ tickMs: 100, slots: 8 });
    w.schedule('a', 1050);
    expect(w.expire(1000)).toEqual([]);
    expect(w.expire(1049)).toEqual([]);
    expect(w.expire(1050)).toEqual(['a']);
    expect(w.expire(5000)).toEqual([]);
    expect(w.size).toBe(0);
  });

  it('returns due timers earliest first and keeps later ones', () => {
    const w = new TimerWheel<number>({ tickMs: 10, slots: 4 });
    w.schedule(3, 300);
    w.schedule(1, 100);
    w.schedule(2, 200);
    w.schedule(9, 900);
    expect(w.nextDeadline()).toBe(100);
    expect(w.expire(250)).toEqual([1, 2]);
    expect(w.nextDeadline()).toBe(300);
    expect(w.expire(10_000)).toEqual([3, 9]);
    expect(w.nextDeadline()).toBe(Infinity);
  });

  it('rescheduling moves a timer and cancel removes it', () => {
    const w = new TimerWheel<string>({ tickMs: 50 });
    w.schedule('dpd', 100);
    w.schedule('dpd', 400);
    expect(w.deadline('dpd')).toBe(400);
    expect(w.expire(300)).toEqual([]);
    w.schedule('rekey', 350);
    expect(w.cancel('rekey')).toBe(true);
    expect(w.cancel('rekey')).toBe(false);
    expect(w.expire(400)).toEqual(['dpd']);
  });

  it('fires a deadline already in the past on the next expire', () => {
    const w = new TimerWheel<string>({ tickMs: 100, slots: 4, startMs: 10_000 });
    w.expire(20_000);
    w.schedule('late', 5_000);
    expect(w.nextDeadline()).toBe(5_000);
    expect(w.expire(20_000)).toEqual(['late']);
  });

  it('handles deadlines many revolutions ahead', () => {
    const w = new TimerWheel<string>({ tickMs: 10, slots: 4 });
    w.schedule('far', 1_000);
    for (let t = 0; t < 1_000; t += 7) expect(w.expire(t)).toEqual([]);
    expect(w.expire(1_000)).toEqual(['far']);
  });

  it('matches a naive model under random schedule/cancel/expire', () => {
    type Op = { k: 'sched'; id: number; d: number } | { k: 'cancel'; id: number } | { k: 'expire'; dt: number };
    const op = fc.oneof(
      fc.record({ k: fc.constant('sched' as const), id: fc.integer({ min: 0, max: 20 }), d: fc.integer({ min: -500, max: 5_000 }) }),
      fc.record({ k: fc.constant('cancel' as const), id: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ k: fc.constant('expire' as const), dt: fc.integer({ min: 0, max: 2_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 16 }), (ops: Op[], tickMs, slots) => {
        const w = new TimerWheel<number>({ tickMs, slots });
        const model = new Map<number, { d: number; seq: number }>();
        let now = 0;
        let seq = 0;
        for (const o of ops) {
          if (o.k === 'sched') {
            w.schedule(o.id, now + o.d);
            model.set(o.id, { d: now + o.d, seq: seq++ });
          } else if (o.k === 'cancel') {
            expect(w.cancel(o.id)).toBe(model.delete(o.id));
          } else {
            now += o.dt;
            const want = [...model.entries()].filter(([, v]) => v.d <= now).sort((a, b) => a[1].d - b[1].d || a[1].seq - b[1].seq).map(([id]) => id);
            for (const id of want) model.delete(id);
            expect(w.expire(now)).toEqual(want);
          }
          const min = Math.min(...[...model.values()].map((v) => v.d));
          expect(w.nextDeadline()).toBe(min);
          expect(w.size).toBe(model.size);
        }
      }),
      { numRuns: 300 },
    );
  });
});
