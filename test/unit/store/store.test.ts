// The embedded store (src/store/store.ts): file modes and connection settings, resources (CRUD,
// names unique per kind, creation order, offset and marker pagination, filters), transactions,
// API tokens (only the hash on disk), meta, and the behaviour after close().
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VpnError } from '../../../src/common/errors.js';
import { captureLogger } from '../../../src/common/log.js';
import { Store, STORE_BUSY_TIMEOUT_MS } from '../../../src/store/store.js';

let dir: string;
let file: string;
const open: Store[] = [];

/** Opens a store that afterEach closes. */
function openStore(opts: Parameters<typeof Store.open>[1] = {}, path = file): Store {
  const s = Store.open(path, opts);
  open.push(s);
  return s;
}

/** A clock the test moves by hand. */
function manualClock(startIso = '2026-12-05T07:00:00.000Z') {
  const c = { ms: Date.parse(startIso), now: () => c.ms };
  return c;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof VpnError) return e.code;
    throw e;
  }
  return undefined;
}

function errorOf(fn: () => unknown): VpnError {
  try {
    fn();
  } catch (e) {
    if (e instanceof VpnError) return e;
    throw e;
  }
  throw new Error('no error was thrown');
}

const modeOf = (p: string) => statSync(p).mode & 0o777;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-store-'));
  file = join(dir, 'vpcgw.db');
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Store.open: files and connection', () => {
  it('creates the db, -wal and -shm with mode 0600 even under umask 000', () => {
    const old = process.umask(0);
    let s: Store;
    try {
      s = openStore();
    } finally {
      process.umask(old);
    }
    // a write after the umask is back creates WAL frames; SQLite gives -wal/-shm the db's mode
    s.insert('vpn-connection', 'c1', { auth: { psk: 'secret' } });
    for (const suffix of ['', '-wal', '-shm']) {
      expect(existsSync(file + suffix), suffix).toBe(true);
      expect(modeOf(file + suffix).toString(8), `mode of ${file}${suffix}`).toBe('600');
    }
    s.close();
    const again = openStore();
    again.insert('vpn-connection', 'c2', {});
    for (const suffix of ['', '-wal', '-shm']) expect(modeOf(file + suffix).toString(8)).toBe('600');
  });

  it('refuses a db file whose mode is wider than 0600, naming the file', () => {
    openStore().close();
    chmodSync(file, 0o644);
    const err = errorOf(() => openStore());
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(file);
    expect(err.message).toContain('0644');
    expect(modeOf(file)).toBe(0o644); // left as it is: the operator decides
    chmodSync(file, 0o600);
    expect(openStore().count('x')).toBe(0);
  });

  it('refuses a -wal or -shm companion that is too readable, and accepts a narrower 0400', () => {
    openStore().close();
    writeFileSync(file + '-wal', '', { mode: 0o640 });
    chmodSync(file + '-wal', 0o640);
    const err = errorOf(() => openStore());
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(file + '-wal');
    rmSync(file + '-wal');
    writeFileSync(file + '-shm', '');
    chmodSync(file + '-shm', 0o604);
    expect(codeOf(() => openStore())).toBe('ERR_IO');
    rmSync(file + '-shm');
    chmodSync(file, 0o400); // narrower is fine (root writes regardless of the mode)
    const s = openStore();
    expect(modeOf(file).toString(8)).toBe('600'); // chmod after open sets exactly 0600
    expect(s.integrityCheck()).toBe('ok');
  });

  it('a directory in place of the file is an IoError naming it', () => {
    const err = errorOf(() => openStore({}, dir));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(`${dir} is not a regular file`);
  });

  it('a file that is not a database is an IoError naming it', () => {
    writeFileSync(file, 'this is not an SQLite database, just some text that is long enough'.repeat(20), { mode: 0o600 });
    const err = errorOf(() => openStore());
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(file);
  });

  it('a missing directory is an IoError naming the file', () => {
    const err = errorOf(() => openStore({}, join(dir, 'missing', 'vpcgw.db')));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(join(dir, 'missing', 'vpcgw.db'));
  });

  it('uses WAL, synchronous=FULL, foreign keys, a busy timeout and secure_delete', () => {
    const s = openStore();
    const db = s['db'];
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(STORE_BUSY_TIMEOUT_MS);
    expect(db.pragma('secure_delete', { simple: true })).toBe(1);
  });

  it('two connections to one file see each other\'s commits', () => {
    const a = openStore();
    const b = openStore();
    const r = a.insert('customer-gateway', 'dc1', { address: '192.0.2.1' });
    expect(b.get(r.id)?.spec).toEqual({ address: '192.0.2.1' });
    expect(codeOf(() => b.insert('customer-gateway', 'dc1', {}))).toBe('ERR_CONFLICT');
  });
});

