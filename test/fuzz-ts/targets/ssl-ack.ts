// Fuzz target: the OpenVPN ACK block (src/ssl/wire/ack.ts decodeAck) at any offset of a buffer:
// byte 0 picks the offset, the rest is the buffer. A bad block is a returned ParseError; a good one
// must re-encode to the bytes it was read from.
import { ParseError } from '../../../src/common/errors.js';
import { ackEncodedLength, decodeAck, encodeAck } from '../../../src/ssl/wire/ack.js';
import { allowParseError, invariant } from './check.js';

export const maxLen = 512;

export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const buf = data.subarray(1);
  const off = buf.length ? data[0]! % (buf.length + 1) : 0;
  const r = allowParseError(() => decodeAck(buf, off));
  if (r instanceof ParseError) return;
  invariant(r.next <= buf.length && r.next > off, `decodeAck next ${r.next} outside (${off}, ${buf.length}]`);
  const out = Buffer.alloc(ackEncodedLength(r.ack));
  encodeAck(r.ack, out, 0);
  invariant(out.equals(buf.subarray(off, r.next)), 'ACK block does not re-encode to its bytes');
}
