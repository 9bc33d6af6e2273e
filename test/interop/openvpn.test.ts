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
import { waitFor } from '../helpers/proc.js';

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
          // secrets never reach the logs: no PEM key, no key-material fields
          const logText = server.proc.output();
          expect(logText).not.toContain('PRIVATE KEY');
          expect(logText).not.toMatch(/"(encKey|decKey|encImplicitIv|decImplicitIv|key)":/);
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

  it('two clients at once (UDP and TCP) reach the VPC and, with clientToClient, each other', async () => {
    await withServer({ clientToClient: true }, async (server) => {
      const a = client('udp', 0, 'alice');
      const b = client('tcp', 1, 'bob');
      try {
        await Promise.all([a.waitConnected(), b.waitConnected()]);
        const addrA = /ifconfig (10\.8\.0\.\d+) /.exec(a.pushReply()!)![1]!;
        const addrB = /ifconfig (10\.8\.0\.\d+) /.exec(b.pushReply()!)![1]!;
        expect(addrA).not.toBe(addrB);
        const [pa, pb, ab, ba] = await Promise.all([
          pingOk(lab, lab.ns.c1, LAB.vpcHost, 3),
          pingOk(lab, lab.ns.c2, LAB.vpcHost, 3),
          pingOk(lab, lab.ns.c1, addrB, 3),
          pingOk(lab, lab.ns.c2, addrA, 3),
        ]);
        expect([pa.received, pb.received, ab.received, ba.received]).toEqual([3, 3, 3, 3]);
        const st = await server.status();
        expect(st.clients.map((c) => c.user).sort()).toEqual(['alice', 'bob']);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });
  }, 90_000);

  it('without clientToClient, clients reach the VPC but not each other (dropped and counted)', async () => {
    await withServer({ clientToClient: false }, async (server) => {
      const a = client('udp', 0, 'alice');
      const b = client('udp', 1, 'bob');
      try {
        await Promise.all([a.waitConnected(), b.waitConnected()]);
        const addrB = /ifconfig (10\.8\.0\.\d+) /.exec(b.pushReply()!)![1]!;
        expect((await pingOk(lab, lab.ns.c2, LAB.vpcHost, 2)).received).toBe(2);
        expect((await pingOk(lab, lab.ns.c1, addrB, 2)).received).toBe(0);
        const st = await server.status();
        expect(st.counters.clientToClientDrops).toBeGreaterThanOrEqual(2);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });
  }, 90_000);

  it('a client whose certificate is from another CA is refused: no session, reason logged', async () => {
    await withServer({}, async (server) => {
      const foreign = { cert: writePem(lab, 'foreign.crt', pki.foreignClient.cert), key: writePem(lab, 'foreign.key', pki.foreignClient.key) };
      const c = startClient(lab, lab.ns.c1, { proto: 'udp', remote: LAB.gwForClient[0], ca, cert: foreign.cert, key: foreign.key }, 'foreign');
      try {
        const refused = await waitFor(async () => server.logs().find((l) => l.msg === 'client refused'), {
          timeoutMs: 20_000, what: 'server log "client refused"',
        });
        expect(String(refused.reason)).toMatch(/certificate|verify|issuer|unknown ca/i);
        expect(c.log()).not.toContain('Initialization Sequence Completed');
        const st = await server.status();
        expect(st.clients.filter((x) => x.virtualAddress)).toHaveLength(0);
        expect(st.counters.authRefusals).toBeGreaterThanOrEqual(1);
      } finally {
        await c.stop();
      }
    });
  }, 60_000);

  it('a client with --reneg-sec 10 keeps working across two renegotiations', async () => {
    await withServer({}, async () => {
      const c = client('udp', 0, 'carol', ['--reneg-sec', '10']);
      try {
        await c.waitConnected();
        // ping continuously across 2 renegotiations (at ~10 s and ~20 s)
        const r = await lab.exec(lab.ns.c1, 'ping', ['-c', '50', '-i', '0.5', '-W', '1', LAB.vpcHost], { timeoutMs: 40_000, allowFail: true });
        const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout)!;
        const renegs = (c.log().match(/Outgoing Data Channel: Cipher/g) ?? []).length;
        expect(renegs, c.log().slice(-3000)).toBeGreaterThanOrEqual(3); // key 0 + two renegotiations
        expect(Number(m[2]), r.stdout).toBeGreaterThanOrEqual(47);
        expect(c.log()).not.toMatch(/AEAD Decrypt error|TLS Error/);
      } finally {
        await c.stop();
      }
    });
  }, 90_000);

  it('client variants: each data cipher, comp-lzo no (stub framing), explicit-exit-notify ends the session at once', async () => {
    await withServer({}, async (server) => {
      const variants: { name: string; extra: string[]; expect: RegExp }[] = [
        { name: 'chacha', extra: ['--data-ciphers', 'CHACHA20-POLY1305'], expect: /cipher CHACHA20-POLY1305/ },
        { name: 'aes128', extra: ['--data-ciphers', 'AES-128-GCM'], expect: /cipher AES-128-GCM/ },
        { name: 'complzo', extra: ['--comp-lzo', 'no'], expect: /compress stub-v2|comp-lzo no/ },
        { name: 'compstub', extra: ['--compress', 'stub', '--allow-compression', 'asym'], expect: /compress stub-v2|comp-lzo no/ },
      ];
      for (const v of variants) {
        const c = client('udp', 0, `v-${v.name}`, v.extra);
        try {
          await c.waitConnected();
          expect(c.pushReply(), v.name).toMatch(v.expect);
          const p = await pingOk(lab, lab.ns.c1, LAB.vpcHost, 3);
          expect(p.received, `${v.name}: ${p.out}`).toBe(3);
          expect(c.log(), v.name).not.toMatch(/Bad compression stub|AEAD Decrypt error/);
        } finally {
          await c.stop();
        }
      }
      // with explicit-exit-notify the client says EXIT on SIGTERM: the session goes away without waiting for ping-restart
      const c = client('udp', 0, 'exiter', ['--explicit-exit-notify', '2']);
      await c.waitConnected();
      expect((await server.status()).clients.some((x) => x.user === 'exiter')).toBe(true);
      await c.stop();
      await waitFor(async () => !(await server.status()).clients.some((x) => x.user === 'exiter'), {
        timeoutMs: 8_000, what: 'the exiting client to be gone from status',
      });
    });
  }, 120_000);
});

