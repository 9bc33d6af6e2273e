// IKE and child key derivation against strongSwan 5.9.8's own key dumps
// (charon ike=4 chd=4 log levels, kept in test/vectors/ike-lab-appendix-a.json), and the key
// lengths each transform takes from prf+ (RFC 7296 §2.13-2.18, RFC 5282 §7.1, RFC 7634).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createPrf, prfPlus } from '../../../../src/crypto/prf.js';
import {
  deriveChildKeys,
  deriveIkeKeys,
  deriveRekeyedIkeKeys,
  encodeIdBody,
  ikeKeyLengths,
  pskAuthData,
  signedOctets,
  skCryptoFor,
} from '../../../../src/ike/sa/keymat.js';
import { DhId, EncrId, EsnId, IdType, IntegId, PrfId, ProtocolId, TransformType } from '../../../../src/ike/wire/constants.js';
import type { Proposal, Transform } from '../../../../src/ike/wire/types.js';
import type { EncTransform, EncTransformSpec } from '../../../../src/crypto/aead.js';

const v = JSON.parse(readFileSync(new URL('../../../vectors/ike-lab-appendix-a.json', import.meta.url), 'utf8')) as Record<
  string,
  string
>;
const hx = (s: string) => Buffer.from(s, 'hex');
const sha256 = createPrf(PrfId.PRF_HMAC_SHA2_256);

function prop(protocol: ProtocolId, ...transforms: Transform[]): Proposal {
  return { num: 1, protocol, spi: Buffer.alloc(0), transforms };
}
const ENCR = (id: number, keyLength?: number): Transform => ({ type: TransformType.ENCR, id, ...(keyLength ? { keyLength } : {}) });
const INTEG = (id: number): Transform => ({ type: TransformType.INTEG, id });
const PRF = (id: number): Transform => ({ type: TransformType.PRF, id });
const DH = (id: number): Transform => ({ type: TransformType.DH, id });
const ESN = (id: number): Transform => ({ type: TransformType.ESN, id });

describe('ikeKeyLengths (RFC 7296 §2.14 slices, RFC 5282 §7.1 salts)', () => {
  it.each([
    ['aes128-sha256', prop(1, ENCR(EncrId.ENCR_AES_CBC, 128), INTEG(IntegId.AUTH_HMAC_SHA2_256_128), PRF(PrfId.PRF_HMAC_SHA2_256), DH(19)), 16, 32, 5],
    ['aes256-sha384', prop(1, ENCR(EncrId.ENCR_AES_CBC, 256), INTEG(IntegId.AUTH_HMAC_SHA2_384_192), PRF(PrfId.PRF_HMAC_SHA2_384)), 32, 48, 6],
    ['aes256gcm16-prfsha384', prop(1, ENCR(EncrId.ENCR_AES_GCM_16, 256), PRF(PrfId.PRF_HMAC_SHA2_384)), 36, 0, 6],
    ['aes128gcm16-prfsha256', prop(1, ENCR(EncrId.ENCR_AES_GCM_16, 128), PRF(PrfId.PRF_HMAC_SHA2_256)), 20, 0, 5],
    ['chacha20poly1305-prfsha512', prop(1, ENCR(EncrId.ENCR_CHACHA20_POLY1305), PRF(PrfId.PRF_HMAC_SHA2_512)), 36, 0, 7],
    ['aes192-sha1', prop(1, ENCR(EncrId.ENCR_AES_CBC, 192), INTEG(IntegId.AUTH_HMAC_SHA1_96), PRF(PrfId.PRF_HMAC_SHA1)), 24, 20, 2],
    ['aes256-sha512', prop(1, ENCR(EncrId.ENCR_AES_CBC, 256), INTEG(IntegId.AUTH_HMAC_SHA2_512_256), PRF(PrfId.PRF_HMAC_SHA2_512)), 32, 64, 7],
  ])('%s', (_n, p, encr, integ, prfId) => {
    expect(ikeKeyLengths(p)).toEqual({ encrKeyLen: encr, integKeyLen: integ, prfId });
  });

  it('refuses AES without a key length, and a proposal without PRF', () => {
    expect(() => ikeKeyLengths(prop(1, ENCR(EncrId.ENCR_AES_CBC), INTEG(12), PRF(5)))).toThrow(RangeError);
    expect(() => ikeKeyLengths(prop(1, ENCR(EncrId.ENCR_AES_CBC, 128), INTEG(12)))).toThrow(RangeError);
  });
});

