import { afterEach, describe, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import { connect, type Socket as TcpSocket } from 'node:net';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  SslServer,
  sslServerConfigFrom,
  type ControlSession,
  type ControlSessionFactory,
  type PacketSink,
  type SslServerConfig,
  type TunnelHooks,
} from '../../../src/gateway/ssl-server.js';
import type { SslAction, PushParams } from '../../../src/ssl/session.js';
import { formatPrefix, type Prefix } from '../../../src/common/ip.js';
import { captureLogger } from '../../../src/common/log.js';
import { PING_MAGIC } from '../../../src/ssl/data/special.js';
import { POOL_EXHAUSTED } from '../../../src/gateway/pools.js';
import { DISCONNECT_LINGER_MS } from '../../../src/ssl/server/session-manager.js';
import { MemoryUdpNetwork, type MemoryUdp } from '../../../src/net/memory-udp.js';
import type { PacketBatch } from '../../../src/common/batch.js';
import { decodeControlPacket, encodeControlPacket } from '../../../src/ssl/wire/control-packet.js';
import { ParseError } from '../../../src/common/errors.js';

// ---- a fake control channel: over TCP hard reset = 0x38 || user name; over UDP the real stateless ----
// ---- start, then a P_CONTROL_V1 with "hello:USER"; P_CONTROL_V1 (0x20) carries text -------------------
const keyBlocks = new Map<string, Buffer>();
const initialPid = new Map<string, number>();
class FakeSession implements ControlSession {
  state = 'initial';
  renegotiations = 0;
  user = '';
  pushed: PushParams | null = null;
  rejected: string | null = null;
  constructor(
    private readonly peerId: number,
    private readonly emit: (a: SslAction) => void,
  ) {}
  receiveControl(pkt: Buffer): void {
    const d = pkt[0] === 0x20 ? decodeControlPacket(pkt) : null;
    const text = d && !(d instanceof ParseError) ? d.payload.toString() : null;
    if ((pkt[0] === 0x38 && this.state === 'initial') || text?.startsWith('hello:')) {
      this.user = text !== null ? text.slice(6) : pkt.subarray(1).toString();
      this.emit({ kind: 'send', packet: Buffer.from([0x40, 1, 2, 3]) });
      this.state = 'authenticating';
      this.emit({ kind: 'authenticated', user: this.user, certCn: this.user, peerInfo: new Map(), clientOptions: '', cipher: 'AES-256-GCM' } as SslAction);
    } else if (pkt[0] === 0x20 && text === null) {
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
    const kb = keyBlocks.get(this.user)!;
    this.emit({
      kind: 'keys', keyId: 0, cipher: 'AES-256-GCM', peerId: this.peerId, compress: 'none',
      decKey: kb.subarray(0, 64), decImplicitIv: kb.subarray(64, 72), encKey: kb.subarray(128, 192), encImplicitIv: kb.subarray(192, 200),
      initialSendPacketId: initialPid.get(this.user) ?? 0,
    } as SslAction);
  }
  renegotiate(): boolean {
    this.renegotiations++;
    return true;
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
const sessions: FakeSession[] = [];
const factory: ControlSessionFactory = {
  isInitialPacket: (p) => p[0] === 0x38,
  create: (_o, peerId, onAction) => {
    const s = new FakeSession(peerId, onAction);
    sessions.push(s);
    return s;
  },
};

// ---- the client side of the data channel, written from OpenVPN's AEAD packet layout (crypto.c) ----
function clientSeal(kb: Buffer, peerId: number, pid: number, payload: Buffer): Buffer {
  const hdr = Buffer.alloc(8);
  hdr[0] = 0x48;
  hdr.writeUIntBE(peerId, 1, 3);
  hdr.writeUInt32BE(pid, 4);
  const c = createCipheriv('aes-256-gcm', kb.subarray(0, 32), Buffer.concat([hdr.subarray(4), kb.subarray(64, 72)]), { authTagLength: 16 });
  c.setAAD(hdr);
  const ct = Buffer.concat([c.update(payload), c.final()]);
  return Buffer.concat([hdr, c.getAuthTag(), ct]);
}
function clientOpen(kb: Buffer, pkt: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', kb.subarray(128, 160), Buffer.concat([pkt.subarray(4, 8), kb.subarray(192, 200)]), { authTagLength: 16 });
  d.setAAD(pkt.subarray(0, 8));
  d.setAuthTag(pkt.subarray(8, 24));
  return Buffer.concat([d.update(pkt.subarray(24)), d.final()]);
}
function ipv4(src: string, dst: string, payloadLen = 20): Buffer {
  const p = Buffer.alloc(20 + payloadLen);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  src.split('.').forEach((o, i) => (p[12 + i] = Number(o)));
  dst.split('.').forEach((o, i) => (p[16 + i] = Number(o)));
  randomBytes(payloadLen).copy(p, 20);
  return p;
}

class FakeTunnel implements TunnelHooks {
  readonly written: Buffer[] = [];
  /** the origin each written packet carried */
  readonly origins: (number | undefined)[] = [];
  readonly sinks = new Map<string, PacketSink>();
  writeToTun(buf: Buffer, off: number, len: number, origin?: number): void {
    this.written.push(Buffer.from(buf.subarray(off, off + len)));
    this.origins.push(origin);
  }
  addSinkRoute(p: Prefix, sink: PacketSink): void {
    this.sinks.set(formatPrefix(p), sink);
  }
  removeSinkRoute(p: Prefix): void {
    this.sinks.delete(formatPrefix(p));
  }
}

function config(over: Partial<SslServerConfig> = {}): SslServerConfig {
  return {
    name: 'p2c', protocols: ['udp', 'tcp'], port: 0, listen: '127.0.0.1', clientCidr: '10.8.0.0/24',
    localSubnets: ['10.2.0.0/16'], dnsServers: ['10.2.0.53'], dataCiphers: ['AES-256-GCM'],
    identity: { cert: '', key: '', clientCa: '' }, maxConnections: 10, clientToClient: false, renegSec: 0, ...over,
  };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

class UdpClient {
  readonly got: Buffer[] = [];
  readonly sock: Socket = createSocket('udp4');
  private constructor(readonly user: string, readonly port: number) {}
  static async open(user: string, serverPort: number): Promise<UdpClient> {
    const c = new UdpClient(user, serverPort);
    keyBlocks.set(user, keyBlocks.get(user) ?? randomBytes(256));
    c.sock.on('message', (m) => c.got.push(m));
    await new Promise<void>((r) => c.sock.bind(0, '127.0.0.1', () => r()));
    opened.push(c);
    return c;
  }
  get kb(): Buffer {
    return keyBlocks.get(this.user)!;
  }
  send(b: Buffer): void {
    this.sock.send(b, this.port, '127.0.0.1');
  }
  sid = clientSid();
  /** The stateless start: hard reset -->, <-- server session id (taken off `got`), echo "hello:USER" -->. */
  async hello(user = this.user): Promise<void> {
    const n = this.got.length;
    this.send(resetPacket(this.sid));
    await until(() => this.got.length > n);
    const reply = this.got.splice(n, 1)[0]!;
    this.send(echoPacket(this.sid, reply.subarray(1, 9), `hello:${user}`));
  }
}
const opened: UdpClient[] = [];

function clientSid(): Buffer {
  const b = randomBytes(8);
  b[0] |= 1;
  return b;
}
function resetPacket(sid: Buffer): Buffer {
  return encodeControlPacket({ opcode: 7, keyId: 0, sessionId: sid, ack: { ids: [], remoteSessionId: null }, messageId: 0, payload: Buffer.alloc(0) });
}
function echoPacket(sid: Buffer, serverSid: Buffer, text: string): Buffer {
  return encodeControlPacket({ opcode: 4, keyId: 0, sessionId: sid, ack: { ids: [0], remoteSessionId: Buffer.from(serverSid) }, messageId: 1, payload: Buffer.from(text) });
}
let server: SslServer | null = null;
let now = 1_000_000;

async function startServer(over: Partial<SslServerConfig> = {}, staticAddresses?: ReadonlyMap<string, string>) {
  const tunnel = new FakeTunnel();
  const log = captureLogger();
  server = new SslServer({ config: config(over), log, tunnel, sessions: factory, clock: () => now, timer: false, staticAddresses });
  await server.start();
  return { server, tunnel, log };
}

afterEach(async () => {
  for (const c of opened.splice(0)) c.sock.close();
  await server?.stop();
  server = null;
  sessions.length = 0;
});

describe('SslServer over UDP (fake control channel, real sockets on loopback)', () => {
  it('a client connects, gets .2 pushed, and IP packets flow both ways through the data channel', async () => {
    const { server, tunnel } = await startServer();
    const c = await UdpClient.open('alice', server.udpPort);
    await c.hello();
    await until(() => c.got.length >= 1);
    expect(c.got[0]![0]).toBe(0x40);
    const fs = sessions[0]!;
    expect(fs.pushed).toMatchObject({
      ifconfig: { address: '10.8.0.2', netmask: '255.255.255.0' },
      routeGateway: '10.8.0.1',
      routes: [{ network: '10.2.0.0', netmask: '255.255.0.0' }],
      dns: ['10.2.0.53'],
      pingSec: 10,
      pingRestartSec: 60,
    });
    // uplink
    const up = ipv4('10.8.0.2', '10.2.0.10', 100);
    c.send(clientSeal(c.kb, 0, 1, up));
    await until(() => tunnel.written.length === 1);
    expect(tunnel.written[0]!.equals(up)).toBe(true);
    // the server's own tunnel address (.1) is reached through the TUN too, not treated as a client
    const toGw = ipv4('10.8.0.2', '10.8.0.1', 8);
    c.send(clientSeal(c.kb, 0, 2, toGw));
    await until(() => tunnel.written.length === 2);
    expect(tunnel.written[1]!.equals(toGw)).toBe(true);
    // downlink through the sink the data plane would call
    const down = ipv4('10.2.0.10', '10.8.0.2', 300);
    tunnel.sinks.get('10.8.0.2/32')!.push(down, 0, down.length);
    await until(() => c.got.length === 2);
    expect(c.got[1]![0]).toBe(0x48);
    expect(clientOpen(c.kb, c.got[1]!).equals(down)).toBe(true);
    const [st] = server.status();
    expect(st).toMatchObject({ user: 'alice', protocol: 'udp', virtualAddress: '10.8.0.2', bytesIn: 148, bytesOut: 320, packetsIn: 2, packetsOut: 1, cipher: 'AES-256-GCM' });
    expect(st!.realAddress).toBe(`127.0.0.1:${c.sock.address().port}`);
    expect(server.summary()).toMatchObject({ name: 'p2c', state: 'LISTENING', protocols: ['udp', 'tcp'], clients: 1, authFailures: 0, bytesIn: 148, bytesOut: 320 });
  });

  it('a session\'s packets carry its user\'s policy origin once authenticated, and the new one after refreshOrigins', async () => {
    const tunnel = new FakeTunnel();
    const originOf = new Map([['alice', 7]]);
    server = new SslServer({
      config: config(), log: captureLogger(), tunnel, sessions: factory, clock: () => now, timer: false, originOf: (u) => originOf.get(u) ?? 0,
    });
    await server.start();
    const c = await UdpClient.open('alice', server.udpPort);
    await c.hello();
    await until(() => c.got.length >= 1);
    c.send(clientSeal(c.kb, 0, 1, ipv4('10.8.0.2', '10.2.0.10', 10)));
    await until(() => tunnel.written.length === 1);
    expect(tunnel.origins).toEqual([7]);
    originOf.set('alice', 8); // alice's groups changed
    server.refreshOrigins();
    c.send(clientSeal(c.kb, 0, 2, ipv4('10.8.0.2', '10.2.0.10', 10)));
    await until(() => tunnel.written.length === 2);
    expect(tunnel.origins).toEqual([7, 8]);
  });

  it('garbage on the port makes no session and is counted; data from unknown remotes too', async () => {
    const { server, log } = await startServer();
    const c = await UdpClient.open('mallory', server.udpPort);
    c.send(Buffer.from('GET / HTTP/1.0\r\n\r\n'));
    c.send(clientSeal(c.kb, 0, 1, ipv4('10.8.0.2', '10.2.0.1')));
    await until(() => server.counters.garbageDrops === 1 && server.counters.noSessionDataDrops === 1);
    expect(server.sessionCount).toBe(0);
    expect(log.lines.some((l) => l.level === 'debug' && /not an initial packet/.test(l.msg ?? ''))).toBe(true);
  });

  it('spoofed source addresses and IPv6 are dropped and counted; tampered packets count as drops in status', async () => {
    const { server, tunnel } = await startServer();
    const c = await UdpClient.open('alice', server.udpPort);
    await c.hello();
    await until(() => sessions[0]?.state === 'established');
    c.send(clientSeal(c.kb, 0, 1, ipv4('10.8.0.9', '10.2.0.10')));
    const v6 = randomBytes(48);
    v6[0] = 0x60;
    c.send(clientSeal(c.kb, 0, 2, v6));
    const bad = clientSeal(c.kb, 0, 3, ipv4('10.8.0.2', '10.2.0.10'));
    bad[30] ^= 1;
    c.send(bad);
    c.send(clientSeal(c.kb, 0, 2, ipv4('10.8.0.2', '10.2.0.10'))); // replay of id 2
    await until(() => server.counters.badSourceDrops === 1 && server.counters.ipv6Drops === 1 && Object.keys(server.status()[0]!.drops).length === 2);
    expect(server.status()[0]!.drops).toEqual({ badTag: 1, replay: 1 });
    expect(tunnel.written).toHaveLength(0);
  });

  it('maxConnections refuses further clients once they authenticate, with the reason "server full"', async () => {
    const { server } = await startServer({ maxConnections: 1 });
    const a = await UdpClient.open('a', server.udpPort);
    const b = await UdpClient.open('b', server.udpPort);
    await a.hello();
    await until(() => server.sessionCount === 1);
    await b.hello();
    await until(() => server.counters.maxConnectionRefusals === 1 && server.sessionCount === 1);
    expect(sessions[1]!.rejected).toBe('server full');
    expect(server.status().map((s) => s.user)).toEqual(['a']);
  });

  it('a reconnect by the same user replaces the old session and keeps the address', async () => {
    const { server, tunnel } = await startServer();
    const a1 = await UdpClient.open('alice', server.udpPort);
    await a1.hello();
    await until(() => server.sessionCount === 1 && sessions[0]!.state === 'established');
    const a2 = await UdpClient.open('alice', server.udpPort);
    await a2.hello();
    await until(() => server.counters.replacedSessions === 1);
    const st = server.status();
    expect(st).toHaveLength(1);
    expect(st[0]).toMatchObject({ user: 'alice', virtualAddress: '10.8.0.2', realAddress: `127.0.0.1:${a2.sock.address().port}` });
    // the old session was told (HALT) and its control channel ends after the linger
    expect(sessions[0]!.state).not.toBe('closed');
    server.tick(now + DISCONNECT_LINGER_MS);
    expect(sessions[0]!.state).toBe('closed');
    expect(tunnel.sinks.has('10.8.0.2/32')).toBe(true);
  });

  it('static addresses: a user gets theirs; changed live, the session on the old one ends (RESTART) and the reconnect gets the new one', async () => {
    const { server, tunnel } = await startServer({}, new Map([['alice', '10.8.0.50']]));
    const a1 = await UdpClient.open('alice', server.udpPort);
    await a1.hello();
    await until(() => server.status().some((x) => x.virtualAddress === '10.8.0.50'));
    const b = await UdpClient.open('bob', server.udpPort);
    await b.hello();
    await until(() => server.status().some((x) => x.user === 'bob' && x.virtualAddress !== null));
    expect(server.status().find((x) => x.user === 'bob')!.virtualAddress).toBe('10.8.0.2');
    server.setStaticAddresses(new Map([['alice', '10.8.0.60']]));
    expect(server.onlineUsers()).toEqual(['bob']);
    expect(tunnel.sinks.has('10.8.0.50/32')).toBe(false);
    const a2 = await UdpClient.open('alice', server.udpPort);
    await a2.hello();
    await until(() => server.status().some((x) => x.user === 'alice' && x.virtualAddress === '10.8.0.60'));
    expect(server.endUserSessions('alice', 'HALT', 'user disabled')).toBe(1);
    expect(server.endUserSessions('alice', 'HALT', 'user disabled')).toBe(0);
  });

  it('client-to-client: dropped and counted when off, delivered when on', async () => {
    for (const c2c of [false, true]) {
      const { server, tunnel } = await startServer({ clientToClient: c2c });
      const a = await UdpClient.open(`a${c2c}`, server.udpPort);
      const b = await UdpClient.open(`b${c2c}`, server.udpPort);
      await a.hello();
      await until(() => server.sessionCount === 1 && sessions.at(-1)!.state === 'established');
      await b.hello();
      await until(() => server.sessionCount === 2 && sessions.at(-1)!.state === 'established');
      const pkt = ipv4('10.8.0.2', '10.8.0.3', 64);
      a.send(clientSeal(a.kb, 0, 1, pkt));
      if (c2c) {
        await until(() => b.got.length === 2);
        expect(clientOpen(b.kb, b.got[1]!).equals(pkt)).toBe(true);
      } else {
        await until(() => server.counters.clientToClientDrops === 1);
        expect(b.got).toHaveLength(1);
      }
      expect(tunnel.written).toHaveLength(0);
      for (const c of opened.splice(0)) c.sock.close();
      await server.stop();
      sessions.length = 0;
    }
    server = null;
  });

  it('pings after `ping` seconds of silence; a silent client expires after 2x ping-restart and frees its address', async () => {
    const { server, tunnel } = await startServer();
    const c = await UdpClient.open('alice', server.udpPort);
    await c.hello();
    await until(() => sessions[0]?.state === 'established');
    const t0 = now;
    server.tick(t0 + 5_000);
    server.tick(t0 + 10_000);
    await until(() => c.got.length === 2);
    expect(c.got[1]!.length).toBe(40);
    expect(clientOpen(c.kb, c.got[1]!).equals(PING_MAGIC)).toBe(true);
    server.tick(t0 + 119_000);
    expect(server.sessionCount).toBe(1);
    server.tick(t0 + 120_500);
    expect(server.sessionCount).toBe(0);
    expect(tunnel.sinks.size).toBe(0);
    expect(server.pool.stats()).toMatchObject({ online: 0, offline: 1 });
  });

  it('a new session from the same addr:port replaces the live one once it authenticates', async () => {
    const { server } = await startServer();
    const c = await UdpClient.open('restarter', server.udpPort);
    await c.hello();
    await until(() => sessions[0]?.state === 'established');
    c.send(resetPacket(c.sid)); // same session id: a retransmission, handled by the existing session
    await new Promise((r) => setTimeout(r, 30));
    expect(sessions).toHaveLength(1);
    keyBlocks.set('Restarter', randomBytes(256));
    c.sid = clientSid();
    await c.hello('Restarter');
    await until(() => sessions.length === 2 && sessions[0]!.state === 'closed');
    expect(server.sessionCount).toBe(1);
    expect(server.summary()).toMatchObject({ halfOpen: 0, counters: { resetReplies: 2 } });
  });

  it('a client whose address changes is matched by peer-id once its packet authenticates (float)', async () => {
    const { server, tunnel } = await startServer();
    const c = await UdpClient.open('roamer', server.udpPort);
    await c.hello();
    await until(() => sessions[0]?.state === 'established');
    const moved = await UdpClient.open('roamer', server.udpPort);
    const forged = clientSeal(randomBytes(256), 0, 1, ipv4('10.8.0.2', '10.2.0.10'));
    moved.send(forged); // wrong keys: no float
    await new Promise((r) => setTimeout(r, 30));
    expect(server.status()[0]!.realAddress).toBe(`127.0.0.1:${c.sock.address().port}`);
    const up = ipv4('10.8.0.2', '10.2.0.10');
    moved.send(clientSeal(c.kb, 0, 1, up));
    await until(() => tunnel.written.length === 1);
    expect(server.status()[0]!.realAddress).toBe(`127.0.0.1:${moved.sock.address().port}`);
    const down = ipv4('10.2.0.10', '10.8.0.2');
    tunnel.sinks.get('10.8.0.2/32')!.push(down, 0, down.length);
    await until(() => moved.got.length === 1);
    expect(clientOpen(c.kb, moved.got[0]!).equals(down)).toBe(true);
  });

  it('asks the control channel to renegotiate when the send packet-id nears its limit', async () => {
    initialPid.set('busy', 0xfeffffff);
    const { server, tunnel } = await startServer();
    const c = await UdpClient.open('busy', server.udpPort);
    await c.hello();
    await until(() => sessions[0]?.state === 'established');
    server.tick(now);
    expect(sessions[0]!.renegotiations).toBe(0);
    const down = ipv4('10.2.0.10', '10.8.0.2');
    tunnel.sinks.get('10.8.0.2/32')!.push(down, 0, down.length);
    server.tick(now + 1);
    expect(sessions[0]!.renegotiations).toBe(1);
  });

  it('pool exhaustion refuses with the reason', async () => {
    const { server } = await startServer({ clientCidr: '10.9.0.0/29' });
    const cs = await Promise.all(['u1', 'u2', 'u3', 'u4', 'u5', 'u6'].map((u) => UdpClient.open(u, server.udpPort)));
    for (const c of cs.slice(0, 5)) await c.hello();
    await until(() => sessions.length === 5 && sessions.every((s) => s.state === 'established'));
    await cs[5]!.hello();
    await until(() => server.counters.poolRefusals === 1);
    expect(sessions[5]!.rejected).toBe(POOL_EXHAUSTED);
    expect(server.sessionCount).toBe(5);
  });
});

describe('SslServer over a batch UdpBind (MemoryUdp; NativeUdp in the daemon)', () => {
  it('connects, routes both ways, batches downlink datagrams until the sink flushes, pings', async () => {
    const net = new MemoryUdpNetwork();
    const tunnel = new FakeTunnel();
    server = new SslServer({
      config: config({ protocols: ['udp'], listen: '192.0.2.2', port: 1194 }), log: captureLogger(), tunnel, sessions: factory,
      clock: () => now, timer: false, udpBind: (a, p) => net.bind(a, p),
    });
    await server.start();
    expect(server.udpPort).toBe(1194);
    keyBlocks.set('batchy', randomBytes(256));
    const kb = keyBlocks.get('batchy')!;
    const cli: MemoryUdp = net.bind('198.51.100.7', 5000);
    const got: Buffer[] = [];
    const batches: number[] = [];
    cli.start((b: PacketBatch) => {
      batches.push(b.count);
      for (let i = 0; i < b.count; i++) got.push(Buffer.from(b.packet(i)));
    });
    const sid = clientSid();
    cli.sendTo(resetPacket(sid), 4, '192.0.2.2', 1194);
    await until(() => got.length === 1);
    cli.sendTo(echoPacket(sid, got.shift()!.subarray(1, 9), 'hello:batchy'), 4, '192.0.2.2', 1194);
    await until(() => got.length === 1 && sessions[0]?.state === 'established');
    expect(server.status()[0]!.realAddress).toBe('198.51.100.7:5000');
    const up = ipv4('10.8.0.2', '10.2.0.10', 200);
    cli.sendTo(clientSeal(kb, 0, 1, up), 4, '192.0.2.2', 1194);
    await until(() => tunnel.written.length === 1);
    expect(tunnel.written[0]!.equals(up)).toBe(true);
    const sink = tunnel.sinks.get('10.8.0.2/32')!;
    const downs = [1, 2, 3].map((k) => ipv4('10.2.0.10', '10.8.0.2', 10 * k));
    for (const d of downs) sink.push(d, 0, d.length);
    sink.flush();
    await until(() => got.length === 4);
    expect(batches.at(-1)).toBe(3); // one batch send, delivered as one batch
    expect(got.slice(1).map((g) => clientOpen(kb, g))).toEqual(downs);
    server.tick(now + 10_000);
    await until(() => got.length === 5);
    expect(clientOpen(kb, got[4]!).equals(PING_MAGIC)).toBe(true);
    cli.close();
  });
});

describe('sslServerConfigFrom', () => {
  it('builds the frozen server config from a validated vpnServers entry, reading the PEM files', async () => {
    const { parseConfig } = await import('../../../src/gateway/config/index.js');
    const yaml = [
      'gateway: { name: gw1, dataDir: /tmp/x, publicAddresses: [192.0.2.2], vpcSubnets: [10.2.0.0/16], tun: { name: vpcgw0, mtu: 1400 } }',
      'vpnServers:',
      '  - { name: p2c, protocols: [udp, tcp], port: 1194, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], dnsServers: [10.2.0.53],',
      '      dataCiphers: [AES-256-GCM], auth: { type: cert }, serverCert: { cert: /pki/s.crt, key: /pki/s.key }, clientCa: /pki/ca.crt,',
      '      maxConnections: 5, clientToClient: true }',
    ].join('\n');
    const gc = parseConfig(yaml, 'test.yaml');
    const read = (p: string) => `PEM(${p})`;
    const c = sslServerConfigFrom(gc.vpnServers[0]!, read);
    expect(c).toMatchObject({
      name: 'p2c', protocols: ['udp', 'tcp'], port: 1194, listen: '0.0.0.0', clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'],
      dnsServers: ['10.2.0.53'], dataCiphers: ['AES-256-GCM'], maxConnections: 5, clientToClient: true, renegSec: 3600,
      identity: { cert: 'PEM(/pki/s.crt)', key: 'PEM(/pki/s.key)', clientCa: 'PEM(/pki/ca.crt)' },
    });
    expect(Object.isFrozen(c)).toBe(true);
  });
});

describe('SslServer over TCP', () => {
  it('frames split across chunks; EXIT closes the session; garbage first frames close the connection', async () => {
    const { server, tunnel } = await startServer({ protocols: ['tcp'] });
    keyBlocks.set('tcpuser', randomBytes(256));
    const kb = keyBlocks.get('tcpuser')!;
    const sock: TcpSocket = connect(server.tcpPort, '127.0.0.1');
    const rx: Buffer[] = [];
    sock.on('data', (d) => rx.push(d));
    await new Promise((r) => sock.once('connect', r));
    const frame = (p: Buffer) => Buffer.concat([Buffer.from([p.length >> 8, p.length & 255]), p]);
    sock.write(frame(Buffer.concat([Buffer.from([0x38]), Buffer.from('tcpuser')])));
    await until(() => sessions[0]?.state === 'established');
    const up = ipv4('10.8.0.2', '10.2.0.10', 500);
    const f = frame(clientSeal(kb, 0, 1, up));
    sock.write(f.subarray(0, 1));
    await new Promise((r) => setTimeout(r, 20));
    sock.write(f.subarray(1, 300));
    await new Promise((r) => setTimeout(r, 20));
    sock.write(f.subarray(300));
    await until(() => tunnel.written.length === 1);
    expect(tunnel.written[0]!.equals(up)).toBe(true);
    const down = ipv4('10.2.0.10', '10.8.0.2', 50);
    tunnel.sinks.get('10.8.0.2/32')!.push(down, 0, down.length);
    await until(() => Buffer.concat(rx).length >= 6 + 2 + 70 + 24);
    const all = Buffer.concat(rx);
    const second = all.subarray(6); // first frame: the 4-byte fake reset reply
    expect(second.readUInt16BE(0)).toBe(94);
    expect(clientOpen(kb, second.subarray(2, 96)).equals(down)).toBe(true);
    expect(server.status()[0]).toMatchObject({ protocol: 'tcp', user: 'tcpuser' });
    sock.write(frame(Buffer.concat([Buffer.from([0x20]), Buffer.from('EXIT')])));
    await until(() => server.sessionCount === 0);
    sock.destroy();

    const g: TcpSocket = connect(server.tcpPort, '127.0.0.1');
    let closed = false;
    g.on('close', () => (closed = true));
    g.on('error', () => {});
    await new Promise((r) => g.once('connect', r));
    g.write(Buffer.from('\x00\x05hello'));
    await until(() => closed);
    expect(server.counters.garbageDrops).toBe(1);
    expect(server.sessionCount).toBe(0);
  });
});
