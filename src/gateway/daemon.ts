import { mkdirSync } from 'node:fs';
import type { Endpoint } from '../common/endpoint.js';
import { IoError, VpnError } from '../common/errors.js';
import { bytesToIp } from '../common/ip.js';
import { classifyNattDatagram, IKE_NATT_PORT, IKE_PORT, NATT_ESP, NATT_KEEPALIVE, NON_ESP_MARKER_SIZE, withNonEspMarker } from '../common/ipsec-udp.js';
import type { Logger } from '../common/log.js';
import type { PacketBatch } from '../common/batch.js';
import { TimerWheel } from '../common/timer-wheel.js';
import { NativeUdp } from '../net/native-udp.js';
import type { UdpBind } from '../net/udp-bind.js';
import { LinuxTun } from '../tun/linux-tun.js';
import { addAddress, addRoute, delRoute, setIpForwarding } from '../tun/netcfg.js';
import type { TunDevice } from '../tun/tun-device.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import { openMultiQueueTun, resolveQueues } from '../dataplane/multi-queue.js';
import { openOffloadTun, type OffloadTun } from '../dataplane/native-data-plane.js';
import { openDataPlaneTun, type DataPlaneChoice, type DataPlaneFactory, type DataPlaneKind } from '../dataplane/select.js';
import type { GatewayConfig, TunConfig } from './config/types.js';
import { ControlServer, type ControlHandlers } from './control.js';
import type { ConnectionStatus, GatewayStatus, IkeResponderStatus, IoCounters, VpnServerStatus } from './status.js';
import type { VpnServers, VpnServersFactory } from './vpn-servers.js';

/**
 * The gateway daemon: the one place that owns process state (sockets, the TUN, routes, timers); the
 * protocol cores it drives do no I/O. It
 *
 *  1. checks it runs as root and creates the data dir;
 *  2. opens the TUN the chosen data plane needs (src/dataplane/select.ts), gives it its address and
 *     enables IP forwarding;
 *  3. binds UDP 500 and 4500 on every public address, when at least one IPsec connection is
 *     configured (with none, nothing could answer there: no IKE sockets, the SSL VPN still runs);
 *  4. starts the data plane over the 4500 sockets (possibly none), and the tunnel controller (IKE);
 *  5. installs a route via the TUN for every connection's remoteSubnets;
 *  6. serves the control socket (status / initiate / terminate);
 *  7. runs one periodic tick that drives a timer wheel; the IKE core's `nextDeadline()` is one of its timers.
 *
 * `stop()` undoes all of it in reverse order. Every callback from sockets, TUN and the tick is
 * wrapped: an exception is logged and the daemon carries on (a bug in one peer's handling must not
 * stop the gateway).
 *
 * UDP ports and the NAT-T framing (non-ESP marker, keepalive) are in src/common/ipsec-udp.ts.
 */

// ---- implementation choices ----
export const GATEWAY_TICK_MS = 250;
export const STATS_LOG_INTERVAL_MS = 60_000;
const TIMER_TUNNELS = 'tunnels';
const TIMER_STATS = 'stats';

/**
 * What the daemon gives the tunnel controller (the IKE side, src/gateway/ipsec.ts): the frozen
 * config, a logger, and a way to send IKE datagrams. The controller never touches sockets itself.
 */
export interface TunnelContext {
  readonly config: GatewayConfig;
  readonly log: Logger;
  /** The data plane (installSa / addRoute / counters / onSaEvent); null when the gateway runs without one. */
  readonly dataPlane: DataPlane | null;
  /**
   * Sends an IKE message from `local` (one of our bound address:port pairs) to `to`. On port 4500
   * the daemon adds the non-ESP marker; pass the bare IKE message. Returns false when no socket
   * matches `local` or the kernel refused the datagram.
   */
  sendIke(message: Uint8Array, to: Endpoint, local: Endpoint): boolean;
}

