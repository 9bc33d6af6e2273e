import { describe, expect, it } from 'vitest';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { AuthMethod } from '../../../../src/ike/wire/constants.js';
import { HashAlgorithm, decodeSignatureHashes, encodeSignatureHashes, signAuth, verifyAuth } from '../../../../src/ike/sa/pubkey-auth.js';

// RFC 7427 §3 AUTH data (length | AlgorithmIdentifier | signature) and the classic methods
// (RFC 7296 method 1, RFC 4754 methods 9/10/11: r|s of the curve's size).

const keys = {
  rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  p256: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
  p384: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey,
  p521: generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey,
};
const octets = randomBytes(200);
const ALL = [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512];

describe('public-key AUTH data', () => {
  it('N(SIGNATURE_HASH_ALGORITHMS) round-trips', () => {
    expect(encodeSignatureHashes(ALL).toString('hex')).toBe('000200030004');
    expect(decodeSignatureHashes(Buffer.from('0002000300040005', 'hex'))).toEqual([2, 3, 4, 5]);
  });

  it.each([
    ['rsa', '300d06092a864886f70d01010b0500'],
    ['p256', '300a06082a8648ce3d040302'],
    ['p384', '300a06082a8648ce3d040303'],
    ['p521', '300a06082a8648ce3d040304'],
  ] as const)('method 14 with %s picks the matching hash and verifies', (k, algId) => {
    const s = signAuth(keys[k], octets, ALL);
    expect(s.method).toBe(AuthMethod.DIGITAL_SIGNATURE);
    expect(s.data[0]).toBe(algId.length / 2);
    expect(s.data.subarray(1, 1 + s.data[0]!).toString('hex')).toBe(algId);
    const pub = createPublicKey(keys[k]);
    expect(verifyAuth(pub, s.method, s.data, octets, true)).toBeNull();
    expect(verifyAuth(pub, s.method, s.data, octets, false)).toMatch(/did not offer/);
    const bad = Buffer.from(octets);
    bad[0]! ^= 1;
    expect(verifyAuth(pub, s.method, s.data, bad, true)).toMatch(/does not verify/);
  });

  it.each([
    ['rsa', AuthMethod.RSA_SIG, 256],
    ['p256', AuthMethod.ECDSA_SHA256_P256, 64],
    ['p384', AuthMethod.ECDSA_SHA384_P384, 96],
    ['p521', AuthMethod.ECDSA_SHA512_P521, 132],
  ] as const)('without the peer\'s hashes %s uses method %s', (k, method, len) => {
    const s = signAuth(keys[k], octets, null);
    expect(s.method).toBe(method);
    expect(s.data.length).toBe(len);
    expect(verifyAuth(createPublicKey(keys[k]), s.method, s.data, octets, true)).toBeNull();
  });

  it('falls back to a hash the peer has, and to the classic method when it has none of ours', () => {
    const s = signAuth(keys.p384, octets, [HashAlgorithm.SHA2_512]);
    expect(s.data.subarray(1, 1 + s.data[0]!).toString('hex')).toBe('300a06082a8648ce3d040304');
    expect(signAuth(keys.p256, octets, [HashAlgorithm.SHA1]).method).toBe(AuthMethod.ECDSA_SHA256_P256);
  });

  it('refuses a method that does not fit the key', () => {
    const s = signAuth(keys.p256, octets, null);
    expect(verifyAuth(createPublicKey(keys.p384), s.method, s.data, octets, true)).toMatch(/does not fit the peer's ECDSA P-384 key/);
    expect(verifyAuth(createPublicKey(keys.rsa), AuthMethod.DIGITAL_SIGNATURE, Buffer.from([5, 1, 2]), octets, true)).toMatch(/malformed/);
  });
});
