/**
 * One queue of the multi-queue data plane (multi-queue.ts), run in a worker_thread: a NativeDataPlane
 * over this queue's TUN fd and UDP sockets, on the worker's own event loop. The main thread drives it
 * by messages (SAs with copied keys, routes, sink routes, the policy, counter requests, close); the worker sends
 * back what its data plane hands to JavaScript (IKE packets, sink packets, SA events) and counters.
 * Packets cross threads only for sinks, one message per native batch.
 * SSL VPN: the main thread gives each worker its member of the SSL socket's SO_REUSEPORT group
 * (sslAttach) and a copy of every native session (keys with their shared packet-id cell); what the
 * worker's engine hands to JS (an authenticated float, OCC and client-to-client plaintext) goes to
 * the main thread's handler, one message per SSL batch.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Endpoint } from '../common/endpoint.js';
import { VpnError } from '../common/errors.js';
import type { Family, Prefix } from '../common/ip.js';
import type { Logger } from '../common/log.js';
import type { PacketBatch } from '../common/batch.js';
import type { UdpStats } from '../net/udp-bind.js';
import type { PacketSink } from '../common/packet-sink.js';
import type { SaCounters, SaEvent, SaParams, SslDatagramHandler, SslKeyMaterial, SslSessionCounters } from './data-plane.js';
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

/** SslSessionParams across threads (the prefix's bytes copied) */
export interface WireSslSession {
  bind: number;
  remote: Endpoint;
  compression: number;
  clientPrefix: WirePrefix;
  serverAddress: string;
  origin: number;
}

export type WireSslKey = Omit<SslKeyMaterial, 'encKey' | 'encImplicitIv' | 'decKey' | 'decImplicitIv'> & {
  encKey: Uint8Array;
  encImplicitIv: Uint8Array;
  decKey: Uint8Array;
  decImplicitIv: Uint8Array;
};

/** One datagram or plaintext for the main thread's SslDatagramHandler (kind 0: datagram, 1: plaintext). */
export interface WireSslItem {
  kind: 0 | 1;
  peerId: number;
  off: number;
  len: number;
  from: Endpoint;
}

export type ToWorker =
  | { t: 'sa'; p: WireSaParams; seqCell?: BigUint64Array }
  | { t: 'rmSa'; spi: number; direction: 'in' | 'out' }
  | { t: 'saRemote'; spi: number; direction: 'in' | 'out'; remote: Endpoint }
  | { t: 'route'; prefix: WirePrefix; spi: number }
  | { t: 'rmRoute'; prefix: WirePrefix }
  | { t: 'sinkRoute'; prefix: WirePrefix; sink: number }
  | { t: 'rmSinkRoute'; prefix: WirePrefix }
  | { t: 'policy'; p: DataPathPolicy }
  | { t: 'sslAttach'; bind: number; sock: WireBind }
  | { t: 'sslDetach'; bind: number }
  | { t: 'sslSession'; peerId: number; p: WireSslSession }
  | { t: 'sslRemote'; peerId: number; bind: number; remote: Endpoint }
  | { t: 'sslVaddr'; peerId: number; address: string | null }
  | { t: 'sslComp'; peerId: number; mode: number }
  | { t: 'sslOrigin'; peerId: number; origin: number }
  | { t: 'sslKey'; peerId: number; k: WireSslKey; pidCell?: BigUint64Array }
  | { t: 'sslRetire'; peerId: number; keyId: number }
  | { t: 'sslRemove'; peerId: number }
  | { t: 'sslRoute'; prefix: WirePrefix; peerId: number }
  | { t: 'rmSslRoute'; prefix: WirePrefix }
  | { t: 'counters' }
  | { t: 'close' };

type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export type FromWorker =
  | { t: 'ready' }
  | { t: 'error'; message: string }
  | { t: 'ctl'; pkt: Uint8Array; from: Endpoint; local: Endpoint; bind: number }
  | { t: 'sink'; sink: number; buf: ArrayBuffer; lens: number[] }
  | { t: 'event'; ev: SaEvent }
  | { t: 'counters'; sas: [string, SaCounters][]; policy: PolicyCounters; ssl: [number, SslSessionCounters][] }
  | { t: 'ssl'; bind: number; buf: ArrayBuffer; items: WireSslItem[] }
  | { t: 'sslDetached'; bind: number }
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

