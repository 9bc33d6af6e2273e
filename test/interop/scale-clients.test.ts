// 100 SSL VPN sessions at once against `vpcgw start`, every one passing traffic: our load tool
// (test/helpers/ovpn-load.ts, the OpenVPN 2.6 client's wire protocol without a TUN per client) logs
// 100 password users in over UDP, 20 handshakes in flight, and each sends echo requests through
// its data channel to the VPC host; two stock openvpn 2.6 clients connect beside them and reach the
// VPC host too. The larger figures (500 clients, memory per client, handshakes/s) are
// bench/scale.mjs's.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/gateway/users.js';
import { makeTestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, OpenVpnClient, createLab, ensureBuilt, labGatewayYaml, labServerYaml, pingOk, startLabDaemon, writePem, writeServerPki, type Lab } from '../helpers/openvpn.js';
import { bundleLoadTool } from '../helpers/ovpn-load-bundle.js';
import type { LoadResult } from '../helpers/ovpn-load.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';

const CLI = join(REPO_ROOT, 'dist/cli.js');
// TEST FIXTURE ONLY: not a real password.
const PASSWORD = 'scale-clients-fixture-password';
const LOAD_CLIENTS = 100;
const REAL_CLIENTS = 2;

let lab: Lab;
let daemon: ManagedProcess;
let control: string;
let ca: string;
let tool: string;

const userOf = (i: number): string => `u${String(i + 1).padStart(3, '0')}`;

beforeAll(async () => {
  await ensureBuilt();
  const pki = makeTestPki();
  lab = await createLab();
  tool = await bundleLoadTool(join(lab.dir, 'ovpn-load.mjs'));
  const files = writeServerPki(lab, pki);
  ca = files.ca;
  const hash = await hashPassword(PASSWORD);
  const users = Array.from({ length: LOAD_CLIENTS + REAL_CLIENTS }, (_, i) => `  - { name: ${userOf(i)}, passwordHash: "${hash}" }`).join('\n');
  ({ daemon, control } = await startLabDaemon(lab, `${labGatewayYaml(lab, 'p2c-scale')}vpnServers:
${labServerYaml(files, { clientCidr: '10.8.0.0/23', auth: 'password', extra: ['maxConnections: 200', 'limits: { maxHalfOpen: 64, maxHalfOpenPerSource: 64 }'] })}users:
${users}
`));
}, 240_000);

afterAll(async () => {
  if (daemon?.running) await daemon.stop('SIGTERM', 8000);
  await lab?.destroy();
});

describe(`${LOAD_CLIENTS} SSL VPN sessions and ${REAL_CLIENTS} stock openvpn clients at once`, () => {
  it('all log in with their own address and every session carries traffic to the VPC host', async () => {
    const reals: OpenVpnClient[] = [];
    try {
      for (let r = 0; r < REAL_CLIENTS; r++) {
        const user = userOf(LOAD_CLIENTS + r);
        const logPath = join(lab.dir, `${user}.log`);
        const auth = writePem(lab, `${user}.auth`, `${user}\n${PASSWORD}\n`);
        const args = [
          '--client', '--dev', `tun${r}`, '--dev-type', 'tun', '--proto', 'udp', '--remote', LAB.gwForClient[1], '1194', '--nobind',
          '--ca', ca, '--remote-cert-tls', 'server', '--auth-user-pass', auth, '--auth-retry', 'none',
          '--verb', '3', '--log', logPath, '--connect-retry', '1', '--connect-retry-max', '10',
        ];
        reals.push(new OpenVpnClient(lab.spawnIn(lab.ns.c2, 'openvpn', args, `openvpn ${user}`), logPath));
      }
      const opts = join(lab.dir, 'load.json');
      writeFileSync(opts, JSON.stringify({
        host: LAB.gwForClient[0], port: 1194, bind: LAB.client[0], ca: readFileSync(ca, 'utf8'),
        userPrefix: 'u', userDigits: 3, password: PASSWORD, clients: LOAD_CLIENTS, concurrency: 20,
        pingTarget: LAB.vpcHost, pingsPerClient: 20, pingBytes: 512, pingWindow: 4,
        connectTimeoutMs: 90_000, pingTimeoutMs: 20_000,
      }));
      const r = await lab.exec(lab.ns.c1, process.execPath, [tool, opts], { timeoutMs: 150_000 });
      const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as LoadResult;
      console.log(`scale-clients: ${JSON.stringify({ ...res, failed: res.failed.slice(0, 5) })}`);
      expect(res.failed).toEqual([]);
      expect(res.connected).toBe(LOAD_CLIENTS);
      expect(res.distinctAddresses).toBe(LOAD_CLIENTS);
      expect(res.clientsWithTraffic).toBe(LOAD_CLIENTS);
      // UDP over veths on a loaded machine: allow a little loss, not a missing session
      expect(res.pingsAnswered).toBeGreaterThanOrEqual(res.pingsSent * 0.95);

      await waitFor(async () => {
        const dead = reals.find((c) => !c.proc.running);
        if (dead) throw new Error(`openvpn exited:\n${dead.log().slice(-2000)}`);
        return reals.every((c) => c.log().includes('Initialization Sequence Completed'));
      }, { timeoutMs: 45_000, intervalMs: 500, what: 'the stock clients to connect' });
      const p = await pingOk(lab, lab.ns.c2, LAB.vpcHost, 3);
      expect(p.received).toBeGreaterThan(0);

      const st = JSON.parse((await lab.exec(lab.ns.gw, process.execPath, [CLI, 'status', '--json', '--control', control], { timeoutMs: 15_000 })).stdout) as {
        vpnServers: { sessions?: unknown[] }[];
      };
      // the load tool's sessions stay until their ping-restart; the real ones are connected now
      expect(st.vpnServers[0]!.sessions!.length).toBeGreaterThanOrEqual(LOAD_CLIENTS + REAL_CLIENTS);
    } finally {
      await Promise.all(reals.map((c) => c.stop()));
    }
  }, 300_000);
});
