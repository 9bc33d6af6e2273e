import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { main } from '../../../src/cli.js';
import { clientCaKeyPath, clientConfig } from '../../../src/gateway/client-profile.js';
import { ControlServer } from '../../../src/gateway/control.js';
import { issueClientCertificate } from '../../../src/gateway/pki.js';
import { controlHandlers } from '../../../src/gateway/run.js';
import { GatewayService } from '../../../src/gateway/service.js';
import type { GatewayStatus, VpnClientStatus } from '../../../src/gateway/status.js';
import { Store } from '../../../src/store/store.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';
import { makeTestPki, type TestPki } from '../../helpers/pki.js';

// `vpcgw clients`, `vpcgw client-config USER`, `vpcgw pki issue-client` and the client-config
// action, through the real service and control handlers over a control socket.

let pki: TestPki;
let dir = '';
let store: Store;
let svc: GatewayService;
let gw: ClientsGateway;
let srv: ControlServer;
let ctl = '';

const ALICE: VpnClientStatus = {
  id: 's3', user: 'alice', protocol: 'udp', realAddress: '198.51.100.9:40001', virtualAddress: '10.8.0.2', state: 'ESTABLISHED',
  cipher: 'AES-256-GCM', bytesIn: 1234, bytesOut: 5678, packetsIn: 10, packetsOut: 12, connectedSince: '2026-01-02T03:04:05.000Z',
};

class ClientsGateway extends FakeGateway {
  sessions: Record<string, VpnClientStatus[]> = { p2c: [ALICE], pw: [] };
  override status(): GatewayStatus {
    const st = super.status();
    return { ...st, vpnServers: Object.entries(this.sessions).map(([name, sessions]) => ({ name, sessions })) as unknown as GatewayStatus['vpnServers'] };
  }
}

beforeAll(() => {
  pki = makeTestPki();
});

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-clients-'));
  writeFileSync(join(dir, 'ca.crt'), pki.ca.cert);
  writeFileSync(join(dir, 'ca.key'), pki.ca.key, { mode: 0o600 });
  writeFileSync(join(dir, 'server.crt'), pki.server.cert);
  writeFileSync(join(dir, 'server.key'), pki.server.key);
  store = Store.open(join(dir, 'vpcgw.db'));
  svc = new GatewayService({ store, baseDir: dir, log: silentLogger, source: 'test' });
  const base = { clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt' };
  await svc.applyDocument({
    gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], api: { enabled: false } },
    vpnServers: [
      { name: 'p2c', auth: { type: 'cert' }, ...base },
      { name: 'pw', auth: { type: 'password' }, port: 1195, ...base, clientCidr: '10.9.0.0/24' },
    ],
  }, dir);
  gw = new ClientsGateway(svc.config());
  svc.attach(gw);
  ctl = join(dir, 'ctl.sock');
  srv = await ControlServer.listen({ path: ctl, handlers: controlHandlers(svc) });
});

