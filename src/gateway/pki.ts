import { generateKeyPairSync, randomBytes } from 'node:crypto';
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
  const blocks = caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  const cert = blocks
    .map((b) => forge.pki.certificateFromPem(b))
    .find((c) => {
      const pub = c.publicKey as forge.pki.rsa.PublicKey;
      return pub.n !== undefined && pub.n.equals(priv.n) && pub.e.equals(priv.e);
    });
  if (!cert) throw new VpnError('ERR_CRYPTO_KEY', 'the CA key does not belong to any certificate of the CA file (an RSA key is required)');
  const issuer: Issuer = { cert, priv, pem: { cert: forge.pki.certificateToPem(cert), key: caKeyPem } };
  return issueCertificate({ cn: user, isCa: false, eku: 'clientAuth', ...validFor(o.days ?? CLIENT_CERT_DAYS, o.nowMs) }, issuer).pem;
}
