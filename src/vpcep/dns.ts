/**
 * The endpoint DNS responder's core: a query datagram in, a decision out (an answer to send, a query
 * to forward upstream, or nothing). No sockets, timers or clocks: src/gateway/dns-server.ts is the
 * UDP shell around it. The wire format is the `dns-packet` codec's; this file only decides.
 *
 * What it answers (the records are the endpoints' DNS names -> their IPv4 addresses):
 *   1. fewer than 12 bytes, or a response (QR = 1)           -> nothing (no id to answer, or a loop)
 *   2. larger than MAX_QUERY_BYTES, undecodable, QDCOUNT != 1 -> FORMERR (RFC 1035 §4.1.1)
 *   3. OPCODE other than QUERY                                -> NOTIMP
 *   4. QNAME equal to a record's name, ASCII case-insensitive (RFC 1035 §2.3.3, RFC 4343):
 *        QTYPE A or ANY -> NOERROR, AA, one A record (TTL RECORD_TTL_SEC)
 *        other QTYPE    -> NOERROR without answers ("NODATA", RFC 2308 §2.2), SOA in authority
 *   5. QNAME an ancestor of a record inside its zone (an "empty non-terminal", e.g. endpoint.internal
 *      for web.endpoint.internal)                             -> NODATA (RFC 8020: it exists)
 *   6. anything else: forwarded when the shell has an upstream; otherwise, inside a zone we serve
 *      (the parent domain of a record's name) -> NXDOMAIN with SOA (RFC 2308 §2.1), outside -> REFUSED
 *      (we are not a recursive resolver). Forwarding names inside our zones too lets the VPC's own DNS
 *      keep names that share the suffix.
 * The question is echoed with the case the client sent (RFC 4343 §4.1: owner names keep their case,
 * which resolvers using "0x20" case randomisation check). A query carrying an EDNS OPT record gets
 * one back (RFC 6891 §7). Every answer fits in 512 bytes, so TC is never set.
 *
 * Work per query is bounded by MAX_QUERY_BYTES (the codec's work is linear in the datagram, and its
 * name compression pointers may only point backwards) and one Map lookup per label of QNAME.
 * decide() never throws.
 */
import dnsPacket from 'dns-packet';
import { VpnError } from '../common/errors.js';

// ---- spec constants (RFC 1035 §4.1.1, RFC 6895 §2.3) ----
export const DNS_HEADER_SIZE = 12;
export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
const QR_FLAG = 0x8000;
const OPCODE_SHIFT = 11;
const OPCODE_MASK = 0xf;
const OPCODE_QUERY = 0;
const FLAG_AA = dnsPacket.AUTHORITATIVE_ANSWER;
const FLAG_RD = dnsPacket.RECURSION_DESIRED;
/** RFC 1035 §2.3.4 */
const MAX_LABEL_BYTES = 63;
const MAX_NAME_BYTES = 253;

// ---- implementation choices ----
/** Endpoint addresses change with the config: short enough that a change is seen quickly. */
export const RECORD_TTL_SEC = 30;
/** A DNS query is a few dozen bytes; a larger datagram is not a query we want to decode. */
export const MAX_QUERY_BYTES = 4096;
/** The EDNS payload size we announce (the DNS flag day 2020 value). */
const EDNS_UDP_PAYLOAD = 1232;
/** The synthetic SOA of our zones: RNAME/MNAME under the zone, negative answers cached for RECORD_TTL_SEC. */
const SOA_SERIAL = 1;

export type DnsDecision =
  /** send `reply` back to the client */
  | { readonly kind: 'answer'; readonly reply: Buffer; readonly rcode: number }
  /** send the query to an upstream server; match its answer with checkUpstreamAnswer */
  | { readonly kind: 'forward'; readonly id: number; readonly name: string; readonly type: string }
  /** send nothing */
  | { readonly kind: 'drop'; readonly reason: 'short' | 'response' };

/** What the shell remembers of a forwarded query, to recognise the upstream's answer. */
export interface ForwardedQuestion {
  /** QNAME as sent, compared case-insensitively */
  readonly name: string;
  /** QTYPE as the dns-packet codec names it ("A", "AAAA", "UNKNOWN_65", ...) */
  readonly type: string;
}

interface Zone {
  /** lower-case, no trailing dot */
  readonly name: string;
}

/** Lower-cases ASCII letters only (RFC 4343 §3: DNS case-insensitivity is ASCII only) and strips one trailing dot. */
export function normalizeDnsName(name: string): string {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return n.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/** A host name we can serve: LDH-ish labels of 1..63 bytes, 253 bytes at most, at least two labels. */
export function isServableName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_BYTES) return false;
  const labels = name.split('.');
  if (labels.length < 2) return false;
  return labels.every((l) => l.length > 0 && l.length <= MAX_LABEL_BYTES && /^[a-z0-9_-]+$/i.test(l));
}

/** Would setRecords take this record? (a servable host name and an IPv4 address) */
export function isValidRecord(name: string, addr: string): boolean {
  return isServableName(normalizeDnsName(name)) && isIpv4(addr);
}

