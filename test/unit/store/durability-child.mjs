// Child process of durability.test.ts: opens the store (the built code, dist/) and writes to it in a
// loop until it is killed. Each transaction inserts 1..3 rows, updates 0..2 rows and sometimes
// deletes one, and sets meta `lastTx` to its number. Protocol on stdout, one JSON object a line:
//   {"t":"begin","k":N,"ins":[{name,spec}],"upd":[{id,name,spec}],"del":[id]}  before the transaction
//   {"t":"ack","k":N,"ids":[id of each inserted row]}                          after it has committed
// An "ack" is the acknowledgement the test holds the store to. Writes to a pipe are synchronous in
// Node on Linux, so a line is in the pipe before the next statement runs and survives SIGKILL.
//   node durability-child.mjs FILE
import { randomBytes } from 'node:crypto';
import { Store } from '../../../dist/store/store.js';

const KIND = 'item';
const file = process.argv[2];
const store = Store.open(file);
/** id -> name of the rows that exist now. */
const rows = new Map(store.all(KIND).map((r) => [r.id, r.name]));
let k = Number(store.getMeta('lastTx') ?? '0');

const rand = (n) => Math.floor(Math.random() * n);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
// a pad of 0..6000 bytes: some rows span several pages, so a commit writes many WAL frames
const spec = (name, rev) => ({ name, tx: k, rev, pad: randomBytes(rand(4500)).toString('base64') });

for (;;) {
  k++;
  const ins = [];
  for (let j = 0, n = 1 + rand(3); j < n; j++) ins.push({ name: `r${k}-${j}`, spec: spec(`r${k}-${j}`, 0) });
  const existing = [...rows.keys()];
  const upd = [];
  for (let j = 0, n = Math.min(existing.length, rand(3)); j < n; j++) {
    const id = existing.splice(rand(existing.length), 1)[0];
    upd.push({ id, name: rows.get(id), spec: spec(rows.get(id), k) });
  }
  const del = existing.length > 0 && rand(10) === 0 ? [existing[rand(existing.length)]] : [];
  out({ t: 'begin', k, ins, upd, del });
  const ids = store.transaction(() => {
    const inserted = ins.map((r) => store.insert(KIND, r.name, r.spec).id);
    for (const u of upd) store.update(u.id, u.name, u.spec);
    for (const id of del) store.remove(id);
    store.setMeta('lastTx', String(k));
    // 0..2 ms of work before the commit, so that some kills land inside an open transaction
    // (without it nearly every kill lands in the commit's fsync, after the WAL write)
    for (const until = performance.now() + Math.random() * 2; performance.now() < until; );
    return inserted;
  });
  out({ t: 'ack', k, ids });
  ids.forEach((id, j) => rows.set(id, ins[j].name));
  for (const id of del) rows.delete(id);
}
