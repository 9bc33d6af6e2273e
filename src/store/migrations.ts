/**
 * The store's schema, as an ordered list of migrations. The schema version of a database file is
 * SQLite's `PRAGMA user_version` (a 32-bit integer in the file header, 0 in a new file): version N
 * means migrations 1..N have been applied. Store.open applies the missing ones in order, each in its
 * own transaction together with the user_version bump, so a crash leaves the file at a whole version
 * (the header is a database page like any other: it commits or rolls back with the transaction).
 *
 * Rules for adding a migration:
 * - append only: never edit or reorder a published migration (files in the field have run it);
 * - the version is the position in the list (1-based), checked by `checkMigrations`;
 * - `up` runs inside a transaction; it must not change PRAGMAs that cannot run in one
 *   (journal_mode, foreign_keys) and must not commit by itself.
 * A file whose user_version is higher than the last entry was written by a newer vpcgw; Store.open
 * refuses it rather than run on a schema it does not know.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { VpnError } from '../common/errors.js';

export interface Migration {
  /** 1-based, equal to its position in the list. */
  readonly version: number;
  /** One line: what the migration changes (logged when it is applied). */
  readonly description: string;
  readonly up: (db: BetterSqlite3.Database) => void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'resources, API tokens, meta',
    up: (db) => {
      db.exec(`
        -- One row per config-file entry (a customer gateway, a VPN connection, ...).
        -- seq: creation order. AUTOINCREMENT never hands out a value again, even after the row with
        -- the highest one is deleted, so "created after row X" (marker pagination) stays meaningful.
        -- spec: the entry as written in the YAML, as JSON text, secrets included.
        -- created_at/updated_at: ISO 8601 UTC with milliseconds (Date#toISOString).
        CREATE TABLE resources (
          seq        INTEGER PRIMARY KEY AUTOINCREMENT,
          id         TEXT NOT NULL UNIQUE,
          kind       TEXT NOT NULL,
          name       TEXT NOT NULL,
          spec       TEXT NOT NULL CHECK (json_valid(spec)),
          created_at TEXT NOT NULL,
          updated_at TEXT NOT NULL,
          UNIQUE (kind, name)
        );
        CREATE INDEX resources_kind_seq ON resources (kind, seq);

        -- Bearer tokens of the management API: only the SHA-256 of a token is kept.
        CREATE TABLE api_tokens (
          id           TEXT PRIMARY KEY,
          name         TEXT NOT NULL,
          token_sha256 TEXT NOT NULL UNIQUE,
          created_at   TEXT NOT NULL,
          last_used_at TEXT
        );

        CREATE TABLE meta (
          key   TEXT PRIMARY KEY,
          value TEXT NOT NULL
        ) WITHOUT ROWID;
      `);
    },
  },
  {
    version: 2,
    description: 'endpoint approval states',
    up: (db) => {
      db.exec(`
        -- The provider's decision on a VPC endpoint (accept = ACCEPTED, reject = REJECTED, or
        -- PENDING_ACCEPTANCE until one is taken). Kept apart from the endpoint's spec so that
        -- applying a config file (which never mentions it) leaves it alone. service: the endpoint
        -- service the decision was about; a decision about another service does not count.
        -- The row goes with its endpoint (ON DELETE CASCADE): a new endpoint of the same name starts afresh.
        CREATE TABLE endpoint_approvals (
          endpoint_id TEXT PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
          service     TEXT NOT NULL,
          state       TEXT NOT NULL CHECK (state IN ('PENDING_ACCEPTANCE', 'ACCEPTED', 'REJECTED')),
          updated_at  TEXT NOT NULL
        ) WITHOUT ROWID;
      `);
    },
  },
  {
    version: 3,
    description: 'web console admins',
    up: (db) => {
      db.exec(`
        -- Local admin users of the web console (\`vpcgw admin add\`), who log in with a password
        -- instead of an API token. password_hash: the scrypt hash in the format of the SSL VPN users'
        -- (src/gateway/users.ts, PASSWORD_HASH_FORMAT); the password itself is never stored.
        CREATE TABLE admins (
          name          TEXT PRIMARY KEY,
          password_hash TEXT NOT NULL,
          created_at    TEXT NOT NULL,
          updated_at    TEXT NOT NULL
        ) WITHOUT ROWID;
      `);
    },
  },
];

/** Throws unless versions are 1, 2, 3, ... in order (a list edited by hand is checked at open). */
export function checkMigrations(list: readonly Migration[]): void {
  list.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new VpnError('ERR_INVALID_ARG', `migration #${i + 1} ("${m.description}") has version ${m.version}; versions must be 1, 2, 3, ... in order`);
    }
  });
}
