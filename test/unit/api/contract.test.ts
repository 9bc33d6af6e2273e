// API contract for every resource kind, over real HTTPS against the real service and store (only
// the running daemon is a fake: test/helpers/fake-gateway.ts): create, read by id and by name,
// list, update, delete, a validation error naming the field, and refusal without or with a
// wrong token. The in-memory twin of the service (test/helpers/fake-service.ts) is tested in
// server.test.ts; this file proves the real one answers the same way.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { GatewayService } from '../../../src/gateway/service.js';
import { Store } from '../../../src/store/store.js';
import type { FakeManagementService } from '../../helpers/fake-service.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';
import { makeTestPki } from '../../helpers/pki.js';
import { startHarness, type Harness } from './harness.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-contract-psk-0123';

let dir = '';
let store: Store;
let svc: GatewayService;
let h: Harness;
let token = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-contract-'));
  const pki = makeTestPki();
  writeFileSync(join(dir, 'ca.crt'), pki.ca.cert);
  writeFileSync(join(dir, 'server.crt'), pki.server.cert);
  writeFileSync(join(dir, 'server.key'), pki.server.key, { mode: 0o600 });
  store = Store.open(join(dir, 'vpcgw.db'));
  svc = new GatewayService({ store, baseDir: dir, log: silentLogger, source: 'contract' });
  await svc.applyDocument({ gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], endpoints: { subnet: '10.2.100.0/24' } } }, dir);
  svc.attach(new FakeGateway(svc.config()));
  token = svc.createToken('contract').token;
  h = await startHarness(svc as unknown as FakeManagementService);
}, 60_000);

