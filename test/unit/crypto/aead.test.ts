import { describe, expect, it } from 'vitest';
import { createHmac, createDecipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createEncTransform,
  encrKeyMatLen,
  integKeyLen,
  isSupportedSpec,
  ENCR_AES_CBC,
  ENCR_AES_GCM_16,
  ENCR_CHACHA20_POLY1305,
  AUTH_HMAC_SHA1_96,
  AUTH_HMAC_SHA2_256_128,
  AUTH_HMAC_SHA2_384_192,
  AUTH_HMAC_SHA2_512_256,
  fillRandomIv,
} from '../../../src/crypto/aead.js';

// Vectors and their sources: test/vectors/aead-transforms.json
const V = JSON.parse(readFileSync(new URL('../../vectors/aead-transforms.json', import.meta.url), 'utf8'));
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

interface AeadCase { name: string; encr: number; keyBits: number; keyMat: string; iv: string; aad: string; plain: string; cipher: string; tag: string }

/** Lays out aad | iv | plain | room for the tag, as ESP and the SK payload do. */
function layout(c: AeadCase, icvLen: number): { buf: Buffer; ivOff: number; dataOff: number; dataLen: number } {
  const aad = hex(c.aad);
  const plain = hex(c.plain);
  const buf = Buffer.alloc(aad.length + 8 + plain.length + icvLen);
  aad.copy(buf, 0);
  hex(c.iv).copy(buf, aad.length);
  plain.copy(buf, aad.length + 8);
  return { buf, ivOff: aad.length, dataOff: aad.length + 8, dataLen: plain.length };
}

describe('AEAD transforms (AES-GCM RFC 4106, ChaCha20-Poly1305 RFC 7634)', () => {
  const cases: AeadCase[] = [...V.gcm.cases, ...V.chacha20poly1305.cases];
  for (const c of cases) {
    it(`seals and opens ${c.name}`, () => {
      const t = createEncTransform({ encr: c.encr, encrKeyBits: c.keyBits, integ: 0 }, hex(c.keyMat), Buffer.alloc(0));
      expect(t.ivLen).toBe(8);
      expect(t.icvLen).toBe(c.tag.length / 2);
      const { buf, ivOff, dataOff, dataLen } = layout(c, t.icvLen);
      t.seal(buf, 0, ivOff, dataOff, dataLen);
      expect(buf.subarray(dataOff, dataOff + dataLen).toString('hex')).toBe(c.cipher);
      expect(buf.subarray(dataOff + dataLen).toString('hex')).toBe(c.tag);
      expect(t.open(buf, 0, ivOff, dataOff, dataLen)).toBe(true);
      expect(buf.subarray(dataOff, dataOff + dataLen).toString('hex')).toBe(c.plain);
    });
  }

  it('rejects a flipped bit anywhere in AAD, IV, ciphertext or tag and leaves the buffer untouched', () => {
    const c: AeadCase = V.gcm.cases.find((x: AeadCase) => x.name.startsWith('TC4'));
    const t = createEncTransform({ encr: c.encr, encrKeyBits: c.keyBits, integ: 0 }, hex(c.keyMat), Buffer.alloc(0));
    const { buf, ivOff, dataOff, dataLen } = layout(c, 16);
    t.seal(buf, 0, ivOff, dataOff, dataLen);
    for (let i = 0; i < buf.length; i += 7) {
      const copy = Buffer.from(buf);
      copy[i]! ^= 0x01;
      const before = Buffer.from(copy);
      expect(t.open(copy, 0, ivOff, dataOff, dataLen)).toBe(false);
      expect(copy.equals(before)).toBe(true);
    }
  });

  it('decrypts the strongSwan 5.9.8 ESP packet kept in test/vectors/aead-transforms.json', () => {
    const s = V.strongswanEsp;
    const t = createEncTransform({ encr: s.encr, encrKeyBits: s.keyBits, integ: 0 }, hex(s.keyMat), Buffer.alloc(0));
    const pkt = hex(s.packet);
    const dataLen = pkt.length - 16 - 16;
    expect(t.open(pkt, 0, 8, 16, dataLen)).toBe(true);
    const inner = pkt.subarray(16, 16 + dataLen);
    expect(inner[0]! >> 4).toBe(4);
    expect(inner.readUInt16BE(2)).toBe(s.innerLen);
    // trailer: padding 01 02, pad length 2, next header 4 (IPv4)
    expect(inner.subarray(s.innerLen).toString('hex')).toBe('01020204');
  });

  it('takes the salt from the last 4 bytes: a different salt gives a different ciphertext', () => {
    const c: AeadCase = V.gcm.cases[0];
    const km = hex(c.keyMat);
    km[km.length - 1]! ^= 1;
    const t = createEncTransform({ encr: c.encr, encrKeyBits: c.keyBits, integ: 0 }, km, Buffer.alloc(0));
    const { buf, ivOff, dataOff, dataLen } = layout(c, 16);
    t.seal(buf, 0, ivOff, dataOff, dataLen);
    expect(buf.subarray(dataOff, dataOff + dataLen).toString('hex')).not.toBe(c.cipher);
  });
});

