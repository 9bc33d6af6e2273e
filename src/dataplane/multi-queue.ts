import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Endpoint } from '../common/endpoint.js';
import type { Prefix } from '../common/ip.js';
import type { PacketSink } from '../common/packet-sink.js';
import { IoError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { DROP_REASON_NAMES } from '../esp/drop-reason.js';
import { COMP_NONE } from '../ssl/data/compression.js';
import { NativeUdp } from '../net/native-udp.js';
import { statsByName } from '../native/loader.js';
import { setLinkUp, setMtu } from '../tun/netcfg.js';
import { callControlCallbacks, callSaEventCallbacks } from './callbacks.js';
import type { ControlCallback, SaEventCallback } from './callbacks.js';
import type {
  DataPlane,
  DataPlaneStats,
  SaCounters,
  SaEvent,
  SaParams,
  SslDatagramHandler,
  SslKeyMaterial,
  SslOffload,
  SslSessionCounters,
  SslSessionParams,
} from './data-plane.js';
import { POLICY_DROPS } from '../vpcep/policy.js';
import type { DataPathPolicy, EndpointCounters, PolicyCounters, PolicyDrop } from '../vpcep/policy.js';
import { SinkTable } from './sink-table.js';
import { DEFAULT_RX_MODERATION_US } from './moderation.js';
import {
  loadNativeDataPlane,
  NATIVE_DP_STAT,
  NATIVE_DP_STAT_COUNT,
  nativeSaParams,
  NativeDataPlane,
} from './native-data-plane.js';
import type { FdUdpBind, NativeDataPlaneOptions, NativeTunSource, OffloadTun } from './native-data-plane.js';
import type { FromWorker, ToWorker, WorkerInit, WireSaParams, WireSslItem, WireSslKey } from './multi-queue-worker.js';

/**
 * The multi-core native data plane: one queue per core.
 *
 *   queue q = TUN queue fd q (one IFF_MULTI_QUEUE device) + UDP socket q on every 4500 address
 *             (an SO_REUSEPORT group per address) + one NativeDataPlane. Queue 0 runs on the main
 *             thread next to the control plane; queues 1..N-1 each run in a worker_thread.
 *
 * How packets find a queue, and why that is correct:
 *   1. UDP in: the kernel picks the group member with a classic BPF program keyed on the first 4
 *      payload bytes, SPI % N (NativeUdp.steerBySpi). So ALL packets of one inbound SA land on ONE
 *      queue, whatever their outer source port, and a per-queue RFC 6479 replay window sees every
 *      packet of its SA (a 4-tuple hash would let an attacker replay a captured packet from another
 *      source port into a queue whose window never saw it). Inbound SAs are installed on queue
 *      SPI % N only. IKE (non-ESP marker 0) and NAT-T keepalives go to queue 0, i.e. the main thread.
 *   2. TUN out: the kernel spreads flows over the queues (flow hash; a flow sticks to the queue that
 *      last wrote its reverse direction), so one outbound SA is read on any queue. Outbound SAs are
 *      installed on every queue and share ONE sequence counter in shared memory (atomic add in
 *      native code): no sequence number, hence no AES-GCM nonce, is used twice.
 *   3. Sinks (SSL VPN sessions) live on the main thread; a worker forwards the packets it routes to
 *      a sink to the main thread, one message per native batch.
 *   4. Routes and SAs are broadcast to the workers by postMessage (keys copied into the message).
 *      Counters: global ones are SharedArrayBuffer views the workers' native code writes (read
 *      synchronously); per-SA bytes/packets/drops of workers are snapshots refreshed every second
 *      and by refreshCounters(); the outbound sequence number is always exact (the shared cell).
 *   5. Lifetimes: an outbound SA on N queues gets soft/N and hard/N byte and packet limits per
 *      queue (each queue counts its own share), so it rekeys and expires early, never late.
 *      SA events are reported once per (SPI, direction, kind).
 *   6. The policy stage (src/vpcep/policy.ts) runs in every queue's native engine. Its ACLs are
 *      stateless, so every queue applies the same rules. Its VPC endpoint flow table is per queue,
 *      and the two directions of one flow may be read on different queues (point 2), so endpoints
 *      work only with one queue: the gateway refuses `dataPlane.queues` > 1 when endpoints exist
 *      and resolves `auto` to 1. Its counters are summed (workers' as of their last report).
 *   7. SSL VPN over UDP (DataPlane.sslOffload): the SSL server's UDP socket is member 0 of an
 *      SO_REUSEPORT group with one socket per queue (attachSslUdp binds the others), steered by a
 *      classic BPF program on the OpenVPN header (NativeUdp.steerByPeerId): P_DATA_V2 goes to queue
 *      peer-id % N, everything else (control, P_DATA_V1, hard resets, short datagrams) to queue 0,
 *      whose engine hands it to JS as with one queue. Every session is installed on every queue
 *      (TUN packets to a client are read on any queue, point 2); only the queue a session is steered
 *      to uses its replay window. Each key install gets a fresh packet-id cell in shared memory that
 *      every queue sending with that key takes ids from (atomic add), so no packet-id, hence no AEAD
 *      nonce, repeats under one key. A float (a session's packet from another address) reaches JS
 *      from a worker only after that worker's session authenticated it and recorded its packet-id;
 *      JS then decides with queue 0's copy. Per-session counters are summed over the queues
 *      (workers' as of their last report); TCP sessions keep the JS data channel.
 */

// Implementation choices
/**
 * `queues: auto` resolves to this. Measured on the shared 2-core box (bench/dp-multiqueue.mjs, README):
 * one SA never spreads (1.0×), two SAs on different queues 1.2×.
 */
export const AUTO_QUEUES = 1;
export const MAX_QUEUES = 16;
const WORKER_START_TIMEOUT_MS = 5000;
const WORKER_EXIT_TIMEOUT_MS = 2000;
const COUNTER_REFRESH_MS = 1000;
const COUNTER_REFRESH_TIMEOUT_MS = 1000;

export type QueueSetting = number | 'auto';

/** How many queues a `gateway.dataPlane.queues` setting means. */
export function resolveQueues(setting: QueueSetting | undefined): number {
  if (setting === undefined || setting === 'auto') return AUTO_QUEUES;
  return Math.max(1, Math.min(MAX_QUEUES, Math.floor(setting)));
}

/**
 * Opens `queues` file descriptors of one multi-queue TUN (IFF_MULTI_QUEUE, with the vnet header and
 * TSO offloads when vnetHdr), sets the MTU and brings the link up. Each fd is owned by the data plane
 * it is given to.
 */
export function openMultiQueueTun(name: string, mtu: number, queues: number, vnetHdr = true): OffloadTun[] {
  const a = loadNativeDataPlane();
  const out: OffloadTun[] = [];
  try {
    for (let q = 0; q < queues; q++) {
      const r = a.openTun(out.length === 0 ? name : out[0]!.name, vnetHdr, true);
      out.push({ fd: r[0], name: r[1], mtu, vnetHdr });
    }
    setMtu(out[0]!.name, mtu);
    setLinkUp(out[0]!.name);
  } catch (e) {
    for (const t of out) a.closeFd(t.fd);
    throw new IoError(`cannot open multi-queue TUN "${name}" (${queues} queues): ${(e as Error).message}`, e);
  }
  return out;
}

/**
 * Completes an SO_REUSEPORT group: `first` (bound with reusePort) plus queues-1 more sockets on the
 * same address and port, then steers the group by SPI. Returns the new sockets (the caller closes
 * them after the data plane has closed). Throws IoError, having closed what it opened.
 */
export function bindQueueSockets(first: NativeUdp, queues: number, log: Logger = silentLogger): NativeUdp[] {
  const extra: NativeUdp[] = [];
  try {
    for (let q = 1; q < queues; q++) {
      extra.push(NativeUdp.bind({ address: first.address, port: first.port, reusePort: true, log }));
    }
    if (queues > 1) first.steerBySpi(queues);
  } catch (e) {
    for (const u of extra) u.close();
    throw e;
  }
  return extra;
}

export interface MultiQueueIo {
  /** one TUN per queue: fds of one multi-queue TUN (openMultiQueueTun); queue 0's may be any NativeTunSource */
  tuns: readonly NativeTunSource[];
  /**
   * per queue, its UDP binds, the same addresses in the same order on every queue; socket q of each
   * address is member q of that address's SO_REUSEPORT group, steered by SPI (bindQueueSockets)
   */
  binds: readonly (readonly FdUdpBind[])[];
}

export interface MultiQueueOptions extends Omit<NativeDataPlaneOptions, 'stats'> {
  /** the worker script (default: multi-queue-worker.js next to this module, or the built one in dist/) */
  workerUrl?: URL;
}

interface QueueWorker {
  readonly worker: Worker;
  readonly stats: Float64Array;
  /** last per-SA counters this worker reported, by "dir:spi" */
  snapshot: Map<string, SaCounters>;
  /** its policy stage's counters as of its last report */
  policy: PolicyCounters | null;
  /** its SSL sessions' counters as of its last report, by peer-id, and when that was (ms) */
  ssl: Map<number, SslSessionCounters>;
  sslAtMs: number;
  exited: Promise<void>;
}

interface SaEntry {
  readonly direction: 'in' | 'out';
  /** queues the SA is installed on */
  readonly queues: readonly number[];
  readonly seqCell: BigUint64Array | null;
  /** 64-bit sequence numbers (RFC 4303 §2.2.1): the cell then never passes 2^64 − 1 and is exact */
  readonly esn: boolean;
}

/** The default worker script: compiled next to this module, or (running from src/) the dist/ build. */
export function defaultWorkerUrl(): URL {
  const here = new URL('./multi-queue-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL('../../dist/dataplane/multi-queue-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new IoError('multi-queue data plane: no built worker script (run `npx tsc -p tsconfig.build.json`)');
}

/** An attached SSL socket: its handler and the sockets of queues 1..N-1 (null once that queue let go). */
interface SslGroup {
  readonly handler: SslDatagramHandler;
  readonly extra: (NativeUdp | null)[];
}

/** The SSL socket as attachSslUdp needs it: a NativeUdp that can steer its group. */
type SteerableBind = FdUdpBind & { steerByPeerId?(groupSize: number): void };

export class MultiQueueDataPlane implements DataPlane, SslOffload {
  readonly queues: number;
  /** with more than one queue the SSL socket joins an SO_REUSEPORT group (point 7) */
  readonly sslReusePort: boolean;
  /** output of sslDecrypt (queue 0's) */
  readonly sslSpan: Uint32Array;
  readonly tunName: string;
  readonly offloads: { vnetHdr: boolean; gso: boolean; gro: boolean; rxModerationUs: number };
  private readonly log: Logger;
  private readonly main: NativeDataPlane;
  private readonly workers: QueueWorker[];
  private readonly bindLocal: Endpoint[];
  private readonly sas = new Map<string, SaEntry>();
  /** sinks by the index routes name on every queue */
  private readonly sinks: SinkTable;
  private readonly firedEvents = new Set<string>();
  private controlCbs: ControlCallback[] = [];
  private eventCbs: SaEventCallback[] = [];
  private readonly pendingRefresh: (() => void)[] = [];
  private refreshWaiting = 0;
  private refreshTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly sslGroups = new Map<number, SslGroup>();

  /** Starts queue 0 here and one worker per further queue; resolves when every queue runs. */
  static async start(io: MultiQueueIo, opts: MultiQueueOptions = {}): Promise<MultiQueueDataPlane> {
    const n = io.tuns.length;
    if (n < 1 || io.binds.length !== n) throw new IoError(`multi-queue data plane: ${n} TUN queues but ${io.binds.length} bind sets`);
    const log = (opts.logger ?? silentLogger).child({ component: 'dataplane', backend: 'native-mq' });
    const url = n > 1 ? (opts.workerUrl ?? defaultWorkerUrl()) : null;
    const workers: QueueWorker[] = [];
    const started: Promise<void>[] = [];
    const ready: boolean[] = [];
    for (let q = 1; q < n; q++) {
      const t = io.tuns[q]!;
      if (!('vnetHdr' in t)) throw new IoError('multi-queue data plane: worker queues need OffloadTun fds');
      const stats = new Float64Array(new SharedArrayBuffer(NATIVE_DP_STAT_COUNT * 8));
      const init: WorkerInit = {
        queue: q,
        tun: { fd: t.fd, name: t.name, mtu: t.mtu, vnetHdr: t.vnetHdr },
        binds: io.binds[q]!.map((b) => ({ fd: b.fd, family: b.family, address: b.address, port: b.port })),
        stats,
        maxPacket: opts.maxPacket ?? null,
        gso: opts.gso ?? true,
        gro: opts.gro ?? true,
        rxModerationUs: opts.rxModerationUs ?? DEFAULT_RX_MODERATION_US,
      };
      const worker = new Worker(url!, { workerData: init, name: `vpcgw-dp-q${q}` });
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      workers.push({ worker, stats, snapshot: new Map(), policy: null, ssl: new Map(), sslAtMs: 0, exited });
      started.push(
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new IoError(`data plane queue ${q}: worker did not start in ${WORKER_START_TIMEOUT_MS} ms`)), WORKER_START_TIMEOUT_MS);
          const onMsg = (m: FromWorker): void => {
            if (m.t !== 'ready' && m.t !== 'error') return;
            clearTimeout(timer);
            worker.off('message', onMsg);
            ready[q - 1] = m.t === 'ready';
            if (m.t === 'ready') resolve();
            else reject(new IoError(`data plane queue ${q}: ${m.message}`));
          };
          worker.on('message', onMsg);
          worker.once('error', (e) => {
            clearTimeout(timer);
            reject(new IoError(`data plane queue ${q}: worker failed: ${e.message}`, e));
          });
          worker.once('exit', (code) => {
            clearTimeout(timer);
            reject(new IoError(`data plane queue ${q}: worker exited (${code}) before it started`));
          });
        }),
      );
    }
    try {
      await Promise.all(started);
    } catch (e) {
      // a started queue closes its data plane and with it its TUN fd; the others' fds we close
      await Promise.allSettled(started);
      workers.forEach((w, i) => {
        if (ready[i]) {
          w.worker.postMessage({ t: 'close' } satisfies ToWorker);
        } else {
          void w.worker.terminate();
          loadNativeDataPlane().closeFd(io.tuns[i + 1]!.fd);
        }
      });
      await Promise.all(workers.map((w) => w.exited));
      throw e;
    }
    return new MultiQueueDataPlane(io, workers, { ...opts, logger: log });
  }

  private constructor(io: MultiQueueIo, workers: QueueWorker[], opts: MultiQueueOptions & { logger: Logger }) {
    this.log = opts.logger;
    this.sinks = new SinkTable(this.log);
    this.queues = io.tuns.length;
    this.workers = workers;
    this.main = new NativeDataPlane(io.tuns[0]!, io.binds[0]!, { ...opts, logger: this.log.child({ queue: 0 }) });
    this.tunName = this.main.tunName;
    this.sslReusePort = this.queues > 1;
    this.sslSpan = this.main.sslSpan;
    this.offloads = this.main.offloads;
    this.bindLocal = io.binds[0]!.map((b) => ({ family: b.family, address: b.address, port: b.port }));
    this.main.onControl((pkt, from, local) => this.deliverControl(pkt, from, local));
    this.main.onSaEvent((ev) => this.deliverEvent(ev));
    workers.forEach((w, i) => {
      const q = i + 1;
      const qlog = this.log.child({ queue: q });
      w.worker.on('message', (m: FromWorker) => this.onWorkerMessage(w, qlog, m));
      w.worker.on('error', (e) => qlog.error({ err: e }, 'data plane worker failed'));
      w.worker.on('exit', (code) => {
        if (!this.closed) qlog.error({ code }, 'data plane worker exited');
      });
    });
    if (workers.length > 0) {
      this.refreshTimer = setInterval(() => this.requestCounters(), COUNTER_REFRESH_MS);
      this.refreshTimer.unref();
    }
  }

  // ---------------------------------------------------------------- control-plane API

  installSa(p: SaParams): void {
    if (this.closed) return;
    nativeSaParams(p, -1); // validates (throws the same VpnErrors as the single-queue data plane)
    const key = `${p.direction}:${p.spi >>> 0}`;
    this.firedEvents.forEach((k) => k.startsWith(`${key}:`) && this.firedEvents.delete(k));
    if (p.direction === 'in') {
      const owner = (p.spi >>> 0) % this.queues;
      this.uninstall(key, p.spi, 'in', owner);
      this.sas.set(key, { direction: 'in', queues: [owner], seqCell: null, esn: p.esn ?? false });
      if (owner === 0) this.main.installSa(p);
      else this.post(owner, { t: 'sa', p: wireSa(p) });
      return;
    }
    const cell = new BigUint64Array(new SharedArrayBuffer(8));
    cell[0] = p.esn ? (BigInt(p.initialSeqHi ?? 0) << 32n) | BigInt(p.initialSeq ?? 0) : BigInt(p.initialSeq ?? 0);
    const shared = this.queues > 1 ? splitLifetime(p, this.queues) : p;
    const all = [...Array(this.queues).keys()];
    this.sas.set(key, { direction: 'out', queues: all, seqCell: cell, esn: p.esn ?? false });
    this.main.installSa(shared, cell);
    for (let q = 1; q < this.queues; q++) this.post(q, { t: 'sa', p: wireSa(shared), seqCell: cell });
  }

  setSaRemote(spi: number, direction: 'in' | 'out', remote: Endpoint): boolean {
    if (this.closed) return false;
    const sa = this.sas.get(`${direction}:${spi >>> 0}`);
    if (!sa) return false;
    let ok = true;
    for (const q of sa.queues) {
      if (q === 0) ok = this.main.setSaRemote(spi, direction, remote) && ok;
      else this.post(q, { t: 'saRemote', spi: spi >>> 0, direction, remote: { family: remote.family, address: remote.address, port: remote.port } });
    }
    return ok;
  }

  removeSa(spi: number, direction: 'in' | 'out'): void {
    if (this.closed) return;
    const key = `${direction}:${spi >>> 0}`;
    this.uninstall(key, spi, direction, -1);
    this.sas.delete(key);
  }

  addRoute(prefix: Prefix, outSpi: number): void {
    if (this.closed) return;
    this.main.addRoute(prefix, outSpi);
    this.broadcast({ t: 'route', prefix: wirePrefix(prefix), spi: outSpi >>> 0 });
  }

  removeRoute(prefix: Prefix): void {
    if (this.closed) return;
    this.main.removeRoute(prefix);
    this.broadcast({ t: 'rmRoute', prefix: wirePrefix(prefix) });
  }

  addSinkRoute(prefix: Prefix, sink: PacketSink): void {
    if (this.closed) return;
    const id = this.sinks.indexOf(sink);
    this.main.addSinkRoute(prefix, sink);
    this.broadcast({ t: 'sinkRoute', prefix: wirePrefix(prefix), sink: id });
  }

  removeSinkRoute(prefix: Prefix): void {
    if (this.closed) return;
    this.main.removeSinkRoute(prefix);
    this.broadcast({ t: 'rmSinkRoute', prefix: wirePrefix(prefix) });
  }

  /** Sum over the queues; workers' bytes/packets/drops as of their last report (refreshCounters). */
  saCounters(spi: number, direction: 'in' | 'out'): SaCounters | undefined {
    if (this.closed) return undefined;
    const key = `${direction}:${spi >>> 0}`;
    const e = this.sas.get(key);
    if (!e) return undefined;
    const sum: SaCounters = { bytes: 0, packets: 0, drops: {}, seq: 0 };
    for (const q of e.queues) {
      const c = q === 0 ? this.main.saCounters(spi, direction) : this.workers[q - 1]!.snapshot.get(key);
      if (!c) continue;
      sum.bytes += c.bytes;
      sum.packets += c.packets;
      sum.seq = Math.max(sum.seq, c.seq);
      for (const [k, v] of Object.entries(c.drops)) sum.drops[k] = (sum.drops[k] ?? 0) + v;
    }
    // without ESN native code may take numbers past 2^32 − 1 from the cell before it drops the packets
    if (e.seqCell) sum.seq = e.esn ? Number(Atomics.load(e.seqCell, 0)) : Math.min(Number(Atomics.load(e.seqCell, 0)), 0xffffffff);
    return sum;
  }

  /**
   * Asks every worker for its per-SA counters; resolves once all have answered, or after
   * COUNTER_REFRESH_TIMEOUT_MS (a stuck or dead worker then keeps its older snapshot).
   */
  refreshCounters(): Promise<void> {
    if (this.closed || this.workers.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.pendingRefresh.push(resolve);
      this.requestCounters();
      setTimeout(() => {
        const i = this.pendingRefresh.indexOf(resolve);
        if (i < 0) return;
        this.pendingRefresh.splice(i, 1);
        this.refreshWaiting = 0;
        resolve();
      }, COUNTER_REFRESH_TIMEOUT_MS).unref();
    });
  }

  dropCounters(): Record<string, number> {
    const out = this.main.dropCounters();
    const base = NATIVE_DP_STAT_COUNT - DROP_REASON_NAMES.length;
    for (const w of this.workers) {
      for (let i = 1; i < DROP_REASON_NAMES.length; i++) out[DROP_REASON_NAMES[i]!] = (out[DROP_REASON_NAMES[i]!] ?? 0) + w.stats[base + i]!;
    }
    return out;
  }

  stats(): DataPlaneStats {
    const s = this.main.stats();
    for (const w of this.workers) {
      s.tunRxPackets += w.stats[NATIVE_DP_STAT.tunRxPackets]!;
      s.tunRxBytes += w.stats[NATIVE_DP_STAT.tunRxBytes]!;
      s.espTxPackets += w.stats[NATIVE_DP_STAT.espTxPackets]!;
      s.espRxPackets += w.stats[NATIVE_DP_STAT.espRxPackets]!;
      s.tunTxPackets += w.stats[NATIVE_DP_STAT.tunTxPackets]!;
      s.tunTxBytes += w.stats[NATIVE_DP_STAT.tunTxBytes]!;
      s.sinkPackets += w.stats[NATIVE_DP_STAT.sinkPackets]!;
      s.controlPackets += w.stats[NATIVE_DP_STAT.controlPackets]!;
      s.natKeepalives += w.stats[NATIVE_DP_STAT.natKeepalives]!;
    }
    return s;
  }

  /** Every native counter by name, summed over the queues. */
  nativeStats(): Record<keyof typeof NATIVE_DP_STAT, number> {
    const out = this.main.nativeStats();
    for (const w of this.workers) {
      for (const [k, i] of Object.entries(NATIVE_DP_STAT)) out[k as keyof typeof NATIVE_DP_STAT] += w.stats[i]!;
    }
    return out;
  }

  /** Native counters of each queue (index = queue): how the load spread. */
  queueStats(): Record<keyof typeof NATIVE_DP_STAT, number>[] {
    const list = [this.main.nativeStats()];
    for (const w of this.workers) list.push(statsByName(NATIVE_DP_STAT, w.stats));
    return list;
  }

  onControl(cb: (pkt: Buffer, from: Endpoint, local: Endpoint) => void): void {
    this.controlCbs.push(cb);
  }

  onSaEvent(cb: (ev: SaEvent) => void): void {
    this.eventCbs.push(cb);
  }

  sendControl(pkt: Buffer, to: Endpoint, local: Endpoint): boolean {
    return this.closed ? false : this.main.sendControl(pkt, to, local);
  }

  sendNatKeepalive(to: Endpoint, local: Endpoint): boolean {
    return this.closed ? false : this.main.sendNatKeepalive(to, local);
  }

  writeToTun(pkt: Buffer, off: number, len: number, origin?: number): void {
    if (!this.closed) this.main.writeToTun(pkt, off, len, origin);
  }

  /** The same policy on every queue (see point 6 above: endpoints only ever run with one queue). */
  setPolicy(p: DataPathPolicy): void {
    if (this.closed) return;
    this.main.setPolicy(p);
    this.broadcast({ t: 'policy', p });
  }

  /** Summed over the queues; workers' as of their last report (refreshCounters). */
  policyCounters(): PolicyCounters {
    const all = [this.main.policyCounters(), ...this.workers.map((w) => w.policy).filter((c): c is PolicyCounters => c !== null)];
    return sumPolicyCounters(all);
  }

  // ---------------------------------------------------------------- SSL VPN (point 7)

  get sslOffload(): SslOffload {
    return this;
  }

  /**
   * Queue 0 polls `bind` (member 0 of the group, bound with reusePort); queues 1..N-1 get sockets of
   * their own on the same address and port, and the group is steered by peer-id. Throws IoError
   * (having closed what it opened) when the group cannot be formed.
   */
  attachSslUdp(bind: FdUdpBind, handler: SslDatagramHandler): number {
    if (this.closed) throw new IoError('attachSslUdp: the data plane is closed');
    const extra: NativeUdp[] = [];
    if (this.queues > 1) {
      const first = bind as SteerableBind;
      if (!first.steerByPeerId) throw new IoError('multi-queue data plane: the SSL VPN socket must be a NativeUdp bound with reusePort');
      try {
        for (let q = 1; q < this.queues; q++) extra.push(NativeUdp.bind({ address: bind.address, port: bind.port, reusePort: true, log: this.log }));
        first.steerByPeerId(this.queues);
      } catch (e) {
        for (const u of extra) u.close();
        throw e;
      }
    }
    const idx = this.main.attachSslUdp(bind, handler);
    this.sslGroups.set(idx, { handler, extra });
    extra.forEach((u, i) => this.post(i + 1, { t: 'sslAttach', bind: idx, sock: { fd: u.fd, family: u.family, address: u.address, port: u.port } }));
    return idx;
  }

  /** Queue 0 stops at once; each worker's socket is closed once that worker let go of it. */
  detachSslUdp(bind: number): void {
    this.main.detachSslUdp(bind);
    if (!this.sslGroups.has(bind)) return;
    if (this.closed) return; // close() closes the sockets after the workers exited
    this.broadcast({ t: 'sslDetach', bind });
  }

  installSslSession(peerId: number, p: SslSessionParams): boolean {
    if (this.closed) return false;
    const ok = this.main.installSslSession(peerId, p);
    for (const w of this.workers) w.ssl.delete(peerId);
    this.broadcast({
      t: 'sslSession',
      peerId,
      p: { bind: p.bind, remote: wireEndpoint(p.remote), compression: p.compression, clientPrefix: wirePrefix(p.clientPrefix), serverAddress: p.serverAddress, origin: p.origin ?? 0 },
    });
    return ok;
  }

  setSslRemote(peerId: number, bind: number, remote: Endpoint): boolean {
    if (this.closed) return false;
    this.broadcast({ t: 'sslRemote', peerId, bind, remote: wireEndpoint(remote) });
    return this.main.setSslRemote(peerId, bind, remote);
  }

  setSslVirtualAddress(peerId: number, address: string | null): boolean {
    if (this.closed) return false;
    this.broadcast({ t: 'sslVaddr', peerId, address });
    return this.main.setSslVirtualAddress(peerId, address);
  }

  setSslCompression(peerId: number, mode: number): boolean {
    if (this.closed) return false;
    this.broadcast({ t: 'sslComp', peerId, mode });
    return this.main.setSslCompression(peerId, mode);
  }

  setSslOrigin(peerId: number, origin: number): boolean {
    if (this.closed) return false;
    this.broadcast({ t: 'sslOrigin', peerId, origin });
    return this.main.setSslOrigin(peerId, origin);
  }

  /** Every queue gets the key with ONE new packet-id cell (starting at the key's initial packet-id). */
  setSslKey(peerId: number, k: SslKeyMaterial): boolean {
    if (this.closed) return false;
    const cell = this.queues > 1 ? new BigUint64Array(new SharedArrayBuffer(8)) : undefined;
    if (cell) cell[0] = BigInt(k.initialSendPacketId ?? 0);
    const ok = this.main.setSslKey(peerId, k, cell);
    if (ok) this.broadcast({ t: 'sslKey', peerId, k: wireSslKey(k), ...(cell ? { pidCell: cell } : {}) });
    return ok;
  }

  retireSslKey(peerId: number, keyId: number): boolean {
    if (this.closed) return false;
    this.broadcast({ t: 'sslRetire', peerId, keyId });
    return this.main.retireSslKey(peerId, keyId);
  }

  removeSslSession(peerId: number): boolean {
    if (this.closed) return false;
    this.broadcast({ t: 'sslRemove', peerId });
    for (const w of this.workers) w.ssl.delete(peerId);
    return this.main.removeSslSession(peerId);
  }

  addSslRoute(prefix: Prefix, peerId: number): void {
    if (this.closed) return;
    this.main.addSslRoute(prefix, peerId);
    this.broadcast({ t: 'sslRoute', prefix: wirePrefix(prefix), peerId });
  }

  removeSslRoute(prefix: Prefix): boolean {
    if (this.closed) return false;
    this.broadcast({ t: 'rmSslRoute', prefix: wirePrefix(prefix) });
    return this.main.removeSslRoute(prefix);
  }

  /**
   * Queue 0's counters plus each worker's as of its last report (refreshCounters); the send key and
   * its packet-id are exact (queue 0's view of the shared cell).
   */
  sslCounters(peerId: number): SslSessionCounters | undefined {
    const c = this.main.sslCounters(peerId);
    if (!c) return undefined;
    const now = Date.now();
    for (const w of this.workers) {
      const o = w.ssl.get(peerId);
      if (!o) continue;
      // a queue learned the client's compression framing from its packets (src/native/core/ovpn.cc,
      // Unframe): every queue that encrypts for the session must frame the same way
      if (o.compression !== c.compression && c.compression === COMP_NONE) {
        this.setSslCompression(peerId, o.compression);
        c.compression = o.compression;
      }
      c.rxPackets += o.rxPackets;
      c.rxBytes += o.rxBytes;
      c.txPackets += o.txPackets;
      c.txBytes += o.txBytes;
      c.pingsIn += o.pingsIn;
      c.pingsOut += o.pingsOut;
      const age = Math.max(0, now - w.sslAtMs);
      c.msSinceRx = minSince(c.msSinceRx, o.msSinceRx < 0 ? -1 : o.msSinceRx + age);
      c.msSinceTx = minSince(c.msSinceTx, o.msSinceTx < 0 ? -1 : o.msSinceTx + age);
      for (const [k, v] of Object.entries(o.drops)) c.drops[k] = (c.drops[k] ?? 0) + v;
    }
    return c;
  }

  sendSslPing(peerId: number): boolean {
    return !this.closed && this.main.sendSslPing(peerId);
  }

  sslSend(peerId: number, buf: Buffer, off: number, len: number): boolean {
    return !this.closed && this.main.sslSend(peerId, buf, off, len);
  }

  sslDecrypt(peerId: number, buf: Buffer, off: number, len: number): number {
    return this.closed ? -1 : this.main.sslDecrypt(peerId, buf, off, len);
  }

  /**
   * Stops every queue. Queue 0 stops at once; the returned promise resolves when every worker has
   * closed its data plane (and its TUN queue fd) and exited: only then may the caller close the UDP
   * sockets of queues 1..N-1.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    const perQueue = this.queueStats();
    this.main.close();
    for (const r of this.pendingRefresh.splice(0)) r();
    this.closing = Promise.all(
      this.workers.map(async (w) => {
        w.worker.postMessage({ t: 'close' } satisfies ToWorker);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), WORKER_EXIT_TIMEOUT_MS)));
        const r = await Promise.race([w.exited.then(() => 'exited' as const), late]);
        clearTimeout(timer);
        if (r === 'late') {
          this.log.warn({}, 'data plane worker did not exit; terminating it');
          await w.worker.terminate();
        }
      }),
    ).then(() => {
      for (const g of this.sslGroups.values()) g.extra.forEach((u, i) => (u?.close(), (g.extra[i] = null)));
      this.sslGroups.clear();
      // how the SSL VPN's native data channel spread over the queues
      const sslRx = perQueue.map((q) => q.sslRxPackets);
      const sslTx = perQueue.map((q) => q.sslTxPackets);
      this.log.info({ sas: this.sas.size, sslRxPackets: sslRx, sslTxPackets: sslTx }, 'multi-queue data plane closed');
      this.sas.clear();
    });
    return this.closing;
  }

  // ---------------------------------------------------------------- internals

  private uninstall(key: string, spi: number, direction: 'in' | 'out', except: number): void {
    const e = this.sas.get(key);
    if (!e) return;
    for (const q of e.queues) {
      if (q === except) continue;
      if (q === 0) this.main.removeSa(spi, direction);
      else this.post(q, { t: 'rmSa', spi: spi >>> 0, direction });
      this.workers[q - 1]?.snapshot.delete(key);
    }
  }

  private post(q: number, m: ToWorker): void {
    this.workers[q - 1]!.worker.postMessage(m);
  }

  private broadcast(m: ToWorker): void {
    for (const w of this.workers) w.worker.postMessage(m);
  }

  private requestCounters(): void {
    if (this.closed) return;
    if (this.refreshWaiting > 0) return; // a round is in flight; its answers serve everyone waiting
    this.refreshWaiting = this.workers.length;
    this.broadcast({ t: 'counters' });
  }

  private onWorkerMessage(w: QueueWorker, qlog: Logger, m: FromWorker): void {
    if (this.closed && m.t !== 'log') return;
    switch (m.t) {
      case 'ctl':
        this.deliverControl(Buffer.from(m.pkt.buffer, m.pkt.byteOffset, m.pkt.byteLength), m.from, this.bindLocal[m.bind] ?? m.local);
        break;
      case 'sink': {
        const buf = Buffer.from(m.buf);
        let off = 0;
        for (const len of m.lens) {
          if (!this.sinks.push(m.sink, buf, off, len)) break;
          off += len;
        }
        this.sinks.flush();
        break;
      }
      case 'event':
        this.deliverEvent(m.ev);
        break;
      case 'counters':
        w.snapshot = new Map(m.sas);
        w.policy = m.policy;
        w.ssl = new Map(m.ssl);
        w.sslAtMs = Date.now();
        if (this.refreshWaiting > 0 && --this.refreshWaiting === 0) {
          for (const r of this.pendingRefresh.splice(0)) r();
        }
        break;
      case 'ssl':
        this.deliverSsl(m.bind, Buffer.from(m.buf), m.items);
        break;
      case 'sslDetached': {
        const g = this.sslGroups.get(m.bind);
        const q = this.workers.indexOf(w);
        if (g && q >= 0) {
          g.extra[q]?.close();
          g.extra[q] = null;
          if (g.extra.every((u) => u === null)) this.sslGroups.delete(m.bind);
        }
        break;
      }
      case 'log':
        qlog[m.level](m.obj, m.msg);
        break;
      default:
        break;
    }
  }

  private deliverControl(pkt: Buffer, from: Endpoint, local: Endpoint): void {
    callControlCallbacks(this.log, this.controlCbs, pkt, from, local);
  }

  /** What a worker's engine handed to the SSL handler (floats it authenticated, OCC, client-to-client). */
  private deliverSsl(bind: number, buf: Buffer, items: readonly WireSslItem[]): void {
    const h = this.sslGroups.get(bind)?.handler;
    if (!h) return;
    for (const it of items) {
      try {
        if (it.kind === 0) h.datagram(buf, it.off, it.len, it.from);
        else h.plaintext(it.peerId, buf, it.off, it.len, it.from);
      } catch (err) {
        this.log.error({ err }, 'SSL datagram handler failed');
      }
    }
    try {
      h.flush();
    } catch (err) {
      this.log.error({ err }, 'SSL datagram handler flush failed');
    }
  }

  private deliverEvent(ev: SaEvent): void {
    if (!this.sas.has(`${ev.direction}:${ev.spi >>> 0}`)) return;
    // lifetime events fire once per SA whichever queue sees them; a peer move may happen again
    if (ev.kind !== 'peer-moved') {
      const k = `${ev.direction}:${ev.spi >>> 0}:${ev.kind}`;
      if (this.firedEvents.has(k)) return;
      this.firedEvents.add(k);
    }
    callSaEventCallbacks(this.log, this.eventCbs, ev);
  }
}

