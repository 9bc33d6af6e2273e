// RFC 7296 §3: whole IKEv2 messages = IKE header (§3.1) + a chain of payloads, each with the
// generic payload header (§3.2):
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Decoding (work and memory linear in the bytes received, whatever the length fields claim):
// 1. header: length, version (major 2 only: RFC 7296 §2.5);
// 2. scan the outer chain's generic headers only (no body is decoded yet); an unknown payload
//    type with C=1 rejects the message (§2.5: UNSUPPORTED_CRITICAL_PAYLOAD);
// 3. only IKE_SA_INIT travels in the clear; every later exchange is one SK payload, last in the
//    chain (§1.2, §3.14); with keys it is verified (ICV/AEAD tag) before anything inside is
//    parsed, then the inner chain's headers are scanned like the outer one;
// 4. the payload types are checked against the exchange's table (rules.ts, as strongSwan's
//    message.c does) before any body is decoded: a type the exchange cannot carry, or more of one
//    than it allows, drops the message unread;
// 5. the bodies are decoded; unknown payloads with C=0 (and EAP, not implemented) are kept as
//    opaque views without decoding;
// 6. all-or-nothing: any structural error gives { ok:false, reason:'malformed' } (drop).
// decodeMessage never throws and never modifies its input (decryption works on a copy).
import { IKE_HEADER_SIZE, ExchangeType, HeaderFlag, NotifyType, PayloadType } from './constants.js';
import type { IkeHeader, IkeMessage, Payload, UnknownPayload } from './types.js';
import type { EncTransform } from '../../crypto/aead.js';
import { ParseError } from '../../common/errors.js';
import { decodeHeader, encodeHeader } from './header.js';
import { checkPayloadTypes, rulesFor } from './rules.js';
import * as sa from './payloads/sa.js';
import * as ke from './payloads/ke.js';
import * as nonce from './payloads/nonce.js';
import * as id from './payloads/id.js';
import * as auth from './payloads/auth.js';
import * as cert from './payloads/cert.js';
import * as certreq from './payloads/certreq.js';
import * as notify from './payloads/notify.js';
import * as del from './payloads/delete.js';
import * as vendor from './payloads/vendor.js';
import * as ts from './payloads/ts.js';
import * as cp from './payloads/cp.js';
import * as skp from './payloads/sk.js';

export { decodeHeader } from './header.js';

export interface SkCrypto {
  /** outbound: our SK_e/SK_a (SK_ei/SK_ai when we are the IKE SA's original initiator) */
  enc: EncTransform;
  /** inbound: the peer's SK_e/SK_a */
  dec: EncTransform;
}

export type DecodeResult =
  | { ok: true; msg: IkeMessage }
  | {
      ok: false;
      reason: 'malformed' | 'integrity' | 'unsupported-critical' | 'version';
      detail: string;
      criticalType?: number;
      header?: IkeHeader;
    };

export const GENERIC_HEADER_SIZE = 4;
const CRITICAL = 0x80;
const MAJOR_VERSION = 2;

class CriticalPayload extends Error {
  constructor(readonly payloadType: number) {
    super(`unsupported critical payload type ${payloadType}`);
  }
}

/** Decodes one payload body (without its generic header). `at` = offset of the body, for errors. */
export function decodePayload(type: number, critical: boolean, body: Buffer, at: number): Payload | UnknownPayload {
  switch (type) {
    case PayloadType.SA:
      return sa.decode(body, at);
    case PayloadType.KE:
      return ke.decode(body, at);
    case PayloadType.IDi:
    case PayloadType.IDr:
      return id.decode(body, at, type);
    case PayloadType.CERT:
      return cert.decode(body, at);
    case PayloadType.CERTREQ:
      return certreq.decode(body, at);
    case PayloadType.AUTH:
      return auth.decode(body, at);
    case PayloadType.NONCE:
      return nonce.decode(body, at);
    case PayloadType.N:
      return notify.decode(body, at);
    case PayloadType.D:
      return del.decode(body, at);
    case PayloadType.V:
      return vendor.decode(body, at);
    case PayloadType.TSi:
    case PayloadType.TSr:
      return ts.decode(body, at, type);
    case PayloadType.CP:
      return cp.decode(body, at);
    case PayloadType.EAP:
      // defined by RFC 7296 (so the C bit is meaningless) but not implemented: keep as skipped
      return { type, critical: false, data: body };
    default:
      if (critical) throw new CriticalPayload(type);
      return { type, critical, data: body };
  }
}

