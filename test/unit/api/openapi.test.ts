// The served OpenAPI document: valid OpenAPI 3.1 (checked against the official schema) and in step with
// the routes the server generates from kinds().
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../../src/api/openapi.js';
import { FakeManagementService } from '../../helpers/fake-service.js';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
let doc: any;
beforeAll(async () => {
  h = await startHarness();
  const r = await h.req('GET', '/v1/openapi.json', { token: null });
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  doc = r.json;
});
afterAll(() => h.close());

describe('OpenAPI document', () => {
  it('validates against the OpenAPI 3.1 schema', async () => {
    const v = new Validator();
    const res = await v.validate(structuredClone(doc));
    expect(res.errors ?? []).toEqual([]);
    expect(res.valid).toBe(true);
    expect(v.version).toBe('3.1');
    // and the check is not vacuous: a broken operation fails it
    const broken = structuredClone(doc);
    broken.paths['/metrics'].get.responses = 'none';
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('is the document built from the service kinds', () => {
    expect(doc).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument(new FakeManagementService().kinds()))));
  });

  it('lists every kind\'s paths with the methods the server serves', () => {
    for (const k of h.service.kinds()) {
      const coll = doc.paths[`/v1/${k.collection}`];
      const item = doc.paths[`/v1/${k.collection}/{idOrName}`];
      expect(Object.keys(coll).sort(), k.kind).toEqual(k.singleton ? ['get'] : ['get', 'post']);
      expect(Object.keys(item).filter((m) => m !== 'parameters').sort(), k.kind).toEqual(k.singleton ? ['get', 'put'] : ['delete', 'get', 'put']);
      for (const a of k.actions) expect(Object.keys(doc.paths[`/v1/${k.collection}/{idOrName}/${a.name}`])).toEqual([a.method.toLowerCase()]);
    }
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/metrics', '/v1/openapi.json']));
    // the web console's routes
    expect(Object.keys(doc.paths['/v1/console/session']).sort()).toEqual(['delete', 'get', 'post']);
    for (const p of ['/v1/traffic', '/v1/traffic/summary', '/v1/events']) expect(Object.keys(doc.paths[p]), p).toEqual(['get']);
  });

  it('request schemas are the kinds\' schemas; responses add the read-only fields', () => {
    const cgw = h.service.kinds().find((k) => k.kind === 'customer-gateway')!;
    const spec = doc.components.schemas.CustomerGatewaySpec;
    expect(spec.properties).toEqual(JSON.parse(JSON.stringify(cgw.schema.properties)));
    expect(spec.$schema).toBeUndefined();
    const view = doc.components.schemas.CustomerGateway;
    expect(view.required).toEqual(expect.arrayContaining(['id', 'name', 'status', 'created_at', 'updated_at']));
    expect(view.properties.status.enum).toContain('ACTIVE');
    expect(doc.paths['/v1/customer-gateways'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/CustomerGatewaySpec' });
    // write-only secrets stay marked as such
    expect(JSON.stringify(doc.components.schemas.VpnConnectionSpec.properties.auth)).toContain('"writeOnly":true');
  });

  it('bearer or console session everywhere except healthz and the document itself; errors and paging described', () => {
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearerAuth: [] }, { consoleSession: [] }]);
    expect(doc.components.securitySchemes.consoleSession).toMatchObject({ type: 'apiKey', in: 'cookie', name: 'vpcgw_session' });
    expect(doc.paths['/v1/console/session'].post.security).toEqual([]);
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/v1/openapi.json'].get.security).toEqual([]);
    expect(doc.paths['/metrics'].get.security).toBeUndefined();
    expect(doc.components.schemas.Error.required).toEqual(['error_code', 'error_msg', 'request_id']);
    const params = doc.paths['/v1/vpn-connections'].get.parameters;
    const names = params.map((p: { $ref?: string; name?: string }) => p.$ref ?? p.name);
    expect(names).toEqual(expect.arrayContaining([
      '#/components/parameters/Limit', '#/components/parameters/Offset', '#/components/parameters/Marker', 'name', 'status', 'customerGateway',
    ]));
    expect(doc.components.parameters.Limit.schema).toMatchObject({ minimum: 1, maximum: 2000, default: 100 });
    expect(doc.paths['/v1/vpn-connections'].post.parameters).toEqual([{ $ref: '#/components/parameters/ClientToken' }]);
  });
});
