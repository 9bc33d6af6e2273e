// The native OpenVPN data channel inside NativeDataPlane, on a real TUN and loopback UDP, with the
// openvpn client played by the test using the TypeScript DataChannel: data in → kernel (ICMP echo)
// → data out through the session's /32 route, the demux of control / unknown peer / float datagrams
// to JS, OCC and client-to-client plaintext to JS, pings, drops and counters, random bytes on the
// socket, detach. Needs root (TUN, routes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { PacketBatch } from '../../../src/common/batch.js';
import { captureLogger } from '../../../src/common/log.js';
import { parseIp } from '../../../src/common/ip.js';
import type { Endpoint } from '../../../src/common/endpoint.js';
import { NativeDataPlane, NATIVE_DP_STAT, OVPN_RESULT_NAMES } from '../../../src/dataplane/native-data-plane.js';
import type { SslDatagramHandler } from '../../../src/dataplane/native-data-plane.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress } from '../../../src/tun/netcfg.js';
import { DataChannel, DATA_IP, DATA_PING, type DataKeyMaterial } from '../../../src/ssl/data/data-channel.js';
import { COMP_NONE } from '../../../src/ssl/data/compression.js';
import { OCC_EXIT_PAYLOAD } from '../../../src/ssl/data/special.js';
import { P } from '../esp/packets.js';
import { icmpEcho, until } from '../../helpers/native-lab.js';

const POOL = '10.215.0.0/24';
const SERVER = '10.215.0.1';
const CLIENT = '10.215.0.2';
const OTHER_CLIENT = '10.215.0.3';
const PEER_ID = 7;
const SEED = randomBytes(144);

function key(side: 'server' | 'client', keyId = 0, cipher = 'AES-256-GCM'): DataKeyMaterial {
  const a = SEED.subarray(0, 64);
  const b = SEED.subarray(64, 128);
  const ivA = SEED.subarray(128, 136);
  const ivB = SEED.subarray(136, 144);
  return side === 'server'
    ? { keyId, cipher, encKey: a, encImplicitIv: ivA, decKey: b, decImplicitIv: ivB }
    : { keyId, cipher, encKey: b, encImplicitIv: ivB, decKey: a, decImplicitIv: ivA };
}

let tun: LinuxTun;
let ssl: NativeUdp;
let client: NativeUdp;
let floater: NativeUdp;
let dp: NativeDataPlane;
let bind: number;
const log = captureLogger();
const clientDc = new DataChannel({ peerId: PEER_ID }, Date.now());
const wire: Buffer[] = []; // what the client socket received
const datagrams: { pkt: Buffer; from: Endpoint }[] = [];
const plaintexts: { peerId: number; pkt: Buffer }[] = [];
let flushes = 0;
const handler: SslDatagramHandler = {
  datagram: (buf, off, len, from) => datagrams.push({ pkt: Buffer.from(buf.subarray(off, off + len)), from }),
  plaintext: (peerId, buf, off, len) => plaintexts.push({ peerId, pkt: Buffer.from(buf.subarray(off, off + len)) }),
  flush: () => flushes++,
};

/** The client seals a payload (an IP packet) and sends it from `from` (default: its own socket). */
function clientSend(payload: Buffer, from: NativeUdp = client): Buffer {
  const out = Buffer.alloc(2048);
  const n = clientDc.encrypt(payload, 0, payload.length, out, 0, Date.now());
  expect(n).toBeGreaterThan(0);
  const pkt = Buffer.from(out.subarray(0, n));
  expect(from.sendTo(pkt, 4, '127.0.0.1', ssl.port)).toBe(true);
  return pkt;
}

