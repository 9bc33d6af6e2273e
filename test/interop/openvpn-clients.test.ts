// SSL VPN operations against a real `vpcgw start` and the real openvpn 2.6 client:
//  - `vpcgw client-config alice` prints a profile with a certificate issued now; used unchanged it
//    connects and ping reaches the VPC host;
//  - `vpcgw clients` lists the session (table and --json);
//  - `vpcgw pki issue-client` writes a certificate the server accepts;
//  - `vpcgw pki revoke-client alice` ends alice's session at once, and her reconnect is refused
//    (the CRL beside the CA), while bob's certificate still connects.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, createLab, ensureBuilt, labGatewayYaml, labServerYaml, pingOk, startClient, startLabDaemon, writePem, writeServerPki, type Lab } from '../helpers/openvpn.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';

const CLI = join(REPO_ROOT, 'dist/cli.js');
let lab: Lab;
let pki: TestPki;
let daemon: ManagedProcess;
let control: string;
let ca: string;

async function vpcgw(args: string[], allowFail = false): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const r = await lab.exec(lab.ns.gw, process.execPath, [CLI, ...args, '--control', control], { timeoutMs: 20_000, allowFail });
  return r;
}

interface ClientRow { server: string; id: string; user: string; realAddress: string; virtualAddress: string | null; bytesIn: number; bytesOut: number }
const clients = async (): Promise<ClientRow[]> => JSON.parse((await vpcgw(['clients', '--json'])).stdout) as ClientRow[];

beforeAll(async () => {
  await ensureBuilt();
  pki = makeTestPki();
  lab = await createLab();
  // the CA key beside the CA certificate, as in the default PKI (pki/ca.crt, pki/ca.key)
  const files = writeServerPki(lab, pki);
  ca = files.ca;
  writePem(lab, 'ca.key', pki.ca.key);
  ({ daemon, control } = await startLabDaemon(lab, `${labGatewayYaml(lab, 'p2c-clients')}vpnServers:
${labServerYaml(files)}`));
}, 240_000);

afterAll(async () => {
  if (daemon?.running) await daemon.stop('SIGTERM', 8000);
  await lab?.destroy();
});

