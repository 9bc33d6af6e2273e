// NativeDataPlane over a real TUN and loopback UDP, with the far gateway played by the test using
// the TypeScript ESP codec: ESP in → kernel (ICMP echo) → ESP out, IKE demux, keepalives, sinks,
// writeToTun, routes, drops, close. Needs root (TUN, routes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { PacketBatch } from '../../../src/common/batch.js';
import { captureLogger } from '../../../src/common/log.js';
import { parseIp, prefixContains } from '../../../src/common/ip.js';
import type { Prefix } from '../../../src/common/ip.js';
import { createEncTransform } from '../../../src/crypto/aead.js';
import type { Endpoint } from '../../../src/common/endpoint.js';
import type { PacketSink } from '../../../src/common/packet-sink.js';
import type { SaParams } from '../../../src/dataplane/data-plane.js';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { espDecap } from '../../../src/esp/decap.js';
import { espEncap } from '../../../src/esp/encap.js';
import { EspSa, EspSpan } from '../../../src/esp/esp-sa.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress, addRoute } from '../../../src/tun/netcfg.js';
import { P } from '../esp/packets.js';
import { icmpEcho, until } from '../../helpers/native-lab.js';

const SPI_IN = 0x11110001; // the data plane's inbound SPI
const SPI_OUT = 0x22220001; // the peer's inbound SPI
const LOCAL_NET = '10.213.1.0/24';
const REMOTE_NET = '10.213.2.0/24';
const SINK_NET = '10.213.3.0/24';
const GW_ADDR = '10.213.1.1';
const KEY_IN = randomBytes(20);
const KEY_OUT = randomBytes(20);

let tun: LinuxTun;
let udp: NativeUdp;
let peer: NativeUdp;
let dp: NativeDataPlane;
const log = captureLogger();
const fromWire: Buffer[] = [];
const control: { pkt: Buffer; from: Endpoint; local: Endpoint }[] = [];
const sinkGot: Buffer[] = [];
let sinkFlushes = 0;
const sink: PacketSink = {
  push: (buf, off, len) => sinkGot.push(Buffer.from(buf.subarray(off, off + len))),
  flush: () => sinkFlushes++,
};
let peerOut: EspSa;
let peerIn: EspSa;

function saParams(dir: 'in' | 'out'): SaParams {
  return {
    direction: dir,
    spi: dir === 'in' ? SPI_IN : SPI_OUT,
    encr: 20,
    encrKeyBits: 128,
    integ: 0,
    encrKey: dir === 'in' ? KEY_IN : KEY_OUT,
    integKey: Buffer.alloc(0),
    localAddr: '127.0.0.1',
    localPort: udp.port,
    remoteAddr: '127.0.0.1',
    remotePort: peer.port,
    localTs: [P(LOCAL_NET)],
    remoteTs: [P(REMOTE_NET)],
  };
}

function peerSa(spi: number, key: Buffer, dir: 'in' | 'out'): EspSa {
  return new EspSa({
    spi,
    direction: dir,
    transform: createEncTransform({ encr: 20, encrKeyBits: 128, integ: 0 }, key, Buffer.alloc(0)),
    localTs: [P(REMOTE_NET)],
    remoteTs: [P(LOCAL_NET)],
    localAddr: '127.0.0.1',
    localPort: 1,
    remoteAddr: '127.0.0.1',
    remotePort: 1,
  });
}

/** The peer gateway seals an inner packet and sends it to the data plane. */
function peerSend(inner: Buffer): void {
  const b = Buffer.alloc(2048);
  inner.copy(b, 64);
  const span = new EspSpan();
  expect(espEncap(peerOut, b, 64, inner.length, b.length, span)).toBe(0);
  expect(peer.sendTo(b.subarray(span.off, span.off + span.len), 4, '127.0.0.1', udp.port)).toBe(true);
}

/** Decrypts (once each: the peer has a replay window) the ESP datagrams the peer received. */
const openedInner: Buffer[] = [];
let openedUpTo = 0;
function opened(): Buffer[] {
  for (; openedUpTo < fromWire.length; openedUpTo++) {
    const d = fromWire[openedUpTo]!;
    if (d.length < 8 || d.readUInt32BE(0) !== SPI_OUT) continue;
    const b = Buffer.from(d);
    const span = new EspSpan();
    if (espDecap(peerIn, b, 0, b.length, span) === 0) openedInner.push(Buffer.from(b.subarray(span.off, span.off + span.len)));
  }
  return openedInner;
}