function isUnknown(p: Payload | UnknownPayload): p is UnknownPayload {
  return 'critical' in p;
}

/** Body length of a payload (without generic header). */
export function payloadBodyLength(p: Payload | UnknownPayload): number {
  if (isUnknown(p)) return p.data.length;
  switch (p.type) {
    case PayloadType.SA:
      return sa.encodedLength(p);
    case PayloadType.KE:
      return ke.encodedLength(p);
    case PayloadType.IDi:
    case PayloadType.IDr:
      return id.encodedLength(p);
    case PayloadType.CERT:
      return cert.encodedLength(p);
    case PayloadType.CERTREQ:
      return certreq.encodedLength(p);
    case PayloadType.AUTH:
      return auth.encodedLength(p);
    case PayloadType.NONCE:
      return nonce.encodedLength(p);
    case PayloadType.N:
      return notify.encodedLength(p);
    case PayloadType.D:
      return del.encodedLength(p);
    case PayloadType.V:
      return vendor.encodedLength(p);
    case PayloadType.TSi:
    case PayloadType.TSr:
      return ts.encodedLength(p);
    case PayloadType.CP:
      return cp.encodedLength(p);
  }
}

function encodeBody(p: Payload | UnknownPayload, buf: Buffer, off: number): number {
  if (isUnknown(p)) {
    p.data.copy(buf, off);
    return off + p.data.length;
  }
  switch (p.type) {
    case PayloadType.SA:
      return sa.encode(p, buf, off);
    case PayloadType.KE:
      return ke.encode(p, buf, off);
    case PayloadType.IDi:
    case PayloadType.IDr:
      return id.encode(p, buf, off);
    case PayloadType.CERT:
      return cert.encode(p, buf, off);
    case PayloadType.CERTREQ:
      return certreq.encode(p, buf, off);
    case PayloadType.AUTH:
      return auth.encode(p, buf, off);
    case PayloadType.NONCE:
      return nonce.encode(p, buf, off);
    case PayloadType.N:
      return notify.encode(p, buf, off);
    case PayloadType.D:
      return del.encode(p, buf, off);
    case PayloadType.V:
      return vendor.encode(p, buf, off);
    case PayloadType.TSi:
    case PayloadType.TSr:
      return ts.encode(p, buf, off);
    case PayloadType.CP:
      return cp.encode(p, buf, off);
  }
}

/** Total bytes of a payload chain, generic headers included. */
export function chainLength(payloads: ReadonlyArray<Payload | UnknownPayload>): number {
  let n = 0;
  for (const p of payloads) n += GENERIC_HEADER_SIZE + payloadBodyLength(p);
  return n;
}

/** Writes a payload chain (generic headers + bodies); the last Next Payload is 0. */
export function encodeChain(payloads: ReadonlyArray<Payload | UnknownPayload>, buf: Buffer, off: number): number {
  let o = off;
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i]!;
    const next = i + 1 < payloads.length ? payloads[i + 1]!.type : PayloadType.NONE;
    const start = o;
    buf[o] = next;
    buf[o + 1] = isUnknown(p) && p.critical ? CRITICAL : 0;
    o = encodeBody(p, buf, o + GENERIC_HEADER_SIZE);
    const len = o - start;
    if (len > 0xffff) throw new RangeError(`payload type ${p.type} of ${len} bytes exceeds 65535`);
    buf.writeUInt16BE(len, start + 2);
  }
  return o;
}