describe('client-config and clients against openvpn 2.6', () => {
  it('the profile from `vpcgw client-config alice`, used unchanged, connects; ping reaches the VPC host; `vpcgw clients` lists alice', async () => {
    const r = await vpcgw(['client-config', 'alice']);
    expect(r.stdout).toContain(`remote ${LAB.gwForClient[0]} 1194\n`);
    expect(r.stdout).toMatch(/^<cert>$/m);
    expect(r.stdout).toMatch(/^<key>$/m);
    const profile = join(lab.dir, 'alice.ovpn');
    writeFileSync(profile, r.stdout, { mode: 0o600 });
    const logPath = join(lab.dir, 'alice.log');
    const c = lab.spawnIn(lab.ns.c1, 'openvpn', ['--config', profile, '--log', logPath, '--connect-retry-max', '3'], 'openvpn alice');
    const log = (): string => { try { return readFileSync(logPath, 'utf8'); } catch { return ''; } };
    try {
      await waitFor(async () => {
        if (!c.running) throw new Error(`openvpn exited:\n${log().slice(-3000)}`);
        return log().includes('Initialization Sequence Completed');
      }, { timeoutMs: 30_000, intervalMs: 200, what: 'openvpn with the client-config profile' });
      const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
      expect(p.received, p.out).toBe(3);
      const rows = await clients();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ server: 'p2c', user: 'alice' });
      expect(rows[0]!.realAddress.startsWith(`${LAB.client[0]}:`)).toBe(true);
      expect(rows[0]!.virtualAddress).toMatch(/^10\.8\.0\.\d+$/);
      expect(rows[0]!.bytesIn).toBeGreaterThan(0);
      const table = (await vpcgw(['clients', 'p2c'])).stdout;
      expect(table).toMatch(/^SERVER\s+USER\s+REAL ADDRESS/);
      expect(table).toMatch(new RegExp(`^p2c\\s+alice\\s+${LAB.client[0]!.replace(/\./g, '\\.')}:\\d+\\s+10\\.8\\.0\\.\\d+`, 'm'));
    } finally {
      await c.stop('SIGTERM', 5000);
    }
    // a UDP client gone without explicit-exit-notify stays listed until its ping-restart: drop it
    await vpcgw(['disconnect', 'p2c', 'alice']);
    expect(await clients()).toEqual([]);
  }, 90_000);

  it('`vpcgw pki issue-client bob --out DIR` writes a certificate and key the server accepts', async () => {
    const out = join(lab.dir, 'issued');
    await lab.exec(lab.ns.gw, 'mkdir', ['-p', out]);
    await vpcgw(['pki', 'issue-client', 'bob', '--out', out]);
    const c = startClient(lab, lab.ns.c1, { proto: 'udp', remote: LAB.gwForClient[0], ca, cert: join(out, 'bob.crt'), key: join(out, 'bob.key') }, 'bob');
    try {
      await c.waitConnected();
      const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 2);
      expect(p.received, p.out).toBe(2);
      expect((await clients()).map((x) => x.user)).toEqual(['bob']);
    } finally {
      await c.stop();
    }
    // `vpcgw disconnect USER`: every session of bob, whatever the server
    expect((await vpcgw(['disconnect', 'bob'])).stdout).toMatch(/^p2c: client s\d+ \(bob\) disconnected$/m);
    expect(await clients()).toEqual([]);
  }, 90_000);

  it('`vpcgw pki revoke-client alice`: her session is gone at once, a reconnect with the same profile is refused; bob still connects', async () => {
    const profile = join(lab.dir, 'alice.ovpn');
    const logPath = join(lab.dir, 'alice-revoke.log');
    const log = (): string => { try { return readFileSync(logPath, 'utf8'); } catch { return ''; } };
    const c = lab.spawnIn(lab.ns.c1, 'openvpn', ['--config', profile, '--log', logPath, '--connect-retry-max', '3'], 'openvpn alice (revoke)');
    try {
      await waitFor(async () => {
        if (!c.running) throw new Error(`openvpn exited:\n${log().slice(-3000)}`);
        return log().includes('Initialization Sequence Completed');
      }, { timeoutMs: 30_000, intervalMs: 200, what: 'openvpn alice before the revocation' });
      expect((await clients()).map((x) => x.user)).toEqual(['alice']);
      const r = await vpcgw(['pki', 'revoke-client', 'alice']);
      expect(r.stdout).toMatch(/^p2c: certificate [0-9a-f]+ \(alice\) revoked$/m);
      expect(r.stdout).toMatch(/^p2c: alice disconnected$/m);
      expect(await clients()).toEqual([]);
      // HALT: the stock client exits instead of reconnecting
      await waitFor(async () => !c.running, { timeoutMs: 15_000, intervalMs: 200, what: 'openvpn alice exits after HALT' });
    } finally {
      await c.stop('SIGTERM', 5000);
    }
    const logPath2 = join(lab.dir, 'alice-again.log');
    const log2 = (): string => { try { return readFileSync(logPath2, 'utf8'); } catch { return ''; } };
    const again = lab.spawnIn(lab.ns.c1, 'openvpn', ['--config', profile, '--log', logPath2, '--connect-retry-max', '1'], 'openvpn alice (again)');
    try {
      // the server refuses the handshake (as for a certificate of another CA: no session, reason logged)
      await waitFor(async () => /"reason":"client certificate rejected: CERT_REVOKED"[^\n]*"msg":"client refused"/.test(daemon.output()), {
        timeoutMs: 20_000, intervalMs: 200, what: 'vpcgw log "client refused" with CERT_REVOKED',
      }).catch((e: Error) => {
        throw new Error(`${e.message}\n--- client ---\n${log2().slice(-3000)}\n--- vpcgw ---\n${daemon.output().slice(-4000)}`);
      });
      expect(log2()).not.toContain('Initialization Sequence Completed');
      expect(await clients()).toEqual([]);
    } finally {
      await again.stop('SIGTERM', 5000);
    }
    const out = join(lab.dir, 'issued');
    const b = startClient(lab, lab.ns.c1, { proto: 'udp', remote: LAB.gwForClient[0], ca, cert: join(out, 'bob.crt'), key: join(out, 'bob.key') }, 'bob-after');
    try {
      await b.waitConnected();
      expect((await pingOk(lab, lab.ns.c1, LAB.vpcHost, 2)).received).toBe(2);
    } finally {
      await b.stop();
    }
  }, 120_000);
});