/**
 * The IKE side of the gateway as the daemon sees it. The daemon calls these; the controller turns
 * them into IKE SA work. All calls are synchronous and must not throw for per-peer problems
 * (the daemon logs anything thrown and carries on).
 */
export interface TunnelController {
  /** Called once the sockets are bound; starts connections whose startAction is "start". */
  start(): void;
  /** Called on daemon stop: send deletes, drop SAs. */
  stop(): Promise<void> | void;
  /** One entry per configured connection, in config order. */
  status(): ConnectionStatus[];
  /** Brings a connection up now. Throw a VpnError (e.g. code ERR_UNKNOWN_CONNECTION) for a bad name. */
  initiate(name: string): void;
  /** Takes a connection down now. Throw a VpnError for a bad name. */
  terminate(name: string): void;
  /**
   * An IKE message arrived (non-ESP marker already removed on 4500). `message` is a copy the
   * controller may keep. `local` is the address:port it arrived on.
   */
  receiveIke(message: Buffer, from: Endpoint, local: Endpoint): void;
  /** Timer work due at `nowMs` (retransmits, DPD, rekey, expiry). */
  tick(nowMs: number): void;
  /** The earliest time `tick` has work to do; Infinity when none. */
  nextDeadline(): number;
  /** Half-open IKE SAs, COOKIEs sent and drops by reason, for the status document. */
  responderStatus?(): IkeResponderStatus;
}

export type TunnelControllerFactory = (ctx: TunnelContext) => TunnelController;

/** A bound UDP socket the daemon can also send single control-plane datagrams on. */
export interface GatewayUdp extends UdpBind {
  sendTo(data: Uint8Array, family: 4 | 6, addr: Uint8Array | string, port: number): boolean;
  /** On a wildcard bind, the local address datagram i of the current batch reached (NativeUdp). */
  localAddressOf?(i: number): string | null;
}

/** OS access, injectable so the daemon's logic runs in tests without root. */
export interface GatewayPlatform {
  isRoot(): boolean;
  openTun(cfg: TunConfig, log: Logger): TunDevice;
  /** A TUN with virtio headers + TSO for the native data plane; absent on platforms without it. */
  openOffloadTun?(cfg: TunConfig, log: Logger): OffloadTun;
  /** `queues` fds of one multi-queue offload TUN (gateway.dataPlane.queues > 1); absent: one queue */
  openMultiQueueTun?(cfg: TunConfig, queues: number, log: Logger): OffloadTun[];
  addAddress(dev: string, prefixText: string): void;
  enableForwarding(): void;
  /** `reusePort`: the 4500 socket starts an SO_REUSEPORT group (multi-queue data plane) */
  bindUdp(address: string, port: number, log: Logger, opts?: { reusePort?: boolean }): GatewayUdp;
  addRoute(prefixText: string, dev: string): void;
  delRoute(prefixText: string, dev: string): void;
}

/** The real Linux platform: our TUN and UDP addon, rtnetlink and /proc/sys. */
export const linuxPlatform: GatewayPlatform = {
  isRoot: () => process.getuid?.() === 0,
  openTun: (cfg, log) => LinuxTun.open({ name: cfg.name, mtu: cfg.mtu, up: true, log }),
  openOffloadTun: (cfg) => openOffloadTun(cfg.name, cfg.mtu, true),
  openMultiQueueTun: (cfg, queues) => openMultiQueueTun(cfg.name, cfg.mtu, queues, true),
  addAddress: (dev, prefixText) => addAddress(dev, prefixText),
  enableForwarding: () => setIpForwarding(true),
  bindUdp: (address, port, log, opts) => NativeUdp.bind({ address, port, log, reusePort: opts?.reusePort ?? false }),
  addRoute: (prefixText, dev) => addRoute(prefixText, dev),
  delRoute: (prefixText, dev) => delRoute(prefixText, dev),
};

