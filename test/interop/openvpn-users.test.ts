// SSL VPN users against `vpcgw start` (the real daemon) and the real openvpn 2.6 client:
//  - the README's "a new user in three commands" block, run as written (user add, client-config to
//    a file, the user's openvpn command): the client connects and reaches the VPC;
//  - a user's static address is the address the client gets;
//  - a second login of the same user replaces the first (that client is told HALT with the reason
//    and exits), or with onExtraSession refuse is turned away with AUTH_FAILED and the reason;
//  - disabling or removing a user through the CLI ends their live session at once.
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/gateway/users.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, OpenVpnClient, createLab, ensureBuilt, labGatewayYaml, labServerYaml, pingOk, startLabDaemon, writePem, writeServerPki, type Lab } from '../helpers/openvpn.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';

const CLI = join(REPO_ROOT, 'dist/cli.js');
// TEST FIXTURES ONLY: not real passwords.
const PASSWORD = 'users-fixture-password';
const STATIC_BOB = '10.8.0.77';
const REFUSE_PORT = 1195;
const REFUSE_CIDR = '10.9.0.0/24';

let lab: Lab;
let pki: TestPki;
let daemon: ManagedProcess;
let control: string;
let ca: string;
const started: OpenVpnClient[] = [];

interface Session { user: string; virtualAddress: string | null }

async function cli(args: string[]): Promise<string> {
  return (await lab.exec(lab.ns.gw, process.execPath, [CLI, ...args, '--control', control], { timeoutMs: 30_000 })).stdout;
}

async function sessions(server: string): Promise<Session[]> {
  const st = JSON.parse(await cli(['status', '--json'])) as { vpnServers: { name: string; sessions?: Session[] }[] };
  return (st.vpnServers.find((s) => s.name === server)?.sessions ?? []).filter((s) => s.virtualAddress);
}

/** openvpn --client with --auth-user-pass from namespace `ns` (c1 or c2). */
function client(ns: string, name: string, o: { port: number; user: string }): OpenVpnClient {
  const tag = randomBytes(3).toString('hex');
  const logPath = join(lab.dir, `${name}-${tag}.log`);
  const authFile = writePem(lab, `${name}-${tag}.auth`, `${o.user}\n${PASSWORD}\n`);
  const remote = ns === lab.ns.c1 ? LAB.gwForClient[0] : LAB.gwForClient[1];
  const args = [
    '--client', '--dev', 'tun', '--proto', 'udp', '--remote', remote, String(o.port), '--nobind',
    '--ca', ca, '--remote-cert-tls', 'server', '--auth-user-pass', authFile, '--auth-retry', 'none',
    '--verb', '4', '--log', logPath, '--connect-retry', '1', '--connect-retry-max', '3',
  ];
  const c = new OpenVpnClient(lab.spawnIn(ns, 'openvpn', args, `openvpn ${name}`), logPath);
  started.push(c);
  return c;
}

async function exited(c: OpenVpnClient, what: string): Promise<void> {
  await waitFor(async () => !c.proc.running, { timeoutMs: 20_000, intervalMs: 200, what }).catch((e: Error) => {
    throw new Error(`${e.message}\n--- client log ---\n${c.log().slice(-3000)}`);
  });
}

beforeAll(async () => {
  await ensureBuilt();
  pki = makeTestPki();
  lab = await createLab();
  const files = writeServerPki(lab, pki);
  ca = files.ca;
  const hash = await hashPassword(PASSWORD);
  ({ daemon, control } = await startLabDaemon(lab, `${labGatewayYaml(lab, 'p2c-users')}vpnServers:
${labServerYaml(files, { auth: 'password', clientCa: true })}${labServerYaml(files, { name: 'one', port: REFUSE_PORT, clientCidr: REFUSE_CIDR, auth: 'password', extra: ['onExtraSession: refuse'] })}users:
  - { name: bob, passwordHash: "${hash}", servers: [p2c], staticAddress: ${STATIC_BOB} }
  - { name: carol, passwordHash: "${hash}", servers: [one] }
  - { name: dave, passwordHash: "${hash}" }
  - { name: erin, passwordHash: "${hash}" }
`));
}, 240_000);

afterAll(async () => {
  for (const c of started) await c.stop();
  if (daemon?.running) {
    const r = await daemon.stop('SIGTERM', 8000);
    expect(r.killed, 'vpcgw exits on SIGTERM by itself').toBe(false);
  }
  await lab?.destroy();
});

