// Interop with the REAL openvpn 2.6 client: our SslServer (with a real TUN) in a network namespace,
// clients in their own namespaces, a VPC host behind the gateway (see test/helpers/openvpn.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import {
  LAB,
  createLab,
  ensureBuilt,
  iperf3,
  pingOk,
  startClient,
  startServer,
  writePem,
  type Lab,
  type LabServer,
  type OpenVpnClient,
} from '../helpers/openvpn.js';
import { run, waitFor } from '../helpers/proc.js';

let lab: Lab;
let pki: TestPki;
let ca: string;
const certs = new Map<string, { cert: string; key: string }>();
let serverPem: { cert: string; key: string; clientCa: string };

function clientCert(cn: string): { cert: string; key: string } {
  let c = certs.get(cn);
  if (!c) {
    const k = pki.client(cn);
    c = { cert: writePem(lab, `${cn}.crt`, k.cert), key: writePem(lab, `${cn}.key`, k.key) };
    certs.set(cn, c);
  }
  return c;
}

function client(proto: 'udp' | 'tcp', idx: 0 | 1, cn: string, extra: string[] = []): OpenVpnClient {
  const c = clientCert(cn);
  return startClient(lab, idx === 0 ? lab.ns.c1 : lab.ns.c2, { proto, remote: LAB.gwForClient[idx], ca, cert: c.cert, key: c.key, extra }, cn);
}

async function routes(ns: string): Promise<string> {
  return (await lab.exec(ns, 'ip', ['route'])).stdout;
}

beforeAll(async () => {
  await ensureBuilt();
  pki = makeTestPki();
  lab = await createLab();
  ca = writePem(lab, 'ca.crt', pki.ca.cert);
  serverPem = {
    cert: writePem(lab, 'server.crt', pki.server.cert),
    key: writePem(lab, 'server.key', pki.server.key),
    clientCa: ca,
  };
}, 240_000);

afterAll(async () => {
  await lab?.destroy();
});

async function withServer<T>(opts: { clientToClient?: boolean }, fn: (s: LabServer) => Promise<T>): Promise<T> {
  const s = await startServer(lab, { pem: serverPem, ...opts });
  try {
    return await fn(s);
  } finally {
    const r = await s.proc.stop('SIGTERM', 5000);
    expect(r.killed, 'server runner stopped on SIGTERM').toBe(false);
  }
}

describe('openvpn 2.6 client ↔ vpcgw SSL VPN', () => {
  for (const proto of ['udp', 'tcp'] as const) {
    it(`${proto}: connects, gets ifconfig and routes, pings and carries iperf3 to the VPC host; reconnects to the same address`, async () => {
      await withServer({}, async (server) => {
        const c = client(proto, 0, 'alice');
        try {
          await c.waitConnected();
          const push = c.pushReply()!;
          expect(push).toContain('ifconfig 10.8.0.2 255.255.255.0');
          expect(push).toContain('route-gateway 10.8.0.1');
          expect(push).toContain('route 10.2.0.0 255.255.0.0');
          expect(push).toContain('topology subnet');
          expect(await routes(lab.ns.c1)).toMatch(/10\.2\.0\.0\/16 via 10\.8\.0\.1/);
          const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
          expect(p.received, p.out).toBe(3);
          const mbit = await iperf3(lab, lab.ns.c1, lab.ns.vpc, LAB.vpcHost, 3);
          expect(mbit).toBeGreaterThan(1);
          console.log(`[openvpn interop] ${proto} iperf3 TCP client → VPC host: ${mbit.toFixed(1)} Mbit/s`);
          const st = await server.status();
          expect(st.clients).toHaveLength(1);
          expect(st.clients[0]).toMatchObject({ user: 'alice', virtualAddress: '10.8.0.2', protocol: proto });
          expect(st.clients[0]!.realAddress.startsWith(`${LAB.client[0]}:`)).toBe(true);
          expect(st.clients[0]!.bytesIn).toBeGreaterThan(1_000_000);
        } finally {
          await c.stop();
        }
        // reconnect: the same user gets the same address back
        const again = client(proto, 0, 'alice');
        try {
          await again.waitConnected();
          expect(again.pushReply()).toContain('ifconfig 10.8.0.2 255.255.255.0');
          expect((await pingOk(lab, lab.ns.c1, LAB.vpcHost, 2)).received).toBe(2);
          const st = await waitFor(async () => {
            const s = await server.status();
            return s.clients.length === 1 ? s : undefined;
          }, { timeoutMs: 10_000, what: 'one session after the reconnect' });
          expect(st.clients[0]!.virtualAddress).toBe('10.8.0.2');
        } finally {
          await again.stop();
        }
      });
    }, 90_000);
  }
});
