import { aclFor as accessAclFor } from './access-policy.js';
import { mkdirSync } from 'node:fs';
import type { Endpoint } from '../common/endpoint.js';
import { IoError, VpnError } from '../common/errors.js';
import { bytesToIp } from '../common/ip.js';
import { classifyNattDatagram, IKE_NATT_PORT, IKE_PORT, NAT_KEEPALIVE_BYTE, NATT_ESP, NATT_KEEPALIVE, NON_ESP_MARKER_SIZE, withNonEspMarker } from '../common/ipsec-udp.js';
import type { Logger } from '../common/log.js';
import type { PacketBatch } from '../common/batch.js';
import { TimerWheel } from '../common/timer-wheel.js';
import { NativeUdp } from '../net/native-udp.js';
import type { UdpBind } from '../net/udp-bind.js';
import { LinuxTun } from '../tun/linux-tun.js';
import { addAddress, addRoute, delAddress, delRoute, setIpForwarding } from '../tun/netcfg.js';
import type { TunDevice } from '../tun/tun-device.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import { openMultiQueueTun, resolveQueues } from '../dataplane/multi-queue.js';
import { openOffloadTun, type OffloadTun } from '../dataplane/native-data-plane.js';
import { openDataPlaneTun, type DataPlaneChoice, type DataPlaneFactory, type DataPlaneKind } from '../dataplane/select.js';
import type { GatewayConfig, TunConfig } from './config/types.js';
import { diffConfigs, type ConfigDiff, type ResourceDiff } from './live-change.js';
import { ControlServer, type ControlHandlers } from './control.js';
import type { ConnectionStatus, EndpointStatus, GatewayStatus, IkeResponderStatus, IoCounters, PolicyStatus, VpnServerStatus } from './status.js';
import type { VpnServers, VpnServersFactory } from './vpn-servers.js';
import { DnsServer } from './dns-server.js';
import {
  compilePolicy, initialEndpointState, OriginRegistry, userGroups,
  type AclFor, type CompiledPolicy, type EndpointState,
} from './vpcep.js';
import { POLICY_DROPS } from '../vpcep/policy.js';

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
 *  5. installs a route via the TUN for every connection's remoteSubnets (and gateway.endpoints.subnet,
 *     so the VPC endpoints' backends answer into the data plane), compiles the data path's policy
 *     (src/gateway/vpcep.ts: origins, ACLs, endpoint rules) and starts the DNS responder (gateway.dns);
 *  6. serves the control socket (status / initiate / terminate / rekey / disconnect);
 *  7. runs one periodic tick that drives a timer wheel; the IKE core's `nextDeadline()` is one of its timers.
 *
 * `stop()` undoes all of it in reverse order. Every callback from sockets, TUN and the tick is
 * wrapped: an exception is logged and the daemon carries on (a bug in one peer's handling must not
 * stop the gateway).
 *
 * `applyConfig(next)` changes the running gateway to a new validated, frozen config (see the
 * contract on Gateway.applyConfig); `config` is always the config in force.
 *
 * UDP ports and the NAT-T framing (non-ESP marker, keepalive) are in src/common/ipsec-udp.ts.
 */

// ---- implementation choices ----
export const GATEWAY_TICK_MS = 250;
export const STATS_LOG_INTERVAL_MS = 60_000;
const TIMER_TUNNELS = 'tunnels';
const TIMER_STATS = 'stats';
/** RFC 3948 §2.3: the one-byte NAT-keepalive payload */
const NAT_KEEPALIVE = Buffer.from([NAT_KEEPALIVE_BYTE]);

/**
 * What the daemon gives the tunnel controller (the IKE side, src/gateway/ipsec.ts): the frozen
 * config, a logger, and a way to send IKE datagrams. The controller never touches sockets itself.
 */
export interface TunnelContext {
  /** the config in force: after Gateway.applyConfig, the new one */
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
  /** Sends a NAT-keepalive (RFC 3948 §2.3) from `local` (port 4500) to `to`; false: not sent. */
  sendNatKeepalive?(to: Endpoint, local: Endpoint): boolean;
  /** The policy origin inbound SAs of `connection` carry (SaParams.origin); absent: none. */
  originOf?(connection: string): number;
}

/**
 * The IKE side of the gateway as the daemon sees it. The daemon calls these; the controller turns
 * them into IKE SA work. All calls are synchronous and must not throw for per-peer problems
 * (the daemon logs anything thrown and carries on).
 */
