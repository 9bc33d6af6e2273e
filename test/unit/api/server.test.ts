// The management API over real HTTPS (127.0.0.1, ephemeral port) with the in-memory service.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connect } from 'node:tls';
import { FakeManagementService } from '../../helpers/fake-service.js';
import { CGW, CONN, startHarness, testCertificate, type Harness, type Res } from './harness.js';

const SERVER = {
  name: 'ssl1',
  clientCidr: '10.8.0.0/24',
  localSubnets: ['10.2.0.0/16'],
  auth: { type: 'cert' },
  serverCert: { cert: 'pki/server.crt', key: 'pki/server.key' },
  clientCa: 'pki/ca.crt',
};

/** A valid body and a changed one for each collection the fake lists (routes come from kinds()). */
const BODIES: Record<string, { create: Record<string, unknown>; change: Record<string, unknown>; field: string; value: unknown }> = {
  'customer-gateways': { create: CGW, change: { ...CGW, address: '198.51.100.7' }, field: 'address', value: '198.51.100.7' },
  'vpn-connections': { create: CONN, change: { ...CONN, remoteSubnets: ['10.9.0.0/16'] }, field: 'remoteSubnets', value: ['10.9.0.0/16'] },
  'vpn-servers': { create: SERVER, change: { ...SERVER, port: 1195 }, field: 'port', value: 1195 },
};

function expectError(r: Res, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.json).toEqual({ error_code: code, error_msg: expect.any(String), request_id: expect.any(String) });
  expect(r.headers['x-request-id']).toBe(r.json.request_id);
}

let h: Harness;
beforeAll(() => {
  testCertificate();
});
beforeEach(async () => {
  h = await startHarness();
  return () => h.close();
});

describe('CRUD for every kind', () => {
  it('the fake lists the kinds this test covers', () => {
    const collections = h.service.kinds().map((k) => k.collection);
    expect(collections).toEqual(['vpn-gateways', ...Object.keys(BODIES)]);
  });

  for (const [collection, b] of Object.entries(BODIES)) {
    it(`${collection}: create, get by id and by name, list, replace, delete`, async () => {
      if (collection === 'vpn-connections') expect((await h.req('POST', '/v1/customer-gateways', { body: CGW })).status).toBe(201);
      const c = await h.req('POST', `/v1/${collection}`, { body: b.create });
      expect(c.status, c.text).toBe(201);
      expect(c.headers['content-type']).toMatch(/^application\/json/);
      expect(c.json).toMatchObject({ name: b.create.name, status: 'ACTIVE', id: expect.any(String), created_at: expect.any(String), updated_at: expect.any(String) });
      expect(c.headers.location).toBe(`/v1/${collection}/${c.json.id}`);
      expect(c.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);

      const byId = await h.req('GET', c.headers.location!);
      expect(byId.status).toBe(200);
      expect(byId.json).toEqual(c.json);
      const byName = await h.req('GET', `/v1/${collection}/${b.create.name}`);
      expect(byName.json).toEqual(c.json);

      const list = await h.req('GET', `/v1/${collection}`);
      expect(list.status).toBe(200);
      expect(list.json).toEqual({ items: [c.json], total_count: 1, page_info: { current_count: 1, next_marker: null } });

      const put = await h.req('PUT', `/v1/${collection}/${c.json.id}`, { body: b.change });
      expect(put.status, put.text).toBe(200);
      expect(put.json[b.field]).toEqual(b.value);
      expect(put.json.id).toBe(c.json.id);

      if (collection === 'vpn-connections') {
        // the PSK is write-only: never in a view
        expect(c.json.auth).toEqual({});
        expect(c.text).not.toContain('a long random secret');
      }

      const del = await h.req('DELETE', `/v1/${collection}/${b.create.name}`);
      expect(del.status).toBe(204);
      expect(del.text).toBe('');
      expect(del.headers['x-request-id']).toBeTruthy();
      expectError(await h.req('GET', `/v1/${collection}/${c.json.id}`), 404, 'ERR_NOT_FOUND');
      expectError(await h.req('DELETE', `/v1/${collection}/${c.json.id}`), 404, 'ERR_NOT_FOUND');
    });
  }

  it('vpn-gateways is a singleton: list and get it, PUT changes it, POST and DELETE are 405', async () => {
    const list = await h.req('GET', '/v1/vpn-gateways');
    expect(list.json.total_count).toBe(1);
    const gw = list.json.items[0];
    expect(gw).toMatchObject({ name: 'gw1', publicAddresses: ['192.0.2.2'], status: 'ACTIVE' });
    const put = await h.req('PUT', `/v1/vpn-gateways/${gw.id}`, { body: { name: 'gw1', publicAddresses: ['192.0.2.3'], vpcSubnets: ['10.2.0.0/16'] } });
    expect(put.status, put.text).toBe(200);
    expect(put.json.publicAddresses).toEqual(['192.0.2.3']);
    const post = await h.req('POST', '/v1/vpn-gateways', { body: { name: 'x', publicAddresses: ['192.0.2.3'], vpcSubnets: ['10.2.0.0/16'] } });
    expectError(post, 405, 'ERR_BAD_REQUEST');
    expect(post.headers.allow).toBe('GET, HEAD');
    const del = await h.req('DELETE', '/v1/vpn-gateways/gw1');
    expectError(del, 405, 'ERR_BAD_REQUEST');
    expect(del.headers.allow).toBe('GET, PUT, HEAD');
    expect(h.service.calls.create).toBe(0);
    expect(h.service.calls.delete).toBe(0);
  });

  it('a duplicate name is 409, deleting a referenced customer gateway is 409', async () => {
    await h.req('POST', '/v1/customer-gateways', { body: CGW });
    expectError(await h.req('POST', '/v1/customer-gateways', { body: CGW }), 409, 'ERR_CONFLICT');
    expect((await h.req('POST', '/v1/vpn-connections', { body: CONN })).status).toBe(201);
    const r = await h.req('DELETE', '/v1/customer-gateways/dc1');
    expectError(r, 409, 'ERR_CONFLICT');
    expect(r.json.error_msg).toContain('dc1-main');
  });
});