export interface GatewayOptions {
  config: GatewayConfig;
  log: Logger;
  /** Control socket path; default `<dataDir>/vpcgw.sock`. */
  controlPath?: string;
  platform?: GatewayPlatform;
  /** The IKE manager; without it connections show as CONNECTING/DOWN with reason "IKE not available". */
  tunnels?: TunnelControllerFactory;
  /**
   * Default: the data plane src/dataplane/select.ts chooses (native with TSO/GRO, UDP GSO and ESP in
   * C when the addon has it, multi-queue with gateway.dataPlane.queues > 1, else TypeScript), named
   * in one log line; a factory forces that one; null runs without one (TUN packets and ESP are
   * counted and dropped).
   */
  dataPlane?: DataPlaneFactory | null;
  /** Extra control methods (the SSL VPN server adds its own). */
  controlHandlers?: ControlHandlers;
  /** VPN server status provider (the SSL server); default: each configured server as DOWN. */
  vpnServerStatus?: () => VpnServerStatus[];
  /** The point-to-cloud servers (needs a data plane); their client pools are routed into the TUN. */
  vpnServers?: VpnServersFactory;
  nowMs?: () => number;
  tickMs?: number;
}

export type GatewayState = 'stopped' | 'starting' | 'running' | 'stopping';

export function defaultControlPath(config: GatewayConfig): string {
  return `${config.gateway.dataDir}/vpcgw.sock`;
}

/**
 * The tunnel controller used when no IKE manager is plugged in: it knows the configured
 * connections and reports them honestly (CONNECTING for startAction "start", DOWN otherwise),
 * with the reason, and drops IKE messages (counted).
 */
export class NoIkeController implements TunnelController {
  private readonly states = new Map<string, ConnectionStatus['state']>();
  droppedIke = 0;

  constructor(private readonly ctx: TunnelContext) {
    for (const c of ctx.config.vpnConnections) this.states.set(c.name, 'DOWN');
  }
  start(): void {
    for (const c of this.ctx.config.vpnConnections) if (c.startAction === 'start') this.states.set(c.name, 'CONNECTING');
    if (this.states.size) this.ctx.log.warn({}, 'IKE is not available in this build: connections cannot come up');
  }
  stop(): void {
    for (const k of this.states.keys()) this.states.set(k, 'DOWN');
  }
  status(): ConnectionStatus[] {
    return this.ctx.config.vpnConnections.map((c) => ({
      name: c.name,
      state: this.states.get(c.name) ?? 'DOWN',
      reason: 'IKE not available',
      children: [],
    }));
  }
  initiate(name: string): void {
    this.known(name);
    this.states.set(name, 'CONNECTING');
  }
  terminate(name: string): void {
    this.known(name);
    this.states.set(name, 'DOWN');
  }
  receiveIke(): void {
    this.droppedIke++;
  }
  tick(): void {}
  nextDeadline(): number {
    return Infinity;
  }
  private known(name: string): void {
    if (!this.states.has(name)) throw unknownConnection(name, [...this.states.keys()]);
  }
}

export function unknownConnection(name: string, known: readonly string[]): VpnError {
  return new VpnError('ERR_UNKNOWN_CONNECTION', `no VPN connection named "${name}" (configured: ${known.length ? known.join(', ') : 'none'})`);
}

interface BoundUdp {
  bind: GatewayUdp;
  local: Endpoint;
}

export class Gateway {
  readonly config: GatewayConfig;
  readonly controlPath: string;
  private readonly log: Logger;
  private readonly platform: GatewayPlatform;
  private readonly nowMs: () => number;
  private readonly tickMs: number;
  private readonly wheel: TimerWheel<string>;
  private stateValue: GatewayState = 'stopped';
  private tun: TunDevice | null = null;
  private udp: BoundUdp[] = [];
  /** what src/dataplane/select.ts chose; it holds the TUN fds until a data plane owns them */
  private choice: DataPlaneChoice | null = null;
  /** sockets the data plane's queues 1..N-1 use (closed after the data plane) */
  private queueUdp: UdpBind[] = [];
  private dataPlane: DataPlane | null = null;
  private dataPlaneKind: DataPlaneKind | 'none' = 'none';
  private tunnels: TunnelController | null = null;
  private vpnServers: VpnServers | null = null;
  private control: ControlServer | null = null;
  private routes: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private startedAtMs = 0;
  private tickErrors = 0;
  private droppedTun = 0;
  private droppedEsp = 0;

