/**
 * The embedded store: one SQLite file in the data dir (better-sqlite3, synchronous) that holds the
 * gateway's resources (one row per config-file entry, spec as written, secrets included), the
 * management API's tokens, the web console's admins and a small key/value table.
 *
 * Durability and safety, set at every open:
 * - the file and its -wal/-shm companions are mode 0600 (they hold PSKs and keys). A file found with
 *   a wider mode is refused, the way OpenSSH refuses a private key others can read: by then the
 *   secrets may have been read, and the operator should know rather than have it quietly fixed;
 * - journal_mode=WAL with synchronous=FULL: SQLite fsyncs the write-ahead log at every commit, so a
 *   transaction that has returned survives kill -9 and power loss (https://sqlite.org/wal.html,
 *   https://sqlite.org/pragma.html#pragma_synchronous; NORMAL would only survive a process crash);
 * - foreign_keys=ON, busy_timeout (a second process, such as an offline `vpcgw` command, waits for
 *   the lock instead of failing at once), secure_delete=ON (deleted rows are overwritten with zeros
 *   in the database file instead of lingering in free pages; the WAL keeps old frames until the
 *   next checkpoint);
 * - the schema is migrated to the latest version (src/store/migrations.ts); a file written by a
 *   newer schema is refused (ERR_STORE_VERSION), never downgraded.
 *
 * Every method is synchronous. After close() every method throws ERR_STATE. Expected failures are
 * VpnErrors: ERR_CONFLICT (a name in use), ERR_NOT_FOUND (update of a missing id), ERR_BAD_REQUEST
 * (a pagination marker that is not a resource of that kind), ERR_INVALID_ARG (a caller bug), ERR_IO
 * (the file cannot be opened, is too readable, or a read or write fails in SQLite).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, closeSync, openSync, statSync, type Stats } from 'node:fs';
import Database from 'better-sqlite3';
import { IoError, VpnError } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/log.js';
import { checkMigrations, MIGRATIONS, type Migration } from './migrations.js';

// ---- implementation choices ----
/** The only mode the store's files may have (owner read/write). */
export const STORE_FILE_MODE = 0o600;
/** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
export const STORE_BUSY_TIMEOUT_MS = 5000;
/** verifyToken records a token's last use at most this often (one write, with fsync, per interval). */
export const TOKEN_LAST_USED_INTERVAL_MS = 60_000;
/** API tokens: this prefix, then base64url of TOKEN_RANDOM_BYTES random bytes. */
export const TOKEN_PREFIX = 'vpcgw_';
export const TOKEN_RANDOM_BYTES = 32;
const TOKEN_LENGTH = TOKEN_PREFIX.length + Math.ceil((TOKEN_RANDOM_BYTES * 4) / 3);

