#!/usr/bin/env node
// Runs the TypeScript fuzz targets (test/fuzz-ts/targets/*.ts, engine: test/fuzz-ts/engine.mjs)
// one after the other, each for a bounded time from its committed seed corpus, and fails on any
// finding: an exception other than the documented ParseError/ConfigError, an input slower than the
// per-input bound or hung (the watchdog kills it), an allocation or resident size over the bound.
// Each failing input is saved and its path printed, ready for `--runs 1 --corpus <dir>` replay.
//
//   node scripts/fuzz-ts.mjs [--seconds N] [--out DIR] [--targets-dir DIR] [--grow] [TARGET...]
//
// --grow writes new interesting inputs into test/fuzz-ts/corpus/<target>/ (then review and commit
// the ones worth keeping; `make-corpus.ts` rewrites the seeds from scratch).
// Environment: FUZZ_TS_SECONDS (default 15) for the time per target.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FUZZ = join(ROOT, 'test/fuzz-ts');

const args = process.argv.slice(2);
let seconds = Number(process.env.FUZZ_TS_SECONDS ?? 15);
let out = null;
let targetsDir = join(FUZZ, 'targets');
let grow = false;
const extra = [];
const names = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--seconds') seconds = Number(args[++i]);
  else if (a === '--out') out = args[++i];
  else if (a === '--targets-dir') targetsDir = resolve(args[++i]);
  else if (a === '--grow') grow = true;
  else if (a === '--keep-going') extra.push(a);
  else if (a.startsWith('--')) extra.push(a, args[++i]); // passed to the engine (--timeout-ms, --alloc-mb, --seed ...)
  else names.push(a);
}
out ??= mkdtempSync(join(tmpdir(), 'vpcgw-fuzz-ts-'));
mkdirSync(out, { recursive: true });

const all = readdirSync(targetsDir)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  .map((f) => f.slice(0, -3))
  // helpers (check.ts, null-sk.ts) live next to the targets; a target exports fuzz()
  .filter((n) => /^export function fuzz\(/m.test(readFileSync(join(targetsDir, `${n}.ts`), 'utf8')));
const targets = names.length ? names : all;

const failed = [];
for (const t of targets) {
  const file = join(targetsDir, `${t}.ts`);
  const corpus = join(FUZZ, 'corpus', t);
  const cmd = [
    // heap bound: V8 aborts far above what any packet parser should need
    '--max-old-space-size=512',
    '--import', join(FUZZ, 'register.mjs'),
    join(FUZZ, 'engine.mjs'), file,
    '--seconds', String(seconds),
    '--out', join(out, t),
    ...(existsSync(corpus) ? ['--corpus', corpus] : []),
    ...(grow ? ['--grow', corpus] : []),
    ...extra,
  ];
  const r = spawnSync(process.execPath, cmd, {
    cwd: ROOT,
    encoding: 'utf8',
    // startup (transpiling the sources) plus the fuzzing time plus margin; beyond that it is a hang
    timeout: (seconds + 60) * 1000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  if (r.status !== 0) {
    const why = r.error ? String(r.error) : r.signal ? `killed by ${r.signal}` : `exit status ${r.status}`;
    const paths = [...(r.stderr ?? '').matchAll(/^FINDING \S+ \S+: (.*)$/gm)].map((m) => m[1]);
    failed.push(`${t}: ${why}${paths.length ? `; failing input(s): ${paths.join(', ')}` : ''}`);
  }
}

if (failed.length) {
  process.stderr.write(`fuzz-ts: ${failed.length} of ${targets.length} target(s) failed:\n  ${failed.join('\n  ')}\n`);
  process.exit(1);
}
process.stdout.write(`fuzz-ts: ${targets.length} target(s) passed (${seconds} s each); outputs in ${out}\n`);
