// `vpcgw admin ...` (the web console's password logins) against the real control handlers over a
// real control socket and a real store: the password comes from stdin, only its scrypt hash is
// stored, list never shows it, and the service's check accepts it (and nothing else).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../../../src/cli.js';
import { captureLogger, type CapturedLine } from '../../../src/common/log.js';
import { ControlServer } from '../../../src/gateway/control.js';
import { controlHandlers } from '../../../src/gateway/run.js';
import { GatewayService } from '../../../src/gateway/service.js';
import { parsePasswordHash } from '../../../src/gateway/users.js';
import { Store } from '../../../src/store/store.js';

// TEST FIXTURE ONLY: not a real password.
const PASSWORD = 'fixture-console-admin-pw';

let dir = '';
let store: Store;
let svc: GatewayService;
let srv: ControlServer;
let lines: CapturedLine[];
let sock = '';

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-admin-cli-'));
  store = Store.open(join(dir, 'vpcgw.db'));
  lines = [];
  svc = new GatewayService({ store, baseDir: dir, log: captureLogger(lines), source: 'test' });
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

describe('vpcgw admin', () => {
  it('add reads the password from stdin and stores only its scrypt hash; list shows names only', async () => {
    expect(await cli(['admin', 'add', 'alice', '--password-stdin'], `${PASSWORD}\nignored\n`)).toMatchObject({ code: 0, out: 'admin alice: added\n' });
    const hash = store.adminPasswordHash('alice')!;
    expect(parsePasswordHash(hash)).toMatchObject({ N: 16384, r: 8, p: 1 });
    expect(hash).not.toContain(PASSWORD);
    expect(await svc.verifyAdminPassword('alice', PASSWORD)).toBe(true);
    expect(await svc.verifyAdminPassword('alice', `${PASSWORD}x`)).toBe(false);
    expect(await svc.verifyAdminPassword('bob', PASSWORD)).toBe(false);

    const list = await cli(['admin', 'list']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^alice {2}\(added \d{4}-/);
    const json = await cli(['admin', 'list', '--json']);
    expect(JSON.parse(json.out)).toEqual([{ name: 'alice', createdAt: expect.any(String), updatedAt: expect.any(String) }]);
    for (const text of [list.out, json.out, JSON.stringify(lines), readFileSync(join(dir, 'vpcgw.db')).toString('latin1')]) expect(text).not.toContain(PASSWORD);
  });

  it('refuses a duplicate, a short password, a bad name, a missing password; remove deletes', async () => {
    await cli(['admin', 'add', 'alice', '--password-stdin'], PASSWORD);
    const dup = await cli(['admin', 'add', 'alice', '--password-stdin'], PASSWORD);
    expect(dup.code).not.toBe(0);
    expect(dup.err).toContain('exists already');
    expect((await cli(['admin', 'add', 'bob', '--password-stdin'], 'short')).err).toContain('8 to');
    expect((await cli(['admin', 'add', 'b b', '--password-stdin'], PASSWORD)).err).toContain('not valid');
    expect((await cli(['admin', 'add', 'carol', '--password-stdin'], '')).err).toContain('no password');
    expect((await cli(['admin', 'frobnicate'])).err).toContain('add, remove or list');

    expect(await cli(['admin', 'remove', 'alice'])).toMatchObject({ code: 0, out: 'admin alice: removed\n' });
    expect(await svc.verifyAdminPassword('alice', PASSWORD)).toBe(false);
    expect((await cli(['admin', 'remove', 'alice'])).err).toContain('no admin named');
    expect((await cli(['admin', 'list'])).out).toBe('no admins (vpcgw admin add NAME)\n');
  });
});
