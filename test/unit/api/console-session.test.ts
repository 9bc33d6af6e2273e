// The web console's login over real HTTPS (src/api/console-session.ts, src/api/server.ts): a token or
// an admin's password buys a session cookie with exactly the attributes the console relies on;
// the cookie then authenticates /v1 and /metrics like a bearer token, writes need the CSRF token,
// sessions expire (idle and absolute, on a fake clock), logout clears the cookie, failed logins are
// counted and backed off per address, and nothing secret reaches the log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ABSOLUTE_TIMEOUT_MS, IDLE_TIMEOUT_MS } from '../../../src/api/console-session.js';
import { AuthBackoff } from '../../../src/ssl/server/auth-backoff.js';
import { FAKE_TOKEN, FakeManagementService } from '../../helpers/fake-service.js';
import { CGW, startHarness, type Harness, type Res } from './harness.js';

// TEST FIXTURE ONLY: not a real password.
const ADMIN_PASSWORD = 'fixture-admin-password-42';

class ConsoleFakeService extends FakeManagementService {
  tokenLabel(token: string): string | null {
    return this.verifyToken(token) ? 'ci-token' : null;
  }

  async verifyAdminPassword(username: string, password: string): Promise<boolean> {
    return username === 'alice' && password === ADMIN_PASSWORD;
  }
}

let clock = 1_800_000_000_000;
let h: Harness;

beforeAll(async () => {
  h = await startHarness(new ConsoleFakeService(), { nowMs: () => clock, loginBackoff: new AuthBackoff({ maxFailures: 5, windowMs: 60_000, blockMs: 60_000, maxSources: 100 }) });
});
afterAll(async () => {
  await h?.close();
});

const cookieOf = (r: Res): string => {
  const sc = r.headers['set-cookie'];
  expect(sc).toHaveLength(1);
  return sc![0]!.split(';')[0]!;
};

async function login(body: unknown): Promise<{ res: Res; cookie: string; csrf: string }> {
  const res = await h.req('POST', '/v1/console/session', { token: null, body });
  expect(res.status).toBe(200);
  return { res, cookie: cookieOf(res), csrf: res.json.csrf };
}

const withCookie = (cookie: string, csrf?: string): Record<string, string> => ({ cookie, ...(csrf ? { 'x-csrf-token': csrf } : {}) });

