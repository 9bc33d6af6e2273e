// RFC 7296 §3.9 Nonce Payload
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                            Nonce Data                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// "The size of the Nonce Data MUST be between 16 and 256 octets, inclusive."
import { PayloadType } from '../constants.js';
import type { NoncePayload } from '../types.js';
import { fail } from '../check.js';

export const NONCE_MIN_SIZE = 16;
export const NONCE_MAX_SIZE = 256;

export function decode(body: Buffer, at: number): NoncePayload {
  if (body.length < NONCE_MIN_SIZE || body.length > NONCE_MAX_SIZE) {
    fail('Nonce', at, `nonce of ${body.length} bytes is outside ${NONCE_MIN_SIZE}..${NONCE_MAX_SIZE}`);
  }
  return { type: PayloadType.NONCE, nonce: body };
}

export function encodedLength(p: NoncePayload): number {
  return p.nonce.length;
}

export function encode(p: NoncePayload, buf: Buffer, off: number): number {
  p.nonce.copy(buf, off);
  return off + p.nonce.length;
}
