import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import forge from 'node-forge';
import { VpnError } from '../common/errors.js';
import {
  STATIC_KEY_SIZE,
  TLS_CRYPT_METADATA_TYPE_TIMESTAMP,
  formatStaticKey,
  formatTlsCryptV2ClientKey,
  formatTlsCryptV2ServerKey,
  parseTlsCryptV2ServerKey,
  wrapClientKey,
} from '../ssl/wire/tls-wrap.js';

/**
 * A small X.509 issuer for the gateway's own PKI: the SSL VPN's CA, server certificate and client
 * certificates (`vpcgw start` generates them on first run; tests use it for fixtures). RSA keys come
 * from node:crypto (native, fast); certificates are built and signed with node-forge.
 */

export interface IssuedCert {
  cert: string; // PEM
  key: string; // PEM (PKCS#8)
}

export interface CertSpec {
  cn: string;
  isCa: boolean;
  eku?: 'serverAuth' | 'clientAuth';
  notBefore: Date;
  notAfter: Date;
  organization?: string;
}

/** A certificate together with what is needed to sign others with it. */
export interface Issuer {
  readonly cert: forge.pki.Certificate;
  readonly priv: forge.pki.rsa.PrivateKey;
  readonly pem: IssuedCert;
}

function rsaKey(bits: number): { pub: forge.pki.PublicKey; priv: forge.pki.rsa.PrivateKey; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    priv: forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey,
    pub: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
  };
}

/**
 * Issues a certificate (self-signed when `issuer` is null). Server certificates get EKU serverAuth and
 * digitalSignature+keyEncipherment (OpenVPN clients with `remote-cert-tls server` insist on them),
 * client certificates EKU clientAuth.
 */
export function issueCertificate(spec: CertSpec, issuer: Issuer | null, keyBits = 2048): Issuer {
  const k = rsaKey(keyBits);
  const c = forge.pki.createCertificate();
  c.publicKey = k.pub;
  // positive 64-bit random serial (RFC 5280 §4.1.2.2)
  const serial = randomBytes(8);
  serial[0] = serial[0]! & 0x7f;
  c.serialNumber = serial.toString('hex');
  c.validity.notBefore = spec.notBefore;
  c.validity.notAfter = spec.notAfter;
  const subject = [{ name: 'commonName', value: spec.cn }, { name: 'organizationName', value: spec.organization ?? 'vpcgw' }];
  c.setSubject(subject);
  c.setIssuer(issuer ? issuer.cert.subject.attributes : subject);
  const ext: object[] = [{ name: 'basicConstraints', cA: spec.isCa, critical: true }];
  if (spec.isCa) ext.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
  else ext.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: spec.eku === 'serverAuth', critical: true });
  if (spec.eku === 'serverAuth') ext.push({ name: 'extKeyUsage', serverAuth: true });
  if (spec.eku === 'clientAuth') ext.push({ name: 'extKeyUsage', clientAuth: true });
  ext.push({ name: 'subjectKeyIdentifier' });
  c.setExtensions(ext);
  c.sign(issuer ? issuer.priv : k.priv, forge.md.sha256.create());
  return { cert: c, priv: k.priv, pem: { cert: forge.pki.certificateToPem(c), key: k.pem } };
}

/** Loads an issuer (CA) back from PEM files' contents. */
export function loadIssuer(pem: IssuedCert): Issuer {
  return {
    cert: forge.pki.certificateFromPem(pem.cert),
    priv: forge.pki.privateKeyFromPem(pem.key) as forge.pki.rsa.PrivateKey, // PKCS#8 or PKCS#1, unencrypted
    pem,
  };
}

export const DAY_MS = 86_400_000;

export function validFor(days: number, now = Date.now()): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now - DAY_MS), notAfter: new Date(now + days * DAY_MS) };
}

// ---- tls-crypt / tls-auth keys and the client profile's part for them ----

/** A new 2048-bit OpenVPN static key file (the format `openvpn --genkey tls-crypt` writes). */
export function generateStaticKeyFile(): string {
  const key = randomBytes(STATIC_KEY_SIZE);
  const text = formatStaticKey(key);
  key.fill(0);
  return text;
}

