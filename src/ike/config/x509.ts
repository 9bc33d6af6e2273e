import { createHash, verify as cryptoVerify, type KeyObject, type X509Certificate } from 'node:crypto';
import { ParseError } from '../../common/errors.js';
import { bytesToIp } from '../../common/ip.js';

/**
 * The little X.509 the IKE core needs beyond node:crypto's X509Certificate (RFC 5280): the subject
 * Name as DER (ID_DER_ASN1_DN compares against it), the subjectAltName entries as typed values,
 * DN comparison and printing in strongSwan's "C=CH, O=org, CN=name" form, and CRL parsing.
 * A bounds-checked DER reader underneath; malformed input throws ParseError.
 */

// ---- DER reader ----

export interface Tlv {
  readonly tag: number;
  /** offset of the tag byte */
  readonly start: number;
  /** offset of the value */
  readonly valueStart: number;
  /** offset after the value */
  readonly end: number;
}

export function readTlv(buf: Buffer, off: number, limit = buf.length): Tlv {
  if (off + 2 > limit) throw new ParseError('DER', off, 'truncated header');
  const tag = buf[off]!;
  let len = buf[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || p + n > limit) throw new ParseError('DER', off, 'bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new ParseError('DER', off, `length ${len} runs past the end`);
  return { tag, start: off, valueStart: p, end: p + len };
}

/** The TLVs directly inside a constructed TLV. */
export function children(buf: Buffer, tlv: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let o = tlv.valueStart; o < tlv.end;) {
    const c = readTlv(buf, o, tlv.end);
    out.push(c);
    o = c.end;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new ParseError('DER', t?.start ?? 0, `expected ${what}`);
  return t;
}

function oidToString(b: Buffer): string {
  if (b.length === 0) return '';
  const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if (!(b[i]! & 0x80)) { parts.push(v); v = 0; }
  }
  return parts.join('.');
}

const TAG_SEQUENCE = 0x30;
const TAG_SET = 0x31;
const TAG_OID = 0x06;
const TAG_INTEGER = 0x02;
const TAG_OCTETS = 0x04;
const TAG_BIT_STRING = 0x03;
const TAG_CTX0_CONSTRUCTED = 0xa0;
const TAG_CTX3_CONSTRUCTED = 0xa3;
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

// ---- certificates ----

interface TbsParts { issuer: Buffer; subject: Buffer; extensions: Map<string, Buffer> }

/** RFC 5280 §4.1: Certificate → tbsCertificate → issuer, subject, extensions. */
function tbsParts(der: Buffer): TbsParts {
  const cert = expectTag(readTlv(der, 0), TAG_SEQUENCE, 'Certificate');
  const tbs = expectTag(children(der, cert)[0], TAG_SEQUENCE, 'tbsCertificate');
  const f = children(der, tbs);
  let i = f[0]?.tag === TAG_CTX0_CONSTRUCTED ? 1 : 0; // version
  i += 2; // serialNumber, signature
  const issuer = expectTag(f[i], TAG_SEQUENCE, 'issuer');
  const subject = expectTag(f[i + 2], TAG_SEQUENCE, 'subject'); // after validity
  const extensions = new Map<string, Buffer>();
  const ext = f.slice(i + 4).find((t) => t.tag === TAG_CTX3_CONSTRUCTED);
  if (ext) {
    const seq = expectTag(children(der, ext)[0], TAG_SEQUENCE, 'Extensions');
    for (const e of children(der, seq)) {
      const parts = children(der, e);
      const oid = oidToString(der.subarray(parts[0]!.valueStart, parts[0]!.end));
      const value = expectTag(parts[parts.length - 1], TAG_OCTETS, 'extnValue');
      extensions.set(oid, der.subarray(value.valueStart, value.end));
    }
  }
  return { issuer: der.subarray(issuer.start, issuer.end), subject: der.subarray(subject.start, subject.end), extensions };
}

/** The subject Name of a certificate as DER (what strongSwan sends as an ID_DER_ASN1_DN). */
export function subjectDer(cert: X509Certificate): Buffer {
  return Buffer.from(tbsParts(cert.raw).subject);
}

