// Fuzz target: the decrypted contents of an SK payload (RFC 7296 §3.14), i.e. what an
// authenticated peer controls: byte 0 picks the exchange and the header flags (null-sk.ts
// exchangeOf: the payloads allowed depend on both), byte 1 is the SK's Next Payload (the first
// inner payload type), the rest is the plaintext (inner payload chain, padding, Pad Length). It goes through the whole
// decodeMessage path (src/ike/wire/message.ts) with a pass-through cipher (null-sk.ts), and through
// decodeInnerPayloads, the entry point used after SKF reassembly.
import { decodeHeader, decodeInnerPayloads, decodeMessage, encodeMessage } from '../../../src/ike/wire/message.js';
import { invariant } from './check.js';
import { exchangeOf, IKE_HEADER_SIZE, ikeHeader, NULL_ICV_LEN, NULL_IV_LEN, nullSk } from './null-sk.js';

export const maxLen = 4096;
export const dictionary = [Buffer.from('2900', 'hex'), Buffer.from('2c00', 'hex'), Buffer.from('2d00', 'hex'), Buffer.from('2700', 'hex'), Buffer.from('2f00', 'hex'), Buffer.from('00004000', 'hex')];

const SK = 46;

export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const { exchangeType, flags } = exchangeOf(data[0]!);
  const first = data[1]!;
  const plain = data.subarray(2);
  const skLen = 4 + NULL_IV_LEN + plain.length + NULL_ICV_LEN;
  const total = IKE_HEADER_SIZE + skLen;
  if (skLen > 0xffff) return;
  const dg = Buffer.alloc(total);
  ikeHeader(exchangeType, SK, 1, total, flags).copy(dg, 0);
  dg[IKE_HEADER_SIZE] = first;
  dg.writeUInt16BE(skLen, IKE_HEADER_SIZE + 2);
  plain.copy(dg, IKE_HEADER_SIZE + 4 + NULL_IV_LEN);
  const r = decodeMessage(dg, nullSk);
  if (!r.ok) invariant(!r.detail.startsWith('decoder error:'), `decodeMessage: ${r.detail}`);
  else {
    const again = encodeMessage(r.msg.header, [...r.msg.payloads, ...r.msg.skipped], nullSk);
    const r2 = decodeMessage(again, nullSk);
    invariant(r2.ok, `re-encoded SK message does not decode: ${r2.ok ? '' : r2.detail}`);
  }
  const header = decodeHeader(dg);
  invariant(header !== null, 'decodeHeader refused a well-formed header');
  const inner = decodeInnerPayloads(header, first, plain);
  if (!inner.ok) invariant(!inner.detail.startsWith('decoder error:'), `decodeInnerPayloads: ${inner.detail}`);
}