/** Collects what this queue's engine hands to the SSL handler; one message to the main thread per SSL batch. */
class ForwardingSslHandler implements SslDatagramHandler {
  private chunks: Buffer[] = [];
  private used = 0;
  private items: WireSslItem[] = [];

  constructor(
    private readonly bind: number,
    private readonly post: (m: FromWorker, transfer: ArrayBuffer[]) => void,
  ) {}

  datagram(buf: Buffer, off: number, len: number, from: Endpoint): void {
    this.add(0, 0, buf, off, len, from);
  }

  plaintext(peerId: number, buf: Buffer, off: number, len: number, from: Endpoint): void {
    this.add(1, peerId, buf, off, len, from);
  }

  flush(): void {
    if (this.items.length === 0) return;
    const out = new ArrayBuffer(this.used);
    const view = new Uint8Array(out);
    let o = 0;
    for (const c of this.chunks) {
      view.set(c, o);
      o += c.length;
    }
    this.post({ t: 'ssl', bind: this.bind, buf: out, items: this.items }, [out]);
    this.chunks = [];
    this.used = 0;
    this.items = [];
  }

  private add(kind: 0 | 1, peerId: number, buf: Buffer, off: number, len: number, from: Endpoint): void {
    this.chunks.push(Buffer.from(buf.subarray(off, off + len)));
    this.items.push({ kind, peerId, off: this.used, len, from });
    this.used += len;
  }
}

function toSslKey(w: WireSslKey): SslKeyMaterial {
  return { ...w, encKey: Buffer.from(w.encKey), encImplicitIv: Buffer.from(w.encImplicitIv), decKey: Buffer.from(w.decKey), decImplicitIv: Buffer.from(w.decImplicitIv) };
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
  /** SSL sockets: the main thread's bind index -> this queue's */
  const sslBinds = new Map<number, number>();
  const sslPeers = new Set<number>();
  const localBind = (mainBind: number): number => sslBinds.get(mainBind) ?? -1;
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
        case 'sslAttach': {
          dp.setSslFloatCheck(true);
          sslBinds.set(m.bind, dp.attachSslUdp(fdBind(m.sock), new ForwardingSslHandler(m.bind, post)));
          break;
        }
        case 'sslDetach': {
          const b = sslBinds.get(m.bind);
          if (b !== undefined) dp.detachSslUdp(b);
          sslBinds.delete(m.bind);
          post({ t: 'sslDetached', bind: m.bind });
          break;
        }
        case 'sslSession':
          sslPeers.add(m.peerId);
          dp.installSslSession(m.peerId, { ...m.p, bind: localBind(m.p.bind), clientPrefix: toPrefix(m.p.clientPrefix) });
          break;
        case 'sslRemote':
          dp.setSslRemote(m.peerId, localBind(m.bind), m.remote);
          break;
        case 'sslVaddr':
          dp.setSslVirtualAddress(m.peerId, m.address);
          break;
        case 'sslComp':
          dp.setSslCompression(m.peerId, m.mode);
          break;
        case 'sslOrigin':
          dp.setSslOrigin(m.peerId, m.origin);
          break;
        case 'sslKey':
          dp.setSslKey(m.peerId, toSslKey(m.k), m.pidCell);
          break;
        case 'sslRetire':
          dp.retireSslKey(m.peerId, m.keyId);
          break;
        case 'sslRemove':
          sslPeers.delete(m.peerId);
          dp.removeSslSession(m.peerId);
          break;
        case 'sslRoute':
          dp.addSslRoute(toPrefix(m.prefix), m.peerId);
          break;
        case 'rmSslRoute':
          dp.removeSslRoute(toPrefix(m.prefix));
          break;
        case 'counters': {
          const sas: [string, SaCounters][] = [];
          for (const key of installed) {
            const [dir, spi] = key.split(':') as ['in' | 'out', string];
            const c = dp.saCounters(Number(spi), dir);
            if (c) sas.push([key, c]);
          }
          const ssl: [number, SslSessionCounters][] = [];
          for (const peerId of sslPeers) {
            const c = dp.sslCounters(peerId);
            if (c) ssl.push([peerId, c]);
          }
          post({ t: 'counters', sas, policy: dp.policyCounters(), ssl });
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
