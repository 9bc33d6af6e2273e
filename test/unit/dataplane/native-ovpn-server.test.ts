// SslServer on the native data plane: UDP sessions get a native data channel (keys, virtual address,
// /32 route), data goes TUN ⇄ client without JS, and the shell still does its part from the native
// counters — status, keepalive pings when idle, ping-restart, OCC exit, floats. The control channel
// is a fake behind the real stateless UDP start (then P_CONTROL_V1 "hello:USER"); the client's data channel is the TypeScript DataChannel.
// Needs root (TUN).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { PacketBatch } from '../../../src/common/batch.js';
import { captureLogger } from '../../../src/common/log.js';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { SslServer, type ControlSession, type ControlSessionFactory, type SslServerConfig } from '../../../src/gateway/ssl-server.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { DataChannel, DATA_IP, DATA_PING, type DataKeyMaterial } from '../../../src/ssl/data/data-channel.js';
import { OCC_EXIT_PAYLOAD } from '../../../src/ssl/data/special.js';
import type { PushParams, SslAction } from '../../../src/ssl/session.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { decodeControlPacket, encodeControlPacket } from '../../../src/ssl/wire/control-packet.js';
import { ParseError } from '../../../src/common/errors.js';
import { addAddress } from '../../../src/tun/netcfg.js';
import { icmpEcho, until } from '../../helpers/native-lab.js';

const SERVER = '10.216.0.1';
const SEEDS = new Map<string, Buffer>();

function key(user: string, side: 'server' | 'client'): DataKeyMaterial {
  let s = SEEDS.get(user);
  if (!s) SEEDS.set(user, (s = randomBytes(144)));
  const a = s.subarray(0, 64);
  const b = s.subarray(64, 128);
  const ivA = s.subarray(128, 136);
  const ivB = s.subarray(136, 144);
  return side === 'server'
    ? { keyId: 0, cipher: 'AES-256-GCM', encKey: a, encImplicitIv: ivA, decKey: b, decImplicitIv: ivB }
    : { keyId: 0, cipher: 'AES-256-GCM', encKey: b, encImplicitIv: ivB, decKey: a, decImplicitIv: ivA };
}