describe('console login', () => {
  it('a token logs in: body, and the cookie with exactly Path=/, Secure, HttpOnly, SameSite=Strict, Max-Age', async () => {
    const { res, cookie } = await login({ token: FAKE_TOKEN });
    expect(res.json).toEqual({ user: 'ci-token', csrf: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), expiresAt: new Date(clock + IDLE_TIMEOUT_MS).toISOString() });
    const sc = res.headers['set-cookie']![0]!;
    const [pair, ...attrs] = sc.split('; ');
    expect(pair).toMatch(/^vpcgw_session=[A-Za-z0-9_-]{43}$/);
    expect(attrs.sort()).toEqual(['HttpOnly', `Max-Age=${ABSOLUTE_TIMEOUT_MS / 1000}`, 'Path=/', 'SameSite=Strict', 'Secure']);
    expect(cookie).toBe(pair);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('an admin password logs in; the session id and CSRF token are fresh each time', async () => {
    const a = await login({ username: 'alice', password: ADMIN_PASSWORD });
    const b = await login({ username: 'alice', password: ADMIN_PASSWORD });
    expect(a.res.json.user).toBe('alice');
    expect(a.cookie).not.toBe(b.cookie);
    expect(a.csrf).not.toBe(b.csrf);
  });

  it('a wrong token or password is 401 with the usual error body; a malformed body 400', async () => {
    for (const body of [{ token: 'vpcgw_wrong' }, { username: 'alice', password: 'nope' }, { username: 'mallory', password: ADMIN_PASSWORD }]) {
      const r = await h.req('POST', '/v1/console/session', { token: null, body, headers: { 'x-forwarded-for': '1.2.3.4' } });
      expect(r.status).toBe(401);
      expect(r.json).toEqual({ error_code: 'ERR_UNAUTHORIZED', error_msg: expect.any(String), request_id: expect.any(String) });
      expect(r.headers['set-cookie']).toBeUndefined();
    }
    const bad = await h.req('POST', '/v1/console/session', { token: null, body: { token: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.json.error_code).toBe('ERR_BAD_REQUEST');
  });

  it('GET /v1/console/session gives the same CSRF token back (a reloaded page); without a cookie 401', async () => {
    const { cookie, csrf } = await login({ token: FAKE_TOKEN });
    const r = await h.req('GET', '/v1/console/session', { token: null, headers: withCookie(cookie) });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ user: 'ci-token', csrf });
    expect((await h.req('GET', '/v1/console/session', { token: null })).status).toBe(401);
    expect((await h.req('GET', '/v1/console/session', { token: null, headers: withCookie('vpcgw_session=forged') })).status).toBe(401);
  });
});

describe('requests with the session cookie', () => {
  it('reads with the cookie alone; writes need X-CSRF-Token (403 ERR_FORBIDDEN without or with a wrong one)', async () => {
    const { cookie, csrf } = await login({ token: FAKE_TOKEN });
    const list = await h.req('GET', '/v1/customer-gateways', { token: null, headers: withCookie(cookie) });
    expect(list.status).toBe(200);
    expect((await h.req('GET', '/metrics', { token: null, headers: withCookie(cookie) })).status).toBe(200);

    const no = await h.req('POST', '/v1/customer-gateways', { token: null, body: CGW, headers: withCookie(cookie) });
    expect(no.status).toBe(403);
    expect(no.json.error_code).toBe('ERR_FORBIDDEN');
    const wrong = await h.req('POST', '/v1/customer-gateways', { token: null, body: CGW, headers: withCookie(cookie, csrf.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))) });
    expect(wrong.status).toBe(403);
    const other = await login({ token: FAKE_TOKEN }); // another session's token does not count
    expect((await h.req('POST', '/v1/customer-gateways', { token: null, body: CGW, headers: withCookie(cookie, other.csrf) })).status).toBe(403);
    expect((await h.req('DELETE', '/v1/customer-gateways/dc1', { token: null, headers: withCookie(cookie) })).status).toBe(403);

    const yes = await h.req('POST', '/v1/customer-gateways', { token: null, body: CGW, headers: withCookie(cookie, csrf) });
    expect(yes.status).toBe(201);
    expect((await h.req('DELETE', '/v1/customer-gateways/dc1', { token: null, headers: withCookie(cookie, csrf) })).status).toBe(204);
  });

  it('a bearer token works as before, with or without a cookie; a wrong bearer is 401 even with a good cookie', async () => {
    const { cookie } = await login({ token: FAKE_TOKEN });
    expect((await h.req('GET', '/v1/customer-gateways')).status).toBe(200);
    expect((await h.req('POST', '/v1/customer-gateways', { body: { ...CGW, name: 'bearer-made' } })).status).toBe(201);
    expect((await h.req('DELETE', '/v1/customer-gateways/bearer-made')).status).toBe(204);
    expect((await h.req('GET', '/v1/customer-gateways', { token: 'vpcgw_wrong', headers: withCookie(cookie) })).status).toBe(401);
  });

  it('expires after 30 min idle and 12 h after login however busy; GET session shows the moving expiry', async () => {
    const { cookie } = await login({ token: FAKE_TOKEN });
    const start = clock;
    // busy: a request every 20 minutes keeps it alive up to the absolute limit
    while (clock + 20 * 60_000 < start + ABSOLUTE_TIMEOUT_MS) {
      clock += 20 * 60_000;
      const r = await h.req('GET', '/v1/console/session', { token: null, headers: withCookie(cookie) });
      expect(r.status).toBe(200);
      expect(r.json.expiresAt).toBe(new Date(Math.min(clock + IDLE_TIMEOUT_MS, start + ABSOLUTE_TIMEOUT_MS)).toISOString());
    }
    clock = start + ABSOLUTE_TIMEOUT_MS;
    expect((await h.req('GET', '/v1/customer-gateways', { token: null, headers: withCookie(cookie) })).status).toBe(401);

    const idle = await login({ token: FAKE_TOKEN });
    clock += IDLE_TIMEOUT_MS - 1;
    expect((await h.req('GET', '/v1/customer-gateways', { token: null, headers: withCookie(idle.cookie) })).status).toBe(200);
    clock += IDLE_TIMEOUT_MS;
    const r = await h.req('GET', '/v1/customer-gateways', { token: null, headers: withCookie(idle.cookie) });
    expect(r.status).toBe(401);
    expect(r.json.error_code).toBe('ERR_UNAUTHORIZED');
  });

  it('logout (with the CSRF token) is 204, clears the cookie and ends the session', async () => {
    const { cookie, csrf } = await login({ token: FAKE_TOKEN });
    expect((await h.req('DELETE', '/v1/console/session', { token: null, headers: withCookie(cookie) })).status).toBe(403);
    const out = await h.req('DELETE', '/v1/console/session', { token: null, headers: withCookie(cookie, csrf) });
    expect(out.status).toBe(204);
    expect(out.headers['set-cookie']![0]!.split('; ').sort()).toEqual(['HttpOnly', 'Max-Age=0', 'Path=/', 'SameSite=Strict', 'Secure', 'vpcgw_session=']);
    expect((await h.req('GET', '/v1/customer-gateways', { token: null, headers: withCookie(cookie) })).status).toBe(401);
    expect((await h.req('GET', '/v1/console/session', { token: null, headers: withCookie(cookie) })).status).toBe(401);
    // a second logout of a gone session is still 204
    expect((await h.req('DELETE', '/v1/console/session', { token: null, headers: withCookie(cookie) })).status).toBe(204);
  });
});

describe('failed logins', () => {
  it('are counted and, after 5 from one address, refused with 429 and Retry-After until the block ends', async () => {
    const before = h.server.authFailures;
    for (let i = 0; i < 5; i++) expect((await h.req('POST', '/v1/console/session', { token: null, body: { username: 'alice', password: `guess-${i}` } })).status).toBe(401);
    expect(h.server.authFailures - before).toBe(5);
    const blocked = await h.req('POST', '/v1/console/session', { token: null, body: { username: 'alice', password: ADMIN_PASSWORD } });
    expect(blocked.status).toBe(429);
    expect(blocked.json.error_code).toBe('ERR_RATE_LIMITED');
    expect(blocked.headers['retry-after']).toBe('60');
    clock += 60_001;
    expect((await h.req('POST', '/v1/console/session', { token: null, body: { username: 'alice', password: ADMIN_PASSWORD } })).status).toBe(200);
  });

  it('nothing secret is logged: no token, password, session id or CSRF token', async () => {
    const { cookie, csrf } = await login({ token: FAKE_TOKEN });
    await h.req('GET', '/v1/customer-gateways', { token: null, headers: withCookie(cookie) });
    await h.req('POST', '/v1/customer-gateways', { token: null, body: CGW, headers: withCookie(cookie) });
    const text = JSON.stringify(h.lines);
    for (const secret of [FAKE_TOKEN, ADMIN_PASSWORD, 'guess-0', cookie.split('=')[1]!, csrf]) expect(text).not.toContain(secret);
    expect(text).toContain('console login');
  });
});
