// RFC 7296 §3.12 Vendor ID Payload
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        Vendor ID (VID)                        ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import { PayloadType } from '../constants.js';
import type { VendorPayload } from '../types.js';

export function decode(body: Buffer, _at: number): VendorPayload {
  return { type: PayloadType.V, data: body };
}

export function encodedLength(p: VendorPayload): number {
  return p.data.length;
}

export function encode(p: VendorPayload, buf: Buffer, off: number): number {
  p.data.copy(buf, off);
  return off + p.data.length;
}
