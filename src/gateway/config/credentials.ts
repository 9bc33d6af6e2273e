import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { ConfigError } from '../../common/errors.js';
import { keyKind, keyKindText } from '../../ike/sa/pubkey-auth.js';
import { crlSignedBy, parseCrl, type CrlInfo } from '../../ike/config/x509.js';
import { certName } from '../../ike/config/trust.js';

/**
 * Certificate material named by the config (PEM files), read and checked at load so that
 * `check-config` refuses a bad or mismatched file. The parsed objects sit in private fields: the
 * config tree is deep-frozen and printed, and neither may reach into a private key.
 */

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function readFile(file: string, path: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(path, file, `${what} (the file cannot be read: ${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** All certificates of a PEM file (or one DER certificate), in file order. */
export function readCertificates(file: string, path: string, what: string): X509Certificate[] {
  const bytes = readFile(file, path, what);
  const pems = bytes.toString('latin1').match(PEM_CERT_RE);
  try {
    return pems ? pems.map((p) => new X509Certificate(p)) : [new X509Certificate(bytes)];
  } catch {
    throw new ConfigError(path, file, `${what} (no readable X.509 certificate in it)`);
  }
}

/** Our certificate, its intermediates and the private key (auth.cert / auth.key). */
export class LocalCredentials {
  readonly #cert: X509Certificate;
  readonly #chain: readonly X509Certificate[];
  readonly #key: KeyObject;
  readonly certFile: string;
  readonly keyFile: string;

  constructor(certFile: string, keyFile: string, path: string) {
    const certPath = `${path}.cert`;
    const keyPath = `${path}.key`;
    const certs = readCertificates(certFile, certPath, 'a PEM certificate file');
    let key: KeyObject;
    try {
      key = createPrivateKey(readFile(keyFile, keyPath, 'a PEM private key file'));
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError(keyPath, keyFile, 'an unencrypted PEM or DER private key');
    }
    if (!keyKind(key)) throw new ConfigError(keyPath, keyFile, `an RSA or ECDSA P-256/P-384/P-521 key (this is ${keyKindText(key)})`);
    const cert = certs[0]!;
    if (!cert.checkPrivateKey(key)) {
      throw new ConfigError(keyPath, keyFile, `the private key of the certificate ${certName(cert)} in ${certFile} (this key belongs to another certificate)`);
    }
    this.#cert = cert;
    this.#chain = Object.freeze(certs.slice(1));
    this.#key = key;
    this.certFile = certFile;
    this.keyFile = keyFile;
    Object.freeze(this);
  }

  get cert(): X509Certificate { return this.#cert; }
  get chain(): readonly X509Certificate[] { return this.#chain; }
  get key(): KeyObject { return this.#key; }

  toJSON(): unknown {
    return { cert: this.certFile, key: this.keyFile };
  }
  [inspect.custom](): string {
    return `LocalCredentials(${this.certFile})`;
  }
}

/** The CAs a customer gateway's certificate must chain to, and their CRLs (ca / crl). */
export class TrustAnchors {
  readonly #cas: readonly X509Certificate[];
  readonly #crls: readonly CrlInfo[];
  readonly caFile: string;
  readonly crlFile: string | null;

  constructor(caFile: string, crlFile: string | null, path: string) {
    const cas = readCertificates(caFile, `${path}.ca`, 'a PEM CA certificate file');
    const crls: CrlInfo[] = [];
    if (crlFile !== null) {
      const crlPath = `${path}.crl`;
      const bytes = readFile(crlFile, crlPath, 'a PEM or DER CRL file');
      const pems = bytes.toString('latin1').match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g);
      const ders = pems ? pems.map((p) => Buffer.from(p.replace(/-----[A-Z0-9 ]+-----|\s/g, ''), 'base64')) : [bytes];
      for (const der of ders) {
        let crl: CrlInfo;
        try {
          crl = parseCrl(der);
        } catch {
          throw new ConfigError(crlPath, crlFile, 'a PEM or DER X.509 CRL (this one does not parse)');
        }
        if (!cas.some((ca) => crlSignedBy(crl, ca))) {
          throw new ConfigError(crlPath, crlFile, `a CRL issued and signed by a CA in ${caFile}`);
        }
        crls.push(crl);
      }
    }
    this.#cas = Object.freeze(cas);
    this.#crls = Object.freeze(crls);
    this.caFile = caFile;
    this.crlFile = crlFile;
    Object.freeze(this);
  }

  get cas(): readonly X509Certificate[] { return this.#cas; }
  get crls(): readonly CrlInfo[] { return this.#crls; }

  toJSON(): unknown {
    return { ca: this.caFile, crl: this.crlFile };
  }
  [inspect.custom](): string {
    return `TrustAnchors(${this.caFile})`;
  }
}
