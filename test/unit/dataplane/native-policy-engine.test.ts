// The policy stage inside the native engine (src/native/engine/engine.cc) through NativeDataPlane on
// a real TUN and loopback UDP, the far gateway played by the test with the TypeScript ESP codec:
// an ESP packet to a VPC endpoint reaches the kernel translated (the backend is a UDP echo socket
// on the TUN's own address), the backend's reply is read from the TUN, translated back and leaves
// as ESP; an ACL drop is counted per origin; writeToTun with an origin passes the stage too; the
// flow expires. Needs root (TUN, routes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { PacketBatch } from '../../../src/common/batch.js';
import { captureLogger } from '../../../src/common/log.js';
import type { SaParams } from '../../../src/dataplane/data-plane.js';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { espDecap } from '../../../src/esp/decap.js';
import { espEncap } from '../../../src/esp/encap.js';
import { EspSa, EspSpan } from '../../../src/esp/esp-sa.js';
import { createEncTransform } from '../../../src/crypto/aead.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress, addRoute } from '../../../src/tun/netcfg.js';
import { DEFAULT_POLICY_LIMITS, ip4ToNumber, type DataPathPolicy } from '../../../src/vpcep/policy.js';
import { P } from '../esp/packets.js';
import { until } from '../../helpers/native-lab.js';
import { checksumsValid, tupleOf, udp4 } from '../native/core/policy-packets.js';

const SPI_IN = 0x31310001;
const SPI_OUT = 0x32320001;
const LOCAL_NET = '10.217.1.0/24';
const REMOTE_NET = '10.217.2.0/24';
const EP_NET = '10.217.4.0/24';
const GW_ADDR = '10.217.1.1'; // also the backend: a UDP echo socket on the TUN's address
const EP = '10.217.4.10';
const CLIENT = '10.217.2.7';
const ORIGIN = 5;
const KEY_IN = randomBytes(20);
const KEY_OUT = randomBytes(20);

let tun: LinuxTun;
let udp: NativeUdp;
let peer: NativeUdp;
let backend: Socket;
let backendPort = 0;
const backendSaw: { from: string; port: number; data: string }[] = [];
let dp: NativeDataPlane;
const fromWire: Buffer[] = [];
let peerOut: EspSa;
let peerIn: EspSa;

function saParams(dir: 'in' | 'out'): SaParams {
  return {
    direction: dir,
    spi: dir === 'in' ? SPI_IN : SPI_OUT,
    encr: 20,
    encrKeyBits: 128,
    integ: 0,
    encrKey: dir === 'in' ? KEY_IN : KEY_OUT,
    integKey: Buffer.alloc(0),
    localAddr: '127.0.0.1',
    localPort: udp.port,
    remoteAddr: '127.0.0.1',
    remotePort: peer.port,
    localTs: [P(LOCAL_NET), P(EP_NET)],
    remoteTs: [P(REMOTE_NET)],
    origin: ORIGIN,
  };
}

function peerSa(spi: number, key: Buffer, dir: 'in' | 'out'): EspSa {
  return new EspSa({
    spi,
    direction: dir,
    transform: createEncTransform({ encr: 20, encrKeyBits: 128, integ: 0 }, key, Buffer.alloc(0)),
    localTs: [P(REMOTE_NET)],
    remoteTs: [P(LOCAL_NET), P(EP_NET)],
    localAddr: '127.0.0.1',
    localPort: 1,
    remoteAddr: '127.0.0.1',
    remotePort: 1,
  });
}

function peerSend(inner: Buffer): void {
  const b = Buffer.alloc(2048);
  inner.copy(b, 64);
  const span = new EspSpan();
  expect(espEncap(peerOut, b, 64, inner.length, b.length, span)).toBe(0);
  expect(peer.sendTo(b.subarray(span.off, span.off + span.len), 4, '127.0.0.1', udp.port)).toBe(true);
}

const openedInner: Buffer[] = [];
let openedUpTo = 0;
function opened(): Buffer[] {
  for (; openedUpTo < fromWire.length; openedUpTo++) {
    const d = fromWire[openedUpTo]!;
    if (d.length < 8 || d.readUInt32BE(0) !== SPI_OUT) continue;
    const b = Buffer.from(d);
    const span = new EspSpan();
    if (espDecap(peerIn, b, 0, b.length, span) === 0) openedInner.push(Buffer.from(b.subarray(span.off, span.off + span.len)));
  }
  return openedInner;
}

function policy(): DataPathPolicy {
  return {
    endpoints: [
      {
        id: 3,
        address: ip4ToNumber(EP),
        open: true,
        ports: [{ protocol: 17, servicePort: 53, backendAddr: ip4ToNumber(GW_ADDR), backendPort }],
        origins: [ORIGIN],
        sources: [],
      },
    ],
    // the tunnel's origin may reach only UDP port 7 in the local net (endpoint traffic is the whitelist's)
    acls: [{ origin: ORIGIN, rules: [{ family: 4, addr: Buffer.from([10, 217, 1, 0]), len: 24, protocol: 17, portLo: 7, portHi: 7 }] }],
    limits: { ...DEFAULT_POLICY_LIMITS, udpMs: 1 },
  };
}