describe('validation errors', () => {
  it('a body the schema refuses is 400 ERR_CONFIG naming the field', async () => {
    const r = await h.req('POST', '/v1/customer-gateways', { body: { name: 'dc1', address: 'not-an-ip' } });
    expectError(r, 400, 'ERR_CONFIG');
    expect(r.json.error_msg).toContain('customerGateways.address');
    expect(r.json.error_msg).toContain('not-an-ip');
    const missing = await h.req('POST', '/v1/customer-gateways', { body: { name: 'dc1' } });
    expectError(missing, 400, 'ERR_CONFIG');
    expect(missing.json.error_msg).toContain('address');
    const unknown = await h.req('POST', '/v1/customer-gateways', { body: { ...CGW, colour: 'red' } });
    expectError(unknown, 400, 'ERR_CONFIG');
    expect(unknown.json.error_msg).toContain('colour');
  });

  it('a reference to a missing customer gateway is 400 naming customerGateway', async () => {
    const r = await h.req('POST', '/v1/vpn-connections', { body: CONN });
    expectError(r, 400, 'ERR_CONFIG');
    expect(r.json.error_msg).toContain('vpnConnections.customerGateway');
  });

  it('malformed JSON is 400, no body is a validation error, another media type is 415', async () => {
    const bad = await h.req('POST', '/v1/customer-gateways', { raw: '{"name": "dc1",' });
    expectError(bad, 400, 'ERR_BAD_REQUEST');
    expect(bad.json.error_msg).toMatch(/JSON/);
    const proto = await h.req('POST', '/v1/customer-gateways', { raw: '{"__proto__": {"x": 1}, "name": "dc1"}' });
    expectError(proto, 400, 'ERR_BAD_REQUEST');
    expectError(await h.req('POST', '/v1/customer-gateways', { raw: '{"constructor": {"prototype": {"x": 1}}}' }), 400, 'ERR_BAD_REQUEST');
    expectError(await h.req('POST', '/v1/customer-gateways'), 400, 'ERR_CONFIG');
    const text = await h.req('POST', '/v1/customer-gateways', { raw: 'name=dc1', headers: { 'content-type': 'text/plain' } });
    expectError(text, 415, 'ERR_BAD_REQUEST');
    const form = await h.req('POST', '/v1/customer-gateways', { raw: 'name=dc1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expectError(form, 415, 'ERR_BAD_REQUEST');
    expect(h.service.calls.create).toBe(1);
  });

  it('a body over 1 MiB is 413 ERR_REQUEST_TOO_LARGE', async () => {
    const big = JSON.stringify({ name: 'dc1', address: '192.0.2.1', pad: 'x'.repeat(1024 * 1024) });
    const r = await h.req('POST', '/v1/customer-gateways', { raw: big });
    expectError(r, 413, 'ERR_REQUEST_TOO_LARGE');
    expect(h.service.calls.create).toBe(0);
  });
});

describe('routes', () => {
  it('an unknown route is 404, a known path with another method 405 with Allow', async () => {
    expectError(await h.req('GET', '/v1/nothing-here'), 404, 'ERR_NOT_FOUND');
    expectError(await h.req('GET', '/v1/customer-gateways/dc1/unknown-action'), 404, 'ERR_NOT_FOUND');
    const patch = await h.req('PATCH', '/v1/customer-gateways/dc1', { body: {} });
    expectError(patch, 405, 'ERR_BAD_REQUEST');
    expect(patch.headers.allow).toBe('GET, PUT, DELETE, HEAD');
    const del = await h.req('DELETE', '/v1/customer-gateways');
    expect(del.status).toBe(405);
    expect(del.headers.allow).toBe('GET, POST, HEAD');
  });
});

describe('authentication', () => {
  it('no token or a wrong one is 401 with WWW-Authenticate, counted and logged without the token', async () => {
    const none = await h.req('GET', '/v1/customer-gateways', { token: null });
    expectError(none, 401, 'ERR_UNAUTHORIZED');
    expect(none.headers['www-authenticate']).toBe('Bearer');
    const wrong = await h.req('GET', '/v1/customer-gateways', { token: 'wrong-token-value' });
    expectError(wrong, 401, 'ERR_UNAUTHORIZED');
    expect(wrong.headers['www-authenticate']).toBe('Bearer');
    const basic = await h.req('GET', '/metrics', { token: null, headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expectError(basic, 401, 'ERR_UNAUTHORIZED');
    // refused before the body is read or the service is called
    expectError(await h.req('POST', '/v1/customer-gateways', { token: 'nope', body: CGW }), 401, 'ERR_UNAUTHORIZED');
    expectError(await h.req('GET', '/v1/no-such-route', { token: null }), 401, 'ERR_UNAUTHORIZED');
    expect(h.service.calls.create).toBe(0);
    expect(h.service.calls.list).toBe(0);
    expect(h.server.authFailures).toBe(5);

    const warns = h.lines.filter((l) => l.level === 'warn');
    expect(warns).toHaveLength(5);
    expect(JSON.stringify(h.lines)).not.toContain('wrong-token-value');
    expect(JSON.stringify(h.lines)).not.toContain('dXNlcjpwYXNz');
  });

  it('healthz and the OpenAPI document are open; the right token passes', async () => {
    const hz = await h.req('GET', '/healthz', { token: null });
    expect(hz.status).toBe(200);
    expect(hz.json).toEqual({ status: 'ok' });
    expect((await h.req('GET', '/v1/openapi.json', { token: null })).status).toBe(200);
    expect((await h.req('GET', '/v1/customer-gateways')).status).toBe(200);
    expect(h.server.authFailures).toBe(0);
  });

  it('one debug line per request with method, url, status and time, never the Authorization header', async () => {
    await h.req('GET', '/v1/customer-gateways?limit=5');
    const debug = h.lines.filter((l) => l.level === 'debug');
    expect(debug).toHaveLength(1);
    expect(debug[0]!.obj).toMatchObject({ method: 'GET', url: '/v1/customer-gateways?limit=5', status: 200, ms: expect.any(Number), reqId: expect.any(String) });
    expect(JSON.stringify(h.lines)).not.toContain('test-token');
  });
});

describe('lists: pagination and filters', () => {
  beforeEach(async () => {
    for (let i = 0; i < 7; i++) {
      const r = await h.req('POST', '/v1/customer-gateways', { body: { name: `cgw${i}`, address: `192.0.2.${10 + i}`, ...(i % 2 ? { id: 'fqdn:odd.example' } : {}) } });
      expect(r.status).toBe(201);
    }
  });

  it('limit and offset', async () => {
    const p = await h.req('GET', '/v1/customer-gateways?limit=3&offset=2');
    expect(p.json.items.map((x: { name: string }) => x.name)).toEqual(['cgw2', 'cgw3', 'cgw4']);
    expect(p.json.total_count).toBe(7);
    expect(p.json.page_info.current_count).toBe(3);
    const last = await h.req('GET', '/v1/customer-gateways?limit=3&offset=6');
    expect(last.json.items.map((x: { name: string }) => x.name)).toEqual(['cgw6']);
    expect(last.json.page_info.next_marker).toBeNull();
    const all = await h.req('GET', '/v1/customer-gateways');
    expect(all.json.items).toHaveLength(7);
  });

  it('marker pagination walks every item once', async () => {
    const names: string[] = [];
    let marker: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const r: Res = await h.req('GET', `/v1/customer-gateways?limit=3${marker ? `&marker=${marker}` : ''}`);
      expect(r.status).toBe(200);
      names.push(...r.json.items.map((x: { name: string }) => x.name));
      marker = r.json.page_info.next_marker;
      if (!marker) break;
    }
    expect(names).toEqual(['cgw0', 'cgw1', 'cgw2', 'cgw3', 'cgw4', 'cgw5', 'cgw6']);
    expectError(await h.req('GET', '/v1/customer-gateways?marker=cgw-unknown'), 400, 'ERR_BAD_REQUEST');
  });

  it('exact-match filters: name, status, a spec field', async () => {
    const byName = await h.req('GET', '/v1/customer-gateways?name=cgw3');
    expect(byName.json.items.map((x: { name: string }) => x.name)).toEqual(['cgw3']);
    const ca = await h.req('GET', '/v1/customer-gateways?ca=ca.pem');
    expect(ca.json.total_count).toBe(0);
    const cgw3 = byName.json.items[0];
    const byId = await h.req('GET', `/v1/customer-gateways?id=${cgw3.id}`);
    expect(byId.json.items).toEqual([cgw3]);
    h.service.setStatus('customer-gateway', 'cgw4', 'DOWN');
    const down = await h.req('GET', '/v1/customer-gateways?status=DOWN');
    expect(down.json.items.map((x: { name: string }) => x.name)).toEqual(['cgw4']);
    const both = await h.req('GET', '/v1/customer-gateways?status=ACTIVE&address=192.0.2.15');
    expect(both.json.items.map((x: { name: string }) => x.name)).toEqual(['cgw5']);
    await h.req('POST', '/v1/vpn-connections', { body: { ...CONN, customerGateway: 'cgw1' } });
    await h.req('POST', '/v1/vpn-connections', { body: { ...CONN, name: 'other', customerGateway: 'cgw2', remoteSubnets: ['10.3.0.0/16'] } });
    const byCgw = await h.req('GET', '/v1/vpn-connections?customerGateway=cgw2');
    expect(byCgw.json.items.map((x: { name: string }) => x.name)).toEqual(['other']);
  });

  it('bad parameters are 400 naming the parameter', async () => {
    for (const [q, param] of [
      ['limit=0', 'limit'], ['limit=2001', 'limit'], ['limit=abc', 'limit'], ['limit=1.5', 'limit'], ['offset=-1', 'offset'],
      ['marker=', 'marker'], ['offset=1&marker=x', 'marker'], ['status=SLEEPING', 'status'], ['colour=red', 'colour'],
      ['name=a&name=b', 'name'],
    ]) {
      const r = await h.req('GET', `/v1/customer-gateways?${q}`);
      expectError(r, 400, 'ERR_BAD_REQUEST');
      expect(r.json.error_msg, q).toContain(`query parameter ${param}`);
    }
    // lists and objects are not filters
    const subnets = await h.req('GET', '/v1/vpn-connections?localSubnets=10.2.0.0/16');
    expectError(subnets, 400, 'ERR_BAD_REQUEST');
    expect(subnets.json.error_msg).toContain('query parameter localSubnets');
    expect((await h.req('GET', '/v1/customer-gateways?limit=2000')).status).toBe(200);
    expect((await h.req('GET', '/v1/customer-gateways?limit=1')).json.items).toHaveLength(1);
  });
});

describe('X-Client-Token idempotency', () => {
  it('the same token and body return the first response without a second create', async () => {
    const a = await h.req('POST', '/v1/customer-gateways', { body: CGW, headers: { 'x-client-token': 'tok-1' } });
    const b = await h.req('POST', '/v1/customer-gateways', { body: CGW, headers: { 'x-client-token': 'tok-1' } });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.json).toEqual(a.json);
    expect(b.headers.location).toBe(a.headers.location);
    expect(b.headers['x-idempotent-replay']).toBe('true');
    expect(b.headers['x-request-id']).not.toBe(a.headers['x-request-id']);
    expect(h.service.calls.create).toBe(1);
    // without a token a repeat is a second create (refused as a duplicate name here)
    expectError(await h.req('POST', '/v1/customer-gateways', { body: CGW }), 409, 'ERR_CONFLICT');
  });

  it('concurrent retries with one token create once', async () => {
    const rs = await Promise.all([1, 2, 3].map(() => h.req('POST', '/v1/customer-gateways', { body: CGW, headers: { 'x-client-token': 'tok-c' } })));
    expect(rs.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(new Set(rs.map((r) => r.json.id)).size).toBe(1);
    expect(h.service.calls.create).toBe(1);
  });

  it('the same token with another body is 409; a refused request does not use up its token', async () => {
    await h.req('POST', '/v1/customer-gateways', { body: CGW, headers: { 'x-client-token': 'tok-2' } });
    expectError(await h.req('POST', '/v1/customer-gateways', { body: { ...CGW, name: 'dc2' }, headers: { 'x-client-token': 'tok-2' } }), 409, 'ERR_CONFLICT');
    const bad = { name: 'dc3', address: 'nope' };
    expectError(await h.req('POST', '/v1/customer-gateways', { body: bad, headers: { 'x-client-token': 'tok-3' } }), 400, 'ERR_CONFIG');
    const fixed = await h.req('POST', '/v1/customer-gateways', { body: { ...bad, address: '192.0.2.9' }, headers: { 'x-client-token': 'tok-3' } });
    expect(fixed.status).toBe(201);
    expectError(await h.req('POST', '/v1/customer-gateways', { body: CGW, headers: { 'x-client-token': 'x'.repeat(65) } }), 400, 'ERR_BAD_REQUEST');
  });
});

describe('actions', () => {
  beforeEach(async () => {
    await h.req('POST', '/v1/customer-gateways', { body: CGW });
    await h.req('POST', '/v1/vpn-connections', { body: CONN });
    await h.req('POST', '/v1/vpn-servers', { body: SERVER });
  });

  it('a text action is a download with its media type and filename', async () => {
    const r = await h.req('GET', '/v1/vpn-connections/dc1-main/peer-config');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.headers['content-disposition']).toBe('attachment; filename="dc1-main.swanctl.conf"');
    expect(r.text).toContain('connections {');
    const ipsec = await h.req('GET', '/v1/vpn-connections/dc1-main/peer-config?format=ipsec.conf');
    expect(ipsec.text).toContain('conn dc1-main');
    const profile = await h.req('GET', '/v1/vpn-servers/ssl1/client-profile?client=alice');
    expect(profile.headers['content-type']).toBe('application/x-openvpn-profile; charset=utf-8');
    expect(profile.headers['content-disposition']).toBe('attachment; filename="alice.ovpn"');
  });

  it('a JSON action answers JSON; its query is checked; the other method is 405', async () => {
    const r = await h.req('POST', '/v1/vpn-connections/dc1-main/reset', { body: { hard: true } });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ reset: 'dc1-main', requested: { hard: true } });
    const noBody = await h.req('POST', '/v1/vpn-connections/dc1-main/reset');
    expect(noBody.json).toEqual({ reset: 'dc1-main', requested: null });
    const badFormat = await h.req('GET', '/v1/vpn-connections/dc1-main/peer-config?format=yaml');
    expectError(badFormat, 400, 'ERR_BAD_REQUEST');
    expect(badFormat.json.error_msg).toContain('format');
    expectError(await h.req('GET', '/v1/vpn-connections/dc1-main/peer-config?colour=red'), 400, 'ERR_BAD_REQUEST');
    const wrong = await h.req('GET', '/v1/vpn-connections/dc1-main/reset');
    expectError(wrong, 405, 'ERR_BAD_REQUEST');
    expect(wrong.headers.allow).toBe('POST');
    expectError(await h.req('GET', '/v1/vpn-connections/nope/peer-config'), 404, 'ERR_NOT_FOUND');
  });
});

