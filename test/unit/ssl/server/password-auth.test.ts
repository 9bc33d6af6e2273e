// The session manager's password step on its own: a fake control channel (TCP hard reset =
// 0x38 || 8-byte session id || "user:password", authenticates at once with those credentials;
// "user" alone sends none), the real JsDataPath, a fixed clock. The manager asks for a check with a
// verifyPassword action and goes on when the test hands the verdict back.
import { beforeEach, describe, expect, it } from 'vitest';
import { captureLogger, type CapturedLine } from '../../../../src/common/log.js';
import { AddressPool } from '../../../../src/gateway/pools.js';
import type { PushParams, SslAction, SslSessionOptions } from '../../../../src/ssl/session.js';
import type { SslServerAction } from '../../../../src/ssl/server/actions.js';
import { AuthBackoff } from '../../../../src/ssl/server/auth-backoff.js';
import type { SslServerConfig } from '../../../../src/ssl/server/config.js';
import type { ControlSession, ControlSessionFactory } from '../../../../src/ssl/server/control-session.js';
import { JsDataPath, type DataTransport } from '../../../../src/ssl/server/data-path.js';
import { SslSessionManager } from '../../../../src/ssl/server/session-manager.js';

const T0 = 1_000_000;
let now = T0;
let controls: FakeControl[];
let opts: SslSessionOptions[];
let lines: CapturedLine[];