function zeroDrops(): Record<PolicyDrop, number> {
  const d = {} as Record<PolicyDrop, number>;
  for (const r of POLICY_DROPS) d[r] = 0;
  return d;
}

/** The sum of several queues' policy counters (endpoints matched by id, aclDenied by origin). */
export function sumPolicyCounters(list: readonly PolicyCounters[]): PolicyCounters {
  const drops = zeroDrops();
  const eps = new Map<number, EndpointCounters & { drops: Record<PolicyDrop, number> }>();
  const aclDenied = new Map<number, number>();
  let flows = 0;
  for (const c of list) {
    flows += c.flows;
    for (const r of POLICY_DROPS) drops[r] += c.drops[r];
    for (const [o, n] of c.aclDenied) aclDenied.set(o, (aclDenied.get(o) ?? 0) + n);
    for (const e of c.endpoints) {
      const s = eps.get(e.id);
      if (!s) {
        eps.set(e.id, { ...e, drops: { ...e.drops } });
        continue;
      }
      eps.set(e.id, {
        id: e.id, flows: s.flows + e.flows, flowsCreated: s.flowsCreated + e.flowsCreated,
        packetsIn: s.packetsIn + e.packetsIn, bytesIn: s.bytesIn + e.bytesIn,
        packetsOut: s.packetsOut + e.packetsOut, bytesOut: s.bytesOut + e.bytesOut,
        drops: Object.fromEntries(POLICY_DROPS.map((r) => [r, s.drops[r] + e.drops[r]])) as Record<PolicyDrop, number>,
      });
    }
  }
  return { drops, endpoints: [...eps.values()], aclDenied, flows };
}

