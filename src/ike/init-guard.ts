import { createHmac, timingSafeEqual } from 'node:crypto';
import { parseIp } from '../common/ip.js';

/**
 * Responder admission control for IKE_SA_INIT requests (RFC 7296 §2.6, RFC 8019): stateless
 * COOKIEs, half-open counts per source address and in total, and the hard limit beyond which a
 * request is dropped before any crypto. Pure: time comes in as `now` (ms), randomness is injected.
 *
 * The order the manager applies them in (src/ike/ike-manager.ts, receive/respondInit), cheapest first:
 *   1. no configured peer for the source            → drop, rate-limited log (no decode beyond the header)
 *   2. half-open total at the hard limit             → drop (no decode, no crypto)
 *   3. cookie required (total or per-source count)   → without a valid N(COOKIE): answer only N(COOKIE), keep nothing
 *   4. half-open count of the source at its limit    → drop
 *   5. proposal choice, then an IkeSa and its DH     → only now is any per-peer state or DH work spent
 * strongSwan's receiver also checks the cookie before its per-peer block threshold, so a
 * flood that never echoes cookies from a customer gateway's address cannot use up that address's
 * share of half-open SAs and lock the real gateway out.
 */

// ---- implementation choices ----
/** The cookie secret is replaced this often. */
export const COOKIE_SECRET_LIFETIME_MS = 60_000;
/**
 * After a rotation, cookies made with the previous secret are still accepted this long: an
 * initiator that got a cookie just before the rotation retries within a round trip or two.
 */
export const COOKIE_PREVIOUS_SECRET_GRACE_MS = 10_000;
const COOKIE_SECRET_SIZE = 32;
/** Cookie = 4-byte secret version | HMAC-SHA-256: 36 bytes, within RFC 7296 §2.6's 1..64. */
const COOKIE_VERSION_SIZE = 4;
const COOKIE_MAC_SIZE = 32;
export const COOKIE_SIZE = COOKIE_VERSION_SIZE + COOKIE_MAC_SIZE;

/**
 * Thresholds; the defaults follow strongSwan's charon settings of the same meaning
 * (cookie_threshold 10, cookie_threshold_ip 3, block_threshold 5, half_open_timeout 30 s), plus a
 * hard total (strongSwan's init_limit_half_open, which it leaves unlimited by default).
 */
export interface InitLimits {
  /** half-open SAs in total from which every new IKE_SA_INIT must carry a valid COOKIE */
  readonly cookieThreshold: number;
  /** half-open SAs from one source address from which that source must send a valid COOKIE */
  readonly cookieThresholdPerSource: number;
  /** half-open SAs one source address may hold; further requests from it are dropped */
  readonly halfOpenPerSource: number;
  /** half-open SAs in total; further requests are dropped before any parsing beyond the header or crypto */
  readonly halfOpenLimit: number;
}

export const DEFAULT_INIT_LIMITS: InitLimits = Object.freeze({
  cookieThreshold: 10,
  cookieThresholdPerSource: 3,
  halfOpenPerSource: 5,
  halfOpenLimit: 1000,
});

export const DEFAULT_HALF_OPEN_TIMEOUT_SEC = 30;

export type CookieCheck = 'valid' | 'missing' | 'invalid';

interface CookieSecret {
  version: number;
  key: Buffer;
}

export class IkeInitGuard {
  readonly limits: InitLimits;
  private readonly random: (n: number) => Buffer;
  private current: CookieSecret;
  private previous: CookieSecret | null = null;
  private rotatedAtMs: number;
  private total = 0;
  private readonly bySource = new Map<string, number>();

  constructor(limits: Partial<InitLimits>, random: (n: number) => Buffer, now: number) {
    this.limits = Object.freeze({ ...DEFAULT_INIT_LIMITS, ...limits });
    this.random = random;
    this.current = { version: random(4).readUInt32BE(0), key: Buffer.from(random(COOKIE_SECRET_SIZE)) };
    this.rotatedAtMs = now;
  }

