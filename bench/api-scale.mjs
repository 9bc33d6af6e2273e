// Management plane at scale: `vpcgw start` (dist/, store-backed) in a namespace of its own, N vpn
// connections created one by one through the HTTPS API (each validated, stored with fsync and taken
// live), list pages of 500 and single GETs timed, then the daemon's start time with N connections
// in its store. Needs root; run `npm run build` first.
//
// The store is seeded with USERS users (one shared scrypt hash) through the start-up document.
//
//   node bench/api-scale.mjs [N=1000] [USERS=10000]
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CLI = join(ROOT, 'dist/cli.js');
const N = Number(process.argv[2] ?? 1000);
const USERS = Number(process.argv[3] ?? 10000);
const NS = `vgbench${process.pid % 10000}`;

const sh = (cmd, args, o = {}) => execFileSync(cmd, args, { encoding: 'utf8', timeout: o.timeoutMs ?? 60_000 });
const inNs = (cmd, args, o) => sh('ip', ['netns', 'exec', NS, cmd, ...args], o);

async function startDaemon(dataDir) {
  const t0 = performance.now();
  const p = spawn('ip', ['netns', 'exec', NS, process.execPath, CLI, 'start'], { env: { ...process.env, VPCGW_DATA_DIR: dataDir }, stdio: 'ignore' });
  const sock = join(dataDir, 'vpcgw.sock');
  for (let i = 0; i < 600; i++) {
    if (existsSync(sock)) {
      try {
        inNs(process.execPath, [CLI, 'status', '--json', '--control', sock]);
        return { p, ms: performance.now() - t0, sock };
      } catch { /* not yet */ }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  p.kill('SIGKILL');
  throw new Error('vpcgw did not answer status in 60 s');
}

async function stop(p) {
  p.kill('SIGTERM');
  await new Promise((r) => p.once('exit', r));
}

if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: npm run build');
const { hashPassword } = await import(join(ROOT, 'dist/gateway/users.js'));
// BENCH FIXTURE ONLY: not a real secret.
const passwordHash = await hashPassword('bench-fixture-password');
const dir = mkdtempSync(join(tmpdir(), 'vpcgw-bench-api-'));
const dataDir = join(dir, 'var');
mkdirSync(dataDir, { mode: 0o700 });
writeFileSync(join(dataDir, 'vpcgw.yaml'), `gateway:
  name: bench
  dataDir: .
  publicAddresses: [127.0.0.1]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: vgbench }
  logLevel: warn
customerGateways: []
vpnConnections: []
vpnServers: []
users:
${Array.from({ length: USERS }, (_, i) => `  - { name: user${i}, passwordHash: "${passwordHash}" }`).join('\n')}
`, { mode: 0o600 });
sh('ip', ['netns', 'add', NS]);
try {
  sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  const first = await startDaemon(dataDir);
  const token = inNs(process.execPath, [CLI, 'token', 'create', '--control', first.sock]).trim();
  const status = JSON.parse(inNs(process.execPath, [CLI, 'status', '--json', '--control', first.sock]));
  const out = JSON.parse(inNs(process.execPath, [join(ROOT, 'bench/api-scale-client.mjs'), status.gateway.api.url, token, String(N)], { timeoutMs: 900_000 }).trim());
  await stop(first.p);
  const again = await startDaemon(dataDir);
  await stop(again.p);
  const row = (what, s) => `${what.padEnd(34)} ${String(s.p50).padStart(8)} ${String(s.p99).padStart(8)} ${String(s.max).padStart(8)}`;
  console.log(`vpcgw management API, ${N} vpn connections (${out.created} created, ${out.listed} listed), ${USERS} users in the store`);
  console.log(`${''.padEnd(34)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}`);
  console.log(row('create (validate, fsync, go live)', out.create));
  console.log(row('list, page of 500', out.listPage500));
  console.log(row('get one', out.get));
  console.log(`all ${N} creates: ${out.createTotalSec} s; start with them in the store: ${Math.round(again.ms)} ms (first start, seeding ${USERS} users: ${Math.round(first.ms)} ms)`);
} finally {
  sh('ip', ['netns', 'del', NS]);
  rmSync(dir, { recursive: true, force: true });
}