/** What the client decrypted so far: IP packets and pings (each wire packet opened once). */
const opened: Buffer[] = [];
let pings = 0;
let openedUpTo = 0;
function openAll(): Buffer[] {
  for (; openedUpTo < wire.length; openedUpTo++) {
    const b = Buffer.from(wire[openedUpTo]!);
    const r = clientDc.decrypt(b, 0, b.length, Date.now());
    if (r === DATA_IP) opened.push(Buffer.from(b.subarray(clientDc.outOff, clientDc.outOff + clientDc.outLen)));
    if (r === DATA_PING) pings++;
  }
  return opened;
}

beforeAll(() => {
  tun = LinuxTun.open({ name: `novt${randomBytes(2).toString('hex')}`, mtu: 1400 });
  addAddress(tun.name, `${SERVER}/24`);
  ssl = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  client = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  floater = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  client.start((b: PacketBatch) => {
    for (let i = 0; i < b.count; i++) wire.push(Buffer.from(b.packet(i)));
  });
  floater.start(() => {});
  dp = new NativeDataPlane(tun, [], { logger: log });
  bind = dp.attachSslUdp(ssl, handler);
  expect(
    dp.installSslSession(PEER_ID, {
      bind,
      remote: { family: 4, address: '127.0.0.1', port: client.port },
      compression: COMP_NONE,
      clientPrefix: P(POOL),
      serverAddress: SERVER,
    }),
  ).toBe(true);
  expect(dp.setSslKey(PEER_ID, key('server'))).toBe(true);
  expect(dp.setSslVirtualAddress(PEER_ID, CLIENT)).toBe(true);
  dp.addSslRoute(P(`${CLIENT}/32`), PEER_ID);
  clientDc.installKey(key('client'), Date.now());
});

afterAll(() => {
  dp?.close();
  tun?.close();
  ssl?.close();
  client?.close();
  floater?.close();
});

