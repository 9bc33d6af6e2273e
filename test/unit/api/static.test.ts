// The web console's files at / of the API listener (src/api/static.ts): index.html for / and for
// client-side routes, the bundle's files with their types, the security headers on each, no
// token needed, nothing outside the folder, /v1 and /metrics untouched, and a clear 404 when the
// bundle has not been built. A small fixture folder stands in for dist/console.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_SECURITY_HEADERS } from '../../../src/api/static.js';
import { FakeManagementService } from '../../helpers/fake-service.js';
import { startHarness, type Harness, type Res } from './harness.js';

const INDEX = '<!doctype html><title>vpcgw</title><script type="module" src="/app.js"></script>';
let dir = '';
let h: Harness;
let bare: Harness;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-console-'));
  const bundle = join(dir, 'console');
  mkdirSync(join(bundle, 'assets'), { recursive: true });
  writeFileSync(join(bundle, 'index.html'), INDEX);
  writeFileSync(join(bundle, 'app.js'), 'console.log("app")');
  writeFileSync(join(bundle, 'app.css'), 'body{margin:0}');
  writeFileSync(join(bundle, 'assets', 'uPlot.min.css'), '.uplot{}');
  writeFileSync(join(dir, 'secret.txt'), 'outside');
  symlinkSync(join(dir, 'secret.txt'), join(bundle, 'link.txt'));
  h = await startHarness(new FakeManagementService(), { consoleDir: bundle });
  bare = await startHarness(new FakeManagementService(), { consoleDir: join(dir, 'not-built') });
});
afterAll(async () => {
  await h?.close();
  await bare?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function expectSecurityHeaders(r: Res): void {
  for (const [k, v] of Object.entries(CONSOLE_SECURITY_HEADERS)) expect(r.headers[k], k).toBe(v);
}

describe('console files', () => {
  it('/ and client-side routes (no dot) get index.html, without a token, with CSP, nosniff and DENY', async () => {
    for (const path of ['/', '/connections', '/connections/dc1', '/vpn-servers/p2c/clients']) {
      const r = await h.req('GET', path, { token: null });
      expect(r.status, path).toBe(200);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.text).toBe(INDEX);
      expectSecurityHeaders(r);
    }
    expect(CONSOLE_SECURITY_HEADERS['content-security-policy']).toBe("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'");
  });

  it('files of the bundle with their media types; HEAD works', async () => {
    const js = await h.req('GET', '/app.js', { token: null });
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.text).toBe('console.log("app")');
    expectSecurityHeaders(js);
    expect((await h.req('GET', '/app.css', { token: null })).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await h.req('GET', '/assets/uPlot.min.css', { token: null })).text).toBe('.uplot{}');
    const head = await h.req('HEAD', '/app.js', { token: null });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('a missing file (a dot in its name) is 404; nothing outside the folder is served', async () => {
    const r = await h.req('GET', '/nope.js', { token: null });
    expect(r.status).toBe(404);
    expectSecurityHeaders(r);
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/link.txt', '/a%00.js']) {
      const x = await h.req('GET', path, { token: null });
      expect(x.status, path).toBe(404);
      expect(x.text).not.toContain('outside');
    }
  });

  it('/v1 and /metrics are the API as before: 401 without a token, JSON 404 for an unknown /v1 path', async () => {
    expect((await h.req('GET', '/v1/customer-gateways', { token: null })).status).toBe(401);
    expect((await h.req('GET', '/metrics', { token: null })).status).toBe(401);
    expect((await h.req('GET', '/v1/no-such-thing', { token: null })).status).toBe(401);
    const r = await h.req('GET', '/v1/no-such-thing');
    expect(r.status).toBe(404);
    expect(r.json.error_code).toBe('ERR_NOT_FOUND');
    expect((await h.req('GET', '/healthz', { token: null })).json).toEqual({ status: 'ok' });
    // other methods on console paths still need a token, then are 404
    expect((await h.req('POST', '/connections', { token: null, body: {} })).status).toBe(401);
    expect((await h.req('POST', '/connections', { body: {} })).status).toBe(404);
  });

  it('without the bundle the daemon still answers: / is 404 saying to run npm run build:console', async () => {
    for (const path of ['/', '/connections/dc1', '/app.js']) {
      const r = await bare.req('GET', path, { token: null });
      expect(r.status, path).toBe(404);
      expect(r.text).toContain('npm run build:console');
      expectSecurityHeaders(r);
    }
    expect((await bare.req('GET', '/v1/customer-gateways')).status).toBe(200);
  });
});
