import { formatEndpoint, withFamily, type Endpoint } from '../common/endpoint.js';
import type { Prefix } from '../common/ip.js';
import type { PacketSink } from '../common/packet-sink.js';
import { formatPrefix } from '../common/ip.js';
import { formatChildSpi } from '../common/spi.js';
import { IkeManager, type IkeSaStatus } from '../ike/ike-manager.js';
import type { PeerConfig, RetransmitConfig } from '../ike/config/peer-config.js';
import type { ChildSaParams, IkeAction } from '../ike/sa/types.js';
import type { RekeyWhich, TunnelContext, TunnelController } from './daemon.js';
import { unknownConnection } from './daemon.js';
import type { ConnectionError, ConnectionState, ConnectionStatus, IkeResponderStatus } from './status.js';
import { peerConfigFrom, peerConfigsFrom } from './peer-configs.js';
import type { GatewayConfig } from './config/types.js';
import type { ResourceDiff } from './live-change.js';

/** How long shutdown waits for the peers to answer our DELETEs. */
export const SHUTDOWN_DELETE_WAIT_MS = 1500;

/**
 * The site-to-cloud side of the gateway: the IKE manager (pure) plus the glue that carries out its
 * actions — datagrams through the daemon's sockets, CHILD_SAs and routes into the data plane.
 */
export class IpsecController implements TunnelController {
  readonly mgr: IkeManager;
  /** the connections now configured; an unchanged one keeps its object across reconfigure (SAs refer to it) */
  private configs: PeerConfig[];
  private readonly lastReason = new Map<string, string>();
  /** the last failed negotiation per connection (src/ike/failure.ts), with its time */
  private readonly lastError = new Map<string, ConnectionError>();
  /** outbound SPI → the inner prefixes routed to it */
  private readonly routesBySpi = new Map<number, Prefix[]>();
  /** outbound SPI → prefixes it takes over once activated (a child the peer rekeyed) */
  private readonly pendingRoutes = new Map<number, Prefix[]>();
  /** inbound SAs kept for a grace period after their child was deleted in a rekey */
  private readonly lingering: { spiIn: number; atMs: number }[] = [];
  private readonly now: () => number;
  /** trapped connections (startAction trap) by name: the sink their remote subnets route to while down */
  private readonly traps = new Map<string, TrapSink>();
  private stopping = false;

  constructor(private readonly ctx: TunnelContext, opts: { now?: () => number; retransmit?: RetransmitConfig } = {}) {
    this.now = opts.now ?? Date.now;
    this.configs = peerConfigsFrom(ctx.config);
    const { halfOpenTimeoutSec, retransmit, ...initLimits } = ctx.config.gateway.ike;
    this.mgr = new IkeManager({ log: ctx.log, retransmit: opts.retransmit ?? retransmit, halfOpenTimeoutSec, initLimits, now: this.now() });
    this.mgr.setConfigs(this.configs);
    // byte/packet limits (ChildSaParams.limits) crossed in the data plane: the IKE core rekeys the
    // child (soft) or deletes it (hard); the data plane logs each crossing itself
    ctx.dataPlane?.onSaEvent((ev) => {
      this.exec(this.mgr.childLifetimeEvent(ev.spi, ev.direction, ev.kind, this.now()));
    });
  }

