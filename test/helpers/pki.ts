/**
 * TEST FIXTURES ONLY: a throwaway PKI generated at test time (never committed, never used
 * outside tests). RSA keys come from node:crypto (fast); certificates are built and signed with
 * node-forge.
 *
 *   ca            "vpcgw test CA"
 *   server        EKU serverAuth, keyUsage digitalSignature+keyEncipherment   (signed by ca)
 *   client(cn)    EKU clientAuth, keyUsage digitalSignature                    (signed by ca)
 *   expired       a client cert whose validity ended yesterday                 (signed by ca)
 *   foreignClient a client cert from another CA ("vpcgw other CA")
 */
import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

export interface TestCert {
  cert: string; // PEM
  key: string; // PEM (PKCS#8)
}

export interface TestPki {
  ca: TestCert;
  server: TestCert;
  client: (cn: string) => TestCert;
  expiredClient: TestCert;
  foreignCa: TestCert;
  foreignClient: TestCert;
}

let serial = 1;

function rsaKey(): { pub: forge.pki.PublicKey; priv: forge.pki.rsa.PrivateKey; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    pem,
    priv: <forge.pki.rsa.PrivateKey>forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()),
    pub: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
  };
}

interface CertSpec {
  cn: string;
  isCa: boolean;
  eku?: 'serverAuth' | 'clientAuth';
  notBefore: Date;
  notAfter: Date;
}

function makeCert(spec: CertSpec, issuer: { cert: forge.pki.Certificate; priv: forge.pki.rsa.PrivateKey } | null) {
  const k = rsaKey();
  const c = forge.pki.createCertificate();
  c.publicKey = k.pub;
  c.serialNumber = (serial++).toString(16).padStart(4, '0');
  c.validity.notBefore = spec.notBefore;
  c.validity.notAfter = spec.notAfter;
  const subject = [{ name: 'commonName', value: spec.cn }, { name: 'organizationName', value: 'vpcgw test fixtures' }];
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

const DAY_MS = 86_400_000;

/** Builds the whole fixture PKI (about 0.5 s: seven RSA-2048 keys). */
export function makeTestPki(): TestPki {
  const now = Date.now();
  const valid = { notBefore: new Date(now - DAY_MS), notAfter: new Date(now + 30 * DAY_MS) };
  const ca = makeCert({ cn: 'vpcgw test CA', isCa: true, ...valid }, null);
  const server = makeCert({ cn: 'vpcgw test server', isCa: false, eku: 'serverAuth', ...valid }, ca);
  const expired = makeCert(
    { cn: 'expired-user', isCa: false, eku: 'clientAuth', notBefore: new Date(now - 30 * DAY_MS), notAfter: new Date(now - DAY_MS) },
    ca,
  );
  const foreignCa = makeCert({ cn: 'vpcgw other CA', isCa: true, ...valid }, null);
  const foreignClient = makeCert({ cn: 'foreign-user', isCa: false, eku: 'clientAuth', ...valid }, foreignCa);
  return {
    ca: ca.pem,
    server: server.pem,
    client: (cn: string) => makeCert({ cn, isCa: false, eku: 'clientAuth', ...valid }, ca).pem,
    expiredClient: expired.pem,
    foreignCa: foreignCa.pem,
    foreignClient: foreignClient.pem,
  };
}