export interface AltNames {
  readonly dns: readonly string[];
  readonly email: readonly string[];
  /** 4 or 16 bytes each */
  readonly ip: readonly Buffer[];
}

/** subjectAltName entries (RFC 5280 §4.2.1.6): dNSName [2], rfc822Name [1], iPAddress [7]. */
export function altNames(cert: X509Certificate): AltNames {
  const der = cert.raw;
  const ext = tbsParts(der).extensions.get(OID_SUBJECT_ALT_NAME);
  const out = { dns: [] as string[], email: [] as string[], ip: [] as Buffer[] };
  if (!ext) return out;
  const seq = expectTag(readTlv(ext, 0), TAG_SEQUENCE, 'GeneralNames');
  for (const n of children(ext, seq)) {
    const v = ext.subarray(n.valueStart, n.end);
    if (n.tag === 0x82) out.dns.push(v.toString('latin1'));
    else if (n.tag === 0x81) out.email.push(v.toString('latin1'));
    else if (n.tag === 0x87 && (v.length === 4 || v.length === 16)) out.ip.push(Buffer.from(v));
  }
  return out;
}

/** The first subjectAltName as strongSwan identity text (fqdn:/email:/IP), or null. */
export function firstAltNameText(cert: X509Certificate): string | null {
  const a = altNames(cert);
  if (a.dns[0]) return `fqdn:${a.dns[0]}`;
  if (a.email[0]) return `email:${a.email[0]}`;
  if (a.ip[0]) return bytesToIp(a.ip[0]);
  return null;
}

/** RFC 7296 §3.7: a CERTREQ names a CA by the SHA-1 hash of its SubjectPublicKeyInfo. */
export function spkiSha1(key: KeyObject): Buffer {
  return createHash('sha1').update(key.export({ type: 'spki', format: 'der' })).digest();
}

// ---- distinguished names ----

const DN_NAMES: Record<string, string> = {
  '2.5.4.6': 'C', '2.5.4.8': 'ST', '2.5.4.7': 'L', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.3': 'CN',
  '1.2.840.113549.1.9.1': 'E', '2.5.4.4': 'SN', '2.5.4.5': 'serialNumber', '0.9.2342.19200300.100.1.25': 'DC',
};

export interface Rdn { readonly oid: string; readonly value: string }

/** A DER Name as its attribute list in order (multi-valued RDNs flattened). */
export function parseDn(der: Buffer): Rdn[] {
  const name = expectTag(readTlv(der, 0), TAG_SEQUENCE, 'Name');
  if (name.end !== der.length) throw new ParseError('DER', name.end, 'trailing bytes after Name');
  const out: Rdn[] = [];
  for (const set of children(der, name)) {
    expectTag(set, TAG_SET, 'RelativeDistinguishedName');
    for (const atv of children(der, set)) {
      const [oid, value] = children(der, expectTag(atv, TAG_SEQUENCE, 'AttributeTypeAndValue'));
      expectTag(oid, TAG_OID, 'attribute type');
      if (!value) throw new ParseError('DER', atv.start, 'attribute without value');
      const v = der.subarray(value.valueStart, value.end);
      // BMPString is UTF-16BE; the other string types are read as UTF-8 (a superset of ASCII)
      out.push({ oid: oidToString(der.subarray(oid!.valueStart, oid!.end)), value: value.tag === 0x1e ? Buffer.from(v).swap16().toString('utf16le') : v.toString('utf8') });
    }
  }
  return out;
}

/** "C=CH, O=strongSwan, CN=moon" (strongSwan's print form); "<bad DN>" when the bytes do not parse. */
export function dnToString(der: Buffer): string {
  try {
    return parseDn(Buffer.from(der)).map((r) => `${DN_NAMES[r.oid] ?? r.oid}=${r.value}`).join(', ');
  } catch {
    return `<bad DN ${der.toString('hex')}>`;
  }
}

/**
 * strongSwan's DN match (identification.c, compare_dn): same attributes in the same order, values
 * equal ignoring case and the ASN.1 string type; a configured value "*" matches any value.
 */
