// The SSL VPN session manager on its own: a fixed clock, no sockets, no timers. The control channel
// is a fake (TCP hard reset = 0x38 || 8-byte session id || user name; over UDP the real stateless
// start, then a P_CONTROL_V1 whose payload is "hello:USER" (authenticates at once) or "wait:USER"
// (authenticates on a later "auth" P_CONTROL_V1); P_CONTROL_V1 0x20 || text), the
// data path is the real JsDataPath over a recording transport, and the client's side of the data
// channel is a DataChannel with the keys mirrored.
import { beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { captureLogger } from '../../../../src/common/log.js';
import { formatPrefix, type Prefix } from '../../../../src/common/ip.js';
import { AddressPool } from '../../../../src/gateway/pools.js';
import type { PushParams, SslAction } from '../../../../src/ssl/session.js';
import { DataChannel, DATA_IP, DATA_PING, PACKET_ID_RENEG_THRESHOLD, type DataKeyMaterial } from '../../../../src/ssl/data/data-channel.js';
import type { SslServerAction } from '../../../../src/ssl/server/actions.js';
import type { SslServerConfig } from '../../../../src/ssl/server/config.js';
import type { ControlSession, ControlSessionFactory } from '../../../../src/ssl/server/control-session.js';
import { JsDataPath, type DataTransport, type PacketSink, type SslEndpoint } from '../../../../src/ssl/server/data-path.js';
import { DISCONNECT_LINGER_MS, SslSessionManager, type SslSessionManagerOptions } from '../../../../src/ssl/server/session-manager.js';
import { SID_SLOT_MS } from '../../../../src/ssl/server/stateless-reset.js';
import { decodeControlPacket, encodeControlPacket } from '../../../../src/ssl/wire/control-packet.js';
import { ParseError } from '../../../../src/common/errors.js';

const T0 = 1_000_000;

function keys(seed: Buffer, side: 'server' | 'client', initialSendPacketId = 0): DataKeyMaterial {
  const a = seed.subarray(0, 64);
  const b = seed.subarray(64, 128);
  const ivA = seed.subarray(128, 136);
  const ivB = seed.subarray(136, 144);
  return side === 'server'
    ? { keyId: 0, cipher: 'AES-256-GCM', encKey: a, encImplicitIv: ivA, decKey: b, decImplicitIv: ivB, initialSendPacketId }
    : { keyId: 0, cipher: 'AES-256-GCM', encKey: b, encImplicitIv: ivB, decKey: a, decImplicitIv: ivA };
}

const seeds = new Map<string, Buffer>();
const seedOf = (user: string): Buffer => seeds.get(user) ?? (seeds.set(user, randomBytes(144)), seeds.get(user)!);
let nextPid = 0;

class FakeControl implements ControlSession {
  state = 'initial';
  user = '';
  renegotiations = 0;
  pushed: PushParams | null = null;
  constructor(
    readonly peerId: number,
    readonly emit: (a: SslAction) => void,
  ) {}
  receiveControl(pkt: Buffer): void {
    const d = pkt[0] === 0x20 ? decodeControlPacket(pkt) : null;
    const text = d && !(d instanceof ParseError) ? d.payload.toString() : '';
    if (pkt[0] === 0x38 || text.startsWith('hello:')) {
      this.user = pkt[0] === 0x38 ? pkt.subarray(9).toString() : text.slice(6);
      this.emit({ kind: 'send', packet: Buffer.from([0x40, this.peerId]) });
      this.authenticate();
    } else if (text.startsWith('wait:')) {
      this.user = text.slice(5);
      this.state = 'handshake';
    } else if (text === 'auth') {
      this.authenticate();
    } else if (pkt[0] === 0x20) {
      this.emit({ kind: 'control', text: pkt.subarray(1).toString() });
    }
  }
  authenticate(): void {
    this.state = 'authenticating';
    this.emit({ kind: 'authenticated', user: this.user, certCn: this.user, peerInfo: new Map(), clientOptions: '', cipher: 'AES-256-GCM' });
  }
  deadline = Infinity;
  tick(): void {
    this.ticks++;
  }
  nextDeadline(): number {
    return this.deadline;
  }
  setPush(p: PushParams): void {
    this.pushed = p;
    this.state = 'established';
    this.emit({ kind: 'keys', peerId: this.peerId, compress: 'none', ...keys(seedOf(this.user), 'server', nextPid) } as SslAction);
  }
  renegotiate(): boolean {
    this.renegotiations++;
    return true;
  }
  /** the reason of the server's AUTH_FAILED (null: not refused) */
  rejectedWith: string | null = null;
  reject(reason: string): void {
    this.rejectedWith = reason;
    this.close(reason);
  }
  /** control texts the server sent (RESTART, HALT) */
  readonly texts: string[] = [];
  ticks = 0;
  sendControlText(t: string): void {
    this.texts.push(t);
  }
  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.emit({ kind: 'closed', reason });
  }
}

