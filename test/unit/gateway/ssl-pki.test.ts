// `vpcgw pki`: tls-crypt / tls-auth keys in OpenVPN's static key format, and the client profile
// with the server's key inline.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, type CliIo } from '../../../src/cli.js';
import { ensureDefaultConfig } from '../../../src/gateway/default-config.js';
import { profileTlsWrapLines } from '../../../src/gateway/pki.js';
import { parseStaticKey, parseTlsCryptV2ClientKey, parseTlsCryptV2ServerKey, unwrapClientKey } from '../../../src/ssl/wire/tls-wrap.js';

function io(cwd: string): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), env: { VPCGW_DATA_DIR: join(cwd, 'var') }, cwd, isRoot: () => false };
}

describe('vpcgw pki', () => {
  it('tls-crypt / tls-auth write a new 2048-bit static key (0600) and never overwrite one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-pki-'));
    const a = io(dir);
    expect(await main(['pki', 'tls-crypt', 'tc.key'], a)).toBe(0);
    const key = parseStaticKey(readFileSync(join(dir, 'tc.key'), 'utf8'), 'tc.key');
    expect(key).toHaveLength(256);
    expect(statSync(join(dir, 'tc.key')).mode & 0o777).toBe(0o600);
    expect(await main(['pki', 'tls-crypt', 'tc.key'], a)).toBe(1);
    expect(a.err.join('')).toMatch(/exists; not overwriting/);
    expect(await main(['pki', 'tls-auth', 'ta.key'], a)).toBe(0);
    expect(parseStaticKey(readFileSync(join(dir, 'ta.key'), 'utf8'), 'ta.key')).not.toEqual(key);
    expect(await main(['pki', 'nonsense'], a)).toBe(1);
  });

  it('profile rewrites client1.ovpn with the tls-crypt key inline, keeping its remote host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-pki-'));
    const d = ensureDefaultConfig(join(dir, 'var'));
    const a = io(dir);
    expect(await main(['pki', 'tls-crypt', 'var/pki/tc.key'], a)).toBe(0);
    const yaml = readFileSync(d.path, 'utf8');
    expect(yaml).toMatch(/^ {4}clientCa: pki\/ca\.crt$/m);
    writeFileSync(d.path, yaml.replace(/^( {4}clientCa: pki\/ca\.crt)$/m, '$1\n    tlsCrypt: pki/tc.key'));
    const before = readFileSync(join(dir, 'var/pki/client1.ovpn'), 'utf8');
    writeFileSync(join(dir, 'var/pki/client1.ovpn'), before.replace(/^remote \S+/gm, 'remote vpn.example.com'));
    expect(await main(['pki', 'profile', '--config', d.path], a)).toBe(0);
    const prof = readFileSync(join(dir, 'var/pki/client1.ovpn'), 'utf8');
    expect(prof).toMatch(/^remote vpn\.example\.com 1194 udp$/m);
    expect(prof).toContain('<tls-crypt>\n#\n# 2048 bit OpenVPN static key');
    expect(prof).toContain(readFileSync(join(dir, 'var/pki/tc.key'), 'utf8').trim());
    expect(prof).toContain('<cert>');
  }, 60_000);

  it('tls-crypt-v2-server / -client write keys whose client key the server key unwraps', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-pki-'));
    const a = io(dir);
    expect(await main(['pki', 'tls-crypt-v2-server', 's.key'], a)).toBe(0);
    expect(await main(['pki', 'tls-crypt-v2-client', 's.key', 'c.key'], a)).toBe(0);
    expect(await main(['pki', 'tls-crypt-v2-client', 's.key', 'c.key'], a)).toBe(1);
    const sk = parseTlsCryptV2ServerKey(readFileSync(join(dir, 's.key'), 'utf8'), 's');
    const ck = parseTlsCryptV2ClientKey(readFileSync(join(dir, 'c.key'), 'utf8'), 'c');
    expect(unwrapClientKey(sk, ck.wkc)?.kc).toEqual(ck.kc);
    expect(statSync(join(dir, 'c.key')).mode & 0o777).toBe(0o600);
    expect(profileTlsWrapLines({ tlsCryptV2: { serverKey: 's.key' } }, () => '', 'CLIENTKEY\n')).toBe('<tls-crypt-v2>\nCLIENTKEY\n</tls-crypt-v2>\n');
  });

  it('the tls-auth part gives the client the other key direction and a non-default digest', () => {
    const lines = profileTlsWrapLines({ tlsAuth: { key: 'k', direction: 0, digest: 'SHA256' } }, () => 'KEY\n');
    expect(lines).toBe('key-direction 1\nauth SHA256\n<tls-auth>\nKEY\n</tls-auth>\n');
    expect(profileTlsWrapLines({}, () => 'x')).toBe('');
  });
});
