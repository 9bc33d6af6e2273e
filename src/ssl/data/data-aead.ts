/**
 * The AEAD used by the OpenVPN data channel, behind one small interface so that a native batch
 * implementation (reused EVP contexts, as the addon's ovpn core does) can replace node:crypto later.
 *
 * Contract: `seal` encrypts buf[dataOff, dataOff+dataLen) in place, authenticates
 * buf[aadOff, aadOff+aadLen) as AAD, and writes the 16-byte tag at buf[tagOff]. `open` checks the tag
 * at tagOff and decrypts in place; it returns false on a bad tag and then leaves the ciphertext as is.
 * The 12-byte nonce is passed in (OpenVPN: packet-id || implicit IV), and is only read during the call.
 */
import { VpnError } from '../../common/errors.js';
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { AEAD_TAG_SIZE } from '../wire/data-packet.js';

export interface DataAead {
  readonly cipher: string; // OpenVPN name, e.g. "AES-256-GCM"
  seal(nonce: Buffer, buf: Buffer, aadOff: number, aadLen: number, dataOff: number, dataLen: number, tagOff: number): void;
  open(nonce: Buffer, buf: Buffer, aadOff: number, aadLen: number, dataOff: number, dataLen: number, tagOff: number): boolean;
}

/** OpenVPN cipher name → node:crypto algorithm and key length (bytes). */
export const DATA_CIPHERS: Readonly<Record<string, { alg: string; keyLen: number }>> = Object.freeze({
  'AES-128-GCM': { alg: 'aes-128-gcm', keyLen: 16 },
  'AES-256-GCM': { alg: 'aes-256-gcm', keyLen: 32 },
  'CHACHA20-POLY1305': { alg: 'chacha20-poly1305', keyLen: 32 },
});

export function isSupportedDataCipher(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(DATA_CIPHERS, name.toUpperCase());
}

/** node:crypto implementation: one cipher object per packet (node cannot re-IV a cipher). */
class NodeDataAead implements DataAead {
  private readonly alg: string;
  private readonly key: KeyObject;
  constructor(
    readonly cipher: string,
    alg: string,
    key: Buffer,
  ) {
    this.alg = alg;
    this.key = createSecretKey(Buffer.from(key));
  }

  seal(nonce: Buffer, buf: Buffer, aadOff: number, aadLen: number, dataOff: number, dataLen: number, tagOff: number): void {
    const c = createCipheriv(this.alg as 'aes-256-gcm', this.key, nonce, { authTagLength: AEAD_TAG_SIZE });
    c.setAAD(buf.subarray(aadOff, aadOff + aadLen));
    const ct = c.update(buf.subarray(dataOff, dataOff + dataLen));
    ct.copy(buf, dataOff);
    c.final();
    c.getAuthTag().copy(buf, tagOff);
  }

  open(nonce: Buffer, buf: Buffer, aadOff: number, aadLen: number, dataOff: number, dataLen: number, tagOff: number): boolean {
    const d = createDecipheriv(this.alg as 'aes-256-gcm', this.key, nonce, { authTagLength: AEAD_TAG_SIZE });
    d.setAAD(buf.subarray(aadOff, aadOff + aadLen));
    d.setAuthTag(buf.subarray(tagOff, tagOff + AEAD_TAG_SIZE));
    const pt = d.update(buf.subarray(dataOff, dataOff + dataLen));
    try {
      d.final();
    } catch {
      return false; // bad tag: the plaintext is discarded, the buffer is untouched
    }
    pt.copy(buf, dataOff);
    return true;
  }
}

/**
 * Creates the AEAD for an OpenVPN cipher name. `key` may be a whole 64-byte key-block slot: only its
 * leading bytes are used (OpenVPN key2 slots are 64 bytes). Throws ERR_CRYPTO_UNSUPPORTED for an unknown cipher (a config/negotiation bug,
 * not a per-packet failure).
 */
export function createDataAead(cipher: string, key: Buffer): DataAead {
  const name = cipher.toUpperCase();
  const spec = DATA_CIPHERS[name];
  if (!spec) throw new VpnError('ERR_CRYPTO_UNSUPPORTED', `unsupported data cipher ${cipher}`);
  if (key.length < spec.keyLen) throw new VpnError('ERR_CRYPTO_KEY', `${name} needs a ${spec.keyLen}-byte key, got ${key.length}`);
  return new NodeDataAead(name, spec.alg, key.subarray(0, spec.keyLen));
}
