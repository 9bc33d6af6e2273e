import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { VpnError } from '../common/errors.js';
import { IKE_PORT } from '../common/ipsec-udp.js';
import { formatIkeSpi } from '../common/spi.js';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType, ProtocolId } from './wire/constants.js';
import type { IkeMessage, Proposal } from './wire/types.js';
import { peerOfferRefused } from './failure.js';
import { decodeHeader, decodeMessage, encodeMessage } from './wire/message.js';
import { DEFAULT_RETRANSMIT, NAT_KEEPALIVE_DEFAULT_SEC, type PeerConfig, type RetransmitConfig } from './config/peer-config.js';
import { IkeSa, notify, type IkeContext } from './sa/ike-sa.js';
import { spiHex } from './sa/child-sa.js';
import { type Endpoint, type IkeAction, endpointToString } from './sa/types.js';
import { IkeInitTask, chooseIkeProposal } from './tasks/ike-init.js';
import { IkeNatdTask } from './tasks/ike-natd.js';
import { IkeAuthTask } from './tasks/ike-auth.js';
import { ChildCreateTask } from './tasks/child-create.js';
import { ChildDeleteTask } from './tasks/child-delete.js';
import { IkeDeleteTask } from './tasks/ike-delete.js';
import { IkeDpdTask } from './tasks/ike-dpd.js';
import type { IkeTask } from './tasks/task.js';
import { findNotify, findPayload } from './tasks/task.js';
import { ChildRekeyTask } from './tasks/child-rekey.js';
import { ChildRecreateTask } from './tasks/child-recreate.js';
import { IkeRekeyTask, type IkeRekeyHost } from './tasks/ike-rekey.js';
import { tsToString } from './config/traffic-selector.js';
import { type ChildVolumeEvent, checkLifetimes, childVolumeReached, lifetimeDeadline, startChildRekey, startIkeRekey } from './rekey-scheduler.js';
import { proposalToString } from './config/proposal.js';
import { DEFAULT_HALF_OPEN_TIMEOUT_SEC, IkeInitGuard, type InitLimits } from './init-guard.js';

/** An IKE_SA_INIT from a source no connection matches is logged at most this often per source. */
export const UNMATCHED_LOG_INTERVAL_MS = 60_000;
/** Sources remembered for that log's rate limit; the memory is cleared when it fills (a spoofed flood). */
const UNMATCHED_LOG_SOURCES_MAX = 1024;

/**
 * Re-initiation after the peer went away (DPD action restart, strongSwan's dpd_action=restart):
 * the first attempt goes out at once; each attempt that fails before the IKE SA is up waits twice
 * as long as the last before the next, from RESTART_BACKOFF_MIN_MS up to RESTART_BACKOFF_MAX_MS.
 */
export const RESTART_BACKOFF_MIN_MS = 2000;
export const RESTART_BACKOFF_MAX_MS = 120_000;
/**
 * A trapped connection (startAction trap) initiates on the first packet for its remote subnets;
 * further packets while it is down start another attempt at most this often.
 */
export const TRAP_ACQUIRE_INTERVAL_MS = 5000;

export interface IkeManagerOptions {
  log: Logger;
  retransmit?: RetransmitConfig;
  halfOpenTimeoutSec?: number;
  /** IKE_SA_INIT admission thresholds (src/ike/init-guard.ts); defaults DEFAULT_INIT_LIMITS */
  initLimits?: Partial<InitLimits>;
  /** the clock at construction (the first cookie secret's birth); default 0 */
  now?: number;
  /** injectable randomness (tests) */
  random?: (n: number) => Buffer;
}

export interface ChildStatus {
  name: string;
  state: string;
  spiIn: string;
  spiOut: string;
  localTs: string[];
  remoteTs: string[];
  proposal: string;
  installedAtMs: number;
}

/** Keepalive interval of an SA in ms: only established, behind a NAT we detected, with keepalives on; else 0. */
function natKeepaliveMs(sa: IkeSa): number {
  if (sa.state !== 'ESTABLISHED' || !sa.weBehindNat || !sa.cfg) return 0;
  return (sa.cfg.natKeepaliveSec ?? NAT_KEEPALIVE_DEFAULT_SEC) * 1000;
}

/** What NAT detection found for an IKE SA and what followed from it (status). */
export interface IkeSaNatStatus {
  /** where RFC 7296 §2.23 detection found a NAT: none, the peer's side, ours (local) or both */
  behindNat: 'none' | 'peer' | 'local' | 'both';
  /** ESP goes in UDP 4500 (RFC 3948) */
  udpEncap: boolean;
  /** our NAT_DETECTION_SOURCE_IP was faked to force the encapsulation (encap on, or no raw ESP path) */
  encapForced: boolean;
  /** times the peer's endpoint moved (NAT rebinding) */
  peerMoves: number;
  /** NAT-keepalives we sent */
  keepalivesSent: number;
}

export interface IkeSaStatus {
  connection: string;
  ikeId: string;
  state: string;
  initiator: boolean;
  local: string;
  remote: string;
  peerId: string | null;
  proposal: string | null;
  establishedAtMs: number;
  nat: IkeSaNatStatus;
  children: ChildStatus[];
}

/** Drop counters for IKE input that never reached an SA. */
export interface IkeCounters {
  malformed: number;
  unknownSpi: number;
  noConfig: number;
  noProposal: number;
  invalidKe: number;
  badVersion: number;
  unsupportedCritical: number;
  /** IKE_SA_INIT answered with only N(COOKIE) (RFC 7296 §2.6) */
  cookiesSent: number;
  /** of those, requests that carried a cookie that did not verify (wrong, or of a retired secret) */
  cookieInvalid: number;
  /** IKE_SA_INIT dropped: the half-open total was at its hard limit */
  halfOpenLimit: number;
  /** IKE_SA_INIT dropped: the source held as many half-open SAs as it may */
  halfOpenPerSource: number;
  [k: string]: number;
}