describe('deriveIkeKeys (RFC 7296 §2.14) against strongSwan', () => {
  it('reproduces SK_d, SK_ai/ar, SK_ei/er, SK_pi/pr of the lab IKE SA', () => {
    const keys = deriveIkeKeys(sha256, hx(v.sharedSecret!), hx(v.nonceI!), hx(v.nonceR!), hx(v.spiI!), hx(v.spiR!), 16, 32);
    expect(keys.skD.toString('hex')).toBe(v.skD);
    expect(keys.skAi.toString('hex')).toBe(v.skAi);
    expect(keys.skAr.toString('hex')).toBe(v.skAr);
    expect(keys.skEi.toString('hex')).toBe(v.skEi);
    expect(keys.skEr.toString('hex')).toBe(v.skEr);
    expect(keys.skPi.toString('hex')).toBe(v.skPi);
    expect(keys.skPr.toString('hex')).toBe(v.skPr);
    // SKEYSEED = prf(Ni | Nr, g^ir)
    expect(sha256.compute(Buffer.concat([hx(v.nonceI!), hx(v.nonceR!)]), hx(v.sharedSecret!)).toString('hex')).toBe(v.skeyseed);
  });

  it('swapping the nonces or SPIs changes every key (order matters)', () => {
    const a = deriveIkeKeys(sha256, hx(v.sharedSecret!), hx(v.nonceR!), hx(v.nonceI!), hx(v.spiI!), hx(v.spiR!), 16, 32);
    expect(a.skD.toString('hex')).not.toBe(v.skD);
    const b = deriveIkeKeys(sha256, hx(v.sharedSecret!), hx(v.nonceI!), hx(v.nonceR!), hx(v.spiR!), hx(v.spiI!), 16, 32);
    expect(b.skD.toString('hex')).not.toBe(v.skD);
  });

  it('AEAD suite: no SK_a, SK_e with salt', () => {
    const k = deriveIkeKeys(sha256, Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(32, 3), Buffer.alloc(8, 4), Buffer.alloc(8, 5), 20, 0);
    expect(k.skAi.length).toBe(0);
    expect(k.skAr.length).toBe(0);
    expect(k.skEi.length).toBe(20);
    expect(k.skPr.length).toBe(32);
  });

  it('rekeyed SKEYSEED = prf(SK_d(old), g^ir | Ni | Nr) with the new SPIs (§2.18)', () => {
    const oldSkD = hx(v.skD!);
    const g = Buffer.alloc(32, 9);
    const ni = Buffer.alloc(32, 1);
    const nr = Buffer.alloc(32, 2);
    const si = Buffer.alloc(8, 3);
    const sr = Buffer.alloc(8, 4);
    const k = deriveRekeyedIkeKeys(sha256, oldSkD, g, ni, nr, si, sr, 16, 32);
    const skeyseed = sha256.compute(oldSkD, Buffer.concat([g, ni, nr]));
    const km = prfPlus(sha256, skeyseed, Buffer.concat([ni, nr, si, sr]), 192);
    expect(Buffer.concat([k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr]).toString('hex')).toBe(km.toString('hex'));
  });
});

describe('deriveChildKeys (RFC 7296 §2.17)', () => {
  const gcm128 = prop(ProtocolId.ESP, ENCR(EncrId.ENCR_AES_GCM_16, 128), ESN(EsnId.NO_ESN));

  it('reproduces the lab child SA KEYMAT (AES-GCM-16-128, no PFS): key|salt per direction', () => {
    const k = deriveChildKeys(sha256, hx(v.skD!), hx(v.nonceI!), hx(v.nonceR!), null, gcm128);
    expect(k.encrKeyI.toString('hex')).toBe(v.childKeymatIR);
    expect(k.encrKeyR.toString('hex')).toBe(v.childKeymatRI);
    expect(k.integKeyI.length).toBe(0);
    expect(k.integKeyR.length).toBe(0);
  });

  it('CBC + HMAC slices encrI | integI | encrR | integR', () => {
    const p = prop(ProtocolId.ESP, ENCR(EncrId.ENCR_AES_CBC, 128), INTEG(IntegId.AUTH_HMAC_SHA2_256_128), ESN(0));
    const k = deriveChildKeys(sha256, hx(v.skD!), hx(v.nonceI!), hx(v.nonceR!), null, p);
    const km = prfPlus(sha256, hx(v.skD!), Buffer.concat([hx(v.nonceI!), hx(v.nonceR!)]), 96);
    expect([k.encrKeyI.length, k.integKeyI.length, k.encrKeyR.length, k.integKeyR.length]).toEqual([16, 32, 16, 32]);
    expect(Buffer.concat([k.encrKeyI, k.integKeyI, k.encrKeyR, k.integKeyR]).equals(km)).toBe(true);
  });

  it('PFS: the seed is g^ir | Ni | Nr', () => {
    const g = Buffer.alloc(256, 7); // a MODP-2048 secret: seed of 320 bytes as in the lab
    const k = deriveChildKeys(sha256, hx(v.skD!), hx(v.nonceI!), hx(v.nonceR!), g, gcm128);
    const km = prfPlus(sha256, hx(v.skD!), Buffer.concat([g, hx(v.nonceI!), hx(v.nonceR!)]), 40);
    expect(Buffer.concat([k.encrKeyI, k.encrKeyR]).equals(km)).toBe(true);
    expect(k.encrKeyI.toString('hex')).not.toBe(v.childKeymatIR);
  });

  it('ChaCha20-Poly1305 takes 36 bytes per direction', () => {
    const p = prop(ProtocolId.ESP, ENCR(EncrId.ENCR_CHACHA20_POLY1305), ESN(0));
    const k = deriveChildKeys(sha256, hx(v.skD!), hx(v.nonceI!), hx(v.nonceR!), null, p);
    expect(k.encrKeyI.length).toBe(36);
    expect(k.encrKeyR.length).toBe(36);
  });
});

