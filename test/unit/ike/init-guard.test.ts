import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  COOKIE_PREVIOUS_SECRET_GRACE_MS, COOKIE_SECRET_LIFETIME_MS, COOKIE_SIZE, DEFAULT_INIT_LIMITS, IkeInitGuard,
} from '../../../src/ike/init-guard.js';

const T0 = 5_000_000;
const NI = Buffer.alloc(32, 7);
const SPI = Buffer.from('0102030405060708', 'hex');

function guard(limits = {}) {
  return new IkeInitGuard(limits, (n) => randomBytes(n), T0);
}

describe('IkeInitGuard', () => {
  it('defaults follow strongSwan (cookie_threshold 10, cookie_threshold_ip 3, block_threshold 5)', () => {
    expect(guard().limits).toEqual(DEFAULT_INIT_LIMITS);
    expect(DEFAULT_INIT_LIMITS).toMatchObject({ cookieThreshold: 10, cookieThresholdPerSource: 3, halfOpenPerSource: 5 });
  });

  it('counts half-open SAs per source and in total; removal of an unknown source is ignored', () => {
    const g = guard({ cookieThreshold: 3, cookieThresholdPerSource: 2, halfOpenPerSource: 2, halfOpenLimit: 4 });
    g.added('192.0.2.1');
    expect(g.cookieRequired('192.0.2.1')).toBe(false);
    g.added('192.0.2.1');
    expect(g.cookieRequired('192.0.2.1')).toBe(true);
    expect(g.cookieRequired('192.0.2.9')).toBe(false);
    expect(g.sourceBlocked('192.0.2.1')).toBe(true);
    g.added('198.51.100.1');
    expect(g.cookieRequired('192.0.2.9')).toBe(true);
    g.added('198.51.100.2');
    expect(g.atHardLimit()).toBe(true);
    expect(g.halfOpenSources).toBe(3);
    g.removed('203.0.113.1');
    expect(g.halfOpen).toBe(4);
    g.removed('192.0.2.1');
    g.removed('192.0.2.1');
    expect(g.halfOpenFrom('192.0.2.1')).toBe(0);
    expect(g.halfOpen).toBe(2);
    expect(g.atHardLimit()).toBe(false);
  });

  it('a cookie verifies for the same Ni, address and SPIi only, and is 1..64 bytes (RFC 7296 §2.6)', () => {
    const g = guard();
    const c = g.makeCookie(NI, '192.0.2.1', SPI, T0);
    expect(c.length).toBe(COOKIE_SIZE);
    expect(COOKIE_SIZE).toBeLessThanOrEqual(64);
    expect(g.checkCookie(c, NI, '192.0.2.1', SPI, T0)).toBe('valid');
    expect(g.checkCookie(null, NI, '192.0.2.1', SPI, T0)).toBe('missing');
    expect(g.checkCookie(c, NI, '192.0.2.2', SPI, T0)).toBe('invalid');
    expect(g.checkCookie(c, Buffer.alloc(32, 8), '192.0.2.1', SPI, T0)).toBe('invalid');
    expect(g.checkCookie(c, NI, '192.0.2.1', Buffer.alloc(8), T0)).toBe('invalid');
    expect(g.checkCookie(c.subarray(0, 10), NI, '192.0.2.1', SPI, T0)).toBe('invalid');
    // the same inputs give the same cookie: nothing per peer is kept
    expect(g.makeCookie(NI, '192.0.2.1', SPI, T0 + 1)).toEqual(c);
    // IPv6 sources work the same way
    const c6 = g.makeCookie(NI, '2001:db8::1', SPI, T0);
    expect(g.checkCookie(c6, NI, '2001:db8::1', SPI, T0)).toBe('valid');
  });

  it('rotates the secret: the previous one is honoured for the grace, then refused', () => {
    const g = guard();
    const old = g.makeCookie(NI, '192.0.2.1', SPI, T0);
    const rotation = T0 + COOKIE_SECRET_LIFETIME_MS;
    const fresh = g.makeCookie(NI, '192.0.2.1', SPI, rotation);
    expect(fresh.readUInt32BE(0)).toBe((old.readUInt32BE(0) + 1) >>> 0);
    expect(g.checkCookie(old, NI, '192.0.2.1', SPI, rotation + COOKIE_PREVIOUS_SECRET_GRACE_MS - 1)).toBe('valid');
    expect(g.checkCookie(old, NI, '192.0.2.1', SPI, rotation + COOKIE_PREVIOUS_SECRET_GRACE_MS)).toBe('invalid');
    expect(g.checkCookie(fresh, NI, '192.0.2.1', SPI, rotation + COOKIE_PREVIOUS_SECRET_GRACE_MS)).toBe('valid');
    // two rotations later the first secret is gone entirely
    expect(g.checkCookie(old, NI, '192.0.2.1', SPI, rotation + COOKIE_SECRET_LIFETIME_MS)).toBe('invalid');
  });
});
