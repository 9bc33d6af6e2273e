// The API's TLS certificate (src/gateway/api-tls.ts): generated once into <dataDir>/api/ and reused,
// or read from configured files whose errors name the file.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { captureLogger } from '../../../src/common/log.js';
import { generateApiCertificate, loadOrCreateApiCertificate } from '../../../src/gateway/api-tls.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'vpcgw-api-tls-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('loadOrCreateApiCertificate', () => {
  it('generates a self-signed certificate at first start, key 0600, and reuses it after', () => {
    const dataDir = tmp();
    const log = captureLogger();
    const first = loadOrCreateApiCertificate({ dataDir, hosts: ['gw.example', '192.0.2.2'], log });
    expect(statSync(join(dataDir, 'api', 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'api')).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dataDir, 'api', 'cert.pem'), 'utf8')).toBe(first.cert);
    const x = new X509Certificate(first.cert);
    expect(first.fingerprintSha256).toBe(x.fingerprint256);
    expect(first.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(x.checkHost('gw.example')).toBe('gw.example');
    expect(x.checkHost('localhost')).toBe('localhost');
    expect(x.checkIP('192.0.2.2')).toBe('192.0.2.2');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.verify(x.publicKey)).toBe(true);
    const years = (Date.parse(x.validTo) - Date.now()) / (365.25 * 86400_000);
    expect(years).toBeGreaterThan(9.9);
    expect(years).toBeLessThan(10.1);
    expect(JSON.stringify(log.lines)).not.toContain('PRIVATE KEY');

    const again = loadOrCreateApiCertificate({ dataDir, hosts: ['gw.example', '192.0.2.2'], log });
    expect(again).toEqual(first);
    // a host the kept certificate lacks: reused all the same (clients pinned it), with a warning
    const other = loadOrCreateApiCertificate({ dataDir, hosts: ['new.example'], log });
    expect(other.fingerprintSha256).toBe(first.fingerprintSha256);
    expect(log.lines.some((l) => l.level === 'warn' && JSON.stringify(l.obj).includes('new.example'))).toBe(true);
  });

  it('refuses half a pair in the data dir, naming both files', () => {
    const dataDir = tmp();
    loadOrCreateApiCertificate({ dataDir, hosts: [], log: captureLogger() });
    unlinkSync(join(dataDir, 'api', 'key.pem'));
    expect(() => loadOrCreateApiCertificate({ dataDir, hosts: [], log: captureLogger() })).toThrow(/cert\.pem exists but .*key\.pem does not/);
  });

  it('reads configured files; errors name the file', () => {
    const d = tmp();
    const made = generateApiCertificate(['api.example']);
    const certFile = join(d, 'c.pem');
    const keyFile = join(d, 'k.pem');
    writeFileSync(certFile, made.cert);
    writeFileSync(keyFile, made.key);
    const log = captureLogger();
    const r = loadOrCreateApiCertificate({ dataDir: d, certFile, keyFile, hosts: [], log });
    expect(r.cert).toBe(made.cert);
    expect(r.key).toBe(made.key);

    const missing = join(d, 'missing.pem');
    expect(() => loadOrCreateApiCertificate({ dataDir: d, certFile: missing, keyFile, hosts: [], log })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining(missing) }));
    writeFileSync(join(d, 'junk.pem'), 'not a certificate');
    expect(() => loadOrCreateApiCertificate({ dataDir: d, certFile: join(d, 'junk.pem'), keyFile, hosts: [], log })).toThrow(/junk\.pem does not hold a PEM certificate/);
    expect(() => loadOrCreateApiCertificate({ dataDir: d, certFile, keyFile: certFile, hosts: [], log })).toThrow(/c\.pem does not hold .*private key/);
    const otherKey = join(d, 'other.pem');
    writeFileSync(otherKey, generateApiCertificate([]).key);
    expect(() => loadOrCreateApiCertificate({ dataDir: d, certFile, keyFile: otherKey, hosts: [], log })).toThrow(/other\.pem does not belong to the certificate/);
    expect(() => loadOrCreateApiCertificate({ dataDir: d, certFile, hosts: [], log })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });
});
