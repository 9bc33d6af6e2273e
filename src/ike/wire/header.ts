// RFC 7296 §3.1 The IKE Header
//
//                      1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                       IKE SA Initiator's SPI                  |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                       IKE SA Responder's SPI                  |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                          Message ID                           |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                            Length                             |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags: I (0x08) = sender is the IKE SA's original initiator, V (0x10) = can speak a higher
// major version (send 0), R (0x20) = response. Other bits: send 0, ignore on receipt.
import { IKE_HEADER_SIZE, IKE_VERSION } from './constants.js';
import type { IkeHeader } from './types.js';

export const SPI_SIZE = 8;
export const HEADER_NEXT_PAYLOAD_OFFSET = 16;
export const HEADER_LENGTH_OFFSET = 24;

/**
 * Reads the fixed header. Returns null when `buf` is shorter than 28 bytes or the Length field is
 * below 28 or beyond the end of `buf`. SPIs are views into `buf`. The version is not checked here.
 */
export function decodeHeader(buf: Buffer): IkeHeader | null {
  if (buf.length < IKE_HEADER_SIZE) return null;
  const length = buf.readUInt32BE(HEADER_LENGTH_OFFSET);
  if (length < IKE_HEADER_SIZE || length > buf.length) return null;
  return {
    spiI: buf.subarray(0, 8),
    spiR: buf.subarray(8, 16),
    nextPayload: buf[16]!,
    version: buf[17]!,
    exchangeType: buf[18]!,
    flags: buf[19]!,
    messageId: buf.readUInt32BE(20),
    length,
  };
}

/** Writes a 28-byte header (version 2.0) at `off`; returns off + 28. */
export function encodeHeader(
  h: { spiI: Buffer; spiR: Buffer; exchangeType: number; flags: number; messageId: number },
  nextPayload: number,
  length: number,
  buf: Buffer,
  off: number,
): number {
  if (h.spiI.length !== SPI_SIZE || h.spiR.length !== SPI_SIZE) throw new RangeError('IKE SPIs must be 8 bytes');
  h.spiI.copy(buf, off);
  h.spiR.copy(buf, off + 8);
  buf[off + 16] = nextPayload;
  buf[off + 17] = IKE_VERSION;
  buf[off + 18] = h.exchangeType;
  buf[off + 19] = h.flags;
  buf.writeUInt32BE(h.messageId >>> 0, off + 20);
  buf.writeUInt32BE(length, off + 24);
  return off + IKE_HEADER_SIZE;
}
