import { X509Certificate } from 'node:crypto';
import { IdType } from '../wire/constants.js';
import { parseIp, bytesToIp } from '../../common/ip.js';
import { dnMatches, dnToString, subjectDer } from './x509.js';

/**
 * An IKE identity (RFC 7296 §3.5) parsed from strongSwan's syntax:
 *   "192.0.2.2" → ID_IPV4_ADDR, "fd00::1" → ID_IPV6_ADDR, "fqdn:gw.example.org" or a bare
 *   "gw.example.org" → ID_FQDN, "email:a@b" or "a@b" → ID_RFC822_ADDR, "C=CH, O=x, CN=y" → ID_DER_ASN1_DN,
 *   "%any" → matches anything (remote only).
 * Two identities match only when type AND data are equal; DNs compare attribute by attribute as
 * strongSwan does (string type and case aside, "*" as a wildcard value: src/ike/config/x509.ts).
 */
export interface Identity {
  readonly type: IdType;
  readonly data: Buffer;
  readonly text: string;
  readonly any: boolean;
}

export function parseIdentity(text: string): Identity | null {
  const t = text.trim();
  if (t === '' ) return null;
  if (t === '%any') return { type: IdType.ID_FQDN, data: Buffer.alloc(0), text: t, any: true };
  if (t.startsWith('fqdn:')) return fqdn(t.slice(5), t);
  if (t.startsWith('email:')) return email(t.slice(6), t);
  if (t.startsWith('ipv4:') || t.startsWith('ipv6:')) {
    const ip = parseIp(t.slice(5));
    if (!ip) return null;
    return addr(ip.bytes, t);
  }
  const ip = parseIp(t);
  if (ip) return addr(ip.bytes, t);
  if (t.includes('=')) {
    const der = dnToDer(t);
    return der ? { type: IdType.ID_DER_ASN1_DN, data: der, text: t, any: false } : null;
  }
  if (t.includes('@')) return email(t, t);
  return fqdn(t, t);
}

function fqdn(s: string, text: string): Identity | null {
  if (!/^[A-Za-z0-9*._-]+$/.test(s)) return null;
  return { type: IdType.ID_FQDN, data: Buffer.from(s, 'ascii'), text, any: false };
}

function email(s: string, text: string): Identity | null {
  if (!/^[^@\s]+@[^@\s]+$/.test(s)) return null;
  return { type: IdType.ID_RFC822_ADDR, data: Buffer.from(s, 'ascii'), text, any: false };
}

function addr(bytes: Buffer, text: string): Identity {
  return { type: bytes.length === 4 ? IdType.ID_IPV4_ADDR : IdType.ID_IPV6_ADDR, data: bytes, text, any: false };
}

export function identityFromWire(idType: number, data: Buffer): Identity {
  const copy = Buffer.from(data);
  return { type: idType as IdType, data: copy, text: identityToString(idType, copy), any: false };
}

/** `received` is an ID payload (its `idType` and `data`). */
export function identityMatches(configured: Identity, received: { idType: number; data: Buffer }): boolean {
  if (configured.any) return true;
  if (configured.type !== received.idType) return false;
  if (configured.type === IdType.ID_DER_ASN1_DN) return dnMatches(configured.data, received.data);
  return configured.data.equals(received.data);
}

export function identityToString(idType: number, data: Buffer): string {
  switch (idType) {
    case IdType.ID_IPV4_ADDR:
    case IdType.ID_IPV6_ADDR:
      return data.length === 4 || data.length === 16 ? bytesToIp(data) : `<bad ip id ${data.toString('hex')}>`;
    case IdType.ID_FQDN:
    case IdType.ID_RFC822_ADDR:
      return data.toString('latin1');
    case IdType.ID_DER_ASN1_DN:
      return dnToString(data);
    default:
      return `type${idType}:${data.toString('hex')}`;
  }
}

// --- a minimal DER encoder for distinguished names in strongSwan's "C=CH, O=org, CN=name" form ---

const DN_OIDS: Record<string, string> = {
  C: '2.5.4.6', ST: '2.5.4.8', L: '2.5.4.7', O: '2.5.4.10', OU: '2.5.4.11', CN: '2.5.4.3',
  E: '1.2.840.113549.1.9.1', EMAIL: '1.2.840.113549.1.9.1', SN: '2.5.4.4', SERIALNUMBER: '2.5.4.5', DC: '0.9.2342.19200300.100.1.25',
};

function derLen(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}
function der(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLen(body.length), body]);
}
function derOid(oid: string): Buffer {
  const parts = oid.split('.').map(Number);
  const out: number[] = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack: number[] = [p & 0x7f];
    let v = Math.floor(p / 128);
    while (v > 0) { stack.unshift((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
    out.push(...stack);
  }
  return der(0x06, Buffer.from(out));
}

/** "C=CH, O=strongSwan, CN=moon" → DER Name (PrintableString for C, UTF8String otherwise), like strongSwan. */
export function dnToDer(text: string): Buffer | null {
  const rdns: Buffer[] = [];
  for (const part of text.split(/\s*[,/]\s*/).filter((p) => p.length > 0)) {
    const eq = part.indexOf('=');
    if (eq <= 0) return null;
    const key = part.slice(0, eq).trim().toUpperCase();
    const oid = DN_OIDS[key];
    if (!oid) return null;
    const value = part.slice(eq + 1).trim();
    const str = key === 'C' ? der(0x13, Buffer.from(value, 'ascii')) : key === 'E' || key === 'EMAIL' || key === 'DC' ? der(0x16, Buffer.from(value, 'ascii')) : der(0x0c, Buffer.from(value, 'utf8'));
    rdns.push(der(0x31, der(0x30, Buffer.concat([derOid(oid), str]))));
  }
  if (rdns.length === 0) return null;
  return der(0x30, Buffer.concat(rdns));
}

/** A certificate's subject as an ID_DER_ASN1_DN identity (strongSwan's default own ID with a certificate). */
export function certificateSubjectIdentity(cert: X509Certificate): Identity {
  const data = subjectDer(cert);
  return { type: IdType.ID_DER_ASN1_DN, data, text: dnToString(data), any: false };
}
