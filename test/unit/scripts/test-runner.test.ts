// `npm test` (scripts/test.mjs) must never print "0 failed" for a failing run. The fixture under
// test/fixtures/setup-throws has a describe block whose beforeAll throws: vitest 4 reports its two tests
// as skipped, not failed, so a runner that read only numFailedTests would call the run green.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM script without type declarations
import { summarize } from '../../../scripts/vitest-report.mjs';

const REPO = new URL('../../../', import.meta.url).pathname;

describe('scripts/test.mjs', () => {
  it('counts tests whose beforeAll threw as failed and exits non-zero', () => {
    const r = spawnSync(process.execPath, ['scripts/test.mjs', '--config', 'test/fixtures/setup-throws/vitest.config.ts'], {
      cwd: REPO,
      encoding: 'utf8',
      env: { ...process.env, VPCGW_TEST_NO_PREFLIGHT: '1', VPCGW_TEST_NO_BUILD: '1' },
      timeout: 60_000,
    });
    const lines = r.stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('1 passed, 2 failed');
    expect(r.status).toBe(1);
  });
});

describe('summarize (vitest JSON report)', () => {
  it('counts a failed file without assertions (an import error) as one failure', () => {
    expect(summarize({ success: false, testResults: [{ status: 'failed', assertionResults: [] }] })).toEqual({ passed: 0, failed: 1, skipped: 0 });
  });
  it('keeps deliberate skips in a passing file as skipped', () => {
    const j = { success: true, testResults: [{ status: 'passed', assertionResults: [{ status: 'passed' }, { status: 'skipped' }] }] };
    expect(summarize(j)).toEqual({ passed: 1, failed: 0, skipped: 1 });
  });
  it('never reports 0 failed for a report that says it failed', () => {
    expect(summarize({ success: false, numFailedTestSuites: 2, testResults: [] }).failed).toBe(2);
  });
});