afterEach(async () => {
  await srv.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main([...args, '--control', ctl], { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, cwd: dir, isRoot: () => false });
  return { code, out, err };
}

/** The <cert> and <key> blocks of a profile. */
function inline(text: string): { cert: string; key: string } {
  const cert = /^<cert>\n([\s\S]*?)\n<\/cert>$/m.exec(text)?.[1];
  const key = /^<key>\n([\s\S]*?)\n<\/key>$/m.exec(text)?.[1];
  if (!cert || !key) throw new Error(`no inline cert/key in:\n${text}`);
  return { cert, key };
}

function checkIssued(certPem: string, keyPem: string, cn: string): X509Certificate {
  const x = new X509Certificate(certPem);
  expect(x.subject).toContain(`CN=${cn}`);
  expect(x.verify(new X509Certificate(pki.ca.cert).publicKey)).toBe(true);
  expect(x.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
  expect(x.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // EKU clientAuth
  expect(x.ca).toBe(false);
  return x;
}

describe('vpcgw clients', () => {
  it('a table of every server\'s online clients; SERVER narrows it; --json gives the rows', async () => {
    const all = await cli(['clients']);
    expect(all.code, all.err).toBe(0);
    const lines = all.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SERVER\s+USER\s+REAL ADDRESS\s+VIRTUAL\s+BYTES IN\s+BYTES OUT\s+SINCE\s+ID$/);
    expect(lines[1]).toMatch(/^p2c\s+alice\s+198\.51\.100\.9:40001\s+10\.8\.0\.2\s+1234\s+5678\s+2026-01-02T03:04:05\.000Z\s+s3$/);
    expect(lines).toHaveLength(2);
    expect((await cli(['clients', 'pw'])).out).toBe('(no clients online)\n');
    const j = await cli(['clients', 'p2c', '--json']);
    expect(JSON.parse(j.out)).toEqual([{ server: 'p2c', ...ALICE }]);
    const bad = await cli(['clients', 'nope']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^vpcgw: .*nope/);
  });
});

describe('client-config', () => {
  it('cert server: the client profile with a certificate issued now for USER (CN, clientAuth, by the CA) and its key inline', async () => {
    const r = await cli(['client-config', 'alice', '--server', 'p2c', '--host', 'vpn.example.com']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^# OpenVPN client profile for VPN server p2c/);
    expect(r.out).toContain('remote vpn.example.com 1194\n');
    expect(r.out).toContain(`<ca>\n${pki.ca.cert.replace(/\r\n/g, '\n').trim()}\n</ca>\n`);
    expect(r.out).not.toMatch(/^#<cert>/m);
    expect(r.out).not.toContain('auth-user-pass');
    const { cert, key } = inline(r.out);
    checkIssued(cert, key, 'alice');
    // never the CA's key
    expect(r.out).not.toContain(pki.ca.key.split(/\r?\n/)[1]!);
    // a new key every time: nothing is kept
    const again = inline((await cli(['client-config', 'alice', '--server', 'p2c'])).out);
    expect(again.key).not.toBe(key);
  });

  it('password server: the profile with auth-user-pass and no certificate; --server is needed with several servers', async () => {
    const r = await cli(['client-config', 'bob', '--server', 'pw']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('auth-user-pass\n');
    expect(r.out).not.toMatch(/<cert>|<key>/);
    const none = await cli(['client-config', 'bob']);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/several VPN servers \(p2c, pw\): pick one with --server/);
  });

  it('the API action: POST client-config with { user } returns the same kind of profile, named USER.ovpn', async () => {
    const r = await svc.action('vpn-server', 'p2c', 'client-config', {}, { user: 'carol' });
    expect(r.filename).toBe('carol.ovpn');
    const { cert, key } = inline(r.text!);
    checkIssued(cert, key, 'carol');
    await expect(svc.action('vpn-server', 'p2c', 'client-config', {}, {})).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    await expect(svc.action('vpn-server', 'p2c', 'client-config', {}, { user: '../etc/x' })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    await expect(svc.action('vpn-server', 'p2c', 'client-config', {}, { user: 'a\nup /bin/sh' })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
  });

  it('without the CA key beside clientCa: ERR_STATE, not a profile without a certificate', async () => {
    const cfg = svc.config();
    expect(clientCaKeyPath(cfg.vpnServers[0]!)).toBe(join(dir, 'ca.key'));
    unlinkSync(join(dir, 'ca.key'));
    expect(clientCaKeyPath(cfg.vpnServers[0]!)).toBeNull();
    expect(() => clientConfig(cfg, 'p2c', 'alice')).toThrow(expect.objectContaining({ code: 'ERR_STATE' }));
    const r = await cli(['client-config', 'alice', '--server', 'p2c']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/does not hold the CA key/);
  });

  it('issueClientCertificate picks the CA certificate that matches the key, and refuses a key of no certificate', () => {
    const bundle = `${pki.foreignCa.cert}\n${pki.ca.cert}`;
    const c = issueClientCertificate(bundle, pki.ca.key, 'dave');
    checkIssued(c.cert, c.key, 'dave');
    expect(() => issueClientCertificate(pki.ca.cert, pki.foreignCa.key, 'dave')).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_KEY' }));
  });
});

describe('vpcgw pki issue-client', () => {
  it('writes USER.crt and USER.key (0600) into --out, never overwrites', async () => {
    const r = await cli(['pki', 'issue-client', 'erin', '--server', 'p2c', '--out', '.']);
    expect(r.code, r.err).toBe(0);
    const crt = join(dir, 'erin.crt');
    const key = join(dir, 'erin.key');
    checkIssued(readFileSync(crt, 'utf8'), readFileSync(key, 'utf8'), 'erin');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(statSync(crt).mode & 0o777).toBe(0o600);
    const again = await cli(['pki', 'issue-client', 'erin', '--server', 'p2c', '--out', '.']);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/exists; not overwriting/);
    expect((await cli(['pki', 'issue-client', 'erin', '--server', 'p2c'])).err).toMatch(/needs --out DIR/);
    expect((await cli(['pki', 'issue-client', 'frank', '--server', 'pw', '--out', '.'])).err).toMatch(/passwords only/);
  });
});
