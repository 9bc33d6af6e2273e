// Fuzz target: the endpoint DNS responder core (src/vpcep/dns.ts, over the dns-packet codec) on
// hostile query datagrams, with and without an upstream to forward to. Invariants: decide() never
// throws; a reply carries the query's id, is marked a response and decodes again; a forward only
// happens when the shell can forward.
import dnsPacket from 'dns-packet';
import { EndpointDnsResponder } from '../../../src/vpcep/dns.js';
import { invariant } from './check.js';

export const maxLen = 4200;

const responder = new EndpointDnsResponder();
responder.setRecords(new Map([['web.endpoint.internal', '10.2.100.10'], ['db.svc.example.org', '10.2.100.11']]));

export function fuzz(data: Buffer): void {
  for (const canForward of [false, true]) {
    const d = responder.decide(data, canForward);
    if (d.kind === 'forward') invariant(canForward, 'forwarded without an upstream');
    if (d.kind !== 'answer') continue;
    invariant(d.reply.length >= 12 && d.reply.readUInt16BE(0) === data.readUInt16BE(0), 'the reply does not carry the query id');
    invariant((d.reply[2]! & 0x80) !== 0, 'the reply is not marked a response');
    try {
      dnsPacket.decode(d.reply);
    } catch (e) {
      throw new Error(`a reply the codec cannot decode: ${(e as Error).message}`);
    }
  }
}
