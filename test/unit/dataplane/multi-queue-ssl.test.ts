// The SSL VPN's native data channel on the multi-queue data plane (src/dataplane/multi-queue.ts,
// point 7): the peer-id steering program of the SSL socket's SO_REUSEPORT group, then a 2-queue
// MultiQueueDataPlane over a real multi-queue TUN and loopback sockets, with openvpn clients played by
// the TypeScript DataChannel: each session decrypted on the queue its peer-id names, one session's
// outbound packets encrypted on both queues with every packet-id used once, floats reaching JS only
// once authenticated (a replayed one does not), counters summed, learned compression framing and
// packet-id exhaustion shared, rekey and removal on every queue.
// Needs root (TUN, routes) and the built worker (dist/).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { captureLogger } from '../../../src/common/log.js';
import type { Endpoint } from '../../../src/common/endpoint.js';
import type { SslDatagramHandler } from '../../../src/dataplane/data-plane.js';
import { MultiQueueDataPlane, openMultiQueueTun } from '../../../src/dataplane/multi-queue.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { addAddress, addRoute } from '../../../src/tun/netcfg.js';
import { DataChannel, DATA_IP, type DataKeyMaterial } from '../../../src/ssl/data/data-channel.js';
import { COMP_LZO_STUB, COMP_NONE } from '../../../src/ssl/data/compression.js';
import { P } from '../esp/packets.js';
import { icmpEcho, until } from '../../helpers/native-lab.js';

const WORKER = new URL('../../../dist/dataplane/multi-queue-worker.js', import.meta.url).pathname;
const UNTIL_MS = 4000;
const POOL = '10.216.0.0/24';
const SERVER = '10.216.0.1';
/** peer-id 4 is steered to queue 0, 5 to queue 1 */
const CLIENTS = [
  { peerId: 4, vaddr: '10.216.0.4' },
  { peerId: 5, vaddr: '10.216.0.5' },
] as const;

describe('NativeUdp.steerByPeerId (loopback SO_REUSEPORT group of 3)', () => {
  it('P_DATA_V2 goes to member peer-id % 3; control, P_DATA_V1 and datagrams shorter than 4 bytes to member 0', async () => {
    const g = NativeUdp.bind({ address: '127.0.0.1', port: 0, reusePort: true });
    const members = [g, NativeUdp.bind({ address: '127.0.0.1', port: g.port, reusePort: true }), NativeUdp.bind({ address: '127.0.0.1', port: g.port, reusePort: true })];
    g.steerByPeerId(3);
    const got: string[][] = [[], [], []];
    members.forEach((m, i) => m.start((b) => {
      for (let k = 0; k < b.count; k++) got[i]!.push(Buffer.from(b.packet(k)).toString('hex'));
    }));
    const v2 = (keyId: number, peerId: number): Buffer =>
      Buffer.from([(9 << 3) | keyId, peerId >>> 16, (peerId >>> 8) & 0xff, peerId & 0xff, 0, 0, 0, 1, 0xaa]);
    const cases: [Buffer, number][] = [
      [v2(0, 0), 0],
      [v2(0, 1), 1],
      [v2(0, 2), 2],
      [v2(3, 4), 1], // the key-id bits do not matter
      [v2(1, 0xfffffe), 0xfffffe % 3],
      [v2(0, 0x010005), 0x010005 % 3], // all three peer-id bytes count
      [Buffer.from([(9 << 3) | 0, 0, 0, 1]), 1], // exactly 4 bytes
      [Buffer.from([(6 << 3) | 0, 0, 0, 0, 2, 0xbb]), 0], // P_DATA_V1
      [Buffer.from([(7 << 3) | 0, 1, 2, 3, 4, 5, 6, 7, 8]), 0], // P_CONTROL_HARD_RESET_CLIENT_V2
      [Buffer.from([(4 << 3) | 0, 0, 0, 1, 9]), 0], // P_CONTROL_V1
      [Buffer.from([(9 << 3) | 0, 0, 1]), 0], // P_DATA_V2 opcode but 3 bytes: too short
      [Buffer.from([(9 << 3) | 0]), 0],
    ];
    try {
      for (const [pkt] of cases) {
        const s = createSocket('udp4');
        await new Promise<void>((res) => s.send(pkt, g.port, '127.0.0.1', () => res()));
        s.close();
      }
      await until('every datagram', () => got.flat().length === cases.length, UNTIL_MS);
      for (const [pkt, member] of cases) expect(got[member], pkt.toString('hex')).toContain(pkt.toString('hex'));
    } finally {
      for (const m of members) m.close();
    }
  });
});

