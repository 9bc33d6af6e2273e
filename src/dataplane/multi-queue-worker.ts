/**
 * One queue of the multi-queue data plane (multi-queue.ts), run in a worker_thread: a NativeDataPlane
 * over this queue's TUN fd and UDP sockets, on the worker's own event loop. The main thread drives it
 * by messages (SAs with copied keys, routes, sink routes, the policy, counter requests, close); the worker sends
 * back what its data plane hands to JavaScript (IKE packets, sink packets, SA events) and counters.
 * Packets cross threads only for sinks, one message per native batch.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Endpoint } from '../common/endpoint.js';
import { VpnError } from '../common/errors.js';
import type { Family, Prefix } from '../common/ip.js';
import type { Logger } from '../common/log.js';
import type { PacketBatch } from '../common/batch.js';
import type { UdpStats } from '../net/udp-bind.js';
import type { PacketSink } from '../common/packet-sink.js';
import type { SaCounters, SaEvent, SaParams } from './data-plane.js';
import type { DataPathPolicy, PolicyCounters } from '../vpcep/policy.js';
import { NativeDataPlane } from './native-data-plane.js';
import type { FdUdpBind, OffloadTun } from './native-data-plane.js';

export interface WireBind {
  fd: number;
  family: 4 | 6;
  address: string;
  port: number;
}

export interface WorkerInit {
  queue: number;
  tun: OffloadTun;
  binds: WireBind[];
  /** SharedArrayBuffer-backed native stats array (NATIVE_DP_STAT_COUNT doubles) */
  stats: Float64Array;
  maxPacket: number | null;
  gso: boolean;
  gro: boolean;
  rxModerationUs: number;
}

export interface WirePrefix {
  family: number;
  len: number;
  bytes: Uint8Array;
}

export type WireSaParams = Omit<SaParams, 'encrKey' | 'integKey' | 'localTs' | 'remoteTs'> & {
  encrKey: Uint8Array;
  integKey: Uint8Array;
  localTs: WirePrefix[];
  remoteTs: WirePrefix[];
};

export type ToWorker =
  | { t: 'sa'; p: WireSaParams; seqCell?: BigUint64Array }
  | { t: 'rmSa'; spi: number; direction: 'in' | 'out' }
  | { t: 'saRemote'; spi: number; direction: 'in' | 'out'; remote: Endpoint }
  | { t: 'route'; prefix: WirePrefix; spi: number }
  | { t: 'rmRoute'; prefix: WirePrefix }
  | { t: 'sinkRoute'; prefix: WirePrefix; sink: number }
  | { t: 'rmSinkRoute'; prefix: WirePrefix }
  | { t: 'policy'; p: DataPathPolicy }
  | { t: 'counters' }
  | { t: 'close' };

type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export type FromWorker =
  | { t: 'ready' }
  | { t: 'error'; message: string }
  | { t: 'ctl'; pkt: Uint8Array; from: Endpoint; local: Endpoint; bind: number }
  | { t: 'sink'; sink: number; buf: ArrayBuffer; lens: number[] }
  | { t: 'event'; ev: SaEvent }
  | { t: 'counters'; sas: [string, SaCounters][]; policy: PolicyCounters }
  | { t: 'log'; level: LogLevel; obj: unknown; msg: string | undefined };

function toPrefix(w: WirePrefix): Prefix {
  return { family: w.family as Family, len: w.len, bytes: Buffer.from(w.bytes) };
}

function toSa(w: WireSaParams): SaParams {
  return {
    ...w,
    encrKey: Buffer.from(w.encrKey),
    integKey: Buffer.from(w.integKey),
    localTs: w.localTs.map(toPrefix),
    remoteTs: w.remoteTs.map(toPrefix),
  };
}

/** Only its fd and address are used: NativeDataPlane polls the fd itself. */
function fdBind(b: WireBind): FdUdpBind {
  const unused = (): never => {
    throw new VpnError('ERR_STATE', 'a data plane queue socket is driven by the native data plane');
  };
  const stats = (): UdpStats => ({ rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, sendErrors: 0, recvErrors: 0 });
  return {
    fd: b.fd,
    family: b.family,
    address: b.address,
    port: b.port,
    start: (_cb: (batch: PacketBatch) => void) => unused(),
    send: (_batch: PacketBatch) => unused(),
    stats,
    close: () => {},
  };
}

