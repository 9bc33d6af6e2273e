// Chain verification of a peer certificate (src/ike/config/trust.ts): end entity -> intermediates
// from the peer's CERT payloads -> a configured CA; every link within its validity; revocation by
// the CRL of the link's issuer.
import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { verifyChain } from '../../../../src/ike/config/trust.js';
import { parseCrl } from '../../../../src/ike/config/x509.js';
import type { CertAuthConfig } from '../../../../src/ike/config/peer-config.js';
import { createCertificate, createCrl } from '../../../../src/gateway/pki-ike.js';

const DAY_MS = 86_400_000;
const NOW = Date.now();
const newKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

const rootKey = newKey();
const root = createCertificate({ subject: 'O=t, CN=Root', key: rootKey, ca: true });
const midKey = newKey();
const mid = createCertificate({ subject: 'O=t, CN=Mid', key: midKey, ca: true, issuer: { cert: root, key: rootKey } });
const ee = createCertificate({ subject: 'O=t, CN=dc1', sans: ['email:vpn@dc1.example'], key: newKey(), issuer: { cert: mid, key: midKey } });
const trust = (crls: CertAuthConfig['crls'] = []): CertAuthConfig =>
  ({ cas: [root], crls, cert: root, chain: [], key: rootKey, signatureAuth: true });

describe('verifyChain', () => {
  it('accepts end entity + intermediate against the root', () => {
    expect(verifyChain(ee, [mid], trust(), NOW)).toBeNull();
  });

  it('refuses the end entity without its intermediate, naming the issuer and the trusted CAs', () => {
    expect(verifyChain(ee, [], trust(), NOW)).toBe(
      'certificate "O=t, CN=dc1" is not issued by a configured CA (its issuer is "O=t, CN=Mid"; trusted: "O=t, CN=Root")',
    );
  });

  it('refuses a chain whose intermediate is not valid yet or expired', () => {
    const lateMid = createCertificate({
      subject: 'O=t, CN=Late', key: midKey, ca: true, issuer: { cert: root, key: rootKey },
      notBefore: new Date(NOW + DAY_MS), notAfter: new Date(NOW + 10 * DAY_MS),
    });
    const lateEe = createCertificate({ subject: 'O=t, CN=x', key: newKey(), issuer: { cert: lateMid, key: midKey } });
    expect(verifyChain(lateEe, [lateMid], trust(), NOW)).toMatch(/^certificate "O=t, CN=Late" is not valid yet \(not before /);
    expect(verifyChain(ee, [mid], trust(), NOW + 20 * 365 * DAY_MS)).toMatch(/expired on/);
  });

  it('refuses an intermediate revoked by the root\'s CRL', () => {
    const crl = parseCrl(createCrl({ ca: root, caKey: rootKey, revokedSerials: [mid.serialNumber] }));
    expect(verifyChain(ee, [mid], trust([crl]), NOW)).toMatch(/^certificate "O=t, CN=Mid" \(serial [0-9A-F]+\) is revoked by the CRL of "O=t, CN=Root"/);
  });
});
