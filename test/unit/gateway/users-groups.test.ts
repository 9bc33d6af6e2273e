// User groups and access policies as resources of the management service (the kinds user-group and
// access-policy, like the others): CRUD, references checked against the whole config (errors named
// by resource), a group in use cannot be deleted or renamed, apply documents carry the sections,
// and the running gateway gets every change live.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureLogger } from '../../../src/common/log.js';
import { GatewayService } from '../../../src/gateway/service.js';
import { KINDS } from '../../../src/gateway/resources.js';
import { Store } from '../../../src/store/store.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';

// TEST FIXTURE ONLY: not a real password.
const PASSWORD = 'fixture-password-groups-test';
const GATEWAY = { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], api: { enabled: false } };

let dir = '';
let store: Store;
let svc: GatewayService;
let gw: FakeGateway;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-groups-'));
  store = Store.open(join(dir, 'vpcgw.db'));
  svc = new GatewayService({ store, baseDir: dir, log: captureLogger(), source: 'test' });
  await svc.applyDocument({ gateway: GATEWAY }, dir);
  gw = new FakeGateway(svc.config());
  svc.attach(gw);
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('user-groups and access-policies (GatewayService)', () => {
  it('are kinds with their collections and schemas', () => {
    const g = KINDS.find((k) => k.kind === 'user-group')!;
    const p = KINDS.find((k) => k.kind === 'access-policy')!;
    expect([g.collection, p.collection]).toEqual(['user-groups', 'access-policies']);
    expect(Object.keys((g.schema as { properties: object }).properties)).toEqual(['name', 'description']);
    expect(JSON.stringify(p.schema)).toContain('anyOf');
  });

  it('create, list, update and delete; users show their groups; the daemon gets each change', async () => {
    await svc.create('user-groups', { name: 'eng', description: 'engineers' });
    await svc.create('users', { name: 'alice', password: PASSWORD, groups: ['eng'] });
    const pol = await svc.create('access-policies', {
      name: 'eng-web', group: 'eng', destinations: ['10.2.1.0/24', { cidr: '10.2.2.0/24', protocol: 'tcp', ports: ['443', '8000-8100'] }],
    });
    expect(pol).toMatchObject({ name: 'eng-web', group: 'eng', status: 'ACTIVE' });
    expect(svc.get('users', 'alice')).toMatchObject({ groups: ['eng'] });
    expect(svc.list('user-groups', {}).items.map((i) => i.name)).toEqual(['eng']);
    await svc.replace('access-policies', 'eng-web', { destinations: ['10.2.0.0/16'] });
    expect(gw.config.accessPolicies[0]!.destinations.map((d) => d.text)).toEqual(['10.2.0.0/16']);
    await svc.delete('access-policies', 'eng-web');
    expect(gw.config.accessPolicies).toEqual([]);
    expect(gw.applied).toHaveLength(5);
  });

  it('references: unknown groups are refused naming the resource and field; a group in use is not deleted or renamed', async () => {
    await expect(svc.create('users', { name: 'bob', password: PASSWORD, groups: ['nope'] }))
      .rejects.toThrow(/users\[bob\]\.groups\[0\]: "nope" is not valid: the name of a user group/);
    await expect(svc.create('access-policies', { name: 'p', group: 'nope', destinations: ['10.2.0.0/16'] }))
      .rejects.toThrow(/accessPolicies\[p\]\.group/);
    await svc.create('user-groups', { name: 'ops' });
    await svc.create('access-policies', { name: 'p', group: 'ops', destinations: ['10.2.0.0/16'] });
    await expect(svc.delete('user-groups', 'ops')).rejects.toMatchObject({ code: 'ERR_CONFLICT', message: expect.stringContaining('access policies p') });
    await expect(svc.replace('user-groups', 'ops', { name: 'ops2' })).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    await svc.delete('access-policies', 'p');
    await svc.delete('user-groups', 'ops');
    expect(store.all('user-group')).toEqual([]);
  });

  it('apply -f documents carry userGroups and accessPolicies (deletes of dependents first)', async () => {
    const doc = {
      gateway: GATEWAY,
      userGroups: [{ name: 'eng' }],
      accessPolicies: [{ name: 'eng-web', group: 'eng', destinations: ['10.2.0.0/16'] }],
    };
    const r = await svc.applyDocument(doc, dir);
    expect(r.plan.map((p) => `${p.op} ${p.kind} ${p.name}`)).toEqual(['create user-group eng', 'create access-policy eng-web']);
    const gone = await svc.applyDocument({ gateway: GATEWAY }, dir);
    expect(gone.plan.map((p) => `${p.op} ${p.kind} ${p.name}`)).toEqual(['delete access-policy eng-web', 'delete user-group eng']);
  });
});
