// Process helpers for interop tests: run a command to completion with a hard timeout, spawn a
// long-running process and stop it by PID, and poll a condition with a deadline.
// Every wait here is bounded; nothing sleeps without a limit.
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunOptions {
  /** Hard limit; the process gets SIGKILL when it is reached. */
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** When false (default), a non-zero exit or a timeout rejects. */
  allowFail?: boolean;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly result: RunResult,
  ) {
    super(
      `${cmd} ${result.timedOut ? 'timed out' : `exited ${result.code ?? result.signal}`}\n` +
        `stdout: ${tail(result.stdout)}\nstderr: ${tail(result.stderr)}`,
    );
    this.name = 'CommandError';
  }
}

function tail(s: string, max = 2000): string {
  return s.length > max ? `…${s.slice(-max)}` : s;
}

/** Runs `cmd args` to completion. Output is collected as UTF-8 text. */
export function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = { code, signal, stdout, stderr, timedOut };
      const label = [cmd, ...args].join(' ');
      if (!opts.allowFail && (timedOut || code !== 0)) reject(new CommandError(label, result));
      else resolve(result);
    });
    child.stdin.on('error', () => {}); // the child may exit before reading its input
    child.stdin.end(opts.input ?? '');
  });
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A long-running child. `output()` returns everything it printed so far (bounded to the last
 * `maxOutputChars`), which is what a failing test wants to show.
 */
export class ManagedProcess {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  private out = '';

  constructor(
    readonly label: string,
    child: ChildProcess,
    private readonly maxOutputChars = 200_000,
  ) {
    if (child.pid === undefined) throw new Error(`${label}: spawn failed`);
    this.pid = child.pid;
    const append = (d: string): void => {
      this.out += d;
      if (this.out.length > this.maxOutputChars) this.out = this.out.slice(-this.maxOutputChars);
    };
    child.stdout?.setEncoding('utf8').on('data', append);
    child.stderr?.setEncoding('utf8').on('data', append);
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      child.on('error', (err) => {
        append(`\n[spawn error] ${err.message}\n`);
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  output(): string {
    return this.out;
  }

  /**
   * Sends `signal` to this PID only, waits up to `timeoutMs`, then SIGKILLs and waits again
   * (bounded). Returns how the process ended.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<ExitInfo & { killed: boolean }> {
    if (this.exitInfo) return { ...this.exitInfo, killed: false };
    try {
      process.kill(this.pid, signal);
    } catch {
      /* already gone */
    }
    const first = await withTimeout(this.exited, timeoutMs);
    if (first) return { ...first, killed: false };
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    const second = await withTimeout(this.exited, 3000);
    return { ...(second ?? { code: null, signal: 'SIGKILL' }), killed: true };
  }
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  label?: string;
}

export function spawnProcess(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
  const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new ManagedProcess(opts.label ?? [cmd, ...args].join(' '), child);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(undefined);
      },
    );
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Used in the timeout error. */
  what: string;
}

/**
 * Polls `probe` until it returns a value other than undefined/false, or throws after
 * `timeoutMs` with the last probe error, if any.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | false>, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${why}`);
    }
    await sleep(opts.intervalMs ?? 200);
  }
}
