import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { VpnError } from '../../../src/common/errors.js';
import { GatewayService } from '../../../src/gateway/service.js';
import { clientProfile } from '../../../src/gateway/client-profile.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { ControlServer, controlCall } from '../../../src/gateway/control.js';
import { main } from '../../../src/cli.js';
import { Gateway } from '../../../src/gateway/daemon.js';
import { generateStaticKeyFile, generateTlsCryptV2ServerKeyFile } from '../../../src/gateway/pki.js';
import { Store } from '../../../src/store/store.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';
import { makeTestPki, type TestPki } from '../../helpers/pki.js';
import { FakePlatform } from './daemon-fakes.js';

// The three operator actions as the management service and the control socket reach them: rekey a
// VPN connection, disconnect a VPN client, download a VPN server's client profile (.ovpn).

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-psk-actions-not-secret';

let pki: TestPki;
let dir = '';
let store: Store;
let svc: GatewayService;
let gw: ActionsGateway;

/** The fake running gateway, recording the rekey and disconnect calls it gets. */
class ActionsGateway extends FakeGateway {
  rekeys: [string, string][] = [];
  disconnects: [string, string, boolean][] = [];
  refuse: VpnError | null = null;
  rekey(name: string, which: 'child' | 'ike'): void {
    if (this.refuse) throw this.refuse;
    this.rekeys.push([name, which]);
  }
  disconnectClient(server: string, client: string, halt: boolean): { server: string; client: string; user: string } {
    if (this.refuse) throw this.refuse;
    this.disconnects.push([server, client, halt]);
    return { server, client: 's7', user: client };
  }
}

beforeAll(() => {
  pki = makeTestPki();
});

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-actions-'));
  writeFileSync(join(dir, 'ca.crt'), pki.ca.cert);
  writeFileSync(join(dir, 'server.crt'), pki.server.cert);
  writeFileSync(join(dir, 'server.key'), pki.server.key);
  writeFileSync(join(dir, 'tc.key'), generateStaticKeyFile());
  writeFileSync(join(dir, 'v2.key'), generateTlsCryptV2ServerKeyFile());
  store = Store.open(join(dir, 'vpcgw.db'));
  svc = new GatewayService({ store, baseDir: dir, log: silentLogger, source: 'test' });
  await svc.applyDocument({
    gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], api: { enabled: false } },
    customerGateways: [{ name: 'dc1', address: '192.0.2.1' }],
    vpnConnections: [{ name: 'conn1', customerGateway: 'dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'], auth: { psk: PSK } }],
    vpnServers: [server('p2c')],
  }, dir);
  gw = new ActionsGateway(svc.config());
  svc.attach(gw);
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function server(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name, clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], auth: { type: 'cert' },
    serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt', ...extra,
  };
}

