// Differential tests: the native ESP core (src/native/core/esp.cc through the test addon's EspCore) against the
// TypeScript codec (src/esp), both ways, for every algorithm, plus hostile packets that both must
// drop for the same reason.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createNativeEspCore } from '../../../../src/dataplane/native-data-plane.js';
import { DropReason } from '../../../../src/esp/drop-reason.js';
import { ipv4Packet, ipv6Packet, SUITES } from '../../esp/packets.js';
import { ALL_SUITES, HEADROOM, nativeDecap, nativeEncap, paramsFor, slotWith, tsDecap, tsEncap, tsSa } from './esp-diff.js';

const SPI = 0xc0ffee01;

const params = paramsFor(SPI, 1);

/** A random inner packet between hosts of site A (src) and site B (dst). */
const innerArb = fc
  .record({ v6: fc.boolean(), size: fc.integer({ min: 0, max: 1360 }), seed: fc.integer({ min: 0, max: 255 }), host: fc.integer({ min: 1, max: 250 }) })
  .map(({ v6, size, seed, host }) =>
    v6 ? ipv6Packet(`fd01::${host.toString(16)}`, 'fd02::1', 40 + size, seed) : ipv4Packet(`10.1.0.${host}`, '10.2.3.4', 28 + size, seed),
  );

