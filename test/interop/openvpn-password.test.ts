// Username/password logins against `vpcgw start` (the real daemon) with the real openvpn 2.6 client
// (--auth-user-pass, --auth-retry none): a server with auth type password (no client certificate)
// and one with cert+password; users from the config file (stored as scrypt hashes), a disabled
// user, and a user created through the HTTPS management API while the daemon runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { hashPassword } from '../../src/gateway/users.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, OpenVpnClient, createLab, labGatewayYaml, labServerYaml, startLabDaemon, ensureBuilt, pingOk, writePem, writeServerPki, type Lab } from '../helpers/openvpn.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';

const CLI = join(REPO_ROOT, 'dist/cli.js');
// TEST FIXTURES ONLY: not real passwords.
const ALICE_PW = 'alice-fixture-password';
const WRONG_PW = 'wrong-fixture-password';
const FRANK_PW = 'frank-fixture-password';
const CERT_PW_PORT = 1195;
const CERT_PW_CIDR = '10.9.0.0/24';

let lab: Lab;
let pki: TestPki;
let daemon: ManagedProcess;
let control: string;
let ca: string;
let alice: OpenVpnClient | null = null;

interface ServerStatus {
  name: string;
  state: string;
  authFailures: number;
  sessions?: { user: string; virtualAddress: string | null; connectedSince: string }[];
}

async function cli(args: string[]): Promise<string> {
  return (await lab.exec(lab.ns.gw, process.execPath, [CLI, ...args, '--control', control], { timeoutMs: 30_000 })).stdout;
}

async function servers(): Promise<ServerStatus[]> {
  return (JSON.parse(await cli(['status', '--json'])) as { vpnServers: ServerStatus[] }).vpnServers;
}

/** openvpn --client with --auth-user-pass (and a certificate only when given). */
function client(ns: string, name: string, o: { proto: 'udp' | 'tcp'; port: number; user: string; password: string; cert?: { cert: string; key: string } }): OpenVpnClient {
  const tag = randomBytes(3).toString('hex');
  const logPath = join(lab.dir, `${name}-${tag}.log`);
  const authFile = writePem(lab, `${name}-${tag}.auth`, `${o.user}\n${o.password}\n`);
  const remote = ns === lab.ns.c1 ? LAB.gwForClient[0] : LAB.gwForClient[1];
  const args = [
    '--client', '--dev', 'tun', '--proto', o.proto === 'udp' ? 'udp' : 'tcp-client',
    '--remote', remote, String(o.port), '--nobind',
    '--ca', ca, ...(o.cert ? ['--cert', o.cert.cert, '--key', o.cert.key] : []), '--remote-cert-tls', 'server',
    '--auth-user-pass', authFile, '--auth-retry', 'none',
    '--verb', '4', '--log', logPath, '--connect-retry', '1', '--connect-retry-max', '3',
  ];
  return new OpenVpnClient(lab.spawnIn(ns, 'openvpn', args, `openvpn ${name}`), logPath);
}

/** The client was refused: openvpn prints the AUTH_FAILED control message and exits by itself. */
async function expectAuthFailed(c: OpenVpnClient): Promise<void> {
  await waitFor(async () => !c.proc.running, { timeoutMs: 30_000, intervalMs: 200, what: 'openvpn to exit after AUTH_FAILED' }).catch((e: Error) => {
    throw new Error(`${e.message}\n--- client log ---\n${c.log().slice(-3000)}`);
  });
  expect(c.log()).toContain('AUTH: Received control message: AUTH_FAILED');
  expect(c.log()).not.toContain('Initialization Sequence Completed');
}

beforeAll(async () => {
  await ensureBuilt();
  pki = makeTestPki();
  lab = await createLab();
  const files = writeServerPki(lab, pki);
  ca = files.ca;
  control = join(lab.dir, 'vpcgw.sock');
  const aliceHash = await hashPassword(ALICE_PW);
    ({ daemon, control } = await startLabDaemon(lab, `${labGatewayYaml(lab, 'p2c-password')}vpnServers:
${labServerYaml(files, { name: 'pw', protocols: ['udp', 'tcp'], auth: 'password' })}${labServerYaml(files, { name: 'cp', port: CERT_PW_PORT, clientCidr: CERT_PW_CIDR, auth: 'cert+password' })}userGroups:
  - { name: eng }
users:
  - { name: alice, passwordHash: "${aliceHash}", groups: [eng] }
  - { name: dave, passwordHash: "${aliceHash}", disabled: true }
  - { name: erin, passwordHash: "${aliceHash}", servers: [cp] }
`));
}, 240_000);

afterAll(async () => {
  if (alice) await alice.stop();
  if (daemon?.running) {
    const r = await daemon.stop('SIGTERM', 8000);
    expect(r.killed, 'vpcgw exits on SIGTERM by itself').toBe(false);
  }
  await lab?.destroy();
});