class FakeSession implements ControlSession {
  state = 'initial';
  user = '';
  constructor(
    private readonly peerId: number,
    private readonly emit: (a: SslAction) => void,
  ) {}
  receiveControl(pkt: Buffer): void {
    // over UDP the server's real stateless start runs first; then the client's P_CONTROL_V1 "hello:USER"
    const d = pkt[0] === 0x20 ? decodeControlPacket(pkt) : null;
    const text = d && !(d instanceof ParseError) ? d.payload.toString() : '';
    if (this.state !== 'initial' || !text.startsWith('hello:')) return;
    this.user = text.slice(6);
    this.state = 'authenticating';
    this.emit({ kind: 'authenticated', user: this.user, certCn: this.user, peerInfo: new Map(), clientOptions: '', cipher: 'AES-256-GCM' } as SslAction);
  }
  tick(): void {}
  nextDeadline(): number {
    return Infinity;
  }
  setPush(_p: PushParams): void {
    this.state = 'established';
    this.emit({ kind: 'keys', peerId: this.peerId, compress: 'none', ...key(this.user, 'server') } as SslAction);
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
const factory: ControlSessionFactory = {
  isInitialPacket: (p) => p[0] === 0x38,
  create: (_o, peerId, onAction) => new FakeSession(peerId, onAction),
};

/** A 48-byte echo request (id 0x4242, 20 zero payload bytes). */
function echo(src: string, dst: string, seq: number): Buffer {
  return icmpEcho(src, dst, 0x4242, seq, Buffer.alloc(20));
}

/** An openvpn client stand-in: its own socket and DataChannel, and what it decrypted. */
class Client {
  readonly sock: NativeUdp;
  readonly dc: DataChannel;
  readonly ip: Buffer[] = [];
  /** control packets from the server (the stateless start's reply) */
  readonly ctl: Buffer[] = [];
  readonly sid = randomBytes(8);
  pings = 0;
  constructor(readonly user: string) {
    this.sock = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    this.dc = new DataChannel({ peerId: 0 }, Date.now());
    this.sock.start((b: PacketBatch) => {
      for (let i = 0; i < b.count; i++) {
        const p = Buffer.from(b.packet(i));
        if (p[0]! >> 3 !== 9) {
          this.ctl.push(p);
          continue;
        }
        const r = this.dc.decrypt(p, 0, p.length, Date.now());
        if (r === DATA_IP) this.ip.push(Buffer.from(p.subarray(this.dc.outOff, this.dc.outOff + this.dc.outLen)));
        if (r === DATA_PING) this.pings++;
      }
    });
  }
  /** The stateless start: hard reset -->, <-- the server's session id, then "hello:USER" echoing it -->. */
  async hello(): Promise<void> {
    const reset = encodeControlPacket({ opcode: 7, keyId: 0, sessionId: this.sid, ack: { ids: [], remoteSessionId: null }, messageId: 0, payload: Buffer.alloc(0) });
    this.sock.sendTo(reset, 4, '127.0.0.1', server.udpPort);
    await until(`${this.user}: the server's reset`, () => this.ctl.length > 0);
    const serverSid = Buffer.from(this.ctl.shift()!.subarray(1, 9));
    const echo = encodeControlPacket({ opcode: 4, keyId: 0, sessionId: this.sid, ack: { ids: [0], remoteSessionId: serverSid }, messageId: 1, payload: Buffer.from(`hello:${this.user}`) });
    this.sock.sendTo(echo, 4, '127.0.0.1', server.udpPort);
  }
  keysFor(peerId: number): void {
    (this.dc as unknown as { peerId: number }).peerId = peerId;
    this.dc.installKey(key(this.user, 'client'), Date.now());
  }
  send(payload: Buffer, from: NativeUdp = this.sock): void {
    const out = Buffer.alloc(2048);
    const n = this.dc.encrypt(payload, 0, payload.length, out, 0, Date.now());
    from.sendTo(out.subarray(0, n), 4, '127.0.0.1', server.udpPort);
  }
}

let tun: LinuxTun;
let dp: NativeDataPlane;
let server: SslServer;
let now = Date.now();
const log = captureLogger();
const clients: Client[] = [];
const extra: NativeUdp[] = [];

function config(): SslServerConfig {
  return {
    name: 'p2c', protocols: ['udp'], port: 0, listen: '127.0.0.1', clientCidr: '10.216.0.0/24',
    localSubnets: ['10.2.0.0/16'], dnsServers: [], dataCiphers: ['AES-256-GCM'],
    identity: { cert: '', key: '', clientCa: '' }, maxConnections: 10, clientToClient: false, renegSec: 0,
    pingSec: 2, pingRestartSec: 5,
  };
}

async function connect(user: string): Promise<Client> {
  const c = new Client(user);
  clients.push(c);
  await c.hello();
  await until(`${user} connected`, () => server.status().some((s) => s.user === user && s.cipher === 'AES-256-GCM'));
  c.keysFor(server.status().find((s) => s.user === user)!.peerId);
  return c;
}

beforeAll(async () => {
  tun = LinuxTun.open({ name: `novs${randomBytes(2).toString('hex')}`, mtu: 1400 });
  addAddress(tun.name, `${SERVER}/24`);
  dp = new NativeDataPlane(tun, [], { logger: log });
  server = new SslServer({
    config: config(), log, tunnel: dp, sessions: factory, clock: () => now, timer: false,
    udpBind: (address, port) => NativeUdp.bind({ address, port }),
  });
  await server.start();
});

afterAll(async () => {
  await server?.stop();
  dp?.close();
  tun?.close();
  for (const c of clients) c.sock.close();
  for (const s of extra) s.close();
});

describe('SslServer on the native data plane', () => {
  it('a UDP session runs its data channel natively: ping to the server address and back, status from the native counters', async () => {
    expect(log.lines.some((l) => l.msg === 'ssl vpn server listening' && (l.obj as Record<string, unknown>).dataChannel === 'native')).toBe(true);
    const c = await connect('alice');
    const st0 = server.status()[0]!;
    expect(st0.virtualAddress).toBe('10.216.0.2');
    expect(dp.lookupSslRoute('10.216.0.2')).toBe(st0.peerId);
    const sinkBefore = dp.stats().sinkPackets;
    for (let i = 1; i <= 3; i++) c.send(echo('10.216.0.2', SERVER, i));
    await until('three echo replies', () => c.ip.filter((p) => p[20] === 0).length >= 3);
    const st = server.status().find((s) => s.user === 'alice')!;
    expect(st.bytesIn).toBe(3 * 48);
    expect(st.packetsIn).toBe(3);
    expect(st.packetsOut).toBeGreaterThanOrEqual(3);
    expect(dp.stats().sinkPackets).toBe(sinkBefore); // no JS sink on the way out
    expect(dp.nativeStats().sslRxPackets).toBeGreaterThanOrEqual(3);
  });

  it('tick: an idle session gets a keepalive ping; received data keeps it alive; silence past ping-restart closes it natively too', async () => {
    const c = clients[0]!;
    const peerId = server.status()[0]!.peerId;
    now += 100;
    server.tick(now); // sees the traffic of the first test
    now += 2100;
    server.tick(now); // nothing sent for 2.1 s > pingSec
    await until('a ping at the client', () => c.pings >= 1);
    // the client keeps talking: no ping-restart although the clock runs past 2 x 5 s
    for (let i = 0; i < 6; i++) {
      c.send(echo('10.216.0.2', SERVER, 100 + i));
      await until('reply', () => c.ip.some((p) => p.readUInt16BE(26) === 100 + i && p[20] === 0));
      now += 2000;
      server.tick(now);
    }
    expect(server.status().some((s) => s.user === 'alice')).toBe(true);
    now += 10_001;
    server.tick(now);
    expect(server.status().some((s) => s.user === 'alice')).toBe(false);
    expect(dp.sslCounters(peerId)).toBeUndefined();
    expect(dp.lookupSslRoute('10.216.0.2')).toBe(-1);
    expect(log.lines.some((l) => l.msg === 'client session closed' && String((l.obj as Record<string, unknown>).reason).startsWith('ping-restart') && ((l.obj as Record<string, unknown>).bytesIn as number) > 0)).toBe(true);
  });

  it('OCC exit from the client closes the session; a client-to-client packet is dropped and counted by the shell', async () => {
    const b = await connect('bob');
    const carol = await connect('carol');
    const drops = server.counters.clientToClientDrops;
    b.send(echo(server.status().find((s) => s.user === 'bob')!.virtualAddress!, server.status().find((s) => s.user === 'carol')!.virtualAddress!, 1));
    await until('client-to-client drop', () => server.counters.clientToClientDrops === drops + 1);
    carol.send(OCC_EXIT_PAYLOAD);
    await until('carol gone', () => !server.status().some((s) => s.user === 'carol'));
    expect(server.status().some((s) => s.user === 'bob')).toBe(true);
  });

  it('a float: the same peer-id from a new address authenticates, the session moves there and stays native', async () => {
    const b = clients.find((c) => c.user === 'bob')!;
    const moved = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    extra.push(moved);
    moved.start((batch: PacketBatch) => {
      for (let i = 0; i < batch.count; i++) {
        const p = Buffer.from(batch.packet(i));
        if (b.dc.decrypt(p, 0, p.length, Date.now()) === DATA_IP) b.ip.push(Buffer.from(p.subarray(b.dc.outOff, b.dc.outOff + b.dc.outLen)));
      }
    });
    const vaddr = server.status().find((s) => s.user === 'bob')!.virtualAddress!;
    b.send(echo(vaddr, SERVER, 7), moved);
    await until('bob floated', () => server.status().find((s) => s.user === 'bob')!.realAddress === `127.0.0.1:${moved.port}`);
    const rx = dp.nativeStats().sslRxPackets;
    b.send(echo(vaddr, SERVER, 8), moved);
    await until('reply at the new address', () => b.ip.some((p) => p.readUInt16BE(26) === 8 && p[20] === 0));
    expect(dp.nativeStats().sslRxPackets).toBe(rx + 1); // decrypted natively after the float
  });
});
