// RFC 7296 §3.14 Encrypted and Authenticated Payload (SK), with RFC 5282 §3 for AEAD ciphers.
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                     Initialization Vector                     |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                    Encrypted IKE Payloads                     ~
// +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |               |             Padding (0-255 octets)            |
// +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
// |                                               |  Pad Length   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                    Integrity Checksum Data                    ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Next Payload = type of the first inner payload. The SK payload must be the last one.
// CBC+HMAC: ICV = HMAC over the whole message from the IKE header to the end of the ciphertext.
// AEAD: AAD = IKE header .. end of the SK generic header (32 bytes for a lone SK, RFC 5282 §5.1).
// Pad content is arbitrary and not checked; Pad Length counts the padding bytes only.
import { randomFillSync } from 'node:crypto';
import type { EncTransform } from '../../../crypto/aead.js';

export const SK_HEADER_SIZE = 4;

/** Pad bytes so that (inner + pad + 1) is a multiple of the transform's block length. */
export function padLength(enc: EncTransform, innerLen: number): number {
  const bl = Math.max(1, enc.blockLen);
  return (bl - ((innerLen + 1) % bl)) % bl;
}

/** Body length of an SK payload (after its generic header) carrying `innerLen` bytes of payloads. */
export function bodyLength(enc: EncTransform, innerLen: number): number {
  return enc.ivLen + innerLen + padLength(enc, innerLen) + 1 + enc.icvLen;
}

/**
 * Protects in place. Layout on entry: buf[authStart..] holds the message, the SK generic header
 * ends at `ivOff`, and the inner payloads (innerLen bytes) are already written at ivOff + ivLen.
 * Writes IV, padding, pad length and ICV. Returns the end offset of the SK payload.
 */
export function seal(enc: EncTransform, buf: Buffer, authStart: number, ivOff: number, innerLen: number): number {
  const pad = padLength(enc, innerLen);
  const dataOff = ivOff + enc.ivLen;
  // IV: unpredictable for CBC (RFC 7296 §3.14), never repeated under one key for AEAD
  // (RFC 5282 §3.1); 64 random bits per message are enough for IKE's message rate.
  randomFillSync(buf, ivOff, enc.ivLen);
  buf.fill(0, dataOff + innerLen, dataOff + innerLen + pad);
  buf[dataOff + innerLen + pad] = pad;
  const dataLen = innerLen + pad + 1;
  enc.seal(buf, authStart, ivOff, dataOff, dataLen);
  return dataOff + dataLen + enc.icvLen;
}

export type OpenResult = { ok: true; inner: Buffer; innerOff: number } | { ok: false; reason: 'integrity' | 'malformed'; detail: string };

/**
 * Verifies and decrypts in place. `ivOff` is where the IV starts (just after the SK generic
 * header) and `end` the end of the SK payload. On success `inner` is a view of the plaintext
 * inner payloads (padding stripped) at `innerOff`.
 */
export function open(dec: EncTransform, buf: Buffer, authStart: number, ivOff: number, end: number): OpenResult {
  const dataOff = ivOff + dec.ivLen;
  const dataLen = end - dataOff - dec.icvLen;
  if (dataLen < 1) return { ok: false, reason: 'malformed', detail: `SK payload of ${end - ivOff + 4} bytes is too short` };
  // block ciphers (CBC) need whole blocks; AEAD/stream ciphers take any length (strongSwan pads 0)
  if (dec.blockLen >= 8 && dataLen % dec.blockLen !== 0) {
    return { ok: false, reason: 'malformed', detail: `SK ciphertext of ${dataLen} bytes is not a multiple of ${dec.blockLen}` };
  }
  let good: boolean;
  try {
    good = dec.open(buf, authStart, ivOff, dataOff, dataLen);
  } catch (e) {
    return { ok: false, reason: 'integrity', detail: `decryption failed: ${(e as Error).message}` };
  }
  if (!good) return { ok: false, reason: 'integrity', detail: 'SK integrity check failed' };
  const pad = buf[dataOff + dataLen - 1]!;
  if (pad + 1 > dataLen) return { ok: false, reason: 'malformed', detail: `SK pad length ${pad} exceeds ${dataLen - 1} bytes` };
  return { ok: true, inner: buf.subarray(dataOff, dataOff + dataLen - pad - 1), innerOff: dataOff };
}