/** Responder load as `vpcgw status` shows it. */
export interface IkeResponderStats {
  halfOpen: number;
  halfOpenSources: number;
  cookiesSent: number;
  /** IKE input dropped before reaching an SA, by reason (the counters above but cookiesSent) */
  drops: Record<string, number>;
}

/**
 * Per-connection lifecycle counters. They live in the manager, keyed by connection name, because an
 * IKE rekey replaces the IKE SA object (RFC 7296 §2.18) and a dead peer's SA is dropped: the totals
 * must outlive both, as strongSwan's counters plugin keeps them per connection.
 */
export interface IkeConnectionCounters {
  /** IKE SAs of the connection replaced by a rekey (either side started it) */
  ikeRekeys: number;
  /** CHILD_SAs of the connection replaced by a rekey (either side started it) */
  childRekeys: number;
  /** liveness checks (DPD) we sent that went unanswered: the IKE SA was cleared */
  dpdFailures: number;
}

interface HalfOpenEntry {
  sa: IkeSa;
  /** the source address the guard counted it under */
  source: string;
}

/**
 * All IKE SAs of the gateway: demultiplexes datagrams to SAs by our SPI, answers stateless errors
 * for IKE_SA_INIT, creates responder SAs, and drives initiation and teardown per connection.
 * Pure like the SAs: every call takes `now` and returns actions for the shell.
 */
export class IkeManager {
  private readonly log: Logger;
  private readonly ctx: IkeContext;
  private configs = new Map<string, PeerConfig>();
  /** by our SPI (hex) */
  private readonly sas = new Map<string, IkeSa>();
  /** responder half-open SAs by "spiI|peer" so a retransmitted IKE_SA_INIT finds its SA */
  private readonly halfOpen = new Map<string, HalfOpenEntry>();
  private readonly guard: IkeInitGuard;
  /** unmatched sources → when their drop was last logged, and drops since */
  private readonly unmatchedLog = new Map<string, { atMs: number; dropped: number }>();
  private readonly childSpis = new Set<number>();
  /** rekeys and DPD failures by connection name (connectionCounters) */
  private readonly connCounters = new Map<string, IkeConnectionCounters>();
  private readonly random: (n: number) => Buffer;
  /** connections re-initiating after their peer went away (DPD action restart), by name */
  private readonly restarts = new Map<string, { atMs: number; attempt: number }>();
  /** trapped connections: when traffic last started an initiation, by name */
  private readonly acquiredAtMs = new Map<string, number>();
  readonly counters: IkeCounters = {
    malformed: 0, unknownSpi: 0, noConfig: 0, noProposal: 0, invalidKe: 0, badVersion: 0, unsupportedCritical: 0,
    cookiesSent: 0, cookieInvalid: 0, halfOpenLimit: 0, halfOpenPerSource: 0,
  };
  private clock = 0;

  constructor(opts: IkeManagerOptions) {
    this.log = opts.log;
    this.random = opts.random ?? ((n) => randomBytes(n));
    this.guard = new IkeInitGuard(opts.initLimits ?? {}, (n) => this.random(n), opts.now ?? 0);
    const mgr = this;
    this.ctx = {
      log: opts.log,
      retransmit: opts.retransmit ?? DEFAULT_RETRANSMIT,
      halfOpenTimeoutSec: opts.halfOpenTimeoutSec ?? DEFAULT_HALF_OPEN_TIMEOUT_SEC,
      random: (n) => mgr.random(n),
      allocChildSpi: () => mgr.allocChildSpi(),
      releaseChildSpi: (spi) => void mgr.childSpis.delete(spi),
      hasOtherIkeSa: (cfg, except) => [...mgr.sas.values()].some((s) => s !== except && s.cfg === cfg && s.state === 'ESTABLISHED'),
      onChildRekeyed: (sa) => void (sa.cfg && mgr.countersOf(sa.cfg.name).childRekeys++),
      onDpdFailed: (sa) => void (sa.cfg && mgr.countersOf(sa.cfg.name).dpdFailures++),
    };
  }

  /**
   * Sets the connections at startup. It does not look at SAs: one whose config object is replaced
   * or removed here would run on with it (and `initiate` would start a second SA beside it). While
   * SAs run, use replaceConfigs.
   */
  setConfigs(configs: readonly PeerConfig[]): void {
    this.configs = new Map(configs.map((c) => [c.name, c]));
  }

  /**
   * Replaces the set of connections while SAs run (a live config change). Configs are compared by
   * object identity: an SA whose config object is still in the set is not touched, so the caller
   * passes the same object again for a connection that did not change. An SA whose config left the
   * set (the connection was removed, or changed and given a new object) is deleted: INFORMATIONAL
   * D(IKE) when established (RFC 7296 §1.4.1), dropped when still being set up. A responder SA that
   * has not chosen its config yet (before IKE_AUTH) keeps only the candidates still in the set, and
   * is dropped when none is left (the peer starts over and meets the new config).
   */
  replaceConfigs(configs: readonly PeerConfig[], now: number, reason = 'connection removed or changed by a config change'): IkeAction[] {
    this.clock = now;
    this.setConfigs(configs);
    const live = new Set(configs);
    for (const name of [...this.restarts.keys()]) if (!this.configs.has(name)) this.restarts.delete(name);
    const out: IkeAction[] = [];
    for (const sa of [...this.sas.values()]) {
      if (sa.state === 'DEAD' || sa.state === 'DELETING') continue;
      if (sa.cfg) {
        if (!live.has(sa.cfg)) out.push(...this.deleteSa(sa, reason, now));
        continue;
      }
      const kept = sa.candidates.filter((c) => live.has(c));
      if (kept.length === sa.candidates.length) continue;
      if (kept.length > 0) sa.candidates = kept;
      else out.push(...this.deleteSa(sa, reason, now));
    }
    return this.collect(out);
  }