export interface TunnelController {
  /** Called once the sockets are bound; starts connections whose startAction is "start" and traps "trap" ones. */
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
   * Rekeys an established connection now: its CHILD_SAs or its IKE SA. Throws ERR_STATE when it is
   * not established. Absent: the controller cannot rekey (ERR_STATE).
   */
  rekey?(name: string, which: RekeyWhich): void;
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
  /**
   * A live config change: `next` is the new config (ctx.config returns it too from now on) and
   * `change` names the connections by what happened to them. Removed and changed connections are
   * taken down (DELETE sent); changed and added ones take the new config (initiated when their
   * startAction is "start"); unchanged ones are not touched: their SAs, counters and traffic go on.
   * The daemon adds and removes the TUN routes. Absent: a connection change restarts the gateway.
   */
  reconfigure?(next: GatewayConfig, change: ResourceDiff): void;
}

export type TunnelControllerFactory = (ctx: TunnelContext) => TunnelController;

/** What a manual rekey replaces: the CHILD_SAs of a connection or its IKE SA. */
export type RekeyWhich = 'child' | 'ike';

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
  /** removes an address added with addAddress; absent: addresses stay until the TUN closes */
  delAddress?(dev: string, prefixText: string): void;
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
  delAddress: (dev, prefixText) => delAddress(dev, prefixText),
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
  /**
   * The ACL of SSL VPN sessions of a server whose user is in `groups` (null: unrestricted); the one
   * place user groups and access policies plug into the data path. Default: unrestricted.
   */
  aclFor?: AclFor;
  /**
   * Each VPC endpoint's approval state by name (the management service's store); absent or missing
   * an endpoint: its service decides (approvalRequired → PENDING_ACCEPTANCE, else ACCEPTED).
   */
  endpointStates?: () => ReadonlyMap<string, EndpointState>;
  /** Starts the DNS responder for gateway.dns (default: DnsServer.start; tests pass a fake). */
  startDns?: (o: { address: string; upstream: readonly string[]; log: Logger }) => Promise<DnsResponder>;
}

