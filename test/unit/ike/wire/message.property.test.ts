// Message-level rules (RFC 7296 §2.5 critical bit and versions; SK must be last and alone) and
// fast-check properties: decode(encode(x)) == x for random payload chains, plain and inside SK;
// decodeMessage never throws, whatever the bytes (random, or mutated recorded strongSwan packets).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { decodeMessage, describeMessage, encodeMessage, type SkCrypto } from '../../../../src/ike/wire/message.js';
import { createEncTransform, type EncTransformSpec } from '../../../../src/crypto/aead.js';
import { ExchangeType, HeaderFlag, PayloadType } from '../../../../src/ike/wire/constants.js';
import type { Payload, TrafficSelector, UnknownPayload } from '../../../../src/ike/wire/types.js';
import { notify } from '../../../../src/ike/wire/payloads/notify.js';

const HDR = {
  spiI: Buffer.from('0102030405060708', 'hex'),
  spiR: Buffer.from('1112131415161718', 'hex'),
  exchangeType: ExchangeType.INFORMATIONAL,
  flags: HeaderFlag.I,
  messageId: 7,
};
// plaintext messages exist only in IKE_SA_INIT
const INIT = { ...HDR, exchangeType: ExchangeType.IKE_SA_INIT, messageId: 0 };
const CHILD = { ...HDR, exchangeType: ExchangeType.CREATE_CHILD_SA };
// IKE_SESSION_RESUME (RFC 5723) is not implemented, so it has no payload table (rules.ts):
// decodeMessage decodes any payload type in it, which lets the codec round trips run inside SK
const NO_TABLE = { ...HDR, exchangeType: 38 };

function skPair(spec: EncTransformSpec, encrLen: number, integLen: number): [SkCrypto, SkCrypto] {
  const ei = randomBytes(encrLen);
  const er = randomBytes(encrLen);
  const ai = randomBytes(integLen);
  const ar = randomBytes(integLen);
  const i = { enc: createEncTransform(spec, ei, ai), dec: createEncTransform(spec, er, ar) };
  const r = { enc: createEncTransform(spec, er, ar), dec: createEncTransform(spec, ei, ai) };
  return [i, r];
}
const SUITES: Array<[string, [SkCrypto, SkCrypto]]> = [
  ['aes128-cbc/sha256', skPair({ encr: 12, encrKeyBits: 128, integ: 12 }, 16, 32)],
  ['aes256-cbc/sha512', skPair({ encr: 12, encrKeyBits: 256, integ: 14 }, 32, 64)],
  ['aes128gcm16', skPair({ encr: 20, encrKeyBits: 128, integ: 0 }, 20, 0)],
  ['aes256gcm16', skPair({ encr: 20, encrKeyBits: 256, integ: 0 }, 36, 0)],
  ['chacha20poly1305', skPair({ encr: 28, encrKeyBits: 256, integ: 0 }, 36, 0)],
];

const buf = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const selector: fc.Arbitrary<TrafficSelector> = fc.oneof(
  fc.record({ tsType: fc.constant(7), ipProtocol: fc.nat(255), startPort: fc.nat(65535), endPort: fc.nat(65535), startAddr: buf(4, 4), endAddr: buf(4, 4) }),
  fc.record({ tsType: fc.constant(8), ipProtocol: fc.nat(255), startPort: fc.nat(65535), endPort: fc.nat(65535), startAddr: buf(16, 16), endAddr: buf(16, 16) }),
) as fc.Arbitrary<TrafficSelector>;
const transform = fc.oneof(
  fc.record({ type: fc.integer({ min: 1, max: 5 }), id: fc.nat(65535) }),
  fc.record({ type: fc.integer({ min: 1, max: 5 }), id: fc.nat(65535), keyLength: fc.nat(65535) }),
);
const saPayload = fc.record({
    type: fc.constant(PayloadType.SA),
    proposals: fc.array(
      fc.record({ num: fc.nat(255), protocol: fc.integer({ min: 1, max: 3 }), spi: fc.oneof(buf(0, 0), buf(4, 4), buf(8, 8)), transforms: fc.array(transform, { maxLength: 6 }) }),
      { minLength: 1, maxLength: 3 },
    ),
  });