describe('native ESP core vs the TypeScript codec', () => {
  for (const s of ALL_SUITES) {
    it(`${s.name}: native encap → TS decap and TS encap → native decap give the packet back`, () => {
      const nOut = createNativeEspCore(params(s, 'out'));
      const tIn = tsSa(params(s, 'in'));
      const tOut = tsSa(params(s, 'out'));
      const nIn = createNativeEspCore(params(s, 'in'));
      fc.assert(
        fc.property(innerArb, (inner) => {
          const a = nativeEncap(nOut, inner);
          expect(a.r).toBe(DropReason.NONE);
          const back = tsDecap(tIn, a.esp);
          expect(back.r).toBe(DropReason.NONE);
          expect(back.inner.equals(inner)).toBe(true);

          const b = tsEncap(tOut, inner);
          expect(b.r).toBe(DropReason.NONE);
          const fwd = nativeDecap(nIn, b.esp);
          expect(fwd.r).toBe(DropReason.NONE);
          expect(fwd.inner.equals(inner)).toBe(true);
          if (s.integ === 0) expect(a.esp.equals(b.esp)).toBe(true); // AEAD: IV = 0 | seq, byte-exact
          else expect(a.esp.length).toBe(b.esp.length);
        }),
        { numRuns: 40 },
      );
      const c = new Float64Array(19);
      nIn.counters(c);
      expect(c[1]).toBe(tIn.packets); // packets
      expect(c[0]).toBe(tIn.bytes);
      expect(c[2]).toBe(tOut.seq); // highest authenticated = last sent
    });
  }

  it('ESP layout on the wire: SPI, sequence from 1, 8-byte IV = 0 | seq for AEAD, 16 random bytes for CBC', () => {
    const gcm = createNativeEspCore(params(SUITES[0]!, 'out'));
    const one = nativeEncap(gcm, ipv4Packet('10.1.0.1', '10.2.0.1', 100)).esp;
    const two = nativeEncap(gcm, ipv4Packet('10.1.0.1', '10.2.0.1', 100)).esp;
    expect(one.readUInt32BE(0)).toBe(SPI);
    expect([one.readUInt32BE(4), two.readUInt32BE(4)]).toEqual([1, 2]);
    expect(two.subarray(8, 16).toString('hex')).toBe('0000000000000002');
    // 100 inner + pad to 4 with 2 trailer bytes → 102 → pad 2; + 8 hdr + 8 IV + 16 tag
    expect(one.length).toBe(8 + 8 + 100 + 2 + 2 + 16);
    const cbc = createNativeEspCore(params(SUITES[3]!, 'out'));
    const c1 = nativeEncap(cbc, ipv4Packet('10.1.0.1', '10.2.0.1', 100)).esp;
    const c2 = nativeEncap(cbc, ipv4Packet('10.1.0.1', '10.2.0.1', 100)).esp;
    expect(c1.subarray(8, 24).equals(c2.subarray(8, 24))).toBe(false);
    expect((c1.length - 8 - 16 - 16) % 16).toBe(0);
  });

  for (const s of [SUITES[0]!, SUITES[2]!, SUITES[3]!]) {
    it(`${s.name}: hostile mutations of valid packets are dropped for the same reason by both`, () => {
      const tOut = tsSa(params(s, 'out'));
      const mutation = fc.record({
        kind: fc.constantFrom('flip', 'truncate', 'extend', 'seqzero'),
        pos: fc.nat(),
        bit: fc.integer({ min: 0, max: 7 }),
      });
      fc.assert(
        fc.property(innerArb, mutation, (inner, m) => {
          const esp = tsEncap(tOut, inner).esp;
          let bad: Buffer;
          if (m.kind === 'flip') {
            bad = Buffer.from(esp);
            const i = 4 + (m.pos % (esp.length - 4)); // keep the SPI so the SA is found
            bad[i] = bad[i]! ^ (1 << m.bit);
          } else if (m.kind === 'truncate') {
            bad = Buffer.from(esp.subarray(0, 8 + (m.pos % (esp.length - 8))));
          } else if (m.kind === 'extend') {
            bad = Buffer.concat([esp, Buffer.alloc(1 + (m.pos % 16), m.bit)]);
          } else {
            bad = Buffer.from(esp);
            bad.writeUInt32BE(0, 4);
          }
          const t = tsDecap(tsSa(params(s, 'in')), bad);
          const n = nativeDecap(createNativeEspCore(params(s, 'in')), bad);
          expect(n.r).toBe(t.r);
          expect(n.r).not.toBe(DropReason.NONE);
        }),
        { numRuns: 60 },
      );
    });
  }

  it('replay: a duplicate and a packet left of the window are dropped REPLAY; late in-window packets pass', () => {
    const s = SUITES[0]!;
    const tOut = tsSa(params(s, 'out'));
    const nIn = createNativeEspCore(params(s, 'in', { replayWindow: 64 }));
    const pkts = Array.from({ length: 200 }, (_, i) => tsEncap(tOut, ipv4Packet('10.1.0.1', '10.2.0.1', 60, i)).esp);
    expect(nativeDecap(nIn, pkts[0]!).r).toBe(DropReason.NONE);
    expect(nativeDecap(nIn, pkts[0]!).r).toBe(DropReason.REPLAY);
    expect(nativeDecap(nIn, pkts[150]!).r).toBe(DropReason.NONE); // seq 151 = top
    expect(nativeDecap(nIn, pkts[100]!).r).toBe(DropReason.NONE); // seq 101: 50 behind, inside 64
    expect(nativeDecap(nIn, pkts[100]!).r).toBe(DropReason.REPLAY);
    expect(nativeDecap(nIn, pkts[50]!).r).toBe(DropReason.REPLAY); // 100 behind: left of the window
    // a forged packet with a fresh sequence number must not move the window (checked before the ICV)
    const forged = Buffer.from(pkts[199]!);
    forged[forged.length - 1] ^= 1;
    expect(nativeDecap(nIn, forged).r).toBe(DropReason.ICV);
    expect(nativeDecap(nIn, pkts[110]!).r).toBe(DropReason.NONE);
    const c = new Float64Array(19);
    nIn.counters(c);
    expect(c[2]).toBe(151);
    expect(c[4 + DropReason.REPLAY]).toBe(3);
    expect(c[4 + DropReason.ICV]).toBe(1);
  });

  it('bad padding, dummy packets (next header 59), bad inner header and policy are told apart', () => {
    const s = SUITES[3]!; // CBC: 16-byte blocks leave room for padding games
    const tOut = tsSa(params(s, 'out'));
    const t = tOut.transform;
    // builds an ESP packet around an arbitrary plaintext (already padded), sealed with the TS transform
    let seq = 0;
    const seal = (plain: Buffer): Buffer => {
      const b = Buffer.alloc(8 + t.ivLen + plain.length + t.icvLen);
      b.writeUInt32BE(SPI, 0);
      b.writeUInt32BE(++seq, 4);
      b.fill(7, 8, 8 + t.ivLen);
      plain.copy(b, 8 + t.ivLen);
      t.seal(b, 0, 8, 8 + t.ivLen, plain.length);
      return b;
    };
    const inner = ipv4Packet('10.1.0.1', '10.2.0.1', 46); // 46 + pad 0 + 2 = 48
    const ok = Buffer.concat([inner, Buffer.from([0, 4])]);
    const badPad = Buffer.concat([ipv4Packet('10.1.0.1', '10.2.0.1', 44), Buffer.from([1, 3, 2, 4])]);
    const dummy = Buffer.concat([inner, Buffer.from([0, 59])]);
    const wrongNh = Buffer.concat([inner, Buffer.from([0, 41])]);
    const policy = Buffer.concat([ipv4Packet('10.9.0.1', '10.2.0.1', 46), Buffer.from([0, 4])]);
    const padTooLong = Buffer.concat([inner, Buffer.from([200, 4])]);
    const nIn = createNativeEspCore(params(s, 'in'));
    const tIn = tsSa(params(s, 'in'));
    const cases: [Buffer, DropReason][] = [
      [ok, DropReason.NONE],
      [badPad, DropReason.BAD_PAD],
      [dummy, DropReason.DUMMY],
      [wrongNh, DropReason.BAD_INNER],
      [policy, DropReason.POLICY],
      [padTooLong, DropReason.BAD_PAD],
    ];
    for (const [plain, want] of cases) {
      const esp = seal(plain);
      expect(nativeDecap(nIn, esp).r).toBe(want);
      expect(tsDecap(tIn, esp).r).toBe(want);
    }
  });

  it('IPv6 inner (next header 41): malformed headers are BAD_INNER in both cores, and counted', () => {
    const s = SUITES[0]!; // AES-GCM: 4-byte alignment, the trailer is pad bytes, pad length, next header
    const tOut = tsSa(params(s, 'out'));
    const t = tOut.transform;
    let seq = 0;
    const seal = (plain: Buffer): Buffer => {
      const b = Buffer.alloc(8 + t.ivLen + plain.length + t.icvLen);
      b.writeUInt32BE(SPI, 0);
      b.writeUInt32BE(++seq, 4);
      b.fill(7, 8, 8 + t.ivLen);
      plain.copy(b, 8 + t.ivLen);
      t.seal(b, 0, 8, 8 + t.ivLen, plain.length);
      return b;
    };
    // RFC 4303 §2.6: next header 41 for an IPv6 inner packet; trailer padded to 4 bytes
    const trailer = (inner: Buffer, nh: number): Buffer => {
      const pad = (4 - ((inner.length + 2) % 4)) % 4;
      return Buffer.concat([inner, Buffer.from([...Array.from({ length: pad }, (_, i) => i + 1), pad, nh])]);
    };
    const v6 = ipv6Packet('fd01::1', 'fd02::1', 80);
    const lying = Buffer.from(v6);
    lying.writeUInt16BE(200, 4); // payload length beyond what arrived
    const short = v6.subarray(0, 39); // not even the 40-byte fixed header
    const v4As41 = ipv4Packet('10.1.0.1', '10.2.0.1', 80); // version 4 under next header 41
    const v6As4 = v6; // version 6 under next header 4
    const outside = ipv6Packet('fd09::1', 'fd02::1', 80); // source outside the SA's remote selectors
    const cases: [Buffer, DropReason][] = [
      [trailer(v6, 41), DropReason.NONE],
      [trailer(lying, 41), DropReason.BAD_INNER],
      [trailer(short, 41), DropReason.BAD_INNER],
      [trailer(v4As41, 41), DropReason.BAD_INNER],
      [trailer(v6As4, 4), DropReason.BAD_INNER],
      [trailer(outside, 41), DropReason.POLICY],
    ];
    const nIn = createNativeEspCore(params(s, 'in'));
    const tIn = tsSa(params(s, 'in'));
    for (const [plain, want] of cases) {
      const esp = seal(plain);
      const n = nativeDecap(nIn, esp);
      expect(n.r).toBe(want);
      expect(tsDecap(tIn, esp).r).toBe(want);
      if (want === DropReason.NONE) expect(n.inner.equals(v6)).toBe(true);
    }
    const c = new Float64Array(19);
    nIn.counters(c);
    expect(c[4 + DropReason.BAD_INNER]).toBe(4);
    expect(c[4 + DropReason.POLICY]).toBe(1);
    // (outbound, the data planes check the header before encap: test/unit/dataplane/ts-data-plane.test.ts)
  });

  it('unknown direction use, non-IP inner packets and missing room are refused', () => {
    const s = SUITES[0]!;
    const nOut = createNativeEspCore(params(s, 'out'));
    const b = Buffer.alloc(100);
    b[40] = 0x15; // version 1
    const span = new Uint32Array(3);
    expect(nOut.encap(b, 40, 30, 100, span)).toBe(DropReason.BAD_INNER);
    const ok = ipv4Packet('10.1.0.1', '10.2.0.1', 60);
    const tight = Buffer.alloc(60 + 8);
    ok.copy(tight, 8); // no room for the 8-byte IV after the header
    expect(nOut.encap(tight, 8, 60, tight.length, span)).toBe(DropReason.NO_ROOM);
    const roomy = slotWith(ok);
    expect(nOut.encap(roomy, HEADROOM, 60, HEADROOM + 60 + 10, span)).toBe(DropReason.NO_ROOM); // no tailroom
  });

  it('sequence numbers stop at 2^32 - 1 (SEQ_EXHAUSTED, reported once); lifetimes fire soft then hard', () => {
    const s = SUITES[0]!;
    const nOut = createNativeEspCore(params(s, 'out', { initialSeq: 0xfffffffe }));
    const pkt = ipv4Packet('10.1.0.1', '10.2.0.1', 60);
    const last = nativeEncap(nOut, pkt);
    expect(last.r).toBe(DropReason.NONE);
    expect(last.esp.readUInt32BE(4)).toBe(0xffffffff);
    const a = nativeEncap(nOut, pkt);
    const b = nativeEncap(nOut, pkt);
    expect([a.r, a.event, b.r, b.event]).toEqual([DropReason.SEQ_EXHAUSTED, 4, DropReason.SEQ_EXHAUSTED, 0]);

    const lt = { softBytes: 0, hardBytes: 0, softPackets: 2, hardPackets: 3 };
    const lOut = createNativeEspCore(params(s, 'out', { lifetime: lt }));
    const ev = [1, 2, 3, 4].map(() => nativeEncap(lOut, pkt));
    expect(ev.map((e) => [e.r, e.event])).toEqual([
      [DropReason.NONE, 0],
      [DropReason.NONE, 1],
      [DropReason.NONE, 2],
      [DropReason.EXPIRED, 0],
    ]);
  });

  it('refuses unsupported transforms and wrong key sizes with the TS backend error codes', () => {
    expect(() => createNativeEspCore(params(SUITES[0]!, 'out', { encr: 3 }))).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_UNSUPPORTED' }));
    expect(() => createNativeEspCore(params(SUITES[0]!, 'out', { encrKey: Buffer.alloc(7) }))).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_KEY' }));
    expect(() => createNativeEspCore(params(SUITES[0]!, 'out', { spi: 0 }))).toThrow(expect.objectContaining({ code: 'ERR_SA' }));
  });
});
