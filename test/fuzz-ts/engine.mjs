// A small coverage-guided (greybox) fuzzer for the TypeScript parsers, in the libFuzzer mould:
// keep a corpus, mutate an entry, run the target, keep the mutant if it reached code or hit counts
// never seen before. The coverage signal is V8's precise block coverage (the same counters
// `node --experimental-test-coverage` and c8 use), read after every input through the inspector
// protocol; features are (script, block, log2 bucket of the hit count) as in libFuzzer's
// -use_counters. test/fuzz-ts/README.md says why this and not @jazzer.js/core.
//
//   node --import ./test/fuzz-ts/register.mjs test/fuzz-ts/engine.mjs TARGET.ts [options]
//     --seconds N     stop after N seconds of fuzzing (default 15); --runs N stops after N inputs
//     --corpus PATH   seed inputs: a folder (every file) or one file; all must pass before fuzzing
//                     starts, so `--corpus FAILING-INPUT --runs 1` replays a finding
//     --out DIR       where a failing input is written (default: a fresh temp dir)
//     --grow DIR      also write every new interesting input there (to refresh a corpus)
//     --max-len N     longest input (default: the target's maxLen, else 4096)
//     --timeout-ms N  one input may run this long (default 2000); the watchdog kills a hang
//     --alloc-mb N    no single Buffer allocation above N MB, and one input may grow the JS heap or
//                     external (Buffer) memory by at most N MB (32)
//     --rss-mb N      the process may not exceed this resident size (1024)
//     --seed N        PRNG seed (default: from the clock; printed)
//     --keep-going    record every distinct failure instead of stopping at the first
//
// A target is a module exporting `fuzz(data: Buffer): void` that throws only for a finding (see
// targets/check.ts), plus optional `maxLen` and `dictionary` (byte strings worth inserting).
// Exit status 0: no finding. 1: a finding, reported as a line `FINDING <kind> <target>: <path>`.
// The watchdog (a worker thread, it keeps running while the main thread spins) reports `hang` and
// `rss` findings the same way and then kills the process with SIGKILL.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const MB = 1024 * 1024;

function parseArgs(argv) {
  const o = { target: null, seconds: 15, runs: Infinity, corpus: [], out: null, grow: null, maxLen: 0, timeoutMs: 2000, allocMb: 32, rssMb: 1024, seed: Date.now() % 2 ** 31, keepGoing: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--runs') o.runs = Number(v());
    else if (a === '--corpus') o.corpus.push(v());
    else if (a === '--out') o.out = v();
    else if (a === '--grow') o.grow = v();
    else if (a === '--max-len') o.maxLen = Number(v());
    else if (a === '--timeout-ms') o.timeoutMs = Number(v());
    else if (a === '--alloc-mb') o.allocMb = Number(v());
    else if (a === '--rss-mb') o.rssMb = Number(v());
    else if (a === '--seed') o.seed = Number(v());
    else if (a === '--keep-going') o.keepGoing = true;
    else if (!a.startsWith('--') && !o.target) o.target = a;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.target) throw new Error('usage: engine.mjs TARGET.ts [--seconds N] [--corpus DIR] ...');
  return o;
}

const opt = parseArgs(process.argv.slice(2));

// ---- coverage: on before the target loads, so that all its code is compiled with block counters
const session = new Session();
session.connect();
function post(method, params) {
  let result;
  session.post(method, params, (err, r) => {
    if (err) throw err;
    result = r;
  });
  return result; // the in-thread session answers synchronously
}
post('Profiler.enable');
post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
const targetPath = resolve(opt.target);
const targetName = basename(targetPath).replace(/\.[cm]?[jt]s$/, '');
const target = await import(pathToFileURL(targetPath).href);
if (typeof target.fuzz !== 'function') throw new Error(`${targetPath} does not export fuzz(data)`);
const maxLen = opt.maxLen || target.maxLen || 4096;
const dictionary = (target.dictionary ?? []).map((d) => (typeof d === 'string' ? Buffer.from(d, 'latin1') : Buffer.from(d)));
const outDir = opt.out ?? mkdtempSync(join(tmpdir(), `fuzz-ts-${targetName}-`));
mkdirSync(outDir, { recursive: true });
if (opt.grow) mkdirSync(opt.grow, { recursive: true });

