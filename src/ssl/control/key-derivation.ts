/**
 * Data-channel key material (OpenVPN 2.6 `ssl.c` `generate_key_expansion`, `crypto.c`).
 *
 * 1. A 256-byte key block, from either
 *    - the TLS exporter (RFC 5705) with label "EXPORTER-OpenVPN-datakeys" and no context
 *      ("tls-ekm"; used when we push it, i.e. when the client set IV_PROTO bit 3), or
 *    - OpenVPN's use of the TLS 1.0 PRF (RFC 2246 §5):
 *        master    = PRF(pre_master, "OpenVPN master secret" || c.random1 || s.random1, 48)
 *        key_block = PRF(master, "OpenVPN key expansion" || c.random2 || s.random2 || c.sid || s.sid, 256)
 * 2. The block is two directions of (64 cipher bytes || 64 HMAC bytes):
 *        [0,64) c->s cipher  [64,128) c->s hmac  [128,192) s->c cipher  [192,256) s->c hmac
 *    AEAD ciphers use the leading key bytes of the cipher slot and the first 8 bytes of the hmac
 *    slot as the implicit IV. The server encrypts with s->c and decrypts with c->s.
 */
import { VpnError } from '../../common/errors.js';
import { createHmac } from 'node:crypto';

export const EKM_LABEL = 'EXPORTER-OpenVPN-datakeys';
export const KEY_BLOCK_SIZE = 256;
export const KEY_SLOT_SIZE = 128;
export const CIPHER_SLOT_SIZE = 64;
export const IMPLICIT_IV_SIZE = 8;
export const MASTER_SECRET_SIZE = 48;
export const MASTER_SECRET_LABEL = 'OpenVPN master secret';
export const KEY_EXPANSION_LABEL = 'OpenVPN key expansion';

/** AEAD data ciphers we support, with their key size. */
export const DATA_CIPHER_KEY_BYTES: Readonly<Record<string, number>> = Object.freeze({
  'AES-128-GCM': 16,
  'AES-256-GCM': 32,
  'CHACHA20-POLY1305': 32,
});

export function isSupportedDataCipher(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(DATA_CIPHER_KEY_BYTES, name.toUpperCase());
}

function pHash(alg: 'md5' | 'sha1', secret: Buffer, seed: Buffer, len: number): Buffer {
  const out = Buffer.alloc(len);
  let a = seed; // A(0)
  let off = 0;
  while (off < len) {
    a = createHmac(alg, secret).update(a).digest(); // A(i)
    const chunk = createHmac(alg, secret).update(a).update(seed).digest();
    off += chunk.copy(out, off);
  }
  return out;
}

/**
 * RFC 2246 §5 PRF: P_MD5(S1, label||seed) XOR P_SHA1(S2, label||seed), where S1 and S2 are the
 * two halves of the secret (overlapping by one byte when its length is odd). OpenVPN passes the
 * label as the start of the seed, so callers pass one `seed`.
 */
export function tls1Prf(secret: Buffer, seed: Buffer, len: number): Buffer {
  const half = Math.ceil(secret.length / 2);
  const s1 = secret.subarray(0, half);
  const s2 = secret.subarray(secret.length - half);
  const md5 = pHash('md5', s1, seed, len);
  const sha = pHash('sha1', s2, seed, len);
  for (let i = 0; i < len; i++) md5[i]! ^= sha[i]!;
  return md5;
}

export interface PrfInputs {
  preMaster: Buffer; // client's, 48 bytes
  clientRandom1: Buffer;
  serverRandom1: Buffer;
  clientRandom2: Buffer;
  serverRandom2: Buffer;
  clientSessionId: Buffer;
  serverSessionId: Buffer;
}

/** The legacy (non-EKM) 256-byte key block. */
export function prfKeyBlock(i: PrfInputs): Buffer {
  const master = tls1Prf(i.preMaster, Buffer.concat([Buffer.from(MASTER_SECRET_LABEL, 'latin1'), i.clientRandom1, i.serverRandom1]), MASTER_SECRET_SIZE);
  return tls1Prf(
    master,
    Buffer.concat([Buffer.from(KEY_EXPANSION_LABEL, 'latin1'), i.clientRandom2, i.serverRandom2, i.clientSessionId, i.serverSessionId]),
    KEY_BLOCK_SIZE,
  );
}

export interface DirectionalKeys {
  /** server -> client */
  encKey: Buffer;
  encImplicitIv: Buffer;
  /** client -> server */
  decKey: Buffer;
  decImplicitIv: Buffer;
}

/** Slices a key block for the server side of an AEAD cipher (copies: the block can be wiped). */
export function serverKeysFromBlock(block: Buffer, cipher: string): DirectionalKeys {
  if (block.length !== KEY_BLOCK_SIZE) throw new VpnError('ERR_CRYPTO_KEY', `key block is ${block.length} bytes`);
  const keyLen = DATA_CIPHER_KEY_BYTES[cipher.toUpperCase()];
  if (keyLen === undefined) throw new VpnError('ERR_CRYPTO_UNSUPPORTED', `unsupported data cipher ${cipher}`);
  const c2s = 0;
  const s2c = KEY_SLOT_SIZE;
  return {
    encKey: Buffer.from(block.subarray(s2c, s2c + keyLen)),
    encImplicitIv: Buffer.from(block.subarray(s2c + CIPHER_SLOT_SIZE, s2c + CIPHER_SLOT_SIZE + IMPLICIT_IV_SIZE)),
    decKey: Buffer.from(block.subarray(c2s, c2s + keyLen)),
    decImplicitIv: Buffer.from(block.subarray(c2s + CIPHER_SLOT_SIZE, c2s + CIPHER_SLOT_SIZE + IMPLICIT_IV_SIZE)),
  };
}
