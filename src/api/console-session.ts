/**
 * The web console's login sessions, kept in memory (a restart logs everyone out).
 *
 * A session is created by POST /v1/console/session with an API token or a local admin's password
 * and named by a random 32-byte id that only the browser holds, in an HttpOnly, Secure,
 * SameSite=Strict cookie (RFC 6265 §4.1.2.5/§4.1.2.6; SameSite: RFC 6265bis §5.4.7). Only the
 * SHA-256 of the id is kept here, so the map lookup is no timing oracle for ids.
 *
 * Cross-site request forgery: SameSite=Strict already keeps the cookie off requests other sites
 * start; in addition every state-changing request made with the cookie must echo the session's
 * CSRF token in `X-CSRF-Token` (a value a page of another origin cannot read), the
 * synchronizer-token pattern.
 *
 * A session ends after IDLE_TIMEOUT_MS without a request, ABSOLUTE_TIMEOUT_MS after login, on
 * logout, or when MAX_SESSIONS newer ones push it out; `onEnd` listeners (the event streams of
 * src/api/events.ts) hear of it. Pure: the time comes in as an argument.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'vpcgw_session';
export const SESSION_ID_BYTES = 32;
export const CSRF_TOKEN_BYTES = 32;
export const IDLE_TIMEOUT_MS = 30 * 60_000;
export const ABSOLUTE_TIMEOUT_MS = 12 * 3600_000;
/** Sessions kept at once; the least recently used is dropped first beyond this. */
export const MAX_SESSIONS = 1000;

export interface ConsoleSession {
  /** The SHA-256 of the id (hex): the key here, and how listeners name a session. */
  readonly key: string;
  /** Who logged in: the token's name or the admin's user name. */
  readonly user: string;
  readonly csrf: string;
  readonly createdMs: number;
  lastSeenMs: number;
}

export type SessionEndReason = 'logout' | 'expired' | 'evicted';

export interface SessionTimeouts {
  readonly idleMs: number;
  readonly absoluteMs: number;
  readonly maxSessions: number;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export class ConsoleSessions {
  /** key → session, least recently used first (re-inserted on use). */
  private readonly byKey = new Map<string, ConsoleSession>();
  private readonly endListeners = new Set<(key: string, reason: SessionEndReason) => void>();

  constructor(readonly limits: SessionTimeouts = { idleMs: IDLE_TIMEOUT_MS, absoluteMs: ABSOLUTE_TIMEOUT_MS, maxSessions: MAX_SESSIONS }) {}

  /** A new session for `user`; the id is returned this once (for the cookie) and never kept. */
  create(user: string, nowMs: number): { id: string; session: ConsoleSession } {
    const id = randomBytes(SESSION_ID_BYTES).toString('base64url');
    const session: ConsoleSession = { key: sha256(id), user, csrf: randomBytes(CSRF_TOKEN_BYTES).toString('base64url'), createdMs: nowMs, lastSeenMs: nowMs };
    this.byKey.set(session.key, session);
    while (this.byKey.size > this.limits.maxSessions) this.end(this.byKey.keys().next().value!, 'evicted');
    return { id, session };
  }

  /** The live session a cookie names, its idle timer restarted; null (and it ends) when it expired. */
  touch(id: string, nowMs: number): ConsoleSession | null {
    const s = this.peek(id, nowMs);
    if (!s) return null;
    s.lastSeenMs = nowMs;
    this.byKey.delete(s.key);
    this.byKey.set(s.key, s);
    return s;
  }

  /** The live session a cookie names, without counting this as use. */
  peek(id: string, nowMs: number): ConsoleSession | null {
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) return null;
    const key = sha256(id);
    const s = this.byKey.get(key);
    if (!s) return null;
    if (nowMs >= this.expiresAtMs(s)) {
      this.end(key, 'expired');
      return null;
    }
    return s;
  }

  /** When the session ends if it is not used again. */
  expiresAtMs(s: ConsoleSession): number {
    return Math.min(s.lastSeenMs + this.limits.idleMs, s.createdMs + this.limits.absoluteMs);
  }

  /** Logout: ends the session a cookie names; false when there was none. */
  remove(id: string): boolean {
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) return false;
    return this.end(sha256(id), 'logout');
  }

  /** Ends every session past its time (called periodically, so idle sessions' streams close on time). */
  sweep(nowMs: number): void {
    for (const s of [...this.byKey.values()]) if (nowMs >= this.expiresAtMs(s)) this.end(s.key, 'expired');
  }

  /** Is this session (by key) still live? (No expiry check: `sweep` does that.) */
  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Hears of every session that ends; returns the function that stops listening. */
  onEnd(fn: (key: string, reason: SessionEndReason) => void): () => void {
    this.endListeners.add(fn);
    return () => this.endListeners.delete(fn);
  }

  get size(): number {
    return this.byKey.size;
  }

  get listenerCount(): number {
    return this.endListeners.size;
  }

  private end(key: string, reason: SessionEndReason): boolean {
    if (!this.byKey.delete(key)) return false;
    for (const fn of [...this.endListeners]) fn(key, reason);
    return true;
  }
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(session: ConsoleSession, presented: unknown): boolean {
  if (typeof presented !== 'string') return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}
