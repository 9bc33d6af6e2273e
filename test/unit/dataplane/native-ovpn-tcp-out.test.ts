// OpenVPN over TCP in the native data plane, the send side (SslOffload.setSslTcpWriter:
// Engine::OutboundSsl / SslSend / DeliverTcpOut in src/native/engine/engine.cc) on a real TUN, with
// the openvpn client played by the test using the TypeScript DataChannel: packets the kernel routes
// to the client's /32 are encrypted in C++ and framed (2-byte big-endian length) into one Buffer per
// batch; the client decrypts every frame, packet-ids increase across routed packets, sslSend
// payloads and pings; a batch of N packets is one writer call. Needs root (TUN).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { captureLogger } from '../../../src/common/log.js';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress } from '../../../src/tun/netcfg.js';
import { DATA_IP, DATA_PING, DataChannel } from '../../../src/ssl/data/data-channel.js';
import { COMP_NONE } from '../../../src/ssl/data/compression.js';
import { P } from '../esp/packets.js';
import { icmpEcho, mirroredDataKeys, until } from '../../helpers/native-lab.js';

const POOL = '10.217.0.0/24';
const SERVER = '10.217.0.1';
const CLIENT = '10.217.0.2';
const PEER_ID = 11;
const key = mirroredDataKeys();

let tun: LinuxTun;
let dp: NativeDataPlane;
let udp: Socket;
const clientDc = new DataChannel({ peerId: PEER_ID }, Date.now());
/** writer calls: the Buffer, the frame count native code reported, and the frames as the client decrypted them */
const writes: { buf: Buffer; frames: number; decoded: Frame[] }[] = [];

interface Frame {
  packetId: number;
  result: number;
  payload: Buffer;
}

/** splits one writer Buffer into frames and decrypts each as the client would */
function unframe(buf: Buffer): Frame[] {
  const out: Frame[] = [];
  let o = 0;
  while (o < buf.length) {
    expect(o + 2).toBeLessThanOrEqual(buf.length);
    const len = buf.readUInt16BE(o);
    expect(len).toBeGreaterThan(0);
    expect(o + 2 + len).toBeLessThanOrEqual(buf.length);
    const pkt = Buffer.from(buf.subarray(o + 2, o + 2 + len));
    expect(pkt[0]! >> 3).toBe(9); // P_DATA_V2
    expect(pkt.readUIntBE(1, 3)).toBe(PEER_ID);
    const packetId = pkt.readUInt32BE(4);
    const result = clientDc.decrypt(pkt, 0, len, Date.now());
    out.push({ packetId, result, payload: result === DATA_IP ? Buffer.from(pkt.subarray(clientDc.outOff, clientDc.outOff + clientDc.outLen)) : Buffer.alloc(0) });
    o += 2 + len;
  }
  return out;
}

function allFrames(): Frame[] {
  return writes.flatMap((w) => w.decoded);
}

/** sends n UDP datagrams to the client through the TUN, back to back (before the data plane polls) */
function burst(n: number, tag: number): void {
  for (let i = 0; i < n; i++) {
    const p = Buffer.alloc(100, tag);
    p.writeUInt32BE(i, 0);
    udp.send(p, 9, CLIENT);
  }
}

beforeAll(async () => {
  tun = LinuxTun.open({ name: `novto${randomBytes(2).toString('hex')}`, mtu: 1400 });
  addAddress(tun.name, `${SERVER}/24`);
  dp = new NativeDataPlane(tun, [], { logger: captureLogger() });
  dp.installSslSession(PEER_ID, {
    bind: -1,
    remote: { family: 4, address: '127.0.0.1', port: 40001 },
    compression: COMP_NONE,
    clientPrefix: P(POOL),
    serverAddress: SERVER,
  });
  expect(dp.setSslKey(PEER_ID, key('server'))).toBe(true);
  expect(dp.setSslVirtualAddress(PEER_ID, CLIENT)).toBe(true);
  clientDc.installKey(key('client'), Date.now());
  expect(dp.setSslTcpWriter(PEER_ID, (buf, frames) => writes.push({ buf, frames, decoded: unframe(buf) }))).toBe(true);
  dp.addSslRoute(P(`${CLIENT}/32`), PEER_ID);
  udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, SERVER, () => r()));
});

afterAll(() => {
  udp?.close();
  dp?.close();
  tun?.close();
});

describe('native OpenVPN TCP send side (setSslTcpWriter)', () => {
  it('routed packets are encrypted, framed and handed over whole; the client decrypts every one', async () => {
    writes.length = 0;
    burst(5, 0x11);
    await until('five frames', () => allFrames().length >= 5);
    const frames = allFrames();
    expect(frames).toHaveLength(5);
    expect(writes.reduce((n, w) => n + w.frames, 0)).toBe(5);
    for (const f of frames) {
      expect(f.result).toBe(DATA_IP);
      expect(f.payload[9]).toBe(17); // UDP
      expect(f.payload.subarray(16, 20)).toEqual(Buffer.from([10, 217, 0, 2]));
      expect(f.payload[28 + 4]).toBe(0x11);
    }
  });

  it('a batch of N packets is one writer call, and packet-ids increase by one', async () => {
    writes.length = 0;
    const before = dp.nativeStats().jsCallbacks;
    burst(40, 0x22);
    await until('forty frames', () => writes.reduce((n, w) => n + w.frames, 0) >= 40);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.frames).toBe(40);
    expect(dp.nativeStats().jsCallbacks).toBe(before + 1);
    const ids = writes[0]!.decoded.map((f) => f.packetId);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBe(ids[i - 1]! + 1);
  });

  it('sslSend and the keepalive ping go through the same session: framed at once, one packet-id sequence', async () => {
    writes.length = 0;
    burst(1, 0x33);
    await until('one frame', () => writes.length === 1);
    const last = writes[0]!.decoded[0]!.packetId;
    const echo = icmpEcho(SERVER, CLIENT, 0x90, 1);
    expect(dp.sslSend(PEER_ID, echo, 0, echo.length)).toBe(true);
    expect(writes).toHaveLength(2); // before sslSend returned
    expect(dp.sendSslPing(PEER_ID)).toBe(true);
    expect(writes).toHaveLength(3);
    const [sent] = writes[1]!.decoded;
    const [ping] = writes[2]!.decoded;
    expect(sent!.result).toBe(DATA_IP);
    expect(sent!.payload).toEqual(echo);
    expect(sent!.packetId).toBe(last + 1);
    expect(ping!.result).toBe(DATA_PING);
    expect(ping!.packetId).toBe(last + 2);
    const c = dp.sslCounters(PEER_ID)!;
    expect(c.pingsOut).toBeGreaterThanOrEqual(1);
    expect(c.txPackets).toBeGreaterThanOrEqual(47);
  });

  it('without a writer the session has no socket: routed packets drop (noBind), nothing is written', async () => {
    expect(dp.setSslTcpWriter(PEER_ID, null)).toBe(true);
    writes.length = 0;
    const drops = dp.sslCounters(PEER_ID)!.drops.noBind ?? 0;
    burst(3, 0x44);
    await until('three drops', () => (dp.sslCounters(PEER_ID)!.drops.noBind ?? 0) >= drops + 3);
    expect(writes).toHaveLength(0);
    expect(dp.setSslTcpWriter(0xabcdef, () => {})).toBe(false); // no such session
  });
});