function isIpv4(text: string): boolean {
  const p = text.split('.');
  return p.length === 4 && p.every((x) => /^(0|[1-9][0-9]{0,2})$/.test(x) && Number(x) <= 255);
}

/** A name the codec decoded that it writes back byte for byte: labels of 1..63 ASCII bytes. */
function echoable(name: string): boolean {
  if (name === '.') return true;
  if (name.length > MAX_NAME_BYTES) return false;
  return name.split('.').every((l) => l.length > 0 && l.length <= MAX_LABEL_BYTES && /^[\x21-\x7e]+$/.test(l));
}

export class EndpointDnsResponder {
  /** lower-case name -> IPv4 */
  private records = new Map<string, string>();
  /** lower-case ancestors of record names inside their zone (empty non-terminals), and the zones */
  private nonTerminals = new Set<string>();
  private zones = new Map<string, Zone>();

  /**
   * Replaces every record. Keys are FQDNs (any case, an optional trailing dot), values IPv4 addresses.
   * Throws VpnError ERR_INVALID_ARG for a name or address outside that contract (the config loader
   * has validated both; nothing is changed then).
   */
  setRecords(records: ReadonlyMap<string, string>): void {
    const next = new Map<string, string>();
    const nonTerminals = new Set<string>();
    const zones = new Map<string, Zone>();
    for (const [rawName, addr] of records) {
      const name = normalizeDnsName(rawName);
      if (!isServableName(name)) throw new VpnError('ERR_INVALID_ARG', `DNS record name ${JSON.stringify(rawName)} is not a host name`);
      if (!isIpv4(addr)) throw new VpnError('ERR_INVALID_ARG', `DNS record ${name}: ${JSON.stringify(addr)} is not an IPv4 address`);
      next.set(name, addr);
      const zone = name.slice(name.indexOf('.') + 1);
      zones.set(zone, { name: zone });
    }
    // ancestors between a record and its zone's apex (the apex included) exist, even without records
    for (const name of next.keys()) {
      for (let i = name.indexOf('.'); i >= 0; i = name.indexOf('.', i + 1)) {
        const anc = name.slice(i + 1);
        if (!this.zoneOfIn(anc, zones)) break;
        nonTerminals.add(anc);
      }
    }
    this.records = next;
    this.nonTerminals = nonTerminals;
    this.zones = zones;
  }

  /** Number of records held. */
  get size(): number {
    return this.records.size;
  }

  /** The address of `name` (any case, an optional trailing dot), or undefined. */
  lookup(name: string): string | undefined {
    return this.records.get(normalizeDnsName(name));
  }

  /**
   * One query datagram. `canForward`: the shell has an upstream (and room for one more pending query).
   * Never throws; the reply is a new Buffer the caller owns.
   */
  decide(query: Uint8Array, canForward: boolean): DnsDecision {
    if (query.length < DNS_HEADER_SIZE) return { kind: 'drop', reason: 'short' };
    const buf = Buffer.from(query.buffer, query.byteOffset, query.length);
    const id = buf.readUInt16BE(0);
    const flags = buf.readUInt16BE(2);
    if (flags & QR_FLAG) return { kind: 'drop', reason: 'response' };
    const opcode = (flags >> OPCODE_SHIFT) & OPCODE_MASK;
    const rd = flags & FLAG_RD;
    if (query.length > MAX_QUERY_BYTES) return headerOnly(id, opcode, rd, RCODE_FORMERR);
    if (buf.readUInt16BE(4) !== 1) return headerOnly(id, opcode, rd, opcode === OPCODE_QUERY ? RCODE_FORMERR : RCODE_NOTIMP);
    let packet: dnsPacket.DecodedPacket;
    try {
      packet = dnsPacket.decode(buf);
    } catch {
      return headerOnly(id, opcode, rd, RCODE_FORMERR);
    }
    if (opcode !== OPCODE_QUERY) return headerOnly(id, opcode, rd, RCODE_NOTIMP);
    const q = packet.questions?.[0];
    if (!q || typeof q.name !== 'string') return headerOnly(id, opcode, rd, RCODE_FORMERR);
    const edns = (packet.additionals ?? []).some((a) => a.type === 'OPT');
    const name = normalizeDnsName(q.name);
    const klass = q.class ?? 'IN';
    const inClass = klass === 'IN' || klass === 'ANY';

    const addr = inClass ? this.records.get(name) : undefined;
    if (addr !== undefined) {
      if (q.type === 'A' || (q.type as string) === 'ANY') {
        return reply(id, rd, RCODE_NOERROR, q, edns, [{ type: 'A', name: q.name, class: 'IN', ttl: RECORD_TTL_SEC, data: addr }], []);
      }
      return reply(id, rd, RCODE_NOERROR, q, edns, [], this.soaFor(name));
    }
    if (inClass && this.nonTerminals.has(name)) return reply(id, rd, RCODE_NOERROR, q, edns, [], this.soaFor(name));
    if (canForward) return { kind: 'forward', id, name: q.name, type: q.type };
    if (inClass && this.zoneOf(name)) return reply(id, rd, RCODE_NXDOMAIN, q, edns, [], this.soaFor(name));
    // a class the codec cannot name cannot be echoed: the header alone says no
    if (!inClass && !/^(CS|CH|HS)$/.test(klass)) return headerOnly(id, opcode, rd, RCODE_REFUSED);
    return reply(id, rd, RCODE_REFUSED, q, edns, [], []);
  }