describe('operations', () => {
  it('metrics in the Prometheus text format', async () => {
    const r = await h.req('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.text).toBe(h.service.metricsText);
  });

  it('healthz is 503 with the error shape while the service is unhealthy', async () => {
    h.service.setHealthy(false);
    expectError(await h.req('GET', '/healthz', { token: null }), 503, 'ERR_STATE');
    expect(h.lines.some((l) => l.level === 'warn')).toBe(true);
    h.service.setHealthy(true);
    expect((await h.req('GET', '/healthz', { token: null })).status).toBe(200);
  });

  it('an unexpected exception is a generic 500; the detail is only logged', async () => {
    h.service.list = () => {
      throw new Error('database file is locked at /secret/path');
    };
    const r = await h.req('GET', '/v1/customer-gateways');
    expectError(r, 500, 'ERR_INTERNAL');
    expect(r.text).not.toContain('/secret/path');
    const err = h.lines.find((l) => l.level === 'error');
    expect(JSON.stringify((err!.obj as { err: Error }).err.message)).toContain('/secret/path');
    expect((err!.obj as { reqId: string }).reqId).toBe(r.json.request_id);
  });

  it('TLS 1.1 is refused', async () => {
    const res = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: h.server.port, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', rejectUnauthorized: false });
      s.on('secureConnect', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', () => resolve('refused'));
    });
    expect(res).toBe('refused');
  });
});

describe('start and close', () => {
  let other: Harness;
  afterAll(async () => {
    await other?.close();
  });
  it('two servers on ephemeral ports; close frees the port', async () => {
    other = await startHarness(new FakeManagementService({ token: 'other-token-123' }));
    expect(other.server.port).not.toBe(h.server.port);
    expect(other.server.address).toBe('127.0.0.1');
    expect((await other.req('GET', '/v1/customer-gateways', { token: 'other-token-123' })).status).toBe(200);
    await other.close();
    await expect(other.req('GET', '/healthz')).rejects.toThrow();
  });
});

describe('HEAD', () => {
  it('HEAD of a GET route answers its headers', async () => {
    const r = await h.req('HEAD', '/healthz', { token: null });
    expect(r.status).toBe(200);
    expect(r.text).toBe('');
    expect(r.headers['x-request-id']).toBeTruthy();
    const l = await h.req('HEAD', '/v1/customer-gateways');
    expect(l.status).toBe(200);
    expect(l.headers['content-type']).toMatch(/^application\/json/);
    expect((await h.req('HEAD', '/v1/customer-gateways', { token: null })).status).toBe(401);
  });
});
