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
import { issueCertificate, DAY_MS, type CertSpec, type Issuer } from '../../src/gateway/pki.js';

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

function makeCert(spec: CertSpec, issuer: Issuer | null): Issuer {
  return issueCertificate({ organization: 'vpcgw test fixtures', ...spec }, issuer);
}



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
