// The endpoint DNS responder's core: answers for endpoint names (RFC 1035, RFC 2308 negative answers,
// RFC 4343 case), forward/REFUSED for the rest, FORMERR/NOTIMP for what it cannot take, and no throw
// on any input (fast-check and byte flips of a real query).
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkUpstreamAnswer,
  EndpointDnsResponder,
  MAX_QUERY_BYTES,
  RCODE_FORMERR,
  RCODE_NOTIMP,
  RCODE_SERVFAIL,
  RECORD_TTL_SEC,
} from '../../../src/vpcep/dns.js';

function responder(): EndpointDnsResponder {
  const r = new EndpointDnsResponder();
  r.setRecords(new Map([
    ['web.endpoint.internal', '10.2.100.10'],
    ['DB.Svc.Endpoint.Internal.', '10.2.100.11'],
  ]));
  return r;
}

function query(name: string, type: string = 'A', o: { id?: number; edns?: boolean; flags?: number } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: o.id ?? 0x1234,
    flags: o.flags ?? dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as 'A', name, class: 'IN' }],
    additionals: o.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  });
}

function answer(r: EndpointDnsResponder, q: Uint8Array, canForward = false): dnsPacket.DecodedPacket & { rcode?: string } {
  const d = r.decide(q, canForward);
  if (d.kind !== 'answer') throw new Error(`expected an answer, got ${d.kind}`);
  return dnsPacket.decode(d.reply) as dnsPacket.DecodedPacket & { rcode?: string };
}