// ---- deterministic PRNG (xorshift32) ---------------------------------------------------------
let rs = opt.seed >>> 0 || 1;
function rnd(n) {
  rs ^= rs << 13;
  rs >>>= 0;
  rs ^= rs >>> 17;
  rs ^= rs << 5;
  rs >>>= 0;
  return n <= 0 ? 0 : rs % n;
}

// ---- watchdog: the current input lives in shared memory so a hung main thread can be reported --
const ctlSab = new SharedArrayBuffer(16);
const ctl = new Int32Array(ctlSab); // [0] running? [1] input length [2] exec counter
const inSab = new SharedArrayBuffer(maxLen);
const shared = new Uint8Array(inSab);
const watchdog = new Worker(
  `
  const { workerData: w } = require('node:worker_threads');
  const { writeFileSync, writeSync } = require('node:fs');
  const { createHash } = require('node:crypto');
  const ctl = new Int32Array(w.ctlSab); const input = new Uint8Array(w.inSab);
  let seen = -1; let since = Date.now();
  function die(kind, what) {
    const bytes = Buffer.from(input.subarray(0, Atomics.load(ctl, 1)));
    const path = w.outDir + '/' + kind + '-' + createHash('sha1').update(bytes).digest('hex');
    writeFileSync(path, bytes);
    writeSync(2, 'FINDING ' + kind + ' ' + w.target + ': ' + path + '\\n  ' + what + '\\n  input (' + bytes.length + ' bytes): ' + bytes.subarray(0, 256).toString('hex') + '\\n');
    process.kill(process.pid, 'SIGKILL');
  }
  setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > w.rssMb * ${MB}) die('rss', 'resident size ' + Math.round(rss / ${MB}) + ' MB > ' + w.rssMb + ' MB');
    const n = Atomics.load(ctl, 2);
    if (n !== seen || Atomics.load(ctl, 0) === 0) { seen = n; since = Date.now(); return; }
    // allow twice the per-input bound (GC pauses, a busy machine) before calling it a hang
    if (Date.now() - since > 2 * w.timeoutMs) die('hang', 'one input ran for more than ' + (2 * w.timeoutMs) + ' ms');
  }, 50); // keeps the worker alive; the main thread ends the process with process.exit
  `,
  { eval: true, workerData: { ctlSab, inSab, outDir, target: targetName, timeoutMs: opt.timeoutMs, rssMb: opt.rssMb } },
);
watchdog.unref();

const repoUrl = pathToFileURL(resolve(import.meta.dirname, '../..')).href + '/';
const engineUrl = import.meta.url;
const seenFeatures = new Set();
const bucket = (c) => (c < 4 ? c : c < 8 ? 4 : c < 16 ? 5 : c < 32 ? 6 : c < 128 ? 7 : 8);

/** Reads (and resets) the block counters; returns how many features are new. */
function newFeatures() {
  const { result } = post('Profiler.takePreciseCoverage');
  let fresh = 0;
  for (const script of result) {
    // the code under test and the target; not the engine (its mutators would look like new paths)
    if (!script.url.startsWith(repoUrl) || script.url.includes('/node_modules/') || script.url === engineUrl) continue;
    for (const fn of script.functions) {
      for (const r of fn.ranges) {
        if (r.count === 0) continue;
        const key = `${script.url}:${r.startOffset}:${r.endOffset}:${bucket(r.count)}`;
        if (!seenFeatures.has(key)) {
          seenFeatures.add(key);
          fresh++;
        }
      }
    }
  }
  return fresh;
}

// ---- one execution ---------------------------------------------------------------------------
const findings = new Map(); // dedup key -> path

function report(kind, data, what) {
  const key = `${kind}:${what.split('\n').slice(0, 2).join('|')}`;
  if (findings.has(key)) return;
  const path = join(outDir, `${kind}-${createHash('sha1').update(data).digest('hex')}`);
  writeFileSync(path, data);
  findings.set(key, path);
  writeSync(2, `FINDING ${kind} ${targetName}: ${path}\n  ${what.split('\n').slice(0, 8).join('\n  ')}\n  input (${data.length} bytes): ${data.subarray(0, 256).toString('hex')}${data.length > 256 ? '...' : ''}\n`);
  if (!opt.keepGoing) finish(1);
}