  config(name: string): PeerConfig | undefined {
    return this.configs.get(name);
  }

  /** Starts an IKE SA for a connection (initiator). No-op if one is up or being set up. */
  initiate(name: string, now: number): IkeAction[] {
    this.clock = now;
    const cfg = this.configs.get(name);
    if (!cfg) throw new VpnError('ERR_UNKNOWN_CONNECTION', `no connection named ${JSON.stringify(name)}`);
    if (!cfg.remoteAddr) throw new VpnError('ERR_STATE', `connection ${name} has customer gateway address %any: it can only respond`);
    for (const sa of this.sas.values()) if (sa.cfg === cfg && sa.state !== 'DEAD' && sa.state !== 'DELETING') return [];
    const spiI = this.newIkeSpi();
    const local: Endpoint = { address: cfg.localAddrs[0] ?? '0.0.0.0', port: IKE_PORT };
    const remote: Endpoint = { address: cfg.remoteAddr, port: IKE_PORT };
    const sa = new IkeSa(this.ctx, { initiator: true, spiI, cfg, local, remote, now });
    this.wire(sa);
    this.sas.set(spiI.toString('hex'), sa);
    sa.log.info({}, `initiating IKE_SA ${cfg.name} to ${endpointToString(remote)}`);
    const nowFn = () => this.clock;
    const actions = sa.queueExchange(ExchangeType.IKE_SA_INIT, [new IkeInitTask(sa), new IkeNatdTask(sa)], now);
    actions.push(...sa.queueExchange(ExchangeType.IKE_AUTH, [new IkeAuthTask(sa, nowFn), new ChildCreateTask(sa, nowFn)], now));
    actions.push(...queueFurtherChildren(sa, nowFn, now));
    return this.collect(actions);
  }

  /** Deletes every IKE SA of a connection (INFORMATIONAL D(IKE)); half-open ones are just dropped. */
  terminate(name: string, now: number): IkeAction[] {
    this.clock = now;
    this.restarts.delete(name);
    const out: IkeAction[] = [];
    for (const sa of [...this.sas.values()]) {
      if (sa.cfg?.name !== name) continue;
      out.push(...this.deleteSa(sa, `terminated by operator`, now));
    }
    return this.collect(out);
  }

  /**
   * An operator's rekey of an established connection, now rather than at the lifetime: `child`
   * replaces every installed CHILD_SA (RFC 7296 §2.8, CREATE_CHILD_SA with N(REKEY_SA)), `ike` the
   * IKE SA (§1.3.2, §2.18; its children move to the new one). The same tasks the lifetime scheduler
   * starts (rekey-scheduler.ts), so collisions and retries behave the same. ERR_STATE when the
   * connection has no established IKE SA, nothing to rekey, or a rekey of it is already under way.
   */
  rekey(name: string, which: 'ike' | 'child', now: number): IkeAction[] {
    this.clock = now;
    const cfg = this.configs.get(name);
    if (!cfg) throw new VpnError('ERR_UNKNOWN_CONNECTION', `no connection named ${JSON.stringify(name)}`);
    const sa = [...this.sas.values()].find((s) => s.cfg === cfg && s.state === 'ESTABLISHED');
    if (!sa) throw new VpnError('ERR_STATE', `connection ${name} is not ESTABLISHED: nothing to rekey`);
    if (sa.rekeying || sa.children.some((c) => c.rekeying)) throw new VpnError('ERR_STATE', `connection ${name} is being rekeyed already`);
    const clock = () => this.clock;
    if (which === 'ike') {
      // the scheduler waits for in-flight work too: a child's follow-up DELETE queued behind our
      // request would otherwise go out on the IKE SA the rekey is about to retire
      if (sa.busy) throw new VpnError('ERR_STATE', `IKE SA of ${name} has an exchange in flight; try again in a moment`);
      sa.log.info({}, `IKE_SA ${name}[${sa.id}] rekey requested by the operator`);
      return this.collect(startIkeRekey(sa, now, clock, this.rekeyHost()));
    }
    const children = sa.children.filter((c) => c.state === 'INSTALLED' && !c.expiring);
    if (children.length === 0) throw new VpnError('ERR_STATE', `connection ${name} has no installed CHILD_SA to rekey`);
    const out: IkeAction[] = [];
    for (const c of children) {
      sa.log.info({ child: c.id }, `CHILD_SA ${c.cfg.name}{${spiHex(c.spiIn)}_i} rekey requested by the operator`);
      out.push(...startChildRekey(sa, c, now, clock));
    }
    return this.collect(out);
  }

  /** Shutdown: DELETE for every established SA. */
  terminateAll(now: number, reason = 'gateway shutting down'): IkeAction[] {
    this.clock = now;
    this.restarts.clear();
    const out: IkeAction[] = [];
    for (const sa of [...this.sas.values()]) out.push(...this.deleteSa(sa, reason, now));
    return this.collect(out);
  }

