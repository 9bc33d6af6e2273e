// The web console's live data over real HTTPS, against the real service and store (the running
// daemon is a fake whose status the test sets): the event stream (a change within 2 s of an API
// create, keepalives, the 503 beyond the stream limit, closed at logout, no listener left behind),
// traffic history and summary, the connection detail fields, regenerate-psk, and that no view of
// any kind ever returns a secret.
import { request } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { GatewayService } from '../../../src/gateway/service.js';
import type { GatewayStatus } from '../../../src/gateway/status.js';
import { hashPassword } from '../../../src/gateway/users.js';
import { Store } from '../../../src/store/store.js';
import type { FakeManagementService } from '../../helpers/fake-service.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';
import { makeTestPki } from '../../helpers/pki.js';
import { startHarness, testCertificate, type Harness } from './harness.js';

// TEST FIXTURES ONLY: not real secrets.
const PSK = 'test-fixture-console-psk-0123';
const USER_PASSWORD = 'fixture-vpn-user-password';
const ADMIN_PASSWORD = 'fixture-console-admin-password';

/** A running gateway whose status the test writes. */
class StatusGateway extends FakeGateway {
  next: ((base: GatewayStatus) => GatewayStatus) | null = null;
  override status(): GatewayStatus {
    const base = super.status();
    return this.next ? this.next(base) : base;
  }
}

let dir = '';
let store: Store;
let svc: GatewayService;
let gw: StatusGateway;
let h: Harness;
let token = '';
let serverKeyPem = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-console-live-'));
  const pki = makeTestPki();
  writeFileSync(join(dir, 'ca.crt'), pki.ca.cert);
  writeFileSync(join(dir, 'server.crt'), pki.server.cert);
  writeFileSync(join(dir, 'server.key'), pki.server.key, { mode: 0o600 });
  serverKeyPem = pki.server.key;
  store = Store.open(join(dir, 'vpcgw.db'));
  svc = new GatewayService({ store, baseDir: dir, log: silentLogger, source: 'console-live' });
  await svc.applyDocument({ gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], endpoints: { subnet: '10.2.100.0/24' } } }, dir);
  gw = new StatusGateway(svc.config());
  svc.attach(gw);
  token = svc.createToken('console-test').token;
  await svc.addAdmin('root', ADMIN_PASSWORD);
  h = await startHarness(svc as unknown as FakeManagementService, { eventLimits: { maxStreams: 3, keepaliveMs: 300 } });
}, 60_000);

afterAll(async () => {
  await h?.close();
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Stream {
  status: number;
  headers: Record<string, unknown>;
  text(): string;
  changes(): { kind: string; name: string }[];
  waitFor(pred: (s: string) => boolean, ms?: number): Promise<void>;
  ended: Promise<void>;
  close(): void;
}

function openStream(headers: Record<string, string>): Promise<Stream> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let endedResolve: () => void = () => undefined;
    const ended = new Promise<void>((r) => (endedResolve = r));
    const waiters: (() => void)[] = [];
    const r = request({ host: '127.0.0.1', port: h.server.port, path: '/v1/events', headers, ca: testCertificate().cert, servername: 'localhost', agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        for (const w of waiters.splice(0)) w();
      });
      res.on('end', endedResolve);
      res.on('close', endedResolve);
      resolve({
        status: res.statusCode!,
        headers: res.headers,
        text: () => buf,
        changes: () => [...buf.matchAll(/event: change\ndata: (.*)\n\n/g)].map((m) => JSON.parse(m[1]!)),
        waitFor: async (pred, ms = 2000) => {
          const deadline = Date.now() + ms;
          while (!pred(buf)) {
            if (Date.now() > deadline) throw new Error(`timed out; stream so far: ${JSON.stringify(buf)}`);
            await new Promise<void>((ok) => {
              waiters.push(ok);
              setTimeout(ok, 50);
            });
          }
        },
        ended,
        close: () => r.destroy(),
      });
    });
    r.on('error', (e) => (e.message.includes('socket hang up') ? endedResolve() : reject(e)));
    r.end();
  });
}

