// Key exchange for IKEv2 KE payloads (RFC 7296 §3.4), with the wire encodings peers expect:
//
//   group  | KE data                                         | shared secret g^ir
//   -------+-------------------------------------------------+----------------------------------------
//   14..16 | y, big-endian, LEFT-PADDED to the prime length  | big-endian, padded to the prime length
//          |   (RFC 7296 §3.4 / RFC 3526)                    |
//   19..21 | x | y, each the field size, no 0x04 prefix      | x coordinate only (RFC 5903 §7, §9)
//   31     | 32 raw bytes (RFC 8031 §3)                      | raw X25519 output; all-zero rejected
//          |                                                 |   (RFC 8031 §2.3, RFC 7748 §6.1)
//   32     | 56 raw bytes (RFC 8031 §3)                      | raw X448 output; all-zero rejected
//
// Node quirk: DiffieHellman.getPublicKey()/computeSecret() drop leading zero bytes, so we pad.
import {
  createDiffieHellman,
  createDiffieHellmanGroup,
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type DiffieHellman,
  type DiffieHellmanGroup,
  type KeyObject,
} from 'node:crypto';

export interface KeyExchange {
  /** IANA DH group (Transform Type 4) */
  readonly group: number;
  /** our public value exactly as it goes into the KE payload's key exchange data */
  readonly publicKey: Buffer;
  /**
   * g^ir from the peer's KE data (as received, no payload header). Returns null for invalid
   * peer data: wrong length, a point not on the curve, a MODP value outside 2..p-2, or an
   * all-zero X25519 result. The returned buffer is freshly allocated.
   */
  computeSecret(peerKeData: Buffer): Buffer | null;
}

// Spec: DH group numbers (IANA "Transform Type 4").
const MODP_2048 = 14;
const MODP_3072 = 15;
const MODP_4096 = 16;
const ECP_256 = 19;
const ECP_384 = 20;
const ECP_521 = 21;
const CURVE25519 = 31;
const CURVE448 = 32;

const MODP: ReadonlyMap<number, { name: string; len: number }> = new Map([
  [MODP_2048, { name: 'modp14', len: 256 }],
  [MODP_3072, { name: 'modp15', len: 384 }],
  [MODP_4096, { name: 'modp16', len: 512 }],
]);

const ECP: ReadonlyMap<number, { curve: string; fieldLen: number }> = new Map([
  [ECP_256, { curve: 'prime256v1', fieldLen: 32 }],
  [ECP_384, { curve: 'secp384r1', fieldLen: 48 }],
  [ECP_521, { curve: 'secp521r1', fieldLen: 66 }],
]);

// RFC 7748 Montgomery curves (RFC 8031 §3: the KE data is the raw u-coordinate), with the DER
// prefixes that wrap a raw key (RFC 8410): SubjectPublicKeyInfo and PKCS#8.
interface MontgomeryCurve { readonly name: 'x25519' | 'x448'; readonly keyLen: number; readonly spkiPrefix: Buffer; readonly pkcs8Prefix: Buffer }
const MONTGOMERY: ReadonlyMap<number, MontgomeryCurve> = new Map([
  [CURVE25519, {
    name: 'x25519', keyLen: 32,
    spkiPrefix: Buffer.from('302a300506032b656e032100', 'hex'),
    pkcs8Prefix: Buffer.from('302e020100300506032b656e04220420', 'hex'),
  }],
  [CURVE448, {
    name: 'x448', keyLen: 56,
    spkiPrefix: Buffer.from('3042300506032b656f033900', 'hex'),
    pkcs8Prefix: Buffer.from('3046020100300506032b656f043a0438', 'hex'),
  }],
]);

/** Public-value length on the wire for a group, or 0 if unsupported. */
export function keLength(group: number): number {
  const m = MODP.get(group);
  if (m) return m.len;
  const e = ECP.get(group);
  if (e) return 2 * e.fieldLen;
  const c = MONTGOMERY.get(group);
  if (c) return c.keyLen;
  return 0;
}

export function isSupportedDhGroup(group: number): boolean {
  return keLength(group) !== 0;
}

/**
 * A fresh ephemeral key pair for `group`. Throws RangeError for unsupported groups.
 * `privateKey` fixes the private value (tests and known-answer vectors only): MODP exponent
 * big-endian, ECP scalar big-endian, X25519/X448 the 32/56-byte scalar.
 */
export function createKeyExchange(group: number, privateKey?: Buffer): KeyExchange {
  const m = MODP.get(group);
  if (m) return new ModpExchange(group, m.name, m.len, privateKey);
  const e = ECP.get(group);
  if (e) return new EcpExchange(group, e.curve, e.fieldLen, privateKey);
  const c = MONTGOMERY.get(group);
  if (c) return new MontgomeryExchange(group, c, privateKey);
  throw new RangeError(`unsupported DH group ${group}`);
}

