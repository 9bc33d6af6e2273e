// SSL VPN user groups and access policies against `vpcgw start` and the real openvpn 2.6 client. The
// VPC has two subnets (the VPC host answers on 10.2.0.10 and 10.3.0.10); the group eng may reach
// 10.2.0.0/16 only:
//  - alice (eng): 10.2.0.10 answers, 10.3.0.10 does not, and the data path counts the drop
//    (policy counters in `vpcgw status --json`: an `aclDenied` count);
//  - carol (no group) on a server with defaultAccess allow reaches both;
//  - bob (no group) on a server with defaultAccess deny reaches neither;
//  - a policy added through the CLI's `apply` takes effect for alice's live session.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/gateway/users.js';
import { makeTestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, OpenVpnClient, createLab, ensureBuilt, labGatewayYaml, labServerYaml, pingOk, startLabDaemon, writePem, writeServerPki, type Lab } from '../helpers/openvpn.js';
import { type ManagedProcess } from '../helpers/proc.js';

const CLI = join(REPO_ROOT, 'dist/cli.js');
// TEST FIXTURE ONLY: not a real password.
const PASSWORD = 'groups-fixture-password';
const SECOND_SUBNET = '10.3.0.0/16';
const SECOND_HOST = '10.3.0.10';
const DENY_PORT = 1195;
const DENY_CIDR = '10.9.0.0/24';

let lab: Lab;
let daemon: ManagedProcess;
let control: string;
let ca: string;
let configYaml = '';
const started: OpenVpnClient[] = [];

async function cli(args: string[]): Promise<string> {
  return (await lab.exec(lab.ns.gw, process.execPath, [CLI, ...args, '--control', control], { timeoutMs: 30_000 })).stdout;
}

/**
 * The aclDenied drops the status reports: every number under a key named aclDenied, wherever the
 * data plane's policy counters appear in `vpcgw status --json` (a total, or counts per origin).
 */
async function aclDenied(): Promise<number> {
  const sum = (v: unknown, counting: boolean): number => {
    if (typeof v === 'number') return counting ? v : 0;
    if (Array.isArray(v)) return v.reduce((n: number, x) => n + sum(x, counting), 0);
    if (v && typeof v === 'object') {
      return Object.entries(v).reduce((n, [k, x]) => n + sum(x, counting || k === 'aclDenied'), 0);
    }
    return 0;
  };
  const st = JSON.parse(await cli(['status', '--json'])) as unknown;
  // the per-origin breakdown repeats the total when both are there: take the largest single figure
  const figures: number[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'aclDenied') figures.push(sum(x, true));
        else walk(x);
      }
    }
  };
  walk(st);
  return figures.length ? Math.max(...figures) : -1;
}

function client(ns: string, name: string, port: number, user: string): OpenVpnClient {
  const tag = randomBytes(3).toString('hex');
  const logPath = join(lab.dir, `${name}-${tag}.log`);
  const authFile = writePem(lab, `${name}-${tag}.auth`, `${user}\n${PASSWORD}\n`);
  const remote = ns === lab.ns.c1 ? LAB.gwForClient[0] : LAB.gwForClient[1];
  const args = [
    '--client', '--dev', 'tun', '--proto', 'udp', '--remote', remote, String(port), '--nobind',
    '--ca', ca, '--remote-cert-tls', 'server', '--auth-user-pass', authFile, '--auth-retry', 'none',
    '--verb', '4', '--log', logPath, '--connect-retry', '1', '--connect-retry-max', '3',
  ];
  const c = new OpenVpnClient(lab.spawnIn(ns, 'openvpn', args, `openvpn ${name}`), logPath);
  started.push(c);
  return c;
}

