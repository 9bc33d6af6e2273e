import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { captureLogger, silentLogger } from '../../../src/common/log.js';
import type { GatewayConfig } from '../../../src/gateway/config/types.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { controlCall } from '../../../src/gateway/control.js';
import { Gateway, type TunnelContext } from '../../../src/gateway/daemon.js';
import { FakePlatform, RecordingController } from './daemon-fakes.js';
import type { GatewayStatus } from '../../../src/gateway/status.js';
import { createRootLogger, resolveLogLevel } from '../../../src/gateway/log.js';

const dirs: string[] = [];
const gateways: Gateway[] = [];
afterEach(async () => {
  for (const g of gateways.splice(0)) await g.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function config(extra = ''): GatewayConfig {
  const dir = mkdtempSync(join(tmpdir(), 'vpcgw-daemon-'));
  dirs.push(dir);
  const text = `
gateway:
  name: gw1
  dataDir: ./var
  publicAddresses: [192.0.2.2, 198.51.100.2]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: vpcgwt0, mtu: 1380, address: 169.254.0.1/32 }
customerGateways:
  - { name: dc1, address: 192.0.2.1 }
  - { name: road, address: "%any", id: fqdn:road.example }
vpnConnections:
  - { name: dc1-main, customerGateway: dc1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.1.0.0/16, 10.11.0.0/16], auth: { psk: topsecret-psk } }
  - { name: road-1, customerGateway: road, localSubnets: [10.2.0.0/24], remoteSubnets: [10.5.0.0/24], auth: { psk: topsecret-psk } }
${extra}`;
  return parseConfig(text, join(dir, 'vpcgw.yaml'));
}


async function started(cfg: GatewayConfig, platform: FakePlatform, extra: Partial<ConstructorParameters<typeof Gateway>[0]> = {}): Promise<Gateway> {
  const gw = new Gateway({ config: cfg, log: silentLogger, platform, dataPlane: null, ...extra });
  gateways.push(gw);
  await gw.start();
  return gw;
}

describe('Gateway lifecycle (fake platform)', () => {
  it('refuses to start when not root, with one clear message, and opens nothing', async () => {
    const p = new FakePlatform();
    p.root = false;
    const gw = new Gateway({ config: config(), log: silentLogger, platform: p, dataPlane: null });
    await expect(gw.start()).rejects.toMatchObject({ code: 'ERR_NOT_ROOT', message: expect.stringMatching(/must run as root/) });
    expect(p.tun).toBeNull();
    expect(gw.state).toBe('stopped');
  });

  it('sets up TUN, forwarding, UDP 500/4500 per public address, routes and the control socket; stop undoes it', async () => {
    const cfg = config();
    const p = new FakePlatform();
    const gw = await started(cfg, p);
    expect(gw.state).toBe('running');
    expect(p.tun).toMatchObject({ name: 'vpcgwt0', mtu: 1380 });
    expect(p.addresses).toEqual(['169.254.0.1/32 dev vpcgwt0']);
    expect(p.forwarding).toBe(true);
    expect(p.udp.map((u) => `${u.address}:${u.port}`)).toEqual(['192.0.2.2:500', '192.0.2.2:4500', '198.51.100.2:500', '198.51.100.2:4500']);
    expect([...p.routes].sort()).toEqual(['10.1.0.0/16 dev vpcgwt0', '10.11.0.0/16 dev vpcgwt0', '10.5.0.0/24 dev vpcgwt0']);
    expect(existsSync(join(cfg.gateway.dataDir, 'vpcgw.sock'))).toBe(true);

    await gw.stop();
    expect(gw.state).toBe('stopped');
    expect(p.routes.size).toBe(0);
    expect(p.udp.every((u) => u.closed)).toBe(true);
    expect(p.tun!.closed).toBe(true);
    expect(existsSync(join(cfg.gateway.dataDir, 'vpcgw.sock'))).toBe(false);
  });

  it('without IKE, status over the control socket lists connections as CONNECTING/DOWN; initiate and terminate work by name', async () => {
    const cfg = config();
    const gw = await started(cfg, new FakePlatform());
    const st = (await controlCall(gw.controlPath, 'status')) as GatewayStatus;
    expect(st.gateway).toMatchObject({ name: 'gw1', ike: 'not available', publicAddresses: ['192.0.2.2', '198.51.100.2'] });
    expect(st.gateway.tun).toMatchObject({ name: 'vpcgwt0', mtu: 1380, rxPackets: 3 });
    expect(st.connections).toEqual([
      { name: 'dc1-main', state: 'CONNECTING', reason: 'IKE not available', children: [] },
      { name: 'road-1', state: 'DOWN', reason: 'IKE not available', children: [] },
    ]);
    expect(await controlCall(gw.controlPath, 'terminate', { name: 'dc1-main' })).toEqual({ name: 'dc1-main', state: 'DOWN' });
    expect(await controlCall(gw.controlPath, 'initiate', { name: 'road-1' })).toEqual({ name: 'road-1', state: 'CONNECTING' });
    await expect(controlCall(gw.controlPath, 'initiate', { name: 'dc9' })).rejects.toMatchObject({
      code: 'ERR_UNKNOWN_CONNECTION',
      message: expect.stringContaining('dc1-main, road-1'),
    });
    await expect(controlCall(gw.controlPath, 'initiate', {})).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
  });

  it('lists configured VPN servers as DOWN until an SSL server reports', async () => {
    const extra = `vpnServers:
  - { name: p2c, protocols: [tcp], port: 1194, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], auth: { type: cert }, serverCert: { cert: a, key: b }, clientCa: c }`;
    const gw = await started(config(extra), new FakePlatform());
    expect(gw.status().vpnServers).toEqual([
      { name: 'p2c', state: 'DOWN', protocols: ['tcp'], port: 1194, clients: 0, reason: 'SSL VPN server not available' },
    ]);
  });

  it('binds no UDP 500/4500 when no IPsec connection is configured, says so once, and still runs (TS data plane too)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-daemon-'));
    dirs.push(dir);
    const text = `
gateway:
  name: gw1
  dataDir: ./var
  publicAddresses: [0.0.0.0]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: vpcgwt0, mtu: 1380 }
customerGateways: []
vpnConnections: []
`;
    for (const dataPlane of [null, undefined]) {
      const p = new FakePlatform();
      const log = captureLogger();
      const gw = await started(parseConfig(text, join(dir, 'vpcgw.yaml')), p, { log, dataPlane });
      expect(gw.state).toBe('running');
      expect(p.udp).toEqual([]);
      expect(gw.status().gateway.udp).toEqual([]);
      expect(gw.status().gateway.dataPlane).toBe(dataPlane === null ? 'not available' : 'typescript');
      expect(log.lines.filter((l) => l.level === 'info' && /UDP 500\/4500 not bound/.test(l.msg ?? ''))).toHaveLength(1);
      await gw.stop();
      expect(p.tun!.closed).toBe(true);
    }
  });

  it('undoes a half-done start when a bind fails, and says which', async () => {
    const p = new FakePlatform();
    p.failBind = '198.51.100.2:500';
    const gw = new Gateway({ config: config(), log: silentLogger, platform: p, dataPlane: null });
    await expect(gw.start()).rejects.toThrow(/198\.51\.100\.2:500: EADDRINUSE/);
    expect(p.tun!.closed).toBe(true);
    expect(p.udp.length).toBe(2);
    expect(p.udp.every((u) => u.closed)).toBe(true);
    expect(p.routes.size).toBe(0);
    expect(gw.state).toBe('stopped');
  });
});