afterAll(async () => {
  await h?.close();
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Case {
  collection: string;
  /** Resources it needs first: [collection, body]. */
  needs?: [string, Record<string, unknown>][];
  body: Record<string, unknown>;
  /** A PUT body and the field it changes. */
  update: [Record<string, unknown>, string, unknown];
  /** A body with one bad field, and the path the error must name. */
  invalid: [Record<string, unknown>, RegExp];
  /** Never in a response. */
  secret?: string;
  /** The status a new one has (default ACTIVE or DOWN). */
  status?: RegExp;
}

const CASES: Case[] = [
  {
    collection: 'customer-gateways',
    body: { name: 'dc1', address: '192.0.2.1', ikeId: 'fqdn:dc1.example' },
    update: [{ address: '192.0.2.9' }, 'address', '192.0.2.9'],
    invalid: [{ name: 'dc-bad', address: 'not-an-ip' }, /customerGateways\[dc-bad\]\.address.*not-an-ip/],
  },
  {
    collection: 'vpn-connections',
    needs: [['customer-gateways', { name: 'dc2', address: '192.0.2.3' }]],
    body: { name: 'dc2-main', customerGateway: 'dc2', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'], auth: { psk: PSK }, dpd: { interval: '30s' } },
    update: [{ remoteSubnets: ['10.3.0.0/16'] }, 'remoteSubnets', ['10.3.0.0/16']],
    invalid: [{ name: 'c-bad', customerGateway: 'dc2', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.4.0.0/16'], auth: { psk: 'short' } }, /vpnConnections\[c-bad\]\.auth\.psk/],
    secret: PSK,
  },
  {
    collection: 'vpn-servers',
    body: {
      name: 'p2c', protocols: ['udp'], port: 1194, clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], auth: { type: 'cert' },
      serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt',
    },
    update: [{ port: 1195 }, 'port', 1195],
    invalid: [{ name: 'p2c-bad', clientCidr: '10.8.1.0/24', localSubnets: ['10.2.0.0/16'], auth: { type: 'cert' }, serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt', port: 500 },
      /vpnServers\[p2c-bad\]\.port.*500/],
  },
  {
    collection: 'vpc-endpoint-services',
    body: { name: 'web', backend: { address: '10.2.5.10' }, ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 8080 }], whitelist: ['10.9.0.0/16'] },
    update: [{ approvalRequired: true }, 'approvalRequired', true],
    invalid: [{ name: 'svc-bad', backend: { address: '10.2.5.11' }, ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 80 }], whitelist: ['vpnServer:nope'] },
      /endpointServices\[svc-bad\]\.whitelist\[0\].*vpnServer:nope/],
  },
  {
    collection: 'vpc-endpoints',
    needs: [['vpc-endpoint-services', { name: 'db', backend: { address: '10.2.5.20' }, ports: [{ protocol: 'tcp', servicePort: 5432, backendPort: 5432 }] }]],
    body: { name: 'db-ep', service: 'db', address: '10.2.100.20', dnsName: 'db.endpoint.internal' },
    update: [{ description: 'the database' }, 'description', 'the database'],
    invalid: [{ name: 'ep-bad', service: 'db', address: '10.2.101.1' }, /endpoints\[ep-bad\]\.address.*10\.2\.101\.1/],
    status: /^ACCEPTED$/,
  },
];

describe('API contract, real service and store', () => {
  it.each(CASES)('$collection: create, read by id and name, list, update, validation error, delete', async (c) => {
    for (const [coll, body] of c.needs ?? []) expect((await h.req('POST', `/v1/${coll}`, { token, body })).status).toBe(201);
    const created = await h.req('POST', `/v1/${c.collection}`, { token, body: c.body });
    expect(created.status, created.text).toBe(201);
    const id = created.json.id as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.headers.location).toBe(`/v1/${c.collection}/${id}`);
    expect(created.json).toMatchObject({ name: c.body.name, status: expect.stringMatching(c.status ?? /^(ACTIVE|DOWN)$/) });
    expect(Date.parse(created.json.created_at)).not.toBeNaN();
    if (c.secret) expect(created.text).not.toContain(c.secret);

    const byId = await h.req('GET', `/v1/${c.collection}/${id}`, { token });
    const byName = await h.req('GET', `/v1/${c.collection}/${c.body.name}`, { token });
    expect(byId.json).toEqual(byName.json);
    expect(byId.json.id).toBe(id);
    const list = await h.req('GET', `/v1/${c.collection}?name=${c.body.name}`, { token });
    expect(list.json.items.map((i: { id: string }) => i.id)).toEqual([id]);

    const [patch, field, value] = c.update;
    const updated = await h.req('PUT', `/v1/${c.collection}/${id}`, { token, body: patch });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.json[field]).toEqual(value);
    expect(updated.json.name).toBe(c.body.name);
    if (c.secret) expect(updated.text).not.toContain(c.secret);

    const bad = await h.req('POST', `/v1/${c.collection}`, { token, body: c.invalid[0] });
    expect(bad.status, bad.text).toBe(400);
    expect(bad.json.error_code).toBe('ERR_CONFIG');
    expect(bad.json.error_msg).toMatch(c.invalid[1]);
    expect(bad.json.request_id).toBeTruthy();

    for (const t of [null, `${token}x`]) {
      expect((await h.req('GET', `/v1/${c.collection}/${id}`, { token: t })).status).toBe(401);
      expect((await h.req('DELETE', `/v1/${c.collection}/${id}`, { token: t })).status).toBe(401);
    }
    expect((await h.req('DELETE', `/v1/${c.collection}/${id}`, { token })).status).toBe(204);
    const gone = await h.req('GET', `/v1/${c.collection}/${id}`, { token });
    expect(gone.status).toBe(404);
    expect(gone.json.error_code).toBe('ERR_NOT_FOUND');
  });

  it('vpn-gateways: the one gateway is listed, read and updated; never created or deleted', async () => {
    const list = await h.req('GET', '/v1/vpn-gateways', { token });
    expect(list.json.items.map((i: { name: string }) => i.name)).toEqual(['gw1']);
    const up = await h.req('PUT', '/v1/vpn-gateways/gw1', { token, body: { vpcSubnets: ['10.2.0.0/16', '10.20.0.0/16'] } });
    expect(up.status, up.text).toBe(200);
    expect(up.json.vpcSubnets).toEqual(['10.2.0.0/16', '10.20.0.0/16']);
    expect(up.json.publicAddresses).toEqual(['192.0.2.2']);
    expect((await h.req('POST', '/v1/vpn-gateways', { token, body: { name: 'gw2' } })).status).toBe(405);
    expect((await h.req('DELETE', '/v1/vpn-gateways/gw1', { token })).status).toBe(405);
    const bad = await h.req('PUT', '/v1/vpn-gateways/gw1', { token, body: { publicAddresses: ['nope'] } });
    expect(bad.status).toBe(400);
    expect(bad.json.error_msg).toMatch(/gateway\.publicAddresses\[0\]/);
  });

  it('a customer gateway in use cannot be deleted (409), and a connection may name it by id', async () => {
    const cgw = await h.req('POST', '/v1/customer-gateways', { token, body: { name: 'dc7', address: '192.0.2.7' } });
    const conn = await h.req('POST', '/v1/vpn-connections', {
      token, body: { name: 'dc7-main', customerGateway: cgw.json.id, localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.7.0.0/16'], auth: { psk: PSK } },
    });
    expect(conn.status, conn.text).toBe(201);
    expect(conn.json.customerGateway).toBe('dc7');
    const del = await h.req('DELETE', '/v1/customer-gateways/dc7', { token });
    expect(del.status).toBe(409);
    expect(del.json.error_code).toBe('ERR_CONFLICT');
  });

  it('the OpenAPI document is served without a token and names every kind', async () => {
    const r = await h.req('GET', '/v1/openapi.json', { token: null });
    expect(r.status).toBe(200);
    for (const c of ['vpn-gateways', 'customer-gateways', 'vpn-connections', 'vpn-servers', 'users', 'vpc-endpoint-services', 'vpc-endpoints']) {
      expect(Object.keys(r.json.paths)).toContain(`/v1/${c}`);
    }
    expect(r.json.paths['/v1/vpc-endpoint-services/{idOrName}/connections/action'].post.operationId).toBe('postVpcEndpointServiceConnectionsAction');
    expect(r.json.paths['/v1/vpc-endpoint-services/{idOrName}/connections'].get).toBeTruthy();
  });

  it('vpc endpoint approval: connections lists the endpoints, connections/action receives and rejects them', async () => {
    const svcBody = { name: 'api', backend: { address: '10.2.5.30' }, ports: [{ protocol: 'udp', servicePort: 53, backendPort: 5353 }], approvalRequired: true };
    expect((await h.req('POST', '/v1/vpc-endpoint-services', { token, body: svcBody })).status).toBe(201);
    const ep = await h.req('POST', '/v1/vpc-endpoints', { token, body: { name: 'api-ep', service: 'api' } });
    expect(ep.status, ep.text).toBe(201);
    expect(ep.json).toMatchObject({ status: 'PENDING_ACCEPTANCE', ip: expect.stringMatching(/^10\.2\.100\./), dns_names: [] });
    const list = await h.req('GET', '/v1/vpc-endpoint-services/api/connections', { token });
    expect(list.status).toBe(200);
    expect(list.json.connections).toEqual([expect.objectContaining({ endpoint_id: ep.json.id, endpoint_name: 'api-ep', status: 'PENDING_ACCEPTANCE' })]);
    const acc = await h.req('POST', '/v1/vpc-endpoint-services/api/connections/action', { token, body: { action: 'receive', endpoints: [ep.json.id] } });
    expect(acc.status, acc.text).toBe(200);
    expect(acc.json.connections[0].status).toBe('ACCEPTED');
    expect((await h.req('GET', '/v1/vpc-endpoints/api-ep', { token })).json.status).toBe('ACCEPTED');
    const rej = await h.req('POST', '/v1/vpc-endpoint-services/api/connections/action', { token, body: { action: 'reject', endpoints: ['api-ep'] } });
    expect(rej.json.connections[0].status).toBe('REJECTED');
    const bad = await h.req('POST', '/v1/vpc-endpoint-services/api/connections/action', { token, body: { action: 'maybe', endpoints: ['api-ep'] } });
    expect(bad.status).toBe(400);
    expect(bad.json.error_code).toBe('ERR_BAD_REQUEST');
    const inUse = await h.req('DELETE', '/v1/vpc-endpoint-services/api', { token });
    expect(inUse.status).toBe(409);
  });
});