/** One payload of a chain as its generic header describes it (the body is not decoded yet). */
interface ChainEntry {
  type: number;
  critical: boolean;
  /** offset of the generic header */
  off: number;
  /** payload length, generic header included */
  len: number;
}

interface ScannedChain {
  entries: ChainEntry[];
  /** offset of the SK payload's generic header, or -1 */
  skOff: number;
  /** the SK payload's Next Payload (type of the first inner payload) */
  skNext: number;
}

/** Types the codecs in ./payloads decode (and the rules tables count). */
function isDecodedType(type: number): boolean {
  switch (type) {
    case PayloadType.SA:
    case PayloadType.KE:
    case PayloadType.IDi:
    case PayloadType.IDr:
    case PayloadType.CERT:
    case PayloadType.CERTREQ:
    case PayloadType.AUTH:
    case PayloadType.NONCE:
    case PayloadType.N:
    case PayloadType.D:
    case PayloadType.V:
    case PayloadType.TSi:
    case PayloadType.TSr:
    case PayloadType.CP:
      return true;
    default:
      return false;
  }
}

/**
 * Scans the generic headers of a payload chain in `buf[off, end)` starting with type `first`,
 * without decoding any body. Stops at an SK payload (which must be last). Throws ParseError.
 */
function scanChain(buf: Buffer, off: number, end: number, first: number, allowSk: boolean): ScannedChain {
  const entries: ChainEntry[] = [];
  let type = first;
  let o = off;
  while (type !== PayloadType.NONE) {
    if (o + GENERIC_HEADER_SIZE > end) throw new ParseError('payload', o, `truncated generic header of type ${type}`);
    const next = buf[o]!;
    const critical = (buf[o + 1]! & CRITICAL) !== 0;
    const len = buf.readUInt16BE(o + 2);
    if (len < GENERIC_HEADER_SIZE) throw new ParseError('payload', o + 2, `payload length ${len}`);
    if (o + len > end) throw new ParseError('payload', o + 2, `payload type ${type} length ${len} exceeds message`);
    if (type === PayloadType.SK) {
      if (!allowSk) throw new ParseError('SK', o, 'SK payload inside SK');
      if (o + len !== end) throw new ParseError('SK', o, 'SK payload is not the last payload');
      return { entries, skOff: o, skNext: next };
    }
    if (type === PayloadType.SKF) throw new ParseError('SKF', o, 'encrypted fragment: use decodeFragment');
    entries.push({ type, critical, off: o, len });
    o += len;
    type = next;
  }
  if (o !== end) throw new ParseError('payload', o, `${end - o} bytes after the last payload`);
  return { entries, skOff: -1, skNext: 0 };
}

/** RFC 7296 §2.5: an unknown payload type with the critical bit set rejects the whole message. */
function checkCritical(entries: readonly ChainEntry[]): void {
  for (const e of entries) {
    if (e.critical && !isDecodedType(e.type) && e.type !== PayloadType.EAP) throw new CriticalPayload(e.type);
  }
}

/**
 * The exchange's table (rules.ts) applied to the scanned types, before any body is decoded.
 * Exchanges without a table (not implemented here) are decoded as they are; the IKE SA answers them.
 */
function checkChainRules(h: IkeHeader, entries: readonly ChainEntry[]): string | null {
  const rules = rulesFor(h.exchangeType, (h.flags & HeaderFlag.R) !== 0);
  if (!rules) return null;
  const types: number[] = [];
  for (const e of entries) if (isDecodedType(e.type)) types.push(e.type);
  return checkPayloadTypes(rules, types);
}

