// The SSL VPN server before authentication, against the REAL openvpn 2.6 client: tls-crypt and
// tls-auth (keys made by `openvpn --genkey`), clients without the key or with a wrong one, a flood
// of spoofed hard resets, and slow TCP clients holding sockets. Lab: test/helpers/openvpn.ts.
// The server's resident memory is bounded under each flood (RSS_BOUND_MB, RSS_GROWTH_BOUND_MB).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { generateTlsCryptV2ClientKeyFile } from '../../src/gateway/pki.js';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { LAB, createLab, ensureBuilt, pingOk, startClient, startServer, writePem, type Lab, type LabServer, type OpenVpnClient, type ServerOptions } from '../helpers/openvpn.js';
import { run } from '../helpers/proc.js';

/** The server process stays small under the floods below: its resident memory, and what a flood adds. */
const RSS_BOUND_MB = 250;
const RSS_GROWTH_BOUND_MB = 40;
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

let lab: Lab;
let pki: TestPki;
let ca: string;
let serverPem: { cert: string; key: string; clientCa: string };
let alice: { cert: string; key: string };
const keys: Record<string, string> = {};

beforeAll(async () => {
  await ensureBuilt();
  pki = makeTestPki();
  lab = await createLab();
  ca = writePem(lab, 'ca.crt', pki.ca.cert);
  serverPem = { cert: writePem(lab, 'server.crt', pki.server.cert), key: writePem(lab, 'server.key', pki.server.key), clientCa: ca };
  const k = pki.client('alice');
  alice = { cert: writePem(lab, 'alice.crt', k.cert), key: writePem(lab, 'alice.key', k.key) };
  for (const [name, kind] of [['tc', 'tls-crypt'], ['tc2', 'tls-crypt'], ['ta', 'tls-auth']] as const) {
    keys[name] = join(lab.dir, `${name}.key`);
    await run('openvpn', ['--genkey', kind, keys[name]!], { timeoutMs: 10_000 });
  }
  // tls-crypt-v2: a server key from openvpn with one client key from openvpn and one from vpcgw pki,
  // and a client key wrapped by another server key
  keys.v2s = join(lab.dir, 'v2s.key');
  keys.v2other = join(lab.dir, 'v2other.key');
  for (const k of [keys.v2s, keys.v2other]) await run('openvpn', ['--genkey', 'tls-crypt-v2-server', k], { timeoutMs: 10_000 });
  keys.v2cOpenvpn = join(lab.dir, 'v2c-openvpn.key');
  await run('openvpn', ['--genkey', 'tls-crypt-v2-client', keys.v2cOpenvpn, '--tls-crypt-v2', keys.v2s], { timeoutMs: 10_000 });
  keys.v2cOurs = join(lab.dir, 'v2c-vpcgw.key');
  writeFileSync(keys.v2cOurs, generateTlsCryptV2ClientKeyFile(readFileSync(keys.v2s, 'utf8'), keys.v2s), { mode: 0o600 });
  keys.v2cWrong = join(lab.dir, 'v2c-wrong.key');
  await run('openvpn', ['--genkey', 'tls-crypt-v2-client', keys.v2cWrong, '--tls-crypt-v2', keys.v2other], { timeoutMs: 10_000 });
}, 240_000);

afterAll(async () => {
  await lab?.destroy();
});

function client(proto: 'udp' | 'tcp', idx: 0 | 1, extra: string[] = [], name = 'alice'): OpenVpnClient {
  return startClient(lab, idx === 0 ? lab.ns.c1 : lab.ns.c2, { proto, remote: LAB.gwForClient[idx], ca, cert: alice.cert, key: alice.key, extra }, name);
}

async function withServer<T>(opts: Partial<ServerOptions>, fn: (s: LabServer) => Promise<T>): Promise<T> {
  const s = await startServer(lab, { pem: serverPem, ...opts });
  try {
    return await fn(s);
  } finally {
    await s.proc.stop('SIGTERM', 5000);
  }
}

async function connectsAndPings(c: OpenVpnClient, ns: string, timeoutMs = 20_000): Promise<void> {
  try {
    await c.waitConnected(timeoutMs);
    expect((await pingOk(lab, ns, LAB.vpcHost, 2)).received).toBe(2);
  } finally {
    await c.stop();
  }
}

/** Runs a Node script in a namespace (the script file is written to the lab folder). */
async function nodeIn(ns: string, name: string, code: string, timeoutMs = 60_000): Promise<string> {
  const f = join(lab.dir, `${name}.mjs`);
  writeFileSync(f, code);
  return (await lab.exec(ns, process.execPath, [f], { timeoutMs })).stdout;
}