/** What a vpnServer entry says about tls-crypt / tls-auth (paths resolved), for the client profile. */
export interface ProfileTlsWrap {
  tlsCrypt?: string | null;
  tlsCryptV2?: { serverKey: string } | null;
  tlsAuth?: { key: string; direction: number; digest: string } | null;
}

/**
 * The client profile lines for the server's tls-crypt or tls-auth: the key inline and, for tls-auth,
 * the client's key direction (the server's other one) and digest; for tls-crypt-v2 the client's own
 * key (`clientV2Key`, a key file's text). Empty when none is set.
 */
export function profileTlsWrapLines(w: ProfileTlsWrap, readKey: (path: string) => string, clientV2Key?: string): string {
  if (w.tlsCryptV2) return clientV2Key ? `<tls-crypt-v2>\n${clientV2Key.trim()}\n</tls-crypt-v2>\n` : '';
  if (w.tlsCrypt) return `<tls-crypt>\n${readKey(w.tlsCrypt).trim()}\n</tls-crypt>\n`;
  if (w.tlsAuth) {
    const digest = w.tlsAuth.digest === 'SHA1' ? '' : `auth ${w.tlsAuth.digest}\n`;
    return `key-direction ${w.tlsAuth.direction === 1 ? 0 : 1}\n${digest}<tls-auth>\n${readKey(w.tlsAuth.key).trim()}\n</tls-auth>\n`;
  }
  return '';
}

/** A new tls-crypt-v2 server key file (the format `openvpn --genkey tls-crypt-v2-server` writes). */
export function generateTlsCryptV2ServerKeyFile(): string {
  return formatTlsCryptV2ServerKey(randomBytes(128));
}

/**
 * A new tls-crypt-v2 client key file for the server key in `serverKeyText`: a fresh Kc wrapped with
 * the creation time as metadata, as `openvpn --genkey tls-crypt-v2-client` does without metadata.
 */
export function generateTlsCryptV2ClientKeyFile(serverKeyText: string, what: string, nowMs = Date.now()): string {
  const serverKey = parseTlsCryptV2ServerKey(serverKeyText, what);
  const kc = randomBytes(STATIC_KEY_SIZE);
  const metadata = Buffer.alloc(9);
  metadata[0] = TLS_CRYPT_METADATA_TYPE_TIMESTAMP;
  metadata.writeBigUInt64BE(BigInt(Math.floor(nowMs / 1000)), 1);
  const text = formatTlsCryptV2ClientKey(kc, wrapClientKey(serverKey, kc, metadata));
  kc.fill(0);
  serverKey.fill(0);
  return text;
}

// ---- client certificates for a VPN server's users ----

/** How long a client certificate from `issueClientCertificate` is valid. */
export const CLIENT_CERT_DAYS = 365;

/**
 * A client certificate for `user` (CN = user, EKU clientAuth: what OpenVPN servers that check
 * `remote-cert-tls client` expect) signed by the CA in `caPem` / `caKeyPem`. When `caPem` holds
 * several certificates the one whose public key matches `caKeyPem` signs. The new private key is
 * returned only: nothing is written.
 */
export function issueClientCertificate(caPem: string, caKeyPem: string, user: string, o: { days?: number; nowMs?: number } = {}): IssuedCert {
  const priv = forge.pki.privateKeyFromPem(caKeyPem) as forge.pki.rsa.PrivateKey;
  const cert = caCertFor(caPem, priv);
  const issuer: Issuer = { cert, priv, pem: { cert: forge.pki.certificateToPem(cert), key: caKeyPem } };
  return issueCertificate({ cn: user, isCa: false, eku: 'clientAuth', ...validFor(o.days ?? CLIENT_CERT_DAYS, o.nowMs) }, issuer).pem;
}

/** One revoked certificate of a CRL: its serial (hex) and when it was revoked. */
export interface CrlEntry {
  serial: string;
  revokedAtMs: number;
}

/** How long a CRL written by buildCrl is current (its nextUpdate). */
export const CRL_DAYS = 3650;

