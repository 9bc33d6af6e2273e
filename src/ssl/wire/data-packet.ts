/**
 * OpenVPN data-channel packet header (P_DATA_V1 / P_DATA_V2), AEAD form.
 * Source: OpenVPN 2.6 `ssl.c` (opcode prepend), `crypto.c` (AEAD layout).
 *
 * P_DATA_V2 (opcode 9):
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   | op<<3 | key_id |                peer-id (u24)                  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                        packet-id (u32)                         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                     AEAD tag (16 bytes)                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                     ciphertext (>= 1 byte)                     |
 *   AAD = bytes 0..7 (op/key-id, peer-id, packet-id).
 *
 * P_DATA_V1 (opcode 6): op/key_id (1) || packet-id (4) || tag (16) || ciphertext; AAD = packet-id only.
 *
 * This module only reads and writes the clear header; the AEAD work is in ssl/data/data-channel.ts.
 */
import { ParseError } from '../../common/errors.js';

// --- spec constants ---
export const P_DATA_V1 = 6;
export const P_DATA_V2 = 9;
export const OPCODE_SHIFT = 3;
export const KEY_ID_MASK = 0x07;
export const PEER_ID_UNSET = 0xffffff;
export const PEER_ID_MAX = 0xfffffe;
export const DATA_V1_HEADER_SIZE = 5; // op + packet-id
export const DATA_V2_HEADER_SIZE = 8; // op + peer-id + packet-id
export const AEAD_TAG_SIZE = 16;
export const DATA_V2_AEAD_OVERHEAD = DATA_V2_HEADER_SIZE + AEAD_TAG_SIZE; // 24
export const DATA_V1_AEAD_OVERHEAD = DATA_V1_HEADER_SIZE + AEAD_TAG_SIZE; // 21

/** The opcode (high 5 bits) of a packet's first byte. */
export function opcodeOf(b0: number): number {
  return b0 >>> OPCODE_SHIFT;
}

/** True for P_DATA_V1 / P_DATA_V2 first bytes: the shell's demultiplexing test. */
export function isDataOpcode(b0: number): boolean {
  const op = b0 >>> OPCODE_SHIFT;
  return op === P_DATA_V2 || op === P_DATA_V1;
}

export interface DataPacketHeader {
  opcode: number; // P_DATA_V1 or P_DATA_V2
  keyId: number;
  peerId: number; // PEER_ID_UNSET for V1
  packetId: number;
  /** offset of the AEAD tag (relative to the buffer) */
  tagOff: number;
  /** offset and length of the ciphertext */
  dataOff: number;
  dataLen: number;
}

/** A reusable header holder for the hot path (stable shape, all fields set). */
export function newDataPacketHeader(): DataPacketHeader {
  return { opcode: 0, keyId: 0, peerId: 0, packetId: 0, tagOff: 0, dataOff: 0, dataLen: 0 };
}

export const DECODE_OK = 0;
export const DECODE_SHORT = 1;
export const DECODE_NOT_DATA = 2;

/**
 * Reads the clear header of an AEAD data packet at buf[off, off+len) into `out` without allocating.
 * Returns DECODE_OK, DECODE_SHORT (no room for header + tag + 1 byte) or DECODE_NOT_DATA.
 */
export function readDataHeader(buf: Buffer, off: number, len: number, out: DataPacketHeader): number {
  if (len < 1) return DECODE_SHORT;
  const b0 = buf[off]!;
  const op = b0 >>> OPCODE_SHIFT;
  let hdr: number;
  if (op === P_DATA_V2) {
    hdr = DATA_V2_HEADER_SIZE;
    if (len < hdr + AEAD_TAG_SIZE + 1) return DECODE_SHORT;
    out.peerId = (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!;
    out.packetId = buf.readUInt32BE(off + 4);
  } else if (op === P_DATA_V1) {
    hdr = DATA_V1_HEADER_SIZE;
    if (len < hdr + AEAD_TAG_SIZE + 1) return DECODE_SHORT;
    out.peerId = PEER_ID_UNSET;
    out.packetId = buf.readUInt32BE(off + 1);
  } else {
    return DECODE_NOT_DATA;
  }
  out.opcode = op;
  out.keyId = b0 & KEY_ID_MASK;
  out.tagOff = off + hdr;
  out.dataOff = off + hdr + AEAD_TAG_SIZE;
  out.dataLen = len - hdr - AEAD_TAG_SIZE;
  return DECODE_OK;
}

/** Control-plane/test decode: a fresh header or a ParseError with the byte offset. */
export function decodeDataHeader(buf: Buffer): DataPacketHeader | ParseError {
  const h = newDataPacketHeader();
  const r = readDataHeader(buf, 0, buf.length, h);
  if (r === DECODE_NOT_DATA) return new ParseError('data packet', 0, `opcode ${opcodeOf(buf[0] ?? 0)} is not P_DATA_V1/V2`);
  if (r === DECODE_SHORT) return new ParseError('data packet', buf.length, `truncated: ${buf.length} bytes`);
  return h;
}

/** Size of the header (without tag) for an opcode. */
export function dataHeaderSize(opcode: number): number {
  return opcode === P_DATA_V2 ? DATA_V2_HEADER_SIZE : DATA_V1_HEADER_SIZE;
}

/** Writes a P_DATA_V2 header (op/key-id, peer-id, packet-id) at `off`; returns the offset after it. */
export function writeDataV2Header(buf: Buffer, off: number, keyId: number, peerId: number, packetId: number): number {
  buf[off] = (P_DATA_V2 << OPCODE_SHIFT) | (keyId & KEY_ID_MASK);
  buf[off + 1] = (peerId >>> 16) & 0xff;
  buf[off + 2] = (peerId >>> 8) & 0xff;
  buf[off + 3] = peerId & 0xff;
  buf.writeUInt32BE(packetId >>> 0, off + 4);
  return off + DATA_V2_HEADER_SIZE;
}

/** Writes a P_DATA_V1 header (op/key-id, packet-id) at `off`; returns the offset after it. */
export function writeDataV1Header(buf: Buffer, off: number, keyId: number, packetId: number): number {
  buf[off] = (P_DATA_V1 << OPCODE_SHIFT) | (keyId & KEY_ID_MASK);
  buf.writeUInt32BE(packetId >>> 0, off + 1);
  return off + DATA_V1_HEADER_SIZE;
}