/** Each of n queues counts its own share: soft and hard limits divided by n (early, never late). */
function splitLifetime(p: SaParams, n: number): SaParams {
  const lt = p.lifetime;
  if (!lt) return p;
  const div = (v: number | undefined): number => (v && v > 0 ? Math.max(1, Math.floor(v / n)) : 0);
  return {
    ...p,
    lifetime: { ...lt, softBytes: div(lt.softBytes), hardBytes: div(lt.hardBytes), softPackets: div(lt.softPackets), hardPackets: div(lt.hardPackets) },
  };
}

function wirePrefix(p: Prefix): { family: number; len: number; bytes: Uint8Array } {
  return { family: p.family, len: p.len, bytes: new Uint8Array(p.bytes) };
}

function wireSa(p: SaParams): WireSaParams {
  return {
    ...p,
    encrKey: new Uint8Array(p.encrKey),
    integKey: new Uint8Array(p.integKey),
    localTs: p.localTs.map(wirePrefix),
    remoteTs: p.remoteTs.map(wirePrefix),
  };
}

function wireEndpoint(e: Endpoint): Endpoint {
  return { family: e.family, address: e.address, port: e.port };
}

function wireSslKey(k: SslKeyMaterial): WireSslKey {
  return {
    ...k,
    encKey: new Uint8Array(k.encKey),
    encImplicitIv: new Uint8Array(k.encImplicitIv),
    decKey: new Uint8Array(k.decKey),
    decImplicitIv: new Uint8Array(k.decImplicitIv),
  };
}

/** The more recent of two "ms since" values (-1: never). */
function minSince(a: number, b: number): number {
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}