  /**
   * A header-only answer with `rcode` for a query the shell cannot serve (SERVFAIL when the upstream
   * did not answer or the pending table is full). Undefined when the query has no header.
   */
  static failure(query: Uint8Array, rcode: number): Buffer | undefined {
    if (query.length < DNS_HEADER_SIZE) return undefined;
    const buf = Buffer.from(query.buffer, query.byteOffset, query.length);
    const flags = buf.readUInt16BE(2);
    const r = headerOnly(buf.readUInt16BE(0), (flags >> OPCODE_SHIFT) & OPCODE_MASK, flags & FLAG_RD, rcode);
    return r.kind === 'answer' ? r.reply : undefined;
  }

  private zoneOf(name: string): Zone | undefined {
    return this.zoneOfIn(name, this.zones);
  }

  /** The longest zone that is `name` or one of its ancestors. */
  private zoneOfIn(name: string, zones: ReadonlyMap<string, Zone>): Zone | undefined {
    for (let n = name, i = 0; i <= MAX_NAME_BYTES; i++) {
      const z = zones.get(n);
      if (z) return z;
      const dot = n.indexOf('.');
      if (dot < 0) return undefined;
      n = n.slice(dot + 1);
    }
    return undefined;
  }

  private soaFor(name: string): dnsPacket.Answer[] {
    const zone = this.zoneOf(name);
    if (!zone) return [];
    return [
      {
        type: 'SOA',
        name: zone.name,
        class: 'IN',
        ttl: RECORD_TTL_SEC,
        data: {
          mname: `ns.${zone.name}`,
          rname: `hostmaster.${zone.name}`,
          serial: SOA_SERIAL,
          refresh: 3600,
          retry: 600,
          expire: 86400,
          minimum: RECORD_TTL_SEC,
        },
      },
    ];
  }
}

/**
 * Does `answer` (from an upstream) answer the forwarded question? A response, one question, the same
 * QNAME (case-insensitively) and QTYPE. Returns a copy with the client's id put back, or undefined
 * (the shell drops it: a stray or spoofed datagram). Never throws.
 */
export function checkUpstreamAnswer(answer: Uint8Array, expect: ForwardedQuestion, clientId: number): Buffer | undefined {
  if (answer.length < DNS_HEADER_SIZE || answer.length > 65_535) return undefined;
  const buf = Buffer.from(answer.buffer, answer.byteOffset, answer.length);
  if (!(buf.readUInt16BE(2) & QR_FLAG) || buf.readUInt16BE(4) !== 1) return undefined;
  let q: dnsPacket.Question | undefined;
  try {
    // the question section follows the header directly; the answers are relayed undecoded
    q = dnsPacket.decode(headerAndQuestionOnly(buf)).questions?.[0];
  } catch {
    return undefined;
  }
  if (!q || normalizeDnsName(q.name) !== normalizeDnsName(expect.name) || q.type !== expect.type) return undefined;
  const out = Buffer.from(buf);
  out.writeUInt16BE(clientId, 0);
  return out;
}

/** The datagram with ANCOUNT/NSCOUNT/ARCOUNT zeroed, so decoding reads only the question. */
function headerAndQuestionOnly(buf: Buffer): Buffer {
  const copy = Buffer.from(buf);
  copy.writeUInt16BE(0, 6);
  copy.writeUInt16BE(0, 8);
  copy.writeUInt16BE(0, 10);
  return copy;
}

function headerOnly(id: number, opcode: number, rd: number, rcode: number): DnsDecision {
  const out = Buffer.alloc(DNS_HEADER_SIZE);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(QR_FLAG | (opcode << OPCODE_SHIFT) | rd | rcode, 2);
  return { kind: 'answer', reply: out, rcode };
}

function reply(
  id: number,
  rd: number,
  rcode: number,
  q: dnsPacket.Question,
  edns: boolean,
  answers: dnsPacket.Answer[],
  authorities: dnsPacket.Answer[],
): DnsDecision {
  if (!echoable(q.name)) return headerOnly(id, OPCODE_QUERY, rd, rcode);
  // AA only for what we are authoritative for (our records, our zones); REFUSED carries no AA
  const aa = rcode === RCODE_REFUSED ? 0 : FLAG_AA;
  const additionals: dnsPacket.Answer[] = edns
    ? [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_PAYLOAD, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }]
    : [];
  try {
    const out = dnsPacket.encode({
      type: 'response',
      id,
      flags: aa | rd | rcode,
      questions: [{ type: q.type, name: q.name, class: q.class ?? 'IN' }],
      answers,
      authorities,
      additionals,
    });
    return { kind: 'answer', reply: out, rcode };
  } catch {
    // a QNAME the codec cannot write back (labels it decoded as text that do not re-encode)
    return headerOnly(id, OPCODE_QUERY, rd, rcode === RCODE_NOERROR ? RCODE_SERVFAIL : rcode);
  }
}