  constructor(private readonly opts: GatewayOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.platform = opts.platform ?? linuxPlatform;
    this.nowMs = opts.nowMs ?? Date.now;
    this.tickMs = opts.tickMs ?? GATEWAY_TICK_MS;
    this.controlPath = opts.controlPath ?? defaultControlPath(opts.config);
    this.wheel = new TimerWheel<string>({ tickMs: this.tickMs, startMs: this.nowMs() });
  }

  get state(): GatewayState {
    return this.stateValue;
  }

  /** Brings everything up; on any failure undoes what was done and throws (IoError, VpnError). */
  async start(): Promise<void> {
    if (this.stateValue !== 'stopped') throw new VpnError('ERR_STATE', `gateway is ${this.stateValue}`);
    this.stateValue = 'starting';
    const g = this.config.gateway;
    try {
      if (!this.platform.isRoot()) {
        throw new VpnError('ERR_NOT_ROOT', 'vpcgw start must run as root (it creates a TUN device, binds UDP 500/4500 and installs routes)');
      }
      try {
        mkdirSync(g.dataDir, { recursive: true, mode: 0o700 });
      } catch (e) {
        throw new IoError(`cannot create the data dir ${g.dataDir}: ${(e as Error).message}`, e);
      }
      const choice = (this.choice = this.chooseDataPlane());
      const tun = (this.tun = choice.tun);
      if (g.tun.address) this.platform.addAddress(tun.name, g.tun.address.text);
      this.platform.enableForwarding();
      this.bindSockets(choice.reusePort);
      await this.startDataPlane(choice);
      const ctx: TunnelContext = {
        config: this.config,
        log: this.log.child({ ike: 'manager' }),
        dataPlane: this.dataPlane,
        sendIke: (m, to, local) => this.sendIke(m, to, local),
      };
      this.tunnels = this.opts.tunnels ? this.opts.tunnels(ctx) : new NoIkeController(ctx);
      for (const c of this.config.vpnConnections) for (const p of c.remoteSubnets) this.addTunRoute(p.text);
      if (this.opts.vpnServers && this.dataPlane && this.config.vpnServers.length > 0) {
        for (const v of this.config.vpnServers) this.addTunRoute(v.clientCidr.text);
        this.vpnServers = this.opts.vpnServers({ config: this.config, log: this.log, dataPlane: this.dataPlane });
        await this.vpnServers.start();
      }
      this.control = await ControlServer.listen({ path: this.controlPath, handlers: this.handlers(), log: this.log });
      // with a data plane, it reads the TUN and the 4500 sockets; the daemon reads port 500
      if (!this.dataPlane) tun.start((b) => this.guard('tun', () => (this.droppedTun += b.count)));
      for (const u of this.udp) {
        if (this.dataPlane && u.local.port === IKE_NATT_PORT) continue;
        u.bind.start((b) => this.guard('udp', () => this.onUdpBatch(u, b)));
      }
      this.tunnels.start();
      this.startedAtMs = this.nowMs();
      this.wheel.schedule(TIMER_STATS, this.startedAtMs + STATS_LOG_INTERVAL_MS);
      this.scheduleTunnels();
      this.timer = setInterval(() => this.guard('tick', () => this.onTick(this.nowMs())), this.tickMs);
      this.stateValue = 'running';
      this.log.info(
        {
          tun: tun.name,
          mtu: tun.mtu,
          udp: this.udp.map((u) => `${u.local.address}:${u.local.port}`),
          routes: this.routes,
          control: this.controlPath,
          connections: this.config.vpnConnections.length,
        },
        'gateway started',
      );
    } catch (e) {
      await this.teardown();
      this.stateValue = 'stopped';
      throw e;
    }
  }

