// A gateway with two public addresses on two interfaces, listening on the wildcard address, and a
// peer that reaches the second address (B) through the interface that holds the first (A). The
// route back to the peer leaves through A's interface, whose preferred source is A; replies must
// still come from B, the address the peer sent to (src/native/io/pktinfo.h). strongSwan drops IKE
// responses and ESP from another address than the one it talks to, and the OpenVPN client rejects
// datagrams from another address than its `remote` ("Incoming packet rejected").
//
//   IKE:     siteGw 192.0.2.1 --out0--> cloudGw out0 192.0.2.2 (A),  pub1 198.51.100.2 (B)
//            siteGw: 198.51.100.2/32 via 192.0.2.2; strongSwan targets B; vpcgw on 0.0.0.0
//   SSL VPN: c1 10.99.1.2 --> gw 10.99.1.1 (A, c1's link), 10.99.2.1 (B, c2's link)
//            c1: 10.99.2.1/32 via 10.99.1.1; openvpn --remote B; vpcgw listen 0.0.0.0
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDR, createTopology, IFACE, parseEspLines, startCapture, waitForPing, type Topology } from '../helpers/netns.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, createLab, ensureBuilt, pingOk, startClient, writePem, type Lab } from '../helpers/openvpn.js';
import { Charon } from '../helpers/strongswan.js';
import { s2cConfig, startVpcgw, type Vpcgw } from '../helpers/vpcgw.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';
import { TEST_PSK } from '../helpers/scenario.js';

const B = '198.51.100.2';

function charonLog(c: Charon): string {
  try {
    return readFileSync(c.logPath, 'utf8').slice(-3000);
  } catch {
    return '';
  }
}

/** `IP a.b.c.d.port > e.f.g.h.port: ...` lines of a tcpdump capture as [src, srcPort]. */
function udpSources(lines: readonly string[]): { src: string; port: number; line: string }[] {
  const out: { src: string; port: number; line: string }[] = [];
  const re = /IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > /;
  for (const line of lines) {
    const m = re.exec(line);
    if (m) out.push({ src: m[1]!, port: Number(m[2]), line });
  }
  return out;
}