beforeAll(async () => {
  tun = LinuxTun.open({ name: `npol${randomBytes(2).toString('hex')}`, mtu: 1400 });
  addAddress(tun.name, `${GW_ADDR}/24`);
  addRoute(REMOTE_NET, tun.name);
  addRoute(EP_NET, tun.name); // the backend's replies to E:natPort come back to the data plane
  udp = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  peer = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  peer.start((b: PacketBatch) => {
    for (let i = 0; i < b.count; i++) fromWire.push(Buffer.from(b.packet(i)));
  });
  backend = createSocket('udp4');
  backend.on('message', (msg, rinfo) => {
    backendSaw.push({ from: rinfo.address, port: rinfo.port, data: msg.toString() });
    backend.send(Buffer.from(`echo:${msg.toString()}`), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => backend.bind(0, GW_ADDR, () => resolve()));
  backendPort = backend.address().port;
  dp = new NativeDataPlane(tun, [udp], { logger: captureLogger() });
  dp.installSa(saParams('in'));
  dp.installSa(saParams('out'));
  dp.addRoute(P(REMOTE_NET), SPI_OUT);
  peerOut = peerSa(SPI_IN, KEY_IN, 'out');
  peerIn = peerSa(SPI_OUT, KEY_OUT, 'in');
});

afterAll(() => {
  dp?.close();
  tun?.close();
  udp?.close();
  peer?.close();
  backend?.close();
});

describe('NativeDataPlane: the policy stage in the engine', () => {
  it('before setPolicy nothing is counted and the counters are all zero', () => {
    const c = dp.policyCounters();
    expect(c.flows).toBe(0);
    expect(c.endpoints).toEqual([]);
    expect(Object.values(c.drops).every((v) => v === 0)).toBe(true);
  });

  it('ESP to an endpoint reaches the backend translated; its reply leaves as ESP translated back', async () => {
    dp.setPolicy(policy());
    peerSend(udp4(CLIENT, 40000, EP, 53, Buffer.from('ping-1')));
    await until('the backend got the query', () => backendSaw.length >= 1);
    expect(backendSaw[0]!.from).toBe(EP); // SNAT to the endpoint's address
    expect(backendSaw[0]!.port).toBeGreaterThanOrEqual(1024);
    expect(backendSaw[0]!.data).toBe('ping-1');
    await until('the reply came out of the tunnel', () => opened().some((p) => p[9] === 17));
    const reply = opened().find((p) => p[9] === 17)!;
    expect(tupleOf(reply)).toEqual({ src: EP, sport: 53, dst: CLIENT, dport: 40000 });
    expect(checksumsValid(reply)).toBe(true);
    expect(reply.subarray(28).toString()).toBe('echo:ping-1');
    const c = dp.policyCounters();
    expect(c.flows).toBe(1);
    expect(c.endpoints[0]).toMatchObject({ id: 3, flows: 1, flowsCreated: 1, packetsIn: 1, packetsOut: 1 });
  });

  it('the origin\'s ACL drops what it does not allow, counted per origin; the allowed port passes', async () => {
    const before = dp.stats().tunTxPackets;
    peerSend(udp4(CLIENT, 40001, GW_ADDR, 9, Buffer.from('denied')));
    await until('the ACL drop', () => dp.policyCounters().drops.aclDenied === 1);
    expect(dp.policyCounters().aclDenied.get(ORIGIN)).toBe(1);
    expect(dp.stats().tunTxPackets).toBe(before);
    peerSend(udp4(CLIENT, 40001, GW_ADDR, 7, Buffer.from('allowed')));
    await until('the allowed packet reached the TUN', () => dp.stats().tunTxPackets === before + 1);
    expect(dp.policyCounters().drops.aclDenied).toBe(1);
  });

  it('writeToTun with an origin passes the stage (an ACL drop), without one it does not', async () => {
    const before = dp.stats().tunTxPackets;
    const p = udp4(CLIENT, 40002, GW_ADDR, 9);
    dp.writeToTun(p, 0, p.length, ORIGIN);
    await new Promise((r) => setImmediate(r));
    expect(dp.policyCounters().aclDenied.get(ORIGIN)).toBe(2);
    dp.writeToTun(p, 0, p.length);
    await until('the origin-less packet reached the TUN', () => dp.stats().tunTxPackets === before + 1);
  });

  it('an unknown NAT port from the VPC is endpointNoFlow; idle flows expire from the timer; an empty policy ends it all', async () => {
    const probe = createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, GW_ADDR, () => resolve()));
    probe.send(Buffer.from('stray'), 999, EP);
    await until('the stray packet dropped', () => dp.policyCounters().drops.endpointNoFlow >= 1);
    probe.close();
    await until('the flow expired (udpMs 1, 1 s timer)', () => dp.policyCounters().flows === 0, 4000);
    dp.setPolicy({ endpoints: [], acls: [], limits: DEFAULT_POLICY_LIMITS });
    const c = dp.policyCounters();
    expect(c.endpoints).toEqual([]);
    expect(c.aclDenied.get(ORIGIN)).toBe(2); // per-origin counts survive
  });
});