function leftPad(b: Buffer, len: number): Buffer {
  if (b.length === len) return b;
  const out = Buffer.alloc(len);
  b.copy(out, len - b.length);
  return out;
}

class ModpExchange implements KeyExchange {
  readonly group: number;
  readonly publicKey: Buffer;
  private readonly dh: DiffieHellman | DiffieHellmanGroup;
  private readonly len: number;
  private readonly pMinus1: bigint;
  constructor(group: number, name: string, len: number, privateKey?: Buffer) {
    this.group = group;
    this.len = len;
    const grp = createDiffieHellmanGroup(name);
    if (privateKey) {
      const dh = createDiffieHellman(grp.getPrime(), grp.getGenerator());
      dh.setPrivateKey(privateKey);
      // setPrivateKey does not recompute the public value: g^x mod p ourselves
      const p = BigInt('0x' + grp.getPrime('hex'));
      const g = BigInt('0x' + grp.getGenerator('hex'));
      const y = modPow(g, BigInt('0x' + privateKey.toString('hex')), p);
      dh.setPublicKey(Buffer.from(y.toString(16).padStart(len * 2, '0'), 'hex'));
      this.dh = dh;
    } else {
      grp.generateKeys();
      this.dh = grp;
    }
    this.publicKey = leftPad(this.dh.getPublicKey(), len);
    this.pMinus1 = BigInt('0x' + this.dh.getPrime('hex')) - 1n;
  }
  computeSecret(peer: Buffer): Buffer | null {
    if (peer.length !== this.len) return null;
    // RFC 7296 §5 / RFC 6989 §2.1: reject 0, 1, p-1 and values >= p
    const y = BigInt('0x' + peer.toString('hex'));
    if (y <= 1n || y >= this.pMinus1) return null;
    try {
      return leftPad(this.dh.computeSecret(peer), this.len);
    } catch {
      return null;
    }
  }
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return r;
}

class EcpExchange implements KeyExchange {
  readonly group: number;
  readonly publicKey: Buffer;
  private readonly ecdh: ReturnType<typeof createECDH>;
  private readonly fieldLen: number;
  constructor(group: number, curve: string, fieldLen: number, privateKey?: Buffer) {
    this.group = group;
    this.fieldLen = fieldLen;
    this.ecdh = createECDH(curve);
    if (privateKey) this.ecdh.setPrivateKey(privateKey);
    else this.ecdh.generateKeys();
    // uncompressed SEC1 point: 0x04 | x | y; RFC 5903 §7 sends x | y
    this.publicKey = Buffer.from(this.ecdh.getPublicKey().subarray(1));
  }
  computeSecret(peer: Buffer): Buffer | null {
    if (peer.length !== 2 * this.fieldLen) return null;
    const point = Buffer.allocUnsafe(1 + peer.length);
    point[0] = 0x04;
    peer.copy(point, 1);
    try {
      // node validates that the point is on the curve and throws otherwise
      return leftPad(this.ecdh.computeSecret(point), this.fieldLen);
    } catch {
      return null;
    }
  }
}

/** X25519 (group 31) and X448 (group 32), RFC 7748 / RFC 8031. */
class MontgomeryExchange implements KeyExchange {
  readonly group: number;
  readonly publicKey: Buffer;
  private readonly priv: KeyObject;
  private readonly curve: MontgomeryCurve;
  constructor(group: number, curve: MontgomeryCurve, privateKey?: Buffer) {
    this.group = group;
    this.curve = curve;
    if (privateKey) {
      if (privateKey.length !== curve.keyLen) throw new RangeError(`${curve.name} private key must be ${curve.keyLen} bytes`);
      this.priv = createPrivateKey({
        key: Buffer.concat([curve.pkcs8Prefix, privateKey]),
        format: 'der',
        type: 'pkcs8',
      });
    } else {
      this.priv = curve.name === 'x25519' ? generateKeyPairSync('x25519').privateKey : generateKeyPairSync('x448').privateKey;
    }
    const spki = createPublicKey(this.priv).export({ format: 'der', type: 'spki' });
    this.publicKey = Buffer.from(spki.subarray(spki.length - curve.keyLen));
  }
  computeSecret(peer: Buffer): Buffer | null {
    if (peer.length !== this.curve.keyLen) return null;
    try {
      const pub = createPublicKey({ key: Buffer.concat([this.curve.spkiPrefix, peer]), format: 'der', type: 'spki' });
      const secret = diffieHellman({ privateKey: this.priv, publicKey: pub });
      // RFC 7748 §6.1/§6.2, RFC 8031 §2.3: an all-zero output means a low-order peer point
      let acc = 0;
      for (let i = 0; i < secret.length; i++) acc |= secret[i]!;
      return acc === 0 ? null : secret;
    } catch {
      return null;
    }
  }
}