/** Decodes the bodies of scanned payloads: known ones into `payloads`, the rest (views) into `skipped`. */
function decodeChain(buf: Buffer, entries: readonly ChainEntry[], payloads: Payload[], skipped: UnknownPayload[]): void {
  for (const e of entries) {
    const at = e.off + GENERIC_HEADER_SIZE;
    const p = decodePayload(e.type, e.critical, buf.subarray(at, e.off + e.len), at);
    if (isUnknown(p)) skipped.push(p);
    else payloads.push(p);
  }
}

/**
 * Decodes (and with `sk`, verifies and decrypts) one IKE message. Never throws.
 * IKE_SA_INIT must be plaintext, every other exchange must be one SK payload: plain payloads
 * next to SK, or a non-INIT message without SK, are refused (strongSwan does the same).
 * SKF (RFC 7383) datagrams are refused here: route header.nextPayload === SKF to decodeFragment.
 * An SK payload without `sk` is reported as malformed. Payload buffers are views into a private
 * copy of the datagram (decrypted for SK), so they stay valid after the caller reuses `datagram`.
 */
export function decodeMessage(datagram: Buffer, sk: SkCrypto | null): DecodeResult {
  let header: IkeHeader | undefined;
  try {
    // One private copy per message (control plane, cheap): the result never aliases the caller's
    // buffer, which may be a reused batch slot, and decryption in place leaves the input intact.
    const buf = Buffer.from(datagram);
    const h = decodeHeader(buf);
    if (!h) return { ok: false, reason: 'malformed', detail: `bad IKE header (${buf.length} bytes)` };
    header = h;
    if (h.version >> 4 !== MAJOR_VERSION) {
      return { ok: false, reason: 'version', detail: `IKE major version ${h.version >> 4}`, header };
    }
    if (h.length !== buf.length) {
      return { ok: false, reason: 'malformed', detail: `header length ${h.length} != datagram ${buf.length}`, header };
    }
    const outer = scanChain(buf, IKE_HEADER_SIZE, buf.length, h.nextPayload, true);
    checkCritical(outer.entries);
    // RFC 7296 §1.2/§3.14: only IKE_SA_INIT travels in the clear, and every later exchange is
    // entirely inside SK. Enforcing it here also stops a flipped Next Payload in the header from
    // turning an encrypted message into an "unencrypted" one that parses.
    const isInit = h.exchangeType === ExchangeType.IKE_SA_INIT;
    if (outer.skOff < 0) {
      if (!isInit) return { ok: false, reason: 'malformed', detail: `${exchangeName(h.exchangeType)} is not encrypted`, header };
      const bad = checkChainRules(h, outer.entries);
      if (bad) return { ok: false, reason: 'malformed', detail: `${exchangeName(h.exchangeType)}: ${bad}`, header };
      const payloads: Payload[] = [];
      const skipped: UnknownPayload[] = [];
      decodeChain(buf, outer.entries, payloads, skipped);
      return { ok: true, msg: { header: h, payloads, encrypted: false, skipped } };
    }
    if (isInit) return { ok: false, reason: 'malformed', detail: 'IKE_SA_INIT must not carry SK', header };
    if (outer.entries.length > 0) {
      const t = outer.entries.find((e) => isDecodedType(e.type))?.type ?? outer.entries[0]!.type;
      return { ok: false, reason: 'malformed', detail: `payload type ${t} was not encrypted`, header };
    }
    if (!sk) return { ok: false, reason: 'malformed', detail: 'encrypted message but no SK keys', header };
    const copy = buf;
    const r = skp.open(sk.dec, copy, 0, outer.skOff + GENERIC_HEADER_SIZE, copy.length);
    if (!r.ok) return { ok: false, reason: r.reason, detail: r.detail, header };
    const inner = scanChain(copy, r.innerOff, r.innerOff + r.inner.length, outer.skNext, false);
    checkCritical(inner.entries);
    const bad = checkChainRules(h, inner.entries);
    if (bad) return { ok: false, reason: 'malformed', detail: `${exchangeName(h.exchangeType)}: ${bad}`, header };
    const payloads: Payload[] = [];
    const skipped: UnknownPayload[] = [];
    decodeChain(copy, inner.entries, payloads, skipped);
    return { ok: true, msg: { header: h, payloads, encrypted: true, skipped } };
  } catch (e) {
    if (e instanceof CriticalPayload) {
      return { ok: false, reason: 'unsupported-critical', detail: e.message, criticalType: e.payloadType, ...(header ? { header } : {}) };
    }
    const detail = e instanceof ParseError ? e.message : `decoder error: ${String(e)}`;
    return { ok: false, reason: 'malformed', detail, ...(header ? { header } : {}) };
  }
}

