// MultiQueueDataPlane in this process over a real 2-queue TUN and a loopback SO_REUSEPORT pair: the
// kernel spreads one-way flows over both TUN queues (queue 1 runs in a worker thread), so one
// outbound SA is used by two threads at once. Also the socket options underneath: SO_REUSEADDR off,
// SO_REUSEPORT groups steered by SPI. Needs root (TUN, routes) and the built worker (dist/).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parsePrefix } from '../../../src/common/ip.js';
import { IoError, VpnError } from '../../../src/common/errors.js';
import { captureLogger } from '../../../src/common/log.js';
import type { Endpoint } from '../../../src/common/endpoint.js';
import type { PacketSink } from '../../../src/common/packet-sink.js';
import type { SaEvent, SaParams } from '../../../src/dataplane/data-plane.js';
import { MultiQueueDataPlane, bindQueueSockets, openMultiQueueTun, resolveQueues } from '../../../src/dataplane/multi-queue.js';
import { loadNativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { addAddress, addRoute } from '../../../src/tun/netcfg.js';
import { until } from '../../helpers/native-lab.js';

const WORKER = new URL('../../../dist/dataplane/multi-queue-worker.js', import.meta.url).pathname;
const SPI_OUT = 0x33330001;
const SPI_OUT_SHORT = 0x33330003; // soft lifetime of 6 packets
const SPI_OUT_HARD = 0x33330005; // hard lifetime of 10 packets
const SPI_OUT_ESN = 0x33330007; // extended sequence numbers, starting just below 2^32
const SPI_IN = 0x44440001;
const HARD_NET = '10.214.5.0/24';
const LOCAL_NET = '10.214.1.0/24';
const REMOTE_NET = '10.214.2.0/24';
const SHORT_NET = '10.214.4.0/24';
const SINK_NET = '10.214.3.0/24';
const ESN_NET = '10.214.6.0/24';
/** this file's wait bound (the shared until() defaults to 3 s) */
const UNTIL_MS = 4000;
const TUN_NAME = `mqu${randomBytes(2).toString('hex')}`;

/** One datagram from each of `ports` fresh sockets, `rounds` times: one-way flows the TUN spreads. */
async function sendFlows(dst: string, ports: number, rounds: number): Promise<void> {
  const socks = Array.from({ length: ports }, () => createSocket('udp4'));
  const payload = Buffer.alloc(200, 0x61);
  for (let r = 0; r < rounds; r++) {
    await Promise.all(socks.map((s) => new Promise<void>((res) => s.send(payload, 9, dst, () => res()))));
  }
  for (const s of socks) s.close();
}

function sa(direction: 'in' | 'out', spi: number, peerPort: number, localPort: number, extra: Partial<SaParams> = {}): SaParams {
  return {
    direction,
    spi,
    encr: 20,
    encrKeyBits: 128,
    integ: 0,
    encrKey: randomBytes(20),
    integKey: Buffer.alloc(0),
    localAddr: '127.0.0.1',
    localPort,
    remoteAddr: '127.0.0.1',
    remotePort: peerPort,
    localTs: [parsePrefix(LOCAL_NET)!, parsePrefix(SINK_NET)!],
    remoteTs: [parsePrefix('0.0.0.0/0')!],
    ...extra,
  };
}

describe('SO_REUSEADDR / SO_REUSEPORT / steering by SPI (loopback)', () => {
  it('a second socket on a bound port fails to bind unless every member asked for SO_REUSEPORT', () => {
    const a = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    try {
      expect(() => NativeUdp.bind({ address: '127.0.0.1', port: a.port })).toThrow(IoError);
      expect(() => NativeUdp.bind({ address: '127.0.0.1', port: a.port, reusePort: true })).toThrow(/address already in use/i);
    } finally {
      a.close();
    }
    const g = NativeUdp.bind({ address: '127.0.0.1', port: 0, reusePort: true });
    const extra = bindQueueSockets(g, 3);
    expect(extra.map((u) => u.port)).toEqual([g.port, g.port]);
    for (const u of [g, ...extra]) u.close();
  });

  it('members get datagrams by first-word % N, whatever the source port; IKE and keepalives go to member 0', async () => {
    const g = NativeUdp.bind({ address: '127.0.0.1', port: 0, reusePort: true });
    const [m1] = bindQueueSockets(g, 2);
    const got = [0, 0];
    g.start((b) => (got[0] += b.count));
    m1!.start((b) => (got[1] += b.count));
    try {
      const spi = (v: number) => Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff, 0, 0, 0, 1, 9, 9]);
      for (const [payload, n] of [
        [spi(0xabc00002), 10],
        [spi(0xabc00003), 10],
        [Buffer.from([0, 0, 0, 0, 1, 2, 3]), 3],
        [Buffer.from([0xff]), 3],
      ] as const) {
        for (let i = 0; i < n; i++) {
          const s = createSocket('udp4');
          await new Promise<void>((res) => s.send(payload, g.port, '127.0.0.1', () => res()));
          s.close();
        }
      }
      await until('all 26 datagrams', () => got[0]! + got[1]! === 26, UNTIL_MS);
      expect(got).toEqual([16, 10]);
    } finally {
      g.close();
      m1!.close();
    }
  });

  it('resolveQueues: auto is one queue, numbers are clamped to 1..16', () => {
    expect(resolveQueues('auto')).toBe(1);
    expect(resolveQueues(undefined)).toBe(1);
    expect(resolveQueues(2)).toBe(2);
    expect(resolveQueues(64)).toBe(16);
  });
});

