// NativeUdp on loopback: batch send/recv between two sockets (IPv4, IPv6), interop with node:dgram,
// ICMP port unreachable (ECONNREFUSED) does not stop the socket, truncation, close().
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { PacketBatch } from '../../../src/common/batch.js';
import { IoError } from '../../../src/common/errors.js';
import { bytesToIp } from '../../../src/common/ip.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { until } from '../../helpers/native-lab.js';

const open: { close(): void }[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

function bind(address: string, opts: { slotSize?: number; batchSize?: number; ipv6Only?: boolean } = {}): NativeUdp {
  const s = NativeUdp.bind({ address, port: 0, ...opts });
  open.push(s);
  return s;
}

interface Got {
  data: string;
  family: number;
  addr: string;
  port: number;
}

function collect(s: NativeUdp, into: Got[], batchSizes: number[] = []): void {
  s.start((b) => {
    batchSizes.push(b.count);
    for (let i = 0; i < b.count; i++) {
      const fam = b.family[i]!;
      into.push({
        data: b.packet(i).toString(),
        family: fam,
        addr: bytesToIp(b.addr.subarray(i * 16, i * 16 + (fam === 4 ? 4 : 16))),
        port: b.port[i]!,
      });
    }
  });
}

function batchTo(n: number, family: 4 | 6, addr: number[], port: number, prefix = 'd'): PacketBatch {
  const b = new PacketBatch(n, 256, 16);
  for (let i = 0; i < n; i++) b.push(Buffer.from(`${prefix}${i}`), family, Buffer.from(addr), port);
  return b;
}

const LO4 = [127, 0, 0, 1];
const LO6 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

describe('NativeUdp', () => {
  it('binds an ephemeral port and reports it', () => {
    const s = bind('127.0.0.1');
    expect(s.port).toBeGreaterThan(0);
    expect(s.address).toBe('127.0.0.1');
    expect(s.family).toBe(4);
  });

  it('sends a batch over IPv4 loopback; the receiver gets every datagram, with the sender endpoint, in batches', async () => {
    const a = bind('127.0.0.1');
    const b = bind('127.0.0.1');
    const got: Got[] = [];
    const sizes: number[] = [];
    const N = 150;
    // queue everything before the receiver starts, so it drains them with recvmmsg
    const batch = batchTo(N, 4, LO4, b.port);
    expect(a.send(batch)).toBe(N);
    collect(b, got, sizes);
    await until('N datagrams', () => got.length >= N);
    expect(got.map((g) => g.data)).toEqual(Array.from({ length: N }, (_, i) => `d${i}`));
    expect(got.every((g) => g.family === 4 && g.addr === '127.0.0.1' && g.port === a.port)).toBe(true);
    expect(sizes.length).toBeLessThan(N / 10);
    expect(a.stats()).toMatchObject({ txPackets: N, sendErrors: 0 });
    expect(b.stats()).toMatchObject({ rxPackets: N, recvErrors: 0 });
    expect(b.stats().rxBytes).toBe(got.reduce((n, g) => n + g.data.length, 0));
  });

  it('works over IPv6 loopback (::1)', async () => {
    const a = bind('::1');
    const b = bind('::1');
    const got: Got[] = [];
    collect(b, got);
    expect(a.send(batchTo(10, 6, LO6, b.port))).toBe(10);
    await until('10 IPv6 datagrams', () => got.length >= 10);
    expect(got[9]).toEqual({ data: 'd9', family: 6, addr: '::1', port: a.port });
  });

  it('a dual-stack socket on :: reports IPv4 senders as family 4 and replies to them', async () => {
    const s = bind('::');
    const d = dgram.createSocket('udp4');
    open.push(d);
    await new Promise<void>((r) => d.bind(0, '127.0.0.1', r));
    const got: Got[] = [];
    collect(s, got);
    const replies: string[] = [];
    d.on('message', (m) => replies.push(m.toString()));
    d.send('ping', s.port, '127.0.0.1');
    await until('the ping', () => got.length >= 1);
    expect(got[0]).toEqual({ data: 'ping', family: 4, addr: '127.0.0.1', port: d.address().port });
    expect(s.sendTo(Buffer.from('pong'), 4, Buffer.from(LO4), d.address().port)).toBe(true);
    await until('the pong', () => replies.length >= 1);
    expect(replies).toEqual(['pong']);
  });

  it('sendTo and node:dgram interoperate in both directions', async () => {
    const s = bind('127.0.0.1');
    const d = dgram.createSocket('udp4');
    open.push(d);
    await new Promise<void>((r) => d.bind(0, '127.0.0.1', r));
    const fromNative: string[] = [];
    d.on('message', (m, r) => fromNative.push(`${m}@${r.port}`));
    expect(s.sendTo(Buffer.from('ike-init'), 4, '127.0.0.1', d.address().port)).toBe(true);
    await until('ike-init at node:dgram', () => fromNative.length >= 1);
    expect(fromNative).toEqual([`ike-init@${s.port}`]);
    const got: Got[] = [];
    collect(s, got);
    d.send('ike-resp', s.port, '127.0.0.1');
    await until('ike-resp', () => got.length >= 1);
    expect(got[0]!.data).toBe('ike-resp');
  });

  it('keeps receiving after ICMP port unreachable (ECONNREFUSED) and counts the errors', async () => {
    const a = bind('127.0.0.1');
    const b = bind('127.0.0.1');
    // a port with nobody listening: bind a socket, note the port, close it
    const closedPort = await new Promise<number>((resolve) => {
      const t = dgram.createSocket('udp4');
      t.bind(0, '127.0.0.1', () => {
        const p = t.address().port;
        t.close(() => resolve(p));
      });
    });
    const got: Got[] = [];
    collect(a, got);
    expect(a.send(batchTo(5, 4, LO4, closedPort, 'lost'))).toBeGreaterThan(0);
    await until('an ICMP error', () => a.stats().icmpErrors >= 1);
    // the socket is still alive in both directions
    b.send(batchTo(3, 4, LO4, a.port, 'ok'));
    await until('3 datagrams after the ICMP error', () => got.length >= 3);
    expect(got.map((g) => g.data)).toEqual(['ok0', 'ok1', 'ok2']);
    const bGot: Got[] = [];
    collect(b, bGot);
    // more refused sends interleaved with good ones: the good ones all arrive
    a.send(batchTo(2, 4, LO4, closedPort, 'lost'));
    await new Promise((r) => setTimeout(r, 20));
    expect(a.send(batchTo(4, 4, LO4, b.port, 'back'))).toBe(4);
    await until('4 datagrams at b', () => bGot.length >= 4);
    expect(bGot.map((g) => g.data)).toEqual(['back0', 'back1', 'back2', 'back3']);
    expect(a.stats().recvErrors).toBeGreaterThan(0);
  });

  it('drops and counts a datagram bigger than a slot, and keeps the ones around it', async () => {
    const a = bind('127.0.0.1');
    const b = bind('127.0.0.1', { slotSize: 128 });
    const batch = new PacketBatch(3, 2048, 0);
    batch.push(Buffer.from('small-1'), 4, Buffer.from(LO4), b.port);
    batch.push(Buffer.alloc(1000, 0x41), 4, Buffer.from(LO4), b.port);
    batch.push(Buffer.from('small-2'), 4, Buffer.from(LO4), b.port);
    expect(a.send(batch)).toBe(3);
    const got: Got[] = [];
    collect(b, got);
    await until('2 datagrams', () => got.length >= 2);
    await new Promise((r) => setTimeout(r, 20));
    expect(got.map((g) => g.data)).toEqual(['small-1', 'small-2']);
    expect(b.stats()).toMatchObject({ truncated: 1, rxPackets: 2 });
  });

  it('counts slots it cannot send (IPv6 endpoint on an IPv4 socket) and sends the rest', () => {
    const a = bind('127.0.0.1');
    const b = bind('127.0.0.1');
    const batch = new PacketBatch(3, 256, 0);
    batch.push(Buffer.from('v4-a'), 4, Buffer.from(LO4), b.port);
    batch.push(Buffer.from('v6'), 6, Buffer.from(LO6), b.port);
    batch.push(Buffer.from('v4-b'), 4, Buffer.from(LO4), b.port);
    expect(a.send(batch)).toBe(2);
    expect(a.stats().sendErrors).toBe(1);
  });

  it('throws an IoError naming the endpoint when it cannot bind', () => {
    expect(() => NativeUdp.bind({ address: '192.0.2.123', port: 0 })).toThrow(IoError);
    expect(() => NativeUdp.bind({ address: '192.0.2.123', port: 5000 })).toThrow(
      'cannot bind UDP 192.0.2.123:5000: bind: Cannot assign requested address',
    );
    expect(() => NativeUdp.bind({ address: 'nope', port: 1 })).toThrow(/not an IP address/);
  });

  it('after close(), no callback fires and send returns 0', async () => {
    const a = bind('127.0.0.1');
    const b = bind('127.0.0.1');
    let calls = 0;
    b.start(() => calls++);
    const port = b.port;
    b.close();
    expect(b.send(batchTo(1, 4, LO4, a.port))).toBe(0);
    expect(b.sendTo(Buffer.from('x'), 4, '127.0.0.1', a.port)).toBe(false);
    a.send(batchTo(3, 4, LO4, port));
    await new Promise((r) => setTimeout(r, 30));
    expect(calls).toBe(0);
  });
});
