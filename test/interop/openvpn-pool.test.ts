// The SSL VPN pool from a real openvpn 2.6 client against `vpcgw start` (the daemon, either data
// plane: VPCGW_DATAPLANE=ts selects the TypeScript one):
//  - the gateway answers on the pool's first address (10.8.0.1) like OpenVPN's server does, with no
//    gateway.tun.address configured (the default config has none), and the TUN counters count bytes;
//  - maxConnections: 1 — a second client is refused with AUTH_FAILED,server full and stops;
//  - renegSeconds: 10 — the server renegotiates under a continuous ping, loses no packet, and the
//    status shows the key id advancing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, createLab, labGatewayYaml, labServerYaml, startLabDaemon, ensureBuilt, pingOk, startClient, writePem, writeServerPki, type Lab, type OpenVpnClient } from '../helpers/openvpn.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';

const CLI = join(REPO_ROOT, 'dist/cli.js');
const POOL_ADDRESS = '10.8.0.1';
const RENEG_SEC = 10;
let lab: Lab;
let pki: TestPki;
let daemon: ManagedProcess;
let control: string;
let ca: string;
let first: OpenVpnClient | null = null;

interface SessionDoc {
  user: string;
  virtualAddress: string | null;
  keyId: number;
  renegotiations: number;
}
interface StatusDoc {
  gateway: { dataPlane: string; tun: { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number } };
  vpnServers: { name: string; clients: number; counters: Record<string, number>; sessions?: SessionDoc[] }[];
}

async function status(): Promise<StatusDoc> {
  const r = await lab.exec(lab.ns.gw, process.execPath, [CLI, 'status', '--json', '--control', control], { timeoutMs: 15_000 });
  return JSON.parse(r.stdout) as StatusDoc;
}

function clientFor(user: string, ns: string, remote: string): OpenVpnClient {
  const k = pki.client(user);
  // no --connect-retry-max: a refused client must stop on AUTH_FAILED by itself
  return startClient(lab, ns, { proto: 'udp', remote, ca, cert: writePem(lab, `${user}.crt`, k.cert), key: writePem(lab, `${user}.key`, k.key) }, user);
}

beforeAll(async () => {
  await ensureBuilt();
  pki = makeTestPki();
  lab = await createLab();
  const files = writeServerPki(lab, pki);
  ca = files.ca;
  control = join(lab.dir, 'vpcgw.sock');
  // no tun.address: the gateway's address in the pool must come from the vpn server itself
    ({ daemon, control } = await startLabDaemon(lab, `${labGatewayYaml(lab, 'pool-test', { tunAddress: false })}vpnServers:
${labServerYaml(files, { extra: ['listen: 0.0.0.0', 'maxConnections: 1', `renegSeconds: ${RENEG_SEC}`] })}`));
}, 240_000);

afterAll(async () => {
  await first?.stop();
  if (daemon?.running) {
    const r = await daemon.stop('SIGTERM', 8000);
    expect(r.killed, 'vpcgw exits on SIGTERM by itself').toBe(false);
  }
  await lab?.destroy();
});

describe('SSL VPN pool: gateway address, refusals, server renegotiation (openvpn 2.6 client, vpcgw start)', () => {
  it('the client pings the pool address 10.8.0.1; the TUN counters count bytes', async () => {
    first = clientFor('pool-a', lab.ns.c1, LAB.gwForClient[0]);
    await first.waitConnected();
    expect(first.pushReply()).toContain(`route-gateway ${POOL_ADDRESS}`);
    const p = await pingOk(lab, lab.ns.c1, POOL_ADDRESS, 3);
    expect(p.received, p.out).toBe(3);
    const v = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 2);
    expect(v.received, v.out).toBe(2);
    const st = await status();
    expect(st.gateway.dataPlane).toBe(process.env.VPCGW_DATAPLANE === 'ts' ? 'typescript' : 'native');
    const t = st.gateway.tun;
    expect(t.txPackets).toBeGreaterThanOrEqual(5);
    expect(t.rxPackets).toBeGreaterThanOrEqual(5);
    // ICMP echo of ping(8): 84-byte IP packets
    expect(t.txBytes).toBeGreaterThanOrEqual(t.txPackets * 20);
    expect(t.rxBytes).toBeGreaterThanOrEqual(t.rxPackets * 20);
  }, 90_000);

  it('maxConnections 1: a second client is refused with AUTH_FAILED,server full, logged once and counted', async () => {
    expect(first, 'the first client is up').not.toBeNull();
    const before = daemon.output().length;
    const second = clientFor('pool-b', lab.ns.c2, LAB.gwForClient[1]);
    try {
      await waitFor(async () => (second.proc.running ? false : true), { timeoutMs: 30_000, intervalMs: 200, what: 'the refused client exits' }).catch((e: Error) => {
        throw new Error(`${e.message}\n--- client log ---\n${second.log().slice(-3000)}`);
      });
      expect(second.log()).toMatch(/AUTH_FAILED,server full/);
      expect(second.log()).not.toContain('Initialization Sequence Completed');
      const lines = daemon.output().slice(before).split('\n').filter((l) => l.includes('client refused'));
      expect(lines, daemon.output().slice(before)).toHaveLength(1);
      expect(lines[0]).toMatch(/server full/);
      const st = await status();
      const srv = st.vpnServers.find((s) => s.name === 'p2c')!;
      expect(srv.counters.maxConnectionRefusals).toBe(1);
      expect(srv.clients).toBe(1);
      // the refused session may still linger to deliver its AUTH_FAILED, without an address
      expect(srv.sessions?.filter((s) => s.virtualAddress !== null).map((s) => s.user)).toEqual(['pool-a']);
    } finally {
      await second.stop();
    }
    const p = await pingOk(lab, lab.ns.c1, POOL_ADDRESS, 2);
    expect(p.received, p.out).toBe(2);
  }, 60_000);

  it(`renegSeconds ${RENEG_SEC}: the server renegotiates under a continuous ping without losing a packet`, async () => {
    expect(first, 'the first client is up').not.toBeNull();
    const session = async (): Promise<SessionDoc> => (await status()).vpnServers[0]!.sessions!.find((s) => s.user === 'pool-a')!;
    const at0 = await session();
    const logFrom = daemon.output().length;
    // 0.2 s interval for 3.5 periods: at least three renegotiations happen during the ping
    const count = Math.ceil((RENEG_SEC * 3.5) / 0.2);
    const r = await lab.exec(lab.ns.c1, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', LAB.vpcHost], { timeoutMs: count * 200 + 20_000, allowFail: true });
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m![2]), r.stdout).toBe(count);
    const at1 = await session();
    expect(at1.renegotiations - at0.renegotiations, JSON.stringify({ at0, at1 })).toBeGreaterThanOrEqual(3);
    expect(at1.keyId).not.toBe(at0.keyId);
    // the server started them (its SOFT_RESET), not the client: its --reneg-sec is the default 3600 s,
    // and a client that starts one logs "TLS: soft reset"
    expect(daemon.output().slice(logFrom).split('reneg-sec reached').length - 1).toBeGreaterThanOrEqual(3);
    expect(first!.log()).not.toMatch(/TLS: soft reset/);
  }, 120_000);
});
