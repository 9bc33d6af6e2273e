// Fuzz target: the OpenVPN data packet header (P_DATA_V1/V2, src/ssl/wire/data-packet.ts) through
// both entry points: decodeDataHeader (returns a ParseError) and the hot-path readDataHeader (returns
// a numeric status and must never read past `off + len`). Byte 0 gives an offset into the rest.
import { ParseError } from '../../../src/common/errors.js';
import { DECODE_NOT_DATA, DECODE_OK, DECODE_SHORT, decodeDataHeader, newDataPacketHeader, readDataHeader } from '../../../src/ssl/wire/data-packet.js';
import { allowParseError, invariant } from './check.js';

export const maxLen = 256;
const h = newDataPacketHeader();

export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const buf = data.subarray(1);
  allowParseError(() => decodeDataHeader(buf));
  const off = buf.length ? data[0]! % (buf.length + 1) : 0;
  const r = readDataHeader(buf, off, buf.length - off, h);
  invariant(r === DECODE_OK || r === DECODE_SHORT || r === DECODE_NOT_DATA, `readDataHeader returned ${r}`);
  // the same bytes at offset 0 of an exact-size copy must give the same answer
  const r0 = readDataHeader(Buffer.from(buf.subarray(off)), 0, buf.length - off, newDataPacketHeader());
  invariant(r0 === r, `readDataHeader depends on the offset: ${r} vs ${r0}`);
  const d = decodeDataHeader(Buffer.from(buf.subarray(off)));
  invariant((d instanceof ParseError) === (r !== DECODE_OK), 'decodeDataHeader and readDataHeader disagree');
}