beforeAll(async () => {
  await ensureBuilt();
  const pki = makeTestPki();
  lab = await createLab();
  // a second VPC subnet behind the same host
  await lab.exec(lab.ns.vpc, 'ip', ['addr', 'add', `${SECOND_HOST}/32`, 'dev', 'lo']);
  await lab.exec(lab.ns.gw, 'ip', ['route', 'add', SECOND_SUBNET, 'via', LAB.vpcHost]);
  const files = writeServerPki(lab, pki);
  ca = files.ca;
  const hash = await hashPassword(PASSWORD);
  const gw = labGatewayYaml(lab, 'p2c-groups').replace(`vpcSubnets: [${LAB.vpcSubnet}]`, `vpcSubnets: [${LAB.vpcSubnet}, ${SECOND_SUBNET}]`);
  const subnets = [LAB.vpcSubnet, SECOND_SUBNET];
  configYaml = `${gw}vpnServers:
${labServerYaml(files, { localSubnets: subnets, auth: 'password' })}${labServerYaml(files, { name: 'strict', port: DENY_PORT, clientCidr: DENY_CIDR, localSubnets: subnets, auth: 'password', extra: ['defaultAccess: deny'] })}userGroups:
  - { name: eng, description: engineers }
users:
  - { name: alice, passwordHash: "${hash}", groups: [eng] }
  - { name: bob, passwordHash: "${hash}" }
  - { name: carol, passwordHash: "${hash}" }
accessPolicies:
  - { name: eng-first, group: eng, destinations: [ ${LAB.vpcSubnet} ] }
`;
  ({ daemon, control } = await startLabDaemon(lab, configYaml));
}, 240_000);

afterAll(async () => {
  for (const c of started) await c.stop();
  if (daemon?.running) await daemon.stop('SIGTERM', 8000);
  await lab?.destroy();
});

describe('vpcgw start: user groups and access policies ↔ openvpn 2.6', () => {
  it('the config is taken: groups and policies are resources, users show their groups', async () => {
    expect(JSON.parse(await cli(['get', 'user-groups', '--json']))).toMatchObject([{ name: 'eng', description: 'engineers' }]);
    expect(JSON.parse(await cli(['get', 'access-policies', '--json']))).toMatchObject([{ name: 'eng-first', group: 'eng' }]);
    expect(await cli(['user', 'list'])).toMatch(/^alice\s+enabled\s+eng\s/m);
  });

  it('alice (eng, policy 10.2.0.0/16): the first subnet answers, the second does not and the drop is counted', async () => {
    const alice = client(lab.ns.c1, 'alice', 1194, 'alice');
    await alice.waitConnected();
    expect(alice.pushReply()).toContain('route 10.3.0.0 255.255.0.0');
    const ok = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
    expect(ok.received, ok.out).toBe(3);
    const before = await aclDenied();
    const denied = await pingOk(lab, lab.ns.c1, SECOND_HOST, 3);
    expect(denied.received, `alice must not reach ${SECOND_HOST}: ${denied.out}`).toBe(0);
    expect(before, 'vpcgw status --json reports the policy counters (aclDenied)').toBeGreaterThanOrEqual(0);
    expect(await aclDenied()).toBeGreaterThanOrEqual(before + 3);
  }, 90_000);

  it('a policy added live (apply) opens the second subnet to alice\'s running session', async () => {
    const next = `${configYaml}  - { name: eng-second, group: eng, destinations: [ { cidr: ${SECOND_SUBNET}, protocol: icmp } ] }\n`;
    const file = join(lab.dir, 'next.yaml');
    writeFileSync(file, next, { mode: 0o600 });
    await cli(['apply', '-f', file]);
    const r = await pingOk(lab, lab.ns.c1, SECOND_HOST, 3);
    expect(r.received, r.out).toBe(3);
    await started.find((c) => c.logPath.includes('alice'))!.stop();
  }, 60_000);

  it('carol (no group) under defaultAccess allow reaches both subnets; bob (no group) under deny reaches neither', async () => {
    const carol = client(lab.ns.c2, 'carol', 1194, 'carol');
    await carol.waitConnected();
    expect((await pingOk(lab, lab.ns.c2, LAB.vpcHost, 2)).received).toBe(2);
    expect((await pingOk(lab, lab.ns.c2, SECOND_HOST, 2)).received).toBe(2);
    // alice's client (earlier tests) holds c1's routes to the VPC: end it, so bob's pings go through bob's tunnel
    for (const c of started.splice(0)) if (c !== carol) await c.stop();
    started.push(carol);
    const bob = client(lab.ns.c1, 'bob', DENY_PORT, 'bob');
    await bob.waitConnected();
    expect((await pingOk(lab, lab.ns.c1, LAB.vpcHost, 2)).received).toBe(0);
    expect((await pingOk(lab, lab.ns.c1, SECOND_HOST, 2)).received).toBe(0);
  }, 90_000);
});
