// Key exchange: both parties agree for every group; KE data lengths follow RFC 7296 §3.4 / RFC 5903
// / RFC 8031; invalid peer data gives null. X25519 and X448 known answers from RFC 7748 §6.1 and
// §6.2 (test/vectors/x25519-rfc7748.json, test/vectors/x448-rfc7748.json).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createECDH } from 'node:crypto';
import { createKeyExchange, isSupportedDhGroup, keLength } from '../../../src/crypto/dh.js';

const x = JSON.parse(readFileSync(new URL('../../vectors/x25519-rfc7748.json', import.meta.url), 'utf8')) as Record<
  string,
  string
>;
const x448 = JSON.parse(readFileSync(new URL('../../vectors/x448-rfc7748.json', import.meta.url), 'utf8')) as Record<string, string>;
const hx = (s: string) => Buffer.from(s, 'hex');

const GROUPS: Array<[number, number, number]> = [
  // group, KE data length, shared secret length
  [14, 256, 256],
  [15, 384, 384],
  [16, 512, 512],
  [19, 64, 32],
  [20, 96, 48],
  [21, 132, 66],
  [31, 32, 32],
  [32, 56, 56],
];

describe('createKeyExchange', () => {
  for (const [group, keLen, secretLen] of GROUPS) {
    it(`group ${group}: both sides agree, KE ${keLen} bytes, secret ${secretLen} bytes`, () => {
      const a = createKeyExchange(group);
      const b = createKeyExchange(group);
      expect(a.group).toBe(group);
      expect(a.publicKey.length).toBe(keLen);
      expect(keLength(group)).toBe(keLen);
      const sa = a.computeSecret(b.publicKey);
      const sb = b.computeSecret(a.publicKey);
      expect(sa).not.toBeNull();
      expect(sa!.length).toBe(secretLen);
      expect(sa!.equals(sb!)).toBe(true);
      // wrong length is refused
      expect(a.computeSecret(b.publicKey.subarray(1))).toBeNull();
      expect(a.computeSecret(Buffer.concat([b.publicKey, Buffer.alloc(1)]))).toBeNull();
    });
  }

  it('rejects unsupported groups', () => {
    for (const g of [0, 1, 2, 5, 17, 18, 22, 28, 33]) {
      expect(isSupportedDhGroup(g)).toBe(false);
      expect(() => createKeyExchange(g)).toThrow(RangeError);
    }
    for (const [g] of GROUPS) expect(isSupportedDhGroup(g)).toBe(true);
  });

  it('X25519 matches RFC 7748 §6.1', () => {
    const alice = createKeyExchange(31, hx(x.alicePrivate!));
    const bob = createKeyExchange(31, hx(x.bobPrivate!));
    expect(alice.publicKey.toString('hex')).toBe(x.alicePublic);
    expect(bob.publicKey.toString('hex')).toBe(x.bobPublic);
    expect(alice.computeSecret(hx(x.bobPublic!))!.toString('hex')).toBe(x.shared);
    expect(bob.computeSecret(hx(x.alicePublic!))!.toString('hex')).toBe(x.shared);
  });

  it('X448 (group 32) matches RFC 7748 §6.2', () => {
    const alice = createKeyExchange(32, hx(x448.alicePrivate!));
    const bob = createKeyExchange(32, hx(x448.bobPrivate!));
    expect(alice.publicKey.toString('hex')).toBe(x448.alicePublic);
    expect(bob.publicKey.toString('hex')).toBe(x448.bobPublic);
    expect(alice.computeSecret(hx(x448.bobPublic!))!.toString('hex')).toBe(x448.shared);
    expect(bob.computeSecret(hx(x448.alicePublic!))!.toString('hex')).toBe(x448.shared);
    expect(() => createKeyExchange(32, Buffer.alloc(32))).toThrow(RangeError);
  });

  it('X448 rejects low-order peer points (all-zero output, RFC 8031 §2.3)', () => {
    const a = createKeyExchange(32);
    expect(a.computeSecret(Buffer.alloc(56))).toBeNull(); // u = 0
    const one = Buffer.alloc(56);
    one[0] = 1; // u = 1 (little-endian)
    expect(a.computeSecret(one)).toBeNull();
  });

  it('X25519 rejects low-order peer points (all-zero output, RFC 7748 §6.1)', () => {
    const a = createKeyExchange(31);
    expect(a.computeSecret(Buffer.alloc(32))).toBeNull(); // u = 0
    const one = Buffer.alloc(32);
    one[0] = 1; // u = 1 (little-endian)
    expect(a.computeSecret(one)).toBeNull();
  });

  it('ECP: KE data is x|y without the 0x04 prefix, secret is the x coordinate', () => {
    const priv = Buffer.alloc(32, 7);
    const ours = createKeyExchange(19, priv);
    const ref = createECDH('prime256v1');
    ref.setPrivateKey(priv);
    expect(ours.publicKey.toString('hex')).toBe(ref.getPublicKey().subarray(1).toString('hex'));
    const peer = createECDH('prime256v1');
    peer.generateKeys();
    const s = ours.computeSecret(peer.getPublicKey().subarray(1))!;
    expect(s.toString('hex')).toBe(peer.computeSecret(ref.getPublicKey()).toString('hex'));
  });

  it('ECP: a point not on the curve is rejected', () => {
    for (const g of [19, 20, 21]) {
      const a = createKeyExchange(g);
      const b = createKeyExchange(g);
      const bad = Buffer.from(b.publicKey);
      bad[bad.length - 1]! ^= 1; // y off by one bit: not on the curve
      expect(a.computeSecret(bad)).toBeNull();
      expect(a.computeSecret(Buffer.alloc(keLength(g)))).toBeNull();
    }
  });

  it('MODP: KE data is left-padded to the prime length when the public value is short', () => {
    // a private exponent of 1 makes y = g = 2: one significant byte, 255 zero bytes of padding
    const a = createKeyExchange(14, Buffer.from([1]));
    expect(a.publicKey.length).toBe(256);
    expect(a.publicKey[255]).toBe(2);
    expect(a.publicKey.subarray(0, 255).every((v) => v === 0)).toBe(true);
    const b = createKeyExchange(14);
    // (g^1)^b = b's public value, padded
    expect(b.computeSecret(a.publicKey)!.toString('hex')).toBe(b.publicKey.toString('hex'));
  });

  it('MODP: rejects 0, 1, p-1 and values >= p', () => {
    const a = createKeyExchange(14);
    const zero = Buffer.alloc(256);
    const one = Buffer.alloc(256);
    one[255] = 1;
    const ff = Buffer.alloc(256, 0xff); // > p
    // p - 1: the RFC 3526 prime ends in ...ffffffff, so p-1 ends in ...fffffffe
    const pMinus1 = Buffer.from(
      'FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFE',
      'hex',
    );
    for (const bad of [zero, one, ff, pMinus1]) expect(a.computeSecret(bad)).toBeNull();
  });
});
