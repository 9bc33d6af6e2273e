/**
 * Per-source back-off for failed password logins: after `maxFailures` failures within `windowMs`
 * a source address is refused without checking its password for `blockMs` (guessing passwords
 * costs the guesser time, and scrypt costs us nothing while blocked). Memory is bounded: at most
 * `maxSources` addresses are remembered, the least recently failed one is forgotten first.
 * Pure: the time comes in as an argument.
 */

export interface AuthBackoffLimits {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly blockMs: number;
  readonly maxSources: number;
}

export const DEFAULT_AUTH_BACKOFF: AuthBackoffLimits = Object.freeze({
  maxFailures: 5,
  windowMs: 60_000,
  blockMs: 60_000,
  maxSources: 10_000,
});

interface SourceRecord {
  failures: number;
  windowStartMs: number;
  blockedUntilMs: number;
}

export class AuthBackoff {
  private readonly bySource = new Map<string, SourceRecord>();

  constructor(readonly limits: AuthBackoffLimits = DEFAULT_AUTH_BACKOFF) {}

  /** True while `source` is refused without a check. */
  blocked(source: string, now: number): boolean {
    const r = this.bySource.get(source);
    return r !== undefined && now < r.blockedUntilMs;
  }

  /** Counts a failed login; returns true if the source is now blocked. */
  failure(source: string, now: number): boolean {
    let r = this.bySource.get(source);
    if (r) this.bySource.delete(source); // re-inserted last: the map's order is least recent first
    if (!r || now - r.windowStartMs >= this.limits.windowMs) r = { failures: 0, windowStartMs: now, blockedUntilMs: r?.blockedUntilMs ?? 0 };
    r.failures++;
    if (r.failures >= this.limits.maxFailures) {
      r.blockedUntilMs = now + this.limits.blockMs;
      r.failures = 0;
      r.windowStartMs = now;
    }
    this.bySource.set(source, r);
    while (this.bySource.size > this.limits.maxSources) this.bySource.delete(this.bySource.keys().next().value!);
    return now < r.blockedUntilMs;
  }

  /** A successful login clears the source's failures (not a block in force: it never gets checked). */
  success(source: string): void {
    const r = this.bySource.get(source);
    if (r && r.blockedUntilMs === 0) this.bySource.delete(source);
    else if (r) r.failures = 0;
  }

  get size(): number {
    return this.bySource.size;
  }
}