describe('AES-CBC + HMAC transforms (RFC 3602, RFC 2404, RFC 4868)', () => {
  for (const c of V.cbc.cases as { name: string; key: string; iv: string; plain: string; cipher: string }[]) {
    it(`encrypts ${c.name} and verifies its own ICV`, () => {
      const integKey = Buffer.alloc(32, 0x42);
      const t = createEncTransform({ encr: ENCR_AES_CBC, encrKeyBits: 128, integ: AUTH_HMAC_SHA2_256_128 }, hex(c.key), integKey);
      expect(t.name).toBe('aes128-sha256');
      const plain = hex(c.plain);
      const hdr = Buffer.from('0102030400000009', 'hex'); // SPI | seq
      const buf = Buffer.concat([hdr, hex(c.iv), plain, Buffer.alloc(16)]);
      t.seal(buf, 0, 8, 24, plain.length);
      expect(buf.subarray(24, 24 + plain.length).toString('hex')).toBe(c.cipher);
      // ICV = leftmost 128 bits of HMAC-SHA256 over SPI | seq | IV | ciphertext (RFC 4303 §2.8, RFC 4868 §2.3)
      const mac = createHmac('sha256', integKey).update(buf.subarray(0, 24 + plain.length)).digest();
      expect(buf.subarray(24 + plain.length).equals(mac.subarray(0, 16))).toBe(true);
      expect(t.open(buf, 0, 8, 24, plain.length)).toBe(true);
      expect(buf.subarray(24, 24 + plain.length).toString('hex')).toBe(c.plain);
    });
  }

  for (const h of V.hmac.cases as { name: string; integ: number; key: string; dataLen: number; icv: string }[]) {
    it(`accepts the published ICV of ${h.name} and rejects it with one bit flipped`, () => {
      // 50 bytes of 0xdd = 2 bytes "header" | 16 bytes IV | 32 bytes ciphertext; the MAC covers all of it.
      const icvLen = h.icv.length / 2;
      const mk = () => Buffer.concat([Buffer.alloc(h.dataLen, 0xdd), hex(h.icv)]);
      const t = createEncTransform({ encr: ENCR_AES_CBC, encrKeyBits: 256, integ: h.integ }, Buffer.alloc(32, 7), hex(h.key));
      expect(t.icvLen).toBe(icvLen);
      expect(t.open(mk(), 0, 2, 18, 32)).toBe(true);
      const bad = mk();
      bad[bad.length - 1]! ^= 0x80;
      expect(t.open(bad, 0, 2, 18, 32)).toBe(false);
      const bad2 = mk();
      bad2[0]! ^= 0x01; // the header is authenticated too
      expect(t.open(bad2, 0, 2, 18, 32)).toBe(false);
    });
  }

  it('refuses a ciphertext that is not a whole number of blocks', () => {
    const t = createEncTransform({ encr: ENCR_AES_CBC, encrKeyBits: 128, integ: AUTH_HMAC_SHA1_96 }, Buffer.alloc(16), Buffer.alloc(20));
    expect(t.open(Buffer.alloc(8 + 16 + 20 + 12), 0, 8, 24, 20)).toBe(false);
  });

  it('rejects a bad ICV before decrypting (buffer unchanged)', () => {
    const t = createEncTransform({ encr: ENCR_AES_CBC, encrKeyBits: 192, integ: AUTH_HMAC_SHA2_384_192 }, Buffer.alloc(24, 1), Buffer.alloc(48, 2));
    const buf = Buffer.alloc(8 + 16 + 32 + 24, 3);
    t.seal(buf, 0, 8, 24, 32);
    buf[30]! ^= 4;
    const before = Buffer.from(buf);
    expect(t.open(buf, 0, 8, 24, 32)).toBe(false);
    expect(buf.equals(before)).toBe(true);
  });
});