async function login(): Promise<{ cookie: string; csrf: string }> {
  const r = await h.req('POST', '/v1/console/session', { token: null, body: { username: 'root', password: ADMIN_PASSWORD } });
  expect(r.status).toBe(200);
  return { cookie: r.headers['set-cookie']![0]!.split(';')[0]!, csrf: r.json.csrf };
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 50 && h.server.events.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
};

describe('GET /v1/events', () => {
  it('a change arrives within 2 s of an API create made with the session cookie (+CSRF); keepalives flow', async () => {
    const { cookie, csrf } = await login();
    const s = await openStream({ cookie });
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    await s.waitFor((b) => b.includes(': connected'));
    const t0 = Date.now();
    const made = await h.req('POST', '/v1/customer-gateways', { token: null, headers: { cookie, 'x-csrf-token': csrf }, body: { name: 'ev-dc1', address: '192.0.2.50' } });
    expect(made.status).toBe(201);
    await s.waitFor((b) => b.includes('"name":"ev-dc1"'));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(s.changes()).toContainEqual({ kind: 'customer-gateway', name: 'ev-dc1' });
    await s.waitFor((b) => b.includes(': keepalive'), 2000);
    s.close();
    await settle();
  });

  it('state changes (a connection up, a client connecting) become events through pollStates', async () => {
    await h.req('POST', '/v1/vpn-connections', { token, body: { name: 'ev-conn', customerGateway: 'ev-dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.31.0.0/16'], auth: { psk: PSK } } });
    const s = await openStream({ authorization: `Bearer ${token}` });
    expect(s.status).toBe(200);
    await s.waitFor((b) => b.includes(': connected'));
    svc.pollStates(); // baseline
    gw.established.add('ev-conn');
    svc.pollStates();
    await s.waitFor((b) => b.includes('"name":"ev-conn"'));
    s.close();
    await settle();
    gw.established.delete('ev-conn');
  });

  it('at most the limit of streams at once: the next is 503 ERR_BUSY; closing frees a slot and leaves no listener', async () => {
    expect(svc.listenerCount).toBe(0);
    const sessionListeners = h.server.sessions.listenerCount;
    const open = await Promise.all([1, 2, 3].map(() => openStream({ authorization: `Bearer ${token}` })));
    expect(open.map((s) => s.status)).toEqual([200, 200, 200]);
    expect(svc.listenerCount).toBe(1); // one subscription serves every stream
    const refused = await h.req('GET', '/v1/events', { token });
    expect(refused.status).toBe(503);
    expect(refused.json.error_code).toBe('ERR_BUSY');
    expect((await h.req('GET', '/v1/events', { token: null })).status).toBe(401);
    for (const s of open) s.close();
    await settle();
    expect(h.server.events.size).toBe(0);
    expect(svc.listenerCount).toBe(0);
    expect(h.server.sessions.listenerCount).toBe(sessionListeners);
    expect((await h.req('HEAD', '/v1/events', { token })).status).toBe(200); // headers only, no stream kept
    expect(h.server.events.size).toBe(0);
    const again = await openStream({ authorization: `Bearer ${token}` });
    expect(again.status).toBe(200);
    again.close();
    await settle();
    expect(svc.listenerCount).toBe(0);
  });

  it('a stream opened with a session ends at logout', async () => {
    const { cookie, csrf } = await login();
    const s = await openStream({ cookie });
    expect(s.status).toBe(200);
    await s.waitFor((b) => b.includes(': connected'));
    expect((await h.req('DELETE', '/v1/console/session', { token: null, headers: { cookie, 'x-csrf-token': csrf } })).status).toBe(204);
    await Promise.race([s.ended, new Promise((_, rej) => setTimeout(() => rej(new Error('stream still open after logout')), 2000))]);
    await settle();
    expect(h.server.events.size).toBe(0);
    expect(svc.listenerCount).toBe(0);
  });
});