describe('vpcgw start: SSL VPN users ↔ openvpn 2.6', () => {
  it('README: an administrator adds a user and hands over a profile in three commands; the user connects with it', async () => {
    const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const section = md.slice(md.indexOf('### A new user in three commands'));
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block, 'README lost its three-command block').toBeDefined();
    const lines = block!.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/vpcgw user add alice --password-stdin/);
    expect(lines[1]).toMatch(/vpcgw client-config alice .*> alice\.ovpn$/);
    expect(lines[2]).toMatch(/^sudo openvpn --config alice\.ovpn/);
    // the administrator's two commands, on the gateway
    const admin = [
      'set -e',
      `cd ${lab.dir}`,
      'sudo() { "$@"; }',
      `vpcgw() { ${process.execPath} ${CLI} "$@" --control ${control}; }`,
      ...lines.slice(0, 2),
    ].join('\n');
    const r = await lab.exec(lab.ns.gw, 'env', [`PASSWORD=${PASSWORD}`, 'sh', '-c', admin], { timeoutMs: 60_000 });
    expect(r.stdout + r.stderr).toContain('user alice: created');
    const profile = readFileSync(join(lab.dir, 'alice.ovpn'), 'utf8');
    expect(profile).toMatch(/^auth-user-pass$/m);
    expect(profile).toContain(`remote ${LAB.gwForClient[0]} 1194`);
    // the user's command, on their machine, with their name and password in alice.pass
    writeFileSync(join(lab.dir, 'alice.pass'), `alice\n${PASSWORD}\n`, { mode: 0o600 });
    const user = lab.spawnIn(lab.ns.c1, 'sh', ['-c', `sudo() { exec "$@"; }\ncd ${lab.dir}\n${lines[2]}`], 'openvpn alice (README)');
    try {
      await waitFor(async () => {
        if (!user.running) throw new Error(`openvpn exited:\n${user.output().slice(-3000)}`);
        return user.output().includes('Initialization Sequence Completed');
      }, { timeoutMs: 30_000, intervalMs: 200, what: 'the README client to connect' });
      const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
      expect(p.received, p.out).toBe(3);
      expect((await sessions('p2c')).map((s) => s.user)).toEqual(['alice']);
    } finally {
      await user.stop('SIGTERM', 5000);
    }
  }, 90_000);

  it('a static address: bob always gets his; a second login replaces the first, which is told HALT and exits', async () => {
    const first = client(lab.ns.c1, 'bob1', { port: 1194, user: 'bob' });
    await first.waitConnected();
    expect(first.pushReply()).toContain(`ifconfig ${STATIC_BOB} 255.255.255.0`);
    expect((await pingOk(lab, lab.ns.c1, LAB.vpcHost, 2)).received).toBe(2);
    const second = client(lab.ns.c2, 'bob2', { port: 1194, user: 'bob' });
    await second.waitConnected();
    expect(second.pushReply()).toContain(`ifconfig ${STATIC_BOB} 255.255.255.0`);
    await exited(first, 'the replaced client to exit');
    expect(first.log()).toContain('replaced by a new connection of the same user');
    expect(first.log()).toMatch(/HALT/i);
    const p = await pingOk(lab, lab.ns.c2, LAB.vpcHost, 3);
    expect(p.received, p.out).toBe(3);
    expect((await sessions('p2c')).filter((s) => s.user === 'bob').map((s) => s.virtualAddress)).toEqual([STATIC_BOB]);
    await second.stop();
  }, 90_000);

  it('onExtraSession refuse: a second login of carol gets AUTH_FAILED with the reason; the first stays up', async () => {
    const first = client(lab.ns.c1, 'carol1', { port: REFUSE_PORT, user: 'carol' });
    await first.waitConnected();
    const second = client(lab.ns.c2, 'carol2', { port: REFUSE_PORT, user: 'carol' });
    await exited(second, 'the refused client to exit');
    expect(second.log()).toMatch(/AUTH_FAILED,session limit reached/);
    expect(second.log()).not.toContain('Initialization Sequence Completed');
    expect(first.proc.running).toBe(true);
    const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
    expect(p.received, p.out).toBe(3);
    expect((await sessions('one')).map((s) => s.user)).toEqual(['carol']);
    await first.stop();
  }, 90_000);

  it('disabling or removing a user ends their live session at once: the client is told (HALT, the reason) and exits', async () => {
    const dave = client(lab.ns.c1, 'dave', { port: 1194, user: 'dave' });
    await dave.waitConnected();
    expect((await pingOk(lab, lab.ns.c1, LAB.vpcHost, 2)).received).toBe(2);
    expect(await cli(['user', 'disable', 'dave'])).toContain('dave');
    await exited(dave, 'the disabled user\'s client to exit');
    expect(dave.log()).toContain('user disabled');
    await waitFor(async () => !(await sessions('p2c')).some((s) => s.user === 'dave'), { timeoutMs: 5000, intervalMs: 200, what: 'dave gone from status' });
    // removing a user does the same
    const erin = client(lab.ns.c2, 'erin', { port: 1194, user: 'erin' });
    await erin.waitConnected();
    expect(await cli(['user', 'remove', 'erin'])).toContain('erin');
    await exited(erin, 'the removed user\'s client to exit');
    expect(erin.log()).toContain('user removed');
    expect((await sessions('p2c')).map((s) => s.user)).not.toContain('erin');
    expect(daemon.output()).not.toContain(PASSWORD);
  }, 90_000);
});