/** What the daemon needs of the DNS responder (src/gateway/dns-server.ts DnsServer). */
export interface DnsResponder {
  setRecords(records: ReadonlyMap<string, string>): void;
  close(): Promise<void>;
  stats(): Record<string, number>;
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
  reconfigure(next: GatewayConfig, change: ResourceDiff): void {
    for (const n of change.removed) this.states.delete(n);
    const fresh = new Set([...change.added, ...change.changed]);
    for (const c of next.vpnConnections) if (fresh.has(c.name)) this.states.set(c.name, c.startAction === 'start' ? 'CONNECTING' : 'DOWN');
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

/** What Gateway.applyConfig did to the resources of one kind (names). */
export interface ApplyResourceReport {
  added: string[];
  removed: string[];
  /** re-created with their new config (changed; after a full restart: every one that stayed) */
  restarted: string[];
  unchanged: string[];
}

/** A step of Gateway.applyConfig that failed; the other resources were still changed. */
export interface ApplyFailure {
  /** "connection:<name>", "vpnServer:<name>", "route:<prefix>" or "gateway" */
  resource: string;
  step: string;
  message: string;
}

export interface ApplyReport {
  connections: ApplyResourceReport;
  vpnServers: ApplyResourceReport;
  /** true when the change needed a full internal restart (teardown and start in this process) */
  restarted: boolean;
  /** why it restarted, or why nothing was done */
  reason?: string;
  /** empty when every step worked */
  failed: ApplyFailure[];
  /**
   * true when a full restart with the new config failed and the gateway went back to the previous
   * one (`config` is then still the previous config)
   */
  rolledBack?: boolean;
}

/**
 * The running gateway (see the file comment for what start and stop do).
 *
 * Live configuration changes: `applyConfig(next)` takes a new validated, frozen GatewayConfig (from
 * parseConfig) and changes only what changed, comparing resources by name and by a fingerprint of
 * what their runtime config is built from (src/gateway/live-change.ts):
 *
 *  - VPN connections: a removed one is terminated (DELETE sent) and its TUN routes removed; an added
 *    one gets its routes and is initiated when its startAction is "start"; a changed one (its own
 *    fields or its customer gateway's) is terminated and re-created with the new config; an unchanged
 *    one keeps its IKE SA, CHILD_SAs, counters and traffic.
 *  - VPN servers: a removed one is stopped (clients dropped, pool route removed), an added one
 *    started, a changed one restarted alone; an unchanged one keeps its clients.
 *  - The `gateway` section, or a change that binds UDP 500/4500 (the first connection) or unbinds
 *    them (the last one removed), needs a full internal restart: teardown and start with the new
 *    config in this process; the control socket stays open on its path. One warn line says why.
 *
 * Calls are serialized (one at a time, in call order); while the gateway is starting or stopping a
 * call fails with ERR_STATE; on a stopped gateway the config is replaced and takes effect at start.
 * `config` and `status()` show the new config as soon as the call returns (added connections
 * appear DOWN or CONNECTING). A step that fails (a route, a server that cannot bind) is reported in
 * `failed`, the other resources are still changed and the gateway keeps running; a resource that
 * failed counts as changed at the next call, so applying the same config again retries it.
 */
export class Gateway {
  private configValue: GatewayConfig;
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
  /** NAT-keepalives read by the daemon's own 4500 socket (without a data plane) */
  private natKeepalivesIn = 0;
  private dataPlaneKind: DataPlaneKind | 'none' = 'none';
  private tunnels: TunnelController | null = null;
  private vpnServers: VpnServers | null = null;
  private control: ControlServer | null = null;
  private routes: string[] = [];
  /** the gateway's own address in each SSL VPN client pool, by the pool's route (see addPoolRoute) */
  private readonly poolAddresses = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private startedAtMs = 0;
  private tickErrors = 0;
  private droppedTun = 0;
  private droppedEsp = 0;
  private apiInfo: { url: string; fingerprintSha256: string } | null = null;
  /** the tail of the applyConfig queue */
  private applying: Promise<unknown> = Promise.resolve();
  /** resources whose last apply failed part-way ("connection:<name>", "vpnServer:<name>") */
  private readonly stale = new Set<string>();
  /** origin numbers and endpoint ids, stable across config changes (kept over internal restarts) */
  private readonly origins = new OriginRegistry();
  /** the policy last compiled (and given to the data plane) */
  private compiled: CompiledPolicy | null = null;
  private dns: DnsResponder | null = null;

  constructor(private readonly opts: GatewayOptions) {
    this.configValue = opts.config;
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

  /** The config in force (replaced by applyConfig). */
  get config(): GatewayConfig {
    return this.configValue;
  }

  /** Brings everything up; on any failure undoes what was done and throws (IoError, VpnError). */
  async start(): Promise<void> {
    if (this.stateValue !== 'stopped') throw new VpnError('ERR_STATE', `gateway is ${this.stateValue}`);
    this.stateValue = 'starting';
    try {
      await this.bringUp();
    } catch (e) {
      await this.closeControl();
      this.stateValue = 'stopped';
      throw e;
    }
    this.stateValue = 'running';
  }

  /**
   * Steps 1-7 of the file comment with `this.config`; the control socket is opened only when it is
   * not open already (a restart by applyConfig keeps it). On failure it undoes what it did (the
   * control socket aside) and throws.
   */
  private async bringUp(): Promise<void> {
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
      const gw = this;
      const ctx: TunnelContext = {
        get config() {
          return gw.configValue;
        },
        log: this.log.child({ ike: 'manager' }),
        dataPlane: this.dataPlane,
        sendIke: (m, to, local) => this.sendIke(m, to, local),
        sendNatKeepalive: (to, local) => this.sendNatKeepalive(to, local),
        originOf: (connection) => this.origins.connection(connection),
      };
      this.tunnels = this.opts.tunnels ? this.opts.tunnels(ctx) : new NoIkeController(ctx);
      for (const c of this.config.vpnConnections) for (const p of c.remoteSubnets) this.addTunRoute(p.text);
      // the endpoint subnet goes into the TUN (backends' replies to endpoint addresses), but no
      // endpoint address goes on an interface: the kernel would answer them itself
      if (g.endpoints) this.addTunRoute(g.endpoints.subnet.text);
      this.applyPolicy();
      if (this.opts.vpnServers && this.dataPlane && this.config.vpnServers.length > 0) {
        for (const v of this.config.vpnServers) this.addPoolRoute(v.clientCidr.text);
        this.vpnServers = this.opts.vpnServers(this.vpnServersContext(this.dataPlane));
        await this.vpnServers.start();
      }
      await this.startDns();
      this.control ??= await ControlServer.listen({ path: this.controlPath, handlers: this.handlers(), log: this.log });
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
      await this.teardown({ keepControl: true });
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
      // VPC endpoints keep their NAT flow table in one data-plane thread: "auto" is one queue then
      // (the loader refuses an explicit count above 1 with endpoints)
      queues: g.endpoints && g.dataPlane.queues === 'auto' ? 1 : resolveQueues(g.dataPlane.queues),
      rxModerationUs: g.dataPlane.rxModerationUs,
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
    this.dataPlane?.onControl((msg, from, local) => this.guard('ike', () => {
      this.tunnels?.receiveIke(msg, from, local);
      this.scheduleTunnels();
    }));
  }

  private addTunRoute(prefixText: string): void {
    this.platform.addRoute(prefixText, this.tun!.name);
    this.routes.push(prefixText);
  }

  /**
   * An SSL VPN client pool: the pool's first address (pushed to clients as route-gateway and
   * ifconfig-local) goes on the TUN with the pool's prefix, as OpenVPN's server configures its tun in
   * topology subnet, so the kernel answers there (ping, DNS on the gateway); then the pool's route.
   * An address already on the TUN (gateway.tun.address) is fine (addAddress ignores EEXIST).
   */
  private addPoolRoute(cidrText: string): void {
    const slash = cidrText.indexOf('/');
    const net = cidrText.slice(0, slash).split('.').map(Number);
    const n = (((net[0]! << 24) | (net[1]! << 16) | (net[2]! << 8) | net[3]!) >>> 0) + 1;
    const addr = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}${cidrText.slice(slash)}`;
    this.platform.addAddress(this.tun!.name, addr);
    // the configured tunnel address is not ours to remove with the pool
    if (this.config.gateway.tun.address?.text !== addr) this.poolAddresses.set(cidrText, addr);
    this.addTunRoute(cidrText);
  }

  /** What the VPN servers' factory gets: the data plane, the live config and the sessions' origins. */
  private vpnServersContext(dataPlane: DataPlane): Parameters<VpnServersFactory>[0] {
    return {
      config: this.config,
      log: this.log,
      dataPlane,
      liveConfig: () => this.configValue,
      originOf: (server, user) => this.sslOrigin(server, user),
    };
  }

  /**
   * The origin of `user`'s sessions on `server`: its (server, groups) combination. A combination the
   * last compile did not know (not in the config's users) gets a number and the policy is compiled
   * again, so its ACL is in force before its first packet.
   */
  private sslOrigin(server: string, user: string): number {
    const groups = userGroups(this.config, user);
    const known = this.origins.sslOrigins().some((o) => o.server === server && o.groups.join('\n') === groups.join('\n'));
    const origin = this.origins.sslSession(server, groups);
    if (!known) this.guard('policy', () => this.applyPolicy());
    return origin;
  }

  /**
   * Compiles the config and the endpoints' approval states into the data path's policy and hands it
   * to the data plane (setPolicy replaces the whole policy; flows of endpoints that closed or went
   * away are cut, the others survive), and the endpoints' DNS names to the DNS responder.
   */
  private applyPolicy(): void {
    const states = this.opts.endpointStates?.();
    this.compiled = compilePolicy(
      this.config,
      this.origins,
      (e, svc) => states?.get(e.name) ?? initialEndpointState(svc),
      this.opts.aclFor ?? ((server, groups) => accessAclFor(this.config, server, groups)),
    );
    this.dataPlane?.setPolicy?.(this.compiled.policy);
    this.dns?.setRecords(this.compiled.dnsRecords);
  }

  /**
   * Recompiles the policy now: an endpoint was accepted or rejected (the config is the same). Also
   * looks up the SSL sessions' origins again.
   */
  refreshPolicy(): void {
    if (this.stateValue !== 'running') return;
    this.applyPolicy();
    this.vpnServers?.refreshOrigins?.();
  }

  /**
   * gateway.dns: its address on the TUN (a /32, like a pool's first address), then the responder on
   * it. A responder that cannot start (its port taken) is logged and left out: the tunnels and the
   * endpoints' addresses work without it, only their names are not answered.
   */
  private async startDns(): Promise<void> {
    const d = this.config.gateway.dns;
    if (!d) return;
    this.platform.addAddress(this.tun!.name, `${d.address.text}/32`);
    const start = this.opts.startDns ?? ((o) => DnsServer.start(o));
    try {
      this.dns = await start({ address: d.address.text, upstream: d.upstream, log: this.log.child({ dns: d.address.text }) });
    } catch (err) {
      this.log.warn({ err, address: d.address.text }, 'DNS responder did not start: endpoint names are not answered');
      return;
    }
    this.dns.setRecords(this.compiled?.dnsRecords ?? new Map());
  }

  /** Stops the tunnels (deletes sent), removes routes, closes sockets, TUN and the control socket. Idempotent. */
  async stop(): Promise<void> {
    if (this.stateValue === 'stopped' || this.stateValue === 'stopping') return;
    // config changes in progress or queued finish first (a full restart would race the teardown)
    await this.applying;
    const now = this.stateValue as GatewayState; // an apply may have changed it meanwhile
    if (now === 'stopped' || now === 'stopping') return;
    this.stateValue = 'stopping';
    await this.teardown();
    this.stateValue = 'stopped';
    this.log.info({ uptimeSec: Math.floor((this.nowMs() - this.startedAtMs) / 1000) }, 'gateway stopped');
  }

  /**
   * Changes the running gateway to `next` (the contract is in the class comment). Serialized: a
   * call waits for the ones before it.
   */
  applyConfig(next: GatewayConfig): Promise<ApplyReport> {
    const run = this.applying.then(() => this.applyNow(next));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(next: GatewayConfig): Promise<ApplyReport> {
    if (this.stateValue === 'starting' || this.stateValue === 'stopping') {
      throw new VpnError('ERR_STATE', `gateway is ${this.stateValue}: the config cannot change now`);
    }
    const prev = this.configValue;
    const diff = diffConfigs(prev, next, { stale: this.stale });
    if (this.stateValue === 'stopped') {
      this.configValue = next;
      this.stale.clear();
      return { ...reportOf(diff, false), reason: 'the gateway is not running: the config takes effect at start', failed: [] };
    }
    let reason = diff.restartReason;
    const vs = this.vpnServers;
    if (!reason && touches(diff.connections) && !this.tunnels?.reconfigure) reason = 'the tunnel controller cannot change connections one by one';
    if (!reason && touches(diff.vpnServers) && vs && (!vs.addServer || !vs.removeServer)) reason = 'the VPN servers cannot be changed one by one';
    if (reason) return this.restartWith(prev, next, diff, reason);
    return this.applyLive(next, diff);
  }

  /** The path without a restart: only the resources that changed are touched. */
  private async applyLive(next: GatewayConfig, diff: ConfigDiff): Promise<ApplyReport> {
    const failed: ApplyFailure[] = [];
    const attempt = async (resource: string, what: string, fn: () => unknown, markStale = true): Promise<boolean> => {
      try {
        await fn();
        return true;
      } catch (err) {
        failed.push({ resource, step: what, message: (err as Error).message });
        if (markStale) this.stale.add(resource);
        this.log.warn({ err, resource, step: what }, 'config change: a step failed (the other resources were changed)');
        return false;
      }
    };
    for (const n of [...diff.connections.added, ...diff.connections.changed, ...diff.connections.removed]) this.stale.delete(`connection:${n}`);
    for (const n of [...diff.vpnServers.added, ...diff.vpnServers.changed, ...diff.vpnServers.removed]) this.stale.delete(`vpnServer:${n}`);

    // 1. servers that go away or change: stopped (their clients dropped)
    const vs = this.vpnServers;
    if (vs) {
      for (const n of [...diff.vpnServers.removed, ...diff.vpnServers.changed]) {
        await attempt(`vpnServer:${n}`, 'stop', () => vs.removeServer!(n));
      }
    }
    // 2. from here on the new config is in force (status, the tunnel context), and the data path's
    //    policy with it (endpoints, whitelists, ACLs: nothing restarts for them)
    const prevConfig = this.configValue;
    this.configValue = next;
    // users removed, disabled or moved: their sessions end now; static addresses and origins follow
    if (vs?.usersChanged) await attempt('users', 'end sessions', () => vs.usersChanged!(prevConfig, next), false);
    await attempt('policy', 'set policy', () => this.applyPolicy(), false);
    // 3. connections: DELETE for removed and changed ones, new configs, initiation
    const c = diff.connections;
    if (touches(c) && this.tunnels?.reconfigure) {
      const tunnels = this.tunnels;
      const ok = await attempt('connections', 'reconfigure', () => tunnels.reconfigure!(next, c), false);
      if (!ok) for (const n of [...c.added, ...c.changed, ...c.removed]) this.stale.add(`connection:${n}`);
      this.scheduleTunnels();
    }
    // 4. TUN routes: what the new config routes, nothing else (removals first: a prefix may move)
    const wanted = this.wantedRoutes(next);
    if (next.gateway.endpoints) wanted.set(next.gateway.endpoints.subnet.text, 'endpoints');
    const tunName = this.tun!.name;
    for (const r of [...this.routes]) {
      if (wanted.has(r)) continue;
      const ok = await attempt(`route:${r}`, 'remove route', () => this.platform.delRoute(r, tunName), false);
      if (ok) this.routes.splice(this.routes.indexOf(r), 1);
      const addr = this.poolAddresses.get(r);
      if (ok && addr !== undefined) {
        this.poolAddresses.delete(r);
        const del = this.platform.delAddress?.bind(this.platform);
        if (del) await attempt(`route:${r}`, 'remove pool address', () => del(tunName, addr), false);
      }
    }
    for (const [r, owner] of wanted) {
      if (this.routes.includes(r)) continue;
      const add = owner.startsWith('vpnServer:') ? () => this.addPoolRoute(r) : () => this.addTunRoute(r);
      const ok = await attempt(`route:${r}`, `add route (${owner})`, add, false);
      if (!ok && owner.startsWith('vpnServer:')) this.stale.add(owner);
    }
    // 5. servers that are new or changed: started
    const s = diff.vpnServers;
    if (this.opts.vpnServers && this.dataPlane && s.added.length + s.changed.length > 0) {
      const fresh = new Set([...s.added, ...s.changed]);
      const entries = next.vpnServers.filter((v) => fresh.has(v.name));
      if (this.vpnServers) {
        const set = this.vpnServers;
        for (const v of entries) await attempt(`vpnServer:${v.name}`, 'start', () => set.addServer!(v));
      } else {
        // the first server: the set is created with the new config, which holds just the added ones
        const factory = this.opts.vpnServers;
        const dataPlane = this.dataPlane;
        const set = factory(this.vpnServersContext(dataPlane));
        if (await attempt('vpnServers', 'start', () => set.start(), false)) this.vpnServers = set;
        else {
          await set.stop().catch(() => undefined); // the ones that did start
          for (const v of entries) this.stale.add(`vpnServer:${v.name}`);
        }
      }
    }
    // 6. sessions whose user's groups changed carry their new origin
    if (this.vpnServers?.refreshOrigins) {
      const set = this.vpnServers;
      await attempt('vpnServers', 'refresh origins', () => set.refreshOrigins!(), false);
    }
    const report = reportOf(diff, false);
    if (touches(c) || touches(s)) {
      this.log.info(
        { connections: summary(report.connections), vpnServers: summary(report.vpnServers), failed: failed.length },
        'config change applied',
      );
    }
    return { ...report, failed };
  }

  /** Every route the daemon installs via the TUN for `cfg`, with the resource it serves. */
  private wantedRoutes(cfg: GatewayConfig): Map<string, string> {
    const m = new Map<string, string>();
    for (const c of cfg.vpnConnections) for (const p of c.remoteSubnets) m.set(p.text, `connection:${c.name}`);
    if (this.opts.vpnServers && this.dataPlane) for (const v of cfg.vpnServers) m.set(v.clientCidr.text, `vpnServer:${v.name}`);
    return m;
  }

  /**
   * The full internal restart: teardown and start with `next` in this process, the control socket
   * kept. When `next` does not come up, the previous config is brought back up (rolledBack).
   */
  private async restartWith(prev: GatewayConfig, next: GatewayConfig, diff: ConfigDiff, reason: string): Promise<ApplyReport> {
    this.log.warn({ reason }, 'config change: restarting the gateway');
    this.stateValue = 'starting';
    await this.teardown({ keepControl: true });
    this.configValue = next;
    try {
      await this.bringUp();
      this.stale.clear();
      this.stateValue = 'running';
      return { ...reportOf(diff, true), reason, failed: [] };
    } catch (err) {
      this.log.warn({ err }, 'config change: the gateway did not start with the new config; starting it with the previous one');
      const failed: ApplyFailure[] = [{ resource: 'gateway', step: 'start', message: (err as Error).message }];
      this.configValue = prev;
      try {
        await this.bringUp();
        this.stateValue = 'running';
      } catch (err2) {
        this.log.error({ err: err2 }, 'config change: the gateway did not start with the previous config either: stopped');
        await this.closeControl();
        this.stateValue = 'stopped';
        failed.push({ resource: 'gateway', step: 'start (previous config)', message: (err2 as Error).message });
      }
      return { ...reportOf(diff, true), reason, failed, rolledBack: true };
    }
  }

  status(): GatewayStatus {
    const g = this.config.gateway;
    const now = this.nowMs();
    const tunStats = this.tun?.stats();
    const connections = this.tunnels
      ? this.tunnels.status()
      : this.config.vpnConnections.map((c) => ({ name: c.name, state: 'DOWN' as const, children: [] }));
    const vpnServers = this.vpnServers
      ? this.serverStatus(this.vpnServers)
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
        natKeepalivesReceived: (this.dataPlane?.stats().natKeepalives ?? 0) + this.natKeepalivesIn,
        ...(this.apiInfo ? { api: { ...this.apiInfo } } : {}),
      },
      ...(this.tunnels?.responderStatus ? { ikeResponder: this.tunnels.responderStatus() } : {}),
      connections,
      vpnServers,
      ...(this.config.endpoints.length ? { endpoints: this.endpointStatus() } : {}),
      ...(this.dataPlane?.policyCounters ? { policy: this.policyStatus() } : {}),
    };
  }

  /** The VPC endpoints in config order with their state and the policy stage's counters. */
  private endpointStatus(): EndpointStatus[] {
    const cfg = this.config;
    if (cfg.endpoints.length === 0) return [];
    const states = this.opts.endpointStates?.();
    const counters = this.dataPlane?.policyCounters?.();
    const byId = new Map((counters?.endpoints ?? []).map((c) => [c.id, c]));
    const zero = (): Record<string, number> => Object.fromEntries(POLICY_DROPS.filter((r) => r.startsWith('endpoint')).map((r) => [r, 0]));
    return cfg.endpoints.map((e) => {
      const svc = cfg.endpointServices.find((s) => s.name === e.service)!;
      const id = this.compiled?.endpointIds.get(e.name);
      const c = id === undefined ? undefined : byId.get(id);
      return {
        name: e.name,
        service: e.service,
        type: e.type,
        state: states?.get(e.name) ?? initialEndpointState(svc),
        address: e.address,
        dnsName: e.dnsName,
        flows: c?.flows ?? 0,
        flowsCreated: c?.flowsCreated ?? 0,
        packetsIn: c?.packetsIn ?? 0,
        bytesIn: c?.bytesIn ?? 0,
        packetsOut: c?.packetsOut ?? 0,
        bytesOut: c?.bytesOut ?? 0,
        drops: c ? { ...zero(), ...c.drops } : zero(),
      };
    });
  }

  /** The policy stage's drops, flows and ACL drops by origin (named). */
  private policyStatus(): PolicyStatus {
    const c = this.dataPlane!.policyCounters!();
    const names = new Map<number, string>();
    for (const conn of this.config.vpnConnections) names.set(this.origins.connection(conn.name), `connection:${conn.name}`);
    for (const o of this.origins.sslOrigins()) names.set(o.origin, `vpnServer:${o.server}[${o.groups.join(',')}]`);
    const aclDenied: Record<string, number> = {};
    for (const [origin, n] of c.aclDenied) {
      const k = names.get(origin) ?? `origin:${origin}`;
      aclDenied[k] = (aclDenied[k] ?? 0) + n;
    }
    return { drops: { ...c.drops }, flows: c.flows, aclDenied };
  }

  /** The servers in config order; one the set does not run (its start failed) shows DOWN. */
  private serverStatus(set: VpnServers): VpnServerStatus[] {
    const byName = new Map(set.status().map((x) => [x.name, x]));
    return this.config.vpnServers.map((s) => byName.get(s.name) ?? {
      name: s.name,
      state: 'DOWN' as const,
      protocols: [...s.protocols],
      port: s.port,
      clients: 0,
      reason: 'not running (its start failed)',
    });
  }

  /** Brings a VPN connection up now (the control method "initiate" and the API action). */
  initiate(name: string): void {
    this.requireTunnels().initiate(name);
    this.scheduleTunnels();
  }

  /** Takes a VPN connection down now; it stays configured. */
  terminate(name: string): void {
    this.requireTunnels().terminate(name);
    this.scheduleTunnels();
  }

  /**
   * Rekeys an established VPN connection now (the control method "rekey" and the API action):
   * `child` its CHILD_SAs, `ike` its IKE SA. ERR_STATE when it is not established.
   */
  rekey(name: string, which: RekeyWhich = 'child'): void {
    const t = this.requireTunnels();
    if (!t.rekey) {
      if (!this.config.vpnConnections.some((c) => c.name === name)) throw unknownConnection(name, this.config.vpnConnections.map((c) => c.name));
      throw new VpnError('ERR_STATE', `connection ${name} cannot be rekeyed: IKE is not available`);
    }
    t.rekey(name, which);
    this.scheduleTunnels();
  }

  /**
   * Closes one client session of a VPN server (the control method "disconnect" and the API
   * action), found by its status id or its user name. `halt`: the client is told to exit (HALT)
   * instead of reconnecting (RESTART). ERR_NOT_FOUND for an unknown server or client.
   */
  disconnectClient(server: string, client: string, halt = false): { server: string; client: string; user: string } {
    if (!this.config.vpnServers.some((v) => v.name === server)) {
      throw new VpnError('ERR_NOT_FOUND', `no VPN server named "${server}" (configured: ${this.config.vpnServers.map((v) => v.name).join(', ') || 'none'})`);
    }
    const vs = this.vpnServers;
    if (!vs || !vs.disconnect || this.stateValue !== 'running') throw new VpnError('ERR_STATE', `VPN server ${server} is not running`);
    return vs.disconnect(server, client, halt);
  }

  /** The data plane's drops by reason (empty without a data plane), for metrics. */
  dropCounters(): Record<string, number> {
    return this.dataPlane?.dropCounters() ?? {};
  }

  /** Where the management API listens, for `status` (the API is served beside the daemon, src/gateway/run.ts). */
  setApiInfo(info: { url: string; fingerprintSha256: string } | null): void {
    this.apiInfo = info;
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
        this.initiate(name);
        return { name, state: stateOf(name) };
      },
      terminate: (params) => {
        const name = nameOf(params);
        this.terminate(name);
        return { name, state: stateOf(name) };
      },
      rekey: (params) => {
        const name = nameOf(params);
        const sa = (params as { sa?: unknown }).sa ?? 'child';
        if (sa !== 'child' && sa !== 'ike') throw new VpnError('ERR_BAD_REQUEST', `params.sa ${JSON.stringify(sa)} is not valid: child or ike`);
        this.rekey(name, sa);
        return { name, sa, state: stateOf(name) };
      },
      disconnect: (params) => {
        const p = (params ?? {}) as { server?: unknown; client?: unknown; halt?: unknown };
        if (typeof p.server !== 'string' || !p.server) throw new VpnError('ERR_BAD_REQUEST', 'params.server (a VPN server name) is required');
        if (typeof p.client !== 'string' || !p.client) throw new VpnError('ERR_BAD_REQUEST', 'params.client (a client id or user name) is required');
        return this.disconnectClient(p.server, p.client, p.halt === true);
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
        if (kind === NATT_KEEPALIVE) {
          this.natKeepalivesIn++; // RFC 3948 §2.3: counted, dropped
          continue;
        }
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

  private sendNatKeepalive(to: Endpoint, local: Endpoint): boolean {
    const u = this.udp.find((x) => x.local.port === local.port && x.local.address === local.address)
      ?? this.udp.find((x) => x.local.port === local.port && x.local.family === to.family);
    if (!u || u.local.port !== IKE_NATT_PORT) return false;
    if (this.dataPlane) return this.dataPlane.sendNatKeepalive(to, u.local);
    return u.bind.sendTo(NAT_KEEPALIVE, to.family, to.address, to.port);
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

  private async closeControl(): Promise<void> {
    const c = this.control;
    this.control = null;
    if (!c) return;
    try {
      await c.close();
    } catch (err) {
      this.log.warn({ err, step: 'control socket' }, 'stop: a step failed');
    }
  }

  /** Undoes bringUp; `keepControl`: the control socket stays open (a restart by applyConfig). */
  private async teardown(opts: { keepControl?: boolean } = {}): Promise<void> {
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
    if (this.dns) await step('dns responder', () => this.dns!.close());
    this.dns = null;
    if (this.vpnServers) await step('vpn servers', () => this.vpnServers!.stop());
    this.vpnServers = null;
    if (this.tunnels) await step('tunnels', () => this.tunnels!.stop());
    this.tunnels = null;
    if (!opts.keepControl) await this.closeControl();
    const tunName = this.tun?.name;
    if (tunName) for (const r of this.routes.splice(0).reverse()) await step(`route ${r}`, () => this.platform.delRoute(r, tunName));
    this.poolAddresses.clear(); // they go with the TUN
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

function touches(d: ResourceDiff): boolean {
  return d.added.length + d.removed.length + d.changed.length > 0;
}

function reportOf(diff: ConfigDiff, restarted: boolean): Omit<ApplyReport, 'failed'> {
  const one = (d: ResourceDiff): ApplyResourceReport => restarted
    ? { added: [...d.added], removed: [...d.removed], restarted: [...d.changed, ...d.unchanged], unchanged: [] }
    : { added: [...d.added], removed: [...d.removed], restarted: [...d.changed], unchanged: [...d.unchanged] };
  return { connections: one(diff.connections), vpnServers: one(diff.vpnServers), restarted };
}

function summary(r: ApplyResourceReport): Record<string, number> {
  return { added: r.added.length, removed: r.removed.length, restarted: r.restarted.length, unchanged: r.unchanged.length };
}
