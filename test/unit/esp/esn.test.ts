// ESP extended sequence numbers (RFC 4303 §2.2.1, Appendix A) in the TypeScript data plane.
// The vectors are computed independently with node:crypto from the RFC text:
// - AES-GCM / ChaCha20-Poly1305: AAD = SPI | seq-hi | seq-lo (RFC 4106 §5, RFC 7634 §2.1);
// - CBC + HMAC: ICV = HMAC over ESP header | IV | ciphertext | seq-hi (RFC 4303 §3.3.2.1), seq-hi not sent.
import { describe, expect, it } from 'vitest';
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { DropReason } from '../../../src/esp/drop-reason.js';
import { EspSpan, SA_EVENT_SEQ_EXHAUSTED } from '../../../src/esp/esp-sa.js';
import { ipv4Packet, keys, saPair, SUITES, open, seal } from './packets.js';

const SPI = 0xc0ffee01;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

const GCM = SUITES.find((s) => s.name === 'aes128gcm16')!;
const CHACHA = SUITES.find((s) => s.name === 'chacha20poly1305')!;
const CBC = SUITES.find((s) => s.name === 'aes128-sha256')!;

describe('ESN vectors (independent node:crypto computation)', () => {
  it('AES-GCM: AAD is SPI | seq-hi | seq-lo, IV is the 64-bit sequence number, seq-hi is not sent', () => {
    // last used 0x00000002_ffffffff: the next packet is 2^32 * 3 → (hi 3, lo 0)
    const { out } = saPair(GCM, { esn: true, initialSeq: 0xffffffff, initialSeqHi: 2 });
    const inner = ipv4Packet('10.1.0.1', '10.2.0.1', 84);
    const pkt = seal(out, inner).pkt;
    expect(pkt.length).toBe(8 + 8 + 88 + 16);
    expect(pkt.readUInt32BE(0)).toBe(SPI);
    expect(pkt.readUInt32BE(4)).toBe(0); // seq-lo only
    expect(pkt.subarray(8, 16).toString('hex')).toBe('0000000300000000'); // IV = seq-hi | seq-lo
    const km = keys(GCM, 1).encrKey;
    const nonce = Buffer.concat([km.subarray(16), pkt.subarray(8, 16)]);
    const aad = Buffer.concat([u32(SPI), u32(3), u32(0)]);
    // encrypt the expected plaintext ourselves and compare the whole packet byte for byte
    const c = createCipheriv('aes-128-gcm', km.subarray(0, 16), nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(Buffer.concat([inner, Buffer.from('01020204', 'hex')])), c.final()]);
    expect(pkt.equals(Buffer.concat([pkt.subarray(0, 16), ct, c.getAuthTag()]))).toBe(true);
    // and the 8-byte AAD of a non-ESN SA would not verify it
    const d = createDecipheriv('aes-128-gcm', km.subarray(0, 16), nonce);
    d.setAAD(pkt.subarray(0, 8));
    d.setAuthTag(pkt.subarray(pkt.length - 16));
    d.update(pkt.subarray(16, pkt.length - 16));
    expect(() => d.final()).toThrow();
  });

  it('ChaCha20-Poly1305: AAD is SPI | seq-hi | seq-lo (RFC 7634 §2.1)', () => {
    const { out } = saPair(CHACHA, { esn: true, initialSeq: 0x12345677, initialSeqHi: 0xabcdef01 });
    const inner = ipv4Packet('10.1.0.1', '10.2.0.1', 64);
    const pkt = seal(out, inner).pkt;
    expect(pkt.readUInt32BE(4)).toBe(0x12345678);
    const km = keys(CHACHA, 1).encrKey;
    const d = createDecipheriv('chacha20-poly1305', km.subarray(0, 32), Buffer.concat([km.subarray(32), pkt.subarray(8, 16)]), {
      authTagLength: 16,
    });
    d.setAAD(Buffer.concat([u32(SPI), u32(0xabcdef01), u32(0x12345678)]), { plaintextLength: pkt.length - 32 });
    d.setAuthTag(pkt.subarray(pkt.length - 16));
    const pt = Buffer.concat([d.update(pkt.subarray(16, pkt.length - 16)), d.final()]);
    expect(pt.subarray(0, 64).equals(inner)).toBe(true);
  });

  it('AES-CBC + HMAC-SHA256: ICV = HMAC(SPI | seq-lo | IV | ciphertext | seq-hi), seq-hi not on the wire', () => {
    const { out } = saPair(CBC, { esn: true, initialSeq: 41, initialSeqHi: 7 });
    const inner = ipv4Packet('10.1.0.1', '10.2.0.1', 100);
    const pkt = seal(out, inner).pkt;
    expect(pkt.readUInt32BE(4)).toBe(42);
    const k = keys(CBC, 1);
    const body = pkt.subarray(0, pkt.length - 16);
    const icv = createHmac('sha256', k.integKey).update(body).update(u32(7)).digest().subarray(0, 16);
    expect(icv.equals(pkt.subarray(pkt.length - 16))).toBe(true);
    // without seq-hi the ICV differs: the high bits really are authenticated
    const plain = createHmac('sha256', k.integKey).update(body).digest().subarray(0, 16);
    expect(plain.equals(pkt.subarray(pkt.length - 16))).toBe(false);
    // the packet is exactly as long as without ESN
    expect(pkt.length).toBe(8 + 16 + 112 + 16);
  });

  it('an ESN receiver decrypts a packet built by hand with node:crypto', () => {
    const { inb } = saPair(GCM, { esn: true });
    const km = keys(GCM, 1).encrKey;
    const inner = ipv4Packet('10.1.0.9', '10.2.0.9', 84);
    const plain = Buffer.concat([inner, Buffer.from('01020204', 'hex')]);
    const hdr = Buffer.concat([u32(SPI), u32(5), Buffer.from('0000000000000005', 'hex')]);
    const c = createCipheriv('aes-128-gcm', km.subarray(0, 16), Buffer.concat([km.subarray(16), hdr.subarray(8, 16)]));
    c.setAAD(Buffer.concat([u32(SPI), u32(0), u32(5)]));
    const pkt = Buffer.concat([hdr, c.update(plain), c.final(), c.getAuthTag()]);
    const r = open(inb, pkt);
    expect(r.r).toBe(DropReason.NONE);
    expect(r.inner.equals(inner)).toBe(true);
    expect(inb.seq64()).toBe(5);
  });
});

