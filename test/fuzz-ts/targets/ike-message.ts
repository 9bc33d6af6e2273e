// Fuzz target: a whole IKEv2 datagram as it arrives on UDP 500/4500 (after the non-ESP marker),
// through decodeMessage (src/ike/wire/message.ts) without SK keys, as the responder sees an
// IKE_SA_INIT. decodeMessage reports failures as a result; one that came from anything but a
// ParseError (its detail then starts with "decoder error:") is a finding. A message that decodes
// must encode again (encodeMessage) and decode to the same payload types.
import { decodeMessage, encodeMessage } from '../../../src/ike/wire/message.js';
import { invariant } from './check.js';

export const maxLen = 4096;
export const dictionary = [
  Buffer.from('2120', 'hex'), // SA-next, version 2.0
  Buffer.from('22', 'hex'),
  Buffer.from('2e', 'hex'),
  Buffer.from('21202208', 'hex'), // IKE_SA_INIT request
  Buffer.from('00004004', 'hex'), // N(NAT_DETECTION_SOURCE_IP)
  Buffer.from('0000402f', 'hex'), // N(SIGNATURE_HASH_ALGORITHMS)
  Buffer.from('80', 'hex'),
];

export function fuzz(data: Buffer): void {
  const r = decodeMessage(data, null);
  if (!r.ok) {
    invariant(!r.detail.startsWith('decoder error:'), `decodeMessage: ${r.detail}`);
    return;
  }
  const m = r.msg;
  const again = encodeMessage(m.header, [...m.payloads, ...m.skipped], null);
  const r2 = decodeMessage(again, null);
  invariant(r2.ok, `re-encoded message does not decode: ${r2.ok ? '' : r2.detail}`);
  const types = (x: typeof m) => [...x.payloads.map((p) => p.type), ...x.skipped.map((p) => p.type)].join(',');
  invariant(r2.ok && types(r2.msg) === types(m), 'payload types changed in a decode/encode/decode round trip');
}
