// Reads vitest's JSON report (--reporter=json) into the counts scripts/test.mjs prints.
//
// A test that did not run because its setup failed counts as failed: vitest 4 reports the tests of a
// describe block whose beforeAll threw as "skipped" inside a file whose status is "failed", with
// numFailedTests 0 and only numFailedTestSuites > 0. So, per file:
//   - every failed assertion is a failure;
//   - in a failed file, every test that did not run (skipped, pending, todo) is a failure too;
//   - a failed file with neither (an import error, a throwing afterAll) is one failure.
// A report that says success: false but whose files show nothing counts numFailedTestSuites (at least 1).

/** @param {any} j the parsed report @returns {{ passed: number, failed: number, skipped: number }} */
export function summarize(j) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const f of j.testResults ?? []) {
    const results = f.assertionResults ?? [];
    let fileFailed = 0;
    for (const a of results) {
      if (a.status === 'passed') passed++;
      else if (a.status === 'failed') fileFailed++;
      else if (f.status === 'failed') fileFailed++; // did not run because its setup failed
      else skipped++;
    }
    if (f.status === 'failed' && fileFailed === 0) fileFailed = 1;
    failed += fileFailed;
  }
  if (j.success === false && failed === 0) failed = Math.max(1, j.numFailedTestSuites ?? 0);
  return { passed, failed, skipped };
}
