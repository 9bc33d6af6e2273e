import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCrl, issueClientCertificate } from '../../../src/gateway/pki.js';
import { createTlsEngine, type TlsEngine, type TlsSecureInfo } from '../../../src/ssl/control/tls-engine.js';
import { sslServerConfigFrom } from '../../../src/gateway/ssl-server-config.js';
import { silentLogger } from '../../../src/common/log.js';
import { VpnError } from '../../../src/common/errors.js';
import { main } from '../../../src/cli.js';
import { revokeClientCert } from '../../../src/gateway/client-profile.js';
import { ControlServer } from '../../../src/gateway/control.js';
import { controlHandlers } from '../../../src/gateway/run.js';
import { GatewayService } from '../../../src/gateway/service.js';
import { Store } from '../../../src/store/store.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';
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

/** A server and a client TLS engine wired back to back; resolves with what the server saw. */
function handshake(server: { ca: string; crl?: string }, client: { cert: string; key: string }): Promise<TlsSecureInfo> {
  return new Promise((resolve, reject) => {
    let s: TlsEngine | null = null;
    let c: TlsEngine | null = null;
    const done = (f: () => void): void => {
      f();
      queueMicrotask(() => { s?.destroy(); c?.destroy(); });
    };
    s = createTlsEngine({ role: 'server', cert: pki.server.cert, key: pki.server.key, ca: server.ca, crl: server.crl }, {
      onCiphertext: (d) => c?.feedCiphertext(d),
      onPlaintext: () => undefined,
      onSecure: (info) => done(() => resolve(info)),
      onError: (e) => done(() => reject(e)),
    });
    c = createTlsEngine({ role: 'client', cert: client.cert, key: client.key, ca: pki.ca.cert }, {
      onCiphertext: (d) => s?.feedCiphertext(d),
      onPlaintext: () => undefined,
      onSecure: () => undefined,
      onError: () => undefined,
    });
  });
}

describe('the TLS engine with a CRL', () => {
  it('a listed certificate fails with CERT_REVOKED, another one of the same CA verifies', async () => {
    const alice = issueClientCertificate(pki.ca.cert, pki.ca.key, 'alice');
    const bob = issueClientCertificate(pki.ca.cert, pki.ca.key, 'bob');
    const crl = buildCrl(pki.ca.cert, pki.ca.key, [{ serial: new X509Certificate(alice.cert).serialNumber, revokedAtMs: Date.now() }]);
    expect((await handshake({ ca: pki.ca.cert, crl }, alice)).peerVerifyError).toBe('CERT_REVOKED');
    expect(await handshake({ ca: pki.ca.cert, crl }, bob)).toMatchObject({ peerCn: 'bob', peerVerifyError: null });
    expect((await handshake({ ca: pki.ca.cert }, alice)).peerVerifyError).toBeNull();
  });
});

