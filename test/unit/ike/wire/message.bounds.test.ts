// Bounded decoding (RFC 7296 §3): whatever the length and count fields claim, decodeMessage does
// work and allocates memory linear in the bytes it was given.
// - A Delete payload with SPI size 0 (the IKE SA, §3.11) carries no SPIs; one that claims 65,535
//   SPIs of 0 bytes each used to cost 65,535 views per 8-byte payload.
// - The exchange's payload table (rules.ts) is checked on the generic headers before any body is
//   decoded, so payloads an exchange cannot carry cost nothing.
// - Property: on random input up to 64 KiB (raw bytes, and well-framed chains of random bodies in
//   the clear and inside SK), decodeMessage never throws and the number of elements it decodes
//   (views cut from the datagram plus array entries in the result) never exceeds the number of
//   bytes received.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { decodeMessage, encodeMessage, type DecodeResult, type SkCrypto } from '../../../../src/ike/wire/message.js';
import * as del from '../../../../src/ike/wire/payloads/delete.js';
import { createEncTransform } from '../../../../src/crypto/aead.js';
import { ExchangeType, HeaderFlag, PayloadType } from '../../../../src/ike/wire/constants.js';
import type { UnknownPayload } from '../../../../src/ike/wire/types.js';
import { ParseError } from '../../../../src/common/errors.js';

const SPI_I = Buffer.from('0102030405060708', 'hex');
const SPI_R = Buffer.from('1112131415161718', 'hex');

function skPair(): [SkCrypto, SkCrypto] {
  const spec = { encr: 20, encrKeyBits: 128, integ: 0 };
  const ei = randomBytes(20);
  const er = randomBytes(20);
  const none = Buffer.alloc(0);
  return [
    { enc: createEncTransform(spec, ei, none), dec: createEncTransform(spec, er, none) },
    { enc: createEncTransform(spec, er, none), dec: createEncTransform(spec, ei, none) },
  ];
}
const [skI, skR] = skPair();

