// RFC 7383 fragmentation: split / decode / reassemble with real transforms; every fragment
// protected on its own (a flipped byte, including the fragment number in the AAD, is rejected);
// §2.6.1 Total handling; limits.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createEncTransform, type EncTransformSpec } from '../../../../src/crypto/aead.js';
import { decodeFragment, encodeFragments, FragmentReassembler, MAX_FRAGMENTS } from '../../../../src/ike/wire/fragments.js';
import { decodeMessage, describeMessage, type SkCrypto } from '../../../../src/ike/wire/message.js';
import { ExchangeType, HeaderFlag, PayloadType } from '../../../../src/ike/wire/constants.js';
import type { Payload } from '../../../../src/ike/wire/types.js';

function pair(spec: EncTransformSpec, e: number, a: number): [SkCrypto, SkCrypto] {
  const [ei, er, ai, ar] = [randomBytes(e), randomBytes(e), randomBytes(a), randomBytes(a)];
  return [
    { enc: createEncTransform(spec, ei, ai), dec: createEncTransform(spec, er, ar) },
    { enc: createEncTransform(spec, er, ar), dec: createEncTransform(spec, ei, ai) },
  ];
}
const SUITES: Array<[string, [SkCrypto, SkCrypto]]> = [
  ['aes128-cbc/sha256', pair({ encr: 12, encrKeyBits: 128, integ: 12 }, 16, 32)],
  ['aes256gcm16', pair({ encr: 20, encrKeyBits: 256, integ: 0 }, 36, 0)],
  ['aes128gcm8', pair({ encr: 18, encrKeyBits: 128, integ: 0 }, 20, 0)],
  ['chacha20poly1305', pair({ encr: 28, encrKeyBits: 256, integ: 0 }, 36, 0)],
];
const HDR = { spiI: randomBytes(8), spiR: randomBytes(8), exchangeType: ExchangeType.IKE_AUTH, flags: HeaderFlag.I, messageId: 1 };
// an IKE_AUTH with a big certificate: IDi CERT AUTH (like an RSA-3072 IKE_AUTH, 1787 bytes in the lab)
const PAYLOADS: Payload[] = [
  { type: PayloadType.IDi, idType: 2, data: Buffer.from('a.example.org') },
  { type: PayloadType.CERT, encoding: 4, data: randomBytes(1500) },
  { type: PayloadType.AUTH, method: 14, data: randomBytes(400) },
];

