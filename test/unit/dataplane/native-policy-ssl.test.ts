// The policy stage on the native SSL VPN data channel (src/native/engine/engine.cc, InboundSsl), on a
// real TUN and loopback UDP with the openvpn client played by the TypeScript DataChannel: a session
// carries its origin (SslSessionParams.origin) into the stage, so its ACL drops what it does not
// allow; setSslOrigin moves it to another origin; a VPC endpoint is reached through the session and
// the backend's reply comes back to the client translated. Needs root (TUN, routes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { PacketBatch } from '../../../src/common/batch.js';
import { captureLogger } from '../../../src/common/log.js';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import type { SslDatagramHandler } from '../../../src/dataplane/native-data-plane.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress, addRoute } from '../../../src/tun/netcfg.js';
import { DataChannel, DATA_IP } from '../../../src/ssl/data/data-channel.js';
import { COMP_NONE } from '../../../src/ssl/data/compression.js';
import { DEFAULT_POLICY_LIMITS, ip4ToNumber, type DataPathPolicy } from '../../../src/vpcep/policy.js';
import { P } from '../esp/packets.js';
import { mirroredDataKeys, until } from '../../helpers/native-lab.js';
import { checksumsValid, tupleOf, udp4 } from '../native/core/policy-packets.js';

const POOL = '10.218.0.0/24';
const SERVER = '10.218.0.1'; // the TUN's address, also the endpoint's backend (a UDP echo socket)
const CLIENT = '10.218.0.2';
const EP_NET = '10.218.4.0/24';
const EP = '10.218.4.10';
const PEER_ID = 9;
const ORIGIN = 11;
const OTHER_ORIGIN = 12;
const key = mirroredDataKeys();

let tun: LinuxTun;
let ssl: NativeUdp;
let client: NativeUdp;
let backend: Socket;
let backendPort = 0;
const backendSaw: { from: string; data: string }[] = [];
let dp: NativeDataPlane;
const clientDc = new DataChannel({ peerId: PEER_ID }, Date.now());
const wire: Buffer[] = [];
const handler: SslDatagramHandler = { datagram: () => {}, plaintext: () => {}, flush: () => {} };

function clientSend(payload: Buffer): void {
  const out = Buffer.alloc(2048);
  const n = clientDc.encrypt(payload, 0, payload.length, out, 0, Date.now());
  expect(n).toBeGreaterThan(0);
  expect(client.sendTo(Buffer.from(out.subarray(0, n)), 4, '127.0.0.1', ssl.port)).toBe(true);
}

const opened: Buffer[] = [];
let openedUpTo = 0;
function openAll(): Buffer[] {
  for (; openedUpTo < wire.length; openedUpTo++) {
    const b = Buffer.from(wire[openedUpTo]!);
    if (clientDc.decrypt(b, 0, b.length, Date.now()) === DATA_IP) opened.push(Buffer.from(b.subarray(clientDc.outOff, clientDc.outOff + clientDc.outLen)));
  }
  return opened;
}

function policy(): DataPathPolicy {
  return {
    endpoints: [
      {
        id: 4,
        address: ip4ToNumber(EP),
        open: true,
        ports: [{ protocol: 17, servicePort: 53, backendAddr: ip4ToNumber(SERVER), backendPort }],
        origins: [ORIGIN],
        sources: [],
      },
    ],
    // the session's (server, groups) origin may reach only the server's UDP port 7
    acls: [{ origin: ORIGIN, rules: [{ family: 4, addr: Buffer.from([10, 218, 0, 1]), len: 32, protocol: 17, portLo: 7, portHi: 7 }] }],
    limits: DEFAULT_POLICY_LIMITS,
  };
}

beforeAll(async () => {
  tun = LinuxTun.open({ name: `npss${randomBytes(2).toString('hex')}`, mtu: 1400 });
  addAddress(tun.name, `${SERVER}/24`);
  addRoute(EP_NET, tun.name);
  ssl = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  client = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  client.start((b: PacketBatch) => {
    for (let i = 0; i < b.count; i++) wire.push(Buffer.from(b.packet(i)));
  });
  backend = createSocket('udp4');
  backend.on('message', (msg, rinfo) => {
    backendSaw.push({ from: rinfo.address, data: msg.toString() });
    backend.send(Buffer.from(`echo:${msg.toString()}`), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => backend.bind(0, SERVER, () => resolve()));
  backendPort = backend.address().port;
  dp = new NativeDataPlane(tun, [], { logger: captureLogger() });
  const bind = dp.attachSslUdp(ssl, handler);
  expect(
    dp.installSslSession(PEER_ID, {
      bind,
      remote: { family: 4, address: '127.0.0.1', port: client.port },
      compression: COMP_NONE,
      clientPrefix: P(POOL),
      serverAddress: SERVER,
      origin: ORIGIN,
    }),
  ).toBe(true);
  expect(dp.setSslKey(PEER_ID, key('server'))).toBe(true);
  expect(dp.setSslVirtualAddress(PEER_ID, CLIENT)).toBe(true);
  dp.addSslRoute(P(`${CLIENT}/32`), PEER_ID);
  clientDc.installKey(key('client'), Date.now());
  dp.setPolicy(policy());
});

afterAll(() => {
  dp?.close();
  tun?.close();
  ssl?.close();
  client?.close();
  backend?.close();
});

describe('NativeDataPlane: the policy stage on SSL VPN sessions', () => {
  it('the session\'s origin has an ACL: what it allows reaches the TUN, the rest is aclDenied for that origin', async () => {
    const before = dp.stats().tunTxPackets;
    clientSend(udp4(CLIENT, 5000, SERVER, 9, Buffer.from('no')));
    await until('the ACL drop', () => dp.policyCounters().aclDenied.get(ORIGIN) === 1);
    clientSend(udp4(CLIENT, 5000, SERVER, 7, Buffer.from('yes')));
    await until('the allowed packet reached the TUN', () => dp.stats().tunTxPackets === before + 1);
  });

  it('through the session to a VPC endpoint and back, translated both ways', async () => {
    clientSend(udp4(CLIENT, 5001, EP, 53, Buffer.from('q1')));
    await until('the backend got it', () => backendSaw.some((b) => b.data === 'q1'));
    expect(backendSaw.find((b) => b.data === 'q1')!.from).toBe(EP);
    await until('the reply reached the client', () => openAll().some((p) => p[9] === 17));
    const r = openAll().find((p) => p[9] === 17)!;
    expect(tupleOf(r)).toEqual({ src: EP, sport: 53, dst: CLIENT, dport: 5001 });
    expect(checksumsValid(r)).toBe(true);
    expect(r.subarray(28).toString()).toBe('echo:q1');
  });

  it('setSslOrigin moves the session to another origin: no ACL there, and the endpoint no longer admits it', async () => {
    expect(dp.setSslOrigin(PEER_ID, OTHER_ORIGIN)).toBe(true);
    expect(dp.setSslOrigin(PEER_ID + 1, OTHER_ORIGIN)).toBe(false);
    const before = dp.stats().tunTxPackets;
    clientSend(udp4(CLIENT, 5002, SERVER, 9, Buffer.from('now allowed')));
    await until('the packet reached the TUN', () => dp.stats().tunTxPackets === before + 1);
    clientSend(udp4(CLIENT, 5003, EP, 53, Buffer.from('q2')));
    await until('endpointDenied', () => dp.policyCounters().drops.endpointDenied === 1);
    expect(dp.policyCounters().aclDenied.get(ORIGIN)).toBe(1);
  });
});