  /** Opens the TUN the data plane src/dataplane/select.ts chooses needs (native, multi-queue, TypeScript, none). */
  private chooseDataPlane(): DataPlaneChoice {
    const g = this.config.gateway;
    const p = this.platform;
    return openDataPlaneTun({
      tuns: {
        openTun: () => p.openTun(g.tun, this.log),
        openOffloadTun: p.openOffloadTun && (() => p.openOffloadTun!(g.tun, this.log)),
        openMultiQueueTun: p.openMultiQueueTun && ((n) => p.openMultiQueueTun!(g.tun, n, this.log)),
      },
      queues: resolveQueues(g.dataPlane.queues),
      factory: this.opts.dataPlane,
      log: this.log,
    });
  }

  /**
   * UDP 500 and 4500 on every public address; `reusePort`: each 4500 socket starts a multi-queue group.
   * With no IPsec connection configured there is no peer to answer (every IKE_SA_INIT would fail to
   * match a connection), so nothing is bound: an SSL-VPN-only gateway exposes no IKE parser.
   */
  private bindSockets(reusePort: boolean): void {
    if (this.config.vpnConnections.length === 0) {
      this.log.info({ publicAddresses: this.config.gateway.publicAddresses.map((a) => a.text) }, 'no IPsec connection configured: UDP 500/4500 not bound');
      return;
    }
    for (const a of this.config.gateway.publicAddresses) {
      for (const port of [IKE_PORT, IKE_NATT_PORT]) {
        const opts = port === IKE_NATT_PORT && reusePort ? { reusePort: true } : undefined;
        const bind = this.platform.bindUdp(a.text, port, this.log, opts);
        this.udp.push({ bind, local: { family: a.addr.family, address: a.text, port } });
      }
    }
  }

  /** The data plane over the 4500 sockets; IKE on 4500 then arrives through it, as it owns them. */
  private async startDataPlane(choice: DataPlaneChoice): Promise<void> {
    const started = await choice.start(this.udp.filter((u) => u.local.port === IKE_NATT_PORT).map((u) => u.bind));
    this.dataPlane = started.dataPlane;
    this.dataPlaneKind = started.kind;
    this.queueUdp.push(...started.extraBinds);
    if (started.kind === 'multi-queue' && this.config.vpnServers.length > 0) {
      this.log.warn({ queues: this.config.gateway.dataPlane.queues }, 'SSL VPN data channel runs in JavaScript with gateway.dataPlane.queues > 1 (native only with one queue)');
    }
    this.dataPlane?.onControl((msg, from, local) => this.guard('ike', () => {
      this.tunnels?.receiveIke(msg, from, local);
      this.scheduleTunnels();
    }));
  }

  private addTunRoute(prefixText: string): void {
    this.platform.addRoute(prefixText, this.tun!.name);
    this.routes.push(prefixText);
  }

  /** Stops the tunnels (deletes sent), removes routes, closes sockets, TUN and the control socket. Idempotent. */
  async stop(): Promise<void> {
    if (this.stateValue === 'stopped' || this.stateValue === 'stopping') return;
    this.stateValue = 'stopping';
    await this.teardown();
    this.stateValue = 'stopped';
    this.log.info({ uptimeSec: Math.floor((this.nowMs() - this.startedAtMs) / 1000) }, 'gateway stopped');
  }