  /** Sends a liveness check (DPD) on the connection's established IKE SA. */
  dpd(name: string, now: number): IkeAction[] {
    const out: IkeAction[] = [];
    for (const sa of this.sas.values()) {
      if (sa.cfg?.name === name && sa.state === 'ESTABLISHED') out.push(...sa.queueExchange(ExchangeType.INFORMATIONAL, [new IkeDpdTask()], now));
    }
    return this.collect(out);
  }

  /**
   * Dead peer detection (strongSwan's dpd_delay): for every established SA whose connection has a DPD
   * interval, send a liveness check when nothing came in — neither IKE nor ESP — for that long.
   * `espInPackets(spiIn)` reads the data plane's inbound counter of a child. An unanswered check
   * runs the retransmission schedule and then tears the SA down (dpd_action = clear).
   */
  livenessCheck(now: number, espInPackets: (spiIn: number) => number): IkeAction[] {
    this.clock = now;
    const out: IkeAction[] = [];
    for (const sa of this.sas.values()) {
      const interval = (sa.cfg?.dpdIntervalSec ?? 0) * 1000;
      if (interval <= 0 || sa.state !== 'ESTABLISHED') continue;
      let esp = 0;
      for (const c of sa.children) esp += espInPackets(c.spiIn);
      if (sa.espInSeen >= 0 && esp !== sa.espInSeen) sa.activityMs = now;
      sa.espInSeen = esp;
      sa.activityMs = Math.max(sa.activityMs, sa.lastInboundMs, sa.establishedAtMs);
      if (now - sa.activityMs >= interval && !sa.busy) {
        sa.log.debug({}, `no traffic from the peer for ${Math.round((now - sa.activityMs) / 1000)} s: sending DPD`);
        sa.activityMs = now;
        out.push(...sa.queueExchange(ExchangeType.INFORMATIONAL, [new IkeDpdTask()], now));
      }
    }
    return this.collect(out);
  }

  /**
   * NAT-keepalives (RFC 3948 §2.3, strongSwan's charon.keep_alive): while we are behind a NAT
   * (detected, not forced), one goes to the peer's 4500 after the connection's natKeepaliveSec
   * without ESP sent to it, so our NAT keeps its mapping. `espOutPackets(spiOut)` reads the data
   * plane's outbound counter of a child.
   */
  natKeepalives(now: number, espOutPackets: (spiOut: number) => number): IkeAction[] {
    this.clock = now;
    const out: IkeAction[] = [];
    for (const sa of this.sas.values()) {
      const interval = natKeepaliveMs(sa);
      if (interval <= 0) continue;
      let esp = 0;
      for (const c of sa.children) if (c.spiOut !== 0) esp += espOutPackets(c.spiOut);
      if (esp !== sa.espOutSeen || sa.natKeepaliveAtMs === 0) {
        sa.espOutSeen = esp;
        sa.natKeepaliveAtMs = now + interval;
        continue;
      }
      if (now < sa.natKeepaliveAtMs) continue;
      sa.natKeepaliveAtMs = now + interval;
      sa.natKeepalivesSent++;
      out.push({ kind: 'natKeepalive', from: sa.local, to: sa.remote });
    }
    return out;
  }

  /** The earliest time natKeepalives may have work (Infinity when no SA needs keepalives). */
  nextNatKeepalive(): number {
    let d = Infinity;
    for (const sa of this.sas.values()) {
      if (natKeepaliveMs(sa) > 0) d = Math.min(d, sa.natKeepaliveAtMs);
    }
    return d;
  }

  /** The earliest time livenessCheck may have work (Infinity when no SA uses DPD). */
  nextLivenessCheck(): number {
    let d = Infinity;
    for (const sa of this.sas.values()) {
      const interval = (sa.cfg?.dpdIntervalSec ?? 0) * 1000;
      if (interval > 0 && sa.state === 'ESTABLISHED') d = Math.min(d, Math.max(sa.activityMs, sa.establishedAtMs) + interval);
    }
    return d;
  }

  /**
   * Traffic for a trapped connection's remote subnets reached the gateway while it has no SA
   * (strongSwan's acquire for a start_action=trap policy): initiate, unless an IKE SA of it is up or
   * being set up, or traffic started one less than TRAP_ACQUIRE_INTERVAL_MS ago.
   */
  acquire(name: string, now: number): IkeAction[] {
    this.clock = now;
    const cfg = this.configs.get(name);
    if (!cfg || !cfg.remoteAddr) return [];
    if (this.hasLiveSa(cfg)) return [];
    const last = this.acquiredAtMs.get(name);
    if (last !== undefined && now - last < TRAP_ACQUIRE_INTERVAL_MS) return [];
    this.acquiredAtMs.set(name, now);
    this.log.info({ conn: name }, 'traffic for the remote subnets of a trapped connection: initiating');
    return this.initiate(name, now);
  }

  /** Whether the connection has an IKE SA that is up or being set up. */
  private hasLiveSa(cfg: PeerConfig): boolean {
    for (const sa of this.sas.values()) if (sa.cfg === cfg && sa.state !== 'DEAD' && sa.state !== 'DELETING') return true;
    return false;
  }

  /** Connections waiting to re-initiate (DPD action restart), with the time of the next attempt (status, tests). */
  pendingRestarts(): { name: string; atMs: number; attempt: number }[] {
    return [...this.restarts].map(([name, r]) => ({ name, ...r }));
  }

