// An SK transform that "decrypts" to the bytes as they are, so fuzz input reaches the code behind
// SK and SKF (padding, the inner payload chain, fragment reassembly) as if it had decrypted and
// verified: the fuzzer then explores what an authenticated peer could send.
import type { EncTransform } from '../../../src/crypto/aead.js';
import type { SkCrypto } from '../../../src/ike/wire/message.js';

export const NULL_IV_LEN = 8;
export const NULL_ICV_LEN = 16;

const nullTransform: EncTransform = {
  name: 'null-fuzz',
  ivLen: NULL_IV_LEN,
  icvLen: NULL_ICV_LEN,
  blockLen: 4,
  seal(): void {},
  open(): boolean {
    return true;
  },
};

export const nullSk: SkCrypto = { enc: nullTransform, dec: nullTransform };

export const IKE_HEADER_SIZE = 28;

/** A 28-byte IKEv2 header (version 2.0) for a datagram of `length` bytes; flags default to I. */
export function ikeHeader(exchangeType: number, nextPayload: number, messageId: number, length: number, flags = 0x08): Buffer {
  const h = Buffer.alloc(IKE_HEADER_SIZE);
  h.write('0102030405060708a1a2a3a4a5a6a7a8', 0, 'hex');
  h[16] = nextPayload;
  h[17] = 0x20;
  h[18] = exchangeType;
  h[19] = flags;
  h.writeUInt32BE(messageId >>> 0, 20);
  h.writeUInt32BE(length, 24);
  return h;
}

const SK_EXCHANGES = [34, 35, 36, 37]; // IKE_SA_INIT (must be refused with SK), IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL
const FLAG_I = 0x08;
const FLAG_R = 0x20;

/** Exchange type and flags from one selector byte: bits 0-1 the exchange, bit 2 R, bit 3 I. */
export function exchangeOf(selector: number): { exchangeType: number; flags: number } {
  return { exchangeType: SK_EXCHANGES[selector & 3]!, flags: (selector & 4 ? FLAG_R : 0) | (selector & 8 ? FLAG_I : 0) };
}

/** The selector byte for an exchange type and flags (inverse of exchangeOf). */
export function selectorOf(exchangeType: number, flags: number): number {
  return Math.max(0, SK_EXCHANGES.indexOf(exchangeType)) | (flags & FLAG_R ? 4 : 0) | (flags & FLAG_I ? 8 : 0);
}
