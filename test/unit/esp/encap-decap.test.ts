import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createDecipheriv, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createEncTransform } from '../../../src/crypto/aead.js';
import { DropReason } from '../../../src/esp/drop-reason.js';
import { EspSa, EspSpan, SA_EVENT_HARD, SA_EVENT_SEQ_EXHAUSTED, SA_EVENT_SOFT } from '../../../src/esp/esp-sa.js';
import { espEncap, espOverhead } from '../../../src/esp/encap.js';
import { espDecap } from '../../../src/esp/decap.js';
import { Sad } from '../../../src/esp/sad.js';
import { ipv4Packet, ipv6Packet, P, saPair, SUITES, open, seal } from './packets.js';


describe('ESP encap/decap round trip', () => {
  for (const s of SUITES) {
    it(`${s.name}: IPv4 and IPv6 of several sizes survive encap → decap`, () => {
      const { out, inb } = saPair(s);
      for (const n of [28, 29, 30, 31, 64, 84, 1400]) {
        const p4 = ipv4Packet('10.1.0.5', '10.2.3.4', n, n);
        const a = seal(out, p4);
        expect(a.r).toBe(DropReason.NONE);
        expect(a.pkt.length).toBe(n + espOverhead(out, n));
        expect(a.pkt.readUInt32BE(0)).toBe(0xc0ffee01);
        const b = open(inb, a.pkt);
        expect(b.r).toBe(DropReason.NONE);
        expect(b.inner.equals(p4)).toBe(true);
      }
      const p6 = ipv6Packet('fd01::1', 'fd02::9', 200);
      const c = open(inb, seal(out, p6).pkt);
      expect(c.r).toBe(DropReason.NONE);
      expect(c.inner.equals(p6)).toBe(true);
      expect(out.packets).toBe(8);
      expect(inb.packets).toBe(8);
      expect(out.bytes).toBe(inb.bytes);
    });
  }

  it('numbers packets from 1 and uses 0|seq as the AEAD IV', () => {
    const { out } = saPair(SUITES[0]!);
    const p1 = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt;
    const p2 = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt;
    expect(p1.readUInt32BE(4)).toBe(1);
    expect(p2.readUInt32BE(4)).toBe(2);
    expect(p1.subarray(8, 16).toString('hex')).toBe('0000000000000001');
    expect(p2.subarray(8, 16).toString('hex')).toBe('0000000000000002');
  });

  it('CBC IVs are random and differ per packet', () => {
    const { out } = saPair(SUITES[3]!);
    const a = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt;
    const b = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt;
    expect(a.subarray(8, 24).equals(b.subarray(8, 24))).toBe(false);
  });

  it('cross-check: a hand-written node:crypto decoder reads our AES-GCM packet (padding 1,2,3…, next header 4)', () => {
    const s = SUITES[0]!;
    const { out } = saPair(s);
    const inner = ipv4Packet('10.1.0.1', '10.2.0.1', 84);
    const pkt = seal(out, inner).pkt;
    // independent decode following RFC 4106: key = first 16 bytes of KEYMAT, nonce = salt | IV, AAD = SPI | Seq
    const km = Buffer.alloc(20);
    for (let i = 0; i < 20; i++) km[i] = (31 + i * 7) & 0xff;
    const d = createDecipheriv('aes-128-gcm', km.subarray(0, 16), Buffer.concat([km.subarray(16), pkt.subarray(8, 16)]));
    d.setAAD(pkt.subarray(0, 8));
    d.setAuthTag(pkt.subarray(pkt.length - 16));
    const pt = Buffer.concat([d.update(pkt.subarray(16, pkt.length - 16)), d.final()]);
    expect(pt.subarray(0, 84).equals(inner)).toBe(true);
    expect(pt.subarray(84).toString('hex')).toBe('01020204'); // same trailer strongSwan produced for 84 bytes
  });

  it('cross-check: a hand-written decoder reads our AES-CBC + HMAC-SHA256 packet', () => {
    const s = SUITES[3]!;
    const { out } = saPair(s);
    const inner = ipv6Packet('fd01::1', 'fd02::1', 100);
    const pkt = seal(out, inner).pkt;
    const ek = Buffer.alloc(16);
    const ik = Buffer.alloc(32);
    for (let i = 0; i < 16; i++) ek[i] = (31 + i * 7) & 0xff;
    for (let i = 0; i < 32; i++) ik[i] = (17 + i * 13 + 1) & 0xff;
    const icv = createHmac('sha256', ik).update(pkt.subarray(0, pkt.length - 16)).digest().subarray(0, 16);
    expect(icv.equals(pkt.subarray(pkt.length - 16))).toBe(true);
    const d = createDecipheriv('aes-128-cbc', ek, pkt.subarray(8, 24));
    d.setAutoPadding(false);
    const pt = Buffer.concat([d.update(pkt.subarray(24, pkt.length - 16)), d.final()]);
    // 100 + 2 → 112: 10 padding bytes 01..0a, pad length 10, next header 41
    expect(pt.length).toBe(112);
    expect(pt.subarray(0, 100).equals(inner)).toBe(true);
    expect(pt.subarray(100).toString('hex')).toBe('0102030405060708090a0a29');
  });

  it('decapsulates the strongSwan 5.9.8 packet kept in test/vectors/aead-transforms.json through the SAD', () => {
    const V = JSON.parse(readFileSync(new URL('../../vectors/aead-transforms.json', import.meta.url), 'utf8')).strongswanEsp;
    const sa = new EspSa({
      spi: 0xf9ddbfd8,
      direction: 'in',
      transform: createEncTransform({ encr: 20, encrKeyBits: 128, integ: 0 }, Buffer.from(V.keyMat, 'hex'), Buffer.alloc(0)),
      localTs: [P('10.2.0.0/16')],
      remoteTs: [P('10.1.0.0/16')],
      localAddr: '192.0.2.2',
      localPort: 4500,
      remoteAddr: '192.0.2.1',
      remotePort: 4500,
    });
    const sad = new Sad();
    sad.add(sa);
    const pkt = Buffer.from(V.packet, 'hex');
    const found = sad.lookupInbound(pkt, 0)!;
    expect(found).toBe(sa);
    const r = open(found, pkt);
    expect(r.r).toBe(DropReason.NONE);
    expect(r.inner.length).toBe(84);
    expect(r.inner.subarray(12, 16).toString('hex')).toBe('0a010001');
    expect(r.inner.subarray(16, 20).toString('hex')).toBe('0a020001');
    expect(open(found, pkt).r).toBe(DropReason.REPLAY); // the same packet again
  });
});

