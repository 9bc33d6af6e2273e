// Differential tests with extended sequence numbers (RFC 4303 §2.2.1, Appendix A): the native ESP
// core (src/native/core/esp.cc through the test addon's EspCore) against the TypeScript codec
// (src/esp), both ways, for every algorithm, across the 2^32 boundary, with reordering and
// duplicates, and at the end of the 64-bit space.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createNativeEspCore } from '../../../../src/dataplane/native-data-plane.js';
import type { NativeEspCore } from '../../../../src/native/test-cores.js';
import { DropReason } from '../../../../src/esp/drop-reason.js';
import { ipv4Packet, ipv6Packet, SUITES } from '../../esp/packets.js';
import { ALL_SUITES, nativeDecap, nativeEncap, paramsFor, tsDecap, tsEncap, tsSa } from './esp-diff.js';

const SPI = 0xc0ffee02;
const TWO_32 = 2 ** 32;
/** counters(): bytes, packets, seq, flags, drops by reason */
const COUNTERS = 19;

const params = paramsFor(SPI, 2, { esn: true });

function counters(core: NativeEspCore): Float64Array {
  const c = new Float64Array(COUNTERS);
  core.counters(c);
  return c;
}

const innerArb = fc
  .record({ v6: fc.boolean(), size: fc.integer({ min: 0, max: 1360 }), seed: fc.integer({ min: 0, max: 255 }), host: fc.integer({ min: 1, max: 250 }) })
  .map(({ v6, size, seed, host }) =>
    v6 ? ipv6Packet(`fd01::${host.toString(16)}`, 'fd02::1', 40 + size, seed) : ipv4Packet(`10.1.0.${host}`, '10.2.3.4', 28 + size, seed),
  );

