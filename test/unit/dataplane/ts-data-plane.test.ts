import { describe, expect, it } from 'vitest';
import { createDecipheriv } from 'node:crypto';
import { MemoryTun } from '../../../src/tun/memory-tun.js';
import { MemoryUdpNetwork } from '../../../src/net/memory-udp.js';
import type { MemoryDatagram } from '../../../src/net/memory-udp.js';
import { TsDataPlane } from '../../../src/dataplane/ts-data-plane.js';
import type { SaEvent, SaParams } from '../../../src/dataplane/data-plane.js';
import { captureLogger } from '../../../src/common/log.js';
import { ipv4Packet, ipv6Packet, keys, P, SUITES } from '../esp/packets.js';
import type { Suite } from '../esp/packets.js';

/** Lets the memory fakes deliver (each hop is one setImmediate); bounded. */
async function settle(turns = 12): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

const SPI_TO_B = 0xb0000001; // B's inbound SPI
const SPI_TO_A = 0xa0000001; // A's inbound SPI
const A = '192.0.2.1';
const B = '192.0.2.2';
const SITE_A = [P('10.1.0.0/16'), P('fd01::/64')];
const SITE_B = [P('10.2.0.0/16'), P('fd02::/64')];

function params(s: Suite, dir: 'in' | 'out', spi: number, keySeed: number, local: string, remote: string, over: Partial<SaParams> = {}): SaParams {
  const k = keys(s, keySeed);
  return {
    direction: dir,
    spi,
    encr: s.encr,
    encrKeyBits: s.encrKeyBits,
    integ: s.integ,
    encrKey: k.encrKey,
    integKey: k.integKey,
    localAddr: local,
    localPort: 4500,
    remoteAddr: remote,
    remotePort: 4500,
    localTs: [],
    remoteTs: [],
    ...over,
  };
}

/** Two gateways back to back: site A (10.1/16, fd01::/64) behind dpA, site B behind dpB. */
function backToBack(s: Suite, over: { aOut?: Partial<SaParams> } = {}) {
  const net = new MemoryUdpNetwork();
  const wire: MemoryDatagram[] = [];
  net.filter = (d) => {
    wire.push(d);
    return true;
  };
  const udpA = net.bind(A, 4500);
  const udpB = net.bind(B, 4500);
  const tunA = new MemoryTun({ name: 'a0' });
  const tunB = new MemoryTun({ name: 'b0' });
  const logA = captureLogger();
  const dpA = new TsDataPlane(tunA, [udpA], { logger: logA });
  const dpB = new TsDataPlane(tunB, [udpB]);
  // A → B uses key seed 1, B → A key seed 2 (as KEYMAT gives each direction its own keys)
  dpA.installSa(params(s, 'out', SPI_TO_B, 1, A, B, { localTs: SITE_A, remoteTs: SITE_B, ...over.aOut }));
  dpB.installSa(params(s, 'in', SPI_TO_B, 1, B, A, { localTs: SITE_B, remoteTs: SITE_A }));
  dpB.installSa(params(s, 'out', SPI_TO_A, 2, B, A, { localTs: SITE_B, remoteTs: SITE_A }));
  dpA.installSa(params(s, 'in', SPI_TO_A, 2, A, B, { localTs: SITE_A, remoteTs: SITE_B }));
  for (const p of SITE_B) dpA.addRoute(p, SPI_TO_B);
  for (const p of SITE_A) dpB.addRoute(p, SPI_TO_A);
  const attacker = net.bind('198.51.100.7', 4500);
  return { net, wire, udpA, udpB, tunA, tunB, dpA, dpB, logA, attacker };
}