const kePayload = fc.record({ type: fc.constant(PayloadType.KE), group: fc.nat(65535), data: buf(0, 140) });
const noncePayload = fc.record({ type: fc.constant(PayloadType.NONCE), nonce: buf(16, 64) });
const notifyPayload = fc.record({ type: fc.constant(PayloadType.N), protocol: fc.nat(255), spi: fc.oneof(buf(0, 0), buf(4, 4), buf(8, 8)), notifyType: fc.nat(65535), data: buf(0, 30) });
const vendorPayload = fc.record({ type: fc.constant(PayloadType.V), data: buf(0, 20) });
const payload: fc.Arbitrary<Payload> = fc.oneof(
  saPayload,
  kePayload,
  noncePayload,
  fc.record({ type: fc.constantFrom(PayloadType.IDi, PayloadType.IDr), idType: fc.nat(255), data: buf(0, 40) }),
  fc.record({ type: fc.constant(PayloadType.AUTH), method: fc.nat(255), data: buf(0, 64) }),
  fc.record({ type: fc.constant(PayloadType.CERT), encoding: fc.nat(255), data: buf(0, 64) }),
  fc.record({ type: fc.constant(PayloadType.CERTREQ), encoding: fc.nat(255), data: buf(0, 60) }),
  notifyPayload,
  fc.record({ type: fc.constant(PayloadType.D), protocol: fc.constant(3), spiSize: fc.constant(4), spis: fc.array(buf(4, 4), { maxLength: 4 }) }),
  vendorPayload,
  fc.record({ type: fc.constantFrom(PayloadType.TSi, PayloadType.TSr), selectors: fc.array(selector, { maxLength: 3 }) }),
  fc.record({ type: fc.constant(PayloadType.CP), cfgType: fc.integer({ min: 1, max: 4 }), attributes: fc.array(fc.record({ type: fc.nat(0x7fff), value: buf(0, 17) }), { maxLength: 4 }) }),
) as fc.Arbitrary<Payload>;
/** What an IKE_SA_INIT request may carry (rules.ts): at most one SA, KE and Ni, any N and V, in any order. */
const initPayloads: fc.Arbitrary<Payload[]> = fc
  .tuple(fc.option(saPayload, { nil: undefined }), fc.option(kePayload, { nil: undefined }), fc.option(noncePayload, { nil: undefined }), fc.array(fc.oneof(notifyPayload, vendorPayload), { maxLength: 3 }))
  .map(([a, k, n, rest]) => [a, k, n, ...rest].filter((p) => p !== undefined) as Payload[])
  .chain((ps) => fc.shuffledSubarray(ps, { minLength: ps.length, maxLength: ps.length }));

/** Compare decoded payloads with the originals (Buffers by content). */
function norm(ps: readonly unknown[]): string {
  return JSON.stringify(ps, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('hex') : v));
}

