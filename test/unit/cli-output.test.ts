// `vpcgw status --json` into a pipe, as `| jq` or a script reads it: every byte arrives, however
// large the status (a thousand tunnels is about a megabyte). A fake daemon answers on the control
// socket; the real built CLI (dist/cli.js) runs as a child process with stdout on a pipe.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, ensureBuilt } from '../helpers/openvpn.js';

const dir = mkdtempSync(join(tmpdir(), 'vpcgw-cli-out-'));
const sock = join(dir, 'control.sock');
const CONNECTIONS = 2000;
const status = {
  gateway: { name: 'big' },
  dataPlane: 'native',
  connections: Array.from({ length: CONNECTIONS }, (_, i) => ({ name: `site${i}-main`, state: 'ESTABLISHED', children: [{ state: 'INSTALLED', spiIn: 'c0ffee01', spiOut: 'c0ffee02', bytesIn: i, bytesOut: i }] })),
  vpnServers: [],
};
const server = createServer((c) => {
  c.once('data', () => c.end(`${JSON.stringify({ id: 1, result: status })}\n`));
});

beforeAll(async () => {
  await ensureBuilt();
  await new Promise<void>((r) => server.listen(sock, r));
}, 180_000);

afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('vpcgw status --json into a pipe', () => {
  it(`writes all of a ${CONNECTIONS}-connection status before it exits`, async () => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist/cli.js'), 'status', '--json', '--control', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    const out = Buffer.concat(chunks).toString('utf8');
    expect(code).toBe(0);
    expect(out.length).toBeGreaterThan(500_000);
    const parsed = JSON.parse(out) as typeof status;
    expect(parsed.connections).toHaveLength(CONNECTIONS);
  }, 60_000);
});
