// RFC 7296 §3.11 Delete Payload
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Protocol ID   |   SPI Size    |          Num of SPIs          |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~               Security Parameter Index(es) (SPI)              ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// IKE SA: protocol 1, SPI size 0, no SPIs. ESP: protocol 3, SPI size 4, the SENDER's inbound SPIs.
// An SPI size of 0 with a non-zero count is refused (RFC 7296 §3.11: "the SPI Size field MUST be
// zero, and the Num of SPIs field MUST be zero" for the IKE SA): such a payload would claim up to
// 65,535 SPIs in 4 bytes, and decoding must stay linear in the bytes received.
import { PayloadType } from '../constants.js';
import type { DeletePayload } from '../types.js';
import { fail, need } from '../check.js';

export function decode(body: Buffer, at: number): DeletePayload {
  need('D', body, at, 0, 4);
  const spiSize = body[1]!;
  const n = body.readUInt16BE(2);
  if (spiSize === 0 && n !== 0) fail('D', at + 2, `${n} SPIs of size 0`);
  if (body.length !== 4 + n * spiSize) {
    fail('D', at + 2, `${n} SPIs of ${spiSize} bytes do not fill ${body.length - 4} bytes`);
  }
  const spis: Buffer[] = [];
  for (let i = 0; i < n; i++) spis.push(body.subarray(4 + i * spiSize, 4 + (i + 1) * spiSize));
  return { type: PayloadType.D, protocol: body[0]!, spiSize, spis };
}

export function encodedLength(p: DeletePayload): number {
  return 4 + p.spis.length * p.spiSize;
}

export function encode(p: DeletePayload, buf: Buffer, off: number): number {
  buf[off] = p.protocol;
  buf[off + 1] = p.spiSize;
  buf.writeUInt16BE(p.spis.length, off + 2);
  let o = off + 4;
  for (const s of p.spis) {
    if (s.length !== p.spiSize) throw new RangeError(`Delete SPI of ${s.length} bytes, SPI size is ${p.spiSize}`);
    s.copy(buf, o);
    o += p.spiSize;
  }
  return o;
}