describe('message rules', () => {
  const nonceP: Payload = { type: PayloadType.NONCE, nonce: Buffer.alloc(32, 1) };
  const unknown = (critical: boolean): UnknownPayload => ({ type: 200, critical, data: Buffer.from('abcd') });

  it('an unknown non-critical payload is skipped and listed', () => {
    const b = encodeMessage(INIT, [nonceP, unknown(false), notify(16430)], null);
    const r = decodeMessage(b, null);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.msg.payloads.map((p) => p.type)).toEqual([PayloadType.NONCE, PayloadType.N]);
    expect(r.msg.skipped).toEqual([{ type: 200, critical: false, data: Buffer.from('abcd') }]);
    expect(describeMessage(r.msg)).toBe('IKE_SA_INIT request #0 [ No N(FRAG_SUP) U(200) ]');
  });

  it('an unknown critical payload rejects the message with its type (UNSUPPORTED_CRITICAL_PAYLOAD)', () => {
    const b = encodeMessage(INIT, [nonceP, unknown(true)], null);
    expect(b[28 + 4 + 32 + 1]).toBe(0x80); // C bit on the wire
    const r = decodeMessage(b, null);
    expect(r).toMatchObject({ ok: false, reason: 'unsupported-critical', criticalType: 200 });
    if (!r.ok) expect(r.header?.spiI.toString('hex')).toBe('0102030405060708');
  });

  it('the C bit on a known payload type means nothing', () => {
    const b = encodeMessage(INIT, [nonceP], null);
    b[29] = 0x80;
    expect(decodeMessage(b, null).ok).toBe(true);
  });

  it('an unknown critical payload inside SK is reported after decryption', () => {
    const [i, r] = SUITES[2]![1];
    const res = decodeMessage(encodeMessage(HDR, [unknown(true)], i), r);
    expect(res).toMatchObject({ ok: false, reason: 'unsupported-critical', criticalType: 200 });
  });

  it('major version 3 → "version"; minor version 1 is accepted', () => {
    const b = encodeMessage(INIT, [nonceP], null);
    b[17] = 0x30;
    expect(decodeMessage(b, null)).toMatchObject({ ok: false, reason: 'version' });
    b[17] = 0x21;
    expect(decodeMessage(b, null).ok).toBe(true);
  });

  it('header Length must equal the datagram length', () => {
    const b = encodeMessage(INIT, [nonceP], null);
    expect(decodeMessage(Buffer.concat([b, Buffer.alloc(1)]), null)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('payloads next to SK are refused, SK must be last', () => {
    const [i, r] = SUITES[0]![1];
    const enc = encodeMessage(HDR, [nonceP], i);
    // prepend a plaintext N before the SK payload: N(16430) → SK
    const n = Buffer.from('2e000008000040 2e'.replace(/\s/g, ''), 'hex');
    const withN = Buffer.concat([enc.subarray(0, 28), n, enc.subarray(28)]);
    withN[16] = PayloadType.N;
    withN.writeUInt32BE(withN.length, 24);
    expect(decodeMessage(withN, r)).toMatchObject({ ok: false, reason: 'malformed' });
    // SK followed by another payload
    const after = Buffer.concat([enc, Buffer.from('00000008000040 2e'.replace(/\s/g, ''), 'hex')]);
    after.writeUInt32BE(after.length, 24);
    expect(decodeMessage(after, r)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('only IKE_SA_INIT may be plaintext, and it may not carry SK', () => {
    expect(decodeMessage(encodeMessage(HDR, [nonceP], null), null)).toMatchObject({ ok: false, reason: 'malformed', detail: 'INFORMATIONAL is not encrypted' });
    const [i, r] = SUITES[2]![1];
    expect(decodeMessage(encodeMessage(INIT, [nonceP], i), r)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('a flipped Next Payload in the header cannot turn an empty SK into a plaintext message', () => {
    const [i, r] = SUITES[2]![1];
    const b = encodeMessage(HDR, [], i);
    for (let bit = 0; bit < 8; bit++) {
      const bad = Buffer.from(b);
      bad[16]! ^= 1 << bit; // SK (46) becomes CERTREQ (38), unknown 14, ...
      expect(decodeMessage(bad, r).ok, `bit ${bit}`).toBe(false);
    }
  });

  it('an empty SK (DPD) round-trips in every suite', () => {
    for (const [, [i, r]] of SUITES) {
      const res = decodeMessage(encodeMessage({ ...HDR, flags: HeaderFlag.R }, [], i), r);
      expect(res.ok).toBe(true);
      if (res.ok) expect(describeMessage(res.msg)).toBe('INFORMATIONAL response #7 [ ]');
    }
  });

  it('CBC pads to the 16-byte block; AEAD AAD is header + SK header (tampering there fails)', () => {
    const [i, r] = SUITES[0]![1];
    const b = encodeMessage(CHILD, [nonceP], i);
    // 28 header + 4 SK header + 16 IV + ciphertext (36 → 48) + 16 ICV
    expect(b.length).toBe(28 + 4 + 16 + 48 + 16);
    expect(decodeMessage(b, r).ok).toBe(true);
    const [gi, gr] = SUITES[2]![1];
    const g = encodeMessage(CHILD, [nonceP], gi);
    const t = Buffer.from(g);
    t[30] ^= 0x80; // SK generic header byte: in the AAD
    expect(decodeMessage(t, gr)).toMatchObject({ ok: false });
    expect(decodeMessage(g, gr).ok).toBe(true);
  });
});

describe('properties', () => {
  it('plain: decode(encode(payloads)) == payloads', () => {
    fc.assert(
      fc.property(initPayloads, (ps) => {
        const r = decodeMessage(encodeMessage(INIT, ps, null), null);
        expect(r.ok).toBe(true);
        if (r.ok) expect(norm(r.msg.payloads)).toBe(norm(ps));
      }),
      { numRuns: 200 },
    );
  });

  for (const [name, [i, r]] of SUITES) {
    it(`SK ${name}: decode(encode(payloads)) == payloads, and one flipped bit is rejected`, () => {
      fc.assert(
        fc.property(fc.array(payload, { maxLength: 5 }), fc.nat(), (ps, pos) => {
          const b = encodeMessage(NO_TABLE, ps, i);
          const res = decodeMessage(b, r);
          expect(res.ok).toBe(true);
          if (res.ok) {
            expect(res.msg.encrypted).toBe(true);
            expect(norm(res.msg.payloads)).toBe(norm(ps));
          }
          const bad = Buffer.from(b);
          bad[pos % bad.length]! ^= 1 << (pos % 8);
          expect(decodeMessage(bad, r).ok).toBe(false);
        }),
        { numRuns: 60 },
      );
    });
  }

  it('decodeMessage never throws on random bytes (with and without keys)', () => {
    const [, r] = SUITES[0]![1];
    fc.assert(
      fc.property(buf(0, 300), fc.boolean(), (b, withHeader) => {
        if (withHeader && b.length >= 28) {
          b[17] = 0x20;
          b.writeUInt32BE(b.length, 24);
        }
        expect(() => decodeMessage(b, null)).not.toThrow();
        expect(() => decodeMessage(b, r)).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });

  it('decodeMessage never throws on mutated recorded strongSwan messages', () => {
    const fx = JSON.parse(readFileSync(new URL('../../../recorded/ike/strongswan-cbc-sha256-x25519.json', import.meta.url), 'utf8')) as {
      datagrams: Array<{ hex: string }>;
    };
    const dgs = fx.datagrams.map((d) => Buffer.from(d.hex, 'hex'));
    fc.assert(
      fc.property(fc.nat(dgs.length - 1), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 8 }), fc.nat(400), (k, edits, cut) => {
        const b = Buffer.from(dgs[k]!);
        for (const [pos, v] of edits) b[pos % b.length] = v;
        const r1 = decodeMessage(b, null);
        const r2 = decodeMessage(b.subarray(0, Math.min(cut, b.length)), null);
        expect(typeof r1.ok).toBe('boolean');
        expect(typeof r2.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('buffer ownership', () => {
  it('decoded payloads do not alias the input datagram, and decryption leaves it intact', () => {
    const [i, r] = SUITES[2]![1];
    const nonceP: Payload = { type: PayloadType.NONCE, nonce: Buffer.alloc(32, 1) };
    const plain = encodeMessage(INIT, [nonceP], null);
    const res = decodeMessage(plain, null);
    plain.fill(0xee);
    expect(res.ok && (res.msg.payloads[0] as { nonce: Buffer }).nonce.equals(Buffer.alloc(32, 1))).toBe(true);
    expect(res.ok && res.msg.header.spiI.toString('hex')).toBe('0102030405060708');
    const enc = encodeMessage(CHILD, [nonceP], i);
    const before = Buffer.from(enc);
    expect(decodeMessage(enc, r).ok).toBe(true);
    expect(enc.equals(before)).toBe(true);
  });
});
