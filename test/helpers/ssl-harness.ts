/**
 * TEST HELPER: SslSession (server) and TestOvpnClient wired back to back with a fixed clock and
 * an optional packet filter (loss/duplication). TLS runs asynchronously, so `pump` alternates
 * delivering queued packets with yielding to the event loop, bounded in rounds.
 */
import { type Logger, silentLogger } from '../../src/common/log.js';
import { type PushParams, type SslAction, type SslSessionOptions, SslSession } from '../../src/ssl/session.js';
import { type TestPki } from './pki.js';
import { type TestClientOptions, TestOvpnClient } from './ssl-test-client.js';

export const TEST_PUSH: PushParams = {
  ifconfig: { address: '10.8.0.2', netmask: '255.255.255.0' },
  routeGateway: '10.8.0.1',
  routes: [{ network: '10.20.0.0', netmask: '255.255.0.0' }],
  dns: ['10.8.0.1'],
  pingSec: 10,
  pingRestartSec: 60,
};

export interface Harness {
  server: SslSession;
  client: TestOvpnClient;
  actions: SslAction[];
  now: () => number;
  advance: (ms: number) => void;
  /** deliver + yield until `until()` or maxRounds; returns until() */
  pump: (until: () => boolean, maxRounds?: number) => Promise<boolean>;
  /** drop/duplicate: return how many copies of the packet to deliver (0 = lose it) */
  filter: { toServer: (pkt: Buffer) => number; toClient: (pkt: Buffer) => number };
  of: <K extends SslAction['kind']>(kind: K) => Extract<SslAction, { kind: K }>[];
}

export function makeHarness(
  pki: TestPki,
  o: { client?: Partial<TestClientOptions>; server?: Partial<SslSessionOptions>; autoPush?: PushParams | null; log?: Logger; peerId?: number } = {},
): Harness {
  let nowMs = 1_000_000;
  const toServer: Buffer[] = [];
  const toClient: Buffer[] = [];
  const actions: SslAction[] = [];
  const autoPush = o.autoPush === undefined ? TEST_PUSH : o.autoPush;
  const filter = { toServer: (_p: Buffer) => 1, toClient: (_p: Buffer) => 1 };
  const server: SslSession = new SslSession(
    {
      identity: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca.cert },
      dataCiphers: ['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305'],
      renegSec: 0,
      handshakeWindowSec: 60,
      log: o.log ?? silentLogger,
      now: nowMs,
      ...o.server,
    },
    o.peerId ?? 7,
    (a) => {
      actions.push(a);
      if (a.kind === 'send') toClient.push(a.packet);
      if (a.kind === 'authenticated' && autoPush) server.setPush(autoPush);
    },
  );
  const alice = pki.client('alice');
  const client = new TestOvpnClient({ cert: alice.cert, key: alice.key, ca: pki.ca.cert, ...o.client }, (p) => toServer.push(p));
  const deliver = (): boolean => {
    let any = false;
    while (toServer.length > 0 || toClient.length > 0) {
      any = true;
      const s = toServer.splice(0);
      for (const p of s) for (let i = filter.toServer(p); i > 0; i--) server.receiveControl(p, nowMs);
      const c = toClient.splice(0);
      for (const p of c) for (let i = filter.toClient(p); i > 0; i--) client.receive(p, nowMs);
    }
    return any;
  };
  return {
    server,
    client,
    actions,
    now: () => nowMs,
    advance: (ms) => {
      nowMs += ms;
      server.tick(nowMs);
      client.tick(nowMs);
    },
    pump: async (until, maxRounds = 400) => {
      for (let i = 0; i < maxRounds; i++) {
        deliver();
        if (until()) return true;
        await new Promise((r) => setImmediate(r));
      }
      deliver();
      return until();
    },
    filter,
    of: (kind) => actions.filter((a) => a.kind === kind) as never,
  };
}
