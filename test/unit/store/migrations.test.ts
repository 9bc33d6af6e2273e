// Schema migrations (src/store/migrations.ts, applied by Store.open): a fresh file gets the latest
// version, a v1 file is upgraded when later migrations are added (data kept, one transaction per
// migration), a failed migration leaves the file at its old version, and a file written by a newer
// schema is refused without being touched.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VpnError } from '../../../src/common/errors.js';
import { captureLogger } from '../../../src/common/log.js';
import { checkMigrations, MIGRATIONS, type Migration } from '../../../src/store/migrations.js';
import { Store } from '../../../src/store/store.js';

let dir: string;
let file: string;
/** The tables of the shipped schema. */
const TABLES = ['admins', 'api_tokens', 'endpoint_approvals', 'meta', 'resources'];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-store-mig-'));
  file = join(dir, 'vpcgw.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Reads user_version and the table names with a plain connection (not through Store). */
function inspect(): { version: number; tables: string[] } {
  const db = new Database(file, { readonly: true });
  try {
    return {
      version: db.pragma('user_version', { simple: true }) as number,
      tables: db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[],
    };
  } finally {
    db.close();
  }
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

/** A later migration as one would write it: a new column with data derived from the spec, an index, a table. */
const V2: Migration = {
  version: MIGRATIONS.length + 1,
  description: 'test: resources.customer_gateway from the spec; audit table',
  up: (db) => {
    db.exec(`
      ALTER TABLE resources ADD COLUMN customer_gateway TEXT;
      UPDATE resources SET customer_gateway = json_extract(spec, '$.customerGateway');
      CREATE INDEX resources_customer_gateway ON resources (customer_gateway);
      CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, what TEXT NOT NULL);
    `);
  },
};
const V3: Migration = {
  version: MIGRATIONS.length + 2,
  description: 'test: an audit row',
  up: (db) => {
    db.prepare(`INSERT INTO audit (at, what) VALUES ('2026-12-05T07:00:00.000Z', 'migrated to v3')`).run();
  },
};

describe('migrations', () => {
  it('the shipped list is numbered 1, 2, 3, ... and checkMigrations enforces it', () => {
    expect(() => checkMigrations(MIGRATIONS)).not.toThrow();
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(errorOf(() => checkMigrations([...MIGRATIONS, V3])).code).toBe('ERR_INVALID_ARG');
    expect(errorOf(() => Store.open(file, { migrations: [V2] })).code).toBe('ERR_INVALID_ARG');
  });

  it('a fresh file gets every migration, and logs each', () => {
    const log = captureLogger();
    const s = Store.open(file, { log });
    expect(s.schemaVersion).toBe(MIGRATIONS.length);
    s.close();
    expect(inspect()).toEqual({ version: MIGRATIONS.length, tables: TABLES });
    const migrated = log.lines.filter((l) => l.msg === 'store schema migrated');
    expect(migrated.map((l) => (l.obj as { schemaVersion: number }).schemaVersion)).toEqual(MIGRATIONS.map((m) => m.version));
    // reopening migrates nothing
    const log2 = captureLogger();
    Store.open(file, { log: log2 }).close();
    expect(log2.lines.filter((l) => l.msg === 'store schema migrated')).toEqual([]);
  });

  it('opens a v1 file with later migrations added: upgrades in order and keeps the data', () => {
    const v1 = Store.open(file, { migrations: MIGRATIONS.slice(0, 1) });
    const a = v1.insert('vpn-connection', 'dc1-main', { customerGateway: 'dc1', auth: { psk: 's' } });
    const b = v1.insert('vpn-connection', 'dc2-main', { customerGateway: 'dc2' });
    const t = v1.createToken('ci');
    v1.setMeta('k', 'v');
    v1.close();
    expect(inspect().version).toBe(1);

    const log = captureLogger();
    const s = Store.open(file, { log, migrations: [...MIGRATIONS, V2, V3] });
    expect(s.schemaVersion).toBe(MIGRATIONS.length + 2);
    expect(log.lines.filter((l) => l.msg === 'store schema migrated').map((l) => (l.obj as { schemaVersion: number }).schemaVersion))
      .toEqual([...MIGRATIONS.slice(1).map((m) => m.version), MIGRATIONS.length + 1, MIGRATIONS.length + 2]);
    // the old data, through the Store API
    expect(s.all('vpn-connection')).toEqual([
      expect.objectContaining({ id: a.id, spec: a.spec, createdAt: a.createdAt }),
      expect.objectContaining({ id: b.id, spec: b.spec }),
    ]);
    expect(s.verifyToken(t.token)).toBe(true);
    expect(s.getMeta('k')).toBe('v');
    // what the migrations did
    const db = s['db'];
    expect(db.prepare('SELECT name, customer_gateway FROM resources ORDER BY seq').all()).toEqual([
      { name: 'dc1-main', customer_gateway: 'dc1' },
      { name: 'dc2-main', customer_gateway: 'dc2' },
    ]);
    expect(db.prepare('SELECT what FROM audit').pluck().all()).toEqual(['migrated to v3']);
    // the Store still works on the wider table
    const c = s.insert('vpn-connection', 'dc3-main', { customerGateway: 'dc3' });
    expect(s.list('vpn-connection', { limit: 1, afterId: b.id }).rows).toEqual([c]);
    s.close();
    expect(inspect().version).toBe(MIGRATIONS.length + 2);
  });

  it('a migration that fails is rolled back: the file stays at its old version and opens again once fixed', () => {
    Store.open(file).close();
    const broken: Migration = {
      version: MIGRATIONS.length + 1,
      description: 'test: creates a table, then fails',
      up: (db) => {
        db.exec('CREATE TABLE half_done (x INTEGER)');
        db.exec('SELECT * FROM no_such_table');
      },
    };
    const err = errorOf(() => Store.open(file, { migrations: [...MIGRATIONS, broken] }));
    expect(err.code).toBe('ERR_IO');
    expect(err.message).toContain(file);
    expect(err.message).toContain(`schema version ${MIGRATIONS.length + 1}`);
    expect(inspect()).toEqual({ version: MIGRATIONS.length, tables: TABLES });

    // with V2 and V3 after a good V2, both apply; a failing V3 keeps V2 (its own transaction)
    const failingV3: Migration = { ...V3, up: () => { throw new Error('v3 broke'); } };
    expect(errorOf(() => Store.open(file, { migrations: [...MIGRATIONS, V2, failingV3] })).code).toBe('ERR_IO');
    expect(inspect().version).toBe(MIGRATIONS.length + 1);
    expect(Store.open(file, { migrations: [...MIGRATIONS, V2, V3] }).schemaVersion).toBe(MIGRATIONS.length + 2);
  });

  it('a file written by a newer schema is refused (ERR_STORE_VERSION) and left untouched', () => {
    const newer = Store.open(file, { migrations: [...MIGRATIONS, V2] });
    newer.insert('vpn-connection', 'a', { customerGateway: 'dc1' });
    newer.close();
    const before = createHash('sha256').update(readFileSync(file)).digest('hex');

    const err = errorOf(() => Store.open(file));
    expect(err.code).toBe('ERR_STORE_VERSION');
    expect(err.message).toContain(file);
    expect(err.message).toContain(`schema version ${MIGRATIONS.length + 1}`);
    expect(err.message).toContain('newer vpcgw');

    expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(before);
    expect(inspect().version).toBe(MIGRATIONS.length + 1);
    // the newer code still opens it
    const again = Store.open(file, { migrations: [...MIGRATIONS, V2] });
    expect(again.all('vpn-connection').map((r) => r.name)).toEqual(['a']);
    again.close();
  });

  it('version 3 (web console admins) upgrades a version 2 file: resources, tokens and approvals kept, admins usable', () => {
    const v2 = Store.open(file, { migrations: MIGRATIONS.slice(0, 2) });
    const r = v2.insert('vpn-connection', 'a', { customerGateway: 'dc1' });
    const ep = v2.insert('vpc-endpoint', 'ep1', { service: 'svc' });
    v2.setEndpointApproval(ep.id, 'svc', 'ACCEPTED');
    const { token } = v2.createToken('ops');
    v2.close();
    expect(inspect()).toEqual({ version: 2, tables: ['api_tokens', 'endpoint_approvals', 'meta', 'resources'] });

    const log = captureLogger();
    const v3 = Store.open(file, { log });
    expect(v3.schemaVersion).toBe(3);
    expect(log.lines.some((l) => (l.obj as { schemaVersion?: number }).schemaVersion === 3)).toBe(true);
    expect(v3.get(r.id)?.spec).toEqual({ customerGateway: 'dc1' });
    expect(v3.endpointApprovals().get(ep.id)?.state).toBe('ACCEPTED');
    expect(v3.tokenName(token)).toBe('ops');
    expect(v3.listAdmins()).toEqual([]);
    v3.addAdmin('root', '$scrypt$N=16384,r=8,p=1$c2FsdA==$aGFzaA==');
    expect(v3.listAdmins().map((a) => a.name)).toEqual(['root']);
    expect(v3.adminPasswordHash('root')).toMatch(/^\$scrypt\$/);
    expect(() => v3.addAdmin('root', '$scrypt$x')).toThrow(/exists already/);
    expect(v3.removeAdmin('root')).toBe(true);
    expect(v3.removeAdmin('root')).toBe(false);
    v3.close();
    expect(inspect()).toEqual({ version: 3, tables: TABLES });
  });
});
