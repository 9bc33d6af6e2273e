// RFC 7296 §3.8 Authentication Payload
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Auth Method   |                RESERVED                       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Authentication Data                      ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import { PayloadType } from '../constants.js';
import type { AuthPayload } from '../types.js';
import { need } from '../check.js';

export function decode(body: Buffer, at: number): AuthPayload {
  need('AUTH', body, at, 0, 4);
  return { type: PayloadType.AUTH, method: body[0]!, data: body.subarray(4) };
}

export function encodedLength(p: AuthPayload): number {
  return 4 + p.data.length;
}

export function encode(p: AuthPayload, buf: Buffer, off: number): number {
  buf[off] = p.method;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  p.data.copy(buf, off + 4);
  return off + 4 + p.data.length;
}