/** Records what a session's JsDataPath sends, with the remote it was addressed to. */
class RecordingTransport implements DataTransport {
  slotOff = 0;
  readonly buf = Buffer.alloc(4096);
  readonly sent: { to: string; pkt: Buffer }[] = [];
  constructor(public remote: SslEndpoint) {}
  reserve(): Buffer {
    return this.buf;
  }
  commit(n: number): void {
    this.sent.push({ to: `${this.remote.address}:${this.remote.port}`, pkt: Buffer.from(this.buf.subarray(0, n)) });
  }
  flush(): void {}
  setRemote(r: SslEndpoint): void {
    this.remote = r;
  }
  now(): number {
    return now;
  }
}

class Routes {
  readonly sinks = new Map<string, PacketSink>();
  addSinkRoute(p: Prefix, s: PacketSink): void {
    this.sinks.set(formatPrefix(p), s);
  }
  removeSinkRoute(p: Prefix): void {
    this.sinks.delete(formatPrefix(p));
  }
}

let now = T0;
let controls: FakeControl[];
let transports: Map<number, RecordingTransport>;
let routes: Routes;
let pool: AddressPool;
let asyncActions: SslServerAction[];

function manager(over: Partial<SslServerConfig> = {}, secret?: Buffer, extra: Partial<SslSessionManagerOptions> = {}): SslSessionManager {
  const config: SslServerConfig = {
    name: 'p2c', protocols: ['udp', 'tcp'], port: 1194, listen: '0.0.0.0', clientCidr: '10.8.0.0/24',
    localSubnets: ['10.2.0.0/16'], dnsServers: [], dataCiphers: ['AES-256-GCM'],
    identity: { cert: '', key: '', clientCa: '' }, maxConnections: 10, clientToClient: false, renegSec: 0,
    pingSec: 10, pingRestartSec: 60, ...over,
  };
  const factory: ControlSessionFactory = {
    isInitialPacket: (p) => p[0] === 0x38 && p.length >= 9,
    create: (_o, peerId, onAction) => {
      const c = new FakeControl(peerId, onAction);
      controls.push(c);
      return c;
    },
  };
  pool = new AddressPool({ name: 'p2c', cidr: config.clientCidr });
  return new SslSessionManager({
    config,
    log: captureLogger(),
    leases: pool,
    sessions: factory,
    dataPaths: {
      create: (s, t) => {
        const tr = new RecordingTransport({ family: s.remoteFamily, address: s.remoteAddr, port: s.remotePort });
        transports.set(s.peerId, tr);
        return new JsDataPath(s.peerId, t, tr, routes);
      },
    },
    onAsyncActions: (a) => asyncActions.push(...a),
    cookieSecret: secret,
    ...extra,
  });
}

function hello(user: string, sid = Buffer.alloc(8, 1)): Buffer {
  return Buffer.concat([Buffer.from([0x38]), sid, Buffer.from(user)]);
}

/** P_CONTROL_HARD_RESET_CLIENT_V2 { sid, mid 0, payload } as a 2.5/2.6 client sends it without tls-auth. */
function reset(sid: Buffer, payload = Buffer.alloc(0)): Buffer {
  return encodeControlPacket({ opcode: 7, keyId: 0, sessionId: sid, ack: { ids: [], remoteSessionId: null }, messageId: 0, payload });
}

/** P_CONTROL_V1 { sid, ACK [0] for serverSid, mid 1, text }: the client's echo of the server's session id. */
function echo(sid: Buffer, serverSid: Buffer, text: string, ackIds = [0]): Buffer {
  return encodeControlPacket({ opcode: 4, keyId: 0, sessionId: sid, ack: { ids: ackIds, remoteSessionId: serverSid }, messageId: 1, payload: Buffer.from(text) });
}

/** The stateless start over UDP: reset --> <-- server sid; echo "hello:USER" -->. Returns the echo's actions. */
function udpHello(m: SslSessionManager, user: string, addr: string, port: number, sid = Buffer.alloc(8, 1), verb = 'hello'): readonly SslServerAction[] {
  const r = m.receiveDatagram(reset(sid), addr, port, true, now);
  const a = r[0];
  if (!a || a.kind !== 'sendControl') throw new Error('no stateless reply');
  const serverSid = Buffer.from(a.packet.subarray(1, 9));
  return m.receiveDatagram(echo(sid, serverSid, `${verb}:${user}`), addr, port, true, now);
}

function ipv4(src: string, dst: string): Buffer {
  const p = Buffer.alloc(40);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  src.split('.').forEach((o, i) => (p[12 + i] = Number(o)));
  dst.split('.').forEach((o, i) => (p[16 + i] = Number(o)));
  return p;
}

/** The client's end of the data channel. */
function clientChannel(user: string, peerId: number): DataChannel {
  const dc = new DataChannel({ peerId }, now);
  dc.installKey(keys(seedOf(user), 'client'), now);
  return dc;
}
function seal(dc: DataChannel, payload: Buffer): Buffer {
  const out = Buffer.alloc(2048);
  const n = dc.encrypt(payload, 0, payload.length, out, 0, now);
  return out.subarray(0, n);
}

const kinds = (acts: readonly SslServerAction[]): string[] => acts.map((a) => a.kind);

beforeEach(() => {
  now = T0;
  nextPid = 0;
  controls = [];
  transports = new Map();
  routes = new Routes();
  asyncActions = [];
  seeds.clear();
});

