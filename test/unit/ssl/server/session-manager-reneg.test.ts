// Server-side renegotiation (OpenVPN --reneg-sec on the server): the vpnServers field renegSeconds,
// its path into the control channel, the timing on the core's clock (the real SslSession against an
// in-process client), and the key id the status shows advancing. Also the refusal of a client over
// maxConnections and over an exhausted pool: a reason the client can show, one log line, a counter.
import { beforeAll, describe, expect, it } from 'vitest';
import { captureLogger } from '../../../../src/common/log.js';
import { parseConfig } from '../../../../src/gateway/config/index.js';
import { sslServerConfigFrom } from '../../../../src/gateway/ssl-server-config.js';
import type { PushParams, SslAction, SslSessionOptions } from '../../../../src/ssl/session.js';
import { DEFAULT_RENEG_SEC, type SslServerConfig } from '../../../../src/ssl/server/config.js';
import type { ControlSession, ControlSessionFactory } from '../../../../src/ssl/server/control-session.js';
import type { DataPathStats, SslDataPath } from '../../../../src/ssl/server/data-path.js';
import type { ClientLease, LeaseProvider, LeaseResult } from '../../../../src/ssl/server/leases.js';
import { REFUSED_SERVER_FULL, SslSessionManager } from '../../../../src/ssl/server/session-manager.js';
import { parsePrefix } from '../../../../src/common/ip.js';
import { makeHarness } from '../../../helpers/ssl-harness.js';
import { makeTestPki, type TestPki } from '../../../helpers/pki.js';

const SOFT_RESET = (3 << 3) | 1; // P_CONTROL_SOFT_RESET_V1, key id 1
type CapturedLogger = ReturnType<typeof captureLogger>;

// ---------------------------------------------------------------- config

function yaml(extra: string): string {
  return [
    'gateway: { name: gw1, dataDir: /tmp/x, publicAddresses: [192.0.2.2], vpcSubnets: [10.2.0.0/16], tun: { name: vpcgw0, mtu: 1400 } }',
    'vpnServers:',
    '  - { name: p2c, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], auth: { type: cert },',
    `      serverCert: { cert: /pki/s.crt, key: /pki/s.key }, clientCa: /pki/ca.crt, maxConnections: 5${extra} }`,
  ].join('\n');
}
const frozen = (extra: string): SslServerConfig => sslServerConfigFrom(parseConfig(yaml(extra), 'test.yaml').vpnServers[0]!, () => 'PEM');

describe('vpnServers renegSeconds', () => {
  it("defaults to OpenVPN's 3600 s; 0 turns server renegotiation off; 10 s is the lowest period", () => {
    expect(DEFAULT_RENEG_SEC).toBe(3600);
    expect(frozen('').renegSec).toBe(3600);
    expect(frozen(', renegSeconds: 0').renegSec).toBe(0);
    expect(frozen(', renegSeconds: 10').renegSec).toBe(10);
    expect(frozen(', renegSeconds: 86400').renegSec).toBe(86400);
  });

  it('refuses 1..9 s and negative values, naming the field', () => {
    expect(() => frozen(', renegSeconds: 5')).toThrow(/vpnServers\[0\]\.renegSeconds.*0 \(off\) or at least 10 seconds/s);
    expect(() => frozen(', renegSeconds: -1')).toThrow(/renegSeconds/);
  });
});

// ---------------------------------------------------------------- timing on the core's clock

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