describe('revocation through the service and the control socket', () => {
  let d = '';
  let store: Store;
  let svc: GatewayService;
  let gw: RevokeGateway;
  let srv: ControlServer;

  class RevokeGateway extends FakeGateway {
    online = new Set(['alice']);
    disconnects: [string, string, boolean][] = [];
    disconnectClient(server: string, client: string, halt: boolean): { server: string; client: string; user: string } {
      if (!this.online.delete(client)) throw new VpnError('ERR_NOT_FOUND', `no client "${client}"`);
      this.disconnects.push([server, client, halt]);
      return { server, client: 's1', user: client };
    }
  }

  beforeAll(async () => {
    d = mkdtempSync(join(tmpdir(), 'vpcgw-revoke-'));
    writeFileSync(join(d, 'ca.crt'), pki.ca.cert);
    writeFileSync(join(d, 'ca.key'), pki.ca.key, { mode: 0o600 });
    writeFileSync(join(d, 'server.crt'), pki.server.cert);
    writeFileSync(join(d, 'server.key'), pki.server.key);
    store = Store.open(join(d, 'vpcgw.db'));
    svc = new GatewayService({ store, baseDir: d, log: silentLogger, source: 'test' });
    await svc.applyDocument({
      gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], api: { enabled: false } },
      vpnServers: [{ name: 'p2c', auth: { type: 'cert' }, clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt' }],
    }, d);
    gw = new RevokeGateway(svc.config());
    svc.attach(gw);
    srv = await ControlServer.listen({ path: join(d, 'ctl.sock'), handlers: controlHandlers(svc) });
  });

  afterAll(async () => {
    await srv?.close();
    store?.close();
    rmSync(d, { recursive: true, force: true });
  });

  const cli = async (args: string[]) => {
    let out = '';
    let err = '';
    const code = await main([...args, '--control', join(d, 'ctl.sock')], { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, cwd: d, isRoot: () => false });
    return { code, out, err };
  };

  it('revoke-client USER: the user\'s issued certificates go on ca.crl, the server\'s identity sees it at once, the session ends (HALT)', async () => {
    const profile = await svc.action('vpn-server', 'p2c', 'client-config', {}, { user: 'alice' });
    const aliceCert = /<cert>\n([\s\S]*?)\n<\/cert>/.exec(profile.text!)![1]!;
    const serial = new X509Certificate(aliceCert).serialNumber.toLowerCase();
    const ledger = JSON.parse(readFileSync(join(d, 'ca.issued.json'), 'utf8')) as { certs: { serial: string; user: string }[] };
    expect(ledger.certs).toEqual([expect.objectContaining({ serial, user: 'alice', server: 'p2c' })]);
    expect(JSON.stringify(ledger)).not.toContain('PRIVATE KEY');
    // the identity the SSL server hands to each new session reads the CRL file as it is now
    const identity = sslServerConfigFrom(svc.config().vpnServers[0]!).identity;
    expect(identity.clientCrl).toBe('');
    const r = await cli(['pki', 'revoke-client', 'alice']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`p2c: certificate ${serial} (alice) revoked\np2c: alice disconnected\nCRL: ${join(d, 'ca.crl')}\n`);
    expect(gw.disconnects).toEqual([['p2c', 'alice', true]]);
    expect(identity.clientCrl).toMatch(/^-----BEGIN X509 CRL-----/);
    expect(opensslVerify(aliceCert, readFileSync(join(d, 'ca.crl'), 'utf8'))).toMatchObject({ ok: false });
    // again: still on the list, nobody online to disconnect
    const again = await cli(['pki', 'revoke-client', 'alice', '--json']);
    expect(JSON.parse(again.out)).toMatchObject({ revoked: [{ serial, user: 'alice' }], disconnected: [] });
  });

  it('revoke-client SERIAL: a certificate not issued here; unknown names are ERR_NOT_FOUND; other certificates still verify', async () => {
    const bob = issueClientCertificate(pki.ca.cert, pki.ca.key, 'bob');
    const carol = issueClientCertificate(pki.ca.cert, pki.ca.key, 'carol');
    const bobSerial = new X509Certificate(bob.cert).serialNumber;
    const colons = bobSerial.match(/../g)!.join(':');
    const r = revokeClientCert(svc.config(), 'p2c', colons);
    expect(r.revoked).toEqual([{ serial: bobSerial.toLowerCase().replace(/^0+/, ''), user: '' }]);
    const crl = readFileSync(join(d, 'ca.crl'), 'utf8');
    expect(opensslVerify(bob.cert, crl).ok).toBe(false);
    expect(opensslVerify(carol.cert, crl).ok).toBe(true);
    expect(() => revokeClientCert(svc.config(), 'p2c', 'nobody')).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
    expect((await cli(['pki', 'revoke-client'])).code).toBe(1);
    expect(existsSync(join(d, 'ca.crl.tmp-' + process.pid))).toBe(false);
  });
});
