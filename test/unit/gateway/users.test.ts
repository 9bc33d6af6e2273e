import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureLogger, type CapturedLine } from '../../../src/common/log.js';
import { GatewayService } from '../../../src/gateway/service.js';
import {
  LocalUserAuthenticator, checkPassword, hashPassword, parsePasswordHash, type UserConfig,
} from '../../../src/gateway/users.js';
import { Store } from '../../../src/store/store.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';

// The local user backend: scrypt hashes in their self-describing form, the Authenticator over the
// users section, and the management service turning a write-only password into a stored hash that
// no view, list or log ever shows.

// TEST FIXTURE ONLY: not real passwords.
const PASSWORD = 'fixture-password-users-test';

describe('password hashes', () => {
  it('are $scrypt$N=16384,r=8,p=1$<salt>$<hash> with a random salt, and check in both directions', async () => {
    const h = await hashPassword(PASSWORD);
    expect(h).toMatch(/^\$scrypt\$N=16384,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    const p = parsePasswordHash(h)!;
    expect(p.salt).toHaveLength(16);
    expect(p.hash).toHaveLength(32);
    expect(await hashPassword(PASSWORD)).not.toBe(h);
    expect(await checkPassword(PASSWORD, h)).toBe(true);
    expect(await checkPassword(`${PASSWORD}x`, h)).toBe(false);
    expect(await checkPassword('', h)).toBe(false);
  });

  it('parse refuses other formats and costs out of bounds', () => {
    const salt = Buffer.alloc(16, 1).toString('base64');
    const hash = Buffer.alloc(32, 2).toString('base64');
    expect(parsePasswordHash(`$scrypt$N=16384,r=8,p=1$${salt}$${hash}`)).not.toBeNull();
    expect(parsePasswordHash(`$scrypt$N=1000,r=8,p=1$${salt}$${hash}`)).toBeNull(); // not a power of 2
    expect(parsePasswordHash(`$scrypt$N=${2 ** 24},r=8,p=1$${salt}$${hash}`)).toBeNull();
    expect(parsePasswordHash(`$scrypt$N=16384,r=99,p=1$${salt}$${hash}`)).toBeNull();
    expect(parsePasswordHash(`$2b$10$abcdefghijklmnopqrstuv`)).toBeNull();
    expect(parsePasswordHash('plain-text')).toBeNull();
  });

  it('hashing runs off the event loop (a timer fires while a hash is computed)', async () => {
    let ticks = 0;
    const t = setInterval(() => ticks++, 1);
    await Promise.all([hashPassword(PASSWORD), hashPassword(PASSWORD), hashPassword(PASSWORD), hashPassword(PASSWORD)]);
    clearInterval(t);
    expect(ticks).toBeGreaterThan(0);
  });
});

describe('LocalUserAuthenticator', () => {
  let users: UserConfig[] = [];
  const auth = new LocalUserAuthenticator(() => users);
  beforeEach(async () => {
    const { Secret } = await import('../../../src/gateway/config/secret.js');
    const h = new Secret(await hashPassword(PASSWORD));
    users = [
      { name: 'alice', passwordHash: h, disabled: false, groups: [], servers: undefined },
      { name: 'bob', passwordHash: h, disabled: true, groups: ['ops'], servers: undefined },
      { name: 'carol', passwordHash: h, disabled: false, groups: [], servers: ['p2c'] },
    ] as unknown as UserConfig[];
  });

  it('accepts the right password', async () => {
    expect(await auth.verify('alice', PASSWORD, 'p2c')).toEqual({ ok: true, reason: '' });
  });
  it('refuses a wrong password, an unknown user and a disabled one, each with its reason', async () => {
    expect(await auth.verify('alice', 'nope', 'p2c')).toEqual({ ok: false, reason: 'wrong password' });
    expect(await auth.verify('mallory', PASSWORD, 'p2c')).toEqual({ ok: false, reason: 'unknown user' });
    expect(await auth.verify('bob', PASSWORD, 'p2c')).toEqual({ ok: false, reason: 'user disabled' });
  });
  it('a user limited to some servers is refused on the others', async () => {
    expect((await auth.verify('carol', PASSWORD, 'p2c')).ok).toBe(true);
    expect(await auth.verify('carol', PASSWORD, 'other')).toEqual({ ok: false, reason: 'user not allowed on this vpn server' });
  });
  it('reads the users at each login (a change counts at once)', async () => {
    expect((await auth.verify('dave', PASSWORD, 'p2c')).ok).toBe(false);
    users = [...users, { ...users[0]!, name: 'dave' }];
    expect((await auth.verify('dave', PASSWORD, 'p2c')).ok).toBe(true);
  });
});

describe('users as resources (GatewayService)', () => {
  const GATEWAY = { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], api: { enabled: false } };
  let dir = '';
  let store: Store;
  let svc: GatewayService;
  let gw: FakeGateway;
  let lines: CapturedLine[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vpcgw-users-'));
    store = Store.open(join(dir, 'vpcgw.db'));
    lines = [];
    svc = new GatewayService({ store, baseDir: dir, log: captureLogger(lines), source: 'test' });
    await svc.applyDocument({ gateway: GATEWAY }, dir);
    gw = new FakeGateway(svc.config());
    svc.attach(gw);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('create: the password is hashed, never stored, returned, listed or logged; the hash is not shown either', async () => {
    await svc.create('user-groups', { name: 'eng' });
    const v = await svc.create('users', { name: 'alice', password: PASSWORD, groups: ['eng'] });
    expect(v).toMatchObject({ name: 'alice', groups: ['eng'] });
    expect(v).not.toHaveProperty('password');
    expect(v).not.toHaveProperty('passwordHash');
    const row = store.getByName('user', 'alice')!;
    const spec = row.spec as Record<string, unknown>;
    expect(spec).not.toHaveProperty('password');
    expect(await checkPassword(PASSWORD, spec.passwordHash as string)).toBe(true);
    const everything = JSON.stringify([v, svc.list('user', {}), svc.get('user', 'alice'), lines, store.all('user')]);
    expect(everything).not.toContain(PASSWORD);
    expect(JSON.stringify([v, svc.list('user', {}), svc.get('user', 'alice'), lines])).not.toContain(spec.passwordHash as string);
    // the daemon got it live, with the hash
    expect(gw.applied).toHaveLength(2); // the group, then the user
    expect(gw.applied[1]!.users.map((u) => u.name)).toEqual(['alice']);
    expect(await checkPassword(PASSWORD, gw.applied[1]!.users[0]!.passwordHash.reveal())).toBe(true);
  });

  it('replace: a new password changes the hash; other changes keep the stored one; disable/enable', async () => {
    await svc.create('user', { name: 'alice', password: PASSWORD });
    const h1 = (store.getByName('user', 'alice')!.spec as { passwordHash: string }).passwordHash;
    await svc.replace('user', 'alice', { disabled: true });
    const s2 = store.getByName('user', 'alice')!.spec as { passwordHash: string; disabled: boolean };
    expect(s2).toMatchObject({ passwordHash: h1, disabled: true });
    // a client that PUTs back what it read (no hash in it) keeps the hash
    const { id: _id, status: _s, created_at: _c, updated_at: _u, ...shown } = svc.get('user', 'alice');
    await svc.replace('user', 'alice', { ...shown, disabled: false });
    expect((store.getByName('user', 'alice')!.spec as { passwordHash: string }).passwordHash).toBe(h1);
    await svc.replace('user', 'alice', { password: 'another-fixture-password' });
    const h3 = (store.getByName('user', 'alice')!.spec as { passwordHash: string }).passwordHash;
    expect(h3).not.toBe(h1);
    expect(await checkPassword('another-fixture-password', h3)).toBe(true);
    expect(gw.config.users[0]!.disabled).toBe(false);
  });

  it('refuses a user without a password, a bad hash, an empty password, and duplicates', async () => {
    await expect(svc.create('user', { name: 'x' })).rejects.toThrow(/users\[x\]\.passwordHash/);
    await expect(svc.create('user', { name: 'x', passwordHash: 'plain' })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
    await expect(svc.create('user', { name: 'x', password: '' })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
    await svc.create('user', { name: 'x', password: PASSWORD });
    await expect(svc.create('user', { name: 'x', password: PASSWORD })).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    const bad = lines.map((l) => JSON.stringify(l)).join('\n');
    expect(bad).not.toContain(PASSWORD);
  });

  it('a config document may list users with their hashes (vpcgw apply)', async () => {
    const passwordHash = await hashPassword(PASSWORD);
    const r = await svc.applyDocument({ gateway: GATEWAY, users: [{ name: 'alice', passwordHash }] }, dir);
    expect(r.plan).toEqual([{ op: 'create', kind: 'user', name: 'alice' }]);
    expect(svc.config().users[0]!.name).toBe('alice');
    expect(JSON.stringify(svc.list('users', {}))).not.toContain(passwordHash);
  });
});

describe('config file: users and vpnServers auth types', () => {
  const base = (server: string, users = ''): string => `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
vpnServers:
  - { name: p2c, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], serverCert: { cert: s.crt, key: s.key }, ${server} }
${users}`;

  it('auth password needs no clientCa; cert and cert+password do', async () => {
    const { parseConfig } = await import('../../../src/gateway/config/index.js');
    expect(parseConfig(base('auth: { type: password }'), 'x.yaml').vpnServers[0]!.auth.type).toBe('password');
    expect(() => parseConfig(base('auth: { type: cert+password }'), 'x.yaml')).toThrow(/vpnServers\[0\]\.clientCa.*auth\.type cert\+password/);
    expect(() => parseConfig(base('auth: { type: cert }'), 'x.yaml')).toThrow(/vpnServers\[0\]\.clientCa/);
    expect(parseConfig(base('auth: { type: cert+password }, clientCa: ca.crt'), 'x.yaml').vpnServers[0]!.clientCa).toMatch(/ca\.crt$/);
  });

  it('users: a hash in the scrypt format, unique names; the hash is never echoed in an error', async () => {
    const { parseConfig } = await import('../../../src/gateway/config/index.js');
    const h = await hashPassword(PASSWORD);
    const cfg = parseConfig(base('auth: { type: password }', `userGroups:\n  - { name: eng }\nusers:\n  - { name: alice, passwordHash: "${h}", groups: [eng], servers: [p2c] }\n`), 'x.yaml');
    expect(cfg.users[0]).toMatchObject({ name: 'alice', disabled: false, groups: ['eng'], servers: ['p2c'] });
    expect(JSON.stringify(cfg.users)).not.toContain(h);
    let err: Error | null = null;
    try {
      parseConfig(base('auth: { type: password }', 'users:\n  - { name: alice, passwordHash: "md5-abcdef" }\n'), 'x.yaml');
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(/users\[0\]\.passwordHash/);
    expect(err?.message).not.toContain('md5-abcdef');
    expect(() => parseConfig(base('auth: { type: password }', `users:\n  - { name: a, passwordHash: "${h}" }\n  - { name: a, passwordHash: "${h}" }\n`), 'x.yaml'))
      .toThrow(/users\[1\]\.name/);
  });
});

describe('client profile of a password server', () => {
  const yaml = (extra: string): string => `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
vpnServers:
  - { name: p2c, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], serverCert: { cert: s.crt, key: s.key }, ${extra} }
`;
  const readFile = (): string => '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

  it('asks for a username/password; no certificate placeholder with password, one with cert+password', async () => {
    const { parseConfig } = await import('../../../src/gateway/config/index.js');
    const { clientProfile } = await import('../../../src/gateway/client-profile.js');
    const pw = clientProfile(parseConfig(yaml('auth: { type: password }, clientCa: ca.crt'), 'x.yaml'), 'p2c', { readFile }).text;
    expect(pw).toMatch(/^auth-user-pass$/m);
    expect(pw).not.toContain('#<cert>');
    const both = clientProfile(parseConfig(yaml('auth: { type: cert+password }, clientCa: ca.crt'), 'x.yaml'), 'p2c', { readFile }).text;
    expect(both).toMatch(/^auth-user-pass$/m);
    expect(both).toContain('#<cert>');
    const cert = clientProfile(parseConfig(yaml('auth: { type: cert }, clientCa: ca.crt'), 'x.yaml'), 'p2c', { readFile }).text;
    expect(cert).not.toContain('auth-user-pass');
  });

  it('without clientCa there is no CA for the profile: ERR_STATE naming the field', async () => {
    const { parseConfig } = await import('../../../src/gateway/config/index.js');
    const { clientProfile } = await import('../../../src/gateway/client-profile.js');
    expect(() => clientProfile(parseConfig(yaml('auth: { type: password }'), 'x.yaml'), 'p2c', { readFile }))
      .toThrow(expect.objectContaining({ code: 'ERR_STATE', message: expect.stringMatching(/clientCa/) }));
  });
});
