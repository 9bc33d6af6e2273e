// The operator actions through the HTTPS management API of a real `vpcgw start`, against real peers:
//  - rekey: strongSwan 5.9 (the customer gateway, from the README's site-to-cloud example) shows the
//    new CHILD_SA SPIs, then the new IKE SA SPIs, after each API call, and ping still crosses;
//  - disconnect: a real openvpn 2.6 client is dropped (RESTART: it comes back as a new session with
//    a new id; HALT: it exits, leaves `clients`, and its tunnel stops passing ping);
//  - client-profile: the downloaded .ovpn, with a client certificate and key appended, connects the
//    real openvpn client (tls-crypt key inline) and ping crosses.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { NsDaemon } from '../helpers/api.js';
import { ADDR, createTopology, ping, type Topology } from '../helpers/netns.js';
import { LAB, REPO_ROOT, createLab, ensureBuilt, pingOk, startClient, writePem, type Lab } from '../helpers/openvpn.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/proc.js';
import { Charon, type IkeSaInfo } from '../helpers/strongswan.js';
import { generateStaticKeyFile } from '../../src/gateway/pki.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-psk-api-actions-12345';

function readmeBlocks(): { yaml: string; swanctl: string } {
  const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = md.slice(md.indexOf('## Site-to-cloud'), md.indexOf('## Point-to-cloud'));
  const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)];
  const yaml = blocks.find((b) => b[1] === 'yaml')?.[2];
  const swanctl = blocks.find((b) => b[2]!.includes('connections {'))?.[2];
  if (!yaml || !swanctl) throw new Error('README site-to-cloud section lost its YAML or swanctl.conf block');
  return { yaml, swanctl };
}

beforeAll(async () => {
  await ensureBuilt();
}, 240_000);