describe('server renegotiation timing (SslSession, fixed clock)', () => {
  async function established(renegSec: number) {
    const h = makeHarness(pki, { server: { renegSec } });
    h.client.start(h.now());
    expect(await h.pump(() => h.of('keys').length === 1)).toBe(true);
    return h;
  }
  const softResets = (h: Awaited<ReturnType<typeof established>>): number =>
    h.of('send').filter((a) => (a.packet[0]! >> 3) === 3 /* P_CONTROL_SOFT_RESET_V1 */).length;

  it('starts a SOFT_RESET when the key is renegSec old, not before; each new key re-arms the period', async () => {
    const h = await established(30);
    const t0 = h.now();
    expect(h.server.nextDeadline()).toBe(t0 + 30_000);
    h.advance(29_999);
    expect(softResets(h)).toBe(0);
    h.advance(1);
    expect(softResets(h)).toBeGreaterThanOrEqual(1);
    expect(h.of('send').some((a) => a.packet[0] === SOFT_RESET)).toBe(true);
    expect(await h.pump(() => h.of('keys').length === 2)).toBe(true);
    expect(h.of('keys').map((k) => k.keyId)).toEqual([0, 1]);
    // the next period runs from the new key (the clock did not move while TLS ran)
    expect(h.server.nextDeadline()).toBeLessThanOrEqual(h.now() + 30_000);
    const sentBefore = softResets(h);
    h.advance(29_000);
    expect(softResets(h)).toBe(sentBefore);
    h.advance(1_000);
    expect(await h.pump(() => h.of('keys').length === 3)).toBe(true);
    expect(h.of('keys').map((k) => k.keyId)).toEqual([0, 1, 2]);
    expect(h.server.state).toBe('established');
  });

  it('renegSec 0: the server never starts one', async () => {
    const h = await established(0);
    for (let i = 0; i < 10; i++) h.advance(3_600_000);
    expect(softResets(h)).toBe(0);
    expect(h.of('keys')).toHaveLength(1);
  });
});

// ---------------------------------------------------------------- through the session manager

/** A control channel that authenticates on its first packet and installs keys when told. */
class FakeControl implements ControlSession {
  state = 'handshake';
  rejected: string | null = null;
  constructor(
    readonly opts: SslSessionOptions,
    readonly peerId: number,
    readonly emit: (a: SslAction) => void,
  ) {}
  receiveControl(pkt: Buffer): void {
    if (pkt[0] === 0x38) this.emit({ kind: 'authenticated', user: pkt.subarray(9).toString(), certCn: '', peerInfo: new Map(), clientOptions: '', cipher: 'AES-256-GCM' });
  }
  keys(keyId: number): void {
    this.emit({ kind: 'keys', peerId: this.peerId, keyId, cipher: 'AES-256-GCM', encKey: Buffer.alloc(32), encImplicitIv: Buffer.alloc(8), decKey: Buffer.alloc(32), decImplicitIv: Buffer.alloc(8) } as SslAction);
  }
  tick(): void {}
  nextDeadline(): number {
    return Infinity;
  }
  setPush(_p: PushParams): void {
    this.state = 'established';
    this.keys(0);
  }
  reject(reason: string): void {
    this.rejected = reason;
    this.close(reason);
  }
  sendControlText(): void {}
  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.emit({ kind: 'closed', reason });
  }
}

class NullPath implements SslDataPath {
  outOff = 0;
  outLen = 0;
  installKey(): void {}
  retireKey(): void {}
  attach(): void {}
  setRemote(): void {}
  decrypt(): number {
    return -1;
  }
  send(): void {}
  tick(): number {
    return 0;
  }
  countDrop(): void {}
  stats(): DataPathStats {
    return { cipher: 'AES-256-GCM', bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0, drops: {} };
  }
  close(): void {}
}

/** Hands out 10.8.0.2.. up to `size` addresses (no reuse: enough for these tests). */
class SmallPool implements LeaseProvider {
  readonly prefix = parsePrefix('10.8.0.0/24')!;
  readonly serverAddress = '10.8.0.1';
  readonly netmask = '255.255.255.0';
  private readonly held = new Map<string, ClientLease>();
  constructor(private readonly size: number) {}
  acquire(identity: string): LeaseResult {
    const own = this.held.get(identity);
    if (own) return { ok: true, lease: own };
    if (this.held.size >= this.size) return { ok: false, reason: 'address pool exhausted' };
    const n = this.held.size + 2;
    const lease = { address: `10.8.0.${n}`, addressNum: (10 << 24) | (8 << 8) | n };
    this.held.set(identity, lease);
    return { ok: true, lease };
  }
  release(identity: string): void {
    this.held.delete(identity);
  }
}

