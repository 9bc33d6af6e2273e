import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { captureLogger, silentLogger } from '../../../src/common/log.js';
import { controlCall } from '../../../src/gateway/control.js';
import type { GatewayConfig, VpnServerConfig } from '../../../src/gateway/config/types.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { Gateway, type GatewayOptions } from '../../../src/gateway/daemon.js';
import { canonical, connectionFingerprint, diffConfigs, vpnServerFingerprint } from '../../../src/gateway/live-change.js';
import type { VpnServers, VpnServersFactory } from '../../../src/gateway/vpn-servers.js';
import type { VpnServerStatus, GatewayStatus } from '../../../src/gateway/status.js';
import { FakePlatform } from './daemon-fakes.js';
import { IpsecController } from '../../../src/gateway/ipsec.js';
import { createCertificate, createCrl, crlToPem, keyToPem } from '../../../src/gateway/pki-ike.js';
import { SslServer, type SslServerConfig } from '../../../src/gateway/ssl-server.js';
import { peerConfigFrom } from '../../../src/gateway/peer-configs.js';
import { IkeManager } from '../../../src/ike/ike-manager.js';
import type { PeerConfig } from '../../../src/ike/config/peer-config.js';
import type { IkeAction } from '../../../src/ike/sa/types.js';
import { A_ADDR, B_ADDR, TwoPeers, peerConfig as exPeerConfig } from '../../exchange/helpers.js';