beforeAll(() => {
  tun = LinuxTun.open({ name: `ndpt${randomBytes(2).toString('hex')}`, mtu: 1400 });
  addAddress(tun.name, `${GW_ADDR}/24`);
  addRoute(REMOTE_NET, tun.name);
  addRoute(SINK_NET, tun.name);
  udp = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  peer = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  peer.start((b: PacketBatch) => {
    for (let i = 0; i < b.count; i++) fromWire.push(Buffer.from(b.packet(i)));
  });
  dp = new NativeDataPlane(tun, [udp], { logger: log });
  dp.onControl((pkt, from, local) => control.push({ pkt, from, local }));
  dp.installSa(saParams('in'));
  dp.installSa(saParams('out'));
  dp.addRoute(P(REMOTE_NET), SPI_OUT);
  dp.addSinkRoute(P(SINK_NET), sink);
  peerOut = peerSa(SPI_IN, KEY_IN, 'out');
  peerIn = peerSa(SPI_OUT, KEY_OUT, 'in');
});

afterAll(() => {
  dp?.close();
  tun?.close();
  udp?.close();
  peer?.close();
});

describe('NativeDataPlane on a real TUN', () => {
  it('ESP in → kernel answers the ping → ESP out, with SA counters on both directions', async () => {
    for (let i = 1; i <= 3; i++) peerSend(icmpEcho('10.213.2.7', GW_ADDR, 0x77, i));
    await until('three echo replies', () => opened().filter((p) => p[9] === 1 && p[20] === 0).length >= 3);
    const replies = opened().filter((p) => p[20] === 0);
    expect(replies[0]!.subarray(12, 16).equals(parseIp(GW_ADDR)!.bytes)).toBe(true);
    expect(replies.map((p) => p.readUInt16BE(26)).sort()).toEqual([1, 2, 3]);
    expect(dp.saCounters(SPI_IN, 'in')).toMatchObject({ packets: 3, seq: 3 });
    expect(dp.saCounters(SPI_OUT, 'out')!.packets).toBeGreaterThanOrEqual(3);
    expect(dp.stats()).toMatchObject({ espRxPackets: 3 });
  });

  it('IKE behind the non-ESP marker reaches onControl without it; keepalives are counted; sendControl adds the marker', async () => {
    peer.sendTo(Buffer.concat([Buffer.alloc(4), Buffer.from('ike-message')]), 4, '127.0.0.1', udp.port);
    peer.sendTo(Buffer.from([0xff]), 4, '127.0.0.1', udp.port);
    await until('control packet', () => control.length === 1 && dp.stats().natKeepalives === 1);
    expect(control[0]!.pkt.toString()).toBe('ike-message');
    expect(control[0]!.from).toEqual({ family: 4, address: '127.0.0.1', port: peer.port });
    expect(control[0]!.local).toEqual({ family: 4, address: '127.0.0.1', port: udp.port });
    const n = fromWire.length;
    expect(dp.sendControl(Buffer.from('ike-reply'), control[0]!.from, control[0]!.local)).toBe(true);
    await until('marker datagram', () => fromWire.length > n);
    expect(fromWire[n]!.toString('hex')).toBe(`00000000${Buffer.from('ike-reply').toString('hex')}`);
  });

  it('drops and counts unknown SPIs, short packets, replays and tampering', async () => {
    const before = dp.dropCounters();
    const probe = Buffer.alloc(40);
    probe.writeUInt32BE(0xdeadbeef, 0);
    peer.sendTo(probe, 4, '127.0.0.1', udp.port);
    peer.sendTo(Buffer.from([1, 2, 3, 4, 5]), 4, '127.0.0.1', udp.port);
    const b = Buffer.alloc(2048);
    const inner = icmpEcho('10.213.2.7', GW_ADDR, 0x78, 1);
    inner.copy(b, 64);
    const span = new EspSpan();
    espEncap(peerOut, b, 64, inner.length, b.length, span);
    const esp = Buffer.from(b.subarray(span.off, span.off + span.len));
    peer.sendTo(esp, 4, '127.0.0.1', udp.port);
    await until('first copy', () => dp.saCounters(SPI_IN, 'in')!.packets === 4);
    peer.sendTo(esp, 4, '127.0.0.1', udp.port);
    const bad = Buffer.from(esp);
    bad.writeUInt32BE(bad.readUInt32BE(4) + 1, 4); // fresh seq, but the ICV no longer matches
    peer.sendTo(bad, 4, '127.0.0.1', udp.port);
    await until('drops', () => dp.dropCounters().ICV! > before.ICV!);
    const after = dp.dropCounters();
    expect(after.NO_SA! - before.NO_SA!).toBe(1);
    expect(after.SHORT! - before.SHORT!).toBe(1);
    expect(after.REPLAY! - before.REPLAY!).toBe(1);
    expect(after.ICV! - before.ICV!).toBe(1);
    expect(dp.saCounters(SPI_IN, 'in')!.drops).toMatchObject({ REPLAY: 1, ICV: 1 });
  });

  it('sink routes deliver the TUN packets to JS once per batch (push each, one flush)', async () => {
    const s = createSocket('udp4');
    const before = sinkFlushes;
    await new Promise<void>((r) => s.send(Buffer.alloc(3, 1), 9, '10.213.3.5', () => r()));
    await until('sink packet', () => sinkGot.some((p) => p[9] === 17));
    s.close();
    const pkt = sinkGot.find((p) => p[9] === 17)!;
    expect(pkt.subarray(16, 20).equals(parseIp('10.213.3.5')!.bytes)).toBe(true);
    expect(sinkFlushes).toBeGreaterThan(before);
    expect(dp.stats().sinkPackets).toBeGreaterThanOrEqual(1);
  });

  it('writeToTun injects packets (the kernel answers through the tunnel)', async () => {
    const n = opened().length;
    dp.writeToTun(icmpEcho('10.213.2.9', GW_ADDR, 0x79, 5), 0, 60);
    await until('reply to the injected ping', () => opened().length > n);
    expect(opened().some((p) => p[20] === 0 && p.readUInt16BE(24) === 0x79)).toBe(true);
  });

  it('routes: longest prefix wins in native code, IPv4 and IPv6, removal falls back (checked against a naive model)', () => {
    const routes = new Map<string, { p: Prefix; spi: number }>();
    const lens4 = [0, 8, 12, 16, 20, 24, 28, 32];
    fc.assert(
      fc.property(
        fc.array(fc.record({ a: fc.integer({ min: 0, max: 3 }), b: fc.integer({ min: 0, max: 3 }), l: fc.constantFrom(...lens4), spi: fc.integer({ min: 1, max: 1e6 }), del: fc.boolean() }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 0, max: 15 }), { minLength: 5, maxLength: 10 }),
        (ops, probes) => {
          for (const r of routes.values()) dp.removeRoute(r.p);
          routes.clear();
          for (const o of ops) {
            const bytes = Buffer.from([172, 16 + o.a, o.b * 64, 7]);
            const p = P(`${bytes.join('.')}/${o.l}`.replace(/^(.*)\/(\d+)$/, (_m, a, l) => `${maskText(a, Number(l))}/${l}`));
            if (o.del) {
              dp.removeRoute(p);
              routes.delete(`${p.bytes.toString('hex')}/${p.len}`);
            } else {
              dp.addRoute(p, o.spi);
              routes.set(`${p.bytes.toString('hex')}/${p.len}`, { p, spi: o.spi });
            }
          }
          for (const x of probes) {
            const addr = `172.${16 + (x & 3)}.${(x >> 2) * 64}.7`;
            let best: { p: Prefix; spi: number } | undefined;
            for (const r of routes.values()) if (prefixContains(r.p, parseIp(addr)!.bytes) && (!best || r.p.len > best.p.len)) best = r;
            expect(dp.lookupRoute(addr)?.spi ?? null).toBe(best?.spi ?? null);
          }
        },
      ),
      { numRuns: 40 },
    );
    for (const r of routes.values()) dp.removeRoute(r.p);
    dp.addRoute(P('fd13::/16'), 5);
    dp.addRoute(P('fd13:1::/32'), 6);
    expect(dp.lookupRoute('fd13:1::9')).toEqual({ spi: 6, sink: -1 });
    expect(dp.lookupRoute('fd13:2::9')).toEqual({ spi: 5, sink: -1 });
    dp.removeRoute(P('fd13:1::/32'));
    expect(dp.lookupRoute('fd13:1::9')).toEqual({ spi: 5, sink: -1 });
    dp.removeSinkRoute(P('fd13::/16')); // not a sink route: stays
    expect(dp.lookupRoute('fd13:2::9')).toEqual({ spi: 5, sink: -1 });
    dp.removeRoute(P('fd13::/16'));
    expect(dp.lookupRoute('10.213.3.1')).toEqual({ spi: 0, sink: 0 });
  });

  it('never logs key material', () => {
    const text = JSON.stringify(log.lines);
    expect(text).not.toContain(KEY_IN.toString('hex'));
    expect(text).not.toContain(KEY_OUT.toString('hex'));
    expect(text).toContain('ESP SA installed');
  });

  it('after close nothing is decapsulated or sent, SAs are gone, and the devices stay usable by their owner', async () => {
    const rx = dp.stats().espRxPackets;
    dp.close();
    peerSend(icmpEcho('10.213.2.7', GW_ADDR, 0x80, 1));
    await new Promise((r) => setTimeout(r, 100));
    expect(dp.stats().espRxPackets).toBe(rx);
    expect(dp.saCounters(SPI_IN, 'in')).toBeUndefined();
    expect(dp.sendControl(Buffer.from('x'), { family: 4, address: '127.0.0.1', port: peer.port }, { family: 4, address: '127.0.0.1', port: udp.port })).toBe(false);
    expect(udp.sendTo(Buffer.from('still-open'), 4, '127.0.0.1', peer.port)).toBe(true);
    await until('owner send', () => fromWire.some((d) => d.toString() === 'still-open'));
  });
});

function maskText(a: string, len: number): string {
  const b = parseIp(a)!.bytes;
  for (let i = 0; i < 4; i++) {
    const keep = Math.max(0, Math.min(8, len - i * 8));
    b[i] = b[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return [...b].join('.');
}
