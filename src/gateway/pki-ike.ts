import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { VpnError } from '../common/errors.js';
import { parseIp } from '../common/ip.js';
import { dnToDer } from '../ike/config/identity.js';
import { keyKind } from '../ike/sa/pubkey-auth.js';
import { subjectDer } from '../ike/config/x509.js';

/**
 * Certificates for IKEv2 certificate authentication (`vpcgw pki ca|issue|revoke`): a CA, the
 * gateway's and the customer gateways' certificates, and a CRL, for RSA and ECDSA keys. node-forge
 * (src/gateway/pki.ts) signs RSA only, so this file writes the DER itself (RFC 5280 §4.1, §5.1)
 * and signs with node:crypto.
 */

export type PkiKeyType = 'rsa' | 'ecdsa' | 'ecdsa384' | 'ecdsa521';
export const PKI_KEY_TYPES: readonly PkiKeyType[] = ['rsa', 'ecdsa', 'ecdsa384', 'ecdsa521'];

const RSA_BITS = 3072;
const DEFAULT_CA_DAYS = 3650;
const DEFAULT_CERT_DAYS = 825;
const DAY_MS = 86_400_000;

export function generatePrivateKey(type: PkiKeyType): KeyObject {
  if (type === 'rsa') return generateKeyPairSync('rsa', { modulusLength: RSA_BITS }).privateKey;
  const namedCurve = type === 'ecdsa' ? 'prime256v1' : type === 'ecdsa384' ? 'secp384r1' : 'secp521r1';
  return generateKeyPairSync('ec', { namedCurve }).privateKey;
}

// ---- DER writer ----

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  if (n < 0x10000) return Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
}
function tlv(tag: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  return Buffer.concat([Buffer.from([tag]), len(b.length), b]);
}
const seq = (...b: Buffer[]): Buffer => tlv(0x30, ...b);
function oid(text: string): Buffer {
  const p = text.split('.').map(Number);
  const out = [p[0]! * 40 + p[1]!];
  for (const v of p.slice(2)) {
    const s = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) s.unshift((x & 0x7f) | 0x80);
    out.push(...s);
  }
  return tlv(0x06, Buffer.from(out));
}
function integer(bytes: Buffer): Buffer {
  let b = bytes;
  while (b.length > 1 && b[0] === 0 && !(b[1]! & 0x80)) b = b.subarray(1);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}
