// VPC endpoints through the management service (src/gateway/service.ts) over the real store: an
// endpoint of a service with approvalRequired waits in PENDING_ACCEPTANCE until the provider
// accepts it (connections/action receive), a rejection closes it, the decision is stored (it
// survives reopening the store and `apply` of a file that does not mention it), the running
// gateway is told to recompile its policy, and the CLI's `vpcgw endpoint accept|reject` says so.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { GatewayService } from '../../../src/gateway/service.js';
import type { GatewayStatus } from '../../../src/gateway/status.js';
import { Store } from '../../../src/store/store.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';
import { endpointDoc } from './endpoint-fixture.js';

/** The fake running gateway, with the policy refresh the real daemon has and endpoint counters. */
class PolicyGateway extends FakeGateway {
  refreshes = 0;
  refreshPolicy(): void {
    this.refreshes++;
  }
  override status(): GatewayStatus {
    const st = super.status();
    return {
      ...st,
      endpoints: this.config.endpoints.map((e) => ({
        name: e.name, service: e.service, type: e.type, state: 'ACCEPTED', address: e.address, dnsName: e.dnsName,
        flows: 2, flowsCreated: 5, packetsIn: 10, bytesIn: 800, packetsOut: 8, bytesOut: 640, drops: { endpointDenied: 1 },
      })),
    };
  }
}

let dir = '';
let store: Store;
let svc: GatewayService;
let gw: PolicyGateway;

function open(): void {
  store = Store.open(join(dir, 'vpcgw.db'));
  svc = new GatewayService({ store, baseDir: dir, log: silentLogger, source: 'test' });
}