describe('PSK AUTH (RFC 7296 §2.15)', () => {
  it('reproduces prf(PSK, "Key Pad for IKEv2") and prf(SK_pi, IDi\') from the lab', () => {
    expect(sha256.compute(Buffer.from(v.psk!), Buffer.from('Key Pad for IKEv2')).toString('hex')).toBe(v.pskPad);
    const idBody = encodeIdBody(IdType.ID_RFC822_ADDR, Buffer.from('a@example.org'));
    expect(idBody.toString('hex')).toBe(v.idiBody);
    const octets = signedOctets(sha256, Buffer.from('RealMessage1'), hx(v.nonceR!), hx(v.skPi!), idBody);
    expect(octets.subarray(octets.length - 32).toString('hex')).toBe(v.prfSkPiIdi);
    expect(octets.subarray(0, 12).toString()).toBe('RealMessage1');
    expect(octets.subarray(12, 44).toString('hex')).toBe(v.nonceR);
  });

  it('AUTH = prf(pad, RealMessage | Nr | prf(SK_pi, IDi\'))', () => {
    const msg = Buffer.from('0123456789abcdef', 'hex');
    const idBody = hx(v.idiBody!);
    const auth = pskAuthData(sha256, Buffer.from(v.psk!), msg, hx(v.nonceR!), hx(v.skPi!), idBody);
    const want = sha256.compute(hx(v.pskPad!), Buffer.concat([msg, hx(v.nonceR!), hx(v.prfSkPiIdi!)]));
    expect(auth.toString('hex')).toBe(want.toString('hex'));
    // a different PSK gives a different AUTH
    expect(pskAuthData(sha256, Buffer.from('x'), msg, hx(v.nonceR!), hx(v.skPi!), idBody).equals(auth)).toBe(false);
  });
});

describe('skCryptoFor', () => {
  const p = prop(1, ENCR(EncrId.ENCR_AES_GCM_16, 256), PRF(PrfId.PRF_HMAC_SHA2_384), DH(DhId.ECP_384));
  const keys = deriveIkeKeys(createPrf(6), Buffer.alloc(48, 1), Buffer.alloc(32, 2), Buffer.alloc(32, 3), Buffer.alloc(8, 4), Buffer.alloc(8, 5), 36, 0);
  const seen: Array<{ spec: EncTransformSpec; e: string }> = [];
  const factory = (spec: EncTransformSpec, e: Buffer, _a: Buffer): EncTransform => {
    seen.push({ spec, e: e.toString('hex') });
    return { name: e.toString('hex'), ivLen: 8, icvLen: 16, blockLen: 4, seal: () => {}, open: () => true };
  };

  it('original initiator sends with SK_ei and receives with SK_er; the responder the reverse', () => {
    const i = skCryptoFor(p, keys, true, factory);
    expect(i.enc.name).toBe(keys.skEi.toString('hex'));
    expect(i.dec.name).toBe(keys.skEr.toString('hex'));
    const r = skCryptoFor(p, keys, false, factory);
    expect(r.enc.name).toBe(keys.skEr.toString('hex'));
    expect(r.dec.name).toBe(keys.skEi.toString('hex'));
    expect(seen[0]!.spec).toEqual({ encr: EncrId.ENCR_AES_GCM_16, encrKeyBits: 256, integ: 0 });
  });
});