describe('ESN round trip', () => {
  for (const s of SUITES) {
    it(`${s.name}: packets cross the 2^32 boundary; the receiver infers seq-hi and keeps the window over 64 bits`, () => {
      const { out, inb } = saPair(s, { esn: true, initialSeq: 0xfffffffd });
      const p = ipv4Packet('10.1.0.5', '10.2.3.4', 84);
      // the receiver has seen the traffic before the wrap (a fresh window would read lo 0 as (0, 0))
      inb.replay!.accept(0xfffffffc);
      const pkts: Buffer[] = [];
      for (let i = 0; i < 5; i++) {
        const a = seal(out, p);
        expect(a.r).toBe(DropReason.NONE);
        pkts.push(a.pkt);
      }
      expect(pkts.map((x) => x.readUInt32BE(4))).toEqual([0xfffffffe, 0xffffffff, 0, 1, 2]);
      expect(out.seqHi).toBe(1);
      expect(out.seq64()).toBe(2 ** 32 + 2);
      // deliver out of order: the first of the new epoch, then late packets from the previous epoch
      for (const i of [2, 0, 3, 1, 4]) expect(open(inb, pkts[i]!).r).toBe(DropReason.NONE);
      expect(inb.replay!.topHi).toBe(1);
      expect(inb.replay!.top).toBe(2);
      expect(inb.seq64()).toBe(2 ** 32 + 2);
      for (const x of pkts) expect(open(inb, x).r).toBe(DropReason.REPLAY);
      expect(inb.packets).toBe(5);
    });
  }

  for (const s of [GCM, CBC]) {
    it(`${s.name}: an ESN and a non-ESN end do not understand each other (ICV), even with seq-hi 0`, () => {
      const esn = saPair(s, { esn: true });
      const plain = saPair(s, {});
      expect(open(plain.inb, seal(esn.out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt).r).toBe(DropReason.ICV);
      expect(open(esn.inb, seal(plain.out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt).r).toBe(DropReason.ICV);
    });
  }

  it('a tampered packet does not move the 64-bit window', () => {
    const { out, inb } = saPair(CBC, { esn: true, initialSeq: 0xffffffff });
    inb.replay!.accept(0xfffffff0);
    const pkt = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt;
    const bad = Buffer.from(pkt);
    bad[30]! ^= 1;
    expect(open(inb, bad).r).toBe(DropReason.ICV);
    expect(inb.replay!.topHi).toBe(0);
    expect(inb.replay!.top).toBe(0xfffffff0);
    expect(open(inb, pkt).r).toBe(DropReason.NONE);
    expect(inb.seq64()).toBe(2 ** 32);
  });

  it('a packet from an epoch too far ahead fails the ICV (Appendix A3 resync is not done) and changes nothing', () => {
    const { out, inb } = saPair(GCM, { esn: true, initialSeq: 0, initialSeqHi: 5 });
    const pkt = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1')).pkt;
    expect(open(inb, pkt).r).toBe(DropReason.ICV);
    expect(inb.seq64()).toBe(0);
  });
});

describe('ESN exhaustion', () => {
  it('stops at 2^64 - 1: one seq-exhausted event, then SEQ_EXHAUSTED drops (the SA must be rekeyed)', () => {
    const { out, inb } = saPair(GCM, { esn: true, initialSeq: 0xfffffffd, initialSeqHi: 0xffffffff });
    const span = new EspSpan();
    const p = ipv4Packet('10.1.0.1', '10.2.0.1');
    const a = seal(out, p, span);
    const b = seal(out, p, span);
    expect(b.r).toBe(DropReason.NONE);
    expect(b.pkt.readUInt32BE(4)).toBe(0xffffffff);
    expect(b.pkt.subarray(8, 16).toString('hex')).toBe('ffffffffffffffff');
    expect(seal(out, p, span).r).toBe(DropReason.SEQ_EXHAUSTED);
    expect(span.event).toBe(SA_EVENT_SEQ_EXHAUSTED);
    expect(seal(out, p, span).r).toBe(DropReason.SEQ_EXHAUSTED);
    expect(span.event).toBe(0);
    expect(out.seqHi).toBe(0xffffffff);
    expect(out.seq).toBe(0xffffffff);
    expect(out.drops[DropReason.SEQ_EXHAUSTED]).toBe(2);
    // the receiver, brought to the same epoch, accepts the last two numbers
    inb.replay!.accept(0xfffffff0, 0xffffffff);
    expect(open(inb, a.pkt).r).toBe(DropReason.NONE);
    expect(open(inb, b.pkt).r).toBe(DropReason.NONE);
  });

  it('2^32 - 1 is not the end with ESN: the next packet is (hi 1, lo 0)', () => {
    const { out } = saPair(GCM, { esn: true, initialSeq: 0xffffffff });
    const a = seal(out, ipv4Packet('10.1.0.1', '10.2.0.1'));
    expect(a.r).toBe(DropReason.NONE);
    expect(a.pkt.readUInt32BE(4)).toBe(0);
    expect(a.pkt.subarray(8, 16).toString('hex')).toBe('0000000100000000');
  });
});
