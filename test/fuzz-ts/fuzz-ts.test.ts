// Coverage-guided fuzzing of the TypeScript parsers that read attacker bytes (IKE messages, payloads
// and SK contents; OpenVPN control/ACK/data headers, the reliable layer, key-method 2, TCP framing;
// the config loader), bounded in time: scripts/fuzz-ts.mjs runs each target of test/fuzz-ts/targets
// from its seed corpus and fails on a finding. The self-test first proves that the harness does fail:
// a toy parser with a crash, a hang and a big allocation must be caught, and pass once "fixed".
// FUZZ_TS_SECONDS sets the time per target (default here 7 s: 14 targets in about 2.5 minutes).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
const SECONDS = Number(process.env.FUZZ_TS_SECONDS ?? 7);

function runner(args: string[], env: Record<string, string> = {}, timeoutSec = 120): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/fuzz-ts.mjs'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: timeoutSec * 1000,
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

// as in scripts/fuzz-ts.mjs: a target exports fuzz(); helpers (check.ts, null-sk.ts) do not
const TARGETS_DIR = join(ROOT, 'test/fuzz-ts/targets');
const targets = readdirSync(TARGETS_DIR)
  .filter((f) => f.endsWith('.ts') && /^export function fuzz\(/m.test(readFileSync(join(TARGETS_DIR, f), 'utf8')))
  .map((f) => f.slice(0, -3));

describe('fuzz harness self-test', () => {
  const selfTest = ['--targets-dir', join(ROOT, 'test/fuzz-ts/self-test'), '--timeout-ms', '500', '--seed', '1'];

  it('reports a crash, a hang and a big allocation, with the failing inputs', () => {
    const out = mkdtempSync(join(tmpdir(), 'fuzz-ts-self-'));
    const r = runner([...selfTest, '--seconds', '20', '--out', out]);
    expect(r.status, r.out).toBe(1);
    for (const [kind, target] of [['crash', 'broken-crash'], ['hang', 'broken-hang'], ['alloc', 'broken-alloc']]) {
      const m = new RegExp(`^FINDING ${kind} ${target}: (\\S+)$`, 'm').exec(r.out);
      expect(m, r.out).not.toBeNull();
      expect(existsSync(m![1]!)).toBe(true);
    }
    expect(r.out).toMatch(/RangeError/);
    // the saved crash input replays
    const crash = /^FINDING crash broken-crash: (\S+)$/m.exec(r.out)![1]!;
    const replay = spawnSync(
      process.execPath,
      ['--import', join(ROOT, 'test/fuzz-ts/register.mjs'), join(ROOT, 'test/fuzz-ts/engine.mjs'), join(ROOT, 'test/fuzz-ts/self-test/broken-crash.ts'), '--corpus', crash, '--runs', '1', '--out', out],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
    );
    expect(replay.status, replay.stderr).toBe(1);
    expect(replay.stderr).toMatch(/FINDING crash broken-crash/);
  }, 180_000);

  it('passes the same targets with the bugs fixed', () => {
    const r = runner([...selfTest, '--seconds', '2'], { FUZZ_TS_SELFTEST_FIXED: '1' });
    expect(r.status, r.out).toBe(0);
  }, 120_000);
});

describe('fuzzing the TypeScript parsers', () => {
  it.each(targets)('%s: only ParseError/ConfigError, no hang, no big allocation', (target) => {
    const r = runner(['--seconds', String(SECONDS), target], {}, SECONDS + 90);
    expect(r.status, r.out.slice(-6000)).toBe(0);
    expect(r.out).toMatch(new RegExp(`fuzz-ts ${target}: [1-9]\\d* inputs`));
  }, (SECONDS + 120) * 1000);
});
