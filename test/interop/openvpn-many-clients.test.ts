// 50 concurrent openvpn 2.6 clients against `vpcgw start`, all passing traffic: 25 clients in each of
// the lab's two client namespaces, each with its own TUN (tun<N>) and without pulled routes, so every
// client's ping leaves through its own tunnel (ping -I tun<N>: the namespaces have no default route,
// so the kernel takes the bound device as on-link). 50 password users log in at once; every one
// gets its own address, and the VPC host answers each of them.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/gateway/users.js';
import { makeTestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, OpenVpnClient, createLab, ensureBuilt, labGatewayYaml, labServerYaml, startLabDaemon, writePem, writeServerPki, type Lab } from '../helpers/openvpn.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';

const CLI = join(REPO_ROOT, 'dist/cli.js');
// TEST FIXTURE ONLY: not a real password.
const PASSWORD = 'many-clients-fixture-password';
const CLIENTS = 50;
/** pings in flight at once (the machine has 2 cores) */
const PING_BATCH = 10;

let lab: Lab;
let daemon: ManagedProcess;
let control: string;
let ca: string;
const clients: { c: OpenVpnClient; ns: string; dev: string; user: string }[] = [];

const userOf = (i: number): string => `u${String(i + 1).padStart(2, '0')}`;

beforeAll(async () => {
  await ensureBuilt();
  const pki = makeTestPki();
  lab = await createLab();
  const files = writeServerPki(lab, pki);
  ca = files.ca;
  const hash = await hashPassword(PASSWORD);
  const users = Array.from({ length: CLIENTS }, (_, i) => `  - { name: ${userOf(i)}, passwordHash: "${hash}" }`).join('\n');
  ({ daemon, control } = await startLabDaemon(lab, `${labGatewayYaml(lab, 'p2c-many')}vpnServers:
${labServerYaml(files, { auth: 'password', extra: ['maxConnections: 64', 'limits: { maxHalfOpen: 64, maxHalfOpenPerSource: 32 }'] })}users:
${users}
`));
}, 240_000);

afterAll(async () => {
  await Promise.all(clients.map((x) => x.c.stop()));
  if (daemon?.running) await daemon.stop('SIGTERM', 8000);
  await lab?.destroy();
});

describe('50 concurrent openvpn clients', () => {
  it('all connect, each gets its own address, and every one of them reaches the VPC host', async () => {
    for (let i = 0; i < CLIENTS; i++) {
      const ns = i % 2 === 0 ? lab.ns.c1 : lab.ns.c2;
      const remote = i % 2 === 0 ? LAB.gwForClient[0] : LAB.gwForClient[1];
      const dev = `tun${i}`;
      const user = userOf(i);
      const logPath = join(lab.dir, `${user}-${randomBytes(2).toString('hex')}.log`);
      const auth = writePem(lab, `${user}.auth`, `${user}\n${PASSWORD}\n`);
      const args = [
        '--client', '--dev', dev, '--dev-type', 'tun', '--proto', 'udp', '--remote', remote, '1194', '--nobind',
        '--ca', ca, '--remote-cert-tls', 'server', '--auth-user-pass', auth, '--auth-retry', 'none',
        '--route-nopull', '--verb', '3', '--log', logPath, '--connect-retry', '1', '--connect-retry-max', '10',
      ];
      clients.push({ c: new OpenVpnClient(lab.spawnIn(ns, 'openvpn', args, `openvpn ${user}`), logPath), ns, dev, user });
    }
    await waitFor(async () => {
      const dead = clients.find((x) => !x.c.proc.running);
      if (dead) throw new Error(`openvpn ${dead.user} exited:\n${dead.c.log().slice(-2000)}`);
      return clients.every((x) => x.c.log().includes('Initialization Sequence Completed'));
    }, { timeoutMs: 45_000, intervalMs: 500, what: `${CLIENTS} clients to connect` }).catch((e: Error) => {
      const late = clients.filter((x) => !x.c.log().includes('Initialization Sequence Completed')).map((x) => x.user);
      throw new Error(`${e.message}; not connected: ${late.join(' ')}\n${late[0] ? clients.find((x) => x.user === late[0])!.c.log().slice(-2000) : ''}`);
    });

    const st = JSON.parse((await lab.exec(lab.ns.gw, process.execPath, [CLI, 'status', '--json', '--control', control], { timeoutMs: 30_000 })).stdout) as {
      vpnServers: { name: string; sessions: { user: string; virtualAddress: string | null }[] }[];
    };
    const online = st.vpnServers[0]!.sessions.filter((s) => s.virtualAddress);
    expect(online).toHaveLength(CLIENTS);
    expect(new Set(online.map((s) => s.virtualAddress)).size).toBe(CLIENTS);
    expect(new Set(online.map((s) => s.user)).size).toBe(CLIENTS);

    // every client's own tunnel carries a ping, PING_BATCH at a time; one retry for a lost first packet
    const failed: string[] = [];
    for (let i = 0; i < clients.length; i += PING_BATCH) {
      await Promise.all(clients.slice(i, i + PING_BATCH).map(async (x) => {
        const r = await lab.exec(x.ns, 'ping', ['-c', '2', '-i', '0.3', '-W', '2', '-I', x.dev, LAB.vpcHost], { timeoutMs: 10_000, allowFail: true });
        const got = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
        if (got === 0) failed.push(`${x.user}: ${r.stdout.trim().split('\n').at(-2) ?? ''} ${r.stderr.trim()}`);
      }));
    }
    expect(failed, failed.join('\n')).toEqual([]);
  }, 90_000);
});