describe('native ESP core vs the TypeScript codec with ESN', () => {
  // a 32-packet window and a sender 64 numbers below 2^32: a fresh receiver infers seq-hi 0 for the
  // first packet (left of Bl in Case B) and the run crosses into seq-hi 1 after 64 packets
  const start = { initialSeq: 0xffffffc0, replayWindow: 32 };

  for (const s of ALL_SUITES) {
    it(`${s.name}: native encap → TS decap and TS encap → native decap across 2^32`, () => {
      const nOut = createNativeEspCore(params(s, 'out', start));
      const tIn = tsSa(params(s, 'in', start));
      const tOut = tsSa(params(s, 'out', start));
      const nIn = createNativeEspCore(params(s, 'in', start));
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
          if (s.integ === 0) expect(a.esp.equals(b.esp)).toBe(true); // AEAD: IV = seq-hi | seq-lo, byte-exact
          else expect(a.esp.length).toBe(b.esp.length);
        }),
        { numRuns: 100 },
      );
      expect(tOut.seqHi).toBe(1);
      expect(counters(nOut)[2]).toBe(tOut.seq64());
      expect(counters(nIn)[2]).toBe(tOut.seq64()); // highest authenticated = last sent
      expect(tIn.seq64()).toBe(tOut.seq64());
      expect(counters(nIn)[1]).toBe(tIn.packets);
    });
  }

  for (const s of [SUITES[0]!, SUITES[2]!, SUITES[3]!]) {
    it(`${s.name}: reordered and duplicated packets around 2^32 get the same verdict from both receivers`, () => {
      const base = { initialSeq: 0xffffff00, replayWindow: 64 };
      const tOut = tsSa(params(s, 'out', base));
      const pkts = Array.from({ length: 400 }, (_, i) => tsEncap(tOut, ipv4Packet('10.1.0.1', '10.2.0.1', 60, i)).esp);
      expect(tOut.seq64()).toBe(TWO_32 + 0x90);
      // deliveries: mostly forward with jitter of up to ±80 packets, duplicates and far-late ones
      const order = fc.array(fc.integer({ min: -80, max: 40 }), { minLength: 100, maxLength: 400 });
      fc.assert(
        fc.property(order, (jitter) => {
          const tIn = tsSa(params(s, 'in', base));
          const nIn = createNativeEspCore(params(s, 'in', base));
          let pos = 0;
          const verdicts = new Set<number>();
          for (const j of jitter) {
            pos = Math.min(pkts.length - 1, pos + 1);
            const i = Math.max(0, Math.min(pkts.length - 1, pos + j));
            const t = tsDecap(tIn, pkts[i]!);
            const n = nativeDecap(nIn, pkts[i]!);
            expect(n.r).toBe(t.r);
            verdicts.add(t.r);
          }
          expect(counters(nIn)[2]).toBe(tIn.seq64());
          expect(counters(nIn)[1]).toBe(tIn.packets);
          expect(counters(nIn)[4 + DropReason.REPLAY]).toBe(tIn.drops[DropReason.REPLAY]);
          expect(counters(nIn)[4 + DropReason.ICV]).toBe(tIn.drops[DropReason.ICV]);
        }),
        { numRuns: 30 },
      );
    });
  }

  it('late packets of the previous epoch pass once on both receivers (Appendix A2.2 Case B)', () => {
    const s = SUITES[0]!;
    const base = { initialSeq: 0xffffff80, replayWindow: 64 };
    const tOut = tsSa(params(s, 'out', base));
    const pkts = Array.from({ length: 160 }, (_, i) => tsEncap(tOut, ipv4Packet('10.1.0.1', '10.2.0.1', 60, i)).esp);
    // pkts[i] carries 0xffffff81 + i: pkts[126] is (0, 0xffffffff), pkts[127] is (1, 0)
    expect(pkts[126]!.readUInt32BE(4)).toBe(0xffffffff);
    expect(pkts[127]!.readUInt32BE(4)).toBe(0);
    const tIn = tsSa(params(s, 'in', base));
    const nIn = createNativeEspCore(params(s, 'in', base));
    const both = (i: number): number[] => [nativeDecap(nIn, pkts[i]!).r, tsDecap(tIn, pkts[i]!).r];
    expect(both(0)).toEqual([0, 0]);
    expect(both(140)).toEqual([0, 0]); // the next epoch: top (1, 13), the window straddles 2^32
    expect(both(126)).toEqual([0, 0]); // late from the previous epoch, 14 behind
    expect(both(126)).toEqual([DropReason.REPLAY, DropReason.REPLAY]);
    expect(both(100)).toEqual([0, 0]); // 40 behind
    // 70 behind, left of the window: A2.2 reads it as the NEXT epoch (lo < Bl), so the ICV over
    // seq-hi fails (RFC 4303 Appendix A2.2: the ICV is what rejects such packets)
    expect(both(70)).toEqual([DropReason.ICV, DropReason.ICV]);
    expect(both(127)).toEqual([0, 0]);
    expect(both(141)).toEqual([0, 0]);
    expect(counters(nIn)[2]).toBe(TWO_32 + 14);
    expect(tIn.seq64()).toBe(TWO_32 + 14);
  });

  it('the end of the 64-bit space: 2^64 - 1 is sent, then SEQ_EXHAUSTED (event once), as in TypeScript', () => {
    const s = SUITES[0]!;
    const over = { initialSeq: 0xfffffffe, initialSeqHi: 0xffffffff };
    const nOut = createNativeEspCore(params(s, 'out', over));
    const tOut = tsSa(params(s, 'out', over));
    const pkt = ipv4Packet('10.1.0.1', '10.2.0.1', 60);
    const n1 = nativeEncap(nOut, pkt);
    const t1 = tsEncap(tOut, pkt);
    expect(n1.r).toBe(DropReason.NONE);
    expect(n1.esp.equals(t1.esp)).toBe(true);
    expect(n1.esp.subarray(4, 16).toString('hex')).toBe('ffffffff' + 'ffffffffffffffff');
    const n2 = nativeEncap(nOut, pkt);
    const n3 = nativeEncap(nOut, pkt);
    const t2 = tsEncap(tOut, pkt);
    const t3 = tsEncap(tOut, pkt);
    expect([n2.r, n2.event, n3.r, n3.event]).toEqual([DropReason.SEQ_EXHAUSTED, 4, DropReason.SEQ_EXHAUSTED, 0]);
    expect([t2.r, t2.event, t3.r, t3.event]).toEqual([n2.r, n2.event, n3.r, n3.event]);
    expect(counters(nOut)[2]).toBe(2 ** 64 - 1);
  });

  it('an ESN and a non-ESN end reject each other with ICV in both backends', () => {
    for (const s of [SUITES[0]!, SUITES[3]!]) {
      const esnOut = tsSa(params(s, 'out'));
      const plainIn = createNativeEspCore(params(s, 'in', { esn: false }));
      expect(nativeDecap(plainIn, tsEncap(esnOut, ipv4Packet('10.1.0.1', '10.2.0.1')).esp).r).toBe(DropReason.ICV);
      const nEsnOut = createNativeEspCore(params(s, 'out'));
      const tPlainIn = tsSa(params(s, 'in', { esn: false }));
      expect(tsDecap(tPlainIn, nativeEncap(nEsnOut, ipv4Packet('10.1.0.1', '10.2.0.1')).esp).r).toBe(DropReason.ICV);
    }
  });
});