  /**
   * Bookkeeping for DPD action restart when an IKE SA of `cfg` went down: a peer that stopped
   * answering an established SA gets a new initiation at once; an attempt of ours that failed while
   * a restart is pending gets the next one after the back-off. Nothing while another SA of the
   * connection lives (the peer may have come back by itself).
   */
  private noteDown(sa: IkeSa, now: number): void {
    const cfg = sa.cfg;
    if (!cfg || cfg.dpdAction !== 'restart' || !cfg.remoteAddr || this.configs.get(cfg.name) !== cfg) return;
    if (this.hasLiveSa(cfg)) return;
    const pending = this.restarts.get(cfg.name);
    if (sa.peerUnresponsive && sa.establishedAtMs > 0) {
      sa.log.info({}, `peer ${cfg.remoteAddr} is gone: initiating ${cfg.name} again (dpd action restart)`);
      this.restarts.set(cfg.name, { atMs: now, attempt: 1 });
    } else if (pending && sa.initiator && sa.establishedAtMs === 0) {
      const waitMs = Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MIN_MS * 2 ** (pending.attempt - 1));
      sa.log.info({ attempt: pending.attempt, waitMs }, `restart of ${cfg.name} failed: trying again in ${Math.round(waitMs / 1000)} s`);
      this.restarts.set(cfg.name, { atMs: now + waitMs, attempt: pending.attempt + 1 });
    }
  }

  /** Starts the restarts that are due (tick). */
  private runRestarts(now: number): IkeAction[] {
    const out: IkeAction[] = [];
    for (const [name, r] of [...this.restarts]) {
      if (r.atMs > now) continue;
      const cfg = this.configs.get(name);
      if (!cfg) {
        this.restarts.delete(name);
        continue;
      }
      r.atMs = Infinity; // the attempt's outcome (noteDown, or ikeUp) sets what comes next
      if (!this.hasLiveSa(cfg)) out.push(...this.initiate(name, now));
    }
    return out;
  }

  /**
   * The data plane reports that one ESP SA crossed a byte/packet limit it was installed with
   * (ChildSaParams.limits): `spi` is our inbound SPI for direction 'in', the peer's for 'out'.
   * Soft: the child is rekeyed now; hard: it is deleted unless a rekey in flight replaces it
   * (rekey-scheduler.ts childVolumeReached). SAs no longer known (a rekeyed child's inbound SA in
   * its grace period) are ignored.
   */
  childLifetimeEvent(spi: number, direction: 'in' | 'out', kind: ChildVolumeEvent, now: number): IkeAction[] {
    this.clock = now;
    for (const sa of this.sas.values()) {
      const c = sa.children.find((x) => (direction === 'in' ? x.spiIn : x.spiOut) === spi);
      if (c) return this.collect(childVolumeReached(sa, c, kind, now, () => this.clock, this.rekeyHost()));
    }
    return [];
  }

  /**
   * The data plane saw an ICV-verified ESP packet of inbound SA `spiIn` from `from`, another
   * endpoint than the SA's peer (RFC 7296 §2.23, as strongSwan's libipsec and Linux XFRM's encap
   * mapping change): the IKE SA that owns the child and its other children follow.
   */
  espPeerMoved(spiIn: number, from: Endpoint, now: number): IkeAction[] {
    this.clock = now;
    for (const sa of this.sas.values()) {
      if (sa.children.some((c) => c.spiIn === spiIn)) return this.collect(sa.espPeerMoved(from, now));
    }
    return [];
  }

  /** Deletes one child SA by our inbound SPI. */
  deleteChild(spiIn: number, now: number): IkeAction[] {
    for (const sa of this.sas.values()) {
      if (sa.children.some((c) => c.spiIn === spiIn)) return this.collect(sa.queueExchange(ExchangeType.INFORMATIONAL, [new ChildDeleteTask(sa, spiIn)], now));
    }
    return [];
  }

  private deleteSa(sa: IkeSa, reason: string, now: number): IkeAction[] {
    if (sa.state === 'ESTABLISHED') {
      return sa.queueExchange(ExchangeType.INFORMATIONAL, [new IkeDeleteTask(sa, () => this.clock, reason)], now);
    }
    if (sa.state !== 'DEAD' && sa.state !== 'DELETING') {
      sa.destroy(reason, now);
      return sa.tick(now);
    }
    return [];
  }

  /**
   * One IKE datagram (the non-ESP marker already removed when it came on 4500).
   * Malformed input is counted and dropped; it never throws and never tears down an SA.
   */
  receive(datagram: Buffer, from: Endpoint, to: Endpoint, now: number): IkeAction[] {
    this.clock = now;
    const h = decodeHeader(datagram);
    if (!h) {
      this.counters.malformed++;
      return [];
    }
    const isResponse = (h.flags & HeaderFlag.R) !== 0;
    const fromOriginalInitiator = (h.flags & HeaderFlag.I) !== 0;
    if (h.exchangeType === ExchangeType.IKE_SA_INIT && !isResponse && isZero(h.spiR)) {
      const key = `${h.spiI.toString('hex')}|${endpointToString(from)}`;
      const existing = this.halfOpen.get(key);
      if (existing && existing.sa.state !== 'DEAD') return this.collect(existing.sa.receive(datagram, from, to, now));
      // the cheap refusals first: nothing decoded beyond the header, no crypto, no state
      if (!this.hasCandidates(from, to)) {
        this.dropUnmatched(from, now);
        return [];
      }
      if (this.guard.atHardLimit()) {
        this.counters.halfOpenLimit++;
        return [];
      }
      return this.collect(this.respondInit(datagram, from, to, now));
    }
    const ourSpi = fromOriginalInitiator ? h.spiR : h.spiI;
    const sa = this.sas.get(ourSpi.toString('hex'));
    if (!sa) {
      this.counters.unknownSpi++;
      this.log.debug({ peer: endpointToString(from), spi: formatIkeSpi(ourSpi) }, 'IKE message for unknown SA dropped');
      return [];
    }
    return this.collect(sa.receive(datagram, from, to, now));
  }

  /** A new IKE_SA_INIT request: stateless checks first (RFC 7296 §2.6), then a responder SA. */
  private respondInit(datagram: Buffer, from: Endpoint, to: Endpoint, now: number): IkeAction[] {
    const res = decodeMessage(datagram, null);
    const h = decodeHeader(datagram)!;
    if (!res.ok) {
      if (res.reason === 'version') {
        this.counters.badVersion++;
        return [this.stateless(h, from, to, NotifyType.INVALID_MAJOR_VERSION, Buffer.alloc(0))];
      }
      if (res.reason === 'unsupported-critical') {
        this.counters.unsupportedCritical++;
        return [this.stateless(h, from, to, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([res.criticalType ?? 0]))];
      }
      this.counters.malformed++;
      this.log.debug({ peer: endpointToString(from), reason: res.reason, detail: res.detail }, 'malformed IKE_SA_INIT dropped');
      return [];
    }
    const msg = res.msg;
    const candidates = this.candidatesFor(from, to);
    const saP = findPayload(msg, PayloadType.SA);
    const ke = findPayload(msg, PayloadType.KE);
    const nonce = findPayload(msg, PayloadType.NONCE);
    if (!saP || !ke || !nonce) {
      this.counters.malformed++;
      return [];
    }
    // RFC 7296 §2.6: under load, only a request echoing our COOKIE gets state and DH work; the
    // cookie binds Ni, the source address and SPIi, so answering it proves the source is reachable
    if (this.guard.cookieRequired(from.address)) {
      const echoed = findNotify(msg, NotifyType.COOKIE);
      const check = this.guard.checkCookie(echoed ? echoed.data : null, nonce.nonce, from.address, h.spiI, now);
      if (check !== 'valid') {
        if (check === 'invalid') this.counters.cookieInvalid++;
        this.counters.cookiesSent++;
        const cookie = this.guard.makeCookie(nonce.nonce, from.address, h.spiI, now);
        return [this.stateless(h, from, to, NotifyType.COOKIE, cookie)];
      }
    }
    // RFC 8019's per-source limit on half-open SAs (strongSwan's block_threshold): a source
    // that already holds its share is ignored until some of them complete or time out
    if (this.guard.sourceBlocked(from.address)) {
      this.counters.halfOpenPerSource++;
      return [];
    }
    const choice = chooseIkeProposal(saP.proposals, ke.group, candidates);
    if (choice.kind === 'none') {
      this.counters.noProposal++;
      const actions = [this.stateless(h, from, to, NotifyType.NO_PROPOSAL_CHOSEN, Buffer.alloc(0))];
      this.reportRefusedOffer(saP.proposals, candidates, from, actions);
      this.log.warn(
        { peer: endpointToString(from) },
        `no acceptable IKE proposal: peer offered ${saP.proposals.map(proposalToString).join(', ')}; we accept ${candidates.flatMap((c) => c.ikeProposals.map(proposalToString)).join(', ')}`,
      );
      return actions;
    }
    if (choice.kind === 'invalid-ke') {
      this.counters.invalidKe++;
      const data = Buffer.alloc(2);
      data.writeUInt16BE(choice.group, 0);
      this.log.info({ peer: endpointToString(from) }, `peer sent KE for group ${ke.group}, requesting group ${choice.group} (INVALID_KE_PAYLOAD)`);
      return [this.stateless(h, from, to, NotifyType.INVALID_KE_PAYLOAD, data)];
    }
    const spiR = this.newIkeSpi();
    const sa = new IkeSa(this.ctx, { initiator: false, spiI: h.spiI, spiR, cfg: null, candidates, local: to, remote: from, now });
    this.wire(sa);
    this.sas.set(spiR.toString('hex'), sa);
    this.halfOpen.set(`${h.spiI.toString('hex')}|${endpointToString(from)}`, { sa, source: from.address });
    this.guard.added(from.address);
    sa.log.info({}, `${endpointToString(from)} is initiating an IKE_SA`);
    return sa.receive(datagram, from, to, now);
  }

  /**
   * A refused IKE_SA_INIT keeps no state (RFC 7296 §2.6), but the operator must still learn why:
   * the failure goes to the connections configured for the peer's address, or to the "%any" ones
   * when none is (those then also collect the errors of strangers, as their logs do).
   */
  private reportRefusedOffer(offered: readonly Proposal[], candidates: readonly PeerConfig[], from: Endpoint, out: IkeAction[]): void {
    const exact = candidates.filter((c) => c.remoteAddr === from.address);
    const to = exact.length ? exact : candidates;
    const ike = offered.filter((p) => p.protocol === ProtocolId.IKE);
    for (const cfg of to) {
      const failure = peerOfferRefused('ike', ike.length ? ike : offered, cfg.ikeProposals);
      this.log.warn({ conn: cfg.name, peer: endpointToString(from), code: failure.code, hint: failure.hint }, `negotiation failed: ${failure.message}`);
      out.push({ kind: 'negotiationFailed', connection: cfg.name, ikeId: null, failure });
    }
  }

  private stateless(h: { spiI: Buffer; exchangeType: number; messageId: number }, from: Endpoint, to: Endpoint, type: number, data: Buffer): IkeAction {
    const datagram = encodeMessage(
      { spiI: h.spiI, spiR: Buffer.alloc(8), exchangeType: h.exchangeType, flags: HeaderFlag.R, messageId: h.messageId },
      [notify(type, data)],
      null,
    );
    return { kind: 'send', from: to, to: from, datagram };
  }

  /** Whether any connection may answer `from` on `to` (candidatesFor without building the list). */
  private hasCandidates(from: Endpoint, to: Endpoint): boolean {
    for (const c of this.configs.values()) {
      if (c.localAddrs.length > 0 && !c.localAddrs.includes(to.address) && !c.localAddrs.includes('0.0.0.0') && !c.localAddrs.includes('::')) continue;
      if (c.remoteAddr === from.address || c.remoteAddr === null) return true;
    }
    return false;
  }

  /**
   * An IKE_SA_INIT from a source no connection names (and no "%any" connection): dropped without a
   * reply, since answering NO_PROPOSAL_CHOSEN would let anyone use us as a reflector. Logged at most
   * once per source per UNMATCHED_LOG_INTERVAL_MS with the drops counted in between.
   */
  private dropUnmatched(from: Endpoint, now: number): void {
    this.counters.noConfig++;
    const seen = this.unmatchedLog.get(from.address);
    if (seen && now - seen.atMs < UNMATCHED_LOG_INTERVAL_MS) {
      seen.dropped++;
      return;
    }
    if (!seen && this.unmatchedLog.size >= UNMATCHED_LOG_SOURCES_MAX) this.unmatchedLog.clear();
    this.log.warn(
      { peer: endpointToString(from), droppedSinceLastLog: seen ? seen.dropped : 0, droppedTotal: this.counters.noConfig },
      'IKE_SA_INIT from a source no connection is configured for: dropped',
    );
    this.unmatchedLog.set(from.address, { atMs: now, dropped: 0 });
  }

  private candidatesFor(from: Endpoint, to: Endpoint): PeerConfig[] {
    const exact: PeerConfig[] = [];
    const any: PeerConfig[] = [];
    for (const c of this.configs.values()) {
      if (c.localAddrs.length > 0 && !c.localAddrs.includes(to.address) && !c.localAddrs.includes('0.0.0.0') && !c.localAddrs.includes('::')) continue;
      if (c.remoteAddr === from.address) exact.push(c);
      else if (c.remoteAddr === null) any.push(c);
    }
    return [...exact, ...any];
  }

  /** Responder task lists per exchange (strongSwan's task_manager process_request order). */
  private rekeyHost(): IkeRekeyHost {
    return {
      newIkeSpi: () => this.newIkeSpi(),
      adopt: (next, countAsRekey = true) => {
        this.wire(next);
        this.sas.set(next.ourSpi.toString('hex'), next);
        if (countAsRekey && next.cfg) this.countersOf(next.cfg.name).ikeRekeys++;
      },
    };
  }

  private wire(sa: IkeSa): void {
    const nowFn = () => this.clock;
    const host = this.rekeyHost();
    sa.responderTasks = (exchange: ExchangeType, _msg: IkeMessage): IkeTask[] | null => {
      switch (exchange) {
        case ExchangeType.IKE_SA_INIT:
          return sa.state === 'CREATED' ? [new IkeInitTask(sa), new IkeNatdTask(sa)] : null;
        case ExchangeType.IKE_AUTH:
          return sa.state === 'INIT_RECEIVED' ? [new IkeAuthTask(sa, nowFn), new ChildCreateTask(sa, nowFn)] : null;
        case ExchangeType.INFORMATIONAL:
          return informationalTasks(sa, _msg, nowFn);
        case ExchangeType.CREATE_CHILD_SA: {
          const saP = findPayload(_msg, PayloadType.SA);
          if (saP?.proposals.some((p) => p.protocol === ProtocolId.IKE)) return [new IkeRekeyTask(sa, host, nowFn)];
          if (findNotify(_msg, NotifyType.REKEY_SA)) return [new ChildRekeyTask(sa, nowFn)];
          // a new child (no REKEY_SA): accepted only for a connection whose child is gone, else
          // NO_ADDITIONAL_SAS (child-recreate.ts)
          return [new ChildRecreateTask(sa, nowFn)];
        }
        default:
          return null;
      }
    };
  }

  /** Post-processing of every batch of actions: bookkeeping for dead SAs and INITIAL_CONTACT. */
  private collect(actions: IkeAction[]): IkeAction[] {
    for (const a of actions) {
      if (a.kind === 'ikeDown') {
        for (const [k, sa] of this.sas) {
          if (sa.id !== a.ikeId || sa.state !== 'DEAD') continue;
          this.sas.delete(k);
          this.noteDown(sa, this.clock);
        }
      } else if (a.kind === 'ikeUp') {
        this.restarts.delete(a.connection);
        const up = [...this.sas.values()].find((s) => s.id === a.ikeId);
        if (up && up.initialContact) {
          up.initialContact = false;
          // RFC 7296 §2.4: the peer lost its state; drop our older SAs with the same identities
          for (const other of [...this.sas.values()]) {
            if (other !== up && other.cfg === up.cfg && other.state !== 'DEAD') {
              other.destroy('replaced (INITIAL_CONTACT from peer)', this.clock);
              actions.push(...other.tick(this.clock));
            }
          }
        }
      }
    }
    // sweep SAs that died without a down event in this batch
    for (const [k, sa] of this.sas) if (sa.state === 'DEAD') this.sas.delete(k);
    // a half-open SA stops counting once established, failed or timed out
    for (const [k, e] of this.halfOpen) {
      if (e.sa.state === 'DEAD' || e.sa.state === 'ESTABLISHED') {
        this.halfOpen.delete(k);
        this.guard.removed(e.source);
      }
    }
    return actions;
  }

  tick(now: number): IkeAction[] {
    this.clock = now;
    const out: IkeAction[] = [];
    for (const sa of [...this.sas.values()]) if (sa.nextDeadline() <= now) out.push(...sa.tick(now));
    out.push(...this.runRestarts(now));
    // rekeys we start and hard expiry, at the configured lifetimes (rekey-scheduler.ts)
    const host = this.rekeyHost();
    for (const sa of [...this.sas.values()]) out.push(...checkLifetimes(sa, now, () => this.clock, host));
    return this.collect(out);
  }

  nextDeadline(): number {
    let d = Infinity;
    for (const sa of this.sas.values()) d = Math.min(d, sa.nextDeadline(), lifetimeDeadline(sa));
    for (const r of this.restarts.values()) d = Math.min(d, r.atMs);
    return d;
  }

  status(): IkeSaStatus[] {
    return [...this.sas.values()].map((sa) => ({
      connection: sa.cfg?.name ?? '',
      ikeId: sa.id,
      state: sa.state,
      initiator: sa.initiator,
      local: endpointToString(sa.local),
      remote: endpointToString(sa.remote),
      peerId: sa.peerId?.text ?? null,
      proposal: sa.proposal ? proposalToString(sa.proposal) : null,
      establishedAtMs: sa.establishedAtMs,
      nat: {
        behindNat: sa.peerBehindNat ? (sa.weBehindNat ? 'both' : 'peer') : (sa.weBehindNat ? 'local' : 'none'),
        udpEncap: sa.natDetected,
        encapForced: sa.natFaked,
        peerMoves: sa.peerMoves,
        keepalivesSent: sa.natKeepalivesSent,
      },
      children: sa.children.map((c) => ({
        name: c.cfg.name,
        state: c.state,
        spiIn: spiHex(c.spiIn),
        spiOut: spiHex(c.spiOut),
        localTs: c.localTs.map(tsToString),
        remoteTs: c.remoteTs.map(tsToString),
        proposal: c.proposal ? proposalToString(c.proposal) : '',
        installedAtMs: c.installedAtMs,
      })),
    }));
  }

  /** Half-open counts, cookies sent and drops by reason (status). */
  responderStats(): IkeResponderStats {
    const { cookiesSent, ...drops } = this.counters;
    return { halfOpen: this.guard.halfOpen, halfOpenSources: this.guard.halfOpenSources, cookiesSent, drops };
  }

  /** Rekey and DPD failure totals of one connection since the manager started (zeros if none yet). */
  connectionCounters(name: string): IkeConnectionCounters {
    const c = this.connCounters.get(name);
    return c ? { ...c } : { ikeRekeys: 0, childRekeys: 0, dpdFailures: 0 };
  }

  private countersOf(name: string): IkeConnectionCounters {
    let c = this.connCounters.get(name);
    if (!c) {
      c = { ikeRekeys: 0, childRekeys: 0, dpdFailures: 0 };
      this.connCounters.set(name, c);
    }
    return c;
  }

  /** Number of SAs (tests). */
  get size(): number {
    return this.sas.size;
  }

  private newIkeSpi(): Buffer {
    for (;;) {
      const spi = this.random(8);
      if (!isZero(spi) && !this.sas.has(spi.toString('hex'))) return Buffer.from(spi);
    }
  }

  private allocChildSpi(): number {
    for (;;) {
      const spi = this.random(4).readUInt32BE(0);
      // never 0..255 (reserved, RFC 4303 §2.1) and never a duplicate: two SAs with one inbound SPI
      // would make inbound packets ambiguous (RFC 4303 §2.1: the SPI selects the SA)
      if (spi > 255 && !this.childSpis.has(spi)) {
        this.childSpis.add(spi);
        return spi;
      }
    }
  }
}