describe('TsDataPlane back to back over memory UDP', () => {
  for (const s of [SUITES[0]!, SUITES[1]!, SUITES[2]!, SUITES[3]!, SUITES[4]!]) {
    it(`${s.name}: carries IPv4 and IPv6 both ways; counters match`, async () => {
      const t = backToBack(s);
      const aToB = [ipv4Packet('10.1.0.1', '10.2.0.1', 84, 1), ipv4Packet('10.1.0.2', '10.2.7.7', 1400, 2), ipv6Packet('fd01::1', 'fd02::2', 120, 3)];
      const bToA = [ipv4Packet('10.2.0.1', '10.1.0.1', 64, 4), ipv6Packet('fd02::2', 'fd01::1', 1280, 5)];
      t.tunA.inject(...aToB);
      t.tunB.inject(...bToA);
      await settle();
      expect(t.tunB.written).toEqual(aToB);
      expect(t.tunA.written).toEqual(bToA);
      // every datagram on the wire is ESP to 4500 starting with the receiver's SPI
      expect(t.wire.map((d) => d.data.readUInt32BE(0)).sort()).toEqual([SPI_TO_A, SPI_TO_A, SPI_TO_B, SPI_TO_B, SPI_TO_B]);
      const outA = t.dpA.saCounters(SPI_TO_B, 'out')!;
      const inB = t.dpB.saCounters(SPI_TO_B, 'in')!;
      expect(outA.packets).toBe(3);
      expect(inB.packets).toBe(3);
      expect(outA.bytes).toBe(84 + 1400 + 120);
      expect(inB.bytes).toBe(outA.bytes);
      expect(outA.seq).toBe(3);
      expect(inB.seq).toBe(3);
      expect(t.dpA.saCounters(SPI_TO_A, 'in')!.bytes).toBe(64 + 1280);
      expect(Object.values(t.dpA.dropCounters()).every((n) => n === 0)).toBe(true);
      expect(Object.values(t.dpB.dropCounters()).every((n) => n === 0)).toBe(true);
      expect(t.dpB.stats()).toMatchObject({ espRxPackets: 3, tunTxPackets: 3, espTxPackets: 2, tunRxPackets: 2 });
      t.dpA.close();
      t.dpB.close();
    });
  }

  it('works over IPv6 outer endpoints (family 6 in the send batch)', async () => {
    const s = SUITES[0]!;
    const net = new MemoryUdpNetwork();
    const wire: MemoryDatagram[] = [];
    net.filter = (d) => (wire.push(d), true);
    const A6 = '2001:db8::1';
    const B6 = '2001:db8::2';
    const tunA = new MemoryTun();
    const tunB = new MemoryTun();
    const dpA = new TsDataPlane(tunA, [net.bind('192.0.2.1', 4500), net.bind(A6, 4500)]);
    const dpB = new TsDataPlane(tunB, [net.bind(B6, 4500)]);
    dpA.installSa(params(s, 'out', SPI_TO_B, 1, A6, B6, { localTs: SITE_A, remoteTs: SITE_B }));
    dpB.installSa(params(s, 'in', SPI_TO_B, 1, B6, A6, { localTs: SITE_B, remoteTs: SITE_A }));
    dpA.addRoute(P('10.2.0.0/16'), SPI_TO_B);
    const p = ipv4Packet('10.1.0.1', '10.2.0.1', 300, 5);
    tunA.inject(p);
    await settle();
    expect(wire.length).toBe(1);
    expect(wire[0]!.fromFamily).toBe(6);
    expect(wire[0]!.toAddr).toBe(B6);
    expect(tunB.written).toEqual([p]);
  });

  it('a batch bigger than the send batch is split, nothing lost', async () => {
    const t = backToBack(SUITES[0]!);
    const pkts = Array.from({ length: 150 }, (_, i) => ipv4Packet('10.1.0.1', `10.2.0.${i % 250}`, 60 + i, i));
    t.tunA.inject(...pkts);
    await settle(20);
    expect(t.tunB.written.length).toBe(150);
    expect(t.tunB.written).toEqual(pkts);
  });

  it('cross-check: an ESP datagram on the wire decodes with node:crypto by hand (RFC 4106 layout)', async () => {
    const s = SUITES[1]!; // aes256gcm16
    const t = backToBack(s);
    const inner = ipv4Packet('10.1.0.9', '10.2.0.9', 100, 9);
    t.tunA.inject(inner);
    await settle();
    const d = t.wire[0]!.data;
    expect(t.wire[0]!.toPort).toBe(4500);
    const km = keys(s, 1).encrKey;
    const dec = createDecipheriv('aes-256-gcm', km.subarray(0, 32), Buffer.concat([km.subarray(32, 36), d.subarray(8, 16)]));
    dec.setAAD(d.subarray(0, 8));
    dec.setAuthTag(d.subarray(d.length - 16));
    const pt = Buffer.concat([dec.update(d.subarray(16, d.length - 16)), dec.final()]);
    expect(d.readUInt32BE(0)).toBe(SPI_TO_B);
    expect(d.readUInt32BE(4)).toBe(1);
    expect(pt.subarray(0, 100).equals(inner)).toBe(true);
    expect(pt.subarray(100).toString('hex')).toBe('01020204');
  });

  it('drops and counts replayed, tampered, truncated and unknown-SPI packets', async () => {
    const t = backToBack(SUITES[3]!); // CBC + SHA256
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1', 84, 1), ipv4Packet('10.1.0.1', '10.2.0.1', 84, 2));
    await settle();
    expect(t.tunB.written.length).toBe(2);
    const [first, second] = t.wire.map((d) => Buffer.from(d.data));
    const send = (b: Buffer) => t.attacker.sendTo(b, 4, B, 4500);
    send(first!); // replay
    send(second!); // replay
    const tampered = Buffer.from(first!);
    tampered.writeUInt32BE(50, 4); // fresh sequence number, so it reaches the ICV check
    send(tampered);
    send(first!.subarray(0, 30)); // truncated
    send(first!.subarray(0, 6)); // shorter than an ESP header
    const unknown = Buffer.from(first!);
    unknown.writeUInt32BE(0xdeadbeef, 0);
    send(unknown);
    await settle();
    expect(t.tunB.written.length).toBe(2);
    const g = t.dpB.dropCounters();
    expect(g).toMatchObject({ REPLAY: 2, ICV: 1, NO_SA: 1, SHORT: 2 });
    expect(t.dpB.saCounters(SPI_TO_B, 'in')!.drops).toEqual({ REPLAY: 2, ICV: 1, SHORT: 1 });
    expect(t.dpB.saCounters(SPI_TO_B, 'in')!.packets).toBe(2);
    // the tampered packet did not move the window: seq 3 from the real sender still passes
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1', 84, 3));
    await settle();
    expect(t.tunB.written.length).toBe(3);
  });

  it('outbound IPv6 from the TUN: a short header or a payload length beyond the packet is BAD_INNER, counted', async () => {
    const t = backToBack(SUITES[0]!);
    const good = ipv6Packet('fd01::1', 'fd02::2', 100, 9);
    const lying = Buffer.from(good);
    lying.writeUInt16BE(1000, 4); // payload length 1000 in a 100-byte packet
    t.tunA.inject(good.subarray(0, 39), lying, Buffer.from([0x60]), good);
    await settle();
    expect(t.wire.length).toBe(1);
    expect(t.dpA.dropCounters()).toMatchObject({ BAD_INNER: 3 });
    expect(t.tunB.written.length).toBe(1);
    expect(Buffer.from(t.tunB.written[0]!).equals(good)).toBe(true);
  });

  it('inner addresses outside the SA selectors are dropped POLICY at the receiver', async () => {
    // a misconfigured sender whose outbound SA claims a wider remote selector than the receiver accepts
    const t = backToBack(SUITES[0]!, { aOut: { remoteTs: [P('10.0.0.0/8')] } });
    t.dpA.addRoute(P('10.3.0.0/16'), SPI_TO_B);
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.3.0.1'), ipv4Packet('10.1.0.1', '10.2.0.1'));
    await settle();
    expect(t.tunB.written.length).toBe(1);
    expect(t.dpB.dropCounters().POLICY).toBe(1);
    expect(t.dpB.saCounters(SPI_TO_B, 'in')!.drops).toEqual({ POLICY: 1 });
  });

  it('outbound: no route, wrong source, route to a missing SA, non-IP are dropped and counted', async () => {
    const t = backToBack(SUITES[0]!);
    t.dpA.addRoute(P('10.9.0.0/16'), 0x12345678);
    t.tunA.inject(
      ipv4Packet('10.1.0.1', '172.16.0.1'), // no route
      ipv4Packet('10.7.0.1', '10.2.0.1'), // source outside the SA's local selector
      ipv4Packet('10.1.0.1', '10.9.0.1'), // route to an SPI never installed
      Buffer.from([0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]),
    );
    await settle();
    expect(t.wire.length).toBe(0);
    expect(t.dpA.dropCounters()).toMatchObject({ NO_ROUTE: 1, POLICY: 1, NO_SA: 1, BAD_INNER: 1 });
    expect(t.dpA.saCounters(SPI_TO_B, 'out')!.drops).toEqual({ POLICY: 1 });
  });

  it('NAT-T keepalives are counted and ignored; IKE on 4500 reaches onControl without the marker', async () => {
    const t = backToBack(SUITES[0]!);
    const got: { pkt: Buffer; from: string; local: string }[] = [];
    t.dpB.onControl((pkt, from, local) => got.push({ pkt, from: `${from.address}:${from.port}`, local: `${local.address}:${local.port}` }));
    t.attacker.sendTo(Buffer.from([0xff]), 4, B, 4500);
    const ike = Buffer.from('0011223344556677000000000000000021202208000000000000001c', 'hex');
    t.attacker.sendTo(Buffer.concat([Buffer.alloc(4), ike]), 4, B, 4500);
    await settle();
    expect(t.dpB.stats().natKeepalives).toBe(1);
    expect(got).toEqual([{ pkt: ike, from: '198.51.100.7:4500', local: `${B}:4500` }]);
    expect(Object.values(t.dpB.dropCounters()).every((n) => n === 0)).toBe(true);
    // and back: sendControl prepends the marker and the peer data plane strips it
    const gotA: Buffer[] = [];
    t.dpA.onControl((pkt) => gotA.push(pkt));
    expect(t.dpB.sendControl(ike, { family: 4, address: A, port: 4500 }, { family: 4, address: B, port: 4500 })).toBe(true);
    await settle();
    expect(t.wire.at(-1)!.data.subarray(0, 4).toString('hex')).toBe('00000000');
    expect(gotA).toEqual([ike]);
  });

  it('stops at sequence number 2^32 - 1: drops SEQ_EXHAUSTED and reports it once', async () => {
    const t = backToBack(SUITES[0]!, { aOut: { initialSeq: 0xfffffffe } });
    const events: SaEvent[] = [];
    t.dpA.onSaEvent((e) => events.push(e));
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1'), ipv4Packet('10.1.0.1', '10.2.0.2'), ipv4Packet('10.1.0.1', '10.2.0.3'));
    await settle();
    expect(t.tunB.written.length).toBe(1);
    expect(t.wire[0]!.data.readUInt32BE(4)).toBe(0xffffffff);
    expect(t.dpA.dropCounters().SEQ_EXHAUSTED).toBe(2);
    expect(events).toEqual([{ spi: SPI_TO_B, direction: 'out', kind: 'seq-exhausted' }]);
  });

  it('reports soft and hard lifetimes through onSaEvent (inbound and outbound)', async () => {
    const lifetime = { softBytes: 0, hardBytes: 0, softPackets: 2, hardPackets: 3 };
    const t = backToBack(SUITES[0]!, { aOut: { lifetime } });
    const events: SaEvent[] = [];
    t.dpA.onSaEvent((e) => events.push(e));
    t.tunA.inject(...[1, 2, 3, 4].map((i) => ipv4Packet('10.1.0.1', '10.2.0.1', 60, i)));
    await settle();
    expect(events).toEqual([
      { spi: SPI_TO_B, direction: 'out', kind: 'soft' },
      { spi: SPI_TO_B, direction: 'out', kind: 'hard' },
    ]);
    expect(t.tunB.written.length).toBe(3);
    expect(t.dpA.dropCounters().EXPIRED).toBe(1);
    expect(t.logA.lines.some((l) => l.msg === 'ESP SA lifetime event')).toBe(true);
  });

  it('sink routes hand packets to another tunnel and flush once per batch; writeToTun injects', async () => {
    const t = backToBack(SUITES[0]!);
    const pushed: Buffer[] = [];
    let flushes = 0;
    t.dpA.addSinkRoute(P('10.8.0.0/24'), { push: (b, o, l) => pushed.push(Buffer.from(b.subarray(o, o + l))), flush: () => flushes++ });
    const p1 = ipv4Packet('10.1.0.1', '10.8.0.5', 60, 1);
    const p2 = ipv4Packet('10.1.0.1', '10.8.0.6', 60, 2);
    t.tunA.inject(p1, p2, ipv4Packet('10.1.0.1', '10.2.0.1'));
    await settle();
    expect(pushed).toEqual([p1, p2]);
    expect(flushes).toBe(1);
    expect(t.tunB.written.length).toBe(1);
    t.dpA.removeSinkRoute(P('10.8.0.0/24'));
    t.tunA.inject(p1);
    await settle();
    expect(pushed.length).toBe(2);
    expect(t.dpA.dropCounters().NO_ROUTE).toBe(1);

    const fromSsl = ipv4Packet('10.8.0.5', '10.1.0.1', 70, 7);
    t.dpA.writeToTun(fromSsl, 0, fromSsl.length);
    expect(t.tunA.written.length).toBe(0); // queued, flushed on a later turn
    await settle(2);
    expect(t.tunA.written).toEqual([fromSsl]);
  });

  it('rekey: new SAs installed, route re-pointed, old inbound kept until removed', async () => {
    const s = SUITES[0]!;
    const t = backToBack(s);
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1', 60, 1));
    await settle();
    const NEW_TO_B = 0xb0000002;
    t.dpB.installSa(params(s, 'in', NEW_TO_B, 3, B, A, { localTs: SITE_B, remoteTs: SITE_A }));
    t.dpA.installSa(params(s, 'out', NEW_TO_B, 3, A, B, { localTs: SITE_A, remoteTs: SITE_B }));
    for (const p of SITE_B) t.dpA.addRoute(p, NEW_TO_B);
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1', 60, 2));
    await settle();
    expect(t.tunB.written.length).toBe(2);
    expect(t.dpB.saCounters(NEW_TO_B, 'in')!.packets).toBe(1);
    expect(t.dpB.saCounters(SPI_TO_B, 'in')!.packets).toBe(1);
    t.dpB.removeSa(SPI_TO_B, 'in');
    expect(t.dpB.saCounters(SPI_TO_B, 'in')).toBeUndefined();
  });

  it('never logs key material', () => {
    const t = backToBack(SUITES[3]!);
    const k = keys(SUITES[3]!, 1);
    const text = JSON.stringify(t.logA.lines);
    expect(text).not.toContain(k.encrKey.toString('hex'));
    expect(text).toContain('ESP SA installed');
  });

  it('after close nothing is delivered or sent, SAs are gone, and the devices stay open for their owner', async () => {
    const t = backToBack(SUITES[0]!);
    t.dpB.close();
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1'));
    await settle();
    expect(t.wire.length).toBe(1);
    expect(t.tunB.written.length).toBe(0);
    expect(t.dpB.saCounters(SPI_TO_B, 'in')).toBeUndefined();
    t.tunB.inject(ipv4Packet('10.2.0.1', '10.1.0.1'));
    await settle();
    expect(t.wire.length).toBe(1);
    expect(t.dpB.sendControl(Buffer.from('00', 'hex'), { family: 4, address: A, port: 4500 }, { family: 4, address: B, port: 4500 })).toBe(false);
    // the devices are the caller's: still usable
    expect(t.udpB.sendTo(Buffer.from([1]), 4, A, 4500)).toBe(true);
  });
});
