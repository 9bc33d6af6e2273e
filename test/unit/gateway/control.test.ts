import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, statSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../src/common/errors.js';
import { ControlError, ControlServer, controlCall } from '../../../src/gateway/control.js';

const dirs: string[] = [];
const servers: ControlServer[] = [];
function sockPath(): string {
  const d = mkdtempSync(join(tmpdir(), 'vpcgw-ctl-'));
  dirs.push(d);
  return join(d, 'vpcgw.sock');
}
async function serve(path: string, handlers: Record<string, (p: unknown) => unknown>): Promise<ControlServer> {
  const s = await ControlServer.listen({ path, handlers });
  servers.push(s);
  return s;
}

/** Resolves to the error a call fails with; a call that succeeds fails the test. */
function failure(p: Promise<unknown>): Promise<ControlError> {
  return p.then(
    (v) => {
      throw new Error(`expected a failure, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e as ControlError,
  );
}

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('control socket', () => {
  it('round-trips a request to a handler and back, sync or async', async () => {
    const path = sockPath();
    await serve(path, {
      echo: (p) => ({ got: p }),
      slow: async () => {
        await new Promise((r) => setTimeout(r, 20));
        return 42;
      },
      nothing: () => undefined,
    });
    expect(await controlCall(path, 'echo', { name: 'dc1' })).toEqual({ got: { name: 'dc1' } });
    expect(await controlCall(path, 'slow')).toBe(42);
    expect(await controlCall(path, 'nothing')).toBeNull();
  });

  it('creates the socket with mode 0600', async () => {
    const path = sockPath();
    await serve(path, {});
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('answers an unknown method with ERR_UNKNOWN_METHOD naming the known ones', async () => {
    const path = sockPath();
    await serve(path, { status: () => ({}) });
    const err = await failure(controlCall(path, 'statsu'));
    expect(err).toBeInstanceOf(ControlError);
    expect(err.code).toBe('ERR_UNKNOWN_METHOD');
    expect(err.message).toContain('status');
  });

  it('passes a handler VpnError code through, and hides other errors behind ERR_INTERNAL', async () => {
    const path = sockPath();
    await serve(path, {
      initiate: () => {
        throw new ConfigError('name', 'dc9', 'the name of a VPN connection');
      },
      crash: () => {
        throw new TypeError('boom');
      },
    });
    const e1 = await failure(controlCall(path, 'initiate', { name: 'dc9' }));
    expect(e1.code).toBe('ERR_CONFIG');
    expect(e1.message).toContain('dc9');
    const e2 = await failure(controlCall(path, 'crash'));
    expect(e2.code).toBe('ERR_INTERNAL');
  });

  it('answers malformed JSON and keeps serving the same connection', async () => {
    const path = sockPath();
    await serve(path, { ping: () => 'pong' });
    const lines = await new Promise<string[]>((resolve, reject) => {
      const s = connect(path);
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        buf += d;
        const got = buf.split('\n').filter(Boolean);
        if (got.length === 3) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('error', reject);
      s.write('{not json\n{"id":7,"method":"ping"}\n{"id":8}\n');
    });
    const res = lines.map((l) => JSON.parse(l));
    expect(res[0].error.code).toBe('ERR_BAD_REQUEST');
    expect(res).toContainEqual({ id: 7, result: 'pong' });
    expect(res.find((r) => r.id === 8).error.code).toBe('ERR_BAD_REQUEST');
  });

  it('reports ERR_NOT_RUNNING when no daemon listens', async () => {
    const err = await failure(controlCall(sockPath(), 'status'));
    expect(err).toBeInstanceOf(ControlError);
    expect(err.code).toBe('ERR_NOT_RUNNING');
  });

  it('times out on a daemon that never answers', async () => {
    const path = sockPath();
    const mute = createServer((s) => s.resume());
    await new Promise<void>((r) => mute.listen(path, r));
    try {
      const t0 = Date.now();
      const err = await failure(controlCall(path, 'status', {}, { timeoutMs: 150 }));
      expect(err.code).toBe('ERR_TIMEOUT');
      expect(Date.now() - t0).toBeLessThan(2_000);
    } finally {
      await new Promise((r) => mute.close(r));
    }
  });

  it('removes a stale socket file left by a dead daemon', async () => {
    const path = sockPath();
    // a daemon killed with SIGKILL leaves its socket file behind
    const crash = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`], { timeout: 10_000 });
    expect(crash.signal).toBe('SIGKILL');
    expect(existsSync(path)).toBe(true);
    await serve(path, { ping: () => 'pong' });
    expect(await controlCall(path, 'ping')).toBe('pong');
  });

  it('refuses to take over a live daemon, or a path that is not a socket', async () => {
    const path = sockPath();
    await serve(path, {});
    await expect(ControlServer.listen({ path, handlers: {} })).rejects.toThrow(/already running/);
    const file = sockPath();
    writeFileSync(file, 'precious');
    await expect(ControlServer.listen({ path: file, handlers: {} })).rejects.toThrow(/not a socket/);
    expect(existsSync(file)).toBe(true);
  });

  it('close() removes the socket file', async () => {
    const path = sockPath();
    const s = await ControlServer.listen({ path, handlers: {} });
    await s.close();
    expect(existsSync(path)).toBe(false);
  });
});