  start(): void {
    for (const c of this.configs) if (c.startAction === 'trap') this.installTrap(c);
    for (const c of this.configs) {
      if (c.startAction !== 'start') continue;
      if (!c.remoteAddr) {
        this.ctx.log.warn({ conn: c.name }, 'startAction start ignored: the customer gateway address is %any');
        continue;
      }
      this.exec(this.mgr.initiate(c.name, this.now()));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const name of [...this.traps.keys()]) this.removeTrap(name);
    this.exec(this.mgr.terminateAll(this.now()));
    const deadline = Date.now() + SHUTDOWN_DELETE_WAIT_MS;
    while (this.mgr.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // whatever did not answer is dropped locally
    for (const s of this.mgr.status()) {
      for (const c of s.children) this.removeChild(parseInt(c.spiIn, 16), parseInt(c.spiOut, 16));
    }
    this.expireLingering(Infinity);
  }

  /**
   * A live config change (Gateway.applyConfig). Unchanged connections keep their PeerConfig object,
   * so the IKE manager leaves their SAs alone; removed and changed ones lose theirs, and the manager
   * sends DELETE for their SAs (the CHILD_SAs' routes and data-plane SAs go when those complete).
   * Added and changed connections with startAction "start" are initiated with the new config.
   */
  reconfigure(next: GatewayConfig, change: ResourceDiff): void {
    const old = new Map(this.configs.map((c) => [c.name, c]));
    const keep = new Set(change.unchanged);
    this.configs = next.vpnConnections.map((c, i) => {
      const kept = keep.has(c.name) ? old.get(c.name) : undefined;
      return kept ?? peerConfigFrom(next, c, `vpnConnections[${i}]`);
    });
    for (const name of [...change.removed, ...change.changed]) {
      this.lastReason.delete(name);
      this.lastError.delete(name);
    }
    this.exec(this.mgr.replaceConfigs(this.configs, this.now()));
    const fresh = new Set([...change.added, ...change.changed]);
    for (const name of [...change.removed, ...change.changed]) this.removeTrap(name);
    for (const c of this.configs) if (fresh.has(c.name) && c.startAction === 'trap') this.installTrap(c);
    for (const c of this.configs) {
      if (!fresh.has(c.name) || c.startAction !== 'start') continue;
      if (!c.remoteAddr) continue; // the config loader refuses "start" with %any
      this.exec(this.mgr.initiate(c.name, this.now()));
    }
  }

  status(): ConnectionStatus[] {
    const all = this.mgr.status();
    return this.configs.map((cfg) => {
      const sas = all.filter((s) => s.connection === cfg.name);
      const sa = sas.find((s) => s.state === 'ESTABLISHED') ?? sas[0];
      const counters = this.mgr.connectionCounters(cfg.name);
      const err = this.lastError.get(cfg.name);
      const lastError = err ? { lastError: { ...err } } : {};
      if (!sa) {
        const reason = this.lastReason.get(cfg.name);
        return { name: cfg.name, state: 'DOWN' as ConnectionState, ...(reason ? { reason } : {}), children: [], ...counters, ...lastError };
      }
      const up = sa.state === 'ESTABLISHED' && sa.establishedAtMs > 0;
      return {
        name: cfg.name,
        state: mapState(sa),
        peer: sa.remote,
        ikeSa: sa.ikeId,
        ...(this.lastReason.get(cfg.name) && sa.state !== 'ESTABLISHED' ? { reason: this.lastReason.get(cfg.name)! } : {}),
        ...(up ? { establishedAt: new Date(sa.establishedAtMs).toISOString(), ikeSaAgeSec: Math.max(0, Math.floor((this.now() - sa.establishedAtMs) / 1000)) } : {}),
        ...(sa.proposal ? { ikeProposal: sa.proposal } : {}),
        ...counters,
        ...lastError,
        children: sa.children.map((c) => {
          const spiIn = parseInt(c.spiIn, 16);
          const spiOut = parseInt(c.spiOut, 16);
          const cin = this.ctx.dataPlane?.saCounters(spiIn, 'in');
          const cout = this.ctx.dataPlane?.saCounters(spiOut, 'out');
          return {
            state: c.state,
            spiIn: `0x${c.spiIn}`,
            spiOut: `0x${c.spiOut}`,
            bytesIn: cin?.bytes ?? 0,
            bytesOut: cout?.bytes ?? 0,
            packetsIn: cin?.packets ?? 0,
            packetsOut: cout?.packets ?? 0,
            localTs: c.localTs,
            remoteTs: c.remoteTs,
            ...(c.proposal ? { proposal: c.proposal } : {}),
            ...(c.installedAtMs > 0
              ? { installedAt: new Date(c.installedAtMs).toISOString(), ageSec: Math.max(0, Math.floor((this.now() - c.installedAtMs) / 1000)) }
              : {}),
          };
        }),
      };
    });
  }

  responderStatus(): IkeResponderStatus {
    return this.mgr.responderStats();
  }

  initiate(name: string): void {
    const cfg = this.configs.find((c) => c.name === name);
    if (!cfg) throw unknownConnection(name, this.configs.map((c) => c.name));
    this.lastReason.delete(name);
    this.exec(this.mgr.initiate(name, this.now()));
  }

  terminate(name: string): void {
    if (!this.configs.some((c) => c.name === name)) throw unknownConnection(name, this.configs.map((c) => c.name));
    this.exec(this.mgr.terminate(name, this.now()));
  }

  /** Rekeys an established connection now: its CHILD_SAs (`child`) or its IKE SA (`ike`). */
  rekey(name: string, which: RekeyWhich): void {
    if (!this.configs.some((c) => c.name === name)) throw unknownConnection(name, this.configs.map((c) => c.name));
    this.exec(this.mgr.rekey(name, which, this.now()));
  }

  receiveIke(message: Buffer, from: Endpoint, local: Endpoint): void {
    this.exec(this.mgr.receive(message, from, local, this.now()));
  }

  tick(nowMs: number): void {
    this.expireLingering(nowMs);
    for (const [name, trap] of this.traps) {
      if (!trap.hit) continue;
      trap.hit = false;
      this.exec(this.mgr.acquire(name, nowMs));
    }
    this.exec(this.mgr.tick(nowMs));
    const dp = this.ctx.dataPlane;
    this.exec(this.mgr.livenessCheck(nowMs, (spiIn) => dp?.saCounters(spiIn, 'in')?.packets ?? 0));
  }

  nextDeadline(): number {
    // ESP traffic resets the DPD timer but is only seen when polled: check at least every second then
    const dpd = this.mgr.nextLivenessCheck();
    let d = Math.min(this.mgr.nextDeadline(), dpd === Infinity ? Infinity : Math.min(dpd, this.now() + 1000));
    for (const l of this.lingering) d = Math.min(d, l.atMs);
    for (const t of this.traps.values()) if (t.hit) return this.now();
    return d;
  }

  /** Carries out what the IKE core asked for. */
  private exec(actions: IkeAction[]): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'send':
          if (!this.ctx.sendIke(a.datagram, withFamily(a.to), withFamily(a.from))) {
            this.ctx.log.debug({ to: formatEndpoint(a.to), from: formatEndpoint(a.from) }, 'IKE datagram not sent (no socket or kernel refused)');
          }
          break;
        case 'installChildSa':
          this.installChild(a.params);
          break;
        case 'activateChildSa':
          this.activateChild(a.spiOut);
          break;
        case 'deleteChildSa':
          this.removeChild(a.spiIn, a.spiOut, a.inboundGraceMs);
          break;
        case 'ikeUp':
          this.lastReason.delete(a.connection);
          this.lastError.delete(a.connection);
          break;
        case 'negotiationFailed': {
          const f = a.failure;
          this.lastError.set(a.connection, { code: f.code, message: f.message, hint: f.hint, at: new Date(this.now()).toISOString() });
          break;
        }
        case 'ikeDown':
          if (a.connection) this.lastReason.set(a.connection, a.reason);
          break;
      }
    }
  }

  private installChild(p: ChildSaParams): void {
    const dp = this.ctx.dataPlane;
    if (!dp) return;
    const common = {
      encr: p.encr,
      encrKeyBits: p.encrKeyBits,
      integ: p.integ,
      esn: p.esn,
      replayWindow: p.replayWindow,
      localAddr: p.local.address,
      localPort: p.local.port,
      remoteAddr: p.remote.address,
      remotePort: p.remote.port,
      localTs: [...p.localTs],
      remoteTs: [...p.remoteTs],
      lifetime: p.limits,
    };
    // decrypted packets carry the connection's origin into the policy stage (ACLs, endpoint whitelists)
    const origin = this.ctx.originOf?.(p.connection) ?? 0;
    dp.installSa({ ...common, direction: 'in', spi: p.spiIn, encrKey: p.encrKeyIn, integKey: p.integKeyIn, origin });
    dp.installSa({ ...common, direction: 'out', spi: p.spiOut, encrKey: p.encrKeyOut, integKey: p.integKeyOut });
    if (p.activateOutbound) this.routeTo(p.spiOut, p.remoteTs);
    else this.pendingRoutes.set(p.spiOut, [...p.remoteTs]);
  }

  /** Points the prefixes at an outbound SPI, taking them from whichever SPI had them (a rekey). */
  private routeTo(spiOut: number, prefixes: readonly Prefix[]): void {
    const dp = this.ctx.dataPlane;
    if (!dp) return;
    for (const prefix of prefixes) dp.addRoute(prefix, spiOut);
    // the replaced child's routes now point at the new outbound SPI: its later delete must leave them
    const taken = new Set(prefixes.map(formatPrefix));
    for (const [spi, list] of this.routesBySpi) {
      if (spi === spiOut) continue;
      const kept = list.filter((x) => !taken.has(formatPrefix(x)));
      if (kept.length !== list.length) this.routesBySpi.set(spi, kept);
    }
    this.routesBySpi.set(spiOut, [...prefixes]);
    this.ctx.log.debug({ child: formatChildSpi(spiOut), routes: prefixes.map(formatPrefix) }, 'routes to the outbound SA installed');
  }

  private activateChild(spiOut: number): void {
    const prefixes = this.pendingRoutes.get(spiOut);
    if (!prefixes) return;
    this.pendingRoutes.delete(spiOut);
    this.routeTo(spiOut, prefixes);
  }

  private removeChild(spiIn: number, spiOut: number, inboundGraceMs = 0): void {
    const dp = this.ctx.dataPlane;
    if (!dp) return;
    const unrouted = this.routesBySpi.get(spiOut) ?? [];
    for (const prefix of unrouted) dp.removeRoute(prefix);
    this.routesBySpi.delete(spiOut);
    this.rearmTraps(unrouted);
    this.pendingRoutes.delete(spiOut);
    dp.removeSa(spiOut, 'out');
    if (inboundGraceMs > 0) this.lingering.push({ spiIn, atMs: this.now() + inboundGraceMs });
    else dp.removeSa(spiIn, 'in');
  }

  /**
   * startAction trap, as strongSwan's start_action=trap: the connection's remote subnets route to a
   * sink in the data plane while no CHILD_SA carries them, and the first packet that reaches it
   * starts an initiation (IkeManager.acquire, rate-limited there; the sink only raises a flag, the
   * next tick acts on it). A CHILD_SA's routes replace the sink routes; when the child goes, the
   * sink routes come back (rearmTraps), so the next packet brings the tunnel up again.
   */
  private installTrap(cfg: PeerConfig): void {
    const dp = this.ctx.dataPlane;
    if (!dp || !cfg.remoteAddr) return;
    let trap = this.traps.get(cfg.name);
    if (!trap) {
      trap = new TrapSink(cfg.children.flatMap((c) => c.remoteTs));
      this.traps.set(cfg.name, trap);
    }
    for (const prefix of trap.prefixes) if (!this.routedToSa(prefix)) dp.addSinkRoute(prefix, trap);
    this.ctx.log.info({ conn: cfg.name, routes: trap.prefixes.map(formatPrefix) }, 'connection trapped: the first packet for its remote subnets initiates it');
  }

  private removeTrap(name: string): void {
    const trap = this.traps.get(name);
    if (!trap) return;
    this.traps.delete(name);
    for (const prefix of trap.prefixes) this.ctx.dataPlane?.removeSinkRoute(prefix);
  }

  /** Points prefixes a removed child no longer routes back at their connection's trap sink. */
  private rearmTraps(prefixes: readonly Prefix[]): void {
    const dp = this.ctx.dataPlane;
    if (!dp || this.stopping || this.traps.size === 0 || prefixes.length === 0) return;
    const gone = new Set(prefixes.map(formatPrefix));
    for (const trap of this.traps.values()) {
      for (const prefix of trap.prefixes) if (gone.has(formatPrefix(prefix)) && !this.routedToSa(prefix)) dp.addSinkRoute(prefix, trap);
    }
  }

  private routedToSa(prefix: Prefix): boolean {
    const key = formatPrefix(prefix);
    for (const list of this.routesBySpi.values()) if (list.some((p) => formatPrefix(p) === key)) return true;
    return false;
  }

  /** Removes the inbound SAs whose grace after a rekey has run out. */
  private expireLingering(nowMs: number): void {
    const dp = this.ctx.dataPlane;
    for (let i = this.lingering.length - 1; i >= 0; i--) {
      const l = this.lingering[i]!;
      if (l.atMs > nowMs) continue;
      this.lingering.splice(i, 1);
      dp?.removeSa(l.spiIn, 'in');
    }
  }

  /** Per-connection IKE SA details (tests, API). */
  ikeSas(): IkeSaStatus[] {
    return this.mgr.status();
  }
}

export const ipsecController = (ctx: TunnelContext): TunnelController => new IpsecController(ctx);

/**
 * The data-plane sink of one trapped connection. A packet only raises `hit` (it is dropped, as
 * strongSwan drops the packet that triggers an acquire); no per-packet allocation.
 */
class TrapSink implements PacketSink {
  hit = false;
  constructor(readonly prefixes: readonly Prefix[]) {}
  push(_buf: Buffer, _off: number, _len: number): void {
    this.hit = true;
  }
  flush(): void {}
}

function mapState(sa: IkeSaStatus): ConnectionState {
  switch (sa.state) {
    case 'ESTABLISHED':
      return 'ESTABLISHED';
    case 'DELETING':
      return 'DELETING';
    case 'DEAD':
      return 'DOWN';
    default:
      return 'CONNECTING';
  }
}
