// The README path for point-to-cloud: `vpcgw start --config` with a vpnServers entry (the real daemon,
// not a test runner), and a plain `openvpn --client` (the real 2.6 binary) over UDP and over TCP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, createLab, labGatewayYaml, startLabDaemon, ensureBuilt, pingOk, startClient, writePem, type Lab } from '../helpers/openvpn.js';
import { run, waitFor, type ManagedProcess } from '../helpers/proc.js';

const CLI = join(REPO_ROOT, 'dist/cli.js');
let lab: Lab;
let pki: TestPki;
let daemon: ManagedProcess;
let control: string;
let ca: string;

interface StatusDoc {
  gateway: { dataPlane: string };
  vpnServers: { name: string; state: string; clients: number; sessions?: { user: string; virtualAddress: string | null; realAddress: string; protocol: string; bytesIn: number; bytesOut: number }[] }[];
}

async function status(): Promise<StatusDoc> {
  const r = await lab.exec(lab.ns.gw, process.execPath, [CLI, 'status', '--json', '--control', control], { timeoutMs: 15_000 });
  return JSON.parse(r.stdout) as StatusDoc;
}

beforeAll(async () => {
  await ensureBuilt();
  pki = makeTestPki();
  lab = await createLab();
  ca = writePem(lab, 'ca.crt', pki.ca.cert);
  const cert = writePem(lab, 'server.crt', pki.server.cert);
  const key = writePem(lab, 'server.key', pki.server.key);
  control = join(lab.dir, 'vpcgw.sock');
    ({ daemon, control } = await startLabDaemon(lab, `${labGatewayYaml(lab, 'p2c-test')}vpnServers:
  - name: p2c
    protocols: [udp, tcp]
    port: 1194
    listen: 0.0.0.0
    clientCidr: ${LAB.clientCidr}
    localSubnets: [${LAB.vpcSubnet}]
    dnsServers: [10.2.0.53]
    dataCiphers: [AES-256-GCM, AES-128-GCM, CHACHA20-POLY1305]
    auth: { type: cert }
    serverCert: { cert: ${cert}, key: ${key} }
    clientCa: ${ca}
    maxConnections: 10
`));
}, 240_000);

afterAll(async () => {
  if (daemon?.running) {
    const r = await daemon.stop('SIGTERM', 8000);
    expect(r.killed, 'vpcgw exits on SIGTERM by itself').toBe(false);
  }
  await lab?.destroy();
});

describe('vpcgw start with a vpnServers entry ↔ openvpn 2.6 client', () => {
  for (const proto of ['udp', 'tcp'] as const) {
    it(`${proto}: openvpn --client connects, reaches the VPC host, and vpcgw status lists the client`, async () => {
      const k = pki.client(`user-${proto}`);
      const c = startClient(
        lab,
        lab.ns.c1,
        { proto, remote: LAB.gwForClient[0], ca, cert: writePem(lab, `${proto}.crt`, k.cert), key: writePem(lab, `${proto}.key`, k.key) },
        `client-${proto}`,
      );
      try {
        await c.waitConnected();
        expect(c.pushReply()).toMatch(/ifconfig 10\.8\.0\.\d+ 255\.255\.255\.0/);
        expect(c.pushReply()).toContain('route 10.2.0.0 255.255.0.0');
        const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
        expect(p.received, p.out).toBe(3);
        const st = await status();
        expect(st.gateway.dataPlane).toBe(process.env.VPCGW_DATAPLANE === 'ts' ? 'typescript' : 'native');
        const server = st.vpnServers.find((s) => s.name === 'p2c')!;
        expect(server.state).toBe('LISTENING');
        const session = server.sessions?.find((s) => s.user === `user-${proto}`);
        expect(session, JSON.stringify(server)).toBeDefined();
        expect(session!.protocol).toBe(proto);
        expect(session!.virtualAddress).toMatch(/^10\.8\.0\.\d+$/);
        expect(session!.realAddress.startsWith(`${LAB.client[0]}:`)).toBe(true);
        expect(session!.bytesIn).toBeGreaterThan(0);
        expect(session!.bytesOut).toBeGreaterThan(0);
      } finally {
        await c.stop();
      }
    }, 90_000);
  }

  it('the control CLI works against the daemon (plain status)', async () => {
    const r = await run('ip', ['netns', 'exec', lab.ns.gw, process.execPath, CLI, 'status', '--control', control], { timeoutMs: 15_000 });
    expect(r.stdout).toMatch(/p2c: LISTENING/);
  });
});

describe('the README quick start: vpcgw start with no config, then the generated client1.ovpn', () => {
  it('serves the generated profile to the real openvpn client', async () => {
    const { readFileSync: read, writeFileSync: write } = await import('node:fs');
    // stop the daemon of the other suite first: both would bind UDP/TCP 1194 in the same namespace
    if (daemon?.running) await daemon.stop('SIGTERM', 8000);
    const dataDir = join(lab.dir, 'quickstart-var');
    const gw = lab.spawnIn(lab.ns.gw, 'env', [`VPCGW_DATA_DIR=${dataDir}`, process.execPath, CLI, 'start'], 'vpcgw quick start');
    try {
      await waitFor(
        async () => {
          if (!gw.running) throw new Error(`vpcgw exited: ${gw.output().slice(-2000)}`);
          return gw.output().includes('client1.ovpn');
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'vpcgw start (default config)' },
      );
      const profile = join(dataDir, 'pki', 'client1.ovpn');
      write(profile, read(profile, 'utf8').replace(/^remote \S+ 1194 /gm, `remote ${LAB.gwForClient[0]} 1194 `));
      const logPath = join(lab.dir, 'quickstart-client.log');
      const c = lab.spawnIn(lab.ns.c1, 'openvpn', ['--config', profile, '--log', logPath, '--connect-retry-max', '3'], 'openvpn quickstart');
      try {
        await waitFor(
          async () => {
            const log = (() => { try { return read(logPath, 'utf8'); } catch { return ''; } })();
            if (!c.running) throw new Error(`openvpn exited:\n${log.slice(-3000)}`);
            return log.includes('Initialization Sequence Completed');
          },
          { timeoutMs: 30_000, intervalMs: 200, what: 'openvpn with the generated profile' },
        );
        // the gateway's own tunnel-side address is not configured by default; the VPC host is reachable
        // only when it lies in the default vpcSubnets, so check the session in status instead
        const r = await lab.exec(lab.ns.gw, process.execPath, [CLI, 'status', '--json', '--control', join(dataDir, 'vpcgw.sock')], { timeoutMs: 15_000 });
        const st = JSON.parse(r.stdout) as StatusDoc;
        expect(st.vpnServers[0]!.sessions?.map((s) => s.user)).toEqual(['client1']);
      } finally {
        await c.stop('SIGTERM', 5000);
      }
    } finally {
      const r = await gw.stop('SIGTERM', 8000);
      expect(r.killed, 'vpcgw exits on SIGTERM by itself').toBe(false);
    }
  }, 120_000);
});
