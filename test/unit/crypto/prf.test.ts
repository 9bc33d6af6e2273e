// Known-answer tests for the IKE PRFs and prf+.
// HMAC vectors: RFC 4231 (SHA-2) and RFC 2202 (SHA-1), kept in test/vectors/hmac-sha.json.
// prf+ vector: SKEYSEED -> SK_* from strongSwan 5.9.8's own key dumps (charon ike=4 log level),
// kept in test/vectors/ike-lab-appendix-a.json.
import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createPrf, isSupportedPrf, prfPlus } from '../../../src/crypto/prf.js';
import { PrfId } from '../../../src/ike/wire/constants.js';

const hmac = JSON.parse(readFileSync(new URL('../../vectors/hmac-sha.json', import.meta.url), 'utf8')) as {
  cases: Array<Record<string, string>>;
};
const lab = JSON.parse(readFileSync(new URL('../../vectors/ike-lab-appendix-a.json', import.meta.url), 'utf8')) as Record<
  string,
  string
>;
const hx = (s: string) => Buffer.from(s, 'hex');

const PRFS: Array<[string, number, number]> = [
  ['sha1', PrfId.PRF_HMAC_SHA1, 20],
  ['sha256', PrfId.PRF_HMAC_SHA2_256, 32],
  ['sha384', PrfId.PRF_HMAC_SHA2_384, 48],
  ['sha512', PrfId.PRF_HMAC_SHA2_512, 64],
];

describe('createPrf', () => {
  for (const [hash, id, outLen] of PRFS) {
    it(`HMAC-${hash} matches the RFC vectors`, () => {
      const prf = createPrf(id);
      expect(prf.id).toBe(id);
      expect(prf.outLen).toBe(outLen);
      expect(prf.keyLen).toBe(outLen);
      let n = 0;
      for (const c of hmac.cases) {
        const want = c[hash];
        if (!want) continue;
        expect(prf.compute(hx(c.keyHex!), hx(c.dataHex!)).toString('hex'), c.name).toBe(want);
        n++;
      }
      expect(n).toBeGreaterThanOrEqual(2);
    });
  }

  it('rejects PRFs we do not implement (AES-XCBC 4, AES-CMAC 8)', () => {
    expect(() => createPrf(4)).toThrow(RangeError);
    expect(() => createPrf(8)).toThrow(RangeError);
    expect(isSupportedPrf(4)).toBe(false);
    expect(isSupportedPrf(PrfId.PRF_HMAC_SHA2_256)).toBe(true);
  });
});

describe('prfPlus (RFC 7296 §2.13)', () => {
  it('derives strongSwan SK_* from SKEYSEED (lab vector, 192 bytes)', () => {
    const prf = createPrf(PrfId.PRF_HMAC_SHA2_256);
    const seed = Buffer.concat([hx(lab.nonceI!), hx(lab.nonceR!), hx(lab.spiI!), hx(lab.spiR!)]);
    const out = prfPlus(prf, hx(lab.skeyseed!), seed, 192);
    const want = ['skD', 'skAi', 'skAr', 'skEi', 'skEr', 'skPi', 'skPr'].map((k) => lab[k]).join('');
    expect(out.toString('hex')).toBe(want);
  });

  it('T1 = prf(K, S|0x01), T2 = prf(K, T1|S|0x02), and truncates to the requested length', () => {
    const prf = createPrf(PrfId.PRF_HMAC_SHA1);
    const k = Buffer.from('key');
    const s = Buffer.from('seed');
    const t1 = createHmac('sha1', k).update(Buffer.concat([s, Buffer.from([1])])).digest();
    const t2 = createHmac('sha1', k).update(Buffer.concat([t1, s, Buffer.from([2])])).digest();
    const out = prfPlus(prf, k, s, 33);
    expect(out.length).toBe(33);
    expect(out.toString('hex')).toBe(Buffer.concat([t1, t2]).subarray(0, 33).toString('hex'));
    expect(prfPlus(prf, k, s, 0).length).toBe(0);
  });

  it('refuses more than 255 blocks', () => {
    const prf = createPrf(PrfId.PRF_HMAC_SHA1);
    expect(prfPlus(prf, Buffer.alloc(1), Buffer.alloc(1), 255 * 20).length).toBe(5100);
    expect(() => prfPlus(prf, Buffer.alloc(1), Buffer.alloc(1), 255 * 20 + 1)).toThrow(RangeError);
  });
});