export function dnMatches(configured: Buffer, received: Buffer): boolean {
  if (configured.equals(received)) return true;
  let a: Rdn[];
  let b: Rdn[];
  try {
    a = parseDn(configured);
    b = parseDn(received);
  } catch {
    return false;
  }
  if (a.length !== b.length) return false;
  return a.every((r, i) => r.oid === b[i]!.oid && (r.value === '*' || r.value.toLowerCase() === b[i]!.value.toLowerCase()));
}

// ---- CRLs (RFC 5280 §5.1) ----

export interface CrlInfo {
  /** the issuer Name, DER */
  readonly issuer: Buffer;
  /** serial numbers as uppercase hex without leading zeros (X509Certificate.serialNumber, normalised) */
  readonly revokedSerials: ReadonlySet<string>;
  readonly thisUpdateMs: number;
  readonly nextUpdateMs: number | null;
  readonly tbs: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
}

export function normaliseSerial(hex: string): string {
  const s = hex.replace(/[^0-9a-fA-F]/g, '').toUpperCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

function readTime(buf: Buffer, t: Tlv): number {
  const s = buf.subarray(t.valueStart, t.end).toString('latin1');
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new ParseError('DER', t.start, 'bad time');
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year >= 50 ? 1900 : 2000; // RFC 5280 §4.1.2.5.1
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** Parses a DER CertificateList. */
export function parseCrl(der: Buffer): CrlInfo {
  const top = expectTag(readTlv(der, 0), TAG_SEQUENCE, 'CertificateList');
  const [tbs, alg, sig] = children(der, top);
  expectTag(tbs, TAG_SEQUENCE, 'tbsCertList');
  const algOid = children(der, expectTag(alg, TAG_SEQUENCE, 'signatureAlgorithm'))[0]!;
  expectTag(sig, TAG_BIT_STRING, 'signatureValue');
  const f = children(der, tbs!);
  let i = f[0]?.tag === TAG_INTEGER ? 1 : 0; // version
  i += 1; // signature
  const issuer = expectTag(f[i++], TAG_SEQUENCE, 'issuer');
  const thisUpdate = readTime(der, f[i++]!);
  let nextUpdate: number | null = null;
  if (f[i] && (f[i]!.tag === 0x17 || f[i]!.tag === 0x18)) nextUpdate = readTime(der, f[i++]!);
  const revoked = new Set<string>();
  if (f[i] && f[i]!.tag === TAG_SEQUENCE) {
    for (const entry of children(der, f[i]!)) {
      const serial = expectTag(children(der, entry)[0], TAG_INTEGER, 'userCertificate');
      revoked.add(normaliseSerial(der.subarray(serial.valueStart, serial.end).toString('hex')));
    }
  }
  return {
    issuer: Buffer.from(der.subarray(issuer.start, issuer.end)),
    revokedSerials: revoked,
    thisUpdateMs: thisUpdate,
    nextUpdateMs: nextUpdate,
    tbs: Buffer.from(der.subarray(tbs!.start, tbs!.end)),
    signatureAlgorithm: oidToString(der.subarray(algOid.valueStart, algOid.end)),
    signature: Buffer.from(der.subarray(sig!.valueStart + 1, sig!.end)), // skip the unused-bits byte
  };
}

/** Signature algorithm OIDs (RFC 4055, RFC 5758) → the hash node:crypto verifies with. */
const SIG_ALG_HASH: Record<string, string> = {
  '1.2.840.113549.1.1.5': 'sha1', '1.2.840.113549.1.1.11': 'sha256', '1.2.840.113549.1.1.12': 'sha384', '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.1': 'sha1', '1.2.840.10045.4.3.2': 'sha256', '1.2.840.10045.4.3.3': 'sha384', '1.2.840.10045.4.3.4': 'sha512',
};

/** True when `issuer` issued and signed the CRL. */
export function crlSignedBy(crl: CrlInfo, issuer: X509Certificate): boolean {
  const hash = SIG_ALG_HASH[crl.signatureAlgorithm];
  if (!hash) return false;
  if (!dnMatches(subjectDer(issuer), crl.issuer)) return false;
  try {
    return cryptoVerify(hash, crl.tbs, issuer.publicKey, crl.signature);
  } catch {
    return false;
  }
}
