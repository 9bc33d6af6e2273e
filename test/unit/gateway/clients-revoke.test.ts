import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCrl, issueClientCertificate } from '../../../src/gateway/pki.js';
import { makeTestPki, type TestPki } from '../../helpers/pki.js';

// The CRL the gateway writes for revoked client certificates, checked by OpenSSL itself.

let pki: TestPki;
let dir = '';

beforeAll(() => {
  pki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-crl-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function opensslVerify(certPem: string, crlPem: string): { ok: boolean; out: string } {
  writeFileSync(join(dir, 'ca.crt'), pki.ca.cert);
  writeFileSync(join(dir, 'crl.pem'), crlPem);
  writeFileSync(join(dir, 'leaf.crt'), certPem);
  const r = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', join(dir, 'ca.crt'), '-CRLfile', join(dir, 'crl.pem'), join(dir, 'leaf.crt')], { encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

describe('buildCrl', () => {
  it('OpenSSL accepts the CRL (issuer, signature, dates) and refuses exactly the listed serials', () => {
    const alice = issueClientCertificate(pki.ca.cert, pki.ca.key, 'alice');
    const bob = issueClientCertificate(pki.ca.cert, pki.ca.key, 'bob');
    const serial = new X509Certificate(alice.cert).serialNumber;
    const empty = buildCrl(pki.ca.cert, pki.ca.key, []);
    expect(opensslVerify(alice.cert, empty)).toMatchObject({ ok: true });
    const crl = buildCrl(pki.ca.cert, pki.ca.key, [{ serial, revokedAtMs: Date.now() }]);
    expect(crl).toMatch(/^-----BEGIN X509 CRL-----\r?\n/);
    const a = opensslVerify(alice.cert, crl);
    expect(a.ok).toBe(false);
    expect(a.out).toMatch(/certificate revoked/);
    expect(opensslVerify(bob.cert, crl)).toMatchObject({ ok: true });
    // a CRL signed by another CA's key is refused
    expect(() => buildCrl(pki.ca.cert, pki.foreignCa.key, [])).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_KEY' }));
  });
});
