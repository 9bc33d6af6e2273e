import { describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDefaultConfig, ensureDefaultPki } from '../../../src/gateway/default-config.js';
import { loadConfigFile } from '../../../src/gateway/config/index.js';

describe('default config with a generated SSL VPN PKI', () => {
  it('creates a CA, server and client certificates, a .ovpn profile, and a config that loads', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-pki-'));
    const { path, created } = ensureDefaultConfig(join(dir, 'var'));
    expect(created).toBe(true);
    const pki = join(dir, 'var', 'pki');
    const ca = new X509Certificate(readFileSync(join(pki, 'ca.crt')));
    const server = new X509Certificate(readFileSync(join(pki, 'server.crt')));
    const client = new X509Certificate(readFileSync(join(pki, 'client1.crt')));
    expect(ca.ca).toBe(true);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(client.checkIssued(ca) && client.verify(ca.publicKey)).toBe(true);
    // OpenVPN clients with remote-cert-tls server require EKU serverAuth on the server certificate
    expect(server.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
    expect(client.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    expect(client.subject).toContain('CN=client1');
    for (const k of ['ca.key', 'server.key', 'client1.key', 'client1.ovpn']) expect(statSync(join(pki, k)).mode & 0o077).toBe(0);
    const ovpn = readFileSync(join(pki, 'client1.ovpn'), 'utf8');
    expect(ovpn).toMatch(/^client$/m);
    // the server listens on UDP and TCP: one remote line each, UDP first
    expect(ovpn).toMatch(/^remote \S+ 1194 udp\nremote \S+ 1194 tcp-client$/m);
    expect(ovpn).toMatch(/^data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305$/m);
    expect(ovpn).toContain('<ca>\n-----BEGIN CERTIFICATE-----');
    expect(ovpn).toContain('<key>\n-----BEGIN PRIVATE KEY-----');
    const cfg = loadConfigFile(path);
    expect(cfg.vpnServers).toHaveLength(1);
    expect(cfg.vpnServers[0]!.serverCert.cert).toBe(join(pki, 'server.crt'));
  });

  it('never overwrites an existing PKI; the profile dials the host it was given', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-pki-'));
    ensureDefaultPki(dir);
    const before = readFileSync(join(dir, 'ca.crt'), 'utf8');
    ensureDefaultPki(dir);
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(before);
    const d = mkdtempSync(join(tmpdir(), 'vpcgw-pki-'));
    ensureDefaultConfig(join(d, 'var'), '192.0.2.9');
    expect(readFileSync(join(d, 'var', 'pki', 'client1.ovpn'), 'utf8')).toMatch(/^remote 192\.0\.2\.9 1194 udp$/m);
  });
});
