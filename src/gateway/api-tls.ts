/**
 * The management API's TLS certificate: a configured certificate and key, or else a self-signed
 * one made at first start and kept in `<dataDir>/api/` so clients that pinned its fingerprint
 * keep trusting it across restarts.
 *
 * The generated key is RSA 2048 (node:crypto) and the certificate is built with node-forge, as
 * src/gateway/pki.ts does for the SSL VPN's PKI: node-forge signs with RSA only, not ECDSA.
 */
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';
import { VpnError } from '../common/errors.js';
import type { Logger } from '../common/log.js';

export const API_TLS_DIR = 'api';
export const API_CERT_FILE = 'cert.pem';
export const API_KEY_FILE = 'key.pem';
export const API_CERT_VALIDITY_YEARS = 10;
const API_KEY_BITS = 2048;

export interface ApiCertificate {
  /** PEM. */
  readonly cert: string;
  /** PEM (PKCS#8). */
  readonly key: string;
  /** SHA-256 of the certificate's DER, as `AB:CD:...` (what `openssl x509 -fingerprint -sha256` prints). */
  readonly fingerprintSha256: string;
}

export interface ApiCertificateOptions {
  dataDir: string;
  /** A configured certificate (PEM, chain allowed) and its key; both or neither. */
  certFile?: string;
  keyFile?: string;
  /** Names and addresses clients use to reach the API: the generated certificate's SANs. */
  hosts: readonly string[];
  log: Logger;
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new VpnError('ERR_CONFIG', `API TLS ${what} file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/** Parses and pairs a certificate and key; errors name the file at fault. */
function checkPair(cert: string, key: string, certFile: string, keyFile: string): ApiCertificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new VpnError('ERR_CONFIG', `API TLS certificate file ${certFile} does not hold a PEM certificate`, { cause: err });
  }
  let priv;
  try {
    priv = createPrivateKey(key);
  } catch (err) {
    throw new VpnError('ERR_CONFIG', `API TLS key file ${keyFile} does not hold an unencrypted PEM private key`, { cause: err });
  }
  if (!x509.checkPrivateKey(priv)) throw new VpnError('ERR_CONFIG', `API TLS key file ${keyFile} does not belong to the certificate in ${certFile}`);
  return { cert, key, fingerprintSha256: x509.fingerprint256 };
}

/** The SANs for `hosts` plus localhost and 127.0.0.1: IP addresses as iPAddress, the rest as dNSName. */
function subjectAltNames(hosts: readonly string[]): { type: number; value?: string; ip?: string }[] {
  const all = [...new Set([...hosts, 'localhost', '127.0.0.1'].filter((h) => h && h !== '0.0.0.0' && h !== '::'))];
  // RFC 5280 §4.2.1.6: GeneralName dNSName [2], iPAddress [7]
  return all.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
}

/** A self-signed server certificate for the API, valid API_CERT_VALIDITY_YEARS years. */
export function generateApiCertificate(hosts: readonly string[], now = new Date()): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: API_KEY_BITS });
  const fPriv = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  const c = forge.pki.createCertificate();
  c.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  // positive 64-bit random serial (RFC 5280 §4.1.2.2)
  const serial = randomBytes(8);
  serial[0] = serial[0]! & 0x7f;
  c.serialNumber = serial.toString('hex');
  c.validity.notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + API_CERT_VALIDITY_YEARS);
  c.validity.notAfter = notAfter;
  const cn = hosts.find((h) => h && h !== '0.0.0.0' && h !== '::') ?? 'localhost';
  const subject = [{ name: 'commonName', value: cn }, { name: 'organizationName', value: 'vpcgw management API' }];
  c.setSubject(subject);
  c.setIssuer(subject);
  c.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: subjectAltNames(hosts) },
    { name: 'subjectKeyIdentifier' },
  ]);
  c.sign(fPriv, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(c), key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** Writes through a temporary file and a rename, so a crash never leaves half a PEM behind. */
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

export function loadOrCreateApiCertificate(opts: ApiCertificateOptions): ApiCertificate {
  const { log } = opts;
  if (opts.certFile !== undefined || opts.keyFile !== undefined) {
    if (opts.certFile === undefined || opts.keyFile === undefined) {
      throw new VpnError('ERR_CONFIG', `API TLS: a certificate file and a key file go together (only ${opts.certFile ?? opts.keyFile} is configured)`);
    }
    const r = checkPair(readPem(opts.certFile, 'certificate'), readPem(opts.keyFile, 'key'), opts.certFile, opts.keyFile);
    log.info({ certFile: opts.certFile, fingerprintSha256: r.fingerprintSha256 }, 'api: TLS certificate loaded');
    return r;
  }

  const dir = join(opts.dataDir, API_TLS_DIR);
  const certFile = join(dir, API_CERT_FILE);
  const keyFile = join(dir, API_KEY_FILE);
  const haveCert = existsSync(certFile);
  const haveKey = existsSync(keyFile);
  if (haveCert && haveKey) {
    const r = checkPair(readPem(certFile, 'certificate'), readPem(keyFile, 'key'), certFile, keyFile);
    const x509 = new X509Certificate(r.cert);
    const missing = opts.hosts.filter((h) => h && h !== '0.0.0.0' && h !== '::' && (isIP(h) ? x509.checkIP(h) : x509.checkHost(h)) === undefined);
    if (missing.length) {
      // kept anyway: a new certificate would break the clients that pinned this one
      log.warn({ certFile, missing }, 'api: the generated TLS certificate does not name every API host (delete it to make a new one)');
    }
    log.info({ certFile, fingerprintSha256: r.fingerprintSha256 }, 'api: TLS certificate reused');
    return r;
  }
  if (haveCert !== haveKey) {
    const present = haveCert ? certFile : keyFile;
    const absent = haveCert ? keyFile : certFile;
    throw new VpnError('ERR_CONFIG', `API TLS: ${present} exists but ${absent} does not (restore it, or delete both to generate a new pair)`);
  }

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const made = generateApiCertificate(opts.hosts);
  writeAtomic(keyFile, made.key, 0o600);
  writeAtomic(certFile, made.cert, 0o644);
  const r = checkPair(made.cert, made.key, certFile, keyFile);
  log.info({ certFile, fingerprintSha256: r.fingerprintSha256 }, 'api: self-signed TLS certificate generated');
  return r;
}
