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

/** A 28-byte IKEv2 header (version 2.0) for a datagram of `length` bytes. */
export function ikeHeader(exchangeType: number, nextPayload: number, messageId: number, length: number): Buffer {
  const h = Buffer.alloc(IKE_HEADER_SIZE);
  h.write('0102030405060708a1a2a3a4a5a6a7a8', 0, 'hex');
  h[16] = nextPayload;
  h[17] = 0x20;
  h[18] = exchangeType;
  h[19] = 0x08; // initiator
  h.writeUInt32BE(messageId >>> 0, 20);
  h.writeUInt32BE(length, 24);
  return h;
}