describe('MultiQueueDataPlane.start failure', () => {
  it('rejects with IoError when a worker cannot start, and closes the TUN queue fds it was given', async () => {
    const name = `mqf${randomBytes(2).toString('hex')}`;
    const tuns = openMultiQueueTun(name, 1400, 2, false);
    const q0 = NativeUdp.bind({ address: '127.0.0.1', port: 0, reusePort: true });
    const extra = bindQueueSockets(q0, 2);
    try {
      const broken = new URL('data:text/javascript,throw new Error("no data plane here")');
      await expect(MultiQueueDataPlane.start({ tuns, binds: [[q0], [extra[0]!]] }, { workerUrl: broken })).rejects.toThrow(IoError);
      // queue 0's fd is still ours: once we close it the device goes away only if queue 1's was closed
      expect(spawnSync('ip', ['link', 'show', name]).status).toBe(0);
      loadNativeDataPlane().closeFd(tuns[0]!.fd);
      expect(spawnSync('ip', ['link', 'show', name]).status).not.toBe(0);
    } finally {
      q0.close();
      for (const u of extra) u.close();
    }
  });
});

describe('MultiQueueDataPlane: 2 queues over a real TUN', () => {
  let dp: MultiQueueDataPlane;
  let binds: NativeUdp[];
  let peer: NativeUdp;
  const wire: Buffer[] = [];
  const control: { pkt: Buffer; from: Endpoint; local: Endpoint }[] = [];
  const events: SaEvent[] = [];
  const sinkGot: Buffer[] = [];
  let sinkFlushes = 0;
  const sink: PacketSink = {
    push: (buf, off, len) => sinkGot.push(Buffer.from(buf.subarray(off, off + len))),
    flush: () => sinkFlushes++,
  };
  const log = captureLogger();

  beforeAll(async () => {
    spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: new URL('../../../', import.meta.url).pathname, timeout: 180_000 });
    if (!existsSync(WORKER)) throw new Error(`build did not produce ${WORKER}`);
    const tuns = openMultiQueueTun(TUN_NAME, 1400, 2, false);
    addAddress(TUN_NAME, '10.214.1.1/24');
    for (const n of [REMOTE_NET, SHORT_NET, SINK_NET, HARD_NET, ESN_NET]) addRoute(n, TUN_NAME);
    const q0 = NativeUdp.bind({ address: '127.0.0.1', port: 0, reusePort: true });
    binds = [q0, ...bindQueueSockets(q0, 2)];
    peer = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    peer.start((b) => {
      for (let i = 0; i < b.count; i++) wire.push(Buffer.from(b.buf.subarray(b.off[i]!, b.off[i]! + b.len[i]!)));
    });
    dp = await MultiQueueDataPlane.start({ tuns, binds: binds.map((b) => [b]) }, { logger: log, gso: false });
    dp.onControl((pkt, from, local) => control.push({ pkt, from, local }));
    dp.onSaEvent((ev) => events.push(ev));
    dp.installSa(sa('out', SPI_OUT, peer.port, q0.port));
    dp.installSa(sa('out', SPI_OUT_SHORT, peer.port, q0.port, { lifetime: { softBytes: 0, hardBytes: 0, softPackets: 6, hardPackets: 0 } }));
    dp.installSa(sa('out', SPI_OUT_HARD, peer.port, q0.port, { lifetime: { softBytes: 0, hardBytes: 0, softPackets: 0, hardPackets: 10 } }));
    dp.installSa(sa('out', SPI_OUT_ESN, peer.port, q0.port, { esn: true, initialSeq: 0xffffff00 }));
    dp.installSa(sa('in', SPI_IN, peer.port, q0.port));
    dp.addRoute(parsePrefix(HARD_NET)!, SPI_OUT_HARD);
    dp.addRoute(parsePrefix(REMOTE_NET)!, SPI_OUT);
    dp.addRoute(parsePrefix(SHORT_NET)!, SPI_OUT_SHORT);
    dp.addRoute(parsePrefix(ESN_NET)!, SPI_OUT_ESN);
    dp.addSinkRoute(parsePrefix(SINK_NET)!, sink);
  }, 200_000);

  afterAll(async () => {
    await dp?.close();
    for (const b of binds ?? []) b.close();
    peer?.close();
  });

  it('one outbound SA encrypted on both queues at once: every sequence number used exactly once', async () => {
    await sendFlows('10.214.2.7', 24, 20);
    await until('480 ESP packets', () => wire.filter((p) => p.readUInt32BE(0) === SPI_OUT).length >= 480, UNTIL_MS);
    const seqs = wire.filter((p) => p.readUInt32BE(0) === SPI_OUT).map((p) => p.readUInt32BE(4));
    expect(seqs).toHaveLength(480);
    expect(new Set(seqs).size).toBe(480);
    expect(Math.min(...seqs)).toBe(1);
    expect(Math.max(...seqs)).toBe(480);
    const q = dp.queueStats();
    expect(q[0]!.espTxPackets).toBeGreaterThan(0);
    expect(q[1]!.espTxPackets).toBeGreaterThan(0); // the worker thread took part
    await dp.refreshCounters();
    const c = dp.saCounters(SPI_OUT, 'out')!;
    expect(c.seq).toBe(480);
    expect(c.packets).toBe(480);
    expect(dp.stats().espTxPackets).toBe(q[0]!.espTxPackets + q[1]!.espTxPackets);
  });

  it('an ESN SA shared by both queues crosses 2^32 with every 64-bit sequence number used once', async () => {
    await sendFlows('10.214.6.7', 24, 20);
    const esp = (): Buffer[] => wire.filter((p) => p.readUInt32BE(0) === SPI_OUT_ESN);
    await until('480 ESN packets', () => esp().length >= 480, UNTIL_MS);
    // AES-GCM IV = seq-hi | seq-lo (the full 64-bit number): unique, and exactly 2^32 - 255 … 2^32 + 224
    const seqs = esp().map((p) => p.readUInt32BE(8) * 2 ** 32 + p.readUInt32BE(12));
    expect(new Set(seqs).size).toBe(480);
    expect(Math.min(...seqs)).toBe(0xffffff01);
    expect(Math.max(...seqs)).toBe(0xffffff00 + 480);
    expect(esp().every((p, i) => p.readUInt32BE(4) === seqs[i]! % 2 ** 32)).toBe(true); // only seq-lo on the wire
    await dp.refreshCounters();
    expect(dp.saCounters(SPI_OUT_ESN, 'out')!.seq).toBe(0xffffff00 + 480);
  });

  it('packets a worker routes to a sink reach the main-thread sink, in per-batch messages', async () => {
    await sendFlows('10.214.3.9', 24, 5);
    await until('120 sink packets', () => sinkGot.length >= 120, UNTIL_MS);
    expect(sinkGot).toHaveLength(120);
    expect(sinkGot.every((p) => p[0] === 0x45 && p.readUInt32BE(16) === 0x0ad6_0309)).toBe(true);
    const q = dp.queueStats();
    expect(q[1]!.sinkPackets).toBeGreaterThan(0);
    expect(q[0]!.sinkPackets + q[1]!.sinkPackets).toBe(120);
    expect(sinkFlushes).toBeLessThan(120);
  });

  it('a lifetime event is reported once although each queue crosses its share', async () => {
    await sendFlows('10.214.4.4', 16, 2);
    await until('the soft event', () => events.length > 0, UNTIL_MS);
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual([{ spi: SPI_OUT_SHORT, direction: 'out', kind: 'soft' }]);
  });

  it('a hard packet limit holds for the SA as a whole: each of the 2 queues may send half of it', async () => {
    await sendFlows('10.214.5.5', 16, 4);
    await until('the hard event', () => events.some((e) => e.kind === 'hard'), UNTIL_MS);
    await new Promise((r) => setTimeout(r, 100));
    const sent = wire.filter((p) => p.readUInt32BE(0) === SPI_OUT_HARD).length;
    expect(sent).toBeGreaterThanOrEqual(5);
    expect(sent).toBeLessThanOrEqual(10);
    expect(events.filter((e) => e.spi === SPI_OUT_HARD)).toEqual([{ spi: SPI_OUT_HARD, direction: 'out', kind: 'hard' }]);
    await dp.refreshCounters();
    expect(dp.saCounters(SPI_OUT_HARD, 'out')!.drops.EXPIRED).toBe(64 - sent);
  });

  it('IKE on 4500 from any source port reaches the control callback on the main thread', async () => {
    const ike = Buffer.concat([Buffer.alloc(4), Buffer.from('ike-message')]);
    for (let i = 0; i < 6; i++) {
      const s = createSocket('udp4');
      await new Promise<void>((res) => s.send(ike, binds[0]!.port, '127.0.0.1', () => res()));
      s.close();
    }
    await until('6 IKE packets', () => control.length >= 6, UNTIL_MS);
    expect(control.every((c) => c.pkt.toString() === 'ike-message' && c.local.port === binds[0]!.port)).toBe(true);
    expect(dp.queueStats()[1]!.controlPackets).toBe(0);
  });

  it('validates SAs as the single-queue data plane does; inbound SAs live on queue SPI % 2 only', async () => {
    expect(() => dp.installSa(sa('out', 0x55550001, peer.port, binds[0]!.port, { encrKey: Buffer.alloc(7) }))).toThrow(VpnError);
    await dp.refreshCounters();
    expect(dp.saCounters(SPI_IN, 'in')).toEqual({ bytes: 0, packets: 0, drops: {}, seq: 0 });
    expect(dp.saCounters(0x55550001, 'out')).toBeUndefined();
  });

  it('setSaRemote moves an outbound SA on every queue that holds it (NAT rebinding)', async () => {
    const peer2 = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    const moved: Buffer[] = [];
    peer2.start((b) => {
      for (let i = 0; i < b.count; i++) moved.push(Buffer.from(b.buf.subarray(b.off[i]!, b.off[i]! + b.len[i]!)));
    });
    try {
      const before = dp.queueStats().map((q) => q.espTxPackets);
      expect(dp.setSaRemote(SPI_OUT, 'out', { family: 4, address: '127.0.0.1', port: peer2.port })).toBe(true);
      expect(dp.setSaRemote(0x77770001, 'out', { family: 4, address: '127.0.0.1', port: peer2.port })).toBe(false);
      await new Promise((r) => setTimeout(r, 200)); // the worker applies it from its message queue
      await sendFlows('10.214.2.8', 24, 4);
      await until('96 ESP packets at the new endpoint', () => moved.filter((p) => p.readUInt32BE(0) === SPI_OUT).length >= 96, UNTIL_MS);
      const after = dp.queueStats().map((q) => q.espTxPackets);
      expect(after[0]! - before[0]!).toBeGreaterThan(0);
      expect(after[1]! - before[1]!).toBeGreaterThan(0); // the worker's copy moved as well
    } finally {
      peer2.close();
    }
  });

  it('close() resolves once the worker has exited: the TUN disappears with its last queue fd', async () => {
    await dp.close();
    const r = spawnSync('ip', ['link', 'show', TUN_NAME], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(dp.saCounters(SPI_OUT, 'out')).toBeUndefined();
    expect(log.lines.some((l) => l.msg === 'multi-queue data plane closed')).toBe(true);
  });
});
