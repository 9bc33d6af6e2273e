// RFC 7296 §3.10 Notify Payload
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  Protocol ID  |   SPI Size    |      Notify Message Type      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                Security Parameter Index (SPI)                 ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       Notification Data                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Types below 16384 are errors, 16384 and above status. With SPI size 0 the protocol ID is
// meaningless (send 0, ignore on receipt).
import { NOTIFY_ERROR_MAX, PayloadType } from '../constants.js';
import type { NotifyPayload } from '../types.js';
import { need } from '../check.js';

export function decode(body: Buffer, at: number): NotifyPayload {
  need('N', body, at, 0, 4);
  const spiSize = body[1]!;
  need('N', body, at, 4, spiSize);
  return {
    type: PayloadType.N,
    protocol: body[0]!,
    spi: body.subarray(4, 4 + spiSize),
    notifyType: body.readUInt16BE(2),
    data: body.subarray(4 + spiSize),
  };
}

export function encodedLength(p: NotifyPayload): number {
  return 4 + p.spi.length + p.data.length;
}

export function encode(p: NotifyPayload, buf: Buffer, off: number): number {
  buf[off] = p.protocol;
  buf[off + 1] = p.spi.length;
  buf.writeUInt16BE(p.notifyType, off + 2);
  p.spi.copy(buf, off + 4);
  p.data.copy(buf, off + 4 + p.spi.length);
  return off + 4 + p.spi.length + p.data.length;
}

export function isErrorNotify(notifyType: number): boolean {
  return notifyType <= NOTIFY_ERROR_MAX;
}

/** Convenience constructor for an IKE-wide notify (protocol 0, no SPI). */
export function notify(notifyType: number, data: Buffer = Buffer.alloc(0)): NotifyPayload {
  return { type: PayloadType.N, protocol: 0, spi: Buffer.alloc(0), notifyType, data };
}