class FakeControl implements ControlSession {
  state = 'initial';
  pushed: PushParams | null = null;
  rejected: string | null = null;
  constructor(readonly emit: (a: SslAction) => void) {}
  receiveControl(pkt: Buffer): void {
    if (pkt[0] !== 0x38) return;
    const text = pkt.subarray(9).toString();
    const colon = text.indexOf(':');
    const username = colon < 0 ? null : text.slice(0, colon);
    const password = colon < 0 ? null : text.slice(colon + 1);
    this.state = 'authenticating';
    this.emit({ kind: 'authenticated', user: username ?? '', certCn: 'cn-of-cert', username, password, peerInfo: new Map(), clientOptions: '', cipher: 'AES-256-GCM' });
  }
  tick(): void {}
  nextDeadline(): number {
    return Infinity;
  }
  setPush(p: PushParams): void {
    this.pushed = p;
    this.state = 'established';
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

const noTransport: DataTransport = {
  slotOff: 0,
  reserve: () => Buffer.alloc(2048),
  commit: () => undefined,
  flush: () => undefined,
  setRemote: () => undefined,
  now: () => now,
} as unknown as DataTransport;

function manager(auth: SslServerConfig['auth'], backoff?: { maxFailures: number; windowMs: number; blockMs: number; maxSources: number }): SslSessionManager {
  const config: SslServerConfig = {
    name: 'p2c', protocols: ['tcp'], port: 1194, listen: '0.0.0.0', clientCidr: '10.8.0.0/24',
    localSubnets: ['10.2.0.0/16'], dnsServers: [], dataCiphers: ['AES-256-GCM'],
    identity: { cert: '', key: '', clientCa: '' }, maxConnections: 10, clientToClient: false, renegSec: 0, auth,
    limits: { maxTcpPerSource: 100, maxHalfOpenPerSource: 100 },
  };
  const factory: ControlSessionFactory = {
    isInitialPacket: (p) => p[0] === 0x38 && p.length >= 9,
    create: (o, _peerId, onAction) => {
      opts.push(o);
      const c = new FakeControl(onAction);
      controls.push(c);
      return c;
    },
  };
  return new SslSessionManager({
    config,
    log: captureLogger(lines),
    leases: new AddressPool({ name: 'p2c', cidr: config.clientCidr }),
    sessions: factory,
    dataPaths: { create: (s, t) => new JsDataPath(s.peerId, t, noTransport, { addSinkRoute: () => undefined, removeSinkRoute: () => undefined }) },
    authBackoff: backoff,
  });
}

let nextConn = 0;
/** A TCP connection from `addr` whose first frame carries `creds`; the actions of that frame. */
function connect(m: SslSessionManager, creds: string, addr = '192.0.2.10'): readonly SslServerAction[] {
  const conn = nextConn++;
  m.connectionOpened(conn, addr, 40000 + conn, now);
  const frame = Buffer.concat([Buffer.from([0x38]), Buffer.alloc(8, conn + 1), Buffer.from(creds)]);
  return [...m.receiveFrame(conn, addr, 40000 + conn, frame, 0, frame.length, now)];
}

function verifyOf(acts: readonly SslServerAction[]): Extract<SslServerAction, { kind: 'verifyPassword' }> | undefined {
  return acts.find((a): a is Extract<SslServerAction, { kind: 'verifyPassword' }> => a.kind === 'verifyPassword');
}

beforeEach(() => {
  now = T0;
  controls = [];
  opts = [];
  lines = [];
  nextConn = 0;
});

describe('SslSessionManager: password authentication', () => {
  it('cert (the default) asks for a client certificate and no password check', () => {
    const m = manager(undefined);
    const acts = connect(m, 'alice:secret');
    expect(opts[0]!.clientCert).toBe(true);
    expect(verifyOf(acts)).toBeUndefined();
    expect(acts.some((a) => a.kind === 'sessionUp')).toBe(true);
  });

  it('password: no client certificate; the credentials go to the shell, the verdict brings the client up', () => {
    const m = manager('password');
    const acts = connect(m, 'alice:s3cret');
    expect(opts[0]!.clientCert).toBe(false);
    const v = verifyOf(acts)!;
    expect(v).toMatchObject({ user: 'alice', password: 's3cret', server: 'p2c', source: '192.0.2.10' });
    expect(acts.some((a) => a.kind === 'sessionUp')).toBe(false);
    expect(m.halfOpenSessions).toBe(1);
    const up = m.passwordVerdict(v.check, true, '', now);
    expect(up.find((a) => a.kind === 'sessionUp')).toMatchObject({ user: 'alice', address: '10.8.0.2' });
    expect(controls[0]!.pushed).not.toBeNull();
    expect(m.halfOpenSessions).toBe(0);
    expect(m.status()[0]!.user).toBe('alice');
  });

  it('cert+password: the certificate is required and the username is the session user', () => {
    const m = manager('cert+password');
    const v = verifyOf(connect(m, 'bob:pw'))!;
    expect(opts[0]!.clientCert).toBe(true);
    expect(v.user).toBe('bob');
    expect(m.passwordVerdict(v.check, true, '', now).find((a) => a.kind === 'sessionUp')).toMatchObject({ user: 'bob' });
  });

  it('a refused password: AUTH_FAILED without a reason, one counted failure, a log line with user and source and no password', () => {
    const m = manager('password');
    const v = verifyOf(connect(m, 'alice:wrong-horse'))!;
    const acts = m.passwordVerdict(v.check, false, 'wrong password', now);
    expect(acts.some((a) => a.kind === 'sessionUp')).toBe(false);
    expect(controls[0]!.rejected).toBe('');
    expect(m.counters.passwordFailures).toBe(1);
    expect(m.counters.authRefusals).toBe(1);
    const failed = lines.filter((l) => l.msg === 'password authentication failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.obj).toMatchObject({ user: 'alice', source: '192.0.2.10', reason: 'wrong password' });
    expect(JSON.stringify(lines)).not.toContain('wrong-horse');
  });

  it('no credentials sent: refused without a check', () => {
    const m = manager('password');
    const acts = connect(m, 'alice');
    expect(verifyOf(acts)).toBeUndefined();
    expect(controls[0]!.rejected).toBe('');
    expect(m.counters.passwordFailures).toBe(1);
  });

  it('a verdict for a session that closed meanwhile is ignored', () => {
    const m = manager('password');
    const v = verifyOf(connect(m, 'alice:pw'))!;
    m.connectionClosed(0, now);
    expect(m.sessionCount).toBe(0);
    expect(m.passwordVerdict(v.check, true, '', now)).toEqual([]);
    expect(m.passwordVerdict(9999, true, '', now)).toEqual([]);
  });

  it('back-off: after maxFailures failures from one source it is refused without a check until blockMs passed; other sources are not', () => {
    const m = manager('password', { maxFailures: 3, windowMs: 60_000, blockMs: 30_000, maxSources: 100 });
    for (let i = 0; i < 3; i++) {
      const v = verifyOf(connect(m, 'alice:guess'))!;
      m.passwordVerdict(v.check, false, 'wrong password', now);
    }
    expect(verifyOf(connect(m, 'alice:right'))).toBeUndefined();
    expect(m.counters.authBackoffRefusals).toBe(1);
    expect(verifyOf(connect(m, 'alice:right', '192.0.2.99'))).toBeDefined();
    now += 30_000;
    expect(verifyOf(connect(m, 'alice:right'))).toBeDefined();
  });
});

describe('AuthBackoff', () => {
  it('counts failures per window: spread-out failures never block', () => {
    const b = new AuthBackoff({ maxFailures: 3, windowMs: 1000, blockMs: 5000, maxSources: 10 });
    for (let i = 0; i < 10; i++) expect(b.failure('a', i * 600)).toBe(false);
    expect(b.failure('a', 6001)).toBe(false);
    expect(b.failure('a', 6002)).toBe(false);
    expect(b.failure('a', 6003)).toBe(true);
    expect(b.blocked('a', 6003 + 4999)).toBe(true);
    expect(b.blocked('a', 6003 + 5000)).toBe(false);
  });

  it('a success clears the failures', () => {
    const b = new AuthBackoff({ maxFailures: 2, windowMs: 1000, blockMs: 5000, maxSources: 10 });
    b.failure('a', 0);
    b.success('a');
    expect(b.failure('a', 1)).toBe(false);
  });

  it('remembers at most maxSources addresses (the least recently failed go first)', () => {
    const b = new AuthBackoff({ maxFailures: 2, windowMs: 1000, blockMs: 5000, maxSources: 100 });
    for (let i = 0; i < 10_000; i++) b.failure(`10.0.${i >> 8}.${i & 255}`, 0);
    expect(b.size).toBe(100);
  });
});
