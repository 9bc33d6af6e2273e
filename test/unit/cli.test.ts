import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main, type CliIo } from '../../src/cli.js';
import { ControlServer } from '../../src/gateway/control.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(REPO, 'dist', 'cli.js');
const tmp = mkdtempSync(join(tmpdir(), 'vpcgw-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const GOOD = `gateway:
  dataDir: ./state
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
`;
const BAD = `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
customerGateways:
  - { name: dc1, address: 192.0.2.1 }
vpnConnections:
  - { name: c1, customerGateway: dc1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.1.0.0/16], auth: { psk: secret-psk-1 }, ike: { lifetime: 4x } }
`;
const CONN = '  - { name: c1, customerGateway: dc1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.1.0.0/16], auth: { psk: secret-psk-1 } }';
const WILDCARD_NO_LOCAL_ID = `gateway:
  publicAddresses: [0.0.0.0]
  vpcSubnets: [10.2.0.0/16]
customerGateways:
  - { name: dc1, address: 192.0.2.1 }
vpnConnections:
${CONN}
`;
const BAD_REMOTE_ID = `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
customerGateways:
  - { name: dc1, address: 192.0.2.1, id: "dc1!example" }
vpnConnections:
${CONN}
`;
const IPV6_PUSHED_ROUTE = `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16, fd00::/64]
vpnServers:
  - { name: p2c, clientCidr: 10.8.0.0/24, localSubnets: [fd00::/64], auth: { type: cert },
      serverCert: { cert: s.crt, key: s.key }, clientCa: ca.crt }
