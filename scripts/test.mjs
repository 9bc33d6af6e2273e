#!/usr/bin/env node
// `npm test`: build, run every vitest suite (unit + exchange + interop) on the default (native) data
// plane, then the interop suites (site-to-cloud and the openvpn client) again on the TypeScript fallback data
// plane (VPCGW_DATAPLANE=ts), and print one closing line "N passed, N failed" summed over both runs,
// so a run that executed nothing is visible. Extra arguments go to the first vitest run only; with
// arguments the fallback pass is skipped (a focused run).
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error('build failed');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const FALLBACK_SUITES = [
  'test/interop/s2c-strongswan.test.ts',
  'test/interop/s2c-vpcgw.test.ts',
  'test/interop/openvpn.test.ts',
  'test/interop/openvpn-daemon.test.ts',
];

function vitest(label, vitestArgs, env) {
  const out = join(mkdtempSync(join(tmpdir(), 'vpcgw-test-')), 'report.json');
  console.log(`\n=== ${label} ===`);
  const run = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...vitestArgs], {
    stdio: 'inherit',
    env: { ...process.env, ...env },
  });
  const r = { passed: 0, failed: 0, skipped: 0, ok: run.status === 0 };
  try {
    const j = JSON.parse(readFileSync(out, 'utf8'));
    r.passed = j.numPassedTests;
    r.failed = j.numFailedTests + (j.numRuntimeErrorTestSuites ?? 0);
    r.skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
    for (const f of j.testResults ?? []) if (f.status === 'failed' && (f.assertionResults ?? []).length === 0) r.failed++;
  } catch (e) {
    console.error(`no vitest report for ${label}: ${e.message}`);
    r.failed = Math.max(r.failed, 1);
  }
  if (r.passed + r.failed === 0) r.failed = 1; // a run that executed nothing is a failure
  console.log(`${label}: ${r.passed} passed, ${r.failed} failed`);
  return r;
}

const runs = [vitest('all suites (default data plane)', args, {})];
if (args.length === 0) runs.push(vitest('interop through vpcgw start on the TypeScript data plane', FALLBACK_SUITES, { VPCGW_DATAPLANE: 'ts' }));
const passed = runs.reduce((a, r) => a + r.passed, 0);
const failed = runs.reduce((a, r) => a + r.failed, 0);
const skipped = runs.reduce((a, r) => a + r.skipped, 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(runs.every((r) => r.ok) && failed === 0 ? 0 : 1);
