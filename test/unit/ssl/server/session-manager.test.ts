// The SSL VPN session manager on its own: a fixed clock, no sockets, no timers. The control channel
// is a fake (hard reset = 0x38 || 8-byte session id || user name; P_CONTROL_V1 0x20 || text), the
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
import { SslSessionManager } from '../../../../src/ssl/server/session-manager.js';

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
    if (pkt[0] === 0x38) {
      this.user = pkt.subarray(9).toString();
      this.emit({ kind: 'send', packet: Buffer.from([0x40, this.peerId]) });
      this.state = 'authenticating';
      this.emit({ kind: 'authenticated', user: this.user, certCn: this.user, peerInfo: new Map(), clientOptions: '', cipher: 'AES-256-GCM' });
    } else if (pkt[0] === 0x20) {
      this.emit({ kind: 'control', text: pkt.subarray(1).toString() });
    }
  }
  tick(): void {}
  nextDeadline(): number {
    return Infinity;
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
  reject(reason: string): void {
    this.close(reason);
  }
  sendControlText(): void {}
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

function manager(over: Partial<SslServerConfig> = {}): SslSessionManager {
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
  });
}

function hello(user: string, sid = Buffer.alloc(8, 1)): Buffer {
  return Buffer.concat([Buffer.from([0x38]), sid, Buffer.from(user)]);
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
  it('admits a client: control answer to its address, lease, route, push; its IP packets come back as writeToTun', () => {
    const m = manager();
    // hard reset --> ; <-- control answer, client up
    const acts = m.receiveDatagram(hello('alice'), '192.0.2.10', 5000, true, now);
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

  it('maxConnections refuses further clients; garbage and data from unknown remotes make no session', () => {
    const m = manager({ maxConnections: 2 });
    m.receiveDatagram(hello('a'), '192.0.2.1', 1, true, now);
    m.receiveDatagram(hello('b'), '192.0.2.2', 1, true, now);
    expect(m.receiveDatagram(hello('c'), '192.0.2.3', 1, true, now)).toHaveLength(0);
    expect(m.sessionCount).toBe(2);
    expect(m.counters.maxConnectionRefusals).toBe(1);
    m.receiveDatagram(Buffer.from([0x20, 1, 2, 3]), '192.0.2.4', 1, true, now);
    m.receiveDatagram(Buffer.from([0x48, 0, 0, 7, 1, 2, 3, 4]), '192.0.2.4', 1, true, now);
    expect(m.counters).toMatchObject({ garbageDrops: 1, noSessionDataDrops: 1, sessionsCreated: 2 });
  });

  it('a client whose address changes floats once its packet authenticates, and replies follow it', () => {
    const m = manager();
    m.receiveDatagram(hello('bob'), '192.0.2.20', 6000, true, now);
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
    m.receiveDatagram(hello('carol'), '192.0.2.30', 1000, true, now);
    now += 1000;
    const acts = m.receiveDatagram(hello('carol', Buffer.alloc(8, 2)), '192.0.2.31', 1001, true, now);
    expect(kinds(acts)).toEqual(['sendControl', 'sessionDown', 'sessionUp']);
    expect(acts[1]).toMatchObject({ peerId: 0, reason: 'replaced by a new connection of the same user' });
    expect(acts[2]).toMatchObject({ peerId: 1, address: '10.8.0.2' });
    expect(m.counters.replacedSessions).toBe(1);
    expect(m.status().map((s) => [s.realAddress, s.virtualAddress])).toEqual([['192.0.2.31:1001', '10.8.0.2']]);
    expect(controls[0]!.state).toBe('closed');
  });

  it('a new hard reset with another session id from the same addr:port starts a fresh session', () => {
    const m = manager();
    m.receiveDatagram(hello('dave'), '192.0.2.40', 1000, true, now);
    m.receiveDatagram(hello('dave'), '192.0.2.40', 1000, true, now); // a retransmit: same session id
    expect(controls).toHaveLength(1);
    m.receiveDatagram(hello('dave', Buffer.alloc(8, 9)), '192.0.2.40', 1000, true, now);
    expect(controls).toHaveLength(2);
    expect(m.sessionCount).toBe(1);
    expect(m.counters.sessionsClosed).toBe(1);
  });

  it('pings after pingSec of silence; a silent client expires after twice ping-restart and frees its lease', () => {
    const m = manager();
    m.receiveDatagram(hello('erin'), '192.0.2.50', 1000, true, now);
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
    m.receiveDatagram(hello('frank'), '192.0.2.60', 1000, true, now);
    m.tick(now);
    expect(controls[0]!.renegotiations).toBe(0);
    const p = ipv4('10.2.0.5', '10.8.0.2');
    routes.sinks.get('10.8.0.2/32')!.push(p, 0, p.length);
    m.tick(now);
    expect(controls[0]!.renegotiations).toBe(1);
  });

  it('actions raised outside a call (asynchronous TLS) go to onAsyncActions', () => {
    const m = manager();
    m.receiveDatagram(hello('gina'), '192.0.2.70', 1000, true, now);
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
});