/**
 * Parses a decrypted inner payload chain (for SKF reassembly: the concatenated fragment
 * plaintexts, starting with the first fragment's Next Payload type). Never throws.
 */
export function decodeInnerPayloads(header: IkeHeader, first: number, plaintext: Buffer): DecodeResult {
  try {
    const chain = scanChain(plaintext, 0, plaintext.length, first, false);
    checkCritical(chain.entries);
    const bad = checkChainRules(header, chain.entries);
    if (bad) return { ok: false, reason: 'malformed', detail: `${exchangeName(header.exchangeType)}: ${bad}`, header };
    const payloads: Payload[] = [];
    const skipped: UnknownPayload[] = [];
    decodeChain(plaintext, chain.entries, payloads, skipped);
    return { ok: true, msg: { header, payloads, encrypted: true, skipped } };
  } catch (e) {
    if (e instanceof CriticalPayload) {
      return { ok: false, reason: 'unsupported-critical', detail: e.message, criticalType: e.payloadType, header };
    }
    const detail = e instanceof ParseError ? e.message : `decoder error: ${String(e)}`;
    return { ok: false, reason: 'malformed', detail, header };
  }
}

/**
 * Encodes one message. With `sk`, the payloads go inside an SK payload protected with sk.enc
 * (fresh random IV); without, they are sent in plaintext (IKE_SA_INIT and its error replies).
 * The header's version is always 2.0. Throws RangeError for values that cannot be encoded.
 */
export function encodeMessage(
  header: { spiI: Buffer; spiR: Buffer; exchangeType: number; flags: number; messageId: number },
  payloads: ReadonlyArray<Payload | UnknownPayload>,
  sk: SkCrypto | null,
): Buffer {
  const innerLen = chainLength(payloads);
  const first = payloads.length > 0 ? payloads[0]!.type : PayloadType.NONE;
  if (!sk) {
    const buf = Buffer.alloc(IKE_HEADER_SIZE + innerLen);
    encodeHeader(header, first, buf.length, buf, 0);
    encodeChain(payloads, buf, IKE_HEADER_SIZE);
    return buf;
  }
  const skLen = GENERIC_HEADER_SIZE + skp.bodyLength(sk.enc, innerLen);
  if (skLen > 0xffff) throw new RangeError(`SK payload of ${skLen} bytes exceeds 65535 (fragment it)`);
  const buf = Buffer.alloc(IKE_HEADER_SIZE + skLen);
  encodeHeader(header, PayloadType.SK, buf.length, buf, 0);
  const skOff = IKE_HEADER_SIZE;
  buf[skOff] = first;
  buf[skOff + 1] = 0;
  buf.writeUInt16BE(skLen, skOff + 2);
  const ivOff = skOff + GENERIC_HEADER_SIZE;
  encodeChain(payloads, buf, ivOff + sk.enc.ivLen);
  skp.seal(sk.enc, buf, 0, ivOff, innerLen);
  return buf;
}

// ---- logging -----------------------------------------------------------------------------