/** The files SQLite may keep next to the database: all hold database content. */
const COMPANION_SUFFIXES = ['', '-wal', '-shm', '-journal'] as const;
/** A spec field name usable in a filter: the config's camelCase identifiers. */
const FIELD_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface StoredResource {
  readonly id: string;
  readonly kind: string;
  readonly name: string;
  /** The entry as written (parsed JSON; a fresh copy per call). */
  readonly spec: unknown;
  /** ISO 8601 UTC with milliseconds: `2026-12-05T07:00:00.000Z`. */
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface ListOptions {
  /** Page size, an integer >= 0. */
  readonly limit: number;
  /** Offset pagination: skip this many matching rows (after `afterId`, when both are given). */
  readonly offset?: number;
  /** Marker pagination: only rows created after this resource (of the same kind). */
  readonly afterId?: string;
  readonly where?: {
    /** Exact name. */
    readonly name?: string;
    /**
     * Exact match on top-level string fields of the spec (`{ customerGateway: 'dc1' }`). The caller
     * decides which fields may be filtered on: never a secret one, or the filter becomes an oracle
     * for a value the API does not show.
     */
    readonly fields?: Readonly<Record<string, string>>;
  };
}

export interface ListResult {
  readonly rows: StoredResource[];
  /** Rows of that kind matching `where`, regardless of limit, offset and afterId. */
  readonly total: number;
}

export interface TokenInfo {
  readonly id: string;
  readonly name: string;
  readonly createdAt: string;
  /** When verifyToken last accepted it (to within TOKEN_LAST_USED_INTERVAL_MS); null if never. */
  readonly lastUsedAt: string | null;
}

/** The stored decision on a VPC endpoint (src/store/migrations.ts, version 2). */
/** A web console admin as listed (never the password hash). */
export interface AdminInfo {
  readonly name: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface EndpointApproval {
  readonly service: string;
  readonly state: 'PENDING_ACCEPTANCE' | 'ACCEPTED' | 'REJECTED';
  readonly updatedAt: string;
}

export interface StoreOptions {
  log?: Logger;
  /** Wall clock in ms since the epoch (timestamps, token last use). Default Date.now. */
  clock?: () => number;
  /** The schema. Default MIGRATIONS; tests pass a longer list to exercise upgrades. */
  migrations?: readonly Migration[];
}

interface ResourceRow {
  id: string;
  kind: string;
  name: string;
  spec: string;
  created_at: string;
  updated_at: string;
}

interface TokenRow {
  id: string;
  name: string;
  created_at: string;
  last_used_at: string | null;
}

const RESOURCE_COLUMNS = 'id, kind, name, spec, created_at, updated_at';
const APPROVALS_ALL = `SELECT endpoint_id, service, state, updated_at FROM endpoint_approvals`;
const APPROVAL_SET = `INSERT INTO endpoint_approvals (endpoint_id, service, state, updated_at) VALUES (?, ?, ?, ?)
  ON CONFLICT (endpoint_id) DO UPDATE SET service = excluded.service, state = excluded.state, updated_at = excluded.updated_at`;

export class Store {
  /** The schema version of the open file (the number of migrations applied). */
  readonly schemaVersion: number;
  private isOpen = true;
  private readonly listStatements = new Map<string, Database.Statement>();
  private readonly s: ReturnType<typeof prepareStatements>;

  private constructor(
    readonly file: string,
    private readonly db: Database.Database,
    private readonly log: Logger,
    private readonly clock: () => number,
  ) {
    this.schemaVersion = db.pragma('user_version', { simple: true }) as number;
    this.s = prepareStatements(db);
  }

  /**
   * Opens (creating if needed) the store at `file`, checks the modes of its files, configures the
   * connection and migrates the schema. Throws IoError (cannot open, not a database, a mode wider
   * than 0600) or VpnError ERR_STORE_VERSION (written by a newer schema).
   */
  static open(file: string, opts: StoreOptions = {}): Store {
    const log = opts.log ?? silentLogger;
    const migrations = opts.migrations ?? MIGRATIONS;
    checkMigrations(migrations);
    for (const suffix of COMPANION_SUFFIXES) refuseWideMode(file + suffix);

    let db: Database.Database | undefined;
    // createPrivate makes the file 0600 before SQLite sees it, and SQLite gives -wal and -shm the
    // database file's mode. The umask 077 (process-wide, restored right after) guards whatever else
    // is created during the open; the chmod after it sets exactly 0600 (a 0400 file included).
    const oldMask = setUmask(0o077);
    try {
      createPrivate(file);
      db = new Database(file);
      refuseNewer(db, file, migrations.length);
      configure(db, file);
    } catch (e) {
      db?.close();
      throw e instanceof VpnError ? e : new IoError(`cannot open store ${file}`, e);
    } finally {
      if (oldMask !== undefined) process.umask(oldMask);
    }
    try {
      for (const suffix of COMPANION_SUFFIXES) chmodIfExists(file + suffix);
      migrate(db, file, migrations, log);
      const store = new Store(file, db, log, opts.clock ?? Date.now);
      log.debug({ file, schemaVersion: store.schemaVersion }, 'store opened');
      return store;
    } catch (e) {
      db.close();
      throw e instanceof VpnError ? e : new IoError(`cannot open store ${file}`, e);
    }
  }

  /**
   * Runs `fn` in one transaction (better-sqlite3's db.transaction): it commits when `fn` returns
   * and rolls back when it throws. `fn` must be synchronous. Nested calls become savepoints.
   * What `fn` throws passes through; an SQLite failure of BEGIN or COMMIT becomes an IoError.
   */
  transaction<T>(fn: () => T): T {
    this.checkOpen();
    try {
      return this.db.transaction(fn)();
    } catch (e) {
      throw this.mapError(e, 'transaction');
    }
  }

  // ---- resources ----

  /** Adds a resource. ERR_CONFLICT when `kind` already has a resource named `name`. */
  insert(kind: string, name: string, spec: unknown): StoredResource {
    this.checkOpen();
    checkText('kind', kind);
    checkText('name', name);
    const json = specJson(spec);
    const now = this.nowIso();
    const id = randomUUID();
    try {
      this.s.insert.run(id, kind, name, json, now, now);
    } catch (e) {
      throw this.mapError(e, 'insert', () => new VpnError('ERR_CONFLICT', `a ${kind} named "${name}" already exists`));
    }
    return { id, kind, name, spec: JSON.parse(json), createdAt: now, updatedAt: now };
  }

  /**
   * Replaces name and spec of resource `id`; created_at stays, updated_at becomes now (never
   * earlier than it was, if the clock steps back). ERR_NOT_FOUND for a missing id, ERR_CONFLICT
   * when the new name is taken in its kind.
   */
  update(id: string, name: string, spec: unknown): StoredResource {
    this.checkOpen();
    checkText('name', name);
    const json = specJson(spec);
    let row: ResourceRow | undefined;
    try {
      row = this.s.update.get(name, json, this.nowIso(), id) as ResourceRow | undefined;
    } catch (e) {
      throw this.mapError(e, 'update', () => {
        const kind = this.get(id)?.kind ?? 'resource';
        return new VpnError('ERR_CONFLICT', `a ${kind} named "${name}" already exists`);
      });
    }
    if (row === undefined) throw new VpnError('ERR_NOT_FOUND', `no resource has id ${id}`);
    return toResource(row);
  }

  /** Deletes resource `id`; false if there was none. */
  remove(id: string): boolean {
    this.checkOpen();
    try {
      return this.s.remove.run(id).changes > 0;
    } catch (e) {
      throw this.mapError(e, 'remove');
    }
  }

  get(id: string): StoredResource | undefined {
    this.checkOpen();
    const row = this.read(() => this.s.get.get(id)) as ResourceRow | undefined;
    return row === undefined ? undefined : toResource(row);
  }

  getByName(kind: string, name: string): StoredResource | undefined {
    this.checkOpen();
    const row = this.read(() => this.s.getByName.get(kind, name)) as ResourceRow | undefined;
    return row === undefined ? undefined : toResource(row);
  }

  /** Every resource of `kind`, in creation order. */
  all(kind: string): StoredResource[] {
    this.checkOpen();
    return (this.read(() => this.s.all.all(kind)) as ResourceRow[]).map(toResource);
  }

  /**
   * One page of `kind` in creation order, filtered by `where`, and the number of matching rows.
   * ERR_BAD_REQUEST when `afterId` is not a resource of `kind` (deleted since, or never was).
   */
  list(kind: string, opts: ListOptions): ListResult {
    this.checkOpen();
    const { limit, offset = 0, afterId, where = {} } = opts;
    if (!Number.isSafeInteger(limit) || limit < 0) throw new VpnError('ERR_INVALID_ARG', `list limit must be an integer >= 0, not ${limit}`);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new VpnError('ERR_INVALID_ARG', `list offset must be an integer >= 0, not ${offset}`);
    const fields = Object.entries(where.fields ?? {});
    for (const [field, value] of fields) {
      if (!FIELD_NAME_RE.test(field)) throw new VpnError('ERR_INVALID_ARG', `cannot filter on spec field "${field}"`);
      if (typeof value !== 'string') throw new VpnError('ERR_INVALID_ARG', `filter value of ${field} must be a string`);
    }

    // WHERE kind = ? [AND name = ?] [AND <field> = ?]... ; the same shape for rows and total.
    let cond = 'kind = ?';
    const params: unknown[] = [kind];
    if (where.name !== undefined) {
      cond += ' AND name = ?';
      params.push(where.name);
    }
    for (const [field, value] of fields) {
      // json_type 'text': a string field only, never the JSON text of an object or array.
      cond += " AND json_type(spec, ?) = 'text' AND json_extract(spec, ?) = ?";
      const path = `$."${field}"`;
      params.push(path, path, value);
    }
    const page = (): ListResult => {
      const total = this.listStatement(`SELECT count(*) FROM resources WHERE ${cond}`).pluck().get(...params) as number;
      let pageCond = cond;
      const pageParams = params.slice();
      if (afterId !== undefined) {
        const seq = this.s.seqOf.get(afterId, kind) as number | undefined;
        if (seq === undefined) throw new VpnError('ERR_BAD_REQUEST', `marker ${afterId} is not a ${kind} (deleted, or never was)`);
        pageCond += ' AND seq > ?';
        pageParams.push(seq);
      }
      pageParams.push(limit, offset);
      const rows = this.listStatement(`SELECT ${RESOURCE_COLUMNS} FROM resources WHERE ${pageCond} ORDER BY seq LIMIT ? OFFSET ?`).all(...pageParams) as ResourceRow[];
      return { rows: rows.map(toResource), total };
    };
    // one read transaction: rows and total come from the same snapshot of the file
    return this.read(this.db.transaction(page));
  }

  count(kind: string): number {
    this.checkOpen();
    return this.read(() => this.s.count.get(kind)) as number;
  }

  // ---- API tokens ----
  // A token is 256 random bits, and only its SHA-256 is stored. Slow password hashes (scrypt,
  // argon2) exist to make guessing low-entropy passwords from a stolen hash expensive; guessing a
  // 256-bit random value is out of reach at any hash speed, so a single SHA-256 is enough and keeps
  // the check on every API request cheap. The lookup by hash is no timing oracle for the token:
  // learning how much of a SHA-256 digest matched reveals nothing about a preimage.

  /** Creates a token. The token itself is returned this once and never stored. */
  createToken(name: string): { id: string; token: string } {
    this.checkOpen();
    checkText('name', name);
    const id = randomUUID();
    const token = TOKEN_PREFIX + randomBytes(TOKEN_RANDOM_BYTES).toString('base64url');
    try {
      this.s.insertToken.run(id, name, sha256Hex(token), this.nowIso());
    } catch (e) {
      throw this.mapError(e, 'create token');
    }
    return { id, token };
  }

  /** True when `token` is a live token; records its last use (at most once a minute). */
  verifyToken(token: string): boolean {
    return this.tokenName(token) !== null;
  }

  /** The name of a live token (as verifyToken, recording its use), or null when it is not one. */
  tokenName(token: string): string | null {
    this.checkOpen();
    if (typeof token !== 'string' || token.length !== TOKEN_LENGTH || !token.startsWith(TOKEN_PREFIX)) return null;
    const row = this.read(() => this.s.tokenByHash.get(sha256Hex(token))) as Pick<TokenRow, 'id' | 'name' | 'last_used_at'> | undefined;
    if (row === undefined) return null;
    const nowMs = this.clock();
    if (row.last_used_at === null || nowMs - Date.parse(row.last_used_at) >= TOKEN_LAST_USED_INTERVAL_MS) {
      try {
        this.s.touchToken.run(new Date(nowMs).toISOString(), row.id);
      } catch (err) {
        // Bookkeeping only: a full disk must not lock the operator out of the API.
        this.log.warn({ err, file: this.file, tokenId: row.id }, 'store: cannot record the last use of an API token');
      }
    }
    return row.name;
  }

  /** Every token in creation order, without its hash. */
  listTokens(): TokenInfo[] {
    this.checkOpen();
    return (this.read(() => this.s.listTokens.all()) as TokenRow[]).map((r) => ({
      id: r.id,
      name: r.name,
      createdAt: r.created_at,
      lastUsedAt: r.last_used_at,
    }));
  }

  /** Revokes token `id`; false if there was none. */
  deleteToken(id: string): boolean {
    this.checkOpen();
    try {
      return this.s.deleteToken.run(id).changes > 0;
    } catch (e) {
      throw this.mapError(e, 'delete token');
    }
  }

  // ---- web console admins ----
  // Statements prepared on first use: a store opened with an older schema (migration tests) has no table.

  /** Adds admin `name` with a password hash (scrypt, made by the caller); ERR_CONFLICT when it exists. */
  addAdmin(name: string, passwordHash: string): AdminInfo {
    this.checkOpen();
    checkText('name', name);
    checkText('passwordHash', passwordHash);
    const now = this.nowIso();
    try {
      this.listStatement(`INSERT INTO admins (name, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?)`).run(name, passwordHash, now, now);
    } catch (e) {
      throw this.mapError(e, 'add admin', () => new VpnError('ERR_CONFLICT', `an admin named "${name}" exists already`));
    }
    return { name, createdAt: now, updatedAt: now };
  }

  /** Deletes admin `name`; false if there was none. */
  removeAdmin(name: string): boolean {
    this.checkOpen();
    try {
      return this.listStatement(`DELETE FROM admins WHERE name = ?`).run(name).changes > 0;
    } catch (e) {
      throw this.mapError(e, 'remove admin');
    }
  }

  /** Every admin by name, without the hash. */
  listAdmins(): AdminInfo[] {
    this.checkOpen();
    const rows = this.read(() => this.listStatement(`SELECT name, created_at, updated_at FROM admins ORDER BY name`).all()) as { name: string; created_at: string; updated_at: string }[];
    return rows.map((r) => ({ name: r.name, createdAt: r.created_at, updatedAt: r.updated_at }));
  }

  /** The stored password hash of admin `name` (to check a login against), or undefined. */
  adminPasswordHash(name: string): string | undefined {
    this.checkOpen();
    return this.read(() => this.listStatement(`SELECT password_hash FROM admins WHERE name = ?`).pluck().get(name)) as string | undefined;
  }

  // ---- endpoint approvals ----

  /** Every stored approval decision, by endpoint resource id. */
  endpointApprovals(): Map<string, EndpointApproval> {
    this.checkOpen();
    // prepared on first use: a store opened with an older schema (tests of migrations) has no such table
    const rows = this.read(() => this.listStatement(APPROVALS_ALL).all()) as { endpoint_id: string; service: string; state: string; updated_at: string }[];
    return new Map(rows.map((r) => [r.endpoint_id, { service: r.service, state: r.state as EndpointApproval['state'], updatedAt: r.updated_at }]));
  }

  /** Records the decision on endpoint `endpointId` (a resource id) about `service`. */
  setEndpointApproval(endpointId: string, service: string, state: EndpointApproval['state']): EndpointApproval {
    this.checkOpen();
    checkText('service', service);
    const now = this.nowIso();
    try {
      this.listStatement(APPROVAL_SET).run(endpointId, service, state, now);
    } catch (e) {
      throw this.mapError(e, 'set endpoint approval');
    }
    return { service, state, updatedAt: now };
  }

  // ---- meta ----

  getMeta(key: string): string | undefined {
    this.checkOpen();
    return this.read(() => this.s.getMeta.get(key)) as string | undefined;
  }

  setMeta(key: string, value: string): void {
    this.checkOpen();
    checkText('key', key);
    if (typeof value !== 'string') throw new VpnError('ERR_INVALID_ARG', `meta ${key}: the value must be a string`);
    try {
      this.s.setMeta.run(key, value);
    } catch (e) {
      throw this.mapError(e, 'set meta');
    }
  }

  // ---- maintenance ----

  /**
   * 'ok', or SQLite's description of what is wrong (integrity_check and foreign_key_check; an
   * error such as SQLITE_CORRUPT raised by the check itself is returned too, not thrown).
   */
  integrityCheck(): string {
    this.checkOpen();
    try {
      const problems = (this.db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check);
      if (problems.length === 1 && problems[0] === 'ok') problems.length = 0;
      for (const r of this.db.pragma('foreign_key_check') as { table: string; rowid: number; parent: string }[]) {
        problems.push(`${r.table} row ${r.rowid}: missing ${r.parent}`);
      }
      return problems.length === 0 ? 'ok' : problems.join('\n');
    } catch (e) {
      if (e instanceof Database.SqliteError) return `${e.code}: ${e.message}`;
      throw e;
    }
  }

  /** Closes the file (idempotent). SQLite checkpoints the WAL and removes -wal and -shm. */
  close(): void {
    if (!this.isOpen) return;
    this.isOpen = false;
    try {
      this.db.pragma('optimize'); // https://sqlite.org/lang_analyze.html#periodic_analyze
    } catch (err) {
      this.log.warn({ err, file: this.file }, 'store: PRAGMA optimize failed at close');
    }
    this.db.close();
  }

  // ---- internals ----

  private checkOpen(): void {
    if (!this.isOpen) throw new VpnError('ERR_STATE', `store ${this.file} is closed`);
  }

  private nowIso(): string {
    return new Date(this.clock()).toISOString();
  }

  private read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw this.mapError(e, 'read');
    }
  }

  /** VpnErrors pass; a UNIQUE violation becomes `conflict()`; other SQLite errors become IoError. */
  private mapError(e: unknown, what: string, conflict?: () => VpnError): unknown {
    if (e instanceof VpnError) return e;
    if (e instanceof Database.SqliteError) {
      if (conflict !== undefined && (e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY')) return conflict();
      return new IoError(`store ${this.file}: ${what} failed (${e.code})`, e);
    }
    return e;
  }

  private listStatement(sql: string): Database.Statement {
    let st = this.listStatements.get(sql);
    if (st === undefined) {
      st = this.db.prepare(sql);
      this.listStatements.set(sql, st);
    }
    return st;
  }
}

function prepareStatements(db: Database.Database) {
  return {
    insert: db.prepare(`INSERT INTO resources (id, kind, name, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`),
    update: db.prepare(
      `UPDATE resources SET name = ?, spec = ?, updated_at = max(?, updated_at) WHERE id = ? RETURNING ${RESOURCE_COLUMNS}`,
    ),
    remove: db.prepare(`DELETE FROM resources WHERE id = ?`),
    get: db.prepare(`SELECT ${RESOURCE_COLUMNS} FROM resources WHERE id = ?`),
    getByName: db.prepare(`SELECT ${RESOURCE_COLUMNS} FROM resources WHERE kind = ? AND name = ?`),
    all: db.prepare(`SELECT ${RESOURCE_COLUMNS} FROM resources WHERE kind = ? ORDER BY seq`),
    count: db.prepare(`SELECT count(*) FROM resources WHERE kind = ?`).pluck(),
    seqOf: db.prepare(`SELECT seq FROM resources WHERE id = ? AND kind = ?`).pluck(),
    insertToken: db.prepare(`INSERT INTO api_tokens (id, name, token_sha256, created_at) VALUES (?, ?, ?, ?)`),
    tokenByHash: db.prepare(`SELECT id, name, last_used_at FROM api_tokens WHERE token_sha256 = ?`),
    touchToken: db.prepare(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`),
    listTokens: db.prepare(`SELECT id, name, created_at, last_used_at FROM api_tokens ORDER BY rowid`),
    deleteToken: db.prepare(`DELETE FROM api_tokens WHERE id = ?`),
    getMeta: db.prepare(`SELECT value FROM meta WHERE key = ?`).pluck(),
    setMeta: db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
  };
}

function toResource(r: ResourceRow): StoredResource {
  return { id: r.id, kind: r.kind, name: r.name, spec: JSON.parse(r.spec), createdAt: r.created_at, updatedAt: r.updated_at };
}

function checkText(what: string, v: unknown): void {
  if (typeof v !== 'string' || v.length === 0) throw new VpnError('ERR_INVALID_ARG', `store: ${what} must be a non-empty string`);
}

function specJson(spec: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(spec);
  } catch (e) {
    throw new VpnError('ERR_INVALID_ARG', 'store: the spec cannot be written as JSON', { cause: e });
  }
  if (json === undefined) throw new VpnError('ERR_INVALID_ARG', 'store: the spec cannot be written as JSON');
  return json;
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

// ---- opening ----

/** process.umask(mask), or undefined where it cannot be set (worker threads). */
function setUmask(mask: number): number | undefined {
  try {
    return process.umask(mask);
  } catch {
    return undefined;
  }
}

function refuseWideMode(path: string): void {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new IoError(`cannot stat store file ${path}`, e);
  }
  if (!st.isFile()) throw new IoError(`store file ${path} is not a regular file`);
  const mode = st.mode;
  if ((mode & 0o777 & ~STORE_FILE_MODE) !== 0) {
    throw new IoError(
      `store file ${path} has mode 0${(mode & 0o777).toString(8)}, wider than 0${STORE_FILE_MODE.toString(8)}: it holds secrets (PSKs, keys); ` +
        `check who may have read it, then chmod 600 ${path}`,
    );
  }
}

/** Creates an empty `file` with mode 0600 unless it exists (SQLite treats an empty file as a new database). */
function createPrivate(file: string): void {
  try {
    closeSync(openSync(file, 'wx', STORE_FILE_MODE));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new IoError(`cannot create store ${file}`, e);
  }
}

function chmodIfExists(path: string): void {
  try {
    chmodSync(path, STORE_FILE_MODE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new IoError(`cannot chmod store file ${path}`, e);
  }
}

function userVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function refuseNewer(db: Database.Database, file: string, latest: number): void {
  const version = userVersion(db);
  if (version > latest) {
    throw new VpnError(
      'ERR_STORE_VERSION',
      `store ${file} has schema version ${version}, and this vpcgw knows versions up to ${latest}: ` +
        `it was written by a newer vpcgw; run that one (the file is left as it is)`,
    );
  }
}

function configure(db: Database.Database, file: string): void {
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (mode !== 'wal') throw new IoError(`store ${file}: SQLite cannot use write-ahead logging here (journal_mode stays ${String(mode)})`);
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma(`busy_timeout = ${STORE_BUSY_TIMEOUT_MS}`);
  db.pragma('secure_delete = ON');
}

/**
 * Applies the missing migrations, each in its own IMMEDIATE transaction (the write lock is taken
 * first, and the version is read again inside it, so two processes opening the same file at once
 * cannot both apply one migration).
 */
function migrate(db: Database.Database, file: string, migrations: readonly Migration[], log: Logger): void {
  for (;;) {
    let applied: Migration | undefined;
    try {
      applied = db
        .transaction(() => {
          const version = userVersion(db);
          refuseNewer(db, file, migrations.length);
          const next = migrations[version];
          if (next === undefined) return undefined;
          next.up(db);
          db.pragma(`user_version = ${next.version}`);
          return next;
        })
        .immediate();
    } catch (e) {
      if (e instanceof VpnError) throw e;
      throw new IoError(`store ${file}: migration to schema version ${userVersion(db) + 1} failed`, e);
    }
    if (applied === undefined) return;
    log.info({ file, schemaVersion: applied.version, migration: applied.description }, 'store schema migrated');
  }
}