function keys(seed: Buffer, keyId: number): { server: DataKeyMaterial; client: DataKeyMaterial } {
  const a = seed.subarray(0, 64);
  const b = seed.subarray(64, 128);
  const ivA = seed.subarray(128, 136);
  const ivB = seed.subarray(136, 144);
  const cipher = 'AES-256-GCM';
  return {
    server: { keyId, cipher, encKey: a, encImplicitIv: ivA, decKey: b, decImplicitIv: ivB },
    client: { keyId, cipher, encKey: b, encImplicitIv: ivB, decKey: a, decImplicitIv: ivA },
  };
}

interface Client {
  peerId: number;
  vaddr: string;
  sock: NativeUdp;
  dc: DataChannel;
  wire: Buffer[];
}

describe('MultiQueueDataPlane: the SSL VPN data channel on 2 queues', () => {
  const tunName = `mqs${randomBytes(2).toString('hex')}`;
  let dp: MultiQueueDataPlane;
  let ssl: NativeUdp;
  let floater: NativeUdp;
  let bind: number;
  const clients: Client[] = [];
  const log = captureLogger();
  const datagrams: { pkt: Buffer; from: Endpoint }[] = [];
  const handler: SslDatagramHandler = {
    datagram: (buf, off, len, from) => datagrams.push({ pkt: Buffer.from(buf.subarray(off, off + len)), from }),
    plaintext: () => {},
    flush: () => {},
  };
  const seed = randomBytes(144);

  function send(c: Client, payload: Buffer, from: NativeUdp = c.sock): Buffer {
    const out = Buffer.alloc(2048);
    const n = c.dc.encrypt(payload, 0, payload.length, out, 0, Date.now());
    const pkt = Buffer.from(out.subarray(0, n));
    expect(from.sendTo(pkt, 4, '127.0.0.1', ssl.port)).toBe(true);
    return pkt;
  }

  beforeAll(async () => {
    spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: new URL('../../../', import.meta.url).pathname, timeout: 180_000 });
    if (!existsSync(WORKER)) throw new Error(`build did not produce ${WORKER}`);
    const tuns = openMultiQueueTun(tunName, 1400, 2, false);
    addAddress(tunName, `${SERVER}/24`);
    addRoute('10.216.1.0/24', tunName);
    dp = await MultiQueueDataPlane.start({ tuns, binds: [[], []] }, { logger: log, gso: false });
    expect(dp.sslOffload).toBe(dp);
    expect(dp.sslReusePort).toBe(true);
    ssl = NativeUdp.bind({ address: '127.0.0.1', port: 0, reusePort: true });
    floater = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    floater.start(() => {});
    bind = dp.attachSslUdp(ssl, handler);
    const k = keys(seed, 0);
    for (const { peerId, vaddr } of CLIENTS) {
      const sock = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
      const c: Client = { peerId, vaddr, sock, dc: new DataChannel({ peerId }, Date.now()), wire: [] };
      sock.start((b) => {
        for (let i = 0; i < b.count; i++) c.wire.push(Buffer.from(b.packet(i)));
      });
      c.dc.installKey(k.client, Date.now());
      expect(dp.installSslSession(peerId, { bind, remote: { family: 4, address: '127.0.0.1', port: sock.port }, compression: COMP_NONE, clientPrefix: P(POOL), serverAddress: SERVER })).toBe(true);
      expect(dp.setSslKey(peerId, k.server)).toBe(true);
      expect(dp.setSslVirtualAddress(peerId, vaddr)).toBe(true);
      dp.addSslRoute(P(`${vaddr}/32`), peerId);
      clients.push(c);
    }
  }, 200_000);

  afterAll(async () => {
    dp?.detachSslUdp(bind);
    await dp?.close();
    ssl?.close();
    floater?.close();
    for (const c of clients) c.sock.close();
  });

  it('each session is decrypted on the queue its peer-id names; the kernel answers through the session', async () => {
    for (const c of clients) for (let i = 1; i <= 5; i++) send(c, icmpEcho(c.vaddr, SERVER, 0x40 + c.peerId, i));
    await until('echo replies to both clients', () => clients.every((c) => c.wire.length >= 5), UNTIL_MS);
    const q = dp.queueStats();
    expect(q[0]!.sslRxPackets).toBe(5);
    expect(q[1]!.sslRxPackets).toBe(5);
    for (const c of clients) {
      for (const w of c.wire.splice(0)) {
        expect(w[0]! >> 3).toBe(9);
        expect(c.dc.decrypt(w, 0, w.length, Date.now())).toBe(DATA_IP);
      }
    }
    await dp.refreshCounters();
    for (const c of clients) {
      const s = dp.sslCounters(c.peerId)!;
      expect(s.rxPackets).toBe(5);
      expect(s.txPackets).toBe(5);
    }
    expect(dp.nativeStats().sslRxPackets).toBe(10);
  });

  it('one session encrypted on both queues at once (TUN flows spread): every packet-id used exactly once', async () => {
    const c = clients[1]!;
    const socks = Array.from({ length: 24 }, () => createSocket('udp4'));
    const before = dp.queueStats().map((q) => q.sslTxPackets);
    const payload = Buffer.alloc(200, 0x61);
    for (let r = 0; r < 20; r++) {
      await Promise.all(socks.map((s) => new Promise<void>((res) => s.send(payload, 9, c.vaddr, () => res()))));
      const echo = icmpEcho(SERVER, c.vaddr, 1, r);
      expect(dp.sslSend(c.peerId, echo, 0, echo.length)).toBe(true); // queue 0 sends too
    }
    for (const s of socks) s.close();
    await until('500 packets', () => c.wire.length >= 500, UNTIL_MS).catch((e) => {
      throw new Error(`${(e as Error).message}: got ${c.wire.length}, queues ${JSON.stringify(dp.queueStats().map((q) => [q.tunRxPackets, q.sslTxPackets, q.sslDrops]))}`);
    });
    const ids = c.wire.map((w) => w.readUInt32BE(4));
    expect(new Set(ids).size).toBe(500);
    expect(Math.max(...ids)).toBe(505); // 5 replies before
    const after = dp.queueStats().map((q) => q.sslTxPackets);
    expect(after[0]! - before[0]!).toBeGreaterThan(20); // the worker thread took part, and queue 0 beyond its sslSend
    expect(after[1]! - before[1]!).toBeGreaterThan(0);
    for (const w of c.wire.splice(0)) expect(c.dc.decrypt(w, 0, w.length, Date.now())).toBe(DATA_IP);
    expect(dp.sslCounters(c.peerId)!.sendPacketId).toBe(505);
  });

  it('a float on a worker queue reaches JS only once authenticated there; its replay does not', async () => {
    const c = clients[1]!;
    datagrams.length = 0;
    const pkt = send(c, icmpEcho(c.vaddr, SERVER, 0x99, 1), floater);
    await until('the float datagram in JS', () => datagrams.length === 1, UNTIL_MS);
    expect(datagrams[0]!.pkt.equals(pkt)).toBe(true);
    expect(datagrams[0]!.from.port).toBe(floater.port);
    const drops = dp.nativeStats().sslDrops;
    floater.sendTo(pkt, 4, '127.0.0.1', ssl.port); // replayed
    const forged = Buffer.from(pkt);
    forged[forged.length - 1]! ^= 1;
    floater.sendTo(forged, 4, '127.0.0.1', ssl.port);
    await until('two drops', () => dp.nativeStats().sslDrops === drops + 2, UNTIL_MS);
    expect(datagrams).toHaveLength(1);
    // queue 0 (JS) decides with its own copy of the session, which has not seen the packet
    const copy = Buffer.from(pkt);
    expect(dp.sslDecrypt(c.peerId, copy, 0, copy.length)).toBe(0);
  });

  it('compression framing a worker queue learned from the client reaches every queue', async () => {
    const k = keys(randomBytes(144), 0);
    const sock = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    const c: Client = { peerId: 7, vaddr: '10.216.0.7', sock, dc: new DataChannel({ peerId: 7, compression: COMP_LZO_STUB }, Date.now()), wire: [] };
    sock.start((b) => {
      for (let i = 0; i < b.count; i++) c.wire.push(Buffer.from(b.packet(i)));
    });
    clients.push(c);
    c.dc.installKey(k.client, Date.now());
    expect(dp.installSslSession(7, { bind, remote: { family: 4, address: '127.0.0.1', port: sock.port }, compression: COMP_NONE, clientPrefix: P(POOL), serverAddress: SERVER })).toBe(true);
    expect(dp.setSslKey(7, k.server)).toBe(true);
    expect(dp.setSslVirtualAddress(7, c.vaddr)).toBe(true);
    dp.addSslRoute(P(`${c.vaddr}/32`), 7);
    await new Promise((r) => setTimeout(r, 100));
    send(c, icmpEcho(c.vaddr, SERVER, 0x70, 1)); // framed (0xfa), decrypted on queue 1
    await until('the reply', () => c.wire.length >= 1, UNTIL_MS);
    expect(dp.sslCounters(7)!.compression).toBe(COMP_NONE); // queue 0 has not seen a packet of it
    await dp.refreshCounters();
    expect(dp.sslCounters(7)!.compression).toBe(COMP_LZO_STUB);
    await dp.refreshCounters();
    expect(dp.sslCounters(7)!.compression).toBe(COMP_LZO_STUB); // queue 0's own copy now frames too
    expect(dp.removeSslRoute(P(`${c.vaddr}/32`))).toBe(true);
    expect(dp.removeSslSession(7)).toBe(true);
  });

  it('the shared packet-id never wraps: past 2^32 - 1 every queue drops (packetIdExhausted)', async () => {
    const c = clients[0]!;
    const k = keys(randomBytes(144), 2);
    expect(dp.setSslKey(c.peerId, { ...k.server, initialSendPacketId: 0xfffffffe })).toBe(true);
    c.dc.installKey(k.client, Date.now());
    await new Promise((r) => setTimeout(r, 100));
    c.wire.length = 0;
    const echo = icmpEcho(SERVER, c.vaddr, 2, 1);
    expect(dp.sslSend(c.peerId, echo, 0, echo.length)).toBe(true);
    expect(dp.sslSend(c.peerId, echo, 0, echo.length)).toBe(false);
    await until('the last packet-id', () => c.wire.length === 1, UNTIL_MS);
    expect(c.wire[0]!.readUInt32BE(4)).toBe(0xffffffff);
    expect(dp.sslCounters(c.peerId)!.sendPacketId).toBe(0xffffffff);
    expect(dp.sslCounters(c.peerId)!.drops.packetIdExhausted).toBe(1);
  });

  it('a rekey (new key-id) and a removal reach every queue', async () => {
    const k = keys(randomBytes(144), 1);
    for (const c of clients.slice(0, 2)) {
      expect(dp.setSslKey(c.peerId, k.server)).toBe(true);
      c.dc.installKey(k.client, Date.now());
      c.wire.length = 0;
    }
    await new Promise((r) => setTimeout(r, 100)); // the workers take the key from their message queue
    for (const c of clients.slice(0, 2)) send(c, icmpEcho(c.vaddr, SERVER, 0x50, 1));
    await until('replies under key-id 1', () => clients.slice(0, 2).every((c) => c.wire.length >= 1), UNTIL_MS);
    for (const c of clients.slice(0, 2)) {
      expect(c.wire[0]![0]! & 7).toBe(1);
      expect(c.wire[0]!.readUInt32BE(4)).toBe(1); // a new key starts its own packet-ids
    }
    const rx = dp.queueStats().map((q) => q.sslRxPackets);
    expect(dp.removeSslSession(5)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    datagrams.length = 0;
    send(clients[1]!, icmpEcho(clients[1]!.vaddr, SERVER, 0x50, 2));
    await until('the unknown peer-id in JS', () => datagrams.length === 1, UNTIL_MS);
    expect(dp.queueStats()[1]!.sslRxPackets).toBe(rx[1]); // queue 1 no longer knows peer-id 5
    expect(dp.sslCounters(5)).toBeUndefined();
  });
});
