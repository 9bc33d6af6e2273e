#!/usr/bin/env node
// `npm test`: build (the daemon and the web console), run every vitest suite (unit + exchange + interop + browser) on the default (native) data
// plane, then the interop suites (site-to-cloud, the openvpn client, VPC endpoints, access policies) again on the TypeScript fallback data
// plane (VPCGW_DATAPLANE=ts), and print one closing line "N passed, N failed" summed over both runs,
// so a run that executed nothing is visible. Extra arguments go to the first vitest run only; with
// arguments the fallback pass is skipped (a focused run).
//
// First scripts/preflight.mjs checks that every program, charon plugin and fuzzer runtime the tests load
// is installed (it installs nothing; it says which Debian package is missing). VPCGW_TEST_NO_PREFLIGHT=1
// and VPCGW_TEST_NO_BUILD=1 skip those steps (the runner's own test uses them).
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarize } from './vitest-report.mjs';

const args = process.argv.slice(2);
if (process.env.VPCGW_TEST_NO_PREFLIGHT !== '1') {
  const pre = spawnSync(process.execPath, [new URL('./preflight.mjs', import.meta.url).pathname], { stdio: 'inherit' });
  if (pre.status !== 0) {
    console.error('preflight failed: this machine lacks what the tests need (see above)');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}
if (process.env.VPCGW_TEST_NO_BUILD !== '1') {
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  if (build.status !== 0) {
    console.error('build failed');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  // the web console's bundle: test/browser drives it in chromium against `vpcgw start`
  const consoleBuild = spawnSync(process.execPath, [new URL('./build-console.mjs', import.meta.url).pathname], { stdio: 'inherit' });
  if (consoleBuild.status !== 0) {
    console.error('console build failed');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

const FALLBACK_SUITES = [
  'test/interop/s2c-strongswan.test.ts',
  'test/interop/s2c-vpcgw.test.ts',
  'test/interop/s2c-algorithms.test.ts',
  'test/interop/s2c-ipv6.test.ts',
  'test/interop/s2c-children.test.ts',
  'test/interop/openvpn.test.ts',
  'test/interop/openvpn-daemon.test.ts',
  'test/interop/vpcep-site.test.ts',
  'test/interop/openvpn-groups.test.ts',
  'test/interop/s2c-nat.test.ts',
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
    Object.assign(r, summarize(JSON.parse(readFileSync(out, 'utf8'))));
  } catch (e) {
    console.error(`no vitest report for ${label}: ${e.message}`);
    r.failed = Math.max(r.failed, 1);
  }
  if (r.passed + r.failed === 0) r.failed = 1; // a run that executed nothing is a failure
  if (!r.ok && r.failed === 0) r.failed = 1; // vitest failed for a reason the report does not show
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