describe('SslSessionManager', () => {
  it('hands out peer-ids from its own block only (servers sharing a data plane never collide), and data under them finds the session', () => {
    const m = manager({ peerIds: { first: 1 << 17, count: 2 } });
    const a = udpHello(m, 'alice', '192.0.2.10', 5000);
    expect(a.find((x) => x.kind === 'sessionUp')).toMatchObject({ peerId: 1 << 17, user: 'alice' });
    const b = udpHello(m, 'bob', '192.0.2.11', 5000, Buffer.alloc(8, 2));
    expect(b.find((x) => x.kind === 'sessionUp')).toMatchObject({ peerId: (1 << 17) + 1, user: 'bob' });
    // the block is full: a third client gets no session
    expect(kinds(udpHello(m, 'carol', '192.0.2.12', 5000, Buffer.alloc(8, 3)))).not.toContain('sessionUp');
    const dc = clientChannel('bob', (1 << 17) + 1);
    const out = m.receiveDatagram(seal(dc, ipv4('10.8.0.3', '10.2.0.5')), '192.0.2.11', 5000, false, now);
    expect(kinds(out)).toEqual(['writeToTun']);
  });

  it('admits a client: control answer to its address, lease, route, push; its IP packets come back as writeToTun', () => {
    const m = manager();
    // hard reset --> ; <-- control answer, client up
    const acts = udpHello(m, 'alice', '192.0.2.10', 5000);
    expect(kinds(acts)).toEqual(['sendControl', 'sessionUp']);
    expect(acts[0]).toMatchObject({ kind: 'sendControl', conn: -1, to: { family: 4, address: '192.0.2.10', port: 5000 } });
    expect(acts[1]).toMatchObject({ peerId: 0, user: 'alice', address: '10.8.0.2' });
    expect(controls[0]!.pushed).toMatchObject({ ifconfig: { address: '10.8.0.2', netmask: '255.255.255.0' }, routeGateway: '10.8.0.1', routes: [{ network: '10.2.0.0', netmask: '255.255.0.0' }] });
    expect([...routes.sinks.keys()]).toEqual(['10.8.0.2/32']);

    // P_DATA_V2 { IPv4 10.8.0.2 -> 10.2.0.5 } --> writeToTun
    const dc = clientChannel('alice', 0);
    const pkt = ipv4('10.8.0.2', '10.2.0.5');
    const out = m.receiveDatagram(seal(dc, pkt), '192.0.2.10', 5000, false, now);
    expect(out).toHaveLength(1);
    const w = out[0]!;
    if (w.kind !== 'writeToTun') throw new Error('expected writeToTun');
    expect(Buffer.from(w.buf.subarray(w.off, w.off + w.len))).toEqual(pkt);

    // a spoofed inner source is dropped and counted, nothing to do
    expect(m.receiveDatagram(seal(dc, ipv4('10.8.0.9', '10.2.0.5')), '192.0.2.10', 5000, false, now)).toHaveLength(0);
    expect(m.counters.badSourceDrops).toBe(1);

    // VPC -> client: the data plane pushes to the route's sink; the path encrypts to the client's address
    routes.sinks.get('10.8.0.2/32')!.push(pkt, 0, pkt.length);
    const tr = transports.get(0)!;
    expect(tr.sent).toHaveLength(1);
    expect(tr.sent[0]!.to).toBe('192.0.2.10:5000');
    expect(dc.decrypt(tr.sent[0]!.pkt, 0, tr.sent[0]!.pkt.length, now)).toBe(DATA_IP);
    expect(m.status()[0]).toMatchObject({ user: 'alice', virtualAddress: '10.8.0.2', packetsIn: 2, packetsOut: 1, cipher: 'AES-256-GCM' });
  });

  it('maxConnections refuses further clients when they authenticate; garbage and data from unknown remotes make no session', () => {
    const m = manager({ maxConnections: 2 });
    udpHello(m, 'a', '192.0.2.1', 1);
    udpHello(m, 'b', '192.0.2.2', 1);
    // the third one negotiates (so it can be told why) and is refused: AUTH_FAILED,server full, closed
    expect(kinds(udpHello(m, 'c', '192.0.2.3', 1))).toEqual(['sendControl', 'sessionDown']);
    expect(controls[2]!.state).toBe('closed');
    expect(m.sessionCount).toBe(2);
    expect(m.counters.maxConnectionRefusals).toBe(1);
    m.receiveDatagram(Buffer.from([0x20, 1, 2, 3]), '192.0.2.4', 1, true, now);
    m.receiveDatagram(Buffer.from([0x48, 0, 0, 7, 1, 2, 3, 4]), '192.0.2.4', 1, true, now);
    expect(m.counters).toMatchObject({ garbageDrops: 1, noSessionDataDrops: 1, sessionsCreated: 3, authRefusals: 0 });
  });

  it('a client whose address changes floats once its packet authenticates, and replies follow it', () => {
    const m = manager();
    udpHello(m, 'bob', '192.0.2.20', 6000);
    const dc = clientChannel('bob', 0);
    // a forged packet with bob's peer-id from elsewhere does not move him
    const forged = Buffer.from(seal(clientChannel('mallory', 0), ipv4('10.8.0.2', '10.2.0.5')));
    expect(m.receiveDatagram(forged, '198.51.100.9', 7000, false, now)).toHaveLength(0);
    expect(m.status()[0]!.realAddress).toBe('192.0.2.20:6000');
    // the real bob from a new address (NAT rebinding)
    const moved = seal(dc, ipv4('10.8.0.2', '10.2.0.5'));
    const replay = Buffer.from(moved); // decrypt works in place: keep the wire bytes
    const acts = m.receiveDatagram(moved, '198.51.100.7', 7001, false, now);
    expect(kinds(acts)).toEqual(['writeToTun']);
    expect(m.status()[0]!.realAddress).toBe('198.51.100.7:7001');
    const p = ipv4('10.2.0.5', '10.8.0.2');
    routes.sinks.get('10.8.0.2/32')!.push(p, 0, p.length);
    expect(transports.get(0)!.sent.at(-1)!.to).toBe('198.51.100.7:7001');
    // a replay of that packet from the old address does not move him back
    expect(m.receiveDatagram(replay, '192.0.2.20', 6000, false, now)).toHaveLength(0);
    expect(m.status()[0]!.realAddress).toBe('198.51.100.7:7001');
    expect(m.status()[0]!.drops).toMatchObject({ badTag: 1, replay: 1 });
  });

  it("a reconnect by the same user replaces the old session and keeps the user's address", () => {
    const m = manager();
    udpHello(m, 'carol', '192.0.2.30', 1000);
    now += 1000;
    const acts = udpHello(m, 'carol', '192.0.2.31', 1001, Buffer.alloc(8, 2));
    expect(kinds(acts)).toEqual(['sendControl', 'sessionDown', 'sessionUp']);
    expect(acts[1]).toMatchObject({ peerId: 0, reason: 'replaced by a new connection of the same user' });
    expect(acts[2]).toMatchObject({ peerId: 1, address: '10.8.0.2' });
    expect(m.counters.replacedSessions).toBe(1);
    expect(m.status().map((s) => [s.realAddress, s.virtualAddress])).toEqual([['192.0.2.31:1001', '10.8.0.2']]);
    // the old client is told to stop (not to reconnect: it would replace the new session in turn)
    expect(controls[0]!.texts).toEqual(['HALT,replaced by a new connection of the same user']);
    expect(controls[0]!.state).not.toBe('closed');
    now += DISCONNECT_LINGER_MS;
    m.tick(now);
    expect(controls[0]!.state).toBe('closed');
  });

  it('a new session from the addr:port of a live one replaces it only once it authenticates', () => {
    const m = manager();
    udpHello(m, 'dave', '192.0.2.40', 1000);
    const dc = clientChannel('dave', 0);
    // a reset and echo with a new session id from the same addr:port: half-open next to the live one
    udpHello(m, 'dave', '192.0.2.40', 1000, Buffer.alloc(8, 9), 'wait');
    expect(controls).toHaveLength(2);
    expect(m.sessionCount).toBe(2);
    expect(m.halfOpenSessions).toBe(1);
    expect(controls[0]!.state).toBe('established');
    // the live session still carries traffic
    expect(kinds(m.receiveDatagram(seal(dc, ipv4('10.8.0.2', '10.2.0.5')), '192.0.2.40', 1000, false, now))).toEqual(['writeToTun']);
    // a bare hard reset (spoofable) changes nothing
    m.receiveDatagram(reset(Buffer.alloc(8, 7)), '192.0.2.40', 1000, true, now);
    expect(m.sessionCount).toBe(2);
    const liveBytesIn = m.status().find((s) => s.virtualAddress === '10.8.0.2')!.bytesIn;
    expect(liveBytesIn).toBeGreaterThan(0);
    // the new one authenticates: now it replaces the old one
    const auth = encodeControlPacket({ opcode: 4, keyId: 0, sessionId: Buffer.alloc(8, 9), ack: { ids: [], remoteSessionId: null }, messageId: 2, payload: Buffer.from('auth') });
    const acts = m.receiveDatagram(auth, '192.0.2.40', 1000, true, now);
    expect(kinds(acts)).toEqual(['sessionDown', 'sessionUp']);
    expect(acts[0]).toMatchObject({ peerId: 0, reason: 'client started a new session' });
    expect(controls[0]!.state).toBe('closed');
    expect(m.sessionCount).toBe(1);
    expect(m.halfOpenSessions).toBe(0);
    expect(m.counters.sessionsClosed).toBe(1);
    // the closed session's bytes stay in the server's totals
    expect(m.counters.closedBytesIn).toBe(liveBytesIn);
  });

  it('a half-open session that does not authenticate in time is closed; the live one is untouched', () => {
    const m = manager({ limits: { handshakeTimeoutSec: 5 } });
    udpHello(m, 'ivy', '192.0.2.41', 1000);
    udpHello(m, 'ivy', '192.0.2.41', 1000, Buffer.alloc(8, 9), 'wait');
    expect(m.nextDeadline()).toBeLessThanOrEqual(T0 + 5_000);
    now = T0 + 4_999;
    m.tick(now);
    expect(m.sessionCount).toBe(2);
    now = T0 + 5_000;
    const acts = m.tick(now);
    expect(kinds(acts)).toContain('sessionDown');
    expect(m.sessionCount).toBe(1);
    expect(m.status()[0]).toMatchObject({ user: 'ivy', virtualAddress: '10.8.0.2' });
    expect(m.counters.halfOpenTimeouts).toBe(1);
  });

  it('pings after pingSec of silence; a silent client expires after twice ping-restart and frees its lease', () => {
    const m = manager();
    udpHello(m, 'erin', '192.0.2.50', 1000);
    const dc = clientChannel('erin', 0);
    const tr = transports.get(0)!;
    now += 10_000;
    m.tick(now);
    expect(tr.sent).toHaveLength(1);
    expect(dc.decrypt(tr.sent[0]!.pkt, 0, tr.sent[0]!.pkt.length, now)).toBe(DATA_PING);
    // the expiry is the next deadline (twice the pushed ping-restart after the last packet in)
    expect(m.nextDeadline()).toBeLessThanOrEqual(T0 + 120_000 + 1);
    now = T0 + 120_000;
    expect(kinds(m.tick(now))).not.toContain('sessionDown');
    now += 1;
    const acts = m.tick(now);
    expect(kinds(acts)).toContain('sessionDown');
    expect(m.sessionCount).toBe(0);
    expect(routes.sinks.size).toBe(0);
    expect(pool.stats().online).toBe(0);
    expect(m.nextDeadline()).toBe(Infinity);
  });

  it('asks the control channel to renegotiate when the send packet-id nears its limit', () => {
    nextPid = PACKET_ID_RENEG_THRESHOLD - 1;
    const m = manager();
    udpHello(m, 'frank', '192.0.2.60', 1000);
    m.tick(now);
    expect(controls[0]!.renegotiations).toBe(0);
    const p = ipv4('10.2.0.5', '10.8.0.2');
    routes.sinks.get('10.8.0.2/32')!.push(p, 0, p.length);
    m.tick(now);
    expect(controls[0]!.renegotiations).toBe(1);
  });

  it('actions raised outside a call (asynchronous TLS) go to onAsyncActions', () => {
    const m = manager();
    udpHello(m, 'gina', '192.0.2.70', 1000);
    controls[0]!.emit({ kind: 'send', packet: Buffer.from([0x20]) });
    expect(asyncActions).toHaveLength(1);
    expect(asyncActions[0]).toMatchObject({ kind: 'sendControl', to: { address: '192.0.2.70', port: 1000 } });
    controls[0]!.close('TLS error');
    expect(kinds(asyncActions)).toEqual(['sendControl', 'sessionDown']);
  });

  it('TCP: a first frame that is not a hard reset closes the connection; EXIT closes the session and its connection', () => {
    const m = manager();
    const bad = Buffer.from([0x20, 0, 0]);
    expect(m.receiveFrame(1, '192.0.2.80', 4000, bad, 0, bad.length, now)).toEqual([{ kind: 'closeConnection', conn: 1, abort: true }]);
    const h = hello('hank');
    expect(kinds(m.receiveFrame(2, '192.0.2.81', 4001, h, 0, h.length, now))).toEqual(['sendControl', 'sessionUp']);
    const exit = Buffer.concat([Buffer.from([0x20]), Buffer.from('EXIT')]);
    const acts = m.receiveFrame(2, '192.0.2.81', 4001, exit, 0, exit.length, now);
    expect(acts).toContainEqual({ kind: 'closeConnection', conn: 2, abort: false });
    // frames still in flight on the closing connection are ignored, not taken for a new session
    expect(m.receiveFrame(2, '192.0.2.81', 4001, h, 0, h.length, now)).toHaveLength(0);
    expect(m.connectionClosed(2, now)).toHaveLength(0);
    expect(m.sessionCount).toBe(0);
  });

  it('stateless start: spoofed hard resets create nothing and are answered once, never larger than the request', () => {
    const m = manager({ limits: { resetRepliesPerSec: 1000 } });
    let replies = 0;
    for (let i = 0; i < 2000; i++) {
      const sid = randomBytes(8);
      sid[0] |= 1;
      const req = reset(sid);
      const acts = m.receiveDatagram(req, `198.51.100.${i % 200}`, 1024 + i, true, now);
      for (const a of acts) {
        if (a.kind !== 'sendControl') throw new Error(`unexpected ${a.kind}`);
        expect(a.packet.length).toBeLessThanOrEqual(req.length);
        expect(a.packet[0]).toBe(8 << 3); // P_CONTROL_HARD_RESET_SERVER_V2
        replies++;
      }
      if (i % 500 === 0) now += 1000;
    }
    expect(replies).toBe(2000);
    expect(m.sessionCount).toBe(0);
    expect(m.halfOpenSessions).toBe(0);
    expect(controls).toHaveLength(0);
    expect(m.nextDeadline()).toBe(Infinity);
    now += 10_000;
    expect(m.tick(now)).toHaveLength(0); // nothing is retransmitted
  });

  it('stateless start: replies are rate limited; a reset with room for it gets the ACK of message 0', () => {
    const m = manager({ limits: { resetRepliesPerSec: 3 } });
    for (let i = 0; i < 5; i++) m.receiveDatagram(reset(Buffer.alloc(8, i + 1)), '192.0.2.1', 1000 + i, true, now);
    expect(m.counters).toMatchObject({ resetReplies: 3, resetRateDrops: 2 });
    now += 1000;
    // a 2.6 client's early-negotiation TLVs (EARLY_NEG_FLAGS, then an unknown type) make the reset 26 bytes
    const tlvs = Buffer.from([0, 1, 0, 2, 0, 1, 0x0f, 0, 0, 2, 0xaa, 0xbb]);
    const req = reset(Buffer.alloc(8, 1), tlvs);
    const a = m.receiveDatagram(req, '192.0.2.1', 2000, true, now)[0]!;
    if (a.kind !== 'sendControl') throw new Error('no reply');
    const p = decodeControlPacket(a.packet);
    if (p instanceof ParseError) throw p;
    expect(p).toMatchObject({ opcode: 8, messageId: 0, ack: { ids: [0], remoteSessionId: Buffer.alloc(8, 1) } });
    // malformed TLVs: no answer
    expect(m.receiveDatagram(reset(Buffer.alloc(8, 2), Buffer.from([0, 1, 0, 9])), '192.0.2.1', 2001, true, now)).toHaveLength(0);
  });

  it('stateless start: only an echo of the right server session id, from the same source, in time, creates a session', () => {
    const secret = Buffer.alloc(32, 5);
    const m = manager({}, secret);
    const sid = Buffer.alloc(8, 3);
    const r = m.receiveDatagram(reset(sid), '192.0.2.9', 4000, true, now)[0]!;
    if (r.kind !== 'sendControl') throw new Error('no reply');
    const serverSid = Buffer.from(r.packet.subarray(1, 9));
    // the same id from another address or port, a guessed id, an ACK of later messages: dropped
    expect(m.receiveDatagram(echo(sid, serverSid, 'hello:x'), '192.0.2.10', 4000, true, now)).toHaveLength(0);
    expect(m.receiveDatagram(echo(sid, serverSid, 'hello:x'), '192.0.2.9', 4001, true, now)).toHaveLength(0);
    expect(m.receiveDatagram(echo(sid, Buffer.alloc(8, 1), 'hello:x'), '192.0.2.9', 4000, true, now)).toHaveLength(0);
    expect(m.receiveDatagram(echo(sid, serverSid, 'hello:x', [5]), '192.0.2.9', 4000, true, now)).toHaveLength(0);
    expect(m.counters.badEchoDrops).toBe(3);
    expect(m.sessionCount).toBe(0);
    // the client may piggy-back its ACK on the retransmission of its reset: that is an echo too
    const m2 = manager({}, secret);
    const again = encodeControlPacket({ opcode: 7, keyId: 0, sessionId: sid, ack: { ids: [0], remoteSessionId: serverSid }, messageId: 0, payload: Buffer.alloc(0) });
    m2.receiveDatagram(again, '192.0.2.9', 4000, true, now);
    expect(m2.sessionCount).toBe(1);
    expect(m2.counters.sessionsCreated).toBe(1);
    // two slots later the id is stale
    const late = manager({}, secret);
    now += 2 * SID_SLOT_MS + 1;
    expect(late.receiveDatagram(echo(sid, serverSid, 'hello:x'), '192.0.2.9', 4000, true, now)).toHaveLength(0);
    now -= SID_SLOT_MS; // the previous slot is still fine
    expect(kinds(late.receiveDatagram(echo(sid, serverSid, 'hello:x'), '192.0.2.9', 4000, true, now))).toEqual(['sendControl', 'sessionUp']);
  });

  it('half-open sessions are capped per source address and in total', () => {
    const m = manager({ maxConnections: 100, clientCidr: '10.8.0.0/24', limits: { maxHalfOpen: 5, maxHalfOpenPerSource: 2 } });
    for (let i = 0; i < 3; i++) udpHello(m, `u${i}`, '203.0.113.1', 1000 + i, Buffer.alloc(8, i + 1), 'wait');
    expect(m.halfOpenSessions).toBe(2);
    for (let i = 0; i < 5; i++) udpHello(m, `v${i}`, `203.0.113.${10 + i}`, 1000, Buffer.alloc(8, i + 1), 'wait');
    expect(m.halfOpenSessions).toBe(5);
    expect(m.counters.halfOpenRefusals).toBe(3);
    // an authenticated client is not half-open, so it does not count
    expect(kinds(udpHello(m, 'w', '203.0.113.99', 1000))).toEqual([]); // still refused: the cap is full
    now += 20_000;
    m.tick(now);
    expect(m.halfOpenSessions).toBe(0);
    expect(kinds(udpHello(m, 'w', '203.0.113.99', 1000))).toEqual(['sendControl', 'sessionUp']);
    expect(m.halfOpenSessions).toBe(0);
  });

  it('TCP: connections are capped in total and per source, and closed without a valid first frame in time', () => {
    const m = manager({ limits: { maxTcpConnections: 3, maxTcpPerSource: 2, tcpFirstFrameTimeoutSec: 10 } });
    expect(m.connectionOpened(1, '192.0.2.1', 1, now)).toHaveLength(0);
    expect(m.connectionOpened(2, '192.0.2.1', 2, now)).toHaveLength(0);
    expect(m.connectionOpened(3, '192.0.2.1', 3, now)).toEqual([{ kind: 'closeConnection', conn: 3, abort: true }]);
    expect(m.connectionOpened(4, '192.0.2.2', 1, now)).toHaveLength(0);
    expect(m.connectionOpened(5, '192.0.2.3', 1, now)).toEqual([{ kind: 'closeConnection', conn: 5, abort: true }]);
    expect(m.counters.tcpRefusals).toBe(2);
    // connection 4 sends its hard reset; 1 and 2 stay silent
    const h = hello('tina');
    expect(kinds(m.receiveFrame(4, '192.0.2.2', 1, h, 0, h.length, now))).toEqual(['sendControl', 'sessionUp']);
    expect(m.nextDeadline()).toBeLessThanOrEqual(T0 + 10_000);
    now = T0 + 10_000;
    const acts = m.tick(now);
    expect(acts.filter((a) => a.kind === 'closeConnection')).toEqual([
      { kind: 'closeConnection', conn: 1, abort: true },
      { kind: 'closeConnection', conn: 2, abort: true },
    ]);
    expect(m.counters.tcpFirstFrameTimeouts).toBe(2);
    expect(m.tcpConnections).toBe(1);
    expect(m.sessionCount).toBe(1);
    // the shell reports the closes; room again for the source
    m.connectionClosed(1, now);
    m.connectionClosed(2, now);
    expect(m.connectionOpened(6, '192.0.2.1', 9, now)).toHaveLength(0);
  });

  it('an operator disconnects a client by id or user: RESTART or HALT sent, lease and route gone at once, control channel ends after the linger', () => {
    const m = manager();
    udpHello(m, 'alice', '192.0.2.10', 5000);
    udpHello(m, 'bob', '192.0.2.11', 5000, Buffer.alloc(8, 2));
    const [a, b] = m.status();
    expect(a!.id).toMatch(/^s\d+$/);
    expect(b!.id).not.toBe(a!.id);
    expect(m.clientOf(a!.id)).toEqual({ id: a!.id, user: 'alice' });
    expect(m.clientOf('bob')).toEqual({ id: b!.id, user: 'bob' });
    expect(m.clientOf('nobody')).toBeNull();
    expect(() => m.disconnect('nobody', 'RESTART', now)).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));

    const acts = m.disconnect(a!.id, 'RESTART', now);
    expect(acts).toEqual([{ kind: 'sessionDown', peerId: 0, user: 'alice', reason: 'disconnected by the operator' }]);
    expect(controls[0]!.texts).toEqual(['RESTART']);
    // gone from status, its route and lease released; its control channel still open to deliver RESTART
    expect(m.status().map((s) => s.user)).toEqual(['bob']);
    expect([...routes.sinks.keys()]).toEqual(['10.8.0.3/32']);
    expect(pool.leaseFor('alice')).toMatchObject({ address: '10.8.0.2', online: false });
    expect(pool.stats()).toMatchObject({ online: 1, offline: 1 });
    expect(controls[0]!.state).not.toBe('closed');
    // its data no longer reaches the VPC
    const dc = clientChannel('alice', 0);
    expect(m.receiveDatagram(seal(dc, ipv4('10.8.0.2', '10.2.0.5')), '192.0.2.10', 5000, false, now)).toHaveLength(0);
    // the linger: the control channel is ticked (retransmits), then closed
    expect(m.nextDeadline()).toBeLessThanOrEqual(now + DISCONNECT_LINGER_MS);
    controls[0]!.deadline = now + 400; // a retransmit due
    now += 500;
    m.tick(now);
    expect(controls[0]!.ticks).toBeGreaterThan(0);
    expect(controls[0]!.state).not.toBe('closed');
    now += DISCONNECT_LINGER_MS;
    m.tick(now);
    expect(controls[0]!.state).toBe('closed');
    expect(m.counters.sessionsClosed).toBe(1);

    // by user name, with HALT
    m.disconnect('bob', 'HALT', now);
    expect(controls[1]!.texts).toEqual(['HALT']);
    expect(m.status()).toEqual([]);
    // a new session of the same user gets a new id
    udpHello(m, 'bob', '192.0.2.11', 5001, Buffer.alloc(8, 3));
    expect(m.status()[0]!.id).not.toBe(b!.id);
  });

  it('a disconnected TCP client: the connection ends only after the linger (the message is written first)', () => {
    const m = manager();
    m.connectionOpened(2, '192.0.2.81', 4001, now);
    const h = hello('dave');
    m.receiveFrame(2, '192.0.2.81', 4001, h, 0, h.length, now);
    const acts = m.disconnect('dave', 'HALT', now);
    expect(kinds(acts)).toEqual(['sessionDown']);
    now += DISCONNECT_LINGER_MS;
    expect(m.tick(now)).toContainEqual({ kind: 'closeConnection', conn: 2, abort: false });
    // server shutdown during a linger ends it too
    m.connectionOpened(3, '192.0.2.82', 4002, now);
    const h2 = hello('erin', Buffer.alloc(8, 4));
    m.receiveFrame(3, '192.0.2.82', 4002, h2, 0, h2.length, now);
    m.disconnect('erin', 'RESTART', now);
    expect(m.closeAll('server shutdown', now)).toContainEqual({ kind: 'closeConnection', conn: 3, abort: false });
  });
});

