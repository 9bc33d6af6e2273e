import { IoError, VpnError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { NativeUdp } from '../net/native-udp.js';
import type { UdpBind } from '../net/udp-bind.js';
import type { TunDevice } from '../tun/tun-device.js';
import type { DataPlane } from './data-plane.js';
import { bindQueueSockets, MultiQueueDataPlane } from './multi-queue.js';
import { loadNativeDataPlane, NativeDataPlane } from './native-data-plane.js';
import type { FdUdpBind, NativeDataPlaneOptions, OffloadTun } from './native-data-plane.js';
import { OffloadTunDevice } from './offload-tun-device.js';
import { TsDataPlane } from './ts-data-plane.js';

/**
 * The one place that decides which data plane runs, and says so in ONE log line with the reason.
 *
 *   1. VPCGW_DATAPLANE=ts                      → TypeScript data plane
 *   2. no offload TUN on this platform, or the native addon does not load
 *                                              → TypeScript (VPCGW_DATAPLANE=native: an error instead)
 *   3. queues > 1 and the multi-queue TUN opens → multi-queue (else one queue, the reason kept)
 *   4. the offload TUN opens                   → native (else TypeScript; =native: an error)
 *   5. after the UDP 4500 sockets are bound: multi-queue starts its workers and SO_REUSEPORT group
 *      (if that fails: the native data plane on queue 0 alone, the reason kept).
 *
 * The choice has two steps because the TUN is opened before the sockets are bound (the daemon gives
 * the TUN its address first) and the multi-queue data plane needs SO_REUSEPORT set at bind time:
 * `openDataPlaneTun` (steps 1-4) opens the TUN and says whether to bind with reusePort,
 * `DataPlaneChoice.start` (step 5) builds the data plane over the bound 4500 sockets and logs.
 */

export type DataPlaneMode = 'auto' | 'ts' | 'native';
/** The reason logged when the environment forces the TypeScript data plane. */
const FORCED_TS = 'VPCGW_DATAPLANE=ts';
export type DataPlaneKind = 'native' | 'multi-queue' | 'ts' | 'custom';

/** What VPCGW_DATAPLANE asks for: `ts` or `native` force one; anything else is `auto`. */
export function dataPlaneModeFromEnv(env: NodeJS.ProcessEnv = process.env): DataPlaneMode {
  const v = env.VPCGW_DATAPLANE;
  return v === 'ts' || v === 'native' ? v : 'auto';
}

/**
 * Builds a data plane over an opened TUN and the UDP 4500 sockets. The data plane owns their receive
 * side (it calls `start` on them): ESP goes TUN <-> UDP inside it, IKE on 4500 comes out through
 * `onControl`.
 */
export type DataPlaneFactory = (io: { tun: TunDevice; binds: readonly UdpBind[]; log: Logger }) => DataPlane;

export const tsDataPlane: DataPlaneFactory = ({ tun, binds, log }) => new TsDataPlane(tun, binds, { logger: log });

/** How the chooser opens TUN devices (the daemon's GatewayPlatform provides them; tests fake them). */
export interface DataPlaneTunOpeners {
  /** a plain TUN, read by the TypeScript data plane */
  openTun(): TunDevice;
  /** a TUN with virtio headers + TSO for the native data plane; absent: no native data plane here */
  openOffloadTun?(): OffloadTun;
  /** `queues` fds of one multi-queue offload TUN; absent: one queue */
  openMultiQueueTun?(queues: number): OffloadTun[];
}

export interface DataPlaneRequest {
  tuns: DataPlaneTunOpeners;
  log: Logger;
  /** queues wanted (gateway.dataPlane.queues, resolved); default 1 */
  queues?: number;
  /** default: VPCGW_DATAPLANE */
  mode?: DataPlaneMode;
  /** the native data plane's receive moderation (gateway.dataPlane.rxModerationUs; NativeDataPlaneOptions) */
  rxModerationUs?: number;
  /**
   * undefined (default): choose as above; a factory: a plain TUN and that data plane; null: a plain
   * TUN and no data plane.
   */
  factory?: DataPlaneFactory | null;
}

export interface StartedDataPlane {
  readonly dataPlane: DataPlane | null;
  readonly kind: DataPlaneKind | 'none';
  /** UDP sockets the chooser bound (further members of multi-queue SO_REUSEPORT groups): close them after the data plane */
  readonly extraBinds: readonly UdpBind[];
}

/** Step 1 done: the TUN is open; bind the 4500 sockets (with `reusePort`), then `start`. */
export interface DataPlaneChoice {
  readonly tun: TunDevice;
  /** bind each UDP 4500 socket with SO_REUSEPORT: it starts a multi-queue group */
  readonly reusePort: boolean;
  /** Builds the data plane over the 4500 sockets and logs the one line saying which runs and why. */
  start(binds: readonly UdpBind[]): Promise<StartedDataPlane>;
  /** Closes the TUN fds that no data plane took over (start failed or never ran); idempotent. */
  abandon(): void;
}

/** Opens the TUN the chosen data plane needs (steps 1-4 above). Throws when mode is `native` and native cannot run. */
export function openDataPlaneTun(req: DataPlaneRequest): DataPlaneChoice {
  const log = req.log;
  if (req.factory !== undefined) return new GivenChoice(req.tuns.openTun(), log, req.factory);
  const mode = req.mode ?? dataPlaneModeFromEnv();
  const ts = (reason: string): DataPlaneChoice => {
    if (mode === 'native') throw new VpnError('ERR_NATIVE_UNAVAILABLE', `native data plane not available: ${reason}`);
    return new TsChoice(req.tuns.openTun(), log, reason);
  };
  if (mode === 'ts') return ts(FORCED_TS);
  if (!req.tuns.openOffloadTun) return ts('this platform has no offload TUN');
  const why = nativeAddonProblem();
  if (why !== null) return ts(why);
  const queues = req.tuns.openMultiQueueTun ? Math.max(1, req.queues ?? 1) : 1;
  let oneQueueReason: string | null = null;
  if (queues > 1) {
    try {
      const fds = req.tuns.openMultiQueueTun!(queues);
      return new NativeChoice(new OffloadTunDevice(fds[0]!), fds.slice(1), log, null, req.rxModerationUs);
    } catch (e) {
      oneQueueReason = `cannot open a multi-queue TUN: ${(e as Error).message}`;
    }
  }
  let tun: OffloadTun;
  try {
    tun = req.tuns.openOffloadTun();
  } catch (e) {
    return ts(`cannot open an offload TUN: ${(e as Error).message}`);
  }
  return new NativeChoice(tun instanceof OffloadTunDevice ? tun : new OffloadTunDevice(tun), [], log, oneQueueReason, req.rxModerationUs, queues);
}

/** Why the native addon's data plane cannot be loaded, or null. */
export function nativeAddonProblem(): string | null {
  try {
    loadNativeDataPlane();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Why the native backend cannot serve these already-open devices, or null when it can. */
export function nativeUnavailableReason(tun: TunDevice, binds: readonly UdpBind[]): string | null {
  const why = nativeAddonProblem();
  if (why !== null) return why;
  if (typeof (tun as { fd?: unknown }).fd !== 'number') return 'the TUN device has no file descriptor (not a LinuxTun)';
  for (const b of binds) {
    if (typeof (b as { fd?: unknown }).fd !== 'number') return 'a UDP bind has no file descriptor (not a NativeUdp)';
  }
  return null;
}

export interface SelectDataPlaneIo {
  tun: TunDevice;
  binds: readonly UdpBind[];
  log: Logger;
}

export interface SelectOptions extends NativeDataPlaneOptions {
  /** default: VPCGW_DATAPLANE */
  prefer?: DataPlaneMode;
}

/**
 * The same choice over devices that are already open (a plain LinuxTun and NativeUdp sockets: no
 * offloads, one queue): native when it can serve them, else TypeScript, with the same one log line.
 */
export function selectDataPlane(io: SelectDataPlaneIo, opts: SelectOptions = {}): DataPlane & { readonly backend: 'native' | 'ts' } {
  const mode = opts.prefer ?? dataPlaneModeFromEnv();
  let reason = mode === 'ts' ? FORCED_TS : nativeUnavailableReason(io.tun, io.binds);
  if (reason !== null && mode === 'native') throw new VpnError('ERR_NATIVE_UNAVAILABLE', `native data plane not available: ${reason}`);
  if (reason === null) {
    try {
      const dp = new NativeDataPlane(io.tun as TunDevice & { fd: number }, io.binds as readonly FdUdpBind[], { ...opts, logger: opts.logger ?? io.log });
      logNative(io.log, dp, null, 1);
      return Object.assign(dp, { backend: 'native' as const });
    } catch (e) {
      if (mode === 'native') throw e;
      reason = `native data plane failed to start: ${(e as Error).message}`;
    }
  }
  const ts = new TsDataPlane(io.tun, io.binds, { logger: io.log });
  logTs(io.log, reason);
  return Object.assign(ts, { backend: 'ts' as const });
}

/** Which kind a data plane built elsewhere is (status, the log line). */
export function dataPlaneKind(dp: DataPlane): DataPlaneKind {
  if (dp instanceof MultiQueueDataPlane) return 'multi-queue';
  if (dp instanceof NativeDataPlane) return 'native';
  if (dp instanceof TsDataPlane) return 'ts';
  return 'custom';
}

// ---------------------------------------------------------------- the one log line

function logTs(log: Logger, reason: string): void {
  if (reason === FORCED_TS) log.info({ dataPlane: 'ts', reason }, 'TypeScript data plane started, as VPCGW_DATAPLANE asks');
  else log.warn({ dataPlane: 'ts', reason }, 'native data plane not available: using the TypeScript data plane');
}

/** `oneQueueReason`: why `queues` > 1 were asked for but one runs. */
function logNative(log: Logger, dp: NativeDataPlane, oneQueueReason: string | null, queues: number): void {
  const fields = { dataPlane: 'native', tun: dp.tunName, ...dp.offloads };
  if (oneQueueReason === null) log.info(fields, 'native data plane started');
  else log.warn({ ...fields, queues, reason: oneQueueReason }, 'multi-queue data plane not available: running one queue on the native data plane');
}

function logMultiQueue(log: Logger, dp: MultiQueueDataPlane): void {
  log.info({ dataPlane: 'multi-queue', queues: dp.queues, tun: dp.tunName, ...dp.offloads }, 'multi-queue data plane started');
}

// ---------------------------------------------------------------- the choices

class TsChoice implements DataPlaneChoice {
  readonly reusePort = false;
  constructor(readonly tun: TunDevice, private readonly log: Logger, private readonly reason: string) {}

  async start(binds: readonly UdpBind[]): Promise<StartedDataPlane> {
    const dp = new TsDataPlane(this.tun, binds, { logger: this.log });
    logTs(this.log, this.reason);
    return { dataPlane: dp, kind: 'ts', extraBinds: [] };
  }

  abandon(): void {}
}

/** A data plane the caller gave (or none), over a plain TUN. */
class GivenChoice implements DataPlaneChoice {
  readonly reusePort = false;
  constructor(readonly tun: TunDevice, private readonly log: Logger, private readonly factory: DataPlaneFactory | null) {}

  async start(binds: readonly UdpBind[]): Promise<StartedDataPlane> {
    if (!this.factory) {
      this.log.info({ dataPlane: 'none' }, 'running without a data plane: TUN packets and ESP are counted and dropped');
      return { dataPlane: null, kind: 'none', extraBinds: [] };
    }
    const dp = this.factory({ tun: this.tun, binds, log: this.log });
    const kind = dataPlaneKind(dp);
    this.log.info({ dataPlane: kind }, 'data plane started (given by the caller)');
    return { dataPlane: dp, kind, extraBinds: [] };
  }

  abandon(): void {}
}

/** The native data plane over an offload TUN: one queue, or `queueTuns.length + 1` queues. */
class NativeChoice implements DataPlaneChoice {
  readonly reusePort: boolean;
  /** TUN fds not yet owned by a data plane (abandon closes them) */
  private unowned: OffloadTun[];

  constructor(
    readonly tun: OffloadTunDevice,
    private queueTuns: readonly OffloadTun[],
    private readonly log: Logger,
    private oneQueueReason: string | null,
    private readonly rxModerationUs: number | undefined,
    private readonly queuesAsked = queueTuns.length + 1,
  ) {
    this.reusePort = queueTuns.length > 0;
    this.unowned = [tun, ...queueTuns];
  }

  async start(binds: readonly UdpBind[]): Promise<StartedDataPlane> {
    const fdBinds = binds.filter((b): b is FdUdpBind => typeof (b as { fd?: unknown }).fd === 'number');
    if (fdBinds.length !== binds.length) throw new IoError('the native data plane needs NativeUdp sockets');
    const extraBinds: UdpBind[] = [];
    let dp: NativeDataPlane | MultiQueueDataPlane | null = null;
    if (this.queueTuns.length > 0) {
      try {
        dp = await this.startMultiQueue(fdBinds, extraBinds);
      } catch (e) {
        this.oneQueueReason = `multi-queue data plane failed: ${(e as Error).message}`;
        for (const u of extraBinds.splice(0)) u.close();
        this.closeFds(this.unowned.filter((t) => t !== this.tun));
      }
    }
    if (!dp) {
      const single = new NativeDataPlane(this.tun, fdBinds, { logger: this.log, ...this.modOpt() });
      this.unowned = [];
      logNative(this.log, single, this.oneQueueReason, this.queuesAsked);
      dp = single;
    } else {
      logMultiQueue(this.log, dp);
    }
    const stats = dp;
    this.tun.statsSource = () => {
      const st = stats.stats();
      return { rxPackets: st.tunRxPackets, rxBytes: st.tunRxBytes, txPackets: st.tunTxPackets, txBytes: st.tunTxBytes, readBatches: 0, writeErrors: 0 };
    };
    return { dataPlane: dp, kind: dp instanceof MultiQueueDataPlane ? 'multi-queue' : 'native', extraBinds };
  }

  abandon(): void {
    this.closeFds(this.unowned);
  }

  /**
   * Queue 0 over `binds`, and per 4500 socket queues-1 more SO_REUSEPORT sockets steered by SPI
   * (pushed to `extraBinds`). Throws when it cannot start (no reuseport BPF, a worker failure).
   */
  private async startMultiQueue(binds: readonly FdUdpBind[], extraBinds: UdpBind[]): Promise<MultiQueueDataPlane> {
    const queues = this.queueTuns.length + 1;
    const perBind = binds.map((b) => {
      if (!(b instanceof NativeUdp)) throw new IoError('the multi-queue data plane needs NativeUdp sockets');
      const extra = bindQueueSockets(b, queues, this.log);
      extraBinds.push(...extra);
      return extra;
    });
    const qBinds = [binds, ...this.queueTuns.map((_, i) => perBind.map((extra) => extra[i]!))];
    // from here MultiQueueDataPlane.start owns every TUN fd: it closes them itself when it fails
    this.unowned = [];
    const tuns = [this.tun, ...this.queueTuns];
    this.queueTuns = [];
    try {
      return await MultiQueueDataPlane.start({ tuns, binds: qBinds }, { logger: this.log, ...this.modOpt() });
    } catch (e) {
      // queue 0's fd is still ours (it is the single-queue fallback): only workers' fds were closed
      this.unowned = [this.tun];
      throw e;
    }
  }

  private modOpt(): { rxModerationUs?: number } {
    return this.rxModerationUs === undefined ? {} : { rxModerationUs: this.rxModerationUs };
  }

  private closeFds(list: readonly OffloadTun[]): void {
    for (const t of list) {
      try {
        loadNativeDataPlane().closeFd(t.fd);
      } catch (err) {
        this.log.warn({ err, tun: t.name }, 'cannot close a TUN queue fd');
      }
    }
    this.unowned = this.unowned.filter((t) => !list.includes(t));
  }
}