/**
 * Responder tasks for an INFORMATIONAL request, one per job as strongSwan's task manager creates
 * them (process_request): D(IKE) → ike-delete, D(ESP/AH) → child-delete, nothing else → a liveness
 * check (ike-dpd). Notifies alone are answered with an empty response, as a liveness check is.
 */
function informationalTasks(sa: IkeSa, msg: IkeMessage, now: () => number): IkeTask[] {
  let ike = false;
  let child = false;
  for (const p of msg.payloads) {
    if (p.type !== PayloadType.D) continue;
    if (p.protocol === ProtocolId.IKE) ike = true;
    else if (p.protocol === ProtocolId.ESP || p.protocol === ProtocolId.AH) child = true;
  }
  const tasks: IkeTask[] = [];
  if (ike) tasks.push(new IkeDeleteTask(sa, now));
  if (child) tasks.push(new ChildDeleteTask(sa));
  if (tasks.length === 0) tasks.push(new IkeDpdTask());
  return tasks;
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The connection's children after the first one we start, each with its own CREATE_CHILD_SA right
 * after IKE_AUTH (RFC 7296 §1.3.1), as strongSwan initiates a peer_cfg's further child_cfgs. They
 * wait in the SA's queue; if IKE_AUTH fails they find the SA not established and do nothing.
 */
function queueFurtherChildren(sa: IkeSa, nowFn: () => number, now: number): IkeAction[] {
  const started = sa.cfg!.children.filter((c) => c.startAction !== 'none');
  const out: IkeAction[] = [];
  for (const c of started.slice(1)) out.push(...sa.queueExchange(ExchangeType.CREATE_CHILD_SA, [new ChildRecreateTask(sa, nowFn, c, true)], now));
  return out;
}
