import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { GatewayService } from '../../../src/gateway/service.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';
import { Store } from '../../../src/store/store.js';

// The management service over a real store and a fake running gateway: validation through the
// config schema (errors name the resource and field), secrets never shown, references by name or
// id, the declarative plan of `vpcgw apply`, and each change handed to the daemon once.

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-psk-service-not-secret';

const GATEWAY = { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], api: { enabled: false } };
const CGW = { name: 'dc1', address: '192.0.2.1' };
const CONN = { name: 'conn1', customerGateway: 'dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'], auth: { psk: PSK } };

let dir = '';
let store: Store;
let svc: GatewayService;
let gw: FakeGateway;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-svc-'));
  store = Store.open(join(dir, 'vpcgw.db'));
  svc = new GatewayService({ store, baseDir: dir, log: silentLogger, source: 'test' });
  await svc.applyDocument({ gateway: GATEWAY, customerGateways: [CGW] }, dir);
  gw = new FakeGateway(svc.config());
  svc.attach(gw);
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('GatewayService', () => {
  it('creates a connection: stored, handed to the gateway once, shown without its PSK, DOWN until its IKE SA is up', async () => {
    const v = await svc.create('vpn-connection', CONN);
    expect(v).toMatchObject({ name: 'conn1', status: 'DOWN', customerGateway: 'dc1', remoteSubnets: ['10.1.0.0/16'] });
    expect(v.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.stringify(v)).not.toContain(PSK);
    expect(gw.applied).toHaveLength(1);
    expect(gw.applied[0]!.vpnConnections.map((c) => c.name)).toEqual(['conn1']);
    gw.established.add('conn1');
    expect(svc.get('vpn-connection', v.id).status).toBe('ACTIVE');
    expect(svc.get('vpn-connections', 'conn1').status).toBe('ACTIVE');
  });

  it('a connection\'s view carries its last negotiation error (last_error) and says it in status_reason while down', async () => {
    const v = await svc.create('vpn-connection', CONN);
    const err = { code: 'AUTH_REJECTED_BY_PEER', message: 'PSK mismatch (AUTHENTICATION_FAILED from the peer)', hint: 'set the same psk on both sides', at: '2026-01-01T00:00:00.000Z' };
    gw.lastErrors.set('conn1', err);
    expect(svc.get('vpn-connection', v.id)).toMatchObject({ status: 'DOWN', status_reason: err.message, last_error: err });
    gw.established.add('conn1');
    const up = svc.get('vpn-connection', v.id);
    expect(up.status).toBe('ACTIVE');
    expect(up.status_reason).toBeUndefined();
  });

  it('refuses a bad body with the resource and field named, and stores nothing', async () => {
    await expect(svc.create('vpn-connection', { ...CONN, remoteSubnets: ['10.2.5.0/24'] }))
      .rejects.toThrow(/vpnConnections\[conn1\]\.remoteSubnets\[0\].*10\.2\.5\.0\/24/);
    await expect(svc.create('vpn-connection', { ...CONN, customerGateway: 'nope' }))
      .rejects.toThrow(/vpnConnections\[conn1\]\.customerGateway.*nope/);
    await expect(svc.create('vpn-connection', { ...CONN, auth: { psk: 'short' } })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
    await expect(svc.create('vpn-connection', { ...CONN, bogus: 1 })).rejects.toThrow(/bogus/);
    expect(svc.list('vpn-connection', {}).total_count).toBe(0);
    expect(gw.applied).toHaveLength(0);
  });

  it('refuses a second resource with the same name, and deleting or renaming a customer gateway in use', async () => {
    await svc.create('vpn-connection', CONN);
    await expect(svc.create('vpn-connection', CONN)).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    await expect(svc.delete('customer-gateway', 'dc1')).rejects.toThrow(/conn1 use it/);
    await expect(svc.replace('customer-gateway', 'dc1', { ...CGW, name: 'dc9' })).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    expect(() => svc.get('vpn-connection', 'nope')).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
  });

  it('a customer gateway\'s IKE identity is ikeId; the former spelling "id" is read and stored as ikeId', async () => {
    const v = await svc.create('customer-gateway', { name: 'dc2', address: '192.0.2.3', id: 'fqdn:dc2.example' });
    expect(v.ikeId).toBe('fqdn:dc2.example');
    expect(v.id).toMatch(/^[0-9a-f-]{36}$/);
    const u = await svc.replace('customer-gateway', 'dc2', { id: 'fqdn:dc2b.example' });
    expect(u.ikeId).toBe('fqdn:dc2b.example');
    expect(gw.config.customerGateways.find((c) => c.name === 'dc2')!.id).toBe('fqdn:dc2b.example');
  });

  it('takes a customer gateway reference by id and stores it by name', async () => {
    const cgw = svc.get('customer-gateway', 'dc1');
    const v = await svc.create('vpn-connection', { ...CONN, customerGateway: cgw.id });
    expect(v.customerGateway).toBe('dc1');
  });

  it('PUT changes the fields given and keeps the others, the stored PSK included; null removes a field', async () => {
    await svc.create('vpn-connection', { ...CONN, dpd: { interval: '30s' } });
    await svc.replace('vpn-connection', 'conn1', { remoteSubnets: ['10.9.0.0/16'], auth: {} });
    const c1 = gw.config.vpnConnections[0]!;
    expect(c1.remoteSubnets.map((p) => p.text)).toEqual(['10.9.0.0/16']);
    expect(c1.localSubnets.map((p) => p.text)).toEqual(['10.2.0.0/16']);
    expect(c1.auth.psk!.reveal()).toBe(PSK);
    expect(c1.dpd?.intervalSec).toBe(30);
    await svc.replace('vpn-connection', 'conn1', { dpd: null });
    expect(gw.config.vpnConnections[0]!.dpd).toBeNull();
    await svc.replace('vpn-connection', 'conn1', { ...CONN, auth: { psk: `${PSK}-2` } });
    expect(gw.config.vpnConnections[0]!.auth.psk!.reveal()).toBe(`${PSK}-2`);
  });

  it('lists with limit, offset, marker and filters', async () => {
    for (let i = 0; i < 5; i++) await svc.create('vpn-connection', { ...CONN, name: `c${i}`, remoteSubnets: [`10.${10 + i}.0.0/16`] });
    const p1 = svc.list('vpn-connection', { limit: 2 });
    expect(p1.items.map((v) => v.name)).toEqual(['c0', 'c1']);
    expect(p1.total_count).toBe(5);
    expect(p1.page_info).toEqual({ current_count: 2, next_marker: p1.items[1]!.id });
    expect(svc.list('vpn-connection', { limit: 2, marker: p1.page_info.next_marker! }).items.map((v) => v.name)).toEqual(['c2', 'c3']);
    expect(svc.list('vpn-connection', { offset: 4 }).items.map((v) => v.name)).toEqual(['c4']);
    expect(svc.list('vpn-connection', { filters: { name: 'c3' } }).items).toHaveLength(1);
    expect(svc.list('vpn-connection', { filters: { customerGateway: 'dc1' } }).total_count).toBe(5);
    expect(() => svc.list('vpn-connection', { limit: 0 })).toThrow(/limit/);
  });

  it('apply: plans create/update/delete against the store, --dry-run changes nothing, the second run is a no-op', async () => {
    await svc.create('vpn-connection', CONN);
    const doc = {
      gateway: GATEWAY,
      customerGateways: [CGW, { name: 'dc2', address: '192.0.2.3' }],
      vpnConnections: [{ ...CONN, name: 'conn2', customerGateway: 'dc2', remoteSubnets: ['10.3.0.0/16'] }],
    };
    const dry = await svc.applyDocument(doc, dir, { dryRun: true });
    expect(dry.plan).toEqual([
      { op: 'delete', kind: 'vpn-connection', name: 'conn1' },
      { op: 'create', kind: 'customer-gateway', name: 'dc2' },
      { op: 'create', kind: 'vpn-connection', name: 'conn2' },
    ]);
    expect(dry.applied).toBe(false);
    expect(svc.list('vpn-connection', {}).items.map((v) => v.name)).toEqual(['conn1']);
    const done = await svc.applyDocument(doc, dir);
    expect(done.applied).toBe(true);
    expect(svc.list('vpn-connection', {}).items.map((v) => v.name)).toEqual(['conn2']);
    expect(gw.config.vpnConnections.map((c) => c.name)).toEqual(['conn2']);
    expect((await svc.applyDocument(doc, dir)).plan).toEqual([]);
    // a changed gateway section is an update that restarts the packet path
    const again = await svc.applyDocument({ ...doc, gateway: { ...GATEWAY, vpcSubnets: ['10.2.0.0/16', '10.4.0.0/16'] } }, dir, { dryRun: true });
    expect(again.plan).toEqual([{ op: 'update', kind: 'vpn-gateway', name: 'gw1', restarts: true }]);
  });

  it('apply refuses an invalid document as a whole, naming the field, and changes nothing', async () => {
    await expect(svc.applyDocument({ gateway: GATEWAY, customerGateways: [CGW], vpnConnections: [{ ...CONN, localSubnets: ['10.99.0.0/16'] }] }, dir))
      .rejects.toThrow(/vpnConnections\[0\]\.localSubnets\[0\]/);
    expect(svc.list('vpn-connection', {}).total_count).toBe(0);
  });

  it('stores relative paths in a file as absolute paths against the file\'s folder', async () => {
    await expect(svc.applyDocument({ gateway: GATEWAY, customerGateways: [{ ...CGW, ca: 'certs/ca.pem' }] }, '/etc/vpcgw'))
      .rejects.toThrow(/\/etc\/vpcgw\/certs\/ca\.pem/);
  });

  it('a change the running gateway cannot take stays stored with status ERROR and the reason', async () => {
    gw.failNext = new Error('route add failed: EPERM');
    const v = await svc.create('vpn-connection', CONN);
    expect(v.status).toBe('ERROR');
    expect(v.status_reason).toMatch(/EPERM/);
    expect(svc.list('vpn-connection', {}).total_count).toBe(1);
  });

  it('tokens: created once, verified by hash, a wrong one refused', () => {
    const t = svc.createToken('ci');
    expect(svc.verifyToken(t.token)).toBe(true);
    expect(svc.verifyToken(`${t.token}x`)).toBe(false);
  });

  it('the vpn gateway is a singleton: no create, no delete, PUT changes it', async () => {
    await expect(svc.create('vpn-gateway', GATEWAY)).rejects.toMatchObject({ code: 'ERR_STATE' });
    await expect(svc.delete('vpn-gateway', 'gw1')).rejects.toMatchObject({ code: 'ERR_STATE' });
    const v = await svc.replace('vpn-gateway', 'gw1', { vpcSubnets: ['10.2.0.0/16', '10.5.0.0/16'] });
    expect(v.vpcSubnets).toEqual(['10.2.0.0/16', '10.5.0.0/16']);
    expect(gw.config.gateway.vpcSubnets).toHaveLength(2);
  });
});
