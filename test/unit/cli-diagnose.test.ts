import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, type CliIo } from '../../src/cli.js';
import { ControlServer } from '../../src/gateway/control.js';

// `vpcgw diagnose NAME [--json]` against a control socket that answers "status" as the daemon does.

const tmp = mkdtempSync(join(tmpdir(), 'vpcgw-diag-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, cwd: tmp, isRoot: () => true };
  const code = await main(argv, io);
  return { code, out, err };
}

const LAST_ERROR = {
  code: 'TS_UNACCEPTABLE', at: '2026-01-05T10:12:03.412Z',
  message: 'no traffic selector overlap: peer proposed 10.9.0.0/16 (its side) === 10.2.0.0/16 (our side); we allow 10.1.0.0/16 === 10.2.0.0/16',
  hint: 'set remoteSubnets to include 10.9.0.0/16 and localSubnets to include 10.2.0.0/16, or have the peer use local_ts 10.1.0.0/16 and remote_ts 10.2.0.0/16',
};

describe('vpcgw diagnose', () => {
  it('prints the state, the last error and the fix; --json the same as data; an unknown name fails with the known ones', async () => {
    const sock = join(tmp, 'vpcgw.sock');
    const srv = await ControlServer.listen({
      path: sock,
      handlers: {
        status: () => ({
          gateway: {}, vpnServers: [],
          connections: [
            { name: 'dc1-main', state: 'ESTABLISHED', peer: '192.0.2.1:4500', ikeSa: 'aa/bb', children: [], lastError: LAST_ERROR },
            { name: 'dc2-main', state: 'DOWN', children: [] },
          ],
        }),
      },
    });
    try {
      const t = await cli(['diagnose', 'dc1-main', '--control', sock]);
      expect(t.code).toBe(0);
      expect(t.out.split('\n')).toEqual([
        'connection dc1-main: ESTABLISHED (peer 192.0.2.1:4500, ike aa/bb)',
        '  children: 0 installed (no traffic passes)',
        `  last error (${LAST_ERROR.at}): ${LAST_ERROR.message}`,
        '  code: TS_UNACCEPTABLE',
        `  suggested fix: ${LAST_ERROR.hint}`,
        '',
      ]);
      const j = await cli(['diagnose', 'dc1-main', '--json', '--control', sock]);
      expect(JSON.parse(j.out)).toEqual({
        name: 'dc1-main', state: 'ESTABLISHED', peer: '192.0.2.1:4500', ikeSa: 'aa/bb', children: 0, lastError: LAST_ERROR, suggestedFix: LAST_ERROR.hint,
      });
      expect((await cli(['diagnose', 'dc2-main', '--control', sock])).out).toContain('suggested fix: start it with `vpcgw initiate dc2-main`');
      const bad = await cli(['diagnose', 'nope', '--control', sock]);
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(/no VPN connection named "nope" \(configured: dc1-main, dc2-main\)/);
      expect((await cli(['diagnose', '--control', sock])).code).toBe(1);
    } finally {
      await srv.close();
    }
  });
});