// Like libFuzzer's -malloc_limit_mb: one Buffer allocation above the bound is a finding at the
// moment it is asked for (a length field trusted before the bytes are there), whatever the GC does.
let current = Buffer.alloc(0);
const allocLimit = opt.allocMb * MB;
for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow']) {
  const orig = Buffer[name];
  Buffer[name] = function (size, ...rest) {
    if (typeof size === 'number' && size > allocLimit) {
      report('alloc', current, `Buffer.${name}(${size}) > ${opt.allocMb} MB\n${new Error().stack.split('\n').slice(2).join('\n')}`);
    }
    return orig.call(this, size, ...rest);
  };
}

let execs = 0;
function run(data) {
  current = data;
  shared.set(data);
  Atomics.store(ctl, 1, data.length);
  Atomics.add(ctl, 2, 1);
  Atomics.store(ctl, 0, 1);
  const m0 = process.memoryUsage();
  const t0 = performance.now();
  let thrown = null;
  try {
    target.fuzz(data);
  } catch (e) {
    thrown = e;
  }
  const ms = performance.now() - t0;
  const m1 = process.memoryUsage();
  Atomics.store(ctl, 0, 0);
  execs++;
  if (thrown !== null) {
    const what = thrown instanceof Error ? (thrown.stack ?? String(thrown)) : `non-Error thrown: ${String(thrown)}`;
    report('crash', data, what);
  }
  if (ms > opt.timeoutMs) {
    // a GC pause or a busy machine can stall any one run: it counts only if a second run is slow too
    const t1 = performance.now();
    try {
      target.fuzz(Buffer.from(data));
    } catch {
      // reported above
    }
    const again = performance.now() - t1;
    if (again > opt.timeoutMs) report('slow', data, `one input took ${Math.round(ms)} ms and ${Math.round(again)} ms > ${opt.timeoutMs} ms`);
  }
  const heapMb = (m1.heapUsed - m0.heapUsed) / MB;
  const extMb = (m1.external - m0.external) / MB; // external includes arrayBuffers (Buffers)
  if (heapMb > opt.allocMb || extMb > opt.allocMb) {
    report('alloc', data, `one input grew the heap by ${heapMb.toFixed(1)} MB and Buffers by ${extMb.toFixed(1)} MB (> ${opt.allocMb} MB)`);
  }
  return newFeatures();
}

