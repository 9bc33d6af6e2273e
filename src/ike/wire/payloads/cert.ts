// RFC 7296 §3.6 Certificate Payload
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Cert Encoding |                                               |
// +-+-+-+-+-+-+-+-+                                               |
// ~                       Certificate Data                        ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import { PayloadType } from '../constants.js';
import type { CertPayload } from '../types.js';
import { need } from '../check.js';

export function decode(body: Buffer, at: number): CertPayload {
  need('CERT', body, at, 0, 1);
  return { type: PayloadType.CERT, encoding: body[0]!, data: body.subarray(1) };
}

export function encodedLength(p: CertPayload): number {
  return 1 + p.data.length;
}

export function encode(p: CertPayload, buf: Buffer, off: number): number {
  buf[off] = p.encoding;
  p.data.copy(buf, off + 1);
  return off + 1 + p.data.length;
}