`;

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

async function cli(argv: string[], over: Partial<CliIo> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, cwd: tmp, isRoot: () => true, ...over };
  const code = await main(argv, io);
  return { code, out, err };
}

function oneLine(s: string): void {
  expect(s.endsWith('\n')).toBe(true);
  expect(s.trimEnd().split('\n')).toHaveLength(1);
}

describe('vpcgw (in process)', () => {
  it('--help prints the usage and exits 0; no command prints it on stderr and exits 1', async () => {
    const h = await cli(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/usage: vpcgw <command>/);
    for (const cmd of ['start', 'status', 'initiate', 'terminate', 'check-config']) expect(h.out).toContain(cmd);
    const none = await cli([]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/usage/);
  });

  it('an unknown command or option is one line and exit 1', async () => {
    const a = await cli(['frobnicate']);
    expect(a.code).toBe(1);
    oneLine(a.err);
    expect(a.err).toMatch(/^vpcgw: unknown command "frobnicate"/);
    const b = await cli(['status', '--jsno']);
    expect(b.code).toBe(1);
    oneLine(b.err);
    expect(b.err).toContain('--jsno');
  });

  it('check-config: a bad file exits 1 with the field path on one line, without the PSK; a good one exits 0', async () => {
    const bad = await cli(['check-config', file('bad.yaml', BAD)]);
    expect(bad.code).toBe(1);
    oneLine(bad.err);
    expect(bad.err).toContain('vpnConnections[0].ike.lifetime');
    expect(bad.err).toContain('"4x"');
    expect(bad.err).not.toContain('secret-psk-1');
    const good = await cli(['check-config', file('good.yaml', GOOD)]);
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/good\.yaml: OK \(0 customer gateways, 0 VPN connections, 0 VPN servers\)/);
    const missing = await cli(['check-config']);
    expect(missing.code).toBe(1);
    oneLine(missing.err);
  });

  it.each([
    ['a 0.0.0.0 bind without ike.localId', WILDCARD_NO_LOCAL_ID, 'vpnConnections[0].ike.localId: (missing)'],
    ['a customer gateway id that is not a strongSwan identity', BAD_REMOTE_ID, 'customerGateways[0].id: "dc1!example"'],
    ['an IPv6 route pushed to OpenVPN clients', IPV6_PUSHED_ROUTE, 'vpnServers[0].localSubnets[0]: "fd00::/64"'],
  ])('check-config refuses what start refuses (%s), with the same line', async (_t, text, where) => {
    const f = file('start-check.yaml', text);
    const check = await cli(['check-config', f]);
    expect(check.code).toBe(1);
    oneLine(check.err);
    expect(check.err).toContain(`config ${where} is not valid`);
    expect(check.err).not.toContain('secret-psk-1');
    const start = await cli(['start', '--config', f]);
    expect(start.code).toBe(1);
    expect(start.err).toBe(check.err);
  });

  it('status with no daemon says it is not running, on one line, exit 1', async () => {
    const r = await cli(['status', '--control', join(tmp, 'nobody.sock')]);
    expect(r.code).toBe(1);
    oneLine(r.err);
    expect(r.err).toMatch(/not running/);
  });

  it('status, initiate and terminate talk to the control socket; --config finds it in dataDir', async () => {
    const cfgPath = file('with-dir.yaml', GOOD);
    const dataDir = join(tmp, 'state');
    rmSync(dataDir, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dataDir);
    const calls: string[] = [];
    const status = {
      gateway: { name: 'gw1', pid: 1, startedAt: '', uptimeSec: 61, config: cfgPath, publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'],
        tun: { name: 'vpcgw0', mtu: 1400, rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, errors: 0 }, udp: [], routes: [], ike: 'available', dataPlane: 'available' },
      connections: [{ name: 'dc1-main', state: 'ESTABLISHED', children: [{ state: 'INSTALLED', spiIn: '0xc0ffee01', spiOut: '0x0badf00d', bytesIn: 2048, bytesOut: 1, packetsIn: 2, packetsOut: 1 }] }],
      vpnServers: [],
    };
    const srv = await ControlServer.listen({
      path: join(dataDir, 'vpcgw.sock'),
      handlers: {
        status: () => status,
        initiate: (p) => (calls.push(`initiate ${(p as { name: string }).name}`), { name: 'dc1-main', state: 'CONNECTING' }),
        terminate: (p) => (calls.push(`terminate ${(p as { name: string }).name}`), { name: 'dc1-main', state: 'DOWN' }),
      },
    });
    try {
      const j = await cli(['status', '--json', '--config', cfgPath]);
      expect(j.code).toBe(0);
      expect(JSON.parse(j.out)).toEqual(status);
      const h = await cli(['status', '--config', cfgPath]);
      expect(h.out).toContain('dc1-main: ESTABLISHED');
      expect(h.out).toContain('child 0xc0ffee01_i 0x0badf00d_o INSTALLED: in 2.0 KiB / 2 pkts');
      expect(await cli(['initiate', 'dc1-main', '--config', cfgPath])).toMatchObject({ code: 0, out: 'dc1-main: CONNECTING\n' });
      expect(await cli(['terminate', 'dc1-main', '--control', join(dataDir, 'vpcgw.sock')])).toMatchObject({ code: 0, out: 'dc1-main: DOWN\n' });
      expect(calls).toEqual(['initiate dc1-main', 'terminate dc1-main']);
      const noName = await cli(['initiate', '--config', cfgPath]);
      expect(noName.code).toBe(1);
      oneLine(noName.err);
    } finally {
      await srv.close();
    }
  });

  it('start as non-root: one clear line, exit 1, and no data dir created', async () => {
    const dataDir = join(tmp, 'never');
    const r = await cli(['start'], { isRoot: () => false, env: { VPCGW_DATA_DIR: dataDir } });
    expect(r.code).toBe(1);
    oneLine(r.err);
    expect(r.err).toMatch(/^vpcgw: start must run as root/);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('start with a bad config: one line naming the field, exit 1', async () => {
    const r = await cli(['start', '--config', file('bad2.yaml', BAD)]);
    expect(r.code).toBe(1);
    oneLine(r.err);
    expect(r.err).toContain('vpnConnections[0].ike.lifetime');
  });
});

/** Builds dist/ (as `npm run build` does) when dist/cli.js is missing or older than a source file. */
function ensureBuilt(): void {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
    }, 0);
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= newest(join(REPO, 'src'))) return;
  spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO, stdio: 'ignore', timeout: 120_000 });
  if (!existsSync(CLI)) throw new Error('dist/cli.js was not built');
}

describe('vpcgw (built, as a process)', () => {
  beforeAll(() => ensureBuilt(), 150_000);

  it('starts with a node shebang', () => {
    const r = spawnSync('head', ['-1', CLI], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('#!/usr/bin/env node');
  });

  it('check-config bad.yaml exits 1 with the path on stderr', () => {
    const r = spawnSync(process.execPath, [CLI, 'check-config', file('bad3.yaml', BAD)], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('vpnConnections[0].ike.lifetime');
    oneLine(r.stderr);
  });

  it('start as an unprivileged user (setpriv --reuid=65534) prints one clear line and exits 1', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'start', '--config', file('good2.yaml', GOOD)], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/^vpcgw: start must run as root/);
    expect(r.stdout).toBe('');
  });
});