// ---- mutation ----------------------------------------------------------------------------------
const corpus = [];
const INTERESTING_8 = [0, 1, 2, 4, 8, 0x0f, 0x10, 0x20, 0x3f, 0x40, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_16 = [0, 1, 2, 4, 8, 0x10, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function mutateOnce(b) {
  const n = b.length;
  switch (rnd(14)) {
    case 0: // flip a bit
      if (n) b[rnd(n)] ^= 1 << rnd(8);
      return b;
    case 1: // random byte
      if (n) b[rnd(n)] = rnd(256);
      return b;
    case 2: // interesting byte
      if (n) b[rnd(n)] = INTERESTING_8[rnd(INTERESTING_8.length)];
      return b;
    case 3: // add/subtract a little
      if (n) {
        const i = rnd(n);
        b[i] = (b[i] + rnd(35) - 17) & 0xff;
      }
      return b;
    case 4: {
      // a 16-bit big-endian field: interesting value, or "the rest of the input from here"
      if (n < 2) return b;
      const i = rnd(n - 1);
      const v = rnd(3) === 0 ? (n - i + rnd(9) - 4) & 0xffff : INTERESTING_16[rnd(INTERESTING_16.length)];
      b.writeUInt16BE(v, i);
      return b;
    }
    case 5: {
      if (n < 4) return b;
      const i = rnd(n - 3);
      const v = rnd(3) === 0 ? (n - i + rnd(9) - 4) >>> 0 : INTERESTING_32[rnd(INTERESTING_32.length)];
      b.writeUInt32BE(v >>> 0, i);
      return b;
    }
    case 6: {
      // delete a range
      if (n < 2) return b;
      const i = rnd(n);
      const len = 1 + rnd(Math.min(n - i, 16));
      return Buffer.concat([b.subarray(0, i), b.subarray(i + len)]);
    }
    case 7: {
      // insert random bytes
      const i = rnd(n + 1);
      const ins = Buffer.alloc(1 + rnd(16));
      for (let k = 0; k < ins.length; k++) ins[k] = rnd(256);
      return Buffer.concat([b.subarray(0, i), ins, b.subarray(i)]);
    }
    case 8: {
      // duplicate a range somewhere (repeated payloads, repeated frames)
      if (n < 1) return b;
      const i = rnd(n);
      const len = 1 + rnd(Math.min(n - i, 64));
      const at = rnd(n + 1);
      return Buffer.concat([b.subarray(0, at), b.subarray(i, i + len), b.subarray(at)]);
    }
    case 9: {
      // crossover with another corpus entry
      const o = corpus[rnd(corpus.length)];
      if (!o || o.length === 0) return b;
      const i = rnd(n + 1);
      const j = rnd(o.length);
      return Buffer.concat([b.subarray(0, i), o.subarray(j, j + 1 + rnd(o.length - j))]);
    }
    case 10: {
      // dictionary token, inserted or overwriting
      if (dictionary.length === 0) return b;
      const d = dictionary[rnd(dictionary.length)];
      const i = rnd(n + 1);
      if (rnd(2)) return Buffer.concat([b.subarray(0, i), d, b.subarray(i)]);
      const c = Buffer.from(b);
      d.copy(c, Math.min(i, Math.max(0, n - d.length)));
      return c.length === n ? c : b;
    }
    case 11: // truncate
      return n ? b.subarray(0, rnd(n)) : b;
    case 12: {
      // copy a range over another place
      if (n < 2) return b;
      const i = rnd(n);
      const j = rnd(n);
      b.copy(b, j, i, i + 1 + rnd(Math.min(n - i, 32)));
      return b;
    }
    default: {
      // swap two bytes
      if (n < 2) return b;
      const i = rnd(n);
      const j = rnd(n);
      const t = b[i];
      b[i] = b[j];
      b[j] = t;
      return b;
    }
  }
}

function mutate(src) {
  let b = Buffer.from(src);
  const k = 1 + rnd(rnd(2) ? 2 : 6);
  for (let i = 0; i < k; i++) b = mutateOnce(b);
  if (b.length > maxLen) b = b.subarray(0, maxLen);
  return Buffer.from(b); // own, exact-size buffer: a target may keep or modify it
}

// ---- main loop -------------------------------------------------------------------------------
let finished = false;
const started = performance.now();
function finish(code) {
  if (finished) return;
  finished = true;
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  writeSync(1, `fuzz-ts ${targetName}: ${execs} inputs in ${secs} s, ${seenFeatures.size} features, corpus ${corpus.length}, seed ${opt.seed}, ${findings.size} finding(s)\n`);
  process.exit(code);
}

newFeatures(); // counters from module loading are not the target's
const seeds = [];
for (const dir of opt.corpus) {
  if (statSync(dir).isFile()) {
    seeds.push(readFileSync(dir).subarray(0, maxLen)); // replaying one saved input
    continue;
  }
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    if (statSync(p).isFile()) seeds.push(readFileSync(p).subarray(0, maxLen));
  }
}
if (seeds.length === 0) seeds.push(Buffer.alloc(0));
for (const s of seeds) {
  run(Buffer.from(s));
  corpus.push(s);
}
const seedFeatures = seenFeatures.size;
const deadline = started + opt.seconds * 1000;
while (execs < opt.runs && performance.now() < deadline) {
  const parent = corpus[rnd(corpus.length)];
  const child = mutate(parent);
  if (run(child) > 0) {
    corpus.push(child);
    if (opt.grow) writeFileSync(join(opt.grow, createHash('sha1').update(child).digest('hex')), child);
  }
}
writeSync(1, `fuzz-ts ${targetName}: ${seeds.length} seeds gave ${seedFeatures} features\n`);
finish(findings.size > 0 ? 1 : 0);
