import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../../../src/cli.js';
import { captureLogger, type CapturedLine } from '../../../src/common/log.js';
import { ControlServer } from '../../../src/gateway/control.js';
import { controlHandlers } from '../../../src/gateway/run.js';
import { GatewayService } from '../../../src/gateway/service.js';
import { checkPassword } from '../../../src/gateway/users.js';
import { Store } from '../../../src/store/store.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';

// `vpcgw user ...` against the real control handlers over a real control socket, a real store and a
// fake running gateway: the password comes from stdin only and ends up as a hash in the store.

// TEST FIXTURE ONLY: not real passwords.
const PASSWORD = 'fixture-password-cli';

let dir = '';
let store: Store;
let svc: GatewayService;
let gw: FakeGateway;
let srv: ControlServer;
let lines: CapturedLine[];
let sock = '';

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-user-cli-'));
  store = Store.open(join(dir, 'vpcgw.db'));
  lines = [];
  svc = new GatewayService({ store, baseDir: dir, log: captureLogger(lines), source: 'test' });
  await svc.applyDocument({ gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], api: { enabled: false } } }, dir);
  gw = new FakeGateway(svc.config());
  svc.attach(gw);
  sock = join(dir, 'vpcgw.sock');
  srv = await ControlServer.listen({ path: sock, handlers: controlHandlers(svc) });
});

afterEach(async () => {
  await srv.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, cwd: dir, isRoot: () => true, stdin: async () => stdin };
  const code = await main([...argv, '--control', sock], io);
  return { code, out, err };
}

const hashOf = (name: string): string => (store.getByName('user', name)!.spec as { passwordHash: string }).passwordHash;

describe('vpcgw user', () => {
  it('add reads the password from stdin (first line), with groups and servers; list never shows it', async () => {
    expect(await cli(['group', 'add', 'eng', '--description', 'engineers'])).toMatchObject({ code: 0, out: 'group eng: created\n' });
    await cli(['group', 'add', 'ops']);
    expect(await cli(['user', 'add', 'alice', '--password-stdin', '--group', 'eng', '--group', 'ops', '--server', 'p2c'], `${PASSWORD}\n`))
      .toMatchObject({ code: 0, out: 'user alice: created\n' });
    expect(await checkPassword(PASSWORD, hashOf('alice'))).toBe(true);
    expect(gw.config.users[0]).toMatchObject({ name: 'alice', groups: ['eng', 'ops'], servers: ['p2c'] });
    const l = await cli(['user', 'list']);
    expect(l.out).toMatch(/^NAME\s+STATE\s+GROUPS\s+SERVERS\nalice\s+enabled\s+eng,ops\s+p2c\n$/);
    const j = await cli(['user', 'list', '--json']);
    const items = JSON.parse(j.out) as Record<string, unknown>[];
    expect(items[0]).toMatchObject({ name: 'alice' });
    expect(j.out).not.toContain('passwordHash');
    expect(JSON.stringify([l, j, lines])).not.toContain(PASSWORD);
  });

  it('passwd, disable, enable, remove', async () => {
    await cli(['user', 'add', 'bob', '--password-stdin'], PASSWORD);
    const h1 = hashOf('bob');
    expect(await cli(['user', 'passwd', 'bob', '--password-stdin'], 'new-fixture-password\r\n')).toMatchObject({ code: 0, out: 'user bob: password changed\n' });
    expect(await checkPassword('new-fixture-password', hashOf('bob'))).toBe(true);
    expect(hashOf('bob')).not.toBe(h1);
    expect(await cli(['user', 'disable', 'bob'])).toMatchObject({ code: 0, out: 'user bob: disabled\n' });
    expect(gw.config.users[0]!.disabled).toBe(true);
    expect((await cli(['user', 'list'])).out).toMatch(/bob\s+disabled/);
    expect(await cli(['user', 'enable', 'bob'])).toMatchObject({ code: 0, out: 'user bob: enabled\n' });
    expect(gw.config.users[0]!.disabled).toBe(false);
    expect(await cli(['user', 'remove', 'bob'])).toMatchObject({ code: 0, out: 'user bob: removed\n' });
    expect(gw.config.users).toEqual([]);
    expect((await cli(['user', 'list'])).out).toBe('(none)\n');
  });

  it('refuses a password without --password-stdin, an empty stdin, unknown subcommands and users, in one line', async () => {
    for (const [argv, stdin, re] of [
      [['user', 'add', 'carol'], PASSWORD, /needs --password-stdin/],
      [['user', 'add', 'carol', '--password-stdin'], '', /no password on stdin/],
      [['user', 'frobnicate', 'carol'], '', /subcommand/],
      [['user', 'disable', 'nobody'], '', /no user with id or name "nobody"/],
      [['user', 'add'], '', /one argument/],
      [['user', 'disable', 'carol', '--password-stdin'], '', /--password-stdin goes with/],
    ] as const) {
      const r = await cli([...argv], stdin);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(re);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    }
    expect(store.all('user')).toHaveLength(0);
  });
});

describe('vpcgw group', () => {
  it('add, list, remove; a group users name is not removed; unknown groups on user add are refused naming the field', async () => {
    expect(await cli(['group', 'add', 'eng', '--description', 'engineers'])).toMatchObject({ code: 0 });
    await cli(['group', 'add', 'ops']);
    expect((await cli(['group', 'list'])).out).toMatch(/^NAME\s+DESCRIPTION\neng\s+engineers\nops\s+-\n$/);
    expect(JSON.parse((await cli(['group', 'list', '--json'])).out)).toMatchObject([{ name: 'eng', description: 'engineers' }, { name: 'ops' }]);
    const bad = await cli(['user', 'add', 'carol', '--password-stdin', '--group', 'nope'], PASSWORD);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/users\[carol\]\.groups\[0\].*nope/);
    await cli(['user', 'add', 'carol', '--password-stdin', '--group', 'ops'], PASSWORD);
    const busy = await cli(['group', 'remove', 'ops']);
    expect(busy.code).toBe(1);
    expect(busy.err).toMatch(/users carol/);
    expect(await cli(['group', 'remove', 'eng'])).toMatchObject({ code: 0, out: 'group eng: removed\n' });
    expect((await cli(['group', 'frob'])).code).toBe(1);
  });
});
