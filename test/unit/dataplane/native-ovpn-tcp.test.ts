// OpenVPN over TCP in the native data plane (SslOffload.sslTcpChunk: the framing parser in
// src/native/core/ovpn-tcp.cc, Engine::SslTcpChunk in src/native/engine/engine.cc) on a real TUN,
// with the openvpn client played by the test using the TypeScript DataChannel: streams cut at every
// byte boundary, several packets per chunk, zero and over-long lengths, control packets between
// data packets keep their order, OCC and client-to-client plaintext listed for JS, a full list
// resumed. Needs root (TUN).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { captureLogger } from '../../../src/common/log.js';
import { SSL_TCP_HEAD, SSL_TCP_PLAIN, SSL_TCP_SPILL, SSL_TCP_STRIDE } from '../../../src/dataplane/data-plane.js';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress } from '../../../src/tun/netcfg.js';
import { DataChannel } from '../../../src/ssl/data/data-channel.js';
import { COMP_NONE } from '../../../src/ssl/data/compression.js';
import { OCC_EXIT_PAYLOAD } from '../../../src/ssl/data/special.js';
import { P } from '../esp/packets.js';
import { icmpEcho, mirroredDataKeys, until } from '../../helpers/native-lab.js';

const POOL = '10.216.0.0/24';
const SERVER = '10.216.0.1';
const CLIENT = '10.216.0.2';
const OTHER_CLIENT = '10.216.0.3';
const PEER_ID = 9;
const key = mirroredDataKeys();

let tun: LinuxTun;
let dp: NativeDataPlane;
const clientDc = new DataChannel({ peerId: PEER_ID }, Date.now());
let nextStream = 1;
/** the kernel's echo replies to the client (the client's /32 routed to a sink): ICMP id << 16 | sequence */
const replies: number[] = [];

/** a P_CONTROL_V1-looking packet (opcode 4) of `len` bytes, filled with `fill` */
function control(len: number, fill: number): Buffer {
  const b = Buffer.alloc(len, fill);
  b[0] = (4 << 3) | 0;
  return b;
}

/** the client seals a payload as P_DATA_V2 */
function data(payload: Buffer): Buffer {
  const out = Buffer.alloc(2048);
  const n = clientDc.encrypt(payload, 0, payload.length, out, 0, Date.now());
  expect(n).toBeGreaterThan(0);
  return Buffer.from(out.subarray(0, n));
}

function framed(...pkts: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of pkts) {
    const l = Buffer.alloc(2);
    l.writeUInt16BE(p.length);
    parts.push(l, p);
  }
  return Buffer.concat(parts);
}

interface Listed {
  pkt: Buffer;
  plain: boolean;
  spill: boolean;
}

/** feeds the chunks as a socket would deliver them; returns what was listed for JS and whether the stream broke */
function feed(stream: number, chunks: Buffer[]): { listed: Listed[]; broken: boolean; calls: number } {
  const listed: Listed[] = [];
  const list = dp.sslTcpList;
  let calls = 0;
  for (const c of chunks) {
    let pos = 0;
    while (pos < c.length) {
      const n = dp.sslTcpChunk(stream, c, pos, c.length - pos);
      calls++;
      expect(n).toBeGreaterThanOrEqual(0);
      for (let i = 0; i < n; i++) {
        const k = SSL_TCP_HEAD + i * SSL_TCP_STRIDE;
        const kind = list[k + 2]!;
        const src = (kind & SSL_TCP_SPILL) !== 0 ? dp.sslTcpSpill : c;
        listed.push({ pkt: Buffer.from(src.subarray(list[k]!, list[k]! + list[k + 1]!)), plain: (kind & SSL_TCP_PLAIN) !== 0, spill: (kind & SSL_TCP_SPILL) !== 0 });
      }
      if (list[1] === 1) {
        dp.flushSslTcp();
        return { listed, broken: true, calls };
      }
      pos = list[0]!;
    }
  }
  dp.flushSslTcp(); // the shell does it once per event-loop turn
  return { listed, broken: false, calls };
}

function open(bound: boolean, maxFrame?: number): number {
  const s = nextStream++;
  expect(dp.openSslTcp(s, maxFrame)).toBe(true);
  if (bound) expect(dp.bindSslTcp(s, PEER_ID)).toBe(true);
  return s;
}