describe('traffic', () => {
  it('GET /v1/traffic gives the sampled points; unknown objects 404; bad queries 400; summary counts', async () => {
    let bytes = 0;
    let nowMs = 1_800_000_000_000;
    gw.established.add('ev-conn');
    gw.next = (b) => ({
      ...b,
      connections: b.connections.map((c) => (c.name === 'ev-conn' ? { ...c, children: [{ ...c.children[0]!, bytesIn: bytes, bytesOut: bytes * 2 }] } : c)),
    });
    for (let i = 0; i < 4; i++) {
      svc.sampleTraffic(nowMs);
      bytes += 5000;
      nowMs += 5000;
    }
    const r = await h.req('GET', '/v1/traffic?kind=vpn-connection&name=ev-conn', { token });
    expect(r.status, r.text).toBe(200);
    expect(r.json.kind).toBe('vpn-connection');
    expect(r.json.stepSeconds).toBe(5);
    expect(r.json.points.slice(-3)).toEqual([[nowMs - 15_000, 1000, 2000], [nowMs - 10_000, 1000, 2000], [nowMs - 5000, 1000, 2000]]);
    const since = await h.req('GET', `/v1/traffic?kind=vpn-connection&name=ev-conn&since=${nowMs - 10_000}`, { token });
    expect(since.json.points).toEqual([[nowMs - 5000, 1000, 2000]]);
    expect((await h.req('GET', '/v1/traffic?kind=vpn-connection&name=nope', { token })).status).toBe(404);
    expect((await h.req('GET', '/v1/traffic?kind=vpn-server-client&name=p2c/nobody', { token })).status).toBe(404);
    expect((await h.req('GET', '/v1/traffic?kind=bogus&name=x', { token })).status).toBe(400);
    expect((await h.req('GET', '/v1/traffic?kind=vpn-connection', { token })).status).toBe(400);
    expect((await h.req('GET', '/v1/traffic?kind=vpn-connection&name=ev-conn&since=yesterday', { token })).status).toBe(400);
    expect((await h.req('GET', '/v1/traffic?kind=vpn-connection&name=ev-conn', { token: null })).status).toBe(401);
    const sum = await h.req('GET', '/v1/traffic/summary', { token });
    expect(sum.json).toEqual({ at: nowMs - 5000, tunnelsUp: 1, tunnelsDown: 0, clientsOnline: 0, inBytesPerSec: 1000, outBytesPerSec: 2000 });
    gw.next = null;
  });
});