  /** Half-open SAs in total. */
  get halfOpen(): number {
    return this.total;
  }

  /** Source addresses holding at least one half-open SA. */
  get halfOpenSources(): number {
    return this.bySource.size;
  }

  halfOpenFrom(address: string): number {
    return this.bySource.get(address) ?? 0;
  }

  /** Step 2: the hard limit is reached; the request is dropped before anything else is spent on it. */
  atHardLimit(): boolean {
    return this.total >= this.limits.halfOpenLimit;
  }

  /** Step 3: a request from `address` must carry a valid COOKIE. */
  cookieRequired(address: string): boolean {
    return this.total >= this.limits.cookieThreshold || this.halfOpenFrom(address) >= this.limits.cookieThresholdPerSource;
  }

  /** Step 4: the source holds as many half-open SAs as it may. */
  sourceBlocked(address: string): boolean {
    return this.halfOpenFrom(address) >= this.limits.halfOpenPerSource;
  }

  /** The responder started a half-open SA for `address` (after every check passed). */
  added(address: string): void {
    this.total++;
    this.bySource.set(address, (this.bySource.get(address) ?? 0) + 1);
  }

  /** A half-open SA of `address` was established, failed or timed out. */
  removed(address: string): void {
    const n = this.bySource.get(address);
    if (n === undefined) return;
    this.total--;
    if (n <= 1) this.bySource.delete(address);
    else this.bySource.set(address, n - 1);
  }

  /**
   * RFC 7296 §2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>), here with the
   * secret as the key of an HMAC. Nothing about the peer is stored.
   */
  makeCookie(nonceI: Buffer, address: string, spiI: Buffer, now: number): Buffer {
    this.rotate(now);
    const out = Buffer.alloc(COOKIE_SIZE);
    out.writeUInt32BE(this.current.version, 0);
    mac(this.current.key, nonceI, address, spiI).copy(out, COOKIE_VERSION_SIZE);
    return out;
  }

  /**
   * Checks a COOKIE the initiator echoed. A cookie of the previous secret is accepted only within
   * COOKIE_PREVIOUS_SECRET_GRACE_MS of the rotation; anything older no longer matches a version we hold.
   */
  checkCookie(cookie: Buffer | null, nonceI: Buffer, address: string, spiI: Buffer, now: number): CookieCheck {
    if (!cookie) return 'missing';
    this.rotate(now);
    if (cookie.length !== COOKIE_SIZE) return 'invalid';
    const version = cookie.readUInt32BE(0);
    let secret: CookieSecret | null = null;
    if (version === this.current.version) secret = this.current;
    else if (this.previous && version === this.previous.version && now < this.rotatedAtMs + COOKIE_PREVIOUS_SECRET_GRACE_MS) secret = this.previous;
    if (!secret) return 'invalid';
    return timingSafeEqual(mac(secret.key, nonceI, address, spiI), cookie.subarray(COOKIE_VERSION_SIZE)) ? 'valid' : 'invalid';
  }

  /** Replaces the secret once it has served COOKIE_SECRET_LIFETIME_MS (the previous one is kept for the grace). */
  private rotate(now: number): void {
    if (now < this.rotatedAtMs + COOKIE_SECRET_LIFETIME_MS) return;
    this.previous = this.current;
    this.current = { version: (this.current.version + 1) >>> 0, key: Buffer.from(this.random(COOKIE_SECRET_SIZE)) };
    this.rotatedAtMs = now;
  }
}

function mac(key: Buffer, nonceI: Buffer, address: string, spiI: Buffer): Buffer {
  const h = createHmac('sha256', key);
  h.update(nonceI);
  const ip = parseIp(address);
  h.update(ip ? ip.bytes : Buffer.from(address, 'utf8'));
  h.update(spiI);
  return h.digest();
}