describe('openvpn 2.6 client ↔ vpcgw before authentication', () => {
  for (const proto of ['udp', 'tcp'] as const) {
    it(`${proto}: tls-crypt connects and carries traffic; without the key or with another key the client is ignored`, async () => {
      await withServer({ tlsWrap: { kind: 'tls-crypt', keyFile: keys.tc! } }, async (server) => {
        await connectsAndPings(client(proto, 0, ['--tls-crypt', keys.tc!]), lab.ns.c1);
        for (const extra of [[], ['--tls-crypt', keys.tc2!]]) {
          const bad = client(proto, 1, extra, 'mallory');
          await new Promise((r) => setTimeout(r, 5000));
          expect(bad.log()).not.toContain('Initialization Sequence Completed');
          await bad.stop();
        }
        const st = await server.status();
        expect(st.counters.wrapDrops).toBeGreaterThan(0);
        expect(st.counters.sessionsCreated).toBe(1);
      });
    }, 90_000);
  }

  for (const proto of ['udp', 'tcp'] as const) {
    it(`${proto}: tls-crypt-v2 clients (keys from openvpn and from vpcgw pki) connect and carry traffic; a key of another server is ignored`, async () => {
      await withServer({ tlsWrap: { kind: 'tls-crypt-v2', keyFile: keys.v2s! } }, async (server) => {
        await connectsAndPings(client(proto, 0, ['--tls-crypt-v2', keys.v2cOpenvpn!]), lab.ns.c1);
        await connectsAndPings(client(proto, 0, ['--tls-crypt-v2', keys.v2cOurs!]), lab.ns.c1);
        const bad = client(proto, 1, ['--tls-crypt-v2', keys.v2cWrong!], 'mallory');
        await new Promise((r) => setTimeout(r, 5000));
        expect(bad.log()).not.toContain('Initialization Sequence Completed');
        await bad.stop();
        const st = await server.status();
        expect(st.counters.wrapDrops).toBeGreaterThan(0);
        expect(st.counters.sessionsCreated).toBe(2);
      });
    }, 90_000);
  }

  it('udp: tls-auth (key direction 0 on the server, 1 on the client) connects and carries traffic; a wrong key is ignored', async () => {
    await withServer({ tlsWrap: { kind: 'tls-auth', keyFile: keys.ta!, direction: 0, digest: 'SHA1' } }, async (server) => {
      await connectsAndPings(client('udp', 0, ['--tls-auth', keys.ta!, '1']), lab.ns.c1);
      const bad = client('udp', 1, ['--tls-auth', keys.tc!, '1'], 'mallory');
      await new Promise((r) => setTimeout(r, 5000));
      expect(bad.log()).not.toContain('Initialization Sequence Completed');
      await bad.stop();
      const st = await server.status();
      expect(st.counters.wrapDrops).toBeGreaterThan(0);
      expect(st.counters.sessionsCreated).toBe(1);
    });
  }, 90_000);

  it('udp: 2,000 spoofed hard resets from several addresses create no session; a real client then connects in under 10 s', async () => {
    const sources = Array.from({ length: 8 }, (_, i) => `10.99.2.${10 + i}`);
    for (const a of sources) await lab.exec(lab.ns.c2, 'ip', ['addr', 'add', `${a}/24`, 'dev', 'eth0']);
    await withServer({ limits: { maxHalfOpen: 16 } }, async (server) => {
      const rssBefore = rssMb(server.proc.pid);
      const out = await nodeIn(lab.ns.c2, 'flood', `
        import { createSocket } from 'node:dgram';
        import { randomBytes } from 'node:crypto';
        const srcs = ${JSON.stringify(sources)};
        const socks = await Promise.all(srcs.map((a) => new Promise((r) => { const s = createSocket('udp4'); s.on('error', () => {}); s.bind(0, a, () => r(s)); })));
        let sent = 0;
        for (let i = 0; i < 2000; i++) {
          const p = Buffer.alloc(14);
          p[0] = 7 << 3;
          randomBytes(8).copy(p, 1);
          p[1] |= 1;
          await new Promise((r) => socks[i % socks.length].send(p, 1194, '${LAB.gwForClient[1]}', () => r()));
          sent++;
          if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
        }
        for (const s of socks) s.close();
        console.log('SENT', sent);
      `);
      expect(out).toContain('SENT 2000');
      let st = await server.status();
      expect(st.counters.sessionsCreated).toBe(0);
      expect(st.halfOpen).toBe(0);
      expect(st.counters.resetReplies + st.counters.resetRateDrops).toBe(2000);
      const rssAfter = rssMb(server.proc.pid);
      expect(rssAfter).toBeLessThan(RSS_BOUND_MB);
      expect(rssAfter - rssBefore).toBeLessThan(RSS_GROWTH_BOUND_MB);
      const t0 = Date.now();
      await connectsAndPings(client('udp', 0), lab.ns.c1, 10_000);
      expect(Date.now() - t0).toBeLessThan(12_000);
      st = await server.status();
      expect(st.halfOpen).toBeLessThanOrEqual(16);
    });
  }, 120_000);

  it('tcp: slow clients holding sockets (over the per-source cap, silent past the first-frame timeout) do not block a real client', async () => {
    await withServer({ limits: { maxTcpConnections: 32, maxTcpPerSource: 8, tcpFirstFrameTimeoutSec: 3 } }, async (server) => {
      const holder = nodeIn(lab.ns.c2, 'slowtcp', `
        import { connect } from 'node:net';
        const socks = [];
        let closed = 0;
        for (let i = 0; i < 40; i++) {
          const s = connect(1194, '${LAB.gwForClient[1]}');
          s.on('error', () => {});
          s.on('close', () => closed++);
          if (i % 2 === 0) s.on('connect', () => s.write(Buffer.from([0, 20, 0x38]))); // a frame that never completes
          socks.push(s);
        }
        await new Promise((r) => setTimeout(r, 8000));
        console.log('CLOSED', closed);
        for (const s of socks) s.destroy();
      `);
      const rssBefore = rssMb(server.proc.pid);
      await new Promise((r) => setTimeout(r, 1000));
      const t0 = Date.now();
      await connectsAndPings(client('tcp', 0), lab.ns.c1, 10_000);
      const rssDuring = rssMb(server.proc.pid);
      expect(rssDuring).toBeLessThan(RSS_BOUND_MB);
      expect(rssDuring - rssBefore).toBeLessThan(RSS_GROWTH_BOUND_MB);
      expect(Date.now() - t0).toBeLessThan(12_000);
      const out = await holder;
      expect(Number(/CLOSED (\d+)/.exec(out)?.[1])).toBe(40);
      const st = await server.status();
      expect(st.counters.tcpRefusals).toBeGreaterThanOrEqual(32);
      expect(st.counters.tcpFirstFrameTimeouts).toBeGreaterThanOrEqual(1);
    });
  }, 120_000);
});
