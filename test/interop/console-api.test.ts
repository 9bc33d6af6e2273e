// The web console's server side through a real `vpcgw start` (its own namespace, HTTPS on the
// namespace's 127.0.0.1:9443), driven with curl as a browser would: log in with a token (the
// session cookie with its attributes), list connections with the cookie, create a customer gateway
// with the CSRF token (refused without it), and see the change arrive on the event stream within
// 2 s. Then an admin added with `vpcgw admin add` logs in with a password, and a wrong one is 401.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, NsDaemon, seedDataDir, type Netns } from '../helpers/api.js';
import { ensureBuilt } from '../helpers/openvpn.js';
import { spawnProcess, waitFor, type ManagedProcess } from '../helpers/proc.js';
import { VPCGW_CLI } from '../helpers/vpcgw.js';

// TEST FIXTURE ONLY: not a real password.
const ADMIN_PASSWORD = 'fixture-interop-admin-pw';
const URL = 'https://127.0.0.1:9443';

let ns: Netns;
let dir = '';
let d: NsDaemon;
let sse: ManagedProcess | null = null;

beforeAll(async () => {
  await ensureBuilt();
  ns = await createNetns('con');
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-console-'));
  const dataDir = seedDataDir(dir, { name: 'con', tun: 'vgcon' });
  d = await NsDaemon.start(ns, { dataDir, label: 'vpcgw-console', timeoutMs: 30_000 });
  await d.createToken();
}, 90_000);

afterAll(async () => {
  await sse?.stop('SIGTERM', 2000);
  await d?.stop();
  await ns?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** curl in the namespace with the cookie jar; returns status, headers and body. */
async function curl(method: string, path: string, o: { body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: string; body: string; json: any }> {
  const hdrFile = join(dir, 'headers.txt');
  const args = ['-sk', '--max-time', '20', '-c', join(dir, 'jar'), '-b', join(dir, 'jar'), '-D', hdrFile, '-o', '-', '-w', '\n%{http_code}', '-X', method];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  if (o.body !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(o.body));
  args.push(`${URL}${path}`);
  const r = await ns.exec('curl', args, { allowFail: true, timeoutMs: 25_000 });
  const nl = r.stdout.lastIndexOf('\n');
  const body = r.stdout.slice(0, nl);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(r.stdout.slice(nl + 1)), headers: readFileSync(hdrFile, 'utf8'), body, json };
}

describe('web console server side through vpcgw start', () => {
  it('token login → cookie → list → create with CSRF → the change arrives on /v1/events', async () => {
    const login = await curl('POST', '/v1/console/session', { body: { token: d.token } });
    expect(login.status, login.body).toBe(200);
    expect(login.json).toMatchObject({ user: 'cli', csrf: expect.any(String), expiresAt: expect.any(String) });
    const setCookie = /^set-cookie: (.*)$/im.exec(login.headers)?.[1]?.trim() ?? '';
    expect(setCookie.split('; ').slice(1).sort()).toEqual(['HttpOnly', 'Max-Age=43200', 'Path=/', 'SameSite=Strict', 'Secure']);
    const csrf = login.json.csrf as string;

    const list = await curl('GET', '/v1/vpn-connections');
    expect(list.status, list.body).toBe(200);
    expect(list.json.items).toEqual([]);

    sse = spawnProcess('ip', ['netns', 'exec', ns.name, 'curl', '-skN', '--max-time', '60', '-b', join(dir, 'jar'), `${URL}/v1/events`], { label: 'curl events' });
    await waitFor(async () => sse!.output().includes(': connected'), { timeoutMs: 5000, intervalMs: 50, what: 'the event stream' });

    expect((await curl('POST', '/v1/customer-gateways', { body: { name: 'web-dc1', address: '192.0.2.61' } })).status).toBe(403);
    const t0 = Date.now();
    const made = await curl('POST', '/v1/customer-gateways', { body: { name: 'web-dc1', address: '192.0.2.61' }, headers: { 'x-csrf-token': csrf } });
    expect(made.status, made.body).toBe(201);
    await waitFor(async () => sse!.output().includes('{"kind":"customer-gateway","name":"web-dc1"}'), { timeoutMs: 2000, intervalMs: 25, what: 'the change event' });
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(sse.output()).toContain('event: change');

    // the console's files are open; without a built bundle / says how to build it
    const root = await curl('GET', '/');
    if (root.status === 200) expect(root.body).toContain('<');
    else expect(root.body).toContain('npm run build:console');
    expect(root.headers).toMatch(/^x-frame-options: DENY/im);

    const out = await curl('DELETE', '/v1/console/session', { headers: { 'x-csrf-token': csrf } });
    expect(out.status).toBe(204);
    expect((await curl('GET', '/v1/vpn-connections')).status).toBe(401);
  }, 60_000);

  it('vpcgw admin add (password on stdin), then a password login; a wrong password is 401', async () => {
    const add = await ns.exec('sh', ['-c', `printf '%s\\n' '${ADMIN_PASSWORD}' | ${process.execPath} ${VPCGW_CLI} admin add ops --password-stdin --control ${d.controlPath}`], { timeoutMs: 30_000 });
    expect(add.stdout).toContain('admin ops: added');
    expect((await d.cli(['admin', 'list'])).stdout).toMatch(/^ops /m);
    const bad = await curl('POST', '/v1/console/session', { body: { username: 'ops', password: 'wrong-password' } });
    expect(bad.status).toBe(401);
    expect(bad.json.error_code).toBe('ERR_UNAUTHORIZED');
    const good = await curl('POST', '/v1/console/session', { body: { username: 'ops', password: ADMIN_PASSWORD } });
    expect(good.status, good.body).toBe(200);
    expect(good.json.user).toBe('ops');
    expect((await curl('GET', '/v1/traffic/summary')).json).toMatchObject({ tunnelsUp: 0, tunnelsDown: 0, clientsOnline: 0 });
    expect(d.output()).not.toContain(ADMIN_PASSWORD);
    expect(d.output()).not.toContain(d.token);
  }, 60_000);
});
