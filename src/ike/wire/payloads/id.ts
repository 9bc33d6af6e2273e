// RFC 7296 §3.5 Identification Payloads (IDi 35, IDr 36)
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   ID Type     |                 RESERVED                      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                   Identification Data                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The body (type, 3 reserved bytes, data) is exactly IDx' / RestOfIDPayload of §2.15.
import type { PayloadType } from '../constants.js';
import type { IdPayload } from '../types.js';
import { need } from '../check.js';

export function decode(body: Buffer, at: number, type: PayloadType.IDi | PayloadType.IDr): IdPayload {
  need('ID', body, at, 0, 4);
  return { type, idType: body[0]!, data: body.subarray(4) };
}

export function encodedLength(p: IdPayload): number {
  return 4 + p.data.length;
}

export function encode(p: IdPayload, buf: Buffer, off: number): number {
  buf[off] = p.idType;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  p.data.copy(buf, off + 4);
  return off + 4 + p.data.length;
}