describe('ESP drops (never throws on packet contents)', () => {
  const s = SUITES[0]!;

  it('replayed packets are dropped and counted; late packets inside the window pass', () => {
    const { out, inb } = saPair(s);
    const pkts = [1, 2, 3, 4].map(() => seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt);
    expect(open(inb, pkts[3]!).r).toBe(DropReason.NONE);
    expect(open(inb, pkts[0]!).r).toBe(DropReason.NONE);
    expect(open(inb, pkts[0]!).r).toBe(DropReason.REPLAY);
    expect(open(inb, pkts[3]!).r).toBe(DropReason.REPLAY);
    expect(inb.drops[DropReason.REPLAY]).toBe(2);
  });

  it('a tampered packet fails the ICV and does not advance the replay window', () => {
    const { out, inb } = saPair(s);
    const pkt = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt;
    for (let i = 0; i < pkt.length; i++) {
      const bad = Buffer.from(pkt);
      bad[i]! ^= 0x10;
      if (i < 4) continue; // a different SPI is another SA's business (the SAD lookup)
      const r = open(inb, bad).r;
      expect([DropReason.ICV, DropReason.REPLAY]).toContain(r);
    }
    expect(inb.replay!.top).toBe(0);
    expect(open(inb, pkt).r).toBe(DropReason.NONE);
  });

  it('truncated packets are dropped as SHORT or ICV, at every length', () => {
    for (const suite of [SUITES[0]!, SUITES[3]!]) {
      const { out, inb } = saPair(suite);
      const pkt = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt;
      for (let n = 0; n < pkt.length; n++) {
        const r = open(inb, pkt.subarray(0, n)).r;
        expect([DropReason.SHORT, DropReason.ICV, DropReason.MALFORMED]).toContain(r);
      }
    }
  });

  it('decap of arbitrary bytes behind a valid SPI returns a drop reason, never throws (property)', () => {
    for (const suite of [SUITES[0]!, SUITES[2]!, SUITES[3]!]) {
      const { inb } = saPair(suite);
      const span = new EspSpan();
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 0xffffffff }), (body, seq) => {
          const b = Buffer.alloc(8 + body.length);
          b.writeUInt32BE(inb.spi, 0);
          b.writeUInt32BE(seq, 4);
          b.set(body, 8);
          const r = espDecap(inb, b, 0, b.length, span);
          expect(r).not.toBe(DropReason.NONE);
        }),
        { numRuns: 200 },
      );
    }
  });

  it('random garbage with a valid SPI never throws', () => {
    const { inb } = saPair(SUITES[3]!);
    for (let i = 0; i < 300; i++) {
      const n = (i * 37) % 200;
      const b = Buffer.alloc(n);
      for (let j = 0; j < n; j++) b[j] = (i * 13 + j * 101) & 0xff;
      expect(() => espDecap(inb, b, 0, n, new EspSpan())).not.toThrow();
    }
  });

  it('inner addresses outside the selectors are dropped POLICY (both directions are checked on receipt)', () => {
    const { out, inb } = saPair(s);
    const wrongSrc = seal(out, ipv4Packet('10.9.0.1', '10.2.0.1')).pkt;
    const wrongDst = seal(out, ipv4Packet('10.1.0.1', '10.3.0.1')).pkt;
    expect(open(inb, wrongSrc).r).toBe(DropReason.POLICY);
    expect(open(inb, wrongDst).r).toBe(DropReason.POLICY);
    expect(open(inb, seal(out, ipv6Packet('fd01::1', 'fd03::1')).pkt).r).toBe(DropReason.POLICY);
    expect(inb.drops[DropReason.POLICY]).toBe(3);
  });

  /** Seals a hand-made plaintext (inner | trailer) with the SA's transform, bypassing espEncap's checks. */
  function sealRaw(sa: EspSa, plaintext: Buffer, seq: number): Buffer {
    const t = sa.transform;
    const buf = Buffer.alloc(8 + t.ivLen + plaintext.length + t.icvLen);
    buf.writeUInt32BE(sa.spi, 0);
    buf.writeUInt32BE(seq, 4);
    buf.writeUInt32BE(seq, 8 + t.ivLen - 4);
    plaintext.copy(buf, 8 + t.ivLen);
    t.seal(buf, 0, 8, 8 + t.ivLen, plaintext.length);
    return buf;
  }

  it('padding other than 1,2,3,… or a too-large pad length is BAD_PAD', () => {
    const { out, inb } = saPair(s);
    const inner = ipv4Packet('10.1.0.1', '10.2.0.1', 84);
    expect(open(inb, sealRaw(out, Buffer.concat([inner, Buffer.from('01030204', 'hex')]), 1)).r).toBe(DropReason.BAD_PAD);
    expect(open(inb, sealRaw(out, Buffer.concat([inner, Buffer.from('0102ff04', 'hex')]), 2)).r).toBe(DropReason.BAD_PAD);
    expect(open(inb, sealRaw(out, Buffer.concat([inner, Buffer.from('01020204', 'hex')]), 3)).r).toBe(DropReason.NONE);
  });

  it('next header 59 (dummy) is dropped quietly; a wrong next header or bad inner header is BAD_INNER', () => {
    const { out, inb } = saPair(s);
    const inner = ipv4Packet('10.1.0.1', '10.2.0.1', 84);
    expect(open(inb, sealRaw(out, Buffer.concat([inner, Buffer.from('0102023b', 'hex')]), 1)).r).toBe(DropReason.DUMMY);
    expect(open(inb, sealRaw(out, Buffer.concat([inner, Buffer.from('01020229', 'hex')]), 2)).r).toBe(DropReason.BAD_INNER);
    const lying = Buffer.from(inner);
    lying.writeUInt16BE(200, 2); // total length larger than what arrived
    expect(open(inb, sealRaw(out, Buffer.concat([lying, Buffer.from('01020204', 'hex')]), 3)).r).toBe(DropReason.BAD_INNER);
  });

  it('TFC padding after the inner packet is trimmed by the IP length', () => {
    const { out, inb } = saPair(s);
    const inner = ipv4Packet('10.1.0.1', '10.2.0.1', 84);
    const r = open(inb, sealRaw(out, Buffer.concat([inner, Buffer.alloc(8, 0xee), Buffer.from('01020204', 'hex')]), 1));
    expect(r.r).toBe(DropReason.NONE);
    expect(r.inner.equals(inner)).toBe(true);
  });

  it('outbound refuses non-IP and packets without headroom/tailroom', () => {
    const { out } = saPair(s);
    const span = new EspSpan();
    const buf = Buffer.alloc(200);
    buf[0] = 0x10;
    expect(espEncap(out, buf, 64, 40, 200, span)).toBe(DropReason.BAD_INNER);
    ipv4Packet('10.1.0.1', '10.2.0.1', 40).copy(buf, 4);
    expect(espEncap(out, buf, 4, 40, 200, span)).toBe(DropReason.NO_ROOM);
    ipv4Packet('10.1.0.1', '10.2.0.1', 40).copy(buf, 150);
    expect(espEncap(out, buf, 150, 40, 200, span)).toBe(DropReason.NO_ROOM);
    expect(out.seq).toBe(0); // no sequence number was burnt
  });
});