function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${digits}Z`));
}
function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.from([0]), b);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [Buffer.from([0x01, 0x01, 0xff])] : []), octets(value));
}

/** The signature AlgorithmIdentifier and hash for a signing key (RFC 4055, RFC 5758). */
function signatureAlgorithm(key: KeyObject): { algId: Buffer; hash: string } {
  switch (keyKind(key)) {
    case 'rsa': return { algId: seq(oid('1.2.840.113549.1.1.11'), Buffer.from([0x05, 0x00])), hash: 'sha256' };
    case 'p256': return { algId: seq(oid('1.2.840.10045.4.3.2')), hash: 'sha256' };
    case 'p384': return { algId: seq(oid('1.2.840.10045.4.3.3')), hash: 'sha384' };
    case 'p521': return { algId: seq(oid('1.2.840.10045.4.3.4')), hash: 'sha512' };
    default: throw new VpnError('ERR_CRYPTO_UNSUPPORTED', `cannot sign with a ${key.asymmetricKeyType} key`);
  }
}

function signed(tbs: Buffer, key: KeyObject): Buffer {
  const { algId, hash } = signatureAlgorithm(key);
  return seq(tbs, algId, bitString(sign(hash, tbs, key)));
}

/** Key identifier (RFC 5280 §4.2.1.2 allows any unique value): SHA-1 of the SubjectPublicKeyInfo, as CERTREQ hashes it. */
function keyId(pub: KeyObject): Buffer {
  return createHash('sha1').update(pub.export({ type: 'spki', format: 'der' })).digest();
}

/** subjectAltName entries in strongSwan's syntax: fqdn:NAME, email:ADDR, an IP address, or a bare DNS name. */
function generalNames(sans: readonly string[]): Buffer {
  return seq(...sans.map((s) => {
    if (s.startsWith('fqdn:') || s.startsWith('dns:')) return tlv(0x82, Buffer.from(s.slice(s.indexOf(':') + 1), 'ascii'));
    if (s.startsWith('email:')) return tlv(0x81, Buffer.from(s.slice(6), 'ascii'));
    const ip = parseIp(s.startsWith('ip:') ? s.slice(3) : s);
    if (ip) return tlv(0x87, ip.bytes);
    if (s.includes('@')) return tlv(0x81, Buffer.from(s, 'ascii'));
    return tlv(0x82, Buffer.from(s, 'ascii'));
  }));
}

export interface CertificateRequest {
  /** DN in strongSwan's syntax, "C=CH, O=example, CN=gw" */
  readonly subject: string;
  readonly sans?: readonly string[];
  /** the subject's key (its public half goes in the certificate) */
  readonly key: KeyObject;
  /** signer; absent: self-signed with `key` */
  readonly issuer?: { readonly cert: X509Certificate; readonly key: KeyObject };
  readonly ca?: boolean;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly serial?: Buffer;
}

export function createCertificate(r: CertificateRequest): X509Certificate {
  const subject = dnToDer(r.subject);
  if (!subject) throw new VpnError('ERR_INVALID_ARG', `not a distinguished name: ${JSON.stringify(r.subject)}`);
  const pub = createPublicKey(r.key);
  const signerKey = r.issuer?.key ?? r.key;
  const issuerName = r.issuer ? subjectDer(r.issuer.cert) : subject;
  const issuerKeyId = keyId(r.issuer ? r.issuer.cert.publicKey : pub);
  const notBefore = r.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = r.notAfter ?? new Date(notBefore.getTime() + (r.ca ? DEFAULT_CA_DAYS : DEFAULT_CERT_DAYS) * DAY_MS);
  const serial = r.serial ?? randomBytes(16);
  serial[0]! &= 0x7f;
  const exts = [
    extension('2.5.29.19', true, r.ca ? seq(Buffer.from([0x01, 0x01, 0xff])) : seq()),
    // keyCertSign | cRLSign for a CA, digitalSignature for an end entity
    extension('2.5.29.15', true, r.ca ? Buffer.from([0x03, 0x02, 0x01, 0x06]) : Buffer.from([0x03, 0x02, 0x07, 0x80])),
    extension('2.5.29.14', false, octets(keyId(pub))),
    extension('2.5.29.35', false, seq(tlv(0x80, issuerKeyId))),
  ];
  if (r.sans && r.sans.length > 0) exts.push(extension('2.5.29.17', false, generalNames(r.sans)));
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))),
    integer(serial),
    signatureAlgorithm(signerKey).algId,
    issuerName,
    seq(time(notBefore), time(notAfter)),
    subject,
    pub.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(...exts)),
  );
  return new X509Certificate(signed(tbs, signerKey));
}

/** A v2 CRL signed by the CA listing the given serial numbers (hex). */
export function createCrl(o: { ca: X509Certificate; caKey: KeyObject; revokedSerials: readonly string[]; thisUpdate?: Date; nextUpdate?: Date; number?: number }): Buffer {
  const thisUpdate = o.thisUpdate ?? new Date(Date.now() - 60_000);
  const nextUpdate = o.nextUpdate ?? new Date(thisUpdate.getTime() + 30 * DAY_MS);
  const entries = o.revokedSerials.map((s) => seq(integer(Buffer.from(s.length % 2 ? `0${s}` : s, 'hex')), time(thisUpdate)));
  const tbs = seq(
    integer(Buffer.from([1])),
    signatureAlgorithm(o.caKey).algId,
    subjectDer(o.ca),
    time(thisUpdate),
    time(nextUpdate),
    ...(entries.length > 0 ? [seq(...entries)] : []),
    tlv(0xa0, seq(
      extension('2.5.29.35', false, seq(tlv(0x80, keyId(o.ca.publicKey)))),
      extension('2.5.29.20', false, integer(uint32(o.number ?? 1))),
    )),
  );
  return signed(tbs, o.caKey);
}

export function crlToPem(der: Buffer): string {
  return `-----BEGIN X509 CRL-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END X509 CRL-----\n`;
}

export function keyToPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

// ---- the CLI's file layout: DIR/ca.pem, DIR/ca.key, DIR/revoked.txt, DIR/crl.pem ----

export interface PkiIkeResult { readonly files: readonly string[] }

function readCa(dir: string): { cert: X509Certificate; key: KeyObject } {
  const certFile = join(dir, 'ca.pem');
  const keyFile = join(dir, 'ca.key');
  if (!existsSync(certFile) || !existsSync(keyFile)) throw new VpnError('ERR_INVALID_ARG', `${dir} holds no CA (ca.pem and ca.key); make one with "vpcgw pki ca --out ${dir}"`);
  return { cert: new X509Certificate(readFileSync(certFile)), key: createPrivateKey(readFileSync(keyFile)) };
}

function writeNew(path: string, text: string, mode: number): void {
  writeFileSync(path, text, { mode, flag: 'wx' });
}

/**
 * `vpcgw pki ca --out DIR [--cn NAME | --dn DN] [--type T] [--days N] [--ca PARENT]`: a root CA, or with
 * --ca an intermediate CA signed by the CA in PARENT (certificates issued from DIR then carry it).
 */
export function pkiCa(o: { out: string; cn?: string; dn?: string; type?: PkiKeyType; days?: number; parent?: string }): PkiIkeResult {
  const parent = o.parent === undefined ? undefined : readCa(o.parent);
  mkdirSync(o.out, { recursive: true, mode: 0o700 });
  const key = generatePrivateKey(o.type ?? 'ecdsa');
  const notBefore = new Date(Date.now() - 60_000);
  const cert = createCertificate({
    subject: subjectOf(o, parent ? 'vpcgw IKE intermediate CA' : 'vpcgw IKE CA'), key, ca: true, notBefore, issuer: parent,
    notAfter: new Date(notBefore.getTime() + (o.days ?? DEFAULT_CA_DAYS) * DAY_MS),
  });
  const files = [join(o.out, 'ca.key'), join(o.out, 'ca.pem')];
  writeNew(files[0]!, keyToPem(key), 0o600);
  writeNew(files[1]!, cert.toString(), 0o644);
  return { files };
}

/** The subject DN: --dn as given, else CN=NAME. */
function subjectOf(o: { cn?: string; dn?: string }, defaultCn: string): string {
  if (o.dn !== undefined) {
    if (!dnToDer(o.dn)) throw new VpnError('ERR_BAD_REQUEST', `--dn ${JSON.stringify(o.dn)}: a distinguished name like "O=example, CN=gw" (C, ST, L, O, OU, CN, E, DC, SN)`);
    return o.dn;
  }
  return `CN=${o.cn ?? defaultCn}`;
}

/**
 * `vpcgw pki issue --ca DIR (--cn NAME | --dn DN) [--san S]... [--type T] [--days N] [--out DIR]`: NAME.pem
 * and NAME.key. When DIR holds an intermediate CA, NAME.pem also carries the intermediate after the
 * certificate: the gateway sends both as CERT payloads (RFC 7296 §3.6), so the peer needs only the root.
 */
export function pkiIssue(o: { ca: string; cn?: string; dn?: string; sans?: readonly string[]; type?: PkiKeyType; days?: number; out?: string }): PkiIkeResult {
  const ca = readCa(o.ca);
  const key = generatePrivateKey(o.type ?? 'ecdsa');
  const notBefore = new Date(Date.now() - 60_000);
  const subject = subjectOf(o, '');
  const cert = createCertificate({
    subject, sans: o.sans, key, issuer: ca, notBefore,
    notAfter: new Date(notBefore.getTime() + (o.days ?? DEFAULT_CERT_DAYS) * DAY_MS),
  });
  const out = o.out ?? o.ca;
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const base = (o.cn ?? new X509Certificate(cert.raw).subject.split('\n').reverse().find((l) => l.startsWith('CN='))?.slice(3) ?? 'cert')
    .replace(/[^A-Za-z0-9_.-]/g, '_');
  const files = [join(out, `${base}.key`), join(out, `${base}.pem`)];
  const intermediate = ca.cert.issuer !== ca.cert.subject;
  writeNew(files[0]!, keyToPem(key), 0o600);
  writeNew(files[1]!, cert.toString() + (intermediate ? ca.cert.toString() : ''), 0o644);
  return { files };
}

/** `vpcgw pki revoke --ca DIR --cert FILE`: adds the serial to DIR/revoked.txt and rewrites DIR/crl.pem */
export function pkiRevoke(o: { ca: string; cert?: string }): PkiIkeResult {
  const ca = readCa(o.ca);
  const listFile = join(o.ca, 'revoked.txt');
  const serials = existsSync(listFile) ? readFileSync(listFile, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean) : [];
  if (o.cert) {
    const cert = new X509Certificate(readFileSync(o.cert));
    if (!cert.checkIssued(ca.cert)) throw new VpnError('ERR_INVALID_ARG', `${o.cert} is not issued by the CA in ${o.ca}`);
    if (!serials.includes(cert.serialNumber)) serials.push(cert.serialNumber);
  }
  writeFileSync(listFile, serials.map((s) => `${s}\n`).join(''), { mode: 0o644 });
  const crlFile = join(o.ca, 'crl.pem');
  writeFileSync(crlFile, crlToPem(createCrl({ ca: ca.cert, caKey: ca.key, revokedSerials: serials, number: serials.length + 1 })), { mode: 0o644 });
  return { files: [listFile, crlFile] };
}

// ---- `vpcgw pki ca|issue|revoke` ----

export const PKI_IKE_USAGE = `  pki ca --out DIR [--cn NAME | --dn DN] [--type T] [--days N] [--ca PARENT]
                                           make a CA for IKE certificates (DIR/ca.pem, DIR/ca.key);
                                           with --ca an intermediate CA signed by the CA in PARENT
  pki issue --ca DIR (--cn NAME | --dn DN) [--san S]... [--type T] [--days N] [--out DIR]
                                           issue a certificate (NAME.pem, NAME.key; NAME.pem holds the
                                           intermediate too when DIR is one); S: fqdn:HOST, email:ADDR
                                           or an IP; DN: "O=example, CN=gw"; T: ecdsa (P-256, default),
                                           ecdsa384, ecdsa521 or rsa
  pki revoke --ca DIR [--cert FILE]        revoke a certificate and (re)write DIR/crl.pem`;

export const PKI_IKE_COMMANDS: readonly string[] = ['ca', 'issue', 'revoke'];

function keyTypeArg(v: string | undefined): PkiKeyType | undefined {
  if (v === undefined) return undefined;
  if (!(PKI_KEY_TYPES as readonly string[]).includes(v)) throw new VpnError('ERR_BAD_REQUEST', `--type ${v}: one of ${PKI_KEY_TYPES.join(', ')}`);
  return v as PkiKeyType;
}

function daysArg(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 36500) throw new VpnError('ERR_BAD_REQUEST', `--days ${v}: a whole number of days from 1 to 36500`);
  return n;
}

/** Runs `pki SUB ...` (argv after "pki"); returns what to print. Paths resolve against `cwd`. */
export function pkiIkeCommand(argv: readonly string[], cwd: string): string {
  const { values, positionals } = parseArgs({
    args: [...argv.slice(1)],
    allowPositionals: false,
    strict: true,
    options: {
      out: { type: 'string' }, ca: { type: 'string' }, cn: { type: 'string' }, dn: { type: 'string' }, san: { type: 'string', multiple: true },
      type: { type: 'string' }, days: { type: 'string' }, cert: { type: 'string' },
    },
  });
  void positionals;
  const abs = (p: string | undefined): string | undefined => (p === undefined ? undefined : resolve(cwd, p));
  let r: PkiIkeResult;
  switch (argv[0]) {
    case 'ca':
      if (!values.out) throw new VpnError('ERR_BAD_REQUEST', 'pki ca needs --out DIR');
      if (values.cn !== undefined && values.dn !== undefined) throw new VpnError('ERR_BAD_REQUEST', 'pki ca takes --cn or --dn, not both');
      r = pkiCa({ out: abs(values.out)!, cn: values.cn, dn: values.dn, type: keyTypeArg(values.type), days: daysArg(values.days), parent: abs(values.ca) });
      break;
    case 'issue':
      if (!values.ca || (values.cn === undefined) === (values.dn === undefined)) throw new VpnError('ERR_BAD_REQUEST', 'pki issue needs --ca DIR and one of --cn NAME or --dn DN');
      r = pkiIssue({ ca: abs(values.ca)!, cn: values.cn, dn: values.dn, sans: values.san, type: keyTypeArg(values.type), days: daysArg(values.days), out: abs(values.out) });
      break;
    case 'revoke':
      if (!values.ca) throw new VpnError('ERR_BAD_REQUEST', 'pki revoke needs --ca DIR');
      r = pkiRevoke({ ca: abs(values.ca)!, cert: abs(values.cert) });
      break;
    default:
      throw new VpnError('ERR_BAD_REQUEST', `unknown pki command "${argv[0] ?? ''}" (see vpcgw --help)`);
  }
  return `${r.files.map((f) => `wrote ${f}`).join('\n')}\n`;
}