function rx(): number {
  return dp.sslCounters(PEER_ID)!.rxPackets;
}

beforeAll(() => {
  tun = LinuxTun.open({ name: `novtt${randomBytes(2).toString('hex')}`, mtu: 1400 });
  addAddress(tun.name, `${SERVER}/24`);
  dp = new NativeDataPlane(tun, [], { logger: captureLogger() });
  // a TCP session has no UDP socket: installSslSession reports the remote unusable for sending
  dp.installSslSession(PEER_ID, {
    bind: -1,
    remote: { family: 4, address: '127.0.0.1', port: 40000 },
    compression: COMP_NONE,
    clientPrefix: P(POOL),
    serverAddress: SERVER,
  });
  expect(dp.setSslKey(PEER_ID, key('server'))).toBe(true);
  expect(dp.setSslVirtualAddress(PEER_ID, CLIENT)).toBe(true);
  clientDc.installKey(key('client'), Date.now());
  dp.addSinkRoute(P(`${CLIENT}/32`), {
    push: (buf, off, len) => {
      if (len >= 28 && buf[off + 9] === 1 && buf[off + 20] === 0) replies.push(buf.readUInt16BE(off + 24) * 0x10000 + buf.readUInt16BE(off + 26));
    },
    flush: () => {},
  });
});

afterAll(() => {
  dp?.close();
  tun?.close();
});