describe('IKE and ESP answer from the address strongSwan targets (wildcard publicAddresses)', () => {
  let topo: Topology;
  let gw: Vpcgw | undefined;
  let charon: Charon | undefined;

  beforeAll(async () => {
    await ensureBuilt();
    topo = await createTopology({ tag: 'mh' });
    // address B on a second interface of the cloud gateway (a veth whose peer stays there too)
    await topo.exec('cloudGw', 'ip', ['link', 'add', 'pub1', 'type', 'veth', 'peer', 'name', 'pub1p']);
    await topo.exec('cloudGw', 'ip', ['addr', 'add', `${B}/24`, 'dev', 'pub1']);
    await topo.exec('cloudGw', 'ip', ['link', 'set', 'pub1', 'up']);
    await topo.exec('cloudGw', 'ip', ['link', 'set', 'pub1p', 'up']);
    // the site reaches B through the link that holds A
    await topo.exec('siteGw', 'ip', ['route', 'add', `${B}/32`, 'via', ADDR.cloudGwOutside, 'dev', IFACE.siteGwOutside]);
  }, 60_000);

  afterAll(async () => {
    if (gw) {
      const r = await gw.stop();
      expect(r.killed, 'vpcgw exits on SIGTERM by itself').toBe(false);
    }
    await charon?.stop();
    await topo?.destroy();
  });

  it('strongSwan establishes with vpcgw on B, ESP flows both ways, every reply leaves from B', async () => {
    gw = await startVpcgw(
      topo,
      'cloudGw',
      s2cConfig({
        gatewayName: 'cloud',
        dataDir: join(topo.workDir, 'cloud-var'),
        publicAddress: '0.0.0.0',
        peerAddress: ADDR.siteGwOutside,
        localId: B,
        peerId: ADDR.siteGwOutside,
        localSubnets: [ADDR.vpcSubnet],
        remoteSubnets: [ADDR.siteSubnet],
        psk: TEST_PSK,
        ikeProposals: 'aes128gcm16-prfsha256-x25519',
        espProposals: 'aes128gcm16',
        startAction: 'none',
        tunName: `${topo.id}t`,
      }),
    );
    charon = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside,
      remoteAddr: B,
      localId: ADDR.siteGwOutside,
      remoteId: B,
      psk: TEST_PSK,
      ikeProposals: 'aes128gcm16-prfsha256-x25519',
      espProposals: 'aes128gcm16',
      localTs: ADDR.siteSubnet,
      remoteTs: ADDR.vpcSubnet,
    });
    const cap = await startCapture(topo, 'cloudGw', IFACE.cloudGwOutside, ['udp'], 400);
    await charon.swanctl(['--initiate', '--child', charon.childName, '--timeout', '15'], { timeoutMs: 20_000, allowFail: true });
    try {
      await charon.waitInstalled(20_000);
      await gw.waitInstalled(10_000);
      await waitForPing(topo, 'siteHost', ADDR.vpcHost, 10_000);
      await waitForPing(topo, 'vpcHost', ADDR.siteHost, 10_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- vpcgw ---\n${gw.output().slice(-3000)}\n--- charon ---\n${charonLog(charon)}`);
    }
    // the IKE SA knows the address it was reached on (not the wildcard it is bound to)
    expect(gw.output()).toMatch(/established between 198\.51\.100\.2:\d+ and 192\.0\.2\.1:\d+/);
    const lines = await cap.stop();
    const fromGw = udpSources(lines).filter((x) => x.src !== ADDR.siteGwOutside);
    expect(fromGw.length, lines.join('\n')).toBeGreaterThan(0);
    expect(fromGw.filter((x) => x.src !== B).map((x) => x.line), 'datagrams from the gateway not from B').toEqual([]);
    const esp = parseEspLines(lines);
    expect(esp.some((p) => p.src === B && p.dst === ADDR.siteGwOutside), 'ESP from B').toBe(true);
    expect(esp.some((p) => p.src === ADDR.siteGwOutside && p.dst === B), 'ESP to B').toBe(true);
  }, 90_000);
});

describe('the SSL VPN over UDP answers from the address the openvpn client targets (listen 0.0.0.0)', () => {
  let lab: Lab;
  let pki: TestPki;
  let daemon: ManagedProcess | undefined;

  beforeAll(async () => {
    await ensureBuilt();
    pki = makeTestPki();
    lab = await createLab();
    // client 1 reaches the gateway's address on client 2's link through its own link
    await lab.exec(lab.ns.c1, 'ip', ['route', 'add', `${LAB.gwForClient[1]}/32`, 'via', LAB.gwForClient[0]]);
    const ca = writePem(lab, 'ca.crt', pki.ca.cert);
    const cert = writePem(lab, 'server.crt', pki.server.cert);
    const key = writePem(lab, 'server.key', pki.server.key);
    const cfg = join(lab.dir, 'vpcgw.yaml');
    writeFileSync(
      cfg,
      `gateway:
  name: p2c-multihome
  dataDir: ${lab.dir}/var
  publicAddresses: [${LAB.gwForClient[0]}]
  vpcSubnets: [${LAB.vpcSubnet}]
  tun: { name: ${lab.id}t, mtu: 1500, address: ${LAB.tunAddress} }
vpnServers:
  - name: p2c
    protocols: [udp]
    port: 1194
    listen: 0.0.0.0
    clientCidr: ${LAB.clientCidr}
    localSubnets: [${LAB.vpcSubnet}]
    dataCiphers: [AES-256-GCM, AES-128-GCM, CHACHA20-POLY1305]
    auth: { type: cert }
    serverCert: { cert: ${cert}, key: ${key} }
    clientCa: ${ca}
    maxConnections: 10
`,
    );
    const cli = join(REPO_ROOT, 'dist/cli.js');
    const d = lab.spawnIn(lab.ns.gw, process.execPath, [cli, 'start', '--config', cfg, '--control', join(lab.dir, 'vpcgw.sock')], 'vpcgw start');
    daemon = d;
    await waitFor(
      async () => {
        if (!d.running) throw new Error(`vpcgw exited: ${d.output().slice(-2000)}`);
        return d.output().includes('is running');
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'vpcgw start' },
    );
  }, 120_000);

  afterAll(async () => {
    if (daemon?.running) {
      const r = await daemon.stop('SIGTERM', 8000);
      expect(r.killed, 'vpcgw exits on SIGTERM by itself').toBe(false);
    }
    await lab?.destroy();
  });

  it('openvpn 2.6 connects to B over A\'s link and pings the VPC host; the gateway answers from B', async () => {
    const k = pki.client('user-mh');
    const ca = join(lab.dir, 'ca.crt');
    const capture = lab.spawnIn(lab.ns.gw, 'tcpdump', ['-n', '-l', '--immediate-mode', '-i', `${lab.id}a`, '-c', '400', 'udp', 'port', '1194'], 'tcpdump');
    await waitFor(async () => capture.output().includes('listening on'), { timeoutMs: 5000, intervalMs: 50, what: 'tcpdump to listen' });
    const c = startClient(
      lab,
      lab.ns.c1,
      { proto: 'udp', remote: LAB.gwForClient[1], ca, cert: writePem(lab, 'mh.crt', k.cert), key: writePem(lab, 'mh.key', k.key) },
      'client-mh',
    );
    try {
      await c.waitConnected();
      const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
      expect(p.received, p.out).toBe(3);
      expect(c.log()).not.toMatch(/Incoming packet rejected/);
    } finally {
      await c.stop();
      await new Promise((r) => setTimeout(r, 200));
      await capture.stop('SIGINT', 3000);
    }
    const fromGw = udpSources(capture.output().split('\n')).filter((x) => x.port === 1194);
    expect(fromGw.length, capture.output()).toBeGreaterThan(0);
    expect(fromGw.filter((x) => x.src !== LAB.gwForClient[1]).map((x) => x.line), 'datagrams from the gateway not from B').toEqual([]);
  }, 90_000);
});
