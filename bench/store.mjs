// Benchmark: the embedded store (src/store/store.ts) with 1,000 vpn-connection rows and 10,000 user
// rows: open time, and the latency (p50/p99) of the reads the API and the gateway make, plus
// single-row commits (each fsyncs the WAL: synchronous=FULL). Prints one table. Uses the compiled
// tree: run `npx tsc -p tsconfig.build.json` first, then
//   node bench/store.mjs [samplesPerCase=1000]
// The file lives in a fresh temp dir (removed at the end); numbers are with a warm page cache.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../dist/store/store.js';

const SAMPLES = Number(process.argv[2] ?? 1000);
const CONNECTIONS = 1_000;
const USERS = 10_000;
const WRITE_SAMPLES = 200;
const OPEN_SAMPLES = 20;

const dir = mkdtempSync(join(tmpdir(), 'vpcgw-bench-store-'));
const file = join(dir, 'vpcgw.db');

function connectionSpec(i) {
  return {
    name: `conn-${i}`,
    customerGateway: `cgw-${i % 50}`,
    localSubnets: ['10.2.0.0/16'],
    remoteSubnets: [`10.${100 + (i >> 8)}.${i & 255}.0/24`],
    auth: { psk: `psk-${i}-${'k'.repeat(40)}` },
    ike: { proposals: 'aes128gcm16-prfsha256-x25519', lifetime: '4h', localId: '192.0.2.2' },
    esp: { proposals: 'aes128gcm16', lifetime: '1h' },
    startAction: 'none',
    dpd: { interval: '30s' },
  };
}

function userSpec(i) {
  return { name: `user${i}`, groups: ['staff'], password: { scrypt: 'x'.repeat(120) }, email: `user${i}@example.com` };
}

const ns = () => process.hrtime.bigint();
const us = (t0, t1) => Number(t1 - t0) / 1000;

/** Runs fn(i) `n` times and returns the per-call latencies in µs, sorted. */
function sample(n, fn) {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    fn(i);
    out[i] = us(t0, ns());
  }
  return out.sort();
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const rows = [];
function report(name, sorted) {
  rows.push([name, sorted.length, pct(sorted, 50), pct(sorted, 99)]);
}
const pick = (arr) => arr[Math.floor(Math.random() * arr.length)];

// ---- populate ----
let store = Store.open(file);
const t0 = ns();
const connIds = store.transaction(() => Array.from({ length: CONNECTIONS }, (_, i) => store.insert('vpn-connection', `conn-${i}`, connectionSpec(i)).id));
const userIds = store.transaction(() => Array.from({ length: USERS }, (_, i) => store.insert('user', `user${i}`, userSpec(i)).id));
const populateMs = us(t0, ns()) / 1000;
const { token } = store.createToken('bench');
store.close();
const sizeKiB = Math.round(statSync(file).size / 1024);

// ---- open ----
report('open + close', sample(OPEN_SAMPLES, () => Store.open(file).close()));
const tOpen = ns();
store = Store.open(file);
const openUs = us(tOpen, ns());

// ---- reads ----
report('get(id) connection', sample(SAMPLES, () => store.get(pick(connIds))));
report('get(id) user', sample(SAMPLES, () => store.get(pick(userIds))));
report('getByName user', sample(SAMPLES, () => store.getByName('user', `user${Math.floor(Math.random() * USERS)}`)));
report('count user', sample(SAMPLES, () => store.count('user')));
report('list connection limit 100 offset 0', sample(SAMPLES, () => store.list('vpn-connection', { limit: 100 })));
report('list user limit 100 offset rnd', sample(SAMPLES, () => store.list('user', { limit: 100, offset: Math.floor(Math.random() * USERS) })));
report('list user limit 100 afterId rnd', sample(SAMPLES, () => store.list('user', { limit: 100, afterId: pick(userIds) })));
report('list connection filter customerGateway', sample(Math.min(SAMPLES, 200), (i) => store.list('vpn-connection', { limit: 100, where: { fields: { customerGateway: `cgw-${i % 50}` } } })));
report('all connection (1,000)', sample(50, () => store.all('vpn-connection')));
report('all user (10,000)', sample(10, () => store.all('user')));
report('verifyToken', sample(SAMPLES, () => store.verifyToken(token)));

// ---- single-row commits (fsync each) ----
report('update connection (commit)', sample(WRITE_SAMPLES, (i) => store.update(connIds[i % CONNECTIONS], `conn-${i % CONNECTIONS}`, connectionSpec(i))));
report('insert + remove user (2 commits)', sample(WRITE_SAMPLES, (i) => store.remove(store.insert('user', `bench-${i}`, userSpec(i)).id)));

store.close();
rmSync(dir, { recursive: true, force: true });

const fmt = (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v.toFixed(1)} µs`);
console.log(`store: ${CONNECTIONS} vpn-connection + ${USERS} user rows, file ${sizeKiB} KiB, populated in ${populateMs.toFixed(0)} ms (2 transactions), open ${fmt(openUs)}`);
console.log(['case'.padEnd(42), 'n'.padStart(6), 'p50'.padStart(10), 'p99'.padStart(10)].join(' '));
for (const [name, n, p50, p99] of rows) console.log([name.padEnd(42), String(n).padStart(6), fmt(p50).padStart(10), fmt(p99).padStart(10)].join(' '));