describe('SslSessionManager: sessions per user, admission, origins', () => {
  const sid = (n: number) => Buffer.alloc(8, n);

  it('sessionsPerUser 2 (replace): two sessions with their own addresses; a third replaces the oldest, which is told HALT', () => {
    const m = manager({ sessionsPerUser: 2 });
    udpHello(m, 'alice', '192.0.2.10', 5000, sid(1));
    udpHello(m, 'alice', '192.0.2.11', 5000, sid(2));
    expect(m.status().map((s) => [s.user, s.virtualAddress])).toEqual([['alice', '10.8.0.2'], ['alice', '10.8.0.3']]);
    expect(pool.leaseFor('alice#2')).toMatchObject({ address: '10.8.0.3', online: true });
    now += 1000;
    const acts = udpHello(m, 'alice', '192.0.2.12', 5000, sid(3));
    expect(kinds(acts)).toEqual(['sendControl', 'sessionDown', 'sessionUp']);
    expect(acts[1]).toMatchObject({ peerId: 0, reason: 'replaced by a new connection of the same user' });
    // the new session takes the freed first lease (the user's own address)
    expect(acts[2]).toMatchObject({ peerId: 2, address: '10.8.0.2' });
    expect(controls[0]!.texts).toEqual(['HALT,replaced by a new connection of the same user']);
    expect(controls[1]!.texts).toEqual([]);
    expect(m.counters.replacedSessions).toBe(1);
    expect(m.onlineUsers()).toEqual(['alice']);
  });

  it('onExtraSession refuse: the new client gets AUTH_FAILED with the reason, the old session stays', () => {
    const m = manager({ onExtraSession: 'refuse' });
    udpHello(m, 'bob', '192.0.2.20', 5000, sid(1));
    const acts = udpHello(m, 'bob', '192.0.2.21', 5000, sid(2));
    expect(kinds(acts)).not.toContain('sessionUp');
    expect(controls[1]!.state).toBe('closed');
    expect(controls[1]!.rejectedWith).toBe('session limit reached: this user is connected already (1)');
    expect(m.counters.sessionLimitRefusals).toBe(1);
    expect(m.status().map((s) => [s.realAddress, s.virtualAddress])).toEqual([['192.0.2.20:5000', '10.8.0.2']]);
    expect(controls[0]!.texts).toEqual([]);
    expect(controls[0]!.rejectedWith).toBeNull();
  });

  it('admit refuses a user after authentication (disabled, not allowed here) with the reason; certificate users too', () => {
    const refused = new Set(['carol']);
    const m = manager({}, undefined, { admit: (user) => (refused.has(user) ? 'user disabled' : null) });
    const acts = udpHello(m, 'carol', '192.0.2.30', 5000, sid(1));
    expect(kinds(acts)).not.toContain('sessionUp');
    expect(controls[0]!.rejectedWith).toBe('user disabled');
    expect(m.counters.authRefusals).toBe(1);
    expect(pool.leaseFor('carol')).toBeUndefined();
    expect(kinds(udpHello(m, 'dave', '192.0.2.31', 5000, sid(2)))).toContain('sessionUp');
  });

  it('disconnectUser ends every session of the user (told HALT,<reason>), lease and route at once', () => {
    const m = manager({ sessionsPerUser: 3 });
    udpHello(m, 'erin', '192.0.2.40', 5000, sid(1));
    udpHello(m, 'erin', '192.0.2.41', 5000, sid(2));
    udpHello(m, 'frank', '192.0.2.42', 5000, sid(3));
    const r = m.disconnectUser('erin', 'HALT', 'user disabled', now);
    expect(r.count).toBe(2);
    expect(kinds(r.actions)).toEqual(['sessionDown', 'sessionDown']);
    expect(controls[0]!.texts).toEqual(['HALT,user disabled']);
    expect(controls[1]!.texts).toEqual(['HALT,user disabled']);
    expect(m.status().map((s) => s.user)).toEqual(['frank']);
    expect([...routes.sinks.keys()]).toEqual(['10.8.0.4/32']);
    expect(m.disconnectUser('nobody', 'HALT', 'user removed', now).count).toBe(0);
  });

  it('packets to the TUN carry the session\'s origin; refreshOrigins asks again', () => {
    const origins = new Map([['gina', 7]]);
    const m = manager({}, undefined, { originOf: (u) => origins.get(u) ?? 0 });
    udpHello(m, 'gina', '192.0.2.50', 5000, sid(1));
    const dc = clientChannel('gina', 0);
    const out = m.receiveDatagram(seal(dc, ipv4('10.8.0.2', '10.2.0.5')), '192.0.2.50', 5000, false, now);
    expect(out[0]).toMatchObject({ kind: 'writeToTun', origin: 7 });
    origins.set('gina', 9);
    m.refreshOrigins();
    const out2 = m.receiveDatagram(seal(dc, ipv4('10.8.0.2', '10.2.0.5')), '192.0.2.50', 5000, false, now);
    expect(out2[0]).toMatchObject({ kind: 'writeToTun', origin: 9 });
  });
});