function withApproval(): Record<string, unknown> {
  const d = endpointDoc();
  const s = (d.endpointServices as Record<string, unknown>[])[0]!;
  return { ...d, endpointServices: [{ ...s, approvalRequired: true }] };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-ep-svc-'));
  open();
  await svc.applyDocument(withApproval(), dir);
  gw = new PolicyGateway(svc.config());
  svc.attach(gw);
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const state = (name: string): string => (svc.get('vpc-endpoints', name) as { status: string }).status;

describe('VPC endpoint approval', () => {
  it('an endpoint of a service with approvalRequired is PENDING_ACCEPTANCE until received; reject closes it', async () => {
    expect(state('web-ep')).toBe('PENDING_ACCEPTANCE');
    expect(svc.endpointStates()).toEqual(new Map([['web-ep', 'PENDING_ACCEPTANCE']]));
    const listed = await svc.action('vpc-endpoint-services', 'web', 'connections', {}, undefined);
    expect(listed.json).toEqual({
      connections: [expect.objectContaining({ endpoint_name: 'web-ep', status: 'PENDING_ACCEPTANCE', ip: '10.2.100.10', dns_names: ['web.endpoint.internal'] })],
    });

    const id = svc.get('vpc-endpoints', 'web-ep').id;
    const r = await svc.action('vpc-endpoint-services', 'web', 'connections/action', {}, { action: 'receive', endpoints: [id] });
    expect(r.json).toEqual({ connections: [expect.objectContaining({ endpoint_id: id, status: 'ACCEPTED' })] });
    expect(state('web-ep')).toBe('ACCEPTED');
    expect(gw.refreshes).toBe(1);

    await svc.action('vpc-endpoint-services', 'web', 'connections/action', {}, { action: 'reject', endpoints: ['web-ep'] });
    expect(state('web-ep')).toBe('REJECTED');
    expect(svc.endpointStates().get('web-ep')).toBe('REJECTED');
    expect(gw.refreshes).toBe(2);
  });

  it('refuses bad actions, unknown endpoints and endpoints of another service', async () => {
    await svc.create('vpc-endpoint-services', { name: 'other', backend: { address: '10.3.0.20' }, ports: [{ protocol: 'udp', servicePort: 53, backendPort: 53 }] });
    await svc.create('vpc-endpoints', { name: 'other-ep', service: 'other' });
    const act = (body: unknown, service = 'web') => svc.action('vpc-endpoint-services', service, 'connections/action', {}, body);
    await expect(act({ action: 'accept', endpoints: ['web-ep'] })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    await expect(act({ action: 'receive', endpoints: [] })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    await expect(act({ action: 'receive', endpoints: ['nope'] })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    await expect(act({ action: 'receive', endpoints: ['other-ep'] })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST', message: expect.stringMatching(/other-ep.*web/) });
    expect(state('web-ep')).toBe('PENDING_ACCEPTANCE');
  });

  it('an endpoint of a service without approvalRequired is ACCEPTED at once, and stays so when the service starts requiring it', async () => {
    await svc.create('vpc-endpoint-services', { name: 'open', backend: { address: '10.3.0.20' }, ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 80 }], whitelist: ['vpnServer:p2c'] });
    const ep = await svc.create('vpc-endpoints', { name: 'open-ep', service: 'open' });
    expect(ep.status).toBe('ACCEPTED');
    expect(ep.ip).toMatch(/^10\.2\.100\.\d+$/);
    await svc.replace('vpc-endpoint-services', 'open', { approvalRequired: true });
    expect(state('open-ep')).toBe('ACCEPTED');
    // the running gateway got each change as a config
    expect(gw.applied.at(-1)!.endpointServices.find((s) => s.name === 'open')!.approvalRequired).toBe(true);
  });

  it('the decision survives reopening the store and an apply of a file that does not mention it', async () => {
    await svc.action('vpc-endpoint-services', 'web', 'connections/action', {}, { action: 'receive', endpoints: ['web-ep'] });
    store.close();
    open();
    expect(state('web-ep')).toBe('ACCEPTED');
    // the same file again, and a changed one (a description, the whitelist) keep it
    const r = await svc.applyDocument(withApproval(), dir);
    expect(r.plan).toEqual([]);
    const changed = withApproval();
    (changed.endpoints as Record<string, unknown>[])[0]!.description = 'the web front';
    (changed.endpointServices as Record<string, unknown>[])[0]!.whitelist = ['vpnServer:p2c'];
    const r2 = await svc.applyDocument(changed, dir);
    expect(r2.plan.map((s) => `${s.op} ${s.kind} ${s.name}`)).toEqual(['update vpc-endpoint-service web', 'update vpc-endpoint web-ep']);
    expect(state('web-ep')).toBe('ACCEPTED');
    // removed and added again by a file: a new endpoint, pending again
    await svc.applyDocument({ ...withApproval(), endpoints: [] }, dir);
    await svc.applyDocument(withApproval(), dir);
    expect(state('web-ep')).toBe('PENDING_ACCEPTANCE');
  });

  it('moving an endpoint to another service starts it afresh there', async () => {
    await svc.action('vpc-endpoint-services', 'web', 'connections/action', {}, { action: 'reject', endpoints: ['web-ep'] });
    await svc.create('vpc-endpoint-services', { name: 'open', backend: { address: '10.3.0.20' }, ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 80 }] });
    await svc.replace('vpc-endpoints', 'web-ep', { service: 'open' });
    expect(state('web-ep')).toBe('ACCEPTED');
  });

  it('a service with endpoints cannot be deleted or renamed under them', async () => {
    await expect(svc.delete('vpc-endpoint-services', 'web')).rejects.toMatchObject({ code: 'ERR_CONFLICT', message: expect.stringMatching(/web-ep/) });
    await expect(svc.replace('vpc-endpoint-services', 'web', { name: 'web2' })).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    await svc.delete('vpc-endpoints', 'web-ep');
    await svc.delete('vpc-endpoint-services', 'web');
    expect(svc.list('vpc-endpoint-services', {}).total_count).toBe(0);
  });

  it('views: the service with its type and connection count, the endpoint with ip, dns_names and flow counters', () => {
    const s = svc.get('vpc-endpoint-services', 'web');
    expect(s).toMatchObject({ name: 'web', status: 'ACTIVE', service_type: 'interface', connections: 1, approvalRequired: true });
    const e = svc.get('vpc-endpoints', 'web-ep');
    expect(e).toMatchObject({
      name: 'web-ep', service: 'web', status: 'PENDING_ACCEPTANCE', ip: '10.2.100.10', dns_names: ['web.endpoint.internal'],
      flows: 2, flows_created: 5, packets_in: 10, bytes_in: 800, packets_out: 8, bytes_out: 640, drops: { endpointDenied: 1 },
    });
    // filters on the state work like any status filter
    expect(svc.list('vpc-endpoints', { filters: { status: 'PENDING_ACCEPTANCE' } }).total_count).toBe(1);
    expect(svc.list('vpc-endpoints', { filters: { status: 'ACCEPTED' } }).total_count).toBe(0);
  });

  it('a config error names the endpoint by name', async () => {
    await expect(svc.create('vpc-endpoints', { name: 'bad', service: 'web', address: '10.9.9.9' }))
      .rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/endpoints\[bad\]\.address.*10\.9\.9\.9/) });
  });
});