describe('resources', () => {
  it('insert, get, getByName, update, remove', () => {
    const clock = manualClock();
    const s = openStore({ clock: clock.now });
    const spec = { customerGateway: 'dc1', auth: { psk: 'a long random secret ☃' }, remoteSubnets: ['10.1.0.0/16'], dpd: { interval: '30s' } };
    const r = s.insert('vpn-connection', 'dc1-main', spec);
    expect(r.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r).toEqual({ id: r.id, kind: 'vpn-connection', name: 'dc1-main', spec, createdAt: '2026-12-05T07:00:00.000Z', updatedAt: '2026-12-05T07:00:00.000Z' });
    expect(r.spec).not.toBe(spec); // a copy: the caller's object is not aliased
    expect(s.get(r.id)).toEqual(r);
    expect(s.getByName('vpn-connection', 'dc1-main')).toEqual(r);
    expect(s.getByName('customer-gateway', 'dc1-main')).toBeUndefined();
    expect(s.get('00000000-0000-4000-8000-000000000000')).toBeUndefined();

    clock.ms += 1234;
    const u = s.update(r.id, 'dc1-backup', { ...spec, startAction: 'none' });
    expect(u).toEqual({
      id: r.id,
      kind: 'vpn-connection',
      name: 'dc1-backup',
      spec: { ...spec, startAction: 'none' },
      createdAt: '2026-12-05T07:00:00.000Z',
      updatedAt: '2026-12-05T07:00:01.234Z',
    });
    expect(s.get(r.id)).toEqual(u);
    expect(s.getByName('vpn-connection', 'dc1-main')).toBeUndefined();

    clock.ms -= 60_000; // the clock steps back: updated_at does not go backwards
    expect(s.update(r.id, 'dc1-backup', spec).updatedAt).toBe('2026-12-05T07:00:01.234Z');

    expect(s.remove(r.id)).toBe(true);
    expect(s.remove(r.id)).toBe(false);
    expect(s.get(r.id)).toBeUndefined();
    expect(s.count('vpn-connection')).toBe(0);
  });

  it('update of a missing id is ERR_NOT_FOUND', () => {
    const s = openStore();
    expect(codeOf(() => s.update('00000000-0000-4000-8000-000000000000', 'x', {}))).toBe('ERR_NOT_FOUND');
  });

  it('keeps the spec exactly as written (JSON types, key order, unicode, secrets)', () => {
    const s = openStore();
    const spec = { z: 1, a: [true, null, 1.5, -3, 'x'], nested: { psk: 'p"s\\k\n', ü: '✓' }, empty: {}, list: [] };
    const r = s.insert('vpn-server', 'ssl1', spec);
    const back = s.get(r.id)!.spec;
    expect(back).toEqual(spec);
    expect(JSON.stringify(back)).toBe(JSON.stringify(spec));
    const raw = s['db'].prepare('SELECT spec FROM resources WHERE id = ?').pluck().get(r.id);
    expect(raw).toBe(JSON.stringify(spec));
  });

  it('rejects arguments outside the contract with ERR_INVALID_ARG', () => {
    const s = openStore();
    expect(codeOf(() => s.insert('', 'a', {}))).toBe('ERR_INVALID_ARG');
    expect(codeOf(() => s.insert('k', '', {}))).toBe('ERR_INVALID_ARG');
    expect(codeOf(() => s.insert('k', 'a', undefined))).toBe('ERR_INVALID_ARG');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(codeOf(() => s.insert('k', 'a', cyclic))).toBe('ERR_INVALID_ARG');
    expect(codeOf(() => s.insert('k', 'a', 10n))).toBe('ERR_INVALID_ARG');
    expect(s.count('k')).toBe(0);
  });

  it('names are unique per kind; the same name in two kinds is fine', () => {
    const s = openStore();
    const a = s.insert('customer-gateway', 'dc1', { address: '192.0.2.1' });
    const err = errorOf(() => s.insert('customer-gateway', 'dc1', { address: '192.0.2.9' }));
    expect(err.code).toBe('ERR_CONFLICT');
    expect(err.message).toContain('dc1');
    expect(s.all('customer-gateway').map((r) => r.spec)).toEqual([{ address: '192.0.2.1' }]);

    const b = s.insert('vpn-connection', 'dc1', {});
    expect(b.id).not.toBe(a.id);
    const c = s.insert('customer-gateway', 'dc2', {});
    expect(codeOf(() => s.update(c.id, 'dc1', {}))).toBe('ERR_CONFLICT');
    expect(s.get(c.id)?.name).toBe('dc2');
    expect(s.update(c.id, 'dc2', { changed: true }).name).toBe('dc2'); // its own name is no conflict
    expect(s.remove(a.id)).toBe(true);
    expect(s.insert('customer-gateway', 'dc1', {}).name).toBe('dc1'); // free again
  });

  it('all() and list() return creation order, not name order or update order, and never reuse a position', () => {
    const s = openStore();
    const names = ['zeta', 'alpha', 'mu', 'beta'];
    const ids = names.map((n) => s.insert('vpn-connection', n, { n }).id);
    s.insert('customer-gateway', 'other', {});
    s.update(ids[0]!, 'omega', {});
    expect(s.all('vpn-connection').map((r) => r.name)).toEqual(['omega', 'alpha', 'mu', 'beta']);
    expect(s.count('vpn-connection')).toBe(4);
    expect(s.count('customer-gateway')).toBe(1);
    expect(s.count('nothing')).toBe(0);
    expect(s.all('nothing')).toEqual([]);

    // deleting the newest row does not hand its position to the next insert
    s.remove(ids[3]!);
    const e = s.insert('vpn-connection', 'epsilon', {});
    expect(s.all('vpn-connection').map((r) => r.name)).toEqual(['omega', 'alpha', 'mu', 'epsilon']);
    expect(s.list('vpn-connection', { limit: 10, afterId: ids[2]! }).rows.map((r) => r.id)).toEqual([e.id]);
  });

  describe('list', () => {
    function fill(s: Store, n: number): string[] {
      return s.transaction(() => {
        const ids: string[] = [];
        for (let i = 0; i < n; i++) ids.push(s.insert('vpn-connection', `c${String(n - i).padStart(3, '0')}`, { i, customerGateway: i % 3 === 0 ? 'dc1' : 'dc2' }).id);
        s.insert('customer-gateway', 'dc1', {});
        return ids;
      });
    }

    it('offset pagination covers every row once, in order; total counts all matches', () => {
      const s = openStore();
      const ids = fill(s, 25);
      const seen: string[] = [];
      for (let offset = 0; offset < 30; offset += 10) {
        const page = s.list('vpn-connection', { limit: 10, offset });
        expect(page.total).toBe(25);
        expect(page.rows.length).toBe(Math.min(10, Math.max(0, 25 - offset)));
        seen.push(...page.rows.map((r) => r.id));
      }
      expect(seen).toEqual(ids);
      expect(s.list('vpn-connection', { limit: 10, offset: 100 })).toEqual({ rows: [], total: 25 });
      expect(s.list('vpn-connection', { limit: 0 })).toEqual({ rows: [], total: 25 });
      expect(s.list('nothing', { limit: 10 })).toEqual({ rows: [], total: 0 });
    });

    it('marker pagination (afterId) covers every row once, even when rows are added and removed between pages', () => {
      const s = openStore();
      const ids = fill(s, 25);
      const created = ids.slice();
      const seen: string[] = [];
      let marker: string | undefined;
      for (let pageNo = 0; ; pageNo++) {
        const page = s.list('vpn-connection', { limit: 7, ...(marker ? { afterId: marker } : {}) });
        if (page.rows.length === 0) break;
        seen.push(...page.rows.map((r) => r.id));
        marker = page.rows[page.rows.length - 1]!.id;
        if (pageNo === 1) {
          // between pages: one already seen row goes (offsets would now skip a row), one is added
          s.remove(ids[3]!);
          ids.splice(3, 1);
          const added = s.insert('vpn-connection', 'late', { i: 99 }).id;
          ids.push(added);
          created.push(added);
        }
      }
      expect(seen).toEqual(created); // each row once, in creation order, the late one at the end
      // afterId and offset combine: skip `offset` rows after the marker
      expect(s.list('vpn-connection', { limit: 2, afterId: ids[0]!, offset: 1 }).rows.map((r) => r.id)).toEqual([ids[2], ids[3]]);
    });

    it('a marker that is deleted, unknown or of another kind is ERR_BAD_REQUEST', () => {
      const s = openStore();
      const ids = fill(s, 5);
      const gw = s.getByName('customer-gateway', 'dc1')!;
      expect(codeOf(() => s.list('vpn-connection', { limit: 5, afterId: gw.id }))).toBe('ERR_BAD_REQUEST');
      expect(codeOf(() => s.list('vpn-connection', { limit: 5, afterId: 'nope' }))).toBe('ERR_BAD_REQUEST');
      s.remove(ids[1]!);
      expect(codeOf(() => s.list('vpn-connection', { limit: 5, afterId: ids[1]! }))).toBe('ERR_BAD_REQUEST');
      expect(s.list('vpn-connection', { limit: 5, afterId: ids[4]! })).toEqual({ rows: [], total: 4 });
    });

    it('filters by name and by top-level string fields of the spec', () => {
      const s = openStore();
      fill(s, 9);
      const byName = s.list('vpn-connection', { limit: 10, where: { name: 'c005' } });
      expect(byName.total).toBe(1);
      expect(byName.rows[0]!.spec).toEqual({ i: 4, customerGateway: 'dc2' });
      expect(s.list('vpn-connection', { limit: 10, where: { name: 'none' } })).toEqual({ rows: [], total: 0 });

      const dc1 = s.list('vpn-connection', { limit: 2, where: { fields: { customerGateway: 'dc1' } } });
      expect(dc1.total).toBe(3);
      expect(dc1.rows.map((r) => (r.spec as { i: number }).i)).toEqual([0, 3]);
      const next = s.list('vpn-connection', { limit: 2, afterId: dc1.rows[1]!.id, where: { fields: { customerGateway: 'dc1' } } });
      expect(next.rows.map((r) => (r.spec as { i: number }).i)).toEqual([6]);
      expect(s.list('vpn-connection', { limit: 10, where: { name: 'c009', fields: { customerGateway: 'dc1' } } }).total).toBe(1);
      expect(s.list('vpn-connection', { limit: 10, where: { name: 'c009', fields: { customerGateway: 'dc2' } } }).total).toBe(0);
    });

    it('a field filter matches strings only, never a number or the JSON text of an object', () => {
      const s = openStore();
      s.insert('vpn-connection', 'a', { auth: { psk: 'x' }, port: 500, label: '500' });
      expect(s.list('vpn-connection', { limit: 5, where: { fields: { auth: '{"psk":"x"}' } } }).total).toBe(0);
      expect(s.list('vpn-connection', { limit: 5, where: { fields: { port: '500' } } }).total).toBe(0);
      expect(s.list('vpn-connection', { limit: 5, where: { fields: { label: '500' } } }).total).toBe(1);
      expect(s.list('vpn-connection', { limit: 5, where: { fields: { missing: 'x' } } }).total).toBe(0);
    });

    it('rejects a bad limit, offset or field name with ERR_INVALID_ARG', () => {
      const s = openStore();
      expect(codeOf(() => s.list('k', { limit: -1 }))).toBe('ERR_INVALID_ARG');
      expect(codeOf(() => s.list('k', { limit: 1.5 }))).toBe('ERR_INVALID_ARG');
      expect(codeOf(() => s.list('k', { limit: 1, offset: -2 }))).toBe('ERR_INVALID_ARG');
      expect(codeOf(() => s.list('k', { limit: 1, where: { fields: { 'a"); DROP TABLE resources; --': 'x' } } }))).toBe('ERR_INVALID_ARG');
      expect(codeOf(() => s.list('k', { limit: 1, where: { fields: { 'a.b': 'x' } } }))).toBe('ERR_INVALID_ARG');
    });
  });
});