describe('views', () => {
  it('a connection\'s detail carries its IKE SA and CHILD_SAs (SPIs, algorithms, age, bytes) and the last error with its fix', async () => {
    gw.established.add('ev-conn');
    gw.lastErrors.set('ev-conn', { code: 'NO_ANSWER', message: 'no answer from 192.0.2.50:500', hint: 'check the address', at: '2026-12-05T10:00:00.000Z' });
    gw.next = (b) => ({
      ...b,
      connections: b.connections.map((c) => (c.name === 'ev-conn'
        ? {
          ...c, ikeSa: 'aabb/ccdd', peer: '192.0.2.50:4500', ikeProposal: 'AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519', establishedAt: '2026-12-05T11:00:00.000Z', ikeSaAgeSec: 60,
          children: [{ ...c.children[0]!, proposal: 'AES_GCM_16_128/NO_EXT_SEQ', installedAt: '2026-12-05T11:00:01.000Z', ageSec: 59, bytesIn: 10, bytesOut: 20, localTs: ['10.2.0.0/16'], remoteTs: ['10.31.0.0/16'] }],
        }
        : c)),
    });
    const v = (await h.req('GET', '/v1/vpn-connections/ev-conn', { token })).json;
    expect(v.status).toBe('ACTIVE');
    expect(v.ike_sa).toEqual({ id: 'aabb/ccdd', peer: '192.0.2.50:4500', proposal: 'AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519', established_at: '2026-12-05T11:00:00.000Z', age_sec: 60 });
    expect(v.sas).toEqual([{
      state: 'INSTALLED', spi_in: '0x1', spi_out: '0x2', proposal: 'AES_GCM_16_128/NO_EXT_SEQ', installed_at: '2026-12-05T11:00:01.000Z', age_sec: 59,
      bytes_in: 10, bytes_out: 20, packets_in: 0, packets_out: 0, local_ts: ['10.2.0.0/16'], remote_ts: ['10.31.0.0/16'],
    }]);
    expect(v.last_error).toEqual({ code: 'NO_ANSWER', message: 'no answer from 192.0.2.50:500', hint: 'check the address', at: '2026-12-05T10:00:00.000Z' });
    gw.next = null;
    gw.lastErrors.clear();
    gw.established.delete('ev-conn');
    const down = (await h.req('GET', '/v1/vpn-connections/ev-conn', { token })).json;
    expect(down).toMatchObject({ status: 'DOWN', ike_sa: null, sas: [] });
  });

  it('regenerate-psk returns a new key once, stores it, and views still never show it', async () => {
    const { cookie, csrf } = await login();
    const r = await h.req('POST', '/v1/vpn-connections/ev-conn/regenerate-psk', { token: null, headers: { cookie, 'x-csrf-token': csrf } });
    expect(r.status, r.text).toBe(200);
    const psk = r.json.psk as string;
    expect(psk).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(psk).not.toBe(PSK);
    expect((store.getByName('vpn-connection', 'ev-conn')!.spec as { auth: { psk: string } }).auth.psk).toBe(psk);
    expect(gw.config.vpnConnections.find((c) => c.name === 'ev-conn')).toBeTruthy();
    expect((await h.req('GET', '/v1/vpn-connections/ev-conn', { token })).text).not.toContain(psk);
    expect((await h.req('POST', '/v1/vpn-connections/ev-conn/regenerate-psk', { token: null, headers: { cookie } })).status).toBe(403);
  });

  it('no view of any kind returns a PSK, password, password hash or private key', async () => {
    const userHash = await hashPassword(USER_PASSWORD);
    const made: [string, unknown][] = [
      ['vpn-connections', { name: 'sec-conn', customerGateway: 'ev-dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.32.0.0/16'], auth: { psk: PSK } }],
      ['vpn-servers', { name: 'p2c', protocols: ['udp'], port: 1194, clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], auth: { type: 'cert+password' }, serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt' }],
      ['user-groups', { name: 'eng' }],
      ['users', { name: 'alice', password: USER_PASSWORD, groups: ['eng'] }],
      ['users', { name: 'bob', passwordHash: userHash }],
    ];
    for (const [coll, body] of made) {
      const r = await h.req('POST', `/v1/${coll}`, { token, body });
      expect(r.status, r.text).toBe(201);
    }
    const texts: string[] = [];
    for (const k of svc.kinds()) {
      const list = await h.req('GET', `/v1/${k.collection}`, { token });
      texts.push(list.text);
      for (const item of list.json.items as { id: string }[]) {
        texts.push((await h.req('GET', `/v1/${k.collection}/${item.id}`, { token })).text);
        for (const a of k.actions.filter((x) => x.method === 'GET' && x.produces === 'json')) texts.push((await h.req('GET', `/v1/${k.collection}/${item.id}/${a.name}`, { token })).text);
      }
    }
    texts.push((await h.req('PUT', '/v1/users/alice', { token, body: { disabled: false } })).text);
    texts.push((await h.req('GET', '/v1/traffic/summary', { token })).text);
    texts.push((await h.req('GET', '/v1/console/session', { token: null, headers: { cookie: (await login()).cookie } })).text);
    const all = texts.join('\n');
    expect(all).toContain('sec-conn');
    expect(all).toContain('alice');
    for (const secret of [PSK, USER_PASSWORD, userHash, ADMIN_PASSWORD, store.adminPasswordHash('root')!, serverKeyPem.split('\n')[1]!]) expect(all).not.toContain(secret);
    expect(all).not.toMatch(/"(psk|password|passwordHash|password_hash|privateKey)"\s*:/);
    expect(all).not.toContain('$scrypt$');
    expect(all).not.toContain('PRIVATE KEY');
  });
});