describe('rekey action', () => {
  it('rekeys the CHILD_SAs by default; sa=ike from the query or a JSON body; answers the state', async () => {
    gw.established.add('conn1');
    const id = svc.get('vpn-connection', 'conn1').id;
    expect(await svc.action('vpn-connections', id, 'rekey', {}, undefined)).toEqual({ json: { name: 'conn1', sa: 'child', state: 'ESTABLISHED' } });
    await svc.action('vpn-connection', 'conn1', 'rekey', { sa: 'ike' }, undefined);
    await svc.action('vpn-connection', 'conn1', 'rekey', {}, { sa: 'ike' });
    expect(gw.rekeys).toEqual([['conn1', 'child'], ['conn1', 'ike'], ['conn1', 'ike']]);
  });

  it('refuses a bad sa (400) and passes the gateway\'s ERR_STATE (409) through', async () => {
    await expect(svc.action('vpn-connection', 'conn1', 'rekey', {}, { sa: 'esp' })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    await expect(svc.action('vpn-connection', 'conn1', 'rekey', {}, { sa: 3 })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    gw.refuse = new VpnError('ERR_STATE', 'connection conn1 is not ESTABLISHED: nothing to rekey');
    await expect(svc.action('vpn-connection', 'conn1', 'rekey', {}, undefined)).rejects.toMatchObject({ code: 'ERR_STATE' });
    gw.state = 'stopped';
    await expect(svc.action('vpn-connection', 'conn1', 'rekey', {}, undefined)).rejects.toMatchObject({ code: 'ERR_STATE' });
  });
});

describe('disconnect action', () => {
  it('takes client from the query or the body, halt optional; the server by id or name', async () => {
    const id = svc.get('vpn-server', 'p2c').id;
    expect(await svc.action('vpn-servers', id, 'disconnect', { client: 's3' }, undefined))
      .toEqual({ json: { server: 'p2c', client: 's7', user: 's3', disconnected: true } });
    await svc.action('vpn-server', 'p2c', 'disconnect', {}, { client: 'alice', halt: true });
    await svc.action('vpn-server', 'p2c', 'disconnect', { halt: 'true' }, { client: 'bob' });
    expect(gw.disconnects).toEqual([['p2c', 's3', false], ['p2c', 'alice', true], ['p2c', 'bob', true]]);
  });

  it('400 without a client, 404 for an unknown client (from the gateway) or server', async () => {
    await expect(svc.action('vpn-server', 'p2c', 'disconnect', {}, undefined)).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    await expect(svc.action('vpn-server', 'p2c', 'disconnect', { client: 'x', halt: 'maybe' }, undefined)).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    await expect(svc.action('vpn-server', 'nope', 'disconnect', { client: 'x' }, undefined)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    gw.refuse = new VpnError('ERR_NOT_FOUND', 'no client "x"');
    await expect(svc.action('vpn-server', 'p2c', 'disconnect', { client: 'x' }, undefined)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
  });
});

describe('client-profile action', () => {
  it('a stock-client profile: remote on the public address (wildcard listen), CA inline, ciphers, cert/key placeholders only', async () => {
    const r = await svc.action('vpn-server', 'p2c', 'client-profile', {}, undefined);
    expect(r.filename).toBe('p2c.ovpn');
    const t = r.text!;
    expect(t).toMatch(/^# OpenVPN client profile for VPN server p2c of gateway gw1\nclient\ndev tun\nnobind\nproto udp\nremote 192\.0\.2\.2 1194\nremote-cert-tls server\ndata-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nverb 3\n<ca>\n-----BEGIN CERTIFICATE-----\n/);
    expect(t).toContain(`<ca>\n${pki.ca.cert.replace(/\r\n/g, '\n').trim()}\n</ca>\n`);
    // the client brings its own certificate: only commented blocks, nothing of the server's key
    expect(t).not.toMatch(/^<(cert|key|tls-crypt|tls-auth)>/m);
    expect(t).toMatch(/^#<cert>$/m);
    expect(t).toMatch(/^#<key>$/m);
    expect(t).not.toContain(pki.server.key.split(/\r?\n/)[1]!);
    expect(t).not.toContain('\r');
    // works before the gateway runs: it is built from the stored config
    gw.state = 'stopped';
    expect((await svc.action('vpn-server', 'p2c', 'client-profile', { host: 'vpn.example.com' }, undefined)).text).toContain('remote vpn.example.com 1194\n');
  });

  it('host override is checked; a specific listen address is the remote; tcp+udp gives one remote per protocol', async () => {
    await expect(svc.action('vpn-server', 'p2c', 'client-profile', { host: 'a b\nup /bin/sh' }, undefined)).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    await svc.replace('vpn-server', 'p2c', { listen: '192.0.2.2', protocols: ['udp', 'tcp'], port: 443, dataCiphers: ['AES-128-GCM'] });
    const t = (await svc.action('vpn-server', 'p2c', 'client-profile', {}, undefined)).text!;
    expect(t).toContain('remote 192.0.2.2 443 udp\nremote 192.0.2.2 443 tcp-client\n');
    expect(t).not.toMatch(/^proto /m);
    expect(t).toContain('data-ciphers AES-128-GCM\n');
  });

  it('the tls-crypt / tls-auth key inline as `vpcgw pki profile` writes it; tls-crypt-v2: a new client key per download', () => {
    const base = (extra: string) => parseConfig(`
gateway: { name: gw1, dataDir: ./var, publicAddresses: [198.51.100.7], vpcSubnets: [10.2.0.0/16] }
vpnServers:
  - { name: s1, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], auth: { type: cert }, serverCert: { cert: server.crt, key: server.key }, clientCa: ca.crt${extra} }
`, join(dir, 'vpcgw.yaml'));
    const key = generateStaticKeyFile();
    writeFileSync(join(dir, 'tc.key'), key);
    const tc = clientProfile(base(', tlsCrypt: tc.key'), 's1').text;
    expect(tc).toContain(`remote 198.51.100.7 1194\n`);
    expect(tc).toContain(`</ca>\n<tls-crypt>\n${key.trim()}\n</tls-crypt>\n`);
    const ta = clientProfile(base(', tlsAuth: { key: tc.key, direction: 0, digest: SHA256 }'), 's1').text;
    expect(ta).toContain(`key-direction 1\nauth SHA256\n<tls-auth>\n${key.trim()}\n</tls-auth>\n`);
    const v2 = base(', tlsCryptV2: { serverKey: v2.key }');
    const k1 = /<tls-crypt-v2>\n([\s\S]*?)\n<\/tls-crypt-v2>/.exec(clientProfile(v2, 's1').text)?.[1];
    const k2 = /<tls-crypt-v2>\n([\s\S]*?)\n<\/tls-crypt-v2>/.exec(clientProfile(v2, 's1').text)?.[1];
    expect(k1).toMatch(/BEGIN OpenVPN tls-crypt-v2 client key/);
    expect(k1).not.toBe(k2);
    expect(() => clientProfile(v2, 'nope')).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
  });
});

describe('the control socket reaches the same daemon methods', () => {
  it('rekey: 409 without IKE, 400 for a bad sa, unknown connection named; disconnect: 404 for an unknown server, 409 when not running', async () => {
    const cfg = parseConfig(`
gateway:
  name: gw1
  dataDir: ./var
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: vpcgwt0, mtu: 1380, address: 169.254.0.1/32 }
customerGateways:
  - { name: dc1, address: 192.0.2.1 }
vpnConnections:
  - { name: dc1-main, customerGateway: dc1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.1.0.0/16], auth: { psk: ${PSK} } }
vpnServers:
  - { name: p2c, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], auth: { type: cert }, serverCert: { cert: server.crt, key: server.key }, clientCa: ca.crt }
`, join(dir, 'vpcgw.yaml'));
    const g = new Gateway({ config: cfg, log: silentLogger, platform: new FakePlatform(), dataPlane: null });
    await g.start();
    try {
      await expect(controlCall(g.controlPath, 'rekey', { name: 'dc1-main' })).rejects.toMatchObject({ code: 'ERR_STATE' });
      await expect(controlCall(g.controlPath, 'rekey', { name: 'dc9' })).rejects.toMatchObject({ code: 'ERR_UNKNOWN_CONNECTION' });
      await expect(controlCall(g.controlPath, 'rekey', { name: 'dc1-main', sa: 'esp' })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
      await expect(controlCall(g.controlPath, 'disconnect', { server: 'p2c' })).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
      await expect(controlCall(g.controlPath, 'disconnect', { server: 'nope', client: 'x' })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
      // no data plane here: the VPN servers do not run
      await expect(controlCall(g.controlPath, 'disconnect', { server: 'p2c', client: 'x' })).rejects.toMatchObject({ code: 'ERR_STATE' });
    } finally {
      await g.stop();
    }
  });
});

describe('CLI: vpcgw rekey and vpcgw disconnect', () => {
  it('send the control methods with their parameters and print one line; usage errors exit 1', async () => {
    const calls: unknown[] = [];
    const path = join(dir, 'ctl.sock');
    const srv = await ControlServer.listen({
      path,
      handlers: {
        rekey: (p) => (calls.push(['rekey', p]), { name: 'dc1-main', sa: (p as { sa: string }).sa, state: 'ESTABLISHED' }),
        disconnect: (p) => (calls.push(['disconnect', p]), { server: 'p2c', client: 's4', user: 'alice' }),
      },
    });
    const cli = async (args: string[]) => {
      let out = '';
      let err = '';
      const code = await main([...args, '--control', path], { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, cwd: dir, isRoot: () => false });
      return { code, out, err };
    };
    try {
      expect(await cli(['rekey', 'dc1-main'])).toMatchObject({ code: 0, out: 'dc1-main: CHILD_SAs rekeying (ESTABLISHED)\n' });
      expect(await cli(['rekey', 'dc1-main', '--ike'])).toMatchObject({ code: 0, out: 'dc1-main: IKE SA rekeying (ESTABLISHED)\n' });
      expect(await cli(['disconnect', 'p2c', 'alice'])).toMatchObject({ code: 0, out: 'p2c: client s4 (alice) disconnected\n' });
      expect(await cli(['disconnect', 'p2c', 's4', '--halt'])).toMatchObject({ code: 0 });
      expect(calls).toEqual([
        ['rekey', { name: 'dc1-main', sa: 'child' }],
        ['rekey', { name: 'dc1-main', sa: 'ike' }],
        ['disconnect', { server: 'p2c', client: 'alice', halt: false }],
        ['disconnect', { server: 'p2c', client: 's4', halt: true }],
      ]);
      expect((await cli(['rekey'])).code).toBe(1);
      expect((await cli(['disconnect', 'p2c'])).code).toBe(1);
    } finally {
      await srv.close();
    }
  });
});