/** Elements a decode produced: every array entry anywhere in the result (payloads, proposals, SPIs, ...). */
function decodedElements(v: unknown, depth = 0): number {
  if (depth > 8 || v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return 0;
  let n = 0;
  if (Array.isArray(v)) {
    n += v.length;
    for (const x of v) n += decodedElements(x, depth + 1);
    return n;
  }
  for (const x of Object.values(v)) n += decodedElements(x, depth + 1);
  return n;
}

/**
 * Runs one decode and measures its work: the views it cut out of the datagram (every decoded SPI,
 * nonce, selector address, ... is one; counted even when a later payload makes the decode fail)
 * plus the array entries in its result.
 */
function decodeWork(fn: () => DecodeResult): { r: DecodeResult; work: number } {
  const proto = Buffer.prototype as unknown as Record<string, unknown>;
  const own = Object.getOwnPropertyDescriptor(Buffer.prototype, 'subarray');
  const orig = Buffer.prototype.subarray;
  let views = 0;
  Object.defineProperty(Buffer.prototype, 'subarray', {
    configurable: true,
    writable: true,
    value(this: Buffer, start?: number, end?: number) {
      views++;
      return orig.call(this, start, end);
    },
  });
  let r: DecodeResult;
  try {
    r = fn();
  } finally {
    if (own) Object.defineProperty(Buffer.prototype, 'subarray', own);
    else delete proto.subarray;
  }
  return { r, work: views + (r.ok ? decodedElements(r.msg) : 0) };
}

/** IKE header (28 bytes) followed by `payloads` raw generic-header+body bytes. */
function rawMessage(exchangeType: number, flags: number, first: number, chain: Buffer): Buffer {
  const b = Buffer.alloc(28 + chain.length);
  SPI_I.copy(b, 0);
  if (exchangeType !== ExchangeType.IKE_SA_INIT) SPI_R.copy(b, 8);
  b[16] = first;
  b[17] = 0x20;
  b[18] = exchangeType;
  b[19] = flags;
  b.writeUInt32BE(0, 20);
  b.writeUInt32BE(b.length, 24);
  chain.copy(b, 28);
  return b;
}

/** 40 Delete payloads, each "protocol IKE, SPI size 0, 65,535 SPIs": 320 bytes of chain. */
function hostileDeletes(count: number): Buffer {
  const chain = Buffer.alloc(count * 8);
  for (let i = 0; i < count; i++) {
    const o = i * 8;
    chain[o] = i + 1 < count ? PayloadType.D : PayloadType.NONE;
    chain.writeUInt16BE(8, o + 2);
    chain[o + 4] = 1; // protocol IKE
    chain[o + 5] = 0; // SPI size 0
    chain.writeUInt16BE(0xffff, o + 6); // Num of SPIs
  }
  return chain;
}

describe('bounded decoding', () => {
  it('Delete with SPI size 0 must carry no SPIs (RFC 7296 §3.11)', () => {
    expect(() => del.decode(Buffer.from([1, 0, 0xff, 0xff]), 100)).toThrow(ParseError);
    expect(() => del.decode(Buffer.from([1, 0, 0, 1]), 100)).toThrow(/1 SPIs of size 0/);
    expect(del.decode(Buffer.from([1, 0, 0, 0]), 100)).toEqual({ type: PayloadType.D, protocol: 1, spiSize: 0, spis: [] });
    expect(del.decode(Buffer.from('0304000112345678', 'hex'), 100).spis).toHaveLength(1);
  });

  it('a 348-byte IKE_SA_INIT with 40 Deletes of 65,535 empty SPIs is refused at once', () => {
    const b = rawMessage(ExchangeType.IKE_SA_INIT, HeaderFlag.I, PayloadType.D, hostileDeletes(40));
    expect(b.length).toBe(348);
    const t0 = performance.now();
    const r = decodeMessage(b, null);
    const ms = performance.now() - t0;
    expect(r).toMatchObject({ ok: false, reason: 'malformed' });
    if (!r.ok) expect(r.detail).toMatch(/payload type 42 not allowed/);
    // it used to take about 1.2 s and 300 MB; the payload table refuses it before any body is read
    expect(ms).toBeLessThan(250);
  });

  it('the same Deletes inside an INFORMATIONAL (where D is allowed) fail in the Delete codec', () => {
    const ds: UnknownPayload[] = [];
    for (let i = 0; i < 40; i++) ds.push({ type: PayloadType.D, critical: false, data: Buffer.from([1, 0, 0xff, 0xff]) });
    const b = encodeMessage({ spiI: SPI_I, spiR: SPI_R, exchangeType: ExchangeType.INFORMATIONAL, flags: HeaderFlag.I, messageId: 1 }, ds, skI);
    const r = decodeMessage(b, skR);
    expect(r).toMatchObject({ ok: false, reason: 'malformed' });
    if (!r.ok) expect(r.detail).toMatch(/65535 SPIs of size 0/);
  });

  it('payload types an exchange cannot carry, or too many of one, are refused before decoding', () => {
    const hdr = { spiI: SPI_I, spiR: SPI_R, exchangeType: ExchangeType.CREATE_CHILD_SA, flags: HeaderFlag.I, messageId: 1 };
    // an AUTH payload in CREATE_CHILD_SA, with a body the AUTH codec would refuse: the table speaks first
    const auth: UnknownPayload = { type: PayloadType.AUTH, critical: false, data: Buffer.alloc(1) };
    const r1 = decodeMessage(encodeMessage(hdr, [auth], skI), skR);
    expect(r1).toMatchObject({ ok: false, reason: 'malformed', detail: 'CREATE_CHILD_SA: payload type 39 not allowed here' });
    const nonce: UnknownPayload = { type: PayloadType.NONCE, critical: false, data: Buffer.alloc(32) };
    const r2 = decodeMessage(encodeMessage(hdr, [nonce, nonce], skI), skR);
    expect(r2).toMatchObject({ ok: false, reason: 'malformed', detail: 'CREATE_CHILD_SA: 2 payloads of type 40, at most 1' });
    // unknown non-critical payloads are not counted and not decoded
    const unknown: UnknownPayload = { type: 200, critical: false, data: Buffer.alloc(3) };
    const r3 = decodeMessage(encodeMessage(hdr, [nonce, unknown, unknown], skI), skR);
    expect(r3.ok).toBe(true);
    if (r3.ok) expect(r3.msg.skipped).toHaveLength(2);
  });
});

// ---- property: never throws, decoded elements <= bytes ---------------------------------------

// body bytes biased towards the values length and count fields trip over (0, 1, 4, 8, 0xff)
const byte = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 8, 0x80, 0xff), fc.nat(255));
// "counted" bodies start like the payloads that carry a size and a count (D, N, TS, CP): a byte,
// a small size, a 16-bit count, then a few bytes or none
const counted = fc
  .tuple(byte, fc.constantFrom(0, 1, 4, 8), fc.nat(65535), fc.oneof(fc.constant([]), fc.array(byte, { maxLength: 8 })))
  .map(([a, size, count, rest]) => [a, size, count >> 8, count & 0xff, ...rest]);