describe('native OpenVPN TCP stream (sslTcpChunk)', () => {
  it('several packets in one chunk, no session yet: every packet listed raw, in place, in order', () => {
    const pkts = [control(14, 1), control(300, 2), control(1, 3)];
    const r = feed(open(false), [framed(...pkts)]);
    expect(r.broken).toBe(false);
    expect(r.listed.map((l) => l.pkt)).toEqual(pkts);
    expect(r.listed.every((l) => !l.plain && !l.spill)).toBe(true);
  });

  it('a stream cut at every byte boundary gives the same packets; the data packet in the middle goes to the TUN, the control packets around it keep their order', () => {
    const a = control(40, 0xa);
    const b = control(90, 0xb);
    for (let cut = 1; ; cut++) {
      const s = framed(a, data(icmpEcho(CLIENT, SERVER, 0x77, cut)), b);
      if (cut >= s.length) break;
      const before = rx();
      const tunBefore = dp.nativeStats().tunTxPackets;
      const r = feed(open(true), [s.subarray(0, cut), s.subarray(cut)]);
      expect(r.broken, `cut ${cut}`).toBe(false);
      expect(r.listed.map((l) => l.pkt), `cut ${cut}`).toEqual([a, b]);
      expect(rx(), `cut ${cut}`).toBe(before + 1);
      expect(dp.nativeStats().tunTxPackets, `cut ${cut}`).toBe(tunBefore + 1);
    }
  });

  it('a stream fed one byte per chunk: packets that crossed chunks are listed from the spill buffer', () => {
    const a = control(25, 0x1);
    const b = control(3, 0x2);
    const s = framed(a, data(icmpEcho(CLIENT, SERVER, 0x78, 1)), b);
    const before = rx();
    const chunks: Buffer[] = [];
    for (let i = 0; i < s.length; i++) chunks.push(Buffer.from(s.subarray(i, i + 1)));
    const r = feed(open(true), chunks);
    expect(r.listed.map((l) => l.pkt)).toEqual([a, b]);
    expect(r.listed.every((l) => l.spill)).toBe(true);
    expect(rx()).toBe(before + 1);
  });

  it('data packets stay queued until the flush, then reach the TUN in one batch; a packet assembled across chunks survives two more crossing packets before the flush', async () => {
    const s = open(true);
    const list = dp.sslTcpList;
    const tunBefore = dp.nativeStats().tunTxPackets;
    const rxBefore = rx();
    // three data packets, each cut in two across chunks, fed without a flush in between
    const pkts = [1, 2, 3].map((i) => framed(data(icmpEcho(CLIENT, SERVER, 0x7a, i))));
    const stream = Buffer.concat(pkts);
    const cuts = [5, pkts[0]!.length + 7, pkts[0]!.length + pkts[1]!.length + 9, stream.length];
    let at = 0;
    for (const c of cuts) {
      const chunk = Buffer.from(stream.subarray(at, c));
      expect(dp.sslTcpChunk(s, chunk, 0, chunk.length)).toBe(0);
      expect(list[0]).toBe(chunk.length);
      at = c;
    }
    expect(rx()).toBe(rxBefore + 3);
    dp.flushSslTcp();
    expect(dp.nativeStats().tunTxPackets).toBe(tunBefore + 3);
    expect(dp.nativeStats().tunWriteErrors).toBe(0);
    // the kernel answers all three: each reached it intact
    await until('three echo replies', () => [1, 2, 3].every((i) => replies.includes(0x7a0000 + i)));
  });

  it('data packets of one chunk reach the TUN in one batch', () => {
    const pkts: Buffer[] = [];
    for (let i = 0; i < 10; i++) pkts.push(data(icmpEcho(CLIENT, SERVER, 0x79, i)));
    const before = rx();
    const tunBefore = dp.nativeStats().tunTxPackets;
    const r = feed(open(true), [framed(...pkts)]);
    expect(r.listed).toHaveLength(0);
    expect(r.calls).toBe(1);
    expect(rx()).toBe(before + 10);
    expect(dp.nativeStats().tunTxPackets).toBe(tunBefore + 10);
  });

  it('a zero length breaks the stream after the packets before it; so does a length above the maximum', () => {
    const a = control(10, 5);
    const z = feed(open(false), [Buffer.concat([framed(a), Buffer.from([0, 0]), framed(control(10, 6))])]);
    expect(z.broken).toBe(true);
    expect(z.listed.map((l) => l.pkt)).toEqual([a]);
    const big = feed(open(false, 100), [framed(a, control(101, 7), control(10, 8))]);
    expect(big.broken).toBe(true);
    expect(big.listed.map((l) => l.pkt)).toEqual([a]);
    // exactly the maximum is fine, also when split inside the length
    const max = control(100, 9);
    const s = framed(max);
    const ok = feed(open(false, 100), [s.subarray(0, 1), s.subarray(1)]);
    expect(ok.broken).toBe(false);
    expect(ok.listed.map((l) => l.pkt)).toEqual([max]);
  });

  it('OCC and client-to-client plaintext are listed for JS in order with the control packets; another peer-id goes up raw', () => {
    const a = control(20, 1);
    const occ = data(OCC_EXIT_PAYLOAD);
    const c2c = icmpEcho(CLIENT, OTHER_CLIENT, 0x80, 1);
    const other = data(icmpEcho(CLIENT, SERVER, 0x80, 2));
    other.writeUIntBE(PEER_ID + 1, 1, 3); // a different peer-id: not this stream's session
    const r = feed(open(true), [framed(a, occ, data(c2c), other)]);
    expect(r.listed.map((l) => [l.plain, l.pkt])).toEqual([
      [false, a],
      [true, OCC_EXIT_PAYLOAD],
      [true, c2c],
      [false, other],
    ]);
  });

  it('more packets than the list holds: the caller resumes where parsing stopped, order intact', () => {
    const pkts: Buffer[] = [];
    for (let i = 0; i < 2500; i++) pkts.push(control(1 + (i % 7), i & 0xff));
    const r = feed(open(false), [framed(...pkts)]);
    expect(r.calls).toBeGreaterThan(1);
    expect(r.listed.map((l) => l.pkt)).toEqual(pkts);
  });

  it('a closed stream is gone; a stream of a removed session lists its data packets raw', () => {
    const s = open(false);
    dp.closeSslTcp(s);
    expect(dp.sslTcpChunk(s, framed(control(3, 1)), 0, 5)).toBe(-1);
    const t = nextStream++;
    expect(dp.openSslTcp(t)).toBe(true);
    expect(dp.bindSslTcp(t, 0xabcd)).toBe(true); // no such session
    const d = data(icmpEcho(CLIENT, SERVER, 0x81, 1));
    const d2 = Buffer.from(d);
    d2.writeUIntBE(0xabcd, 1, 3);
    const r = feed(t, [framed(d2)]);
    expect(r.listed.map((l) => l.pkt)).toEqual([d2]);
  });
});