describe('EndpointDnsResponder: records', () => {
  it('answers A for an endpoint name, case-insensitively, echoing the question as sent (RFC 4343)', () => {
    const r = responder();
    const a = answer(r, query('WeB.EndPoint.Internal', 'A', { id: 777 }));
    expect(a.id).toBe(777);
    expect(a.type).toBe('response');
    expect(a.rcode).toBe('NOERROR');
    expect(a.flag_aa).toBe(true);
    expect(a.flag_rd).toBe(true);
    expect(a.questions).toEqual([{ name: 'WeB.EndPoint.Internal', type: 'A', class: 'IN' }]);
    expect(a.answers).toHaveLength(1);
    expect(a.answers![0]).toMatchObject({ name: 'WeB.EndPoint.Internal', type: 'A', ttl: RECORD_TTL_SEC, data: '10.2.100.10' });
    // a record given in upper case with a trailing dot
    expect(answer(r, query('db.svc.endpoint.internal')).answers![0]).toMatchObject({ data: '10.2.100.11' });
    expect(r.lookup('DB.svc.endpoint.internal.')).toBe('10.2.100.11');
    expect(r.size).toBe(2);
  });

  it('ANY for an endpoint name gets its A record', () => {
    const a = answer(responder(), query('web.endpoint.internal', 'ANY'));
    expect(a.answers).toHaveLength(1);
    expect(a.answers![0]).toMatchObject({ type: 'A', data: '10.2.100.10' });
  });

  it('AAAA, MX or HTTPS for an endpoint name: NOERROR without answers, SOA for negative caching (RFC 2308 §2.2)', () => {
    const r = responder();
    for (const type of ['AAAA', 'MX', 'UNKNOWN_65']) {
      const a = answer(r, query('web.endpoint.internal', type));
      expect(a.rcode).toBe('NOERROR');
      expect(a.answers).toEqual([]);
      expect(a.questions![0]!.type).toBe(type);
      expect(a.authorities).toHaveLength(1);
      expect(a.authorities![0]).toMatchObject({ type: 'SOA', name: 'endpoint.internal' });
      expect((a.authorities![0] as dnsPacket.SoaAnswer).data.minimum).toBe(RECORD_TTL_SEC);
    }
  });

  it('an ancestor of a record inside its zone exists (RFC 8020): NODATA, not NXDOMAIN, even when it could forward', () => {
    const r = responder();
    for (const name of ['endpoint.internal', 'svc.endpoint.internal']) {
      const a = answer(r, query(name), true);
      expect(a.rcode).toBe('NOERROR');
      expect(a.answers).toEqual([]);
    }
  });

  it('an unknown name in a zone it serves: NXDOMAIN with the SOA without upstream, forwarded with one', () => {
    const r = responder();
    const a = answer(r, query('nope.endpoint.internal'));
    expect(a.rcode).toBe('NXDOMAIN');
    expect(a.flag_aa).toBe(true);
    expect(a.authorities![0]).toMatchObject({ type: 'SOA', name: 'endpoint.internal' });
    expect(r.decide(query('nope.endpoint.internal', 'A', { id: 9 }), true)).toEqual({ kind: 'forward', id: 9, name: 'nope.endpoint.internal', type: 'A' });
  });

  it('a name outside its zones: REFUSED (not AA) without upstream, forwarded with one', () => {
    const r = responder();
    const a = answer(r, query('example.com', 'AAAA'));
    expect(a.rcode).toBe('REFUSED');
    expect(a.flag_aa).toBe(false);
    expect(a.questions![0]).toMatchObject({ name: 'example.com', type: 'AAAA' });
    expect(r.decide(query('Example.COM', 'AAAA', { id: 5 }), true)).toEqual({ kind: 'forward', id: 5, name: 'Example.COM', type: 'AAAA' });
    // with no records at all, everything is refused or forwarded
    const empty = new EndpointDnsResponder();
    expect(answer(empty, query('web.endpoint.internal')).rcode).toBe('REFUSED');
  });

  it('a query with EDNS gets an OPT record back (RFC 6891 §7)', () => {
    const a = answer(responder(), query('web.endpoint.internal', 'A', { edns: true }));
    expect(a.additionals).toHaveLength(1);
    expect(a.additionals![0]).toMatchObject({ type: 'OPT', udpPayloadSize: 1232 });
    expect(answer(responder(), query('web.endpoint.internal')).additionals).toEqual([]);
  });

  it('setRecords replaces everything, and refuses a bad name or address without changing anything', () => {
    const r = responder();
    r.setRecords(new Map([['api.endpoint.internal', '10.2.100.20']]));
    expect(answer(r, query('web.endpoint.internal')).rcode).toBe('NXDOMAIN');
    expect(answer(r, query('api.endpoint.internal')).answers![0]).toMatchObject({ data: '10.2.100.20' });
    for (const bad of [new Map([['api.endpoint.internal', '10.2.100.256']]), new Map([['api.endpoint.internal', 'fe80::1']]), new Map([['bad name.x', '10.0.0.1']]), new Map([['single', '10.0.0.1']])]) {
      expect(() => r.setRecords(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    }
    expect(r.lookup('api.endpoint.internal')).toBe('10.2.100.20');
  });
});

describe('EndpointDnsResponder: what it cannot take', () => {
  it('drops datagrams shorter than a header, and responses (no loops)', () => {
    const r = responder();
    expect(r.decide(Buffer.alloc(11), false)).toEqual({ kind: 'drop', reason: 'short' });
    const resp = Buffer.from(query('web.endpoint.internal'));
    resp[2]! |= 0x80;
    expect(r.decide(resp, true)).toEqual({ kind: 'drop', reason: 'response' });
  });

  it('FORMERR with the id for garbage after a header, for QDCOUNT != 1, and for a datagram over the size bound', () => {
    const r = responder();
    const garbage = Buffer.from('abcd0000000100000000000000ffff3f', 'hex');
    const d = r.decide(garbage, true);
    expect(d.kind).toBe('answer');
    if (d.kind !== 'answer') return;
    expect(d.rcode).toBe(RCODE_FORMERR);
    expect(d.reply.readUInt16BE(0)).toBe(0xabcd);
    expect(d.reply.readUInt16BE(2) & 0x800f).toBe(0x8000 | RCODE_FORMERR);
    const two = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.b' }, { type: 'A', name: 'c.d' }] });
    expect((r.decide(two, true) as { rcode: number }).rcode).toBe(RCODE_FORMERR);
    const none = dnsPacket.encode({ type: 'query', id: 1, questions: [] });
    expect((r.decide(none, true) as { rcode: number }).rcode).toBe(RCODE_FORMERR);
    const big = Buffer.concat([query('web.endpoint.internal'), Buffer.alloc(MAX_QUERY_BYTES)]);
    expect((r.decide(big, true) as { rcode: number }).rcode).toBe(RCODE_FORMERR);
  });

  it('NOTIMP for an opcode other than QUERY', () => {
    const q = query('web.endpoint.internal');
    q.writeUInt16BE(q.readUInt16BE(2) | (2 << 11), 2); // STATUS
    const d = responder().decide(q, true);
    expect(d.kind === 'answer' && d.rcode).toBe(RCODE_NOTIMP);
    expect(d.kind === 'answer' && (d.reply.readUInt16BE(2) >> 11) & 0xf).toBe(2);
  });

  it('failure() builds a header-only SERVFAIL for the shell', () => {
    const f = EndpointDnsResponder.failure(query('example.com', 'A', { id: 42 }), RCODE_SERVFAIL)!;
    const a = dnsPacket.decode(f) as dnsPacket.DecodedPacket & { rcode: string };
    expect(a.id).toBe(42);
    expect(a.rcode).toBe('SERVFAIL');
    expect(EndpointDnsResponder.failure(Buffer.alloc(3), RCODE_SERVFAIL)).toBeUndefined();
  });

  it('never throws on random bytes (fast-check)', () => {
    const r = responder();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.boolean(), (bytes, fwd) => {
        const d = r.decide(bytes, fwd);
        expect(['answer', 'forward', 'drop']).toContain(d.kind);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws on every single-byte change of a real query (and of one with EDNS)', () => {
    const r = responder();
    for (const base of [query('web.endpoint.internal'), query('x.example.com', 'AAAA', { edns: true })]) {
      for (let i = 0; i < base.length; i++) {
        for (const v of [0x00, 0x3f, 0x40, 0xc0, 0xff, base[i]! ^ 0x20]) {
          const b = Buffer.from(base);
          b[i] = v;
          expect(() => r.decide(b, i % 2 === 0)).not.toThrow();
        }
      }
      for (let n = 0; n <= base.length; n++) expect(() => r.decide(base.subarray(0, n), true)).not.toThrow();
    }
  });

  it('a compression-pointer loop in QNAME is FORMERR, not a hang', () => {
    const q = Buffer.from('00010100000100000000000003616263c00c00010001', 'hex');
    q.writeUInt16BE(0xc00c, 16); // points at itself
    const d = responder().decide(q, true);
    expect(d.kind === 'answer' && d.rcode).toBe(RCODE_FORMERR);
  });
});

describe('checkUpstreamAnswer', () => {
  const upstream = (name: string, type: string, id: number, o: { qr?: boolean } = {}): Buffer =>
    dnsPacket.encode({
      type: o.qr === false ? 'query' : 'response',
      id,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: [{ type: type as 'A', name }],
      answers: type === 'A' ? [{ type: 'A', name, ttl: 60, data: '93.184.216.34' }] : [],
    });

  it('accepts the answer to the question asked (case-insensitive) and puts the client id back', () => {
    const out = checkUpstreamAnswer(upstream('EXAMPLE.com', 'A', 999), { name: 'example.COM', type: 'A' }, 7)!;
    const a = dnsPacket.decode(out);
    expect(a.id).toBe(7);
    expect(a.answers![0]).toMatchObject({ data: '93.184.216.34' });
  });

  it('rejects another name, another type, a query, garbage', () => {
    const ex = { name: 'example.com', type: 'A' };
    expect(checkUpstreamAnswer(upstream('evil.com', 'A', 1), ex, 1)).toBeUndefined();
    expect(checkUpstreamAnswer(upstream('example.com', 'AAAA', 1), ex, 1)).toBeUndefined();
    expect(checkUpstreamAnswer(upstream('example.com', 'A', 1, { qr: false }), ex, 1)).toBeUndefined();
    expect(checkUpstreamAnswer(Buffer.from('ffff8000000100000000000001', 'hex'), ex, 1)).toBeUndefined();
    expect(checkUpstreamAnswer(Buffer.alloc(4), ex, 1)).toBeUndefined();
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      checkUpstreamAnswer(b, ex, 1);
    }), { numRuns: 1000 });
  });
});