const body = fc.oneof(
  { weight: 4, arbitrary: fc.array(byte, { maxLength: 16 }) },
  { weight: 4, arbitrary: counted },
  { weight: 1, arbitrary: fc.array(byte, { maxLength: 1400 }) },
).map((a) => Buffer.from(a));
const payloadType = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 47, 48) },
  { weight: 1, arbitrary: fc.nat(255).filter((t) => t !== PayloadType.SK && t !== PayloadType.SKF && t !== PayloadType.NONE) },
);
const rawPayload: fc.Arbitrary<UnknownPayload> = fc.record({ type: payloadType, critical: fc.boolean(), data: body });
const exchange = fc.constantFrom(ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH, ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL, 38);

const decodedType = fc.constantFrom(33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 47);

describe('decodeMessage work is linear in the input', () => {
  it('each payload codec alone, on random and count-shaped bodies inside SK', () => {
    // an exchange without a payload table, so every type reaches its codec
    const hdr = { spiI: SPI_I, spiR: SPI_R, exchangeType: 38, flags: HeaderFlag.I, messageId: 1 };
    fc.assert(
      fc.property(decodedType, fc.oneof(counted.map((a) => Buffer.from(a)), body), (type, data) => {
        const b = encodeMessage(hdr, [{ type, critical: false, data }], skI);
        expect(decodeWork(() => decodeMessage(b, skR)).work).toBeLessThanOrEqual(b.length);
      }),
      { numRuns: 1000 },
    );
  });

  it('random bytes up to 64 KiB (raw, and with a plausible IKE header)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 65535 }), fc.boolean(), exchange, fc.nat(255), (a, withHeader, ex, first) => {
        const b = Buffer.from(a);
        if (withHeader && b.length >= 28) {
          b[16] = first;
          b[17] = 0x20;
          b[18] = ex;
          b.writeUInt32BE(b.length, 24);
        }
        // decodeWork lets an exception through, failing the property
        expect(decodeWork(() => decodeMessage(b, null)).work).toBeLessThanOrEqual(b.length);
        expect(decodeWork(() => decodeMessage(b, skR)).work).toBeLessThanOrEqual(b.length);
      }),
      { numRuns: 60 },
    );
  });

  it('well-framed chains of random payload bodies, in the clear and inside SK', () => {
    fc.assert(
      fc.property(fc.array(rawPayload, { maxLength: 40 }), exchange, fc.boolean(), fc.boolean(), (ps, ex, response, encrypted) => {
        const hdr = { spiI: SPI_I, spiR: SPI_R, exchangeType: ex, flags: response ? HeaderFlag.R : HeaderFlag.I, messageId: 1 };
        const b = encodeMessage(hdr, ps, encrypted ? skI : null);
        expect(decodeWork(() => decodeMessage(b, skR)).work).toBeLessThanOrEqual(b.length);
      }),
      { numRuns: 500 },
    );
  });
});
