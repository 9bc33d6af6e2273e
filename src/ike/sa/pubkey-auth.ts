import { sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { VpnError } from '../../common/errors.js';
import { AuthMethod } from '../wire/constants.js';

/**
 * AUTH payload data for public-key authentication over the signed octets of RFC 7296 §2.15:
 *   - RFC 7427 method 14 (Digital Signature): 1-byte length | AlgorithmIdentifier (DER) | signature;
 *     the hash is one the peer announced in N(SIGNATURE_HASH_ALGORITHMS); ECDSA signatures are DER
 *     (ECDSA-Sig-Value) as in X.509;
 *   - RFC 7296 method 1: RSA PKCS#1 v1.5 with SHA-1;
 *   - RFC 4754 methods 9/10/11: ECDSA on P-256/P-384/P-521 with SHA-256/384/512, r | s fixed size.
 */

/** RFC 7427 §7 hash algorithm identifiers (IANA "IKEv2 Hash Algorithms"). */
export enum HashAlgorithm {
  SHA1 = 1,
  SHA2_256 = 2,
  SHA2_384 = 3,
  SHA2_512 = 4,
}

/** The hashes we announce and accept with method 14, in preference order. */
export const SIGNATURE_HASHES: readonly HashAlgorithm[] = [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512];

const HASH_NAME: Record<number, string> = { 1: 'sha1', 2: 'sha256', 3: 'sha384', 4: 'sha512' };

/** N(SIGNATURE_HASH_ALGORITHMS) data: 16-bit hash identifiers (RFC 7427 §4). */
export function encodeSignatureHashes(hashes: readonly number[]): Buffer {
  const b = Buffer.alloc(hashes.length * 2);
  hashes.forEach((h, i) => b.writeUInt16BE(h, i * 2));
  return b;
}

export function decodeSignatureHashes(data: Buffer): number[] {
  const out: number[] = [];
  for (let o = 0; o + 2 <= data.length; o += 2) out.push(data.readUInt16BE(o));
  return out;
}

type KeyKind = 'rsa' | 'p256' | 'p384' | 'p521';

export function keyKind(key: KeyObject): KeyKind | null {
  if (key.asymmetricKeyType === 'rsa') return 'rsa';
  if (key.asymmetricKeyType !== 'ec') return null;
  switch (key.asymmetricKeyDetails?.namedCurve) {
    case 'prime256v1': return 'p256';
    case 'secp384r1': return 'p384';
    case 'secp521r1': return 'p521';
    default: return null;
  }
}

/** A short name for logs and errors: "RSA", "ECDSA P-256", ... */
export function keyKindText(key: KeyObject): string {
  const k = keyKind(key);
  return k === 'rsa' ? 'RSA' : k ? `ECDSA P-${k.slice(1)}` : `${key.asymmetricKeyType ?? 'unknown'} key`;
}

// AlgorithmIdentifier DER (RFC 7427 Appendix A): sha*WithRSAEncryption carry a NULL parameter.
const RSA_ALG_ID: Record<number, Buffer> = {
  [HashAlgorithm.SHA2_256]: Buffer.from('300d06092a864886f70d01010b0500', 'hex'),
  [HashAlgorithm.SHA2_384]: Buffer.from('300d06092a864886f70d01010c0500', 'hex'),
  [HashAlgorithm.SHA2_512]: Buffer.from('300d06092a864886f70d01010d0500', 'hex'),
};
const ECDSA_ALG_ID: Record<number, Buffer> = {
  [HashAlgorithm.SHA2_256]: Buffer.from('300a06082a8648ce3d040302', 'hex'),
  [HashAlgorithm.SHA2_384]: Buffer.from('300a06082a8648ce3d040303', 'hex'),
  [HashAlgorithm.SHA2_512]: Buffer.from('300a06082a8648ce3d040304', 'hex'),
};

/** The classic method for a key type, its hash, and whether the signature is r|s (RFC 4754). */
const CLASSIC: Record<KeyKind, { method: AuthMethod; hash: string }> = {
  rsa: { method: AuthMethod.RSA_SIG, hash: 'sha1' },
  p256: { method: AuthMethod.ECDSA_SHA256_P256, hash: 'sha256' },
  p384: { method: AuthMethod.ECDSA_SHA384_P384, hash: 'sha384' },
  p521: { method: AuthMethod.ECDSA_SHA512_P521, hash: 'sha512' },
};

/** The hash that matches an ECDSA curve's strength (strongSwan prefers it too). */
const CURVE_HASH: Record<KeyKind, HashAlgorithm> = {
  rsa: HashAlgorithm.SHA2_256, p256: HashAlgorithm.SHA2_256, p384: HashAlgorithm.SHA2_384, p521: HashAlgorithm.SHA2_512,
};

/**
 * Signs the octets. `peerHashes` is what the peer announced in N(SIGNATURE_HASH_ALGORITHMS), or
 * null when it sent none (or we did not offer RFC 7427): then the classic method of the key type.
 */
export function signAuth(key: KeyObject, octets: Buffer, peerHashes: readonly number[] | null): { method: AuthMethod; data: Buffer } {
  const kind = keyKind(key);
  // the config loader admits only RSA and P-256/384/521 keys
  if (!kind) throw new VpnError('ERR_CRYPTO_UNSUPPORTED', `unsupported private key type ${key.asymmetricKeyType}`);
  const usable = peerHashes ? SIGNATURE_HASHES.filter((h) => peerHashes.includes(h)) : [];
  if (usable.length > 0) {
    const hash = usable.includes(CURVE_HASH[kind]) ? CURVE_HASH[kind] : usable[0]!;
    const algId = (kind === 'rsa' ? RSA_ALG_ID : ECDSA_ALG_ID)[hash]!;
    const sig = cryptoSign(HASH_NAME[hash]!, octets, key);
    const data = Buffer.alloc(1 + algId.length + sig.length);
    data[0] = algId.length;
    algId.copy(data, 1);
    sig.copy(data, 1 + algId.length);
    return { method: AuthMethod.DIGITAL_SIGNATURE, data };
  }
  const c = CLASSIC[kind];
  const sig = cryptoSign(c.hash, octets, kind === 'rsa' ? key : { key, dsaEncoding: 'ieee-p1363' });
  return { method: c.method, data: sig };
}

/**
 * Verifies AUTH data with the peer's public key. Returns null when it verifies, else why not.
 * `acceptDigitalSignature`: we announced RFC 7427, so method 14 with one of our hashes is allowed.
 */
export function verifyAuth(key: KeyObject, method: number, data: Buffer, octets: Buffer, acceptDigitalSignature: boolean): string | null {
  const kind = keyKind(key);
  if (!kind) return `the peer's ${key.asymmetricKeyType ?? 'unknown'} key type is not supported`;
  if (method === AuthMethod.DIGITAL_SIGNATURE) {
    if (!acceptDigitalSignature) return 'peer used RFC 7427 signature authentication, which we did not offer';
    const len = data[0];
    if (len === undefined || data.length < 1 + len) return 'malformed RFC 7427 AUTH data';
    const algId = data.subarray(1, 1 + len);
    const table = kind === 'rsa' ? RSA_ALG_ID : ECDSA_ALG_ID;
    const hash = SIGNATURE_HASHES.find((h) => table[h]!.equals(algId));
    if (hash === undefined) return `peer signed with a scheme we do not accept for its ${kind === 'rsa' ? 'RSA' : 'ECDSA'} key (AlgorithmIdentifier ${algId.toString('hex')})`;
    return safeVerify(HASH_NAME[hash]!, octets, key, data.subarray(1 + len), false) ? null : 'signature does not verify with the public key of the peer\'s certificate';
  }
  const c = CLASSIC[kind];
  if (method !== c.method) return `AUTH method ${AuthMethod[method] ?? method} does not fit the peer's ${keyKindText(key)} key`;
  return safeVerify(c.hash, octets, key, data, kind !== 'rsa') ? null : 'signature does not verify with the public key of the peer\'s certificate';
}

function safeVerify(hash: string, octets: Buffer, key: KeyObject, sig: Buffer, p1363: boolean): boolean {
  try {
    return cryptoVerify(hash, octets, p1363 ? { key, dsaEncoding: 'ieee-p1363' } : key, sig);
  } catch {
    return false;
  }
}
