/**
 * A coarse hashed timer wheel for thousands of SA timers (one shell timer instead of a setTimeout
 * per SA per event): pure data, no clocks.
 * The shell owns the one real timer: it calls `expire(nowMs)` on each tick and acts on the ids
 * that come back; the cores never call setTimeout.
 *
 * Contract:
 * - `schedule(id, deadlineMs)` adds or moves the timer `id`; one deadline per id.
 * - `expire(nowMs)` removes and returns every id whose deadline is <= nowMs, earliest first.
 *   A timer never fires early; the wheel's granularity (`tickMs`) only bounds the work per call.
 * - Deadlines already in the past fire on the next `expire`.
 * - `nextDeadline()` is the earliest pending deadline, or Infinity when empty.
 */

// Implementation choices: 256 slots of 250 ms cover 64 s per revolution; later timers wait in
// their slot for more revolutions (each entry keeps its exact deadline).
export const DEFAULT_WHEEL_TICK_MS = 250;
export const DEFAULT_WHEEL_SLOTS = 256;

interface Entry<K> {
  id: K;
  deadlineMs: number;
  slot: number;
  seq: number;
}

export class TimerWheel<K = string> {
  readonly tickMs: number;
  private readonly slots: Set<Entry<K>>[];
  private readonly entries = new Map<K, Entry<K>>();
  /** The tick (deadline / tickMs) up to which slots have been scanned. */
  private cursorTick: number;
  private seq = 0;
  /** Cached earliest deadline; NaN when it must be recomputed. */
  private minDeadline = Infinity;

  constructor(opts: { tickMs?: number; slots?: number; startMs?: number } = {}) {
    this.tickMs = opts.tickMs ?? DEFAULT_WHEEL_TICK_MS;
    const n = opts.slots ?? DEFAULT_WHEEL_SLOTS;
    if (!(this.tickMs > 0) || !Number.isInteger(n) || n < 1) throw new RangeError('TimerWheel: tickMs > 0 and slots >= 1');
    this.slots = Array.from({ length: n }, () => new Set<Entry<K>>());
    this.cursorTick = Math.floor((opts.startMs ?? 0) / this.tickMs);
  }

  get size(): number {
    return this.entries.size;
  }

  has(id: K): boolean {
    return this.entries.has(id);
  }

  deadline(id: K): number | undefined {
    return this.entries.get(id)?.deadlineMs;
  }

  schedule(id: K, deadlineMs: number): void {
    if (Number.isNaN(deadlineMs)) throw new RangeError('TimerWheel.schedule: deadline is NaN');
    this.cancel(id);
    // a deadline behind the cursor goes into the cursor's slot, so the next expire sees it
    const tick = Math.max(this.tickOf(deadlineMs), this.cursorTick);
    const slot = this.slotOf(tick);
    const e: Entry<K> = { id, deadlineMs, slot, seq: this.seq++ };
    this.slots[slot]!.add(e);
    this.entries.set(id, e);
    if (deadlineMs < this.minDeadline) this.minDeadline = deadlineMs;
  }

  cancel(id: K): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    this.slots[e.slot]!.delete(e);
    this.entries.delete(id);
    if (e.deadlineMs <= this.minDeadline) this.minDeadline = NaN;
    return true;
  }

  expire(nowMs: number): K[] {
    const nowTick = this.tickOf(nowMs);
    const due: Entry<K>[] = [];
    const n = this.slots.length;
    // scan the slots from the cursor up to now, at most one revolution
    const steps = nowTick < this.cursorTick ? 0 : Math.min(nowTick - this.cursorTick, n - 1);
    for (let t = 0; t <= steps; t++) {
      for (const e of this.slots[this.slotOf(this.cursorTick + t)]!) if (e.deadlineMs <= nowMs) due.push(e);
    }
    if (nowTick > this.cursorTick) this.cursorTick = nowTick;
    if (due.length === 0) return [];
    for (const e of due) {
      this.slots[e.slot]!.delete(e);
      this.entries.delete(e.id);
    }
    this.minDeadline = NaN;
    due.sort((a, b) => a.deadlineMs - b.deadlineMs || a.seq - b.seq);
    return due.map((e) => e.id);
  }

  nextDeadline(): number {
    if (Number.isNaN(this.minDeadline)) {
      let m = Infinity;
      for (const e of this.entries.values()) if (e.deadlineMs < m) m = e.deadlineMs;
      this.minDeadline = m;
    }
    return this.minDeadline;
  }

  clear(): void {
    for (const s of this.slots) s.clear();
    this.entries.clear();
    this.minDeadline = Infinity;
  }

  private tickOf(ms: number): number {
    return Math.floor(ms / this.tickMs);
  }

  private slotOf(tick: number): number {
    const n = this.slots.length;
    return ((tick % n) + n) % n;
  }
}
