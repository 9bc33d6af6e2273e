// Fuzz target: every IKEv2 payload codec (src/ike/wire/payloads/*.ts) on its own, through
// decodePayload (src/ike/wire/message.ts), which dispatches on the payload type. Byte 0 picks the
// type (SA, KE, IDi/IDr, CERT, CERTREQ, AUTH, Nonce, Notify, Delete, Vendor ID, TSi/TSr, CP, EAP,
// or an unknown type), the rest is the payload body after the generic header. Bad bodies must end
// in a ParseError; a body that decodes must encode again (encodeChain) and decode to the same bytes.
import { ParseError } from '../../../src/common/errors.js';
import { chainLength, decodePayload, encodeChain, GENERIC_HEADER_SIZE } from '../../../src/ike/wire/message.js';
import { allowParseError, invariant } from './check.js';

export const maxLen = 2048;

const TYPES = [33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 47, 48, 200];

export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const type = TYPES[data[0]! % TYPES.length]!;
  const body = data.subarray(1);
  const p = allowParseError(() => decodePayload(type, false, body, 0));
  if (p instanceof ParseError) return;
  const out = Buffer.alloc(chainLength([p]));
  const end = encodeChain([p], out, 0);
  invariant(end === out.length, `encodeChain wrote ${end} bytes, chainLength said ${out.length}`);
  const body2 = out.subarray(GENERIC_HEADER_SIZE);
  const p2 = allowParseError(() => decodePayload(type, false, Buffer.from(body2), 0));
  invariant(!(p2 instanceof ParseError), `re-encoded payload ${type} does not decode: ${p2 instanceof ParseError ? p2.message : ''}`);
  const out2 = Buffer.alloc(chainLength([p2]));
  encodeChain([p2], out2, 0);
  invariant(out2.equals(out), `payload ${type}: encode(decode(encode(decode(x)))) differs from encode(decode(x))`);
}
