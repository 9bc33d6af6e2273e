// The SSL VPN's native data channel on the multi-queue data plane, against a real `vpcgw start` with
// `gateway.dataPlane.queues: 2` and two real openvpn 2.6 clients over UDP. The server hands out
// consecutive peer-ids, so the two sessions are steered to different queues (peer-id % 2, see
// src/dataplane/multi-queue.ts point 7): both clients ping the VPC host and carry a short iperf3
// transfer, the daemon does not fall back to the JS data channel, and the per-queue native counters
// it logs when it stops show data decrypted and encrypted in C++ on both queues.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { LAB, REPO_ROOT, createLab, ensureBuilt, iperf3, labGatewayYaml, labServerYaml, pingOk, startClient, startLabDaemon, writePem, writeServerPki, type Lab, type OpenVpnClient } from '../helpers/openvpn.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';
import { join } from 'node:path';

const CLI = join(REPO_ROOT, 'dist/cli.js');
let lab: Lab;
let pki: TestPki;
let daemon: ManagedProcess;
let control: string;
const clients: OpenVpnClient[] = [];

interface ClientRow { id: string; user: string; bytesIn: number; bytesOut: number }

async function listClients(): Promise<ClientRow[]> {
  const r = await lab.exec(lab.ns.gw, process.execPath, [CLI, 'clients', '--json', '--control', control], { timeoutMs: 20_000 });
  return JSON.parse(r.stdout) as ClientRow[];
}

/** The `multi-queue data plane closed` log line's per-queue SSL counters. */
function closedLine(out: string): { sslRxPackets: number[]; sslTxPackets: number[] } {
  const line = out.split('\n').find((l) => l.includes('"msg":"multi-queue data plane closed"'));
  if (!line) throw new Error(`no "multi-queue data plane closed" line in:\n${out.slice(-4000)}`);
  return JSON.parse(line) as { sslRxPackets: number[]; sslTxPackets: number[] };
}

beforeAll(async () => {
  await ensureBuilt();
  pki = makeTestPki();
  lab = await createLab();
  ({ daemon, control } = await startLabDaemon(lab, `${labGatewayYaml(lab, 'p2c-mq')}  dataPlane: { queues: 2 }
vpnServers:
${labServerYaml(writeServerPki(lab, pki))}`));
}, 240_000);

afterAll(async () => {
  for (const c of clients) await c.stop();
  if (daemon?.running) await daemon.stop('SIGTERM', 8000);
  await lab?.destroy();
});

describe('SSL VPN on gateway.dataPlane.queues: 2 against two openvpn 2.6 clients', () => {
  it('both clients carry pings and a bounded transfer through the native data channel, on both queues', async () => {
    expect(daemon.output()).toContain('multi-queue data plane started');
    expect(daemon.output()).toMatch(/"dataChannel":"native"[^\n]*"msg":"ssl vpn server listening"/);
    expect(daemon.output()).not.toContain('runs in JavaScript');
    for (const [i, ns] of [lab.ns.c1, lab.ns.c2].entries()) {
      const user = i === 0 ? 'alice' : 'bob';
      const c = pki.client(user);
      const dir = lab.dir;
      const cert = writePem(lab, `${user}.crt`, c.cert);
      const key = writePem(lab, `${user}.key`, c.key);
      const client = startClient(lab, ns, { proto: 'udp', remote: LAB.gwForClient[i]!, ca: join(dir, 'ca.crt'), cert, key }, user);
      clients.push(client);
      await client.waitConnected();
    }
    for (const ns of [lab.ns.c1, lab.ns.c2]) {
      const p = await pingOk(lab, ns, LAB.vpcHost, 3);
      expect(p.received, p.out).toBe(3);
    }
    for (const ns of [lab.ns.c1, lab.ns.c2]) {
      const mbps = await iperf3(lab, ns, lab.ns.vpc, LAB.vpcHost, 2);
      expect(mbps).toBeGreaterThan(1);
    }
    // per-session counters (summed over the queues, workers' refreshed every second) see the transfer
    await waitFor(async () => {
      const rows = await listClients();
      return rows.length === 2 && rows.every((r) => r.bytesIn > 1_000_000 && r.bytesOut > 10_000);
    }, { timeoutMs: 5000, intervalMs: 300, what: 'both sessions counting the transfer' });
    for (const c of clients.splice(0)) await c.stop();
    const exit = await daemon.stop('SIGTERM', 8000);
    expect(exit.code).toBe(0);
    const q = closedLine(daemon.output());
    expect(q.sslRxPackets).toHaveLength(2);
    // each session's upload (about a thousand or more packets) was decrypted on its own queue
    expect(q.sslRxPackets[0]).toBeGreaterThan(500);
    expect(q.sslRxPackets[1]).toBeGreaterThan(500);
    expect(q.sslTxPackets[0]! + q.sslTxPackets[1]!).toBeGreaterThan(500);
  }, 180_000);
});