/**
 * A version 2 X.509 CRL (RFC 5280 §5.1) listing `entries`, signed with sha256WithRSAEncryption by the
 * CA of `caPem` whose key is `caKeyPem`, as PEM. node-forge has no CRL writer, so the TBSCertList is
 * assembled here field by field:
 *
 *   CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
 *   TBSCertList ::= SEQUENCE { version INTEGER (v2 = 1), signature AlgorithmIdentifier, issuer Name,
 *     thisUpdate Time, nextUpdate Time, revokedCertificates SEQUENCE OF SEQUENCE {
 *     userCertificate INTEGER, revocationDate Time } OPTIONAL }
 *
 * OpenSSL (and so Node's TLS with a `crl`) checks the issuer name and the signature; a long
 * nextUpdate keeps it current (a stale CRL fails every verification with CRL_HAS_EXPIRED).
 */
export function buildCrl(caPem: string, caKeyPem: string, entries: readonly CrlEntry[], nowMs = Date.now()): string {
  const asn1 = forge.asn1;
  const priv = forge.pki.privateKeyFromPem(caKeyPem) as forge.pki.rsa.PrivateKey;
  const ca = caCertFor(caPem, priv);
  const time = (ms: number): forge.asn1.Asn1 => {
    const d = new Date(ms);
    // RFC 5280 §5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050
    return d.getUTCFullYear() < 2050
      ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(d))
      : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
  };
  const integer = (hex: string): forge.asn1.Asn1 => {
    let h = hex.length % 2 ? `0${hex}` : hex;
    if (parseInt(h.slice(0, 2), 16) & 0x80) h = `00${h}`; // a positive INTEGER
    return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, forge.util.hexToBytes(h));
  };
  const algorithm = (): forge.asn1.Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(forge.pki.oids.sha256WithRSAEncryption!).getBytes()),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
  ]);
  const tbsFields: forge.asn1.Asn1[] = [
    integer('01'),
    algorithm(),
    forge.pki.distinguishedNameToAsn1(ca.subject),
    time(nowMs - 60_000),
    time(nowMs + CRL_DAYS * DAY_MS),
  ];
  if (entries.length > 0) {
    tbsFields.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, entries.map((e) =>
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [integer(e.serial.toLowerCase()), time(e.revokedAtMs)]))));
  }
  const tbs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, tbsFields);
  const md = forge.md.sha256.create();
  md.update(asn1.toDer(tbs).getBytes());
  const signature = priv.sign(md);
  const crl = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithm(),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\0${signature}`),
  ]);
  return forge.pem.encode({ type: 'X509 CRL', body: asn1.toDer(crl).getBytes() });
}

/** The certificate of `caPem` (one or several PEM certificates) whose public key is `priv`'s. */
function caCertFor(caPem: string, priv: forge.pki.rsa.PrivateKey): forge.pki.Certificate {
  const blocks = caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  const cert = blocks
    .map((b) => forge.pki.certificateFromPem(b))
    .find((c) => {
      const pub = c.publicKey as forge.pki.rsa.PublicKey;
      return pub.n !== undefined && pub.n.equals(priv.n) && pub.e.equals(priv.e);
    });
  if (!cert) throw new VpnError('ERR_CRYPTO_KEY', 'the CA key does not belong to any certificate of the CA file (an RSA key is required)');
  return cert;
}

/**
 * The files kept beside a VPN server's clientCa (`pki/ca.crt`): its key `pki/ca.key` (the default
 * PKI's layout, ensureDefaultPki in src/gateway/default-config.ts), the CRL the server checks
 * `pki/ca.crl`, and the record of the client certificates issued from it `pki/ca.issued.json`.
 */
export function besideCa(clientCa: string, ext: '.key' | '.crl' | '.issued.json'): string {
  return `${clientCa.replace(/\.(crt|pem|cer)$/i, '')}${ext}`;
}

/**
 * Reads a CRL file again whenever its modification time or size changed ('' while it does not
 * exist), so a revocation written by `vpcgw pki revoke-client` is used by the next handshake
 * without a restart. One stat per call: called once per new client session.
 */
export function crlFileReader(path: string): () => string {
  let stamp = '';
  let text = '';
  return () => {
    let st;
    try {
      st = statSync(path);
    } catch {
      stamp = '';
      text = '';
      return '';
    }
    const now = `${st.mtimeMs}:${st.size}:${st.ino}`;
    if (now !== stamp) {
      try {
        text = readFileSync(path, 'utf8');
        stamp = now;
      } catch {
        text = '';
        stamp = '';
      }
    }
    return text;
  };
}
