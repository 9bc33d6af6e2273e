import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { ParseError } from '../../../../src/common/errors.js';
import { altNames, crlSignedBy, dnMatches, dnToString, parseCrl, parseDn, subjectDer } from '../../../../src/ike/config/x509.js';
import { dnToDer, identityMatches, parseIdentity } from '../../../../src/ike/config/identity.js';
import { certContainsId } from '../../../../src/ike/config/trust.js';
import { createCertificate, createCrl } from '../../../../src/gateway/pki-ike.js';

describe('X.509 helpers of the IKE core', () => {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const cert = createCertificate({ subject: 'C=CH, O=strongSwan, CN=moon', sans: ['fqdn:moon.example', 'email:a@moon.example', '192.0.2.9', 'fd00::9'], key, ca: true });

  it('reads the subject DN and subjectAltNames', () => {
    expect(dnToString(subjectDer(cert))).toBe('C=CH, O=strongSwan, CN=moon');
    const a = altNames(cert);
    expect(a.dns).toEqual(['moon.example']);
    expect(a.email).toEqual(['a@moon.example']);
    expect(a.ip.map((b) => b.length)).toEqual([4, 16]);
  });

  it('compares DNs like strongSwan: string type and case aside, "*" a wildcard, order matters', () => {
    const printable = Buffer.from(dnToDer('C=CH, O=strongSwan, CN=moon')!);
    printable[printable.indexOf(Buffer.from('strongSwan')) - 2] = 0x13; // UTF8String -> PrintableString
    expect(dnMatches(dnToDer('c=ch, o=STRONGSWAN, cn=moon')!, printable)).toBe(true);
    expect(dnMatches(dnToDer('C=CH, O=strongSwan, CN=*')!, subjectDer(cert))).toBe(true);
    expect(dnMatches(dnToDer('O=strongSwan, C=CH, CN=moon')!, subjectDer(cert))).toBe(false);
    expect(identityMatches(parseIdentity('C=CH, O=strongSwan, CN=moon')!, { idType: 9, data: subjectDer(cert) })).toBe(true);
  });

  it('an identity is in a certificate when it is the subject or a subjectAltName', () => {
    for (const id of ['C=CH, O=strongSwan, CN=moon', 'fqdn:MOON.example', 'email:a@moon.example', '192.0.2.9', 'fd00::9']) {
      expect(certContainsId(cert, parseIdentity(id)!), id).toBe(true);
    }
    for (const id of ['C=CH, O=strongSwan, CN=sun', 'fqdn:sun.example', '192.0.2.10']) {
      expect(certContainsId(cert, parseIdentity(id)!), id).toBe(false);
    }
  });

  it('matches each identity type only against its own kind of name (strongSwan x509_cert.c has_subject)', () => {
    // an FQDN-looking email, an address written as a DNS name, an email as a DN: all refused
    const tricky = createCertificate({ subject: 'O=strongSwan, CN=moon.example', sans: ['fqdn:192.0.2.9', 'email:moon.example'], key });
    for (const id of ['fqdn:moon.example', '192.0.2.9', 'email:a@moon.example', 'O=strongSwan, CN=sun.example']) {
      expect(certContainsId(tricky, parseIdentity(id)!), id).toBe(false);
    }
    expect(certContainsId(tricky, parseIdentity('O=strongSwan, CN=moon.example')!)).toBe(true);
    expect(certContainsId(tricky, parseIdentity('fqdn:192.0.2.9')!)).toBe(true);
    // email: case-insensitive as strongSwan compares it; bare a@b parses as ID_RFC822_ADDR
    expect(parseIdentity('A@Moon.Example')!.type).toBe(3);
    expect(certContainsId(cert, parseIdentity('A@Moon.Example')!)).toBe(true);
    expect(certContainsId(cert, parseIdentity('email:b@moon.example')!)).toBe(false);
    expect(certContainsId(cert, parseIdentity('%any')!)).toBe(true);
  });

  it('a received ID matches the configured one only with the same type', () => {
    const email = parseIdentity('email:vpn@dc1.example')!;
    expect(identityMatches(email, { idType: 3, data: Buffer.from('vpn@dc1.example') })).toBe(true);
    expect(identityMatches(email, { idType: 2, data: Buffer.from('vpn@dc1.example') })).toBe(false);
    const ip = parseIdentity('192.0.2.9')!;
    expect(identityMatches(ip, { idType: 1, data: Buffer.from([192, 0, 2, 9]) })).toBe(true);
    expect(identityMatches(ip, { idType: 2, data: Buffer.from('192.0.2.9') })).toBe(false);
    expect(identityMatches(parseIdentity('fqdn:gw.example')!, { idType: 2, data: Buffer.from('gw.example') })).toBe(true);
    expect(identityMatches(parseIdentity('O=x, CN=gw')!, { idType: 9, data: dnToDer('O=x, CN=gw.example')! })).toBe(false);
  });

  it('parses a CRL and checks its signature against the issuer', () => {
    const other = createCertificate({ subject: 'CN=other', key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, ca: true });
    const crl = parseCrl(createCrl({ ca: cert, caKey: key, revokedSerials: ['00ABCDEF', '7f'] }));
    expect([...crl.revokedSerials]).toEqual(['ABCDEF', '7F']);
    expect(crlSignedBy(crl, cert)).toBe(true);
    expect(crlSignedBy(crl, other)).toBe(false);
    expect(crl.nextUpdateMs).toBeGreaterThan(crl.thisUpdateMs);
  });

  it('refuses truncated DER with a ParseError', () => {
    const der = dnToDer('CN=moon')!;
    for (let n = 0; n < der.length; n++) expect(() => parseDn(der.subarray(0, n))).toThrow(ParseError);
    expect(dnToString(der.subarray(0, 3))).toMatch(/^<bad DN/);
  });
});