describe('NativeDataPlane SSL VPN data channel on a real TUN', () => {
  it('client data in → kernel answers the ping → P_DATA_V2 out by the /32 SSL route; counters on both sides', async () => {
    expect(dp.lookupSslRoute(CLIENT)).toBe(PEER_ID);
    for (let i = 1; i <= 3; i++) clientSend(icmpEcho(CLIENT, SERVER, 0x55, i));
    await until('three echo replies', () => openAll().filter((p) => p[9] === 1 && p[20] === 0).length >= 3);
    const replies = openAll().filter((p) => p[20] === 0);
    expect(replies.map((p) => p.readUInt16BE(26)).sort()).toEqual([1, 2, 3]);
    expect(replies[0]!.subarray(16, 20).equals(parseIp(CLIENT)!.bytes)).toBe(true);
    // the server's packets carry the client's peer-id and key-id 0
    const w = wire[0]!;
    expect(w[0]).toBe(0x48);
    expect(w.readUIntBE(1, 3)).toBe(PEER_ID);
    const c = dp.sslCounters(PEER_ID)!;
    expect(c).toMatchObject({ rxPackets: 3, rxBytes: 3 * 60, sendKeyId: 0, compression: COMP_NONE });
    expect(c.txPackets).toBeGreaterThanOrEqual(3);
    expect(c.msSinceRx).toBeGreaterThanOrEqual(0);
    const st = dp.nativeStats();
    expect(st.sslRxPackets).toBeGreaterThanOrEqual(3);
    expect(st.sslTxPackets).toBeGreaterThanOrEqual(3);
    expect(datagrams).toHaveLength(0); // nothing of the data path reached JS
  });

  it('what the kernel answers while the TUN write runs (an echo reply to the server address) is read in the same wake-up', async () => {
    // the reply is queued on the TUN during write() when the softirq runs inline; under load it
    // may be deferred to ksoftirqd, so a few pings are allowed for one to be caught
    for (let i = 1; i <= 20 && dp.nativeStats().tunReadsAfterWrite === 0; i++) {
      const before = openAll().length;
      clientSend(icmpEcho(CLIENT, SERVER, 0x66, i));
      await until('an echo reply', () => openAll().length > before);
    }
    expect(dp.nativeStats().tunReadsAfterWrite).toBeGreaterThan(0);
  });

  it('control packets, unknown peer-ids and a known peer-id from another address go to JS as datagrams, with the sender', async () => {
    const hardReset = Buffer.concat([Buffer.from([0x38]), randomBytes(13)]);
    client.sendTo(hardReset, 4, '127.0.0.1', ssl.port);
    const unknown = Buffer.from(clientSend(icmpEcho(CLIENT, SERVER, 0x56, 1)));
    unknown[3] = 0x99; // another peer-id: sent already, but let us send it again altered
    client.sendTo(unknown, 4, '127.0.0.1', ssl.port);
    const floated = clientSend(icmpEcho(CLIENT, SERVER, 0x57, 1), floater);
    await until('three datagrams', () => datagrams.length >= 3);
    expect(datagrams[0]!.pkt.equals(hardReset)).toBe(true);
    expect(datagrams[0]!.from).toEqual({ family: 4, address: '127.0.0.1', port: client.port });
    expect(datagrams.some((d) => d.pkt.equals(unknown))).toBe(true);
    const f = datagrams.find((d) => d.pkt.equals(floated))!;
    expect(f.from.port).toBe(floater.port);
    expect(flushes).toBeGreaterThan(0);
    // JS decides the float: the packet authenticates with the session's keys, then the remote moves
    const b = Buffer.from(f.pkt);
    expect(dp.sslDecrypt(PEER_ID, b, 0, b.length)).toBe(0);
    expect(b.subarray(dp.sslSpan[0]!, dp.sslSpan[0]! + 20).subarray(12, 16).equals(parseIp(CLIENT)!.bytes)).toBe(true);
    expect(dp.sslDecrypt(PEER_ID, Buffer.from(f.pkt), 0, f.pkt.length)).toBe(OVPN_RESULT_NAMES.indexOf('replay'));
    expect(dp.setSslRemote(PEER_ID, bind, { family: 4, address: '127.0.0.1', port: floater.port })).toBe(true);
    const n = datagrams.length;
    const before = dp.sslCounters(PEER_ID)!.rxPackets;
    clientSend(icmpEcho(CLIENT, SERVER, 0x58, 1), floater);
    await until('the floated client decrypted natively', () => dp.sslCounters(PEER_ID)!.rxPackets === before + 1);
    expect(datagrams.length).toBe(n);
    expect(dp.setSslRemote(PEER_ID, bind, { family: 4, address: '127.0.0.1', port: client.port })).toBe(true);
  });

  it('OCC and client-to-client packets reach JS as plaintext; pings are counted, not forwarded', async () => {
    const pingsBefore = dp.sslCounters(PEER_ID)!.pingsIn;
    const out = Buffer.alloc(256);
    const n = clientDc.encryptPing(out, 0, Date.now());
    client.sendTo(out.subarray(0, n), 4, '127.0.0.1', ssl.port);
    clientSend(OCC_EXIT_PAYLOAD);
    const c2c = icmpEcho(CLIENT, OTHER_CLIENT, 0x59, 1);
    clientSend(c2c);
    await until('two plaintexts and a ping', () => plaintexts.length >= 2 && dp.sslCounters(PEER_ID)!.pingsIn === pingsBefore + 1);
    expect(plaintexts[0]).toEqual({ peerId: PEER_ID, pkt: OCC_EXIT_PAYLOAD });
    expect(plaintexts[1]!.pkt.equals(c2c)).toBe(true);
  });

  it('sendSslPing and sslSend encrypt for the client; the client sees a ping and the packet', async () => {
    const pingsSeen = (openAll(), pings);
    expect(dp.sendSslPing(PEER_ID)).toBe(true);
    const pkt = icmpEcho(SERVER, CLIENT, 0x60, 9);
    expect(dp.sslSend(PEER_ID, pkt, 0, pkt.length)).toBe(true);
    await until('ping and packet at the client', () => (openAll(), pings === pingsSeen + 1 && opened.some((p) => p.equals(pkt))));
    expect(dp.sslCounters(PEER_ID)!.pingsOut).toBe(1);
    expect(dp.sslSend(99, pkt, 0, pkt.length)).toBe(false); // no such session
  });

  it('drops replays, tampering, a wrong inner source and IPv6, counted per session', async () => {
    const before = dp.sslCounters(PEER_ID)!.drops;
    const p = clientSend(icmpEcho(CLIENT, SERVER, 0x61, 1));
    client.sendTo(p, 4, '127.0.0.1', ssl.port); // replay
    // a tampered packet (one ciphertext bit) that was never sent intact
    const out = Buffer.alloc(2048);
    const ip = icmpEcho(CLIENT, SERVER, 0x61, 4);
    const n = clientDc.encrypt(ip, 0, ip.length, out, 0, Date.now());
    out[30]! ^= 0x80;
    client.sendTo(out.subarray(0, n), 4, '127.0.0.1', ssl.port);
    clientSend(icmpEcho('10.215.0.77', SERVER, 0x61, 5)); // spoofed inner source
    const v6 = Buffer.alloc(48);
    v6[0] = 0x60;
    clientSend(v6);
    await until('drops counted', () => {
      const d = dp.sslCounters(PEER_ID)!.drops;
      return (d.replay ?? 0) > (before.replay ?? 0) && (d.badTag ?? 0) > (before.badTag ?? 0) && (d.badSource ?? 0) > 0 && (d.notIpv4 ?? 0) > 0;
    });
    expect(dp.nativeStats().sslDrops).toBeGreaterThanOrEqual(4);
  });

  it('random bytes on the SSL socket never crash it: data-looking garbage is dropped, the rest goes to JS; the session still works', async () => {
    const n0 = datagrams.length;
    let sent = 0;
    for (let i = 0; i < 400; i++) {
      const len = i % 50 === 0 ? 0 : 1 + ((i * 37) % 1500);
      const b = randomBytes(len);
      if (i % 3 === 0 && len >= 4) {
        b[0] = (9 << 3) | (i & 7); // P_DATA_V2 of our peer-id: must be authenticated to count
        b.writeUIntBE(PEER_ID, 1, 3);
      } else if (i % 3 === 1 && len >= 1) {
        b[0] = 6 << 3; // P_DATA_V1 from the session's address
      }
      if (client.sendTo(b, 4, '127.0.0.1', ssl.port)) sent++;
    }
    expect(sent).toBeGreaterThan(390);
    await until('garbage processed', () => dp.nativeStats().udpRxDatagrams >= 400);
    await new Promise((r) => setTimeout(r, 50));
    expect(datagrams.length).toBeGreaterThan(n0); // non-data garbage reached JS
    const before = opened.length;
    clientSend(icmpEcho(CLIENT, SERVER, 0x62, 1));
    await until('echo reply after the garbage', () => openAll().length > before);
  });

  it('removeSslSession: its data then goes to JS; detach stops polling the socket', async () => {
    expect(dp.removeSslSession(PEER_ID)).toBe(true);
    expect(dp.sslCounters(PEER_ID)).toBeUndefined();
    const n = datagrams.length;
    clientSend(icmpEcho(CLIENT, SERVER, 0x63, 1));
    await until('datagram to JS', () => datagrams.length > n);
    expect(dp.removeSslRoute(P(`${CLIENT}/32`))).toBe(true);
    expect(dp.lookupSslRoute(CLIENT)).toBe(-1);
    dp.detachSslUdp(bind);
    const rx = dp.nativeStats().udpRxDatagrams;
    client.sendTo(Buffer.from([0x38, 1, 2, 3]), 4, '127.0.0.1', ssl.port);
    await new Promise((r) => setTimeout(r, 100));
    expect(dp.nativeStats().udpRxDatagrams).toBe(rx);
    expect(NATIVE_DP_STAT.sslDrops).toBe(23);
  });
});
