// RFC 7296 §3.4 Key Exchange Payload
//
//                      1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   Diffie-Hellman Group Num    |           RESERVED            |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       Key Exchange Data                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Codecs in this folder handle the payload BODY (after the 4-byte generic header, which
// message.ts reads and writes). decode() returns views into `body`.
import { PayloadType } from '../constants.js';
import type { KePayload } from '../types.js';
import { need } from '../check.js';

export function decode(body: Buffer, at: number): KePayload {
  need('KE', body, at, 0, 4);
  return { type: PayloadType.KE, group: body.readUInt16BE(0), data: body.subarray(4) };
}

export function encodedLength(p: KePayload): number {
  return 4 + p.data.length;
}

export function encode(p: KePayload, buf: Buffer, off: number): number {
  buf.writeUInt16BE(p.group, off);
  buf.writeUInt16BE(0, off + 2);
  p.data.copy(buf, off + 4);
  return off + 4 + p.data.length;
}