describe('Gateway packet demux and IKE plumbing', () => {
  it('without a data plane: IKE to the controller (marker stripped on 4500, copies), keepalives and ESP dropped', async () => {
    const p = new FakePlatform();
    let ctl: RecordingController | null = null;
    const gw = await started(config(), p, { tunnels: (ctx) => (ctl = new RecordingController(ctx)) });
    const ike = Buffer.from('0102030405060708', 'hex');
    p.bind('192.0.2.2', 4500).deliver([
      Buffer.concat([Buffer.alloc(4), ike]), // IKE behind the non-ESP marker
      Buffer.from([0xff]), // NAT keepalive
      Buffer.from('00001001000000010000', 'hex'), // ESP: SPI 0x1001
    ]);
    p.bind('198.51.100.2', 500).deliver([ike], '203.0.113.9', 500);
    expect(ctl!.started).toBe(true);
    expect(ctl!.received.map((r) => r.msg.toString('hex'))).toEqual([ike.toString('hex'), ike.toString('hex')]);
    expect(ctl!.received[0]!.from).toEqual({ family: 4, address: '192.0.2.1', port: 4500 });
    expect(ctl!.received[0]!.local).toEqual({ family: 4, address: '192.0.2.2', port: 4500 });
    expect(ctl!.received[1]!.from).toEqual({ family: 4, address: '203.0.113.9', port: 500 });
    expect(ctl!.received[1]!.local.port).toBe(500);
    expect(gw.status().gateway.dataPlane).toBe('not available');
  });

  it('with the TsDataPlane: it owns TUN and 4500, IKE on 4500 reaches the controller through it, replies go back through it', async () => {
    const p = new FakePlatform();
    let ctl: RecordingController | null = null;
    const gw = await started(config(), p, { tunnels: (ctx) => (ctl = new RecordingController(ctx)), dataPlane: undefined });
    expect(gw.status().gateway.dataPlane).toBe('typescript') // the fake platform has no offload TUN;
    expect(p.tun!.onBatch).not.toBeNull(); // the data plane reads the TUN
    const ike = Buffer.from('1112131415161718', 'hex');
    p.bind('192.0.2.2', 4500).deliver([Buffer.concat([Buffer.alloc(4), ike])]);
    for (let i = 0; i < 50 && ctl!.received.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(ctl!.received.map((r) => r.msg.toString('hex'))).toEqual([ike.toString('hex')]);
    expect(ctl!.received[0]!.local).toMatchObject({ address: '192.0.2.2', port: 4500 });
    const ok = ctl!.ctx.sendIke(Buffer.from('aabb', 'hex'), { family: 4, address: '192.0.2.1', port: 4500 }, { family: 4, address: '192.0.2.2', port: 4500 });
    expect(ok).toBe(true);
    const sent = p.bind('192.0.2.2', 4500).sent;
    expect(sent.map((x) => x.data.toString('hex'))).toEqual(['00000000aabb']);
    await gw.stop();
    expect(p.tun!.closed).toBe(true);
  });

  it('sendIke adds the non-ESP marker on 4500 only and picks the socket by local endpoint', async () => {
    const p = new FakePlatform();
    let ctx: TunnelContext | null = null;
    await started(config(), p, { tunnels: (c) => new RecordingController((ctx = c)) });
    const msg = Buffer.from('aabbccdd', 'hex');
    expect(ctx!.sendIke(msg, { family: 4, address: '192.0.2.1', port: 500 }, { family: 4, address: '198.51.100.2', port: 500 })).toBe(true);
    expect(ctx!.sendIke(msg, { family: 4, address: '192.0.2.1', port: 4500 }, { family: 4, address: '192.0.2.2', port: 4500 })).toBe(true);
    expect(p.bind('198.51.100.2', 500).sent).toEqual([{ data: msg, addr: '192.0.2.1', port: 500 }]);
    expect(p.bind('192.0.2.2', 4500).sent[0]!.data.toString('hex')).toBe('00000000aabbccdd');
    expect(ctx!.sendIke(msg, { family: 4, address: '192.0.2.1', port: 500 }, { family: 4, address: '192.0.2.2', port: 9999 })).toBe(false);
  });

  it('ticks the controller when its deadline passes, and survives a controller that throws', async () => {
    const p = new FakePlatform();
    let ctl: RecordingController | null = null;
    let now = 1_000_000;
    const lines = captureLogger();
    const gw = new Gateway({ config: config(), log: lines, platform: p, dataPlane: null, tickMs: 10, nowMs: () => now, tunnels: (c) => (ctl = new RecordingController(c)) });
    gateways.push(gw);
    await gw.start();
    ctl!.deadline = now + 5_000;
    p.bind('192.0.2.2', 500).deliver([Buffer.from('00', 'hex')]); // makes the daemon re-read nextDeadline
    await new Promise((r) => setTimeout(r, 60));
    expect(ctl!.ticks).toEqual([]);
    now += 5_000;
    for (let i = 0; i < 100 && ctl!.ticks.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(ctl!.ticks).toEqual([now]);

    ctl!.throwOnReceive = true;
    p.bind('192.0.2.2', 500).deliver([Buffer.from('00', 'hex')]);
    expect(gw.state).toBe('running');
    // the Error object is logged as `err` (pino's err serializer prints its message and stack)
    expect(lines.lines.some((l) => l.level === 'error' && (l.obj as { err?: Error }).err?.message.includes('controller bug'))).toBe(true);
    await gw.stop();
    expect(ctl!.stopped).toBe(true);
  });
});

describe('root logger', () => {
  it('redacts psk, key and password fields as a safety net', () => {
    const out: string[] = [];
    const dest = new Writable({
      write(chunk, _enc, cb) {
        out.push(String(chunk));
        cb();
      },
    });
    const log = createRootLogger({ level: 'info', destination: dest });
    log.info({ conn: 'dc1', auth: { psk: 'topsecret-psk' }, cert: { key: 'PRIVATE' }, password: 'hunter22' }, 'loaded');
    log.child({ ike: 'abc' }).info({ cfg: { auth: { psk: 'topsecret-psk' } } }, 'nested');
    const text = out.join('');
    expect(text).toContain('"conn":"dc1"');
    expect(text).toContain('(hidden)');
    expect(text).not.toMatch(/topsecret-psk|PRIVATE|hunter22/);
  });

  it('VPCGW_LOG_LEVEL overrides the config level when valid, and the level filters lines', () => {
    expect(resolveLogLevel('info', { VPCGW_LOG_LEVEL: 'DEBUG' })).toBe('debug');
    expect(resolveLogLevel('warn', { VPCGW_LOG_LEVEL: 'loud' })).toBe('warn');
    expect(resolveLogLevel(undefined, {})).toBe('info');
    const out: string[] = [];
    const dest = new Writable({
      write(chunk, _enc, cb) {
        out.push(String(chunk));
        cb();
      },
    });
    const log = createRootLogger({ level: resolveLogLevel('info', { VPCGW_LOG_LEVEL: 'warn' }), destination: dest });
    log.info({}, 'quiet');
    log.warn({}, 'loud');
    expect(out.join('')).not.toContain('quiet');
    expect(out.join('')).toContain('loud');
  });
});

// ---------------------------------------------------------------------------------------------
// The real thing: `vpcgw start` (built dist/cli.js) in a network namespace we create and delete.


const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(REPO, 'dist', 'cli.js');

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

function ipIn(ns: string, ...args: string[]): string {
  const r = spawnSync('ip', ['-n', ns, ...args], { encoding: 'utf8', timeout: 5_000 });
  return r.stdout;
}

describe('vpcgw start/stop in a network namespace (real TUN, UDP, routes)', () => {
  const ns = `vpcgwd-${process.pid}`;
  let dir = '';

  beforeAll(() => {
    ensureBuilt();
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    const r = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip netns add: ${r.stderr}`);
    spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    dir = mkdtempSync(join(tmpdir(), 'vpcgw-ns-'));
  }, 150_000);

  afterAll(() => {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('comes up (TUN with MTU and address, UDP 500/4500, routes, 0600 socket), answers status, and SIGTERM undoes it with exit 0', async () => {
    const cfgPath = join(dir, 'vpcgw.yaml');
    mkdirSync(join(dir, 'var'));
    writeFileSync(
      cfgPath,
      `gateway:
  name: nsgw
  dataDir: ./var
  publicAddresses: [127.0.0.1]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: vpcgwns0, mtu: 1380, address: 169.254.7.1/32 }
customerGateways:
  - { name: dc1, address: 127.0.0.2 }
vpnConnections:
  - { name: dc1-main, customerGateway: dc1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.1.0.0/16, 10.11.0.0/24], auth: { psk: ns-test-psk-123 } }
`,
      { mode: 0o600 },
    );
    const sock = join(dir, 'var', 'vpcgw.sock');
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, 'start', '--config', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(sock), output).toBe(true);
      expect(statSync(sock).mode & 0o777).toBe(0o600);

      const st = (await controlCall(sock, 'status')) as GatewayStatus;
      expect(st.gateway).toMatchObject({ name: 'nsgw', tun: { name: 'vpcgwns0', mtu: 1380 }, routes: ['10.1.0.0/16', '10.11.0.0/24'] });
      expect(st.gateway.udp.map((u) => `${u.address}:${u.port}`)).toEqual(['127.0.0.1:500', '127.0.0.1:4500']);
      expect(st.connections.map((c) => c.name)).toEqual(['dc1-main']);

      expect(ipIn(ns, 'link', 'show', 'vpcgwns0')).toMatch(/mtu 1380.*UP|UP.*mtu 1380/);
      expect(ipIn(ns, 'addr', 'show', 'vpcgwns0')).toContain('169.254.7.1/32');
      const routes = ipIn(ns, 'route');
      expect(routes).toContain('10.1.0.0/16 dev vpcgwns0');
      expect(routes).toContain('10.11.0.0/24 dev vpcgwns0');
      const udp = spawnSync('ip', ['netns', 'exec', ns, 'ss', '-uanH'], { encoding: 'utf8' }).stdout;
      expect(udp).toContain('127.0.0.1:500');
      expect(udp).toContain('127.0.0.1:4500');
      expect(output).not.toContain('ns-test-psk-123');

      // `ip netns exec` runs the daemon as its own child process with the same pid: signal it
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 10_000))]);
      expect(code, output).toBe(0);
      expect(ipIn(ns, 'route')).not.toContain('vpcgwns0');
      expect(ipIn(ns, 'link')).not.toContain('vpcgwns0');
      expect(existsSync(sock)).toBe(false);
      expect(output).toContain('gateway stopped');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});