describe('key sizes and specs', () => {
  it('reports KEYMAT sizes as IKE slices them (RFC 4106 §8.1, RFC 7634 §4: key plus 4-byte salt)', () => {
    expect(encrKeyMatLen({ encr: ENCR_AES_GCM_16, encrKeyBits: 128, integ: 0 })).toBe(20);
    expect(encrKeyMatLen({ encr: ENCR_AES_GCM_16, encrKeyBits: 256, integ: 0 })).toBe(36);
    expect(encrKeyMatLen({ encr: ENCR_CHACHA20_POLY1305, encrKeyBits: 0, integ: 0 })).toBe(36);
    expect(encrKeyMatLen({ encr: ENCR_AES_CBC, encrKeyBits: 192, integ: AUTH_HMAC_SHA1_96 })).toBe(24);
    expect([AUTH_HMAC_SHA1_96, AUTH_HMAC_SHA2_256_128, AUTH_HMAC_SHA2_384_192, AUTH_HMAC_SHA2_512_256].map(integKeyLen)).toEqual([20, 32, 48, 64]);
  });

  it('throws a coded error for wrong key lengths and unsupported combinations', () => {
    expect(() => createEncTransform({ encr: ENCR_AES_GCM_16, encrKeyBits: 128, integ: 0 }, Buffer.alloc(16), Buffer.alloc(0))).toThrow(
      expect.objectContaining({ code: 'ERR_CRYPTO_KEY' }),
    );
    expect(() => createEncTransform({ encr: ENCR_AES_CBC, encrKeyBits: 128, integ: AUTH_HMAC_SHA2_256_128 }, Buffer.alloc(16), Buffer.alloc(20))).toThrow(
      expect.objectContaining({ code: 'ERR_CRYPTO_KEY' }),
    );
    expect(isSupportedSpec({ encr: ENCR_AES_CBC, encrKeyBits: 128, integ: 0 })).toBe(false);
    expect(isSupportedSpec({ encr: ENCR_AES_GCM_16, encrKeyBits: 128, integ: AUTH_HMAC_SHA1_96 })).toBe(false);
    expect(() => createEncTransform({ encr: 3, encrKeyBits: 192, integ: 2 }, Buffer.alloc(24), Buffer.alloc(20))).toThrow(
      expect.objectContaining({ code: 'ERR_CRYPTO_UNSUPPORTED' }),
    );
  });

  it('ChaCha20-Poly1305 agrees with a direct node:crypto decrypt (nonce = salt | IV)', () => {
    const km = Buffer.alloc(36);
    for (let i = 0; i < 36; i++) km[i] = i * 7;
    const t = createEncTransform({ encr: ENCR_CHACHA20_POLY1305, encrKeyBits: 256, integ: 0 }, km, Buffer.alloc(0));
    const buf = Buffer.alloc(8 + 8 + 40 + 16);
    buf.write('aabbccdd00000001', 0, 'hex');
    buf.write('0000000000000001', 8, 'hex');
    buf.fill(0x5a, 16, 56);
    t.seal(buf, 0, 8, 16, 40);
    const d = createDecipheriv('chacha20-poly1305', km.subarray(0, 32), Buffer.concat([km.subarray(32), buf.subarray(8, 16)]), { authTagLength: 16 });
    d.setAAD(buf.subarray(0, 8), { plaintextLength: 40 });
    d.setAuthTag(buf.subarray(56));
    const pt = Buffer.concat([d.update(buf.subarray(16, 56)), d.final()]);
    expect(pt.equals(Buffer.alloc(40, 0x5a))).toBe(true);
  });
});

describe('fillRandomIv', () => {
  it('gives distinct 16-byte IVs across pool refills and writes only its range', () => {
    const seen = new Set<string>();
    const buf = Buffer.alloc(40, 0xee);
    for (let i = 0; i < 1000; i++) {
      fillRandomIv(buf, 8, 16);
      seen.add(buf.subarray(8, 24).toString('hex'));
    }
    expect(seen.size).toBe(1000);
    expect(buf.subarray(0, 8).equals(Buffer.alloc(8, 0xee))).toBe(true);
    expect(buf.subarray(24).equals(Buffer.alloc(16, 0xee))).toBe(true);
  });
});