const dirs: string[] = [];
const gateways: Gateway[] = [];
afterEach(async () => {
  for (const g of gateways.splice(0)) await g.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const DC1 = '{ name: dc1-main, customerGateway: dc1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.1.0.0/16, 10.11.0.0/16], auth: { psk: topsecret-psk } }';
const ROAD = '{ name: road-1, customerGateway: road, localSubnets: [10.2.0.0/24], remoteSubnets: [10.5.0.0/24], auth: { psk: topsecret-psk } }';
const DC2 = '{ name: dc2-main, customerGateway: dc2, localSubnets: [10.2.0.0/16], remoteSubnets: [10.3.0.0/16], auth: { psk: other-secret-psk } }';
const P2C = '{ name: p2c, protocols: [tcp], port: 1194, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], auth: { type: cert }, serverCert: { cert: a, key: b }, clientCa: c }';
const P2C2 = '{ name: p2c-2, protocols: [udp], port: 1195, clientCidr: 10.9.0.0/24, localSubnets: [10.2.0.0/16], auth: { type: cert }, serverCert: { cert: a, key: b }, clientCa: c }';

/** `entry` (a one-line YAML mapping) with more fields */
function plus(entry: string, fields: string): string {
  return `${entry.slice(0, -2)}, ${fields} }`;
}

let dir = '';
/** One folder per test (the data dir, so the control socket path is the same across configs). */
function folder(): string {
  if (!dir || !existsSync(dir)) {
    dir = mkdtempSync(join(tmpdir(), 'vpcgw-live-'));
    dirs.push(dir);
  }
  return dir;
}
afterEach(() => {
  dir = '';
});

function config(o: { conns?: string[]; servers?: string[]; gateway?: string; cgws?: string[] } = {}): GatewayConfig {
  const conns = o.conns ?? [DC1, ROAD];
  const cgws = o.cgws ?? [
    '{ name: dc1, address: 192.0.2.1 }',
    '{ name: road, address: "%any", id: fqdn:road.example }',
    '{ name: dc2, address: 192.0.2.3 }',
  ];
  const text = `
gateway:
  name: gw1
  dataDir: ./var
  publicAddresses: [192.0.2.2, 198.51.100.2]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: vpcgwt0, mtu: 1380, address: 169.254.0.1/32 }
${o.gateway ?? ''}
customerGateways:
${cgws.map((c) => `  - ${c}`).join('\n')}
vpnConnections:${conns.length ? '\n' + conns.map((c) => `  - ${c}`).join('\n') : ' []'}
vpnServers:${o.servers?.length ? '\n' + o.servers.map((c) => `  - ${c}`).join('\n') : ' []'}
`;
  return parseConfig(text, join(folder(), 'vpcgw.yaml'));
}

function routes(p: FakePlatform): string[] {
  return [...p.routes].map((r) => r.replace(' dev vpcgwt0', '')).sort();
}

async function started(cfg: GatewayConfig, p: FakePlatform, extra: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = new Gateway({ config: cfg, log: silentLogger, platform: p, dataPlane: null, ...extra });
  gateways.push(gw);
  await gw.start();
  return gw;
}

// ---------------------------------------------------------------------------------------------

describe('fingerprints and the diff', () => {
  let base: GatewayConfig;
  beforeEach(() => {
    base = config();
  });

  it('a re-parsed identical config (new objects) changes nothing and needs no restart', () => {
    const d = diffConfigs(base, config());
    expect(d).toEqual({
      connections: { added: [], removed: [], changed: [], unchanged: ['dc1-main', 'road-1'] },
      vpnServers: { added: [], removed: [], changed: [], unchanged: [] },
      restartReason: null,
    });
  });

  // every field that reaches a connection's PeerConfig, its own and its customer gateway's
  const variants: [string, { conns?: string[]; cgws?: string[] }][] = [
    ['psk', { conns: [DC1.replace('topsecret-psk', 'topsecret-psk2')] }],
    ['psk form (0x hex of other bytes)', { conns: [DC1.replace('topsecret-psk', '"0x746f70736563726574"')] }],
    ['localSubnets', { conns: [DC1.replace('localSubnets: [10.2.0.0/16]', 'localSubnets: [10.2.1.0/24]')] }],
    ['remoteSubnets', { conns: [DC1.replace('10.11.0.0/16', '10.12.0.0/16')] }],
    ['remoteSubnets order', { conns: [DC1.replace('[10.1.0.0/16, 10.11.0.0/16]', '[10.11.0.0/16, 10.1.0.0/16]')] }],
    ['ike proposals', { conns: [plus(DC1, 'ike: { proposals: aes256gcm16-prfsha384-ecp384 }')] }],
    ['ike lifetime', { conns: [plus(DC1, 'ike: { lifetime: 2h }')] }],
    ['ike localId', { conns: [plus(DC1, 'ike: { localId: "fqdn:gw.example" }')] }],
    ['esp proposals', { conns: [plus(DC1, 'esp: { proposals: aes256gcm16 }')] }],
    ['esp lifetime', { conns: [plus(DC1, 'esp: { lifetime: 30m }')] }],
    ['esp replayWindow', { conns: [plus(DC1, 'esp: { replayWindow: 64 }')] }],
    ['startAction', { conns: [plus(DC1, 'startAction: none')] }],
    ['dpd', { conns: [plus(DC1, 'dpd: { interval: 30s }')] }],
    ['customer gateway address', { cgws: ['{ name: dc1, address: 192.0.2.9, id: 192.0.2.1 }', '{ name: road, address: "%any", id: fqdn:road.example }'] }],
    ['customer gateway id', { cgws: ['{ name: dc1, address: 192.0.2.1, id: fqdn:dc1.example }', '{ name: road, address: "%any", id: fqdn:road.example }'] }],
    ['customer gateway of the connection', {
      conns: [DC1.replace('customerGateway: dc1', 'customerGateway: dc1b')],
      cgws: ['{ name: dc1, address: 192.0.2.1 }', '{ name: dc1b, address: 192.0.2.7 }', '{ name: road, address: "%any", id: fqdn:road.example }'],
    }],
  ];
  for (const [what, o] of variants) {
    it(`sees a change of ${what}`, () => {
      const before = config({ conns: [DC1], cgws: o.cgws ? undefined : ['{ name: dc1, address: 192.0.2.1 }'] });
      const after = config({ conns: o.conns ?? [DC1], cgws: o.cgws ?? ['{ name: dc1, address: 192.0.2.1 }'] });
      expect(connectionFingerprint(after, 'dc1-main')).not.toBe(connectionFingerprint(before, 'dc1-main'));
      expect(diffConfigs(before, after).connections.changed).toEqual(['dc1-main']);
    });
  }

  it('a customer gateway change reaches only the connections that use it', () => {
    const after = config({ cgws: ['{ name: dc1, address: 192.0.2.1 }', '{ name: road, address: "%any", id: fqdn:road2.example }', '{ name: dc2, address: 192.0.2.3 }'] });
    expect(diffConfigs(base, after).connections).toMatchObject({ changed: ['road-1'], unchanged: ['dc1-main'] });
  });

  it('adds and removes by name; the order of entries does not matter', () => {
    const d = diffConfigs(base, config({ conns: [DC2, DC1] }));
    expect(d.connections).toEqual({ added: ['dc2-main'], removed: ['road-1'], changed: [], unchanged: ['dc1-main'] });
    expect(d.restartReason).toBeNull();
  });

  it('the rendering holds no secret: PSKs enter as hashes', () => {
    const text = canonical(base);
    expect(text).not.toContain('topsecret-psk');
    expect(text).not.toContain(Buffer.from('topsecret-psk').toString('hex'));
    expect(text).toMatch(/secret:[0-9a-f]{64}/);
  });

  it('the gateway section, and binding or unbinding UDP 500/4500, need a restart', () => {
    const mtu = config({ gateway: '' }).gateway;
    expect(mtu.tun.mtu).toBe(1380);
    const changed = config({ gateway: '  logLevel: debug' });
    expect(diffConfigs(base, changed).restartReason).toMatch(/gateway section/);
    expect(diffConfigs(config({ conns: [] }), base).restartReason).toMatch(/first IPsec connection/);
    expect(diffConfigs(base, config({ conns: [] })).restartReason).toMatch(/no IPsec connection is left/);
    expect(diffConfigs(base, config({ conns: [DC1] })).restartReason).toBeNull();
  });

  it('a VPN server changes with its entry and with the contents of the files it names', () => {
    const a = config({ servers: [P2C] });
    const v = a.vpnServers[0]!;
    const files = new Map<string, Buffer>([['a', Buffer.from('cert1')], ['b', Buffer.from('key1')], ['c', Buffer.from('ca1')]]);
    const read = (f: string) => files.get(basename(f)) ?? null; // paths resolve against the config's folder
    const fp = vpnServerFingerprint(v, read);
    expect(vpnServerFingerprint(config({ servers: [P2C] }).vpnServers[0]!, read)).toBe(fp);
    expect(vpnServerFingerprint(config({ servers: [P2C.replace('1194', '1196')] }).vpnServers[0]!, read)).not.toBe(fp);
    files.set('b', Buffer.from('key2'));
    expect(vpnServerFingerprint(v, read)).not.toBe(fp);
    const d = diffConfigs(a, config({ servers: [P2C2] }), { read });
    expect(d.vpnServers).toEqual({ added: ['p2c-2'], removed: ['p2c'], changed: [], unchanged: [] });
  });
});

// ---------------------------------------------------------------------------------------------

describe('Gateway.applyConfig: connections (no IKE: the stand-in controller)', () => {
  it('a no-op apply touches nothing', async () => {
    const p = new FakePlatform();
    const gw = await started(config(), p);
    const udp = [...p.udp];
    const tun = p.tun;
    const r = await gw.applyConfig(config());
    expect(r).toEqual({
      connections: { added: [], removed: [], restarted: [], unchanged: ['dc1-main', 'road-1'] },
      vpnServers: { added: [], removed: [], restarted: [], unchanged: [] },
      restarted: false,
      failed: [],
    });
    expect(p.udp).toEqual(udp);
    expect(p.udp.every((u) => !u.closed)).toBe(true);
    expect(p.tun).toBe(tun);
    expect(routes(p)).toEqual(['10.1.0.0/16', '10.11.0.0/16', '10.5.0.0/24']);
  });

  it('adds, removes and changes connections: routes follow, status shows the new set at once, config is the new one', async () => {
    const p = new FakePlatform();
    const gw = await started(config(), p);
    expect(gw.status().connections.map((c) => [c.name, c.state])).toEqual([['dc1-main', 'CONNECTING'], ['road-1', 'DOWN']]);
    const next = config({ conns: [DC1.replace('10.11.0.0/16', '10.12.0.0/16'), DC2] });
    const r = await gw.applyConfig(next);
    expect(r.connections).toEqual({ added: ['dc2-main'], removed: ['road-1'], restarted: ['dc1-main'], unchanged: [] });
    expect(r.restarted).toBe(false);
    expect(gw.config).toBe(next);
    expect(routes(p)).toEqual(['10.1.0.0/16', '10.12.0.0/16', '10.3.0.0/16']);
    expect(gw.status().gateway.routes.sort()).toEqual(['10.1.0.0/16', '10.12.0.0/16', '10.3.0.0/16']);
    expect(gw.status().connections.map((c) => [c.name, c.state])).toEqual([['dc1-main', 'CONNECTING'], ['dc2-main', 'CONNECTING']]);
    const st = (await controlCall(gw.controlPath, 'status')) as GatewayStatus;
    expect(st.connections.map((c) => c.name)).toEqual(['dc1-main', 'dc2-main']);
    await expect(controlCall(gw.controlPath, 'initiate', { name: 'road-1' })).rejects.toMatchObject({ code: 'ERR_UNKNOWN_CONNECTION' });
    expect(await controlCall(gw.controlPath, 'terminate', { name: 'dc2-main' })).toEqual({ name: 'dc2-main', state: 'DOWN' });
  });

  it('the first connection binds UDP 500/4500 (restart), the last one removed unbinds them; the control socket stays', async () => {
    const p = new FakePlatform();
    const log = captureLogger();
    const gw = await started(config({ conns: [] }), p, { log });
    expect(p.udp).toEqual([]);
    const r1 = await gw.applyConfig(config({ conns: [DC1] }));
    expect(r1).toMatchObject({ restarted: true, reason: expect.stringMatching(/UDP 500\/4500 bound/), connections: { added: ['dc1-main'] }, failed: [] });
    expect(gw.state).toBe('running');
    expect(p.udp.filter((u) => !u.closed).map((u) => `${u.address}:${u.port}`)).toEqual(['192.0.2.2:500', '192.0.2.2:4500', '198.51.100.2:500', '198.51.100.2:4500']);
    expect(routes(p)).toEqual(['10.1.0.0/16', '10.11.0.0/16']);
    expect(existsSync(gw.controlPath)).toBe(true);
    expect(((await controlCall(gw.controlPath, 'status')) as GatewayStatus).connections.map((c) => c.name)).toEqual(['dc1-main']);

    const r2 = await gw.applyConfig(config({ conns: [] }));
    expect(r2).toMatchObject({ restarted: true, reason: expect.stringMatching(/unbound/), connections: { removed: ['dc1-main'] } });
    expect(p.udp.every((u) => u.closed)).toBe(true);
    expect(gw.status().gateway.udp).toEqual([]);
    expect(routes(p)).toEqual([]);
    expect(existsSync(gw.controlPath)).toBe(true);
    const warns = log.lines.filter((l) => l.level === 'warn' && /restarting the gateway/.test(l.msg ?? ''));
    expect(warns.map((l) => (l.obj as { reason: string }).reason)).toEqual([r1.reason, r2.reason]);
  });

  it('a gateway section change restarts everything in the process with the new config', async () => {
    const p = new FakePlatform();
    const log = captureLogger();
    const gw = await started(config(), p, { log });
    const oldTun = p.tun!;
    const oldUdp = [...p.udp];
    const next = config({ gateway: '  logLevel: debug' });
    const r = await gw.applyConfig(next);
    expect(r).toMatchObject({
      restarted: true,
      reason: 'the gateway section changed',
      connections: { added: [], removed: [], restarted: ['dc1-main', 'road-1'], unchanged: [] },
      failed: [],
    });
    expect(oldTun.closed).toBe(true);
    expect(p.tun).not.toBe(oldTun);
    expect(oldUdp.every((u) => u.closed)).toBe(true);
    expect(p.udp.filter((u) => !u.closed)).toHaveLength(4);
    expect(gw.config).toBe(next);
    expect(gw.status().gateway.routes.sort()).toEqual(['10.1.0.0/16', '10.11.0.0/16', '10.5.0.0/24']);
    expect(log.lines.filter((l) => l.level === 'warn' && /restart/.test(l.msg ?? ''))).toHaveLength(1);
    expect((await controlCall(gw.controlPath, 'status')) as GatewayStatus).toMatchObject({ gateway: { name: 'gw1' } });
  });

  it('a restart whose start fails goes back to the previous config and keeps running', async () => {
    const p = new FakePlatform();
    const gw = await started(config(), p);
    const next = config({ gateway: '  logLevel: debug' });
    const prev = gw.config;
    const bind = p.bindUdp.bind(p);
    let calls = 0;
    p.bindUdp = (a, port) => {
      if (++calls === 1) throw new Error(`bind ${a}:${port}: EADDRINUSE`); // the restart with `next`
      return bind(a, port);
    };
    const r = await gw.applyConfig(next);
    expect(r).toMatchObject({ restarted: true, rolledBack: true, failed: [{ resource: 'gateway', step: 'start', message: expect.stringMatching(/EADDRINUSE/) }] });
    expect(gw.state).toBe('running');
    expect(gw.config).toBe(prev);
    expect(p.udp.filter((u) => !u.closed)).toHaveLength(4);
    expect(existsSync(gw.controlPath)).toBe(true);
  });

  it('a failed route add is reported; the other resources change, the daemon runs, and the same apply retries it', async () => {
    const p = new FakePlatform();
    const log = captureLogger();
    const gw = await started(config(), p, { log });
    const add = p.addRoute.bind(p);
    p.addRoute = (prefix, dev) => {
      if (prefix === '10.3.0.0/16') throw new Error('RTNETLINK answers: File exists');
      add(prefix, dev);
    };
    const next = config({ conns: [DC1, DC2, ROAD.replace('10.5.0.0/24', '10.6.0.0/24')] });
    const r = await gw.applyConfig(next);
    expect(r.failed).toEqual([{ resource: 'route:10.3.0.0/16', step: 'add route (connection:dc2-main)', message: 'RTNETLINK answers: File exists' }]);
    expect(r.connections).toEqual({ added: ['dc2-main'], removed: [], restarted: ['road-1'], unchanged: ['dc1-main'] });
    expect(gw.state).toBe('running');
    expect(gw.config).toBe(next);
    expect(routes(p)).toEqual(['10.1.0.0/16', '10.11.0.0/16', '10.6.0.0/24']);
    expect(gw.status().connections.map((c) => c.name)).toEqual(['dc1-main', 'dc2-main', 'road-1']);
    const warn = log.lines.find((l) => l.level === 'warn' && /a step failed/.test(l.msg ?? ''));
    expect((warn!.obj as { err: Error }).err.message).toMatch(/File exists/);

    p.addRoute = add;
    const again = await gw.applyConfig(config({ conns: [DC1, DC2, ROAD.replace('10.5.0.0/24', '10.6.0.0/24')] }));
    expect(again.failed).toEqual([]);
    expect(routes(p)).toEqual(['10.1.0.0/16', '10.11.0.0/16', '10.3.0.0/16', '10.6.0.0/24']);
  });

  it('calls are serialized in call order; a stopped gateway just takes the config', async () => {
    const p = new FakePlatform();
    const gw = await started(config(), p);
    const a = config({ conns: [DC1] });
    const b = config({ conns: [DC1, DC2] });
    const [ra, rb] = await Promise.all([gw.applyConfig(a), gw.applyConfig(b)]);
    expect(ra.connections).toMatchObject({ removed: ['road-1'], unchanged: ['dc1-main'] });
    expect(rb.connections).toMatchObject({ added: ['dc2-main'], removed: [], unchanged: ['dc1-main'] });
    expect(gw.config).toBe(b);
    await gw.stop();
    const r = await gw.applyConfig(config());
    expect(r.reason).toMatch(/not running/);
    expect(gw.config.vpnConnections.map((c) => c.name)).toEqual(['dc1-main', 'road-1']);
    await gw.start();
    expect(routes(p)).toEqual(['10.1.0.0/16', '10.11.0.0/16', '10.5.0.0/24']);
  });

  it('stop waits for an apply in progress; an apply while stopping fails with ERR_STATE', async () => {
    const p = new FakePlatform();
    const gw = await started(config(), p);
    const applying = gw.applyConfig(config({ gateway: '  logLevel: debug' }));
    const stopping = gw.stop();
    await expect(applying).resolves.toMatchObject({ restarted: true });
    const late = gw.applyConfig(config());
    await stopping;
    await expect(late).rejects.toMatchObject({ code: 'ERR_STATE' });
    expect(gw.state).toBe('stopped');
    expect(p.tun!.closed).toBe(true);
    expect(p.udp.every((u) => u.closed)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------

/** VPN servers that record what happened to each (by instance), in the shape of sslVpnServers. */
class FakeServers implements VpnServers {
  static events: string[] = [];
  readonly running = new Map<string, { v: VpnServerConfig; id: number; clients: number }>();
  static nextId = 1;
  failStart: string | null = null;
  constructor(private readonly initial: readonly VpnServerConfig[]) {}
  async start(): Promise<void> {
    for (const v of this.initial) await this.addServer(v);
  }
  async stop(): Promise<void> {
    for (const n of [...this.running.keys()]) await this.removeServer(n);
  }
  status(): VpnServerStatus[] {
    return [...this.running.values()].map(({ v, id, clients }) => ({
      name: v.name, state: 'LISTENING' as const, protocols: [...v.protocols], port: v.port, clients, reason: `instance ${id}`,
    }));
  }
  async addServer(v: VpnServerConfig): Promise<void> {
    if (this.failStart === v.name) throw new Error(`listen ${v.port}: EADDRINUSE`);
    const id = FakeServers.nextId++;
    this.running.set(v.name, { v, id, clients: 2 });
    FakeServers.events.push(`start ${v.name} #${id}`);
  }
  async removeServer(name: string): Promise<void> {
    const s = this.running.get(name);
    if (!s) return;
    this.running.delete(name);
    FakeServers.events.push(`stop ${name} #${s.id}`);
  }
}

describe('Gateway.applyConfig: VPN servers', () => {
  const sets: FakeServers[] = [];
  const factory: VpnServersFactory = ({ config: c }) => {
    const s = new FakeServers(c.vpnServers);
    sets.push(s);
    return s;
  };
  afterEach(() => {
    sets.splice(0);
    FakeServers.events = [];
  });
  const withServers = (cfg: GatewayConfig, p: FakePlatform) => started(cfg, p, { vpnServers: factory, dataPlane: undefined });

  it('adds, removes and restarts servers one by one; an unchanged one keeps its instance (and clients)', async () => {
    const p = new FakePlatform();
    const gw = await withServers(config({ servers: [P2C, P2C2] }), p);
    expect(routes(p)).toEqual(['10.1.0.0/16', '10.11.0.0/16', '10.5.0.0/24', '10.8.0.0/24', '10.9.0.0/24']);
    FakeServers.events = [];
    const r = await gw.applyConfig(config({ servers: [P2C.replace('1194', '1196')] }));
    expect(r.vpnServers).toEqual({ added: [], removed: ['p2c-2'], restarted: ['p2c'], unchanged: [] });
    expect(FakeServers.events).toEqual(['stop p2c-2 #2', 'stop p2c #1', 'start p2c #3']);
    expect(routes(p)).toEqual(['10.1.0.0/16', '10.11.0.0/16', '10.5.0.0/24', '10.8.0.0/24']);
    expect(gw.status().vpnServers.map((s) => [s.name, s.port])).toEqual([['p2c', 1196]]);

    FakeServers.events = [];
    const r2 = await gw.applyConfig(config({ servers: [P2C.replace('1194', '1196'), P2C2] }));
    expect(r2.vpnServers).toEqual({ added: ['p2c-2'], removed: [], restarted: [], unchanged: ['p2c'] });
    expect(FakeServers.events).toEqual(['start p2c-2 #4']);
    expect(gw.status().vpnServers.map((s) => s.reason)).toEqual(['instance 3', 'instance 4']);
    expect(sets).toHaveLength(1);
    expect(r2.restarted).toBe(false);
  });

  it('the first server creates the set; a server that fails to start is reported, shown DOWN and retried by the same apply', async () => {
    const p = new FakePlatform();
    const gw = await withServers(config(), p);
    expect(sets).toHaveLength(0);
    const r = await gw.applyConfig(config({ servers: [P2C] }));
    expect(r.vpnServers.added).toEqual(['p2c']);
    expect(sets).toHaveLength(1);
    expect(gw.status().vpnServers).toMatchObject([{ name: 'p2c', state: 'LISTENING' }]);

    sets[0]!.failStart = 'p2c-2';
    const next = config({ servers: [P2C, P2C2] });
    const r2 = await gw.applyConfig(next);
    expect(r2.failed).toEqual([{ resource: 'vpnServer:p2c-2', step: 'start', message: 'listen 1195: EADDRINUSE' }]);
    expect(gw.state).toBe('running');
    expect(gw.status().vpnServers).toMatchObject([{ name: 'p2c', state: 'LISTENING' }, { name: 'p2c-2', state: 'DOWN' }]);
    sets[0]!.failStart = null;
    const r3 = await gw.applyConfig(config({ servers: [P2C, P2C2] }));
    expect(r3.vpnServers).toEqual({ added: [], removed: [], restarted: ['p2c-2'], unchanged: ['p2c'] });
    expect(r3.failed).toEqual([]);
    expect(gw.status().vpnServers).toMatchObject([{ name: 'p2c', state: 'LISTENING' }, { name: 'p2c-2', state: 'LISTENING' }]);
  });
});

// ---------------------------------------------------------------------------------------------
// Exchange level: the gateway with its real IKE side (IpsecController) against an in-process
// IkeManager playing the customer gateway dc1 (192.0.2.1), joined through the fake UDP sockets.

describe('Gateway.applyConfig with IKE: SAs of unchanged connections live on', () => {
  const GW = '192.0.2.2';
  const PEER = '192.0.2.1';

  /** The peer's side of dc1-main: the gateway's PeerConfig mirrored. */
  function peerSide(cfg: GatewayConfig): PeerConfig {
    const mine = peerConfigFrom(cfg, cfg.vpnConnections.find((c) => c.name === 'dc1-main')!, 'vpnConnections[0]');
    const child = mine.children[0]!;
    return {
      ...mine,
      name: 'to-gw',
      localAddrs: [PEER],
      remoteAddr: GW,
      localId: mine.remoteId,
      remoteId: mine.localId,
      startAction: 'none',
      children: [{ ...child, localTs: child.remoteTs, remoteTs: child.localTs }],
    };
  }

  async function setUp() {
    const p = new FakePlatform();
    const cfg = config();
    const gw = await started(cfg, p, { tunnels: (ctx) => new IpsecController(ctx) });
    const peer = new IkeManager({ log: captureLogger(), now: Date.now() });
    peer.setConfigs([peerSide(cfg)]);
    /** Moves datagrams both ways until quiet; the gateway's datagrams to others are dropped. */
    const pump = (acts: IkeAction[] = []): void => {
      for (let i = 0; i < 50; i++) {
        for (const a of acts) {
          if (a.kind !== 'send') continue;
          const data = a.from.port === 4500 ? Buffer.concat([Buffer.alloc(4), a.datagram]) : a.datagram;
          p.bind(a.to.address, a.to.port).deliver([data], a.from.address, a.from.port);
        }
        acts = [];
        for (const u of p.udp) {
          for (const m of u.sent.splice(0)) {
            if (m.addr !== PEER) continue;
            const d = u.port === 4500 ? m.data.subarray(4) : m.data;
            acts.push(...peer.receive(d, { address: u.address, port: u.port }, { address: m.addr, port: m.port }, Date.now()));
          }
        }
        if (!acts.some((a) => a.kind === 'send')) return;
      }
    };
    pump();
    return { p, gw, peer, pump };
  }

  const dc1 = (gw: Gateway) => gw.status().connections.find((c) => c.name === 'dc1-main')!;

  it('an apply that adds a connection keeps dc1-main\'s IKE SA, its SPIs and its message IDs', async () => {
    const { gw, peer, pump } = await setUp();
    const before = dc1(gw);
    expect(before.state).toBe('ESTABLISHED');
    expect(before.children).toHaveLength(1);
    const peerBefore = peer.status();
    expect(peerBefore.map((s) => s.state)).toEqual(['ESTABLISHED']);

    const r = await gw.applyConfig(config({ conns: [DC1, ROAD, DC2] }));
    expect(r.connections).toEqual({ added: ['dc2-main'], removed: [], restarted: [], unchanged: ['dc1-main', 'road-1'] });
    pump();
    const after = dc1(gw);
    expect(after.state).toBe('ESTABLISHED');
    expect(after.ikeSa).toBe(before.ikeSa);
    expect(after.children.map((c) => [c.spiIn, c.spiOut])).toEqual(before.children.map((c) => [c.spiIn, c.spiOut]));
    expect(peer.status()).toEqual(peerBefore); // no DELETE reached the peer
    expect(gw.status().connections.find((c) => c.name === 'dc2-main')!.state).toBe('CONNECTING');
    // the SA still works: a liveness check from the peer is answered (message IDs in step)
    pump(peer.dpd('to-gw', Date.now()));
    expect(peer.status().map((s) => [s.ikeId, s.state])).toEqual(peerBefore.map((s) => [s.ikeId, 'ESTABLISHED']));
  });

  it('an apply that changes dc1-main deletes its SA (DELETE to the peer) and sets up a new one with the new config', async () => {
    const { gw, peer, pump } = await setUp();
    const before = dc1(gw);
    const oldPeerSa = peer.status()[0]!.ikeId;
    const r = await gw.applyConfig(config({ conns: [plus(DC1, 'esp: { lifetime: 30m }'), ROAD] }));
    expect(r.connections).toMatchObject({ restarted: ['dc1-main'], unchanged: ['road-1'] });
    pump();
    const after = dc1(gw);
    expect(after.state).toBe('ESTABLISHED');
    expect(after.ikeSa).not.toBe(before.ikeSa);
    expect(after.children[0]!.spiIn).not.toBe(before.children[0]!.spiIn);
    const sas = peer.status();
    expect(sas.map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(sas[0]!.ikeId).not.toBe(oldPeerSa);
  });

  it('an apply that removes dc1-main deletes its SA and drops it from status', async () => {
    const { gw, peer, pump } = await setUp();
    const r = await gw.applyConfig(config({ conns: [ROAD] }));
    expect(r.connections).toMatchObject({ removed: ['dc1-main'], unchanged: ['road-1'] });
    pump();
    expect(peer.status()).toEqual([]);
    expect(gw.status().connections.map((c) => c.name)).toEqual(['road-1']);
    expect((gw.status().gateway.routes)).toEqual(['10.5.0.0/24']);
  });
});

// ---------------------------------------------------------------------------------------------
// IkeManager.replaceConfigs with two in-process managers (test/exchange/helpers.ts): A responds.

describe('IkeManager.replaceConfigs', () => {
  const cfgs = () => {
    const a = exPeerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
    const b = exPeerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
    return { a, b };
  };

  it('leaves an SA whose config object stays alone, and DELETEs one whose config was replaced or removed', () => {
    const { a, b } = cfgs();
    const other = exPeerConfig({ name: 'other', local: A_ADDR, remote: '192.0.2.77', localTs: ['10.1.0.0/16'], remoteTs: ['10.7.0.0/16'] });
    const p = new TwoPeers([a], [b]);
    p.run(p.b.initiate('b2a', p.now), 'b');
    const id = p.a.status()[0]!.ikeId;
    p.run(p.a.replaceConfigs([a, other], p.now), 'a');
    expect(p.a.status().map((s) => [s.ikeId, s.state])).toEqual([[id, 'ESTABLISHED']]);
    expect(p.b.status().map((s) => s.state)).toEqual(['ESTABLISHED']);

    const a2 = { ...a, dpdIntervalSec: 30 }; // the same connection, changed: a new object
    p.run(p.a.replaceConfigs([a2], p.now), 'a');
    expect(p.a.size).toBe(0);
    expect(p.b.size).toBe(0); // the peer got D(IKE)
    expect(p.a.config('a2b')).toBe(a2);
    p.run(p.b.initiate('b2a', p.now), 'b');
    expect(p.a.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
    p.run(p.a.replaceConfigs([], p.now), 'a');
    expect(p.a.size + p.b.size).toBe(0);
  });

  it('a responder SA before IKE_AUTH keeps the candidates still configured; with none left it is dropped', () => {
    const { a, b } = cfgs();
    const road = exPeerConfig({ name: 'road', local: A_ADDR, remote: null, remoteId: 'fqdn:road.example', localTs: ['10.1.0.0/16'], remoteTs: ['10.9.0.0/16'] });
    const p = new TwoPeers([a, road], [b]);
    p.filter = (_d, i) => i < 2; // IKE_SA_INIT both ways; IKE_AUTH lost for now
    p.run(p.b.initiate('b2a', p.now), 'b');
    expect(p.a.status().map((s) => s.state)).not.toContain('ESTABLISHED');
    expect(p.a.size).toBe(1);
    p.run(p.a.replaceConfigs([a], p.now), 'a'); // road removed: a2b is still a candidate
    expect(p.a.size).toBe(1);
    p.filter = () => true;
    p.tick(5000); // B retransmits IKE_AUTH
    expect(p.a.status().map((s) => [s.connection, s.state])).toEqual([['a2b', 'ESTABLISHED']]);

    const q = new TwoPeers([a], [b]);
    q.filter = (_d, i) => i < 2;
    q.run(q.b.initiate('b2a', q.now), 'b');
    expect(q.a.size).toBe(1);
    q.run(q.a.replaceConfigs([{ ...a }], q.now), 'a'); // its only candidate replaced
    expect(q.a.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('SslServer lifecycle (a server added by applyConfig whose port is taken)', () => {
  it('a failed start closes the sockets it had opened and leaves nothing listening', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as AddressInfo).port;
    const tunnel = { writeToTun: () => undefined, addSinkRoute: () => undefined, removeSinkRoute: () => undefined };
    const cfg: SslServerConfig = {
      name: 'p2c', protocols: ['udp', 'tcp'], port, listen: '127.0.0.1', clientCidr: '10.8.0.0/24',
      localSubnets: ['10.2.0.0/16'], dnsServers: [], dataCiphers: ['AES-256-GCM'],
      identity: { cert: '', key: '', clientCa: '' }, maxConnections: 10, clientToClient: false, renegSec: 0,
    };
    const s = new SslServer({ config: cfg, log: silentLogger, tunnel, timer: false });
    try {
      await expect(s.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
      expect(s.summary().state).toBe('DOWN');
      // the UDP port it bound first is free again
      const probe = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.bind(port, '127.0.0.1', () => resolve());
      });
      probe.close();
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('fingerprints with certificate authentication', () => {
  it('sees a new certificate, key, CA or CRL behind the same file names, and hides the private key', () => {
    const d = mkdtempSync(join(tmpdir(), 'vpcgw-live-cert-'));
    dirs.push(d);
    const put = (name: string, text: string) => writeFileSync(join(d, name), text);
    const issue = () => {
      const caKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      const ca = { key: caKey, cert: createCertificate({ subject: 'O=test, CN=CA', key: caKey, ca: true }) };
      const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      const gw = createCertificate({ subject: 'O=test, CN=gw', sans: ['192.0.2.2'], key: k, issuer: ca });
      put('ca.pem', ca.cert.toString());
      put('gw.pem', gw.toString());
      put('gw.key', keyToPem(k));
      put('crl.pem', crlToPem(createCrl({ ca: ca.cert, caKey: ca.key, revokedSerials: ['01'] })));
      return { ca, k };
    };
    const load = () => parseConfig(`
gateway: { name: gw1, publicAddresses: [192.0.2.2], vpcSubnets: [10.2.0.0/16] }
customerGateways:
  - { name: dc1, address: 192.0.2.1, id: fqdn:dc1.example, ca: ca.pem, crl: crl.pem }
vpnConnections:
  - { name: dc1-main, customerGateway: dc1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.1.0.0/16], auth: { cert: gw.pem, key: gw.key } }
`, join(d, 'vpcgw.yaml'));
    const { ca, k } = issue();
    const a = load();
    expect(connectionFingerprint(load(), 'dc1-main')).toBe(connectionFingerprint(a, 'dc1-main'));
    const peer = peerConfigFrom(a, a.vpnConnections[0]!, 'vpnConnections[0]');
    const text = canonical({ ...peer, psk: null });
    expect(text).toContain(`x509:${peer.cert!.cert.fingerprint256}`);
    expect(text).not.toContain(k.export({ format: 'der', type: 'pkcs8' }).toString('hex'));
    // a re-issued CRL (same CA): only the CRL file changes
    put('crl.pem', crlToPem(createCrl({ ca: ca.cert, caKey: ca.key, revokedSerials: ['01', '02'] })));
    const b = load();
    expect(diffConfigs(a, b).connections.changed).toEqual(['dc1-main']);
    issue(); // everything re-issued
    expect(diffConfigs(b, load()).connections.changed).toEqual(['dc1-main']);
  });
});