describe('sequence numbers and lifetimes', () => {
  it('stops at 2^32 - 1 without ESN: one event, then SEQ_EXHAUSTED drops', () => {
    const { out, inb } = saPair(SUITES[0]!, { initialSeq: 0xfffffffd });
    const span = new EspSpan();
    const p = ipv4Packet('10.1.0.1', '10.2.0.1');
    const a = seal(out, p, span);
    expect(a.r).toBe(DropReason.NONE);
    expect(a.pkt.readUInt32BE(4)).toBe(0xfffffffe);
    const b = seal(out, p, span);
    expect(b.pkt.readUInt32BE(4)).toBe(0xffffffff);
    expect(open(inb, a.pkt).r).toBe(DropReason.NONE);
    expect(open(inb, b.pkt).r).toBe(DropReason.NONE);
    expect(seal(out, p, span).r).toBe(DropReason.SEQ_EXHAUSTED);
    expect(span.event).toBe(SA_EVENT_SEQ_EXHAUSTED);
    expect(seal(out, p, span).r).toBe(DropReason.SEQ_EXHAUSTED);
    expect(span.event).toBe(0);
    expect(out.drops[DropReason.SEQ_EXHAUSTED]).toBe(2);
    expect(out.packets).toBe(2);
  });

  it('reports soft then hard lifetime crossings once, then drops EXPIRED', () => {
    const lifetime = { softBytes: 0, hardBytes: 0, softPackets: 3, hardPackets: 5 };
    const { out } = saPair(SUITES[0]!, { lifetime });
    const span = new EspSpan();
    const events: number[] = [];
    for (let i = 0; i < 6; i++) {
      seal(out, ipv4Packet('10.1.0.1', '10.2.0.1'), span);
      events.push(span.event);
    }
    expect(events).toEqual([0, 0, SA_EVENT_SOFT, 0, SA_EVENT_HARD, 0]);
    expect(out.drops[DropReason.EXPIRED]).toBe(1);
  });

  it('byte lifetimes count inner bytes on both sides', () => {
    const lifetime = { softBytes: 150, hardBytes: 0, softPackets: 0, hardPackets: 0 };
    const { out, inb } = saPair(SUITES[3]!, { lifetime });
    const span = new EspSpan();
    const pkt1 = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1', 100), span).pkt;
    expect(span.event).toBe(0);
    const pkt2 = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1', 100), span).pkt;
    expect(span.event).toBe(SA_EVENT_SOFT);
    open(inb, pkt1, span);
    expect(span.event).toBe(0);
    open(inb, pkt2, span);
    expect(span.event).toBe(SA_EVENT_SOFT);
    expect(inb.bytes).toBe(200);
  });
});