const PAYLOAD_NAMES: Readonly<Record<number, string>> = {
  [PayloadType.SA]: 'SA',
  [PayloadType.KE]: 'KE',
  [PayloadType.IDi]: 'IDi',
  [PayloadType.IDr]: 'IDr',
  [PayloadType.CERT]: 'CERT',
  [PayloadType.CERTREQ]: 'CERTREQ',
  [PayloadType.AUTH]: 'AUTH',
  [PayloadType.NONCE]: 'No',
  [PayloadType.D]: 'D',
  [PayloadType.V]: 'V',
  [PayloadType.TSi]: 'TSi',
  [PayloadType.TSr]: 'TSr',
  [PayloadType.SK]: 'SK',
  [PayloadType.CP]: 'CP',
  [PayloadType.EAP]: 'EAP',
  [PayloadType.SKF]: 'SKF',
};

// strongSwan-style short names for the notifies that show up in every exchange
const NOTIFY_SHORT: Readonly<Record<number, string>> = {
  [NotifyType.NAT_DETECTION_SOURCE_IP]: 'NATD_S_IP',
  [NotifyType.NAT_DETECTION_DESTINATION_IP]: 'NATD_D_IP',
  [NotifyType.IKEV2_FRAGMENTATION_SUPPORTED]: 'FRAG_SUP',
  [NotifyType.SIGNATURE_HASH_ALGORITHMS]: 'HASH_ALG',
  [NotifyType.INITIAL_CONTACT]: 'INIT_CONTACT',
  [NotifyType.MOBIKE_SUPPORTED]: 'MOBIKE_SUP',
  [NotifyType.MULTIPLE_AUTH_SUPPORTED]: 'MULT_AUTH',
  [NotifyType.REDIRECT_SUPPORTED]: 'REDIR_SUP',
  [NotifyType.NO_PROPOSAL_CHOSEN]: 'NO_PROP',
  [NotifyType.TS_UNACCEPTABLE]: 'TS_UNACCEPT',
  [NotifyType.AUTHENTICATION_FAILED]: 'AUTH_FAILED',
  [NotifyType.INVALID_KE_PAYLOAD]: 'INVAL_KE',
  [NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD]: 'UNSUPPORTED_CRITICAL_PAYLOAD',
  [NotifyType.REKEY_SA]: 'REKEY_SA',
  [NotifyType.COOKIE]: 'COOKIE',
  16399: 'NO_ADD_ADDR', // NO_ADDITIONAL_ADDRESSES (RFC 4555)
  16417: 'EAP_ONLY', // EAP_ONLY_AUTHENTICATION (RFC 5998)
  16418: 'CHDLESS_SUP', // CHILDLESS_IKEV2_SUPPORTED (RFC 6023)
  16420: 'MSG_ID_SYN_SUP', // IKEV2_MESSAGE_ID_SYNC_SUPPORTED (RFC 6311)
};

function payloadName(p: Payload | UnknownPayload): string {
  if (!isUnknown(p) && p.type === PayloadType.N) {
    const name = NOTIFY_SHORT[p.notifyType] ?? NotifyType[p.notifyType] ?? String(p.notifyType);
    return `N(${name})`;
  }
  if (!isUnknown(p) && p.type === PayloadType.CP) {
    return ['CP', 'CPRQ', 'CPRP', 'CPS', 'CPA'][p.cfgType] ?? 'CP';
  }
  return PAYLOAD_NAMES[p.type] ?? `U(${p.type})`;
}

function exchangeName(t: number): string {
  return ExchangeType[t] ?? `EXCHANGE(${t})`;
}

/** One-line summary for debug logs: "IKE_AUTH request #1 [ IDi AUTH SA TSi TSr ]". No secrets. */
export function describeMessage(msg: IkeMessage): string {
  const h = msg.header;
  const ex = exchangeName(h.exchangeType);
  const dir = h.flags & HeaderFlag.R ? 'response' : 'request';
  const names = [...msg.payloads.map(payloadName), ...msg.skipped.map(payloadName)];
  return `${ex} ${dir} #${h.messageId} [ ${names.join(' ')}${names.length ? ' ' : ''}]`;
}
