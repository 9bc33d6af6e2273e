import { describe, expect, it } from 'vitest';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, type CliIo } from '../../../src/cli.js';
import { altNames, parseCrl } from '../../../src/ike/config/x509.js';

function io(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const o: CliIo = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env: {}, cwd, isRoot: () => false };
  return { o, out, err };
}

describe('vpcgw pki ca|issue|revoke (IKE certificates)', () => {
  it.each(['ecdsa', 'rsa'])('makes a CA, issues a %s certificate with SANs and revokes it', async (type) => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-pki-ike-'));
    const t = io(dir);
    expect(await main(['pki', 'ca', '--out', 'ca', '--cn', 'Test CA'], t.o)).toBe(0);
    expect(await main(['pki', 'issue', '--ca', 'ca', '--cn', 'gw.example', '--san', 'fqdn:gw.example', '--san', '192.0.2.2', '--type', type, '--out', 'gw'], t.o)).toBe(0);
    const ca = new X509Certificate(readFileSync(join(dir, 'ca/ca.pem')));
    const cert = new X509Certificate(readFileSync(join(dir, 'gw/gw.example.pem')));
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'gw/gw.example.key'))))).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe(type === 'rsa' ? 'rsa' : 'ec');
    expect(altNames(cert).dns).toEqual(['gw.example']);
    expect(statSync(join(dir, 'gw/gw.example.key')).mode & 0o777).toBe(0o600);
    expect(await main(['pki', 'revoke', '--ca', 'ca', '--cert', 'gw/gw.example.pem'], t.o)).toBe(0);
    const pem = readFileSync(join(dir, 'ca/crl.pem'), 'utf8');
    const crl = parseCrl(Buffer.from(pem.replace(/-----[A-Z0-9 ]+-----|\s/g, ''), 'base64'));
    expect(crl.revokedSerials.has(cert.serialNumber.replace(/^0+/, ''))).toBe(true);
    expect(t.out.join('')).toContain('wrote ');
  });

  it('an intermediate CA (--ca PARENT), a DN subject (--dn) and email/IP SANs; the certificate file carries the intermediate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-pki-ike-'));
    const t = io(dir);
    expect(await main(['pki', 'ca', '--out', 'root', '--dn', 'O=example, CN=Root CA'], t.o)).toBe(0);
    expect(await main(['pki', 'ca', '--out', 'mid', '--ca', 'root', '--cn', 'Intermediate CA', '--type', 'rsa'], t.o)).toBe(0);
    expect(await main(['pki', 'issue', '--ca', 'mid', '--dn', 'O=example, CN=site1', '--san', 'email:vpn@site1.example', '--san', '198.51.100.7', '--out', 'site1'], t.o)).toBe(0);
    const root = new X509Certificate(readFileSync(join(dir, 'root/ca.pem')));
    const mid = new X509Certificate(readFileSync(join(dir, 'mid/ca.pem')));
    expect(root.subject).toBe('O=example\nCN=Root CA');
    expect(mid.ca).toBe(true);
    expect(mid.checkIssued(root) && mid.verify(root.publicKey)).toBe(true);
    const pem = readFileSync(join(dir, 'site1/site1.pem'), 'utf8');
    expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const cert = new X509Certificate(pem);
    expect(cert.subject).toBe('O=example\nCN=site1');
    expect(cert.checkIssued(mid) && cert.verify(mid.publicKey)).toBe(true);
    expect(altNames(cert).email).toEqual(['vpn@site1.example']);
    expect(pem.slice(pem.indexOf('-----BEGIN', 10))).toBe(mid.toString());
    // a certificate from the root CA stays alone in its file
    expect(await main(['pki', 'issue', '--ca', 'root', '--cn', 'gw', '--out', 'gw'], t.o)).toBe(0);
    expect(readFileSync(join(dir, 'gw/gw.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(await main(['pki', 'issue', '--ca', 'root', '--cn', 'x', '--dn', 'CN=x'], t.o)).toBe(1);
    expect(t.err.join('')).toMatch(/one of --cn NAME or --dn DN/);
    expect(await main(['pki', 'issue', '--ca', 'root', '--dn', 'FOO=bar'], t.o)).toBe(1);
    expect(t.err.join('')).toMatch(/--dn "FOO=bar": a distinguished name/);
  });

  it('says what is missing in one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-pki-ike-'));
    const t = io(dir);
    expect(await main(['pki', 'issue', '--ca', 'nope', '--cn', 'x'], t.o)).toBe(1);
    expect(t.err.join('')).toMatch(/^vpcgw: .*nope holds no CA/);
    expect(await main(['pki', 'ca', '--out', 'ca', '--type', 'dsa'], t.o)).toBe(1);
    expect(t.err.join('')).toMatch(/--type dsa: one of rsa, ecdsa, ecdsa384, ecdsa521/);
  });
});