describe('POST /v1/vpn-connections/{id}/rekey against strongSwan', () => {
  let topo: Topology;
  let d: NsDaemon | null = null;
  let sw: Charon | null = null;

  afterAll(async () => {
    await sw?.stop().catch(() => undefined);
    if (d) await d.stop();
    await topo?.destroy();
  });

  const gwChild = async () => (await d!.status()).connections[0]!.children[0] as { spiIn: string; spiOut: string } | undefined;
  const swSa = async (): Promise<IkeSaInfo | undefined> => (await sw!.listSas()).find((s) => s.state === 'ESTABLISHED');
  const hex = (s: string) => s.replace(/^0x/, '').padStart(8, '0');

  it('the README connection comes up (vpcgw initiates), strongSwan and vpcgw agree on the SPIs', async () => {
    const { yaml, swanctl } = readmeBlocks();
    topo = await createTopology({ tag: 'act' });
    const cfg = parse(yaml) as { gateway: { dataDir: string }; vpnConnections: { auth: { psk: string } }[] };
    cfg.gateway.dataDir = join(topo.workDir, 'var');
    cfg.vpnConnections[0]!.auth.psk = PSK;
    const cfgPath = join(topo.workDir, 'vpcgw.yaml');
    writeFileSync(cfgPath, stringify(cfg), { mode: 0o600 });
    const ns = { name: topo.ns.cloudGw, exec: (cmd: string, args: readonly string[], o?: { timeoutMs?: number; allowFail?: boolean }) => topo.exec('cloudGw', cmd, args, o) };
    d = await NsDaemon.start(ns, { dataDir: cfg.gateway.dataDir, config: cfgPath, label: 'vpcgw-actions', timeoutMs: 30_000 });
    await d.createToken();
    sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: PSK, ikeProposals: 'default', espProposals: 'default', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
    });
    mkdirSync(sw.dir, { recursive: true });
    writeFileSync(sw.swanctlPath, swanctl.replace(/secret = "[^"]*"/, `secret = "${PSK}"`), { mode: 0o600 });
    await sw.loadAll();
    await waitFor(async () => ((await d!.api('GET', '/v1/vpn-connections/dc1-main')).json as { status?: string }).status === 'ACTIVE' || undefined,
      { timeoutMs: 30_000, intervalMs: 300, what: 'dc1-main ACTIVE' }).catch((e: Error) => {
      throw new Error(`${e.message}\n${d!.output().slice(-3000)}\n${sw!.logForDiagnostics().slice(-3000)}`);
    });
    const sas = await sw.waitInstalled(10_000);
    expect(hex((await gwChild())!.spiIn)).toBe(sas[0]!.children[0]!.spiOut);
    expect((await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3 })).received).toBe(3);
  }, 120_000);

  it('rekey (default: the CHILD_SA): strongSwan shows new SPIs both ways, vpcgw agrees, ping crosses', async () => {
    const before = (await swSa())!.children[0]!;
    const r = await d!.api('POST', '/v1/vpn-connections/dc1-main/rekey');
    expect(r.status, r.body).toBe(200);
    expect(r.json).toMatchObject({ name: 'dc1-main', sa: 'child', state: 'ESTABLISHED' });
    const after = await waitFor(async () => {
      const s = await swSa();
      const kids = s?.children.filter((c) => c.state === 'INSTALLED') ?? [];
      return kids.length === 1 && kids[0]!.spiIn !== before.spiIn && kids[0]!.spiOut !== before.spiOut ? kids[0] : undefined;
    }, { timeoutMs: 15_000, intervalMs: 300, what: 'strongSwan with the new CHILD_SA only' });
    await waitFor(async () => hex((await gwChild())?.spiIn ?? '') === after.spiOut || undefined, { timeoutMs: 10_000, intervalMs: 300, what: 'vpcgw status with the new CHILD_SA' });
    expect(hex((await gwChild())!.spiOut)).toBe(after.spiIn);
    const p = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(p.received, p.output).toBe(3);
    expect((await d!.status()).connections[0]).toMatchObject({ childRekeys: 1 });
  }, 60_000);

  it('rekey sa=ike (query) and `vpcgw rekey --ike`: new IKE SA SPIs at strongSwan each time, the CHILD_SA kept, ping crosses', async () => {
    for (const how of ['api', 'cli'] as const) {
      const before = (await swSa())!;
      if (how === 'api') {
        const r = await d!.api('POST', '/v1/vpn-connections/dc1-main/rekey?sa=ike');
        expect(r.status, r.body).toBe(200);
        expect(r.json).toMatchObject({ sa: 'ike' });
      } else {
        const r = await d!.cli(['rekey', 'dc1-main', '--ike']);
        expect(r.stdout).toMatch(/^dc1-main: IKE SA rekeying/);
      }
      const after = await waitFor(async () => {
        const all = await sw!.listSas();
        const s = all.find((x) => x.state === 'ESTABLISHED');
        return all.length === 1 && s && s.spiI !== before.spiI && s.spiR !== before.spiR ? s : undefined;
      }, { timeoutMs: 15_000, intervalMs: 300, what: `strongSwan with the new IKE SA only (${how})` });
      expect(after.children.map((c) => c.spiIn)).toEqual(before.children.map((c) => c.spiIn));
      const p = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 2 });
      expect(p.received, p.output).toBe(2);
    }
    expect((await d!.status()).connections[0]).toMatchObject({ ikeRekeys: 2 });
  }, 60_000);

  it('409 when the connection is not ESTABLISHED, 400 for a bad sa, 404 for an unknown connection', async () => {
    expect((await d!.api('POST', '/v1/vpn-connections/dc1-main/rekey', { sa: 'esp' })).status).toBe(400);
    expect((await d!.api('POST', '/v1/vpn-connections/nope/rekey')).status).toBe(404);
    expect((await d!.api('POST', '/v1/vpn-connections/dc1-main/terminate')).status).toBe(200);
    const r = await d!.api('POST', '/v1/vpn-connections/dc1-main/rekey');
    expect(r.status, r.body).toBe(409);
    expect(r.json).toMatchObject({ error_code: 'ERR_STATE' });
  }, 30_000);
});