describe('vpcgw start: SSL VPN users with passwords ↔ openvpn 2.6 --auth-user-pass', () => {
  it('auth password: a client without a certificate logs in with its password and reaches the VPC', async () => {
    alice = client(lab.ns.c1, 'alice', { proto: 'udp', port: 1194, user: 'alice', password: ALICE_PW });
    await alice.waitConnected();
    const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
    expect(p.received, p.out).toBe(3);
    const pw = (await servers()).find((s) => s.name === 'pw')!;
    expect(pw.sessions?.filter((s) => s.virtualAddress).map((s) => s.user)).toEqual(['alice']);
  }, 90_000);

  it('a wrong password: AUTH_FAILED, the client exits; one log line with user and source, never the password; counted', async () => {
    const before = (await servers()).find((s) => s.name === 'pw')!.authFailures;
    const c = client(lab.ns.c2, 'wrong', { proto: 'tcp', port: 1194, user: 'alice', password: WRONG_PW });
    await expectAuthFailed(c);
    const out = daemon.output();
    const line = out.split('\n').find((l) => l.includes('password authentication failed') && l.includes(LAB.client[1]));
    expect(line, out.slice(-3000)).toBeDefined();
    expect(line).toContain('alice');
    expect(line).toContain('wrong password');
    expect(out).not.toContain(WRONG_PW);
    expect(out).not.toContain(ALICE_PW);
    await waitFor(async () => (await servers()).find((s) => s.name === 'pw')!.authFailures > before, { timeoutMs: 15_000, intervalMs: 200, what: 'authFailures to count it' });
  }, 90_000);

  it('a disabled user (right password) is refused', async () => {
    const c = client(lab.ns.c2, 'dave', { proto: 'udp', port: 1194, user: 'dave', password: ALICE_PW });
    await expectAuthFailed(c);
    expect(daemon.output()).toMatch(/dave[^\n]*user disabled|user disabled[^\n]*dave/);
  }, 90_000);

  it('a user created through the API while the daemon runs connects at once; the connected client stays up', async () => {
    const sinceBefore = (await servers()).find((s) => s.name === 'pw')!.sessions!.find((s) => s.user === 'alice')!.connectedSince;
    const token = (await cli(['token', 'create'])).trim();
    const st = JSON.parse(await cli(['status', '--json'])) as { gateway: { api?: { url?: string } } };
    const url = st.gateway.api!.url!;
    const r = await lab.exec(lab.ns.gw, 'curl', [
      '-sk', '--max-time', '30', '-o', '-', '-w', '\n%{http_code}', '-X', 'POST', '-H', `Authorization: Bearer ${token}`,
      '-H', 'content-type: application/json', '--data-binary', JSON.stringify({ name: 'frank', password: FRANK_PW }), `${url}/v1/users`,
    ], { timeoutMs: 35_000 });
    expect(r.stdout.trim().endsWith('201') || r.stdout.trim().endsWith('200'), r.stdout).toBe(true);
    expect(r.stdout).not.toContain(FRANK_PW);
    expect(r.stdout).not.toContain('passwordHash');
    const frank = client(lab.ns.c2, 'frank', { proto: 'tcp', port: 1194, user: 'frank', password: FRANK_PW });
    try {
      await frank.waitConnected();
      const p2 = await pingOk(lab, lab.ns.c2, LAB.vpcHost, 3);
      expect(p2.received, p2.out).toBe(3);
      // alice's session was not touched by the change
      const pw = (await servers()).find((s) => s.name === 'pw')!;
      expect(pw.sessions!.filter((s) => s.virtualAddress).map((s) => s.user).sort()).toEqual(['alice', 'frank']);
      expect(pw.sessions!.find((s) => s.user === 'alice')!.connectedSince).toBe(sinceBefore);
      const p1 = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
      expect(p1.received, p1.out).toBe(3);
      expect(alice!.proc.running).toBe(true);
      expect(alice!.log()).not.toMatch(/SIGUSR1|Restart pause/);
    } finally {
      await frank.stop();
    }
    expect((await cli(['user', 'list'])).split('\n').some((l) => l.startsWith('frank'))).toBe(true);
  }, 120_000);

  it('cert+password: certificate and password both required', async () => {
    const k = pki.client('erin-cert');
    const certs = { cert: writePem(lab, 'erin.crt', k.cert), key: writePem(lab, 'erin.key', k.key) };
    const bad = client(lab.ns.c2, 'erin-bad', { proto: 'udp', port: CERT_PW_PORT, user: 'erin', password: WRONG_PW, cert: certs });
    await expectAuthFailed(bad);
    const erin = client(lab.ns.c2, 'erin', { proto: 'udp', port: CERT_PW_PORT, user: 'erin', password: ALICE_PW, cert: certs });
    try {
      await erin.waitConnected();
      const p = await pingOk(lab, lab.ns.c2, LAB.vpcHost, 3);
      expect(p.received, p.out).toBe(3);
      const cp = (await servers()).find((s) => s.name === 'cp')!;
      expect(cp.sessions!.filter((s) => s.virtualAddress).map((s) => s.user)).toEqual(['erin']);
    } finally {
      await erin.stop();
    }
    // erin may use cp only
    const other = client(lab.ns.c2, 'erin-pw', { proto: 'udp', port: 1194, user: 'erin', password: ALICE_PW });
    await expectAuthFailed(other);
  }, 120_000);
});