function setup(over: Partial<SslServerConfig>, poolSize = 100) {
  const controls: FakeControl[] = [];
  const log: CapturedLogger = captureLogger();
  const config: SslServerConfig = {
    name: 'p2c', protocols: ['tcp'], port: 1194, listen: '0.0.0.0', clientCidr: '10.8.0.0/24',
    localSubnets: ['10.2.0.0/16'], dnsServers: [], dataCiphers: ['AES-256-GCM'],
    identity: { cert: '', key: '', clientCa: '' }, maxConnections: 10, clientToClient: false, renegSec: 0, ...over,
  };
  const sessions: ControlSessionFactory = {
    isInitialPacket: (p) => p[0] === 0x38 && p.length >= 9,
    create: (opts, peerId, onAction) => {
      const c = new FakeControl(opts, peerId, onAction);
      controls.push(c);
      return c;
    },
  };
  const m = new SslSessionManager({ config, log, leases: new SmallPool(poolSize), sessions, dataPaths: { create: () => new NullPath() } });
  let conn = 0;
  const connect = (user: string, now = 1000): readonly string[] => {
    const c = conn++;
    m.connectionOpened(c, '192.0.2.1', 1000 + c, now);
    const hello = Buffer.concat([Buffer.from([0x38]), Buffer.alloc(8, c + 1), Buffer.from(user)]);
    return m.receiveFrame(c, '192.0.2.1', 1000 + c, hello, 0, hello.length, now).map((a) => a.kind);
  };
  return { m, controls, log, connect };
}

describe('SslSessionManager: renegSec reaches the control channel; the status shows the key id', () => {
  it('every session gets the server renegSec', () => {
    const { controls, connect } = setup({ renegSec: 30 });
    connect('alice');
    expect(controls[0]!.opts.renegSec).toBe(30);
  });

  it('keyId and renegotiations follow the keys the control channel installs', () => {
    const { m, controls, connect } = setup({ renegSec: 30 });
    connect('alice');
    expect(m.status()[0]).toMatchObject({ user: 'alice', keyId: 0, renegotiations: 0 });
    for (const k of [1, 2, 3, 4, 5, 6, 7, 1]) controls[0]!.keys(k);
    expect(m.status()[0]).toMatchObject({ keyId: 1, renegotiations: 8 });
  });
});

describe('SslSessionManager refusals: a reason for the client, one log line, a counter', () => {
  const refusalLines = (log: CapturedLogger) => log.lines.filter((l) => l.level === 'warn');

  it('maxConnections: the client is refused with AUTH_FAILED,server full after it authenticates', () => {
    const { m, controls, log, connect } = setup({ maxConnections: 1 });
    expect(connect('alice')).toContain('sessionUp');
    expect(connect('bob')).toEqual(['closeConnection', 'sessionDown']);
    expect(controls[1]!.rejected).toBe(REFUSED_SERVER_FULL);
    expect(REFUSED_SERVER_FULL).toBe('server full');
    expect(m.counters).toMatchObject({ maxConnectionRefusals: 1, authRefusals: 0 });
    expect(refusalLines(log)).toHaveLength(1);
    expect(refusalLines(log)[0]).toMatchObject({ msg: 'client refused', obj: { user: 'bob', reason: 'server full', max: 1 } });
    expect(m.status().map((s) => s.user)).toEqual(['alice']);
  });

  it('a full server still lets a connected user reconnect (its old session is replaced, not counted)', () => {
    const { m, connect } = setup({ maxConnections: 1 });
    connect('alice');
    expect(connect('alice', 2000)).toContain('sessionUp');
    expect(m.counters).toMatchObject({ maxConnectionRefusals: 0, replacedSessions: 1 });
    expect(m.sessionCount).toBe(1);
  });

  it('an exhausted pool: AUTH_FAILED,address pool exhausted, one log line, poolRefusals', () => {
    const { m, controls, log, connect } = setup({ maxConnections: 10 }, 1);
    connect('alice');
    expect(connect('bob')).toEqual(['closeConnection', 'sessionDown']);
    expect(controls[1]!.rejected).toBe('address pool exhausted');
    expect(m.counters).toMatchObject({ poolRefusals: 1, authRefusals: 0 });
    expect(refusalLines(log)).toHaveLength(1);
    expect(refusalLines(log)[0]).toMatchObject({ msg: 'client refused', obj: { user: 'bob', reason: 'address pool exhausted', pool: '10.8.0.0/24' } });
  });
});
