/**
 * Data-channel packet-id replay protection (OpenVPN `--replay-window 64 15`, packet_id.c).
 *
 * Accept a packet-id if it is above the highest accepted so far, or within the 64 ids below it, not seen
 * before, and it has not been "late" for longer than the time backtrack (an id becomes late when a higher
 * id is accepted; OpenVPN expires such gaps after 15 s). 0 is never valid.
 *
 * As for ESP (RFC 4303 §3.4.3): `check` runs before the AEAD tag is verified and does not change state;
 * `record` is called only once the tag has verified, so forged packets can never move the window.
 */
export const REPLAY_WINDOW_SIZE = 64;
export const REPLAY_TIME_BACKTRACK_MS = 15_000;

export const REPLAY_OK = 0;
export const REPLAY_ZERO = 1;
export const REPLAY_TOO_OLD = 2; // below the window
export const REPLAY_SEEN = 3; // a duplicate
export const REPLAY_EXPIRED = 4; // late for longer than the time backtrack

export class ReplayWindow {
  private top = 0;
  private readonly seen = new Uint8Array(REPLAY_WINDOW_SIZE);
  private readonly lateSinceMs = new Float64Array(REPLAY_WINDOW_SIZE);

  constructor(private readonly backtrackMs = REPLAY_TIME_BACKTRACK_MS) {}

  /** the highest accepted packet-id */
  get highest(): number {
    return this.top;
  }

  /** Pure check: would `id` be accepted now? Does not change the window. */
  check(id: number, nowMs: number): number {
    if (id === 0) return REPLAY_ZERO;
    if (id > this.top) return REPLAY_OK;
    const diff = this.top - id;
    if (diff >= REPLAY_WINDOW_SIZE) return REPLAY_TOO_OLD;
    const slot = id & (REPLAY_WINDOW_SIZE - 1);
    if (this.seen[slot]) return REPLAY_SEEN;
    if (this.backtrackMs > 0 && nowMs - this.lateSinceMs[slot]! > this.backtrackMs) return REPLAY_EXPIRED;
    return REPLAY_OK;
  }

  /** Records an authenticated id (call only after `check` returned REPLAY_OK and the tag verified). */
  record(id: number, nowMs: number): void {
    const mask = REPLAY_WINDOW_SIZE - 1;
    if (id > this.top) {
      const gap = id - this.top;
      if (gap >= REPLAY_WINDOW_SIZE) {
        this.seen.fill(0);
        this.lateSinceMs.fill(nowMs);
      } else {
        for (let k = this.top + 1; k < id; k++) {
          this.seen[k & mask] = 0;
          this.lateSinceMs[k & mask] = nowMs;
        }
      }
      this.top = id;
    }
    this.seen[id & mask] = 1;
  }
}