/** Log lines go to the main thread's logger (with a `queue` binding added there). */
function forwardingLogger(post: (m: FromWorker) => void, bindings: Record<string, unknown> = {}): Logger {
  const mk =
    (level: LogLevel) =>
    (obj: unknown, msg?: string): void => {
      const o = obj instanceof Error ? { err: obj } : obj;
      const merged = o !== null && typeof o === 'object' ? { ...bindings, ...(o as object) } : { ...bindings, value: o };
      try {
        post({ t: 'log', level, obj: merged, msg });
      } catch {
        post({ t: 'log', level, obj: bindings, msg });
      }
    };
  return {
    child: (b) => forwardingLogger(post, { ...bindings, ...b }),
    isLevelEnabled: (l) => l !== 'trace' && l !== 'debug',
    trace: () => {},
    debug: () => {},
    info: mk('info'),
    warn: mk('warn'),
    error: mk('error'),
  };
}

/** Collects one batch of sink packets for the main thread. */
class ForwardingSink implements PacketSink {
  private readonly buf: Buffer;
  private used = 0;
  private lens: number[] = [];

  constructor(
    private readonly id: number,
    capacityBytes: number,
    private readonly post: (m: FromWorker, transfer: ArrayBuffer[]) => void,
  ) {
    this.buf = Buffer.alloc(capacityBytes);
  }

  push(buf: Buffer, off: number, len: number): void {
    if (this.used + len > this.buf.length) this.flush();
    buf.copy(this.buf, this.used, off, off + len);
    this.used += len;
    this.lens.push(len);
  }

  flush(): void {
    if (this.lens.length === 0) return;
    const out = new ArrayBuffer(this.used);
    this.buf.copy(new Uint8Array(out), 0, 0, this.used);
    this.post({ t: 'sink', sink: this.id, buf: out, lens: this.lens }, [out]);
    this.used = 0;
    this.lens = [];
  }
}

function run(): void {
  const port = parentPort;
  if (!port) return;
  const init = workerData as WorkerInit;
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  const log = forwardingLogger(post);
  let dp: NativeDataPlane;
  try {
    dp = new NativeDataPlane(init.tun, init.binds.map(fdBind), {
      logger: log,
      stats: init.stats,
      gso: init.gso,
      gro: init.gro,
      rxModerationUs: init.rxModerationUs,
      ...(init.maxPacket ? { maxPacket: init.maxPacket } : {}),
    });
  } catch (e) {
    post({ t: 'error', message: (e as Error).message });
    port.close();
    return;
  }
  const maxPacket = Math.max(init.maxPacket ?? 0, init.tun.mtu, 1500);
  const sinks = new Map<number, ForwardingSink>();
  const installed = new Set<string>();
  dp.onControl((pkt, from, local) => {
    const bind = init.binds.findIndex((b) => b.address === local.address && b.port === local.port);
    const copy = new Uint8Array(pkt);
    post({ t: 'ctl', pkt: copy, from, local, bind }, [copy.buffer as ArrayBuffer]);
  });
  dp.onSaEvent((ev) => post({ t: 'event', ev }));

  port.on('message', (m: ToWorker) => {
    try {
      switch (m.t) {
        case 'sa':
          dp.installSa(toSa(m.p), m.seqCell);
          installed.add(`${m.p.direction}:${m.p.spi >>> 0}`);
          break;
        case 'saRemote':
          dp.setSaRemote(m.spi, m.direction, m.remote);
          break;
        case 'rmSa':
          dp.removeSa(m.spi, m.direction);
          installed.delete(`${m.direction}:${m.spi >>> 0}`);
          break;
        case 'route':
          dp.addRoute(toPrefix(m.prefix), m.spi);
          break;
        case 'rmRoute':
          dp.removeRoute(toPrefix(m.prefix));
          break;
        case 'sinkRoute': {
          let s = sinks.get(m.sink);
          if (!s) {
            s = new ForwardingSink(m.sink, 64 * maxPacket, post);
            sinks.set(m.sink, s);
          }
          dp.addSinkRoute(toPrefix(m.prefix), s);
          break;
        }
        case 'rmSinkRoute':
          dp.removeSinkRoute(toPrefix(m.prefix));
          break;
        case 'policy':
          dp.setPolicy(m.p);
          break;
        case 'counters': {
          const sas: [string, SaCounters][] = [];
          for (const key of installed) {
            const [dir, spi] = key.split(':') as ['in' | 'out', string];
            const c = dp.saCounters(Number(spi), dir);
            if (c) sas.push([key, c]);
          }
          post({ t: 'counters', sas, policy: dp.policyCounters() });
          break;
        }
        case 'close':
          dp.close();
          port.close();
          break;
      }
    } catch (e) {
      log.error({ err: e as Error, op: m.t }, 'data plane queue: request failed');
    }
  });
  post({ t: 'ready' });
}

run();