describe('encodeFragments / decodeFragment / FragmentReassembler', () => {
  for (const [name, [i, r]] of SUITES) {
    it(`${name}: splits into fragments of at most 544 bytes and reassembles in any order`, () => {
      const frags = encodeFragments(HDR, PAYLOADS, i, 544);
      expect(frags.length).toBeGreaterThanOrEqual(4);
      for (const f of frags) expect(f.length).toBeLessThanOrEqual(544);
      const decoded = frags.map((f) => decodeFragment(f, r));
      for (const d of decoded) expect(d.ok).toBe(true);
      const ok = decoded.map((d) => (d.ok ? d : null)!);
      expect(ok.map((d) => d.fragmentNumber)).toEqual(frags.map((_, k) => k + 1));
      expect(ok[0]!.nextPayload).toBe(PayloadType.IDi);
      expect(ok[1]!.nextPayload).toBe(0);
      const re = new FragmentReassembler();
      const order = [...ok].reverse();
      let result = null;
      for (const d of order) {
        expect(result).toBeNull();
        result = re.add(d);
      }
      expect(result).not.toBeNull();
      expect(result!.ok).toBe(true);
      if (result!.ok) {
        expect(describeMessage(result!.msg)).toBe('IKE_AUTH request #1 [ IDi CERT AUTH ]');
        expect((result!.msg.payloads[1] as { data: Buffer }).data.equals((PAYLOADS[1] as { data: Buffer }).data)).toBe(true);
      }
      // decodeMessage itself refuses SKF (the caller routes by header.nextPayload)
      expect(decodeMessage(frags[0]!, r).ok).toBe(false);
    });

    it(`${name}: each fragment is authenticated on its own, header and fragment number included`, () => {
      const f = encodeFragments(HDR, PAYLOADS, i, 544)[1]!;
      for (const pos of [0, 19, 20, 28, 31, 32, 33, 35, 36, f.length - 1]) {
        const bad = Buffer.from(f);
        bad[pos]! ^= 0x01;
        const d = decodeFragment(bad, r);
        expect(d.ok, `flip at ${pos}`).toBe(false);
      }
      expect(decodeFragment(f, i).ok).toBe(false); // wrong direction
    });
  }

  it('small messages make exactly one fragment', () => {
    const [i, r] = SUITES[1]![1];
    const frags = encodeFragments(HDR, [PAYLOADS[0]!], i, 1280);
    expect(frags).toHaveLength(1);
    const d = decodeFragment(frags[0]!, r);
    expect(d.ok && d.totalFragments === 1).toBe(true);
    if (d.ok) expect(new FragmentReassembler().add(d)?.ok).toBe(true);
  });

  it('a larger Total restarts the set; a smaller Total or a duplicate is dropped (RFC 7383 §2.6.1)', () => {
    const [i, r] = SUITES[1]![1];
    const big = encodeFragments(HDR, PAYLOADS, i, 400).map((f) => decodeFragment(f, r)).map((d) => (d.ok ? d : null)!);
    const small = encodeFragments(HDR, PAYLOADS, i, 1000).map((f) => decodeFragment(f, r)).map((d) => (d.ok ? d : null)!);
    expect(big.length).toBeGreaterThan(small.length);
    const re = new FragmentReassembler();
    expect(re.add(small[0]!)).toBeNull();
    expect(re.held).toBe(1);
    expect(re.add(big[0]!)).toBeNull(); // larger Total: restart
    expect(re.held).toBe(1);
    expect(re.add(small[1]!)).toBeNull(); // smaller Total: dropped
    expect(re.held).toBe(1);
    expect(re.add(big[0]!)).toBeNull(); // duplicate
    let res = null;
    for (const d of big.slice(1)) res = re.add(d);
    expect(res?.ok).toBe(true);
  });

  it('holds one message at a time: a fragment of another message ID drops the partial set', () => {
    const [i, r] = SUITES[1]![1];
    const one = encodeFragments(HDR, PAYLOADS, i, 544).map((f) => decodeFragment(f, r)).map((d) => (d.ok ? d : null)!);
    const two = encodeFragments({ ...HDR, messageId: 2 }, PAYLOADS, i, 544).map((f) => decodeFragment(f, r)).map((d) => (d.ok ? d : null)!);
    const re = new FragmentReassembler();
    expect(re.add(one[0]!)).toBeNull();
    expect(re.add(one[1]!)).toBeNull();
    expect(re.held).toBe(2);
    expect(re.add(two[0]!)).toBeNull();
    expect(re.held).toBe(1); // message 1's fragments are gone
    // (the IKE SA passes on only fragments of the message ID it expects, src/ike/sa/ike-sa.ts)
    let res = null;
    for (const d of two.slice(1)) res = re.add(d);
    expect(res?.ok && res.msg.header.messageId).toBe(2);
    expect(re.held).toBe(0);
  });

  it('refuses a Total above the fragment limit', () => {
    const [i, r] = SUITES[1]![1];
    const frags = encodeFragments(HDR, PAYLOADS, i, 544).map((f) => decodeFragment(f, r)).map((d) => (d.ok ? d : null)!);
    const re = new FragmentReassembler(2);
    for (const d of frags) expect(re.add(d)).toBeNull();
    expect(frags.length).toBeGreaterThan(2);
    expect(re.held).toBe(0);
  });

  it('enforces the byte limit and rejects impossible sizes', () => {
    const [i, r] = SUITES[1]![1];
    const frags = encodeFragments(HDR, PAYLOADS, i, 544).map((f) => decodeFragment(f, r)).map((d) => (d.ok ? d : null)!);
    const re = new FragmentReassembler(MAX_FRAGMENTS, 1000);
    let res = null;
    for (const d of frags) res = re.add(d);
    expect(res).toBeNull();
    expect(() => encodeFragments(HDR, PAYLOADS, i, 60)).toThrow(RangeError);
    expect(() => encodeFragments(HDR, [{ type: PayloadType.CERT, encoding: 4, data: Buffer.alloc(60000) }], i, 100)).toThrow(RangeError);
  });

  it('decodeFragment rejects malformed fragment numbers without throwing', () => {
    const [i, r] = SUITES[1]![1];
    const f = Buffer.from(encodeFragments(HDR, PAYLOADS, i, 544)[0]!);
    f.writeUInt16BE(0, 32);
    expect(decodeFragment(f, r)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(decodeFragment(f.subarray(0, 30), r).ok).toBe(false);
  });
});
