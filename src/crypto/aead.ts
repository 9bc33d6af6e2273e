import { createCipheriv, createDecipheriv, createHmac, createSecretKey, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { VpnError } from '../common/errors.js';

/**
 * One interface for the "encrypt + authenticate" transforms shared by IKE's SK payload
 * (RFC 7296 §3.14, RFC 5282) and ESP (RFC 4303, RFC 4106, RFC 4868, RFC 7634).
 *
 * Both protect one contiguous region of a buffer:
 *
 *   authStart          ivOff        dataOff            dataOff+dataLen
 *   | header(s) ...     | IV (ivLen) | plaintext/cipher  | ICV (icvLen) |
 *
 * - AEAD (AES-GCM, ChaCha20-Poly1305): nonce = salt(4) | IV(8); AAD = buf[authStart, ivOff)
 *   (ESP: SPI|seq; IKE: IKE header + SK generic header).
 * - CBC + HMAC: ciphertext = AES-CBC(IV, plaintext); ICV = truncated HMAC over buf[authStart, dataOff+dataLen).
 *
 * ESP extended sequence numbers (RFC 4303 §2.2.1): when `esnHi` is ≥ 0 it is the high 32 bits of
 * the 64-bit sequence number, authenticated but never sent. AEAD: the AAD becomes
 * SPI | seq-hi | seq-lo, i.e. seq-hi goes in after the first 4 bytes of buf[authStart, ivOff)
 * (RFC 4106 §5, RFC 7634 §2.1); CBC + HMAC: seq-hi is appended to the MAC input after the
 * ciphertext (RFC 4303 §3.3.2.1, Appendix A). IKE passes nothing (-1).
 *
 * The caller writes the IV bytes at ivOff before `seal` (a counter or random, see `ivLen`),
 * pads the plaintext itself (multiple of `blockLen`), and reserves icvLen bytes after the data.
 * `seal` and `open` work in place. `open` returns false on a bad ICV and leaves no partial state.
 * A native implementation with reused EVP contexts can replace the node:crypto one behind this.
 */
export interface EncTransform {
  readonly name: string; // strongSwan-style, e.g. "aes128gcm16", "aes256-sha256"
  readonly ivLen: number;
  readonly icvLen: number;
  /** padding alignment of the plaintext: 16 for AES-CBC, 4 (ESP minimum) for stream/AEAD ciphers */
  readonly blockLen: number;
  seal(buf: Buffer, authStart: number, ivOff: number, dataOff: number, dataLen: number, esnHi?: number): void;
  open(buf: Buffer, authStart: number, ivOff: number, dataOff: number, dataLen: number, esnHi?: number): boolean;
}

/** RFC 4106 §5: the AAD with extended sequence numbers is SPI(4) | seq-hi(4) | seq-lo(4). */
const ESN_AAD_SIZE = 12;
const ESN_HI_SIZE = 4;

/** What a transform is built from (key material comes from IKE keymat). */
export interface EncTransformSpec {
  encr: number; // EncrId
  encrKeyBits: number; // 128/192/256 (256 for ChaCha20)
  integ: number; // IntegId (0 for AEAD)
}

// ---------------------------------------------------------------------------------------------
// node:crypto implementation
// ---------------------------------------------------------------------------------------------


// Spec constants: IKEv2 transform IDs (IANA "IKEv2 Transform Type 1/3"), kept here because crypto/
// may import only common/. They equal EncrId/IntegId in src/ike/wire/constants.ts.
export const ENCR_AES_CBC = 12;
export const ENCR_AES_GCM_8 = 18;
export const ENCR_AES_GCM_12 = 19;
export const ENCR_AES_GCM_16 = 20;
export const ENCR_CHACHA20_POLY1305 = 28;
export const AUTH_NONE = 0;
export const AUTH_HMAC_SHA1_96 = 2;
export const AUTH_HMAC_SHA2_256_128 = 12;
export const AUTH_HMAC_SHA2_384_192 = 13;
export const AUTH_HMAC_SHA2_512_256 = 14;

/** RFC 4106 §8.1 / RFC 7634 §2: the last 4 bytes of the AEAD key material are the salt. */
export const AEAD_SALT_SIZE = 4;
/** RFC 4106 §3.1, RFC 7634 §2: explicit IV carried in each packet. */
export const AEAD_IV_SIZE = 8;
/** RFC 3602 §2.1: AES-CBC IV is one block. */
export const CBC_IV_SIZE = 16;
const AES_BLOCK_SIZE = 16;
/** RFC 4303 §2.4: the ciphertext (payload + padding + pad length + next header) ends on a 4-byte boundary. */
const ESP_MIN_ALIGN = 4;

interface IntegInfo {
  hash: string;
  keyLen: number;
  icvLen: number;
  short: string;
}

// RFC 2404 (SHA1-96), RFC 4868 §2.1 (SHA2: key = full hash output, ICV = leftmost half)
const INTEG: Record<number, IntegInfo> = {
  [AUTH_HMAC_SHA1_96]: { hash: 'sha1', keyLen: 20, icvLen: 12, short: 'sha1' },
  [AUTH_HMAC_SHA2_256_128]: { hash: 'sha256', keyLen: 32, icvLen: 16, short: 'sha256' },
  [AUTH_HMAC_SHA2_384_192]: { hash: 'sha384', keyLen: 48, icvLen: 24, short: 'sha384' },
  [AUTH_HMAC_SHA2_512_256]: { hash: 'sha512', keyLen: 64, icvLen: 32, short: 'sha512' },
};

function isAead(encr: number): boolean {
  return encr === ENCR_AES_GCM_8 || encr === ENCR_AES_GCM_12 || encr === ENCR_AES_GCM_16 || encr === ENCR_CHACHA20_POLY1305;
}

/** Bytes of ENCR key material the keymat must supply for this spec (AEAD: key + 4-byte salt). */
export function encrKeyMatLen(spec: EncTransformSpec): number {
  if (spec.encr === ENCR_CHACHA20_POLY1305) return 32 + AEAD_SALT_SIZE;
  if (isAead(spec.encr)) return spec.encrKeyBits / 8 + AEAD_SALT_SIZE;
  return spec.encrKeyBits / 8;
}

/** Bytes of INTEG key material for an integrity transform id (0 for none/AEAD). */
export function integKeyLen(integ: number): number {
  return INTEG[integ]?.keyLen ?? 0;
}

/** True when `createEncTransform` supports this combination. */
export function isSupportedSpec(spec: EncTransformSpec): boolean {
  if (spec.encr === ENCR_CHACHA20_POLY1305) return spec.integ === AUTH_NONE && (spec.encrKeyBits === 256 || spec.encrKeyBits === 0);
  const keyOk = spec.encrKeyBits === 128 || spec.encrKeyBits === 192 || spec.encrKeyBits === 256;
  if (isAead(spec.encr)) return keyOk && spec.integ === AUTH_NONE;
  if (spec.encr === ENCR_AES_CBC) return keyOk && INTEG[spec.integ] !== undefined;
  return false;
}

/**
 * Builds the transform for one direction of an SA (or one direction of an IKE SA's SK payload).
 * Key lengths are checked here (a control-plane error, thrown as VpnError 'ERR_CRYPTO_KEY').
 * The keys are copied into KeyObjects; the caller may wipe its buffers afterwards.
 */
export function createEncTransform(spec: EncTransformSpec, encrKey: Buffer, integKey: Buffer): EncTransform {
  if (!isSupportedSpec(spec)) {
    throw new VpnError('ERR_CRYPTO_UNSUPPORTED', `unsupported transform encr=${spec.encr}/${spec.encrKeyBits} integ=${spec.integ}`);
  }
  const need = encrKeyMatLen(spec);
  if (encrKey.length !== need) {
    throw new VpnError('ERR_CRYPTO_KEY', `encryption key material must be ${need} bytes, got ${encrKey.length}`);
  }
  if (spec.encr === ENCR_CHACHA20_POLY1305) {
    return new AeadTransform('chacha20-poly1305', 'chacha20poly1305', encrKey, 16);
  }
  if (isAead(spec.encr)) {
    const icv = spec.encr === ENCR_AES_GCM_8 ? 8 : spec.encr === ENCR_AES_GCM_12 ? 12 : 16;
    return new AeadTransform(`aes-${spec.encrKeyBits}-gcm`, `aes${spec.encrKeyBits}gcm${icv}`, encrKey, icv);
  }
  const info = INTEG[spec.integ]!;
  if (integKey.length !== info.keyLen) {
    throw new VpnError('ERR_CRYPTO_KEY', `integrity key must be ${info.keyLen} bytes, got ${integKey.length}`);
  }
  return new CbcHmacTransform(spec.encrKeyBits, encrKey, info, integKey);
}

/**
 * AES-GCM (RFC 4106 / RFC 5282) and ChaCha20-Poly1305 (RFC 7634): nonce = salt(4) | IV(8),
 * AAD = buf[authStart, ivOff), ICV = the tag.
 * node:crypto cipher objects are one-shot (a new nonce needs a new object), so each packet builds
 * one; the native data plane (src/native) reuses OpenSSL contexts instead.
 */
class AeadTransform implements EncTransform {
  readonly name: string;
  readonly ivLen = AEAD_IV_SIZE;
  readonly icvLen: number;
  readonly blockLen = ESP_MIN_ALIGN;
  private readonly algo: string;
  private readonly key: KeyObject;
  private readonly nonce: Buffer;
  private readonly opts: { authTagLength: number };
  /** reused AAD for ESN packets: SPI | seq-hi | seq-lo */
  private readonly esnAad: Buffer;

  constructor(algo: string, name: string, keyMat: Buffer, icvLen: number) {
    this.algo = algo;
    this.name = name;
    this.icvLen = icvLen;
    this.key = createSecretKey(Buffer.from(keyMat.subarray(0, keyMat.length - AEAD_SALT_SIZE)));
    this.nonce = Buffer.alloc(AEAD_SALT_SIZE + AEAD_IV_SIZE);
    keyMat.copy(this.nonce, 0, keyMat.length - AEAD_SALT_SIZE);
    this.opts = { authTagLength: icvLen };
    this.esnAad = Buffer.alloc(ESN_AAD_SIZE);
  }

  /** The AAD: buf[authStart, ivOff), or with ESN the same bytes with seq-hi inserted after the SPI. */
  private aad(buf: Buffer, authStart: number, ivOff: number, esnHi: number): Buffer {
    if (esnHi < 0) return buf.subarray(authStart, ivOff);
    const a = this.esnAad;
    buf.copy(a, 0, authStart, authStart + 4);
    a.writeUInt32BE(esnHi, 4);
    buf.copy(a, 8, authStart + 4, authStart + 8);
    return a;
  }

  seal(buf: Buffer, authStart: number, ivOff: number, dataOff: number, dataLen: number, esnHi = -1): void {
    buf.copy(this.nonce, AEAD_SALT_SIZE, ivOff, ivOff + AEAD_IV_SIZE);
    const c = createCipheriv(this.algo as 'aes-128-gcm', this.key, this.nonce, this.opts);
    if (ivOff > authStart) c.setAAD(this.aad(buf, authStart, ivOff, esnHi));
    const ct = c.update(buf.subarray(dataOff, dataOff + dataLen));
    ct.copy(buf, dataOff);
    c.final();
    c.getAuthTag().copy(buf, dataOff + dataLen);
  }

  open(buf: Buffer, authStart: number, ivOff: number, dataOff: number, dataLen: number, esnHi = -1): boolean {
    if (dataOff + dataLen + this.icvLen > buf.length) return false;
    buf.copy(this.nonce, AEAD_SALT_SIZE, ivOff, ivOff + AEAD_IV_SIZE);
    const d = createDecipheriv(this.algo as 'aes-128-gcm', this.key, this.nonce, this.opts);
    if (ivOff > authStart) d.setAAD(this.aad(buf, authStart, ivOff, esnHi));
    d.setAuthTag(buf.subarray(dataOff + dataLen, dataOff + dataLen + this.icvLen));
    const pt = d.update(buf.subarray(dataOff, dataOff + dataLen));
    try {
      d.final();
    } catch {
      return false; // bad tag: node:crypto only reports it by throwing; nothing was written to buf yet
    }
    pt.copy(buf, dataOff);
    return true;
  }
}

/**
 * AES-CBC (RFC 3602) with HMAC (RFC 2404, RFC 4868): encrypt-then-MAC over buf[authStart, end of ciphertext).
 * `open` verifies the ICV in constant time before decrypting.
 */
class CbcHmacTransform implements EncTransform {
  readonly name: string;
  readonly ivLen = CBC_IV_SIZE;
  readonly icvLen: number;
  readonly blockLen = AES_BLOCK_SIZE;
  private readonly algo: string;
  private readonly key: KeyObject;
  private readonly hash: string;
  private readonly macKey: KeyObject;
  /** reused seq-hi bytes appended to the MAC input of ESN packets */
  private readonly esnHiBytes: Buffer;

  constructor(keyBits: number, encrKey: Buffer, info: IntegInfo, integKey: Buffer) {
    this.algo = `aes-${keyBits}-cbc`;
    this.name = `aes${keyBits}-${info.short}`;
    this.icvLen = info.icvLen;
    this.key = createSecretKey(Buffer.from(encrKey));
    this.hash = info.hash;
    this.macKey = createSecretKey(Buffer.from(integKey));
    this.esnHiBytes = Buffer.alloc(ESN_HI_SIZE);
  }

  /** The full HMAC (the caller truncates it) over buf[authStart, end), then seq-hi with ESN. */
  private mac(buf: Buffer, authStart: number, end: number, esnHi: number): Buffer {
    const h = createHmac(this.hash, this.macKey).update(buf.subarray(authStart, end));
    if (esnHi >= 0) {
      this.esnHiBytes.writeUInt32BE(esnHi, 0);
      h.update(this.esnHiBytes);
    }
    return h.digest();
  }

  seal(buf: Buffer, authStart: number, ivOff: number, dataOff: number, dataLen: number, esnHi = -1): void {
    const c = createCipheriv(this.algo, this.key, buf.subarray(ivOff, ivOff + CBC_IV_SIZE));
    c.setAutoPadding(false);
    c.update(buf.subarray(dataOff, dataOff + dataLen)).copy(buf, dataOff);
    c.final();
    const mac = this.mac(buf, authStart, dataOff + dataLen, esnHi);
    mac.copy(buf, dataOff + dataLen, 0, this.icvLen);
  }

  open(buf: Buffer, authStart: number, ivOff: number, dataOff: number, dataLen: number, esnHi = -1): boolean {
    const end = dataOff + dataLen;
    if (dataLen % AES_BLOCK_SIZE !== 0 || end + this.icvLen > buf.length) return false;
    const mac = this.mac(buf, authStart, end, esnHi);
    if (!timingSafeEqual(mac.subarray(0, this.icvLen), buf.subarray(end, end + this.icvLen))) return false;
    const d = createDecipheriv(this.algo, this.key, buf.subarray(ivOff, ivOff + CBC_IV_SIZE));
    d.setAutoPadding(false);
    d.update(buf.subarray(dataOff, end)).copy(buf, dataOff);
    d.final();
    return true;
  }
}

// Implementation choice: CBC IVs (RFC 3602 §2.4: unpredictable) come from a pool of CSPRNG bytes
// refilled 4 KiB at a time, so the data path does not call into the RNG per packet.
const IV_POOL_SIZE = 4096;
const ivPool = Buffer.alloc(IV_POOL_SIZE);
let ivPoolPos = IV_POOL_SIZE;

/** Writes `len` (≤ 4096) fresh random bytes at buf[off] (for CBC IVs). */
export function fillRandomIv(buf: Buffer, off: number, len: number): void {
  if (ivPoolPos + len > IV_POOL_SIZE) {
    randomFillSync(ivPool);
    ivPoolPos = 0;
  }
  ivPool.copy(buf, off, ivPoolPos, ivPoolPos + len);
  ivPool.fill(0, ivPoolPos, ivPoolPos + len); // used bytes never linger
  ivPoolPos += len;
}