  status(): GatewayStatus {
    const g = this.config.gateway;
    const now = this.nowMs();
    const tunStats = this.tun?.stats();
    const connections = this.tunnels
      ? this.tunnels.status()
      : this.config.vpnConnections.map((c) => ({ name: c.name, state: 'DOWN' as const, children: [] }));
    const vpnServers = this.vpnServers
      ? this.vpnServers.status()
      : this.opts.vpnServerStatus
      ? this.opts.vpnServerStatus()
      : this.config.vpnServers.map((s) => ({
          name: s.name,
          state: 'DOWN' as const,
          protocols: [...s.protocols],
          port: s.port,
          clients: 0,
          reason: 'SSL VPN server not available',
        }));
    return {
      gateway: {
        name: g.name,
        pid: process.pid,
        startedAt: new Date(this.startedAtMs || now).toISOString(),
        uptimeSec: this.startedAtMs ? Math.max(0, Math.floor((now - this.startedAtMs) / 1000)) : 0,
        config: this.config.source,
        publicAddresses: g.publicAddresses.map((a) => a.text),
        vpcSubnets: g.vpcSubnets.map((p) => p.text),
        tun: {
          name: this.tun?.name ?? g.tun.name,
          mtu: this.tun?.mtu ?? g.tun.mtu,
          rxPackets: tunStats?.rxPackets ?? 0,
          rxBytes: tunStats?.rxBytes ?? 0,
          txPackets: tunStats?.txPackets ?? 0,
          txBytes: tunStats?.txBytes ?? 0,
          errors: tunStats?.writeErrors ?? 0,
        },
        udp: this.udp.map((u) => ({ address: u.local.address, port: u.local.port, ...udpCounters(u.bind) })),
        routes: [...this.routes],
        ike: this.opts.tunnels ? 'available' : 'not available',
        dataPlane: statusDataPlane(this.dataPlaneKind),
      },
      ...(this.tunnels?.responderStatus ? { ikeResponder: this.tunnels.responderStatus() } : {}),
      connections,
      vpnServers,
    };
  }

  private handlers(): ControlHandlers {
    const nameOf = (params: unknown): string => {
      const n = (params as { name?: unknown } | null)?.name;
      if (typeof n !== 'string' || !n) throw new VpnError('ERR_BAD_REQUEST', 'params.name (a VPN connection name) is required');
      return n;
    };
    const stateOf = (name: string) => this.tunnels?.status().find((c) => c.name === name)?.state ?? 'DOWN';
    return {
      status: () => this.status(),
      initiate: (params) => {
        const name = nameOf(params);
        this.requireTunnels().initiate(name);
        this.scheduleTunnels();
        return { name, state: stateOf(name) };
      },
      terminate: (params) => {
        const name = nameOf(params);
        this.requireTunnels().terminate(name);
        this.scheduleTunnels();
        return { name, state: stateOf(name) };
      },
      ...this.opts.controlHandlers,
    };
  }

  private requireTunnels(): TunnelController {
    if (!this.tunnels || this.stateValue !== 'running') throw new VpnError('ERR_STATE', `gateway is ${this.stateValue}`);
    return this.tunnels;
  }

  /** One tick: run due timers from the wheel. */
  private onTick(now: number): void {
    for (const id of this.wheel.expire(now)) {
      if (id === TIMER_TUNNELS) this.tunnels?.tick(now);
      else if (id === TIMER_STATS) {
        this.log.debug({ tun: this.tun?.stats(), droppedTun: this.droppedTun, droppedEsp: this.droppedEsp, tickErrors: this.tickErrors }, 'counters');
        this.wheel.schedule(TIMER_STATS, now + STATS_LOG_INTERVAL_MS);
      }
    }
    this.scheduleTunnels();
  }

  private scheduleTunnels(): void {
    const d = this.tunnels?.nextDeadline() ?? Infinity;
    if (Number.isFinite(d)) this.wheel.schedule(TIMER_TUNNELS, d);
    else this.wheel.cancel(TIMER_TUNNELS);
  }