describe('vpn-server actions against the real openvpn 2.6 client', () => {
  let lab: Lab;
  let pki: TestPki;
  let d: NsDaemon | null = null;

  beforeAll(async () => {
    pki = makeTestPki();
    lab = await createLab();
    const ca = writePem(lab, 'ca.crt', pki.ca.cert);
    const cert = writePem(lab, 'server.crt', pki.server.cert);
    const key = writePem(lab, 'server.key', pki.server.key);
    const tc = writePem(lab, 'tc.key', generateStaticKeyFile());
    const cfg = join(lab.dir, 'vpcgw.yaml');
    writeFileSync(cfg, `gateway:
  name: p2c-actions
  dataDir: ${lab.dir}/var
  publicAddresses: [${LAB.gwForClient[0]}]
  vpcSubnets: [${LAB.vpcSubnet}]
  tun: { name: ${lab.id}t, mtu: 1500, address: ${LAB.tunAddress} }
vpnServers:
  - name: p2c
    protocols: [udp, tcp]
    port: 1194
    clientCidr: ${LAB.clientCidr}
    localSubnets: [${LAB.vpcSubnet}]
    auth: { type: cert }
    serverCert: { cert: ${cert}, key: ${key} }
    clientCa: ${ca}
    tlsCrypt: ${tc}
`);
    const ns = { name: lab.ns.gw, exec: (cmd: string, args: readonly string[], o?: { timeoutMs?: number; allowFail?: boolean }) => lab.exec(lab.ns.gw, cmd, args, o) };
    d = await NsDaemon.start(ns, { dataDir: join(lab.dir, 'var'), config: cfg, label: 'vpcgw-p2c-actions', timeoutMs: 30_000 });
    await d.createToken();
  }, 120_000);

  afterAll(async () => {
    if (d) await d.stop();
    await lab?.destroy();
  });

  const clients = async () => ((await d!.api('GET', '/v1/vpn-servers/p2c/clients')).json as { clients: { id: string; user: string }[] }).clients;

  it('client-profile: the download plus a client cert and key connects the stock client (tls-crypt inline), ping crosses', async () => {
    const head = await lab.exec(lab.ns.gw, 'curl', ['-sk', '-D', '-', '-o', '/dev/null', '-H', `Authorization: Bearer ${d!.token}`, `${await d!.apiUrl()}/v1/vpn-servers/p2c/client-profile`]);
    expect(head.stdout).toMatch(/^content-type: application\/x-openvpn-profile/im);
    expect(head.stdout).toMatch(/^content-disposition: attachment; filename="p2c\.ovpn"/im);
    const r = await d!.api('GET', '/v1/vpn-servers/p2c/client-profile');
    expect(r.status).toBe(200);
    expect(r.body).toContain(`remote ${LAB.gwForClient[0]} 1194 udp\n`);
    expect(r.body).toContain('<tls-crypt>\n');
    const k = pki.client('profile-user');
    const profile = join(lab.dir, 'p2c.ovpn');
    writeFileSync(profile, `${r.body}<cert>\n${k.cert.trim()}\n</cert>\n<key>\n${k.key.trim()}\n</key>\n`, { mode: 0o600 });
    const logPath = join(lab.dir, 'profile-client.log');
    const c = lab.spawnIn(lab.ns.c1, 'openvpn', ['--config', profile, '--log', logPath, '--connect-retry-max', '3'], 'openvpn profile');
    const log = () => { try { return readFileSync(logPath, 'utf8'); } catch { return ''; } };
    try {
      await waitFor(async () => {
        if (!c.running) throw new Error(`openvpn exited:\n${log().slice(-3000)}`);
        return log().includes('Initialization Sequence Completed');
      }, { timeoutMs: 30_000, intervalMs: 200, what: 'openvpn with the downloaded profile' });
      const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
      expect(p.received, p.out).toBe(3);
      expect((await clients()).map((x) => x.user)).toEqual(['profile-user']);
    } finally {
      await c.stop('SIGTERM', 5000);
    }
    // a UDP client that exits without explicit-exit-notify stays listed until its ping-restart: drop it
    expect((await d!.api('POST', '/v1/vpn-servers/p2c/disconnect', { client: 'profile-user' })).status).toBe(200);
    expect(await clients()).toEqual([]);
  }, 90_000);

  it('disconnect: RESTART brings the client back as a new session (new id); HALT makes it exit, it leaves clients and ping stops', async () => {
    const k = pki.client('dis-user');
    const tc = join(lab.dir, 'tc.key');
    const c = startClient(lab, lab.ns.c1, {
      proto: 'udp', remote: LAB.gwForClient[0], ca: join(lab.dir, 'ca.crt'), cert: writePem(lab, 'dis.crt', k.cert), key: writePem(lab, 'dis.key', k.key),
      extra: ['--tls-crypt', tc, '--connect-retry-max', '10'],
    }, 'client-dis');
    try {
      await c.waitConnected();
      expect((await pingOk(lab, lab.ns.c1, LAB.vpcHost, 2)).received).toBe(2);
      const [first] = await clients();
      expect(first).toMatchObject({ user: 'dis-user', id: expect.stringMatching(/^s\d+$/) });

      expect((await d!.api('POST', '/v1/vpn-servers/p2c/disconnect', { client: 'nobody' })).status).toBe(404);
      expect((await d!.api('POST', '/v1/vpn-servers/p2c/disconnect')).status).toBe(400);

      // RESTART (default): the stock client reconnects by itself, as a new session
      const r1 = await d!.api('POST', `/v1/vpn-servers/p2c/disconnect?client=${first!.id}`);
      expect(r1.status, r1.body).toBe(200);
      expect(r1.json).toMatchObject({ server: 'p2c', client: first!.id, user: 'dis-user', disconnected: true });
      const second = await waitFor(async () => {
        const l = await clients();
        return l.length === 1 && l[0]!.id !== first!.id ? l[0] : undefined;
      }, { timeoutMs: 30_000, intervalMs: 300, what: 'the client back with a new session id' }).catch((e: Error) => {
        throw new Error(`${e.message}\n--- client log ---\n${c.log().slice(-3000)}`);
      });
      expect(c.log()).toMatch(/SIGUSR1\[soft,server-pushed-connection-reset\]/);
      await waitFor(async () => (await pingOk(lab, lab.ns.c1, LAB.vpcHost, 1)).received === 1 || undefined,
        { timeoutMs: 20_000, intervalMs: 300, what: 'ping after the reconnect' });

      // HALT, by user name through the CLI: the client exits
      const r2 = await d!.cli(['disconnect', 'p2c', 'dis-user', '--halt']);
      expect(r2.stdout).toBe(`p2c: client ${second!.id} (dis-user) disconnected\n`);
      await waitFor(async () => !c.proc.running || undefined, { timeoutMs: 15_000, intervalMs: 200, what: 'openvpn to exit on HALT' }).catch((e: Error) => {
        throw new Error(`${e.message}\n--- client log ---\n${c.log().slice(-3000)}`);
      });
      expect(c.log()).toMatch(/server-pushed-halt/);
      expect(await clients()).toEqual([]);
      expect((await pingOk(lab, lab.ns.c1, LAB.vpcHost, 1)).received).toBe(0);
    } finally {
      await c.stop();
    }
  }, 120_000);

  it('disconnect over TCP: HALT reaches the client before its connection is closed; it exits', async () => {
    const k = pki.client('tcp-user');
    const c = startClient(lab, lab.ns.c1, {
      proto: 'tcp', remote: LAB.gwForClient[0], ca: join(lab.dir, 'ca.crt'), cert: writePem(lab, 'tcpu.crt', k.cert), key: writePem(lab, 'tcpu.key', k.key),
      extra: ['--tls-crypt', join(lab.dir, 'tc.key')],
    }, 'client-tcp-dis');
    try {
      await c.waitConnected();
      const r = await d!.api('POST', '/v1/vpn-servers/p2c/disconnect', { client: 'tcp-user', halt: true });
      expect(r.status, r.body).toBe(200);
      await waitFor(async () => !c.proc.running || undefined, { timeoutMs: 15_000, intervalMs: 200, what: 'openvpn (tcp) to exit on HALT' }).catch((e: Error) => {
        throw new Error(`${e.message}\n--- client log ---\n${c.log().slice(-3000)}`);
      });
      expect(c.log()).toMatch(/server-pushed-halt/);
      expect(await clients()).toEqual([]);
    } finally {
      await c.stop();
    }
  }, 60_000);
});