describe('transaction', () => {
  it('commits on return, rolls back on throw, and nests', () => {
    const s = openStore();
    expect(s.transaction(() => s.insert('k', 'a', {}).name)).toBe('a');
    expect(() =>
      s.transaction(() => {
        s.insert('k', 'b', {});
        s.setMeta('m', '1');
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(s.all('k').map((r) => r.name)).toEqual(['a']);
    expect(s.getMeta('m')).toBeUndefined();

    s.transaction(() => {
      s.insert('k', 'c', {});
      try {
        s.transaction(() => {
          s.insert('k', 'd', {});
          throw new Error('inner');
        });
      } catch {
        // the inner savepoint rolled back; the outer transaction goes on
      }
      // a conflict caught inside a transaction leaves the transaction usable
      expect(codeOf(() => s.insert('k', 'c', {}))).toBe('ERR_CONFLICT');
      s.insert('k', 'e', {});
    });
    expect(s.all('k').map((r) => r.name)).toEqual(['a', 'c', 'e']);
  });
});

describe('API tokens', () => {
  it('create, verify (ok, wrong, deleted), list without the hash', () => {
    const clock = manualClock();
    const s = openStore({ clock: clock.now });
    const t = s.createToken('ci');
    expect(t.token).toMatch(/^vpcgw_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(t.token.slice(6), 'base64url').length).toBe(32);
    const t2 = s.createToken('laptop');
    expect(t2.token).not.toBe(t.token);

    expect(s.verifyToken(t.token)).toBe(true);
    expect(s.verifyToken(t2.token)).toBe(true);
    const last = t.token.at(-1) === 'A' ? 'B' : 'A';
    expect(s.verifyToken(t.token.slice(0, -1) + last)).toBe(false);
    expect(s.verifyToken(t.token + 'A')).toBe(false);
    expect(s.verifyToken(t.token.slice(6))).toBe(false);
    expect(s.verifyToken('')).toBe(false);
    expect(s.verifyToken(undefined as unknown as string)).toBe(false);
    expect(s.verifyToken('vpcgw_' + 'A'.repeat(43))).toBe(false);

    const list = s.listTokens();
    expect(list).toEqual([
      { id: t.id, name: 'ci', createdAt: '2026-12-05T07:00:00.000Z', lastUsedAt: '2026-12-05T07:00:00.000Z' },
      { id: t2.id, name: 'laptop', createdAt: '2026-12-05T07:00:00.000Z', lastUsedAt: '2026-12-05T07:00:00.000Z' },
    ]);
    for (const info of list) expect(Object.keys(info).sort()).toEqual(['createdAt', 'id', 'lastUsedAt', 'name']);

    expect(s.deleteToken(t.id)).toBe(true);
    expect(s.deleteToken(t.id)).toBe(false);
    expect(s.verifyToken(t.token)).toBe(false);
    expect(s.verifyToken(t2.token)).toBe(true);
    expect(s.listTokens().map((i) => i.id)).toEqual([t2.id]);
  });

  it('records the last use at most once a minute', () => {
    const clock = manualClock();
    const s = openStore({ clock: clock.now });
    const t = s.createToken('ci');
    expect(s.listTokens()[0]!.lastUsedAt).toBeNull();
    const changes = () => s['db'].prepare('SELECT total_changes()').pluck().get() as number;
    s.verifyToken(t.token);
    const after1 = changes();
    clock.ms += 59_999;
    for (let i = 0; i < 5; i++) expect(s.verifyToken(t.token)).toBe(true);
    expect(changes()).toBe(after1); // no write
    expect(s.listTokens()[0]!.lastUsedAt).toBe('2026-12-05T07:00:00.000Z');
    clock.ms += 1;
    s.verifyToken(t.token);
    expect(s.listTokens()[0]!.lastUsedAt).toBe('2026-12-05T07:01:00.000Z');
  });

  it('a failure to record the last use is logged, and the token is still accepted', () => {
    const log = captureLogger();
    const s = openStore({ log });
    const t = s.createToken('ci');
    const statements = s['s'] as unknown as Record<string, unknown>;
    statements.touchToken = {
      run: () => {
        throw new Database.SqliteError('database or disk is full', 'SQLITE_FULL');
      },
    };
    expect(s.verifyToken(t.token)).toBe(true);
    const warn = log.lines.find((l) => l.level === 'warn');
    expect(warn?.msg).toBe('store: cannot record the last use of an API token');
    expect((warn?.obj as { err: Error; tokenId: string }).err.message).toBe('database or disk is full');
    expect((warn?.obj as { tokenId: string }).tokenId).toBe(t.id);
    expect(JSON.stringify(log.lines)).not.toContain(t.token.slice(6));
  });

  it('stores the SHA-256 of a token, never the token (the file bytes, open and closed)', () => {
    const s = openStore();
    const tokens = [s.createToken('a'), s.createToken('b')];
    for (const t of tokens) s.verifyToken(t.token);
    const bytesNow = () => Buffer.concat(['', '-wal'].filter((x) => existsSync(file + x)).map((x) => readFileSync(file + x)));
    const check = (bytes: Buffer) => {
      for (const { token } of tokens) {
        expect(bytes.includes(token)).toBe(false);
        expect(bytes.includes(token.slice(6))).toBe(false);
        expect(bytes.includes(createHash('sha256').update(token).digest('hex'))).toBe(true);
      }
    };
    check(bytesNow()); // in the WAL while open
    s.close();
    expect(existsSync(file + '-wal')).toBe(false); // checkpointed into the db at close
    check(readFileSync(file));
  });
});

describe('meta', () => {
  it('get, set, overwrite', () => {
    const s = openStore();
    expect(s.getMeta('apply.lastFile')).toBeUndefined();
    s.setMeta('apply.lastFile', '/etc/vpcgw.yaml');
    expect(s.getMeta('apply.lastFile')).toBe('/etc/vpcgw.yaml');
    s.setMeta('apply.lastFile', '');
    expect(s.getMeta('apply.lastFile')).toBe('');
    expect(codeOf(() => s.setMeta('k', 1 as unknown as string))).toBe('ERR_INVALID_ARG');
    s.close();
    expect(openStore().getMeta('apply.lastFile')).toBe('');
  });
});

describe('integrity and close', () => {
  it('integrityCheck is ok on a healthy file', () => {
    const s = openStore();
    for (let i = 0; i < 50; i++) s.insert('user', `u${i}`, { i, pad: 'x'.repeat(i * 40) });
    expect(s.integrityCheck()).toBe('ok');
  });

  it('integrityCheck reports a damaged index instead of throwing', () => {
    const s = openStore();
    for (let i = 0; i < 20; i++) s.insert('user', `u${i}`, { i });
    const db = s['db'];
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const root = db.prepare(`SELECT rootpage FROM sqlite_schema WHERE name = 'resources_kind_seq'`).pluck().get() as number;
    s.close();
    // zero the index's root page in the file (the WAL was checkpointed into it at close)
    const bytes = readFileSync(file);
    bytes.fill(0, (root - 1) * pageSize, root * pageSize);
    writeFileSync(file, bytes);
    const result = openStore().integrityCheck();
    expect(result).not.toBe('ok');
    expect(result.length).toBeGreaterThan(0);
  });

  it('close is idempotent; every method afterwards is ERR_STATE', () => {
    const s = openStore();
    const r = s.insert('k', 'a', {});
    s.close();
    s.close();
    const calls: (() => unknown)[] = [
      () => s.insert('k', 'b', {}),
      () => s.update(r.id, 'a', {}),
      () => s.remove(r.id),
      () => s.get(r.id),
      () => s.getByName('k', 'a'),
      () => s.all('k'),
      () => s.list('k', { limit: 1 }),
      () => s.count('k'),
      () => s.transaction(() => 1),
      () => s.createToken('t'),
      () => s.verifyToken('vpcgw_x'),
      () => s.listTokens(),
      () => s.deleteToken('x'),
      () => s.getMeta('k'),
      () => s.setMeta('k', 'v'),
      () => s.integrityCheck(),
    ];
    for (const c of calls) expect(codeOf(c)).toBe('ERR_STATE');
  });
});
