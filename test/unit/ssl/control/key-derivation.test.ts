import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { prfKeyBlock, serverKeysFromBlock, tls1Prf } from '../../../../src/ssl/control/key-derivation.js';

// Vectors computed independently with the OpenSSL CLI (see the "source" field of the file).
const V = JSON.parse(readFileSync(new URL('../../../vectors/openvpn-tls1-prf.json', import.meta.url), 'utf8'));
const h = (s: string) => Buffer.from(s, 'hex');

describe('TLS 1.0 PRF (RFC 2246 §5)', () => {
  it('matches the published PRF test vector and an odd-length-secret case', () => {
    for (const c of V.prf) {
      const out = h(c.out);
      expect(tls1Prf(h(c.secret), h(c.seed), out.length).toString('hex')).toBe(c.out);
    }
  });
});

describe('OpenVPN legacy key expansion', () => {
  it('derives the 256-byte key block from km2 randoms and session ids', () => {
    const k = V.openvpnKeyBlock;
    const block = prfKeyBlock({
      preMaster: h(k.preMaster),
      clientRandom1: h(k.clientRandom1),
      serverRandom1: h(k.serverRandom1),
      clientRandom2: h(k.clientRandom2),
      serverRandom2: h(k.serverRandom2),
      clientSessionId: h(k.clientSessionId),
      serverSessionId: h(k.serverSessionId),
    });
    expect(block.toString('hex')).toBe(k.keyBlock);
  });
  it('depends on the session ids (the RFC draft omits them; the real client uses them)', () => {
    const k = V.openvpnKeyBlock;
    const block = prfKeyBlock({
      preMaster: h(k.preMaster),
      clientRandom1: h(k.clientRandom1),
      serverRandom1: h(k.serverRandom1),
      clientRandom2: h(k.clientRandom2),
      serverRandom2: h(k.serverRandom2),
      clientSessionId: h(k.serverSessionId),
      serverSessionId: h(k.clientSessionId),
    });
    expect(block.toString('hex')).not.toBe(k.keyBlock);
  });
});

describe('key slicing for the server', () => {
  const block = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) block[i] = i;
  it('AES-256-GCM: encrypt with s->c [128,160) + IV [192,200), decrypt with c->s [0,32) + IV [64,72)', () => {
    const k = serverKeysFromBlock(block, 'AES-256-GCM');
    expect(k.encKey[0]).toBe(128);
    expect(k.encKey.length).toBe(32);
    expect(k.encImplicitIv[0]).toBe(192);
    expect(k.encImplicitIv.length).toBe(8);
    expect(k.decKey[0]).toBe(0);
    expect(k.decImplicitIv[0]).toBe(64);
  });
  it('AES-128-GCM uses 16 key bytes, CHACHA20-POLY1305 32; unknown ciphers throw', () => {
    expect(serverKeysFromBlock(block, 'AES-128-GCM').decKey.length).toBe(16);
    expect(serverKeysFromBlock(block, 'chacha20-poly1305').encKey.length).toBe(32);
    expect(() => serverKeysFromBlock(block, 'BF-CBC')).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_UNSUPPORTED' }));
  });
});
