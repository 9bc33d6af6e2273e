import { createHmac, randomBytes } from 'node:crypto';

const FINGERPRINT_KEY = randomBytes(32);
import { VpnError } from '../common/errors.js';

/**
 * Client tokens for safe retries of POST requests (`X-Client-Token`), in the way the cloud VPN
 * APIs take a ClientToken: a client that lost the answer to a create retries with the same token
 * and the same body, and gets the first answer back instead of a second resource. The same token
 * with a different request is refused (409), since it means a client bug rather than a retry.
 *
 * Bounded: at most IDEMPOTENCY_MAX_ENTRIES tokens are remembered, each for IDEMPOTENCY_WINDOW_MS
 * after its first use; the oldest is forgotten first when the map is full. Only successful
 * (2xx) answers are kept: after a refusal or a failure the same token may be used again.
 */
export const IDEMPOTENCY_MAX_ENTRIES = 1000;
export const IDEMPOTENCY_WINDOW_MS = 10 * 60 * 1000;
/** Tokens are 1..64 printable ASCII characters (the length the cloud APIs accept). */
export const CLIENT_TOKEN_MAX_LENGTH = 64;
const CLIENT_TOKEN_RE = /^[\x21-\x7e]{1,64}$/;

/** A response as the API sends it, kept for replays. */
export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
}

interface Entry {
  readonly fingerprint: string;
  readonly expiresAtMs: number;
  readonly response: Promise<StoredResponse>;
}

export class IdempotencyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxEntries = IDEMPOTENCY_MAX_ENTRIES,
    private readonly windowMs = IDEMPOTENCY_WINDOW_MS,
    private readonly nowMs: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Runs `exec` once per (token, request): a repeat within the window waits for and returns the
   * first run's response (also while that run is still under way); `replayed` tells which.
   */
  async run(token: string, method: string, url: string, body: unknown, exec: () => Promise<StoredResponse>): Promise<{ response: StoredResponse; replayed: boolean }> {
    if (!CLIENT_TOKEN_RE.test(token)) {
      throw new VpnError('ERR_BAD_REQUEST', `X-Client-Token: expected 1 to ${CLIENT_TOKEN_MAX_LENGTH} printable ASCII characters`);
    }
    // keyed with a per-process secret: a body may hold a password, and a plain hash of it could be guessed offline
    const fingerprint = createHmac('sha256', FINGERPRINT_KEY).update(`${method} ${url}\n`).update(JSON.stringify(body ?? null)).digest('base64');
    const now = this.nowMs();
    const old = this.entries.get(token);
    if (old && old.expiresAtMs > now) {
      if (old.fingerprint !== fingerprint) throw new VpnError('ERR_CONFLICT', 'X-Client-Token was already used for a different request');
      return { response: await old.response, replayed: true };
    }
    if (old) this.entries.delete(token);
    this.evict(now);
    const response = exec();
    const entry: Entry = { fingerprint, expiresAtMs: now + this.windowMs, response };
    this.entries.set(token, entry);
    try {
      const r = await response;
      if (r.status < 200 || r.status > 299) this.forget(token, entry);
      return { response: r, replayed: false };
    } catch (err) {
      this.forget(token, entry);
      throw err;
    }
  }

  private forget(token: string, entry: Entry): void {
    if (this.entries.get(token) === entry) this.entries.delete(token);
  }

  /** Drops expired entries from the old end, then the oldest while the map is full. */
  private evict(now: number): void {
    for (const [token, e] of this.entries) {
      if (e.expiresAtMs > now && this.entries.size < this.maxEntries) break;
      this.entries.delete(token);
    }
  }
}