  /** UDP 500, and UDP 4500 when no data plane reads it: IKE to the controller; keepalives and ESP dropped. */
  private onUdpBatch(u: BoundUdp, batch: PacketBatch): void {
    const natt = u.local.port === IKE_NATT_PORT;
    for (let i = 0; i < batch.count; i++) {
      const off = batch.off[i]!;
      const len = batch.len[i]!;
      let start = off;
      if (natt) {
        const kind = classifyNattDatagram(batch.buf, off, len);
        if (kind === NATT_KEEPALIVE) continue;
        if (kind === NATT_ESP) {
          this.droppedEsp++; // ESP without a data plane
          continue;
        }
        start = off + NON_ESP_MARKER_SIZE;
      }
      const fam = batch.family[i] === 6 ? 6 : 4;
      const a = batch.addr.subarray(i * 16, i * 16 + (fam === 4 ? 4 : 16));
      const from: Endpoint = { family: fam, address: bytesToIp(a), port: batch.port[i]! };
      // the batch is reused after this call: the controller gets its own copy
      const msg = Buffer.from(batch.buf.subarray(start, off + len));
      // on a wildcard bind, the address the peer reached (replies leave from it: src/native/io/pktinfo.h)
      const reached = u.bind.localAddressOf?.(i) ?? null;
      const local: Endpoint = reached === null ? u.local : { family: reached.includes(':') ? 6 : 4, address: reached, port: u.local.port };
      this.guard('ike', () => this.tunnels?.receiveIke(msg, from, local));
    }
    this.scheduleTunnels();
  }

  private sendIke(message: Uint8Array, to: Endpoint, local: Endpoint): boolean {
    const u = this.udp.find((x) => x.local.port === local.port && x.local.address === local.address)
      ?? this.udp.find((x) => x.local.port === local.port && x.local.family === to.family);
    if (!u) return false;
    if (this.dataPlane && u.local.port === IKE_NATT_PORT) {
      return this.dataPlane.sendControl(Buffer.from(message.buffer, message.byteOffset, message.byteLength), to, u.local);
    }
    const data = u.local.port === IKE_NATT_PORT ? withNonEspMarker(message) : message;
    return u.bind.sendTo(data, to.family, to.address, to.port);
  }

  /** Runs `fn`; anything thrown is logged with where it happened, and the daemon carries on. */
  private guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.tickErrors++;
      this.log.error({ where, err }, 'unexpected error (continuing)');
    }
  }

  private async teardown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.wheel.clear();
    const step = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        this.log.warn({ err, step: what }, 'stop: a step failed');
      }
    };
    if (this.vpnServers) await step('vpn servers', () => this.vpnServers!.stop());
    this.vpnServers = null;
    if (this.tunnels) await step('tunnels', () => this.tunnels!.stop());
    this.tunnels = null;
    if (this.control) await step('control socket', () => this.control!.close());
    this.control = null;
    const tunName = this.tun?.name;
    if (tunName) for (const r of this.routes.splice(0).reverse()) await step(`route ${r}`, () => this.platform.delRoute(r, tunName));
    if (this.dataPlane) await step('data plane', () => this.dataPlane!.close());
    this.dataPlane = null;
    this.dataPlaneKind = 'none';
    if (this.choice) await step('tun fds', () => this.choice!.abandon());
    this.choice = null;
    for (const u of this.queueUdp.splice(0)) await step(`udp ${u.address}:${u.port} (queue)`, () => u.close());
    for (const u of this.udp.splice(0)) await step(`udp ${u.local.address}:${u.local.port}`, () => u.bind.close());
    if (this.tun) await step('tun', () => this.tun!.close());
    this.tun = null;
  }
}

function udpCounters(b: UdpBind): IoCounters {
  const s = b.stats();
  return { rxPackets: s.rxPackets, rxBytes: s.rxBytes, txPackets: s.txPackets, txBytes: s.txBytes, errors: s.sendErrors + s.recvErrors };
}

function statusDataPlane(kind: DataPlaneKind | 'none'): GatewayStatus['gateway']['dataPlane'] {
  if (kind === 'none') return 'not available';
  return kind === 'native' || kind === 'multi-queue' ? 'native' : 'typescript';
}
