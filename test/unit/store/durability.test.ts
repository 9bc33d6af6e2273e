// kill -9 durability of the store: a child process (durability-child.mjs, on the built dist/) writes
// transactions in a loop and acknowledges each on stdout after its commit; the test kills it with
// SIGKILL at a random moment, reopens the file and checks that SQLite's recovery gives back exactly
// the acknowledged state: integrity 'ok', every acknowledged insert, update and delete present
// with its content, and the one transaction that may have been in flight either whole or absent.
// Five rounds on one file, so each round also recovers the WAL the previous kill left behind.
// (Power loss is not simulated here; synchronous=FULL, checked in store.test.ts, covers it.)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../../src/store/store.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const CHILD = new URL('./durability-child.mjs', import.meta.url).pathname;
const DIST_STORE = join(ROOT, 'dist/store/store.js');
const ROUNDS = 5;
const ROUND_TIMEOUT_MS = 20_000;

interface Row {
  name: string;
  spec: unknown;
}
type Begin = { t: 'begin'; k: number; ins: Row[]; upd: (Row & { id: string })[]; del: string[] };
type Ack = { t: 'ack'; k: number; ids: string[] };

/** Newest mtime of the .ts files under src/store and src/common. */
function newestSource(): number {
  let newest = 0;
  for (const d of ['src/store', 'src/common']) {
    for (const f of readdirSync(join(ROOT, d))) if (f.endsWith('.ts')) newest = Math.max(newest, statSync(join(ROOT, d, f)).mtimeMs);
  }
  return newest;
}

/** Builds dist/ (tsconfig.build.json) unless dist/store/store.js is newer than its sources. */
function ensureDist(): void {
  if (existsSync(DIST_STORE) && statSync(DIST_STORE).mtimeMs >= newestSource()) return;
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeout: 240_000, encoding: 'utf8' });
  if (!existsSync(DIST_STORE)) throw new Error(`tsc did not produce ${DIST_STORE}: ${r.stdout}${r.stderr}`);
}

/** The acknowledged state: name -> { id, spec }, in creation order (Map keeps insertion order). */
type Model = Map<string, { id: string | undefined; spec: unknown }>;

function apply(model: Model, b: Begin, ids: (string | undefined)[]): void {
  b.ins.forEach((r, j) => model.set(r.name, { id: ids[j], spec: r.spec }));
  for (const u of b.upd) model.set(u.name, { id: u.id, spec: u.spec });
  for (const id of b.del) for (const [name, v] of model) if (v.id === id) model.delete(name);
}

/** Runs the child until `acksWanted` acks plus a random 0..3 ms, then SIGKILL. */
async function runRound(file: string, model: Model, acksWanted: number): Promise<{ lastAck: number; pending: Begin | undefined; acks: number }> {
  const child = spawn(process.execPath, [CHILD, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), ROUND_TIMEOUT_MS);
  let pending: Begin | undefined;
  let lastAck = -1;
  let acks = 0;
  let killScheduled = false;
  let partial: string | undefined;
  try {
    const rl = createInterface({ input: child.stdout });
    for await (const line of rl) {
      // a line cut by the kill (a long begin line that did not fit the pipe at once) can only be
      // the last one, and it is a begin: its transaction had not started
      expect(partial, 'a line after a cut line').toBeUndefined();
      let msg: Begin | Ack;
      try {
        msg = JSON.parse(line) as Begin | Ack;
      } catch {
        partial = line;
        continue;
      }
      if (msg.t === 'begin') {
        expect(pending, 'a begin while another transaction is open').toBeUndefined();
        pending = msg;
      } else {
        expect(msg.k, 'ack of the open transaction').toBe(pending?.k);
        apply(model, pending!, msg.ids);
        lastAck = msg.k;
        pending = undefined;
        if (++acks === acksWanted && !killScheduled) {
          killScheduled = true;
          setTimeout(() => child.kill('SIGKILL'), Math.random() * 3);
        }
      }
    }
  } finally {
    child.kill('SIGKILL'); // a no-op after the exit; stops the child if an expectation failed
  }
  const how = await exited;
  clearTimeout(timer);
  expect(stderr).toBe('');
  expect(how).toBe('SIGKILL');
  expect(acks, 'acks before the round timed out').toBeGreaterThanOrEqual(acksWanted);
  return { lastAck, pending, acks };
}

describe('store durability under kill -9', () => {
  let dir: string;
  beforeAll(() => {
    ensureDist();
    dir = mkdtempSync(join(tmpdir(), 'vpcgw-store-kill-'));
  }, 300_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`every acknowledged transaction survives SIGKILL, the open one is all or nothing (${ROUNDS} rounds)`, async () => {
    const file = join(dir, 'vpcgw.db');
    const model: Model = new Map();
    const summary: string[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const acksWanted = 5 + Math.floor(Math.random() * 150);
      const { lastAck, pending, acks } = await runRound(file, model, acksWanted);

      const store = Store.open(file);
      try {
        expect(store.integrityCheck(), `round ${round}`).toBe('ok');
        const lastTx = Number(store.getMeta('lastTx'));
        // the transaction in flight at the kill committed (lastTx moved) or left no trace
        let expected = model;
        if (pending !== undefined && lastTx === pending.k) {
          expected = new Map(model);
          apply(expected, pending, pending.ins.map(() => undefined));
        } else {
          expect(lastTx, `round ${round}: lastTx`).toBe(lastAck);
        }
        const actual = store.all('item').map((r) => ({ name: r.name, id: r.id, spec: r.spec }));
        const want = [...expected].map(([name, v]) => ({ name, id: v.id ?? expect.any(String), spec: v.spec }));
        expect(actual.length, `round ${round}: row count`).toBe(want.length);
        expect(actual, `round ${round}`).toEqual(want); // content and creation order
        if (expected !== model) {
          // the committed in-flight transaction is now part of the acknowledged state
          apply(model, pending!, pending!.ins.map((r) => actual.find((a) => a.name === r.name)!.id));
        }
        summary.push(`round ${round}: ${acks} acks, in flight ${pending ? (lastTx === pending.k ? 'committed' : 'absent') : 'none'}, ${actual.length} rows`);
      } finally {
        store.close();
      }
      for (const suffix of ['', '-wal', '-shm']) {
        if (existsSync(file + suffix)) expect((statSync(file + suffix).mode & 0o777).toString(8)).toBe('600');
      }
    }
    console.log(summary.join('\n'));
  }, 150_000);
});
