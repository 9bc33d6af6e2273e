import { readFileSync } from 'node:fs';
import { Counter, Gauge, Registry, collectDefaultMetrics, type CollectFunction } from 'prom-client';
import { RESOURCE_STATUSES, type ResourceStatus } from '../api/service.js';
import type { ConnectionState, GatewayStatus } from './status.js';
import { ENDPOINT_STATES } from './vpcep.js';

/**
 * The gateway's Prometheus metrics, rendered in the text exposition format (version 0.0.4) that
 * `GET /metrics` serves.
 *
 * Nothing here runs per packet: every value is read at scrape time from the same status document
 * `vpcgw status --json` prints (one status() call per scrape, shared by all collect callbacks) and
 * from the data plane's drop counters. Each instance has its own prom-client Registry, never the
 * global one, so several gateways in one process (tests) do not mix their series.
 *
 * Counters that come from the status are totals the gateway keeps itself, so a collect callback
 * replaces the whole series set (reset, then inc by the total): a connection or server that goes
 * away from the config disappears from the next scrape. A configured connection that is down stays
 * (`vpcgw_vpn_connection_configured 1`, `vpcgw_vpn_connection_up 0`), so alerts on "up == 0" work.
 */

export const METRICS_PREFIX = 'vpcgw_';

export interface GatewayMetricsOptions {
  /** The live status document (src/gateway/status.ts); called once per scrape. */
  readonly status: () => GatewayStatus;
  /** The data plane's drops by reason (DataPlane.dropCounters()); absent: no drop series. */
  readonly dropCounters?: () => Readonly<Record<string, number>>;
  /** vpcgw_build_info's version label; default: the version in package.json. */
  readonly version?: string;
  /** prom-client's process and Node.js metrics (prefixed vpcgw_); default true. */
  readonly defaultMetrics?: boolean;
}

/** What a connection's state means in the management API's lifecycle (src/api/service.ts). */
export function connectionResourceStatus(state: ConnectionState): ResourceStatus {
  return state === 'ESTABLISHED' || state === 'REKEYING' ? 'ACTIVE' : 'DOWN';
}

const CONNECTION_STATES: readonly ConnectionState[] = ['DOWN', 'CONNECTING', 'ESTABLISHED', 'REKEYING', 'DELETING'];
/** The statuses a connection can have (the others belong to VPC endpoints). */
const CONNECTION_RESOURCE_STATUSES: readonly ResourceStatus[] = RESOURCE_STATUSES.filter((s) => !(ENDPOINT_STATES as readonly string[]).includes(s));

let packageVersion: string | undefined;

/** The version of this package (package.json sits two levels above both src/gateway and dist/gateway). */
export function vpcgwVersion(): string {
  if (packageVersion === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      packageVersion = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      packageVersion = 'unknown';
    }
  }
  return packageVersion;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly readStatus: () => GatewayStatus;
  private readonly readDrops: (() => Readonly<Record<string, number>>) | null;
  /** the status of the scrape in progress (null between scrapes) */
  private snapshot: GatewayStatus | null = null;

  constructor(opts: GatewayMetricsOptions) {
    this.readStatus = opts.status;
    this.readDrops = opts.dropCounters ?? null;
    const version = opts.version ?? vpcgwVersion();
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: METRICS_PREFIX });
    this.defineGatewayMetrics(version);
    this.defineConnectionMetrics();
    this.defineIkeResponderMetrics();
    this.defineVpnServerMetrics();
    this.defineEndpointMetrics();
  }

  /** The Content-Type of metrics(): text/plain; version=0.0.4. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** One scrape: the text exposition format of every metric, read from the live status now. */
  async metrics(): Promise<string> {
    this.snapshot = this.readStatus();
    try {
      return await this.registry.metrics();
    } finally {
      this.snapshot = null;
    }
  }

  private status(): GatewayStatus {
    // a direct registry.metrics() call (not through metrics()) reads the status per callback
    return this.snapshot ?? this.readStatus();
  }

  private gauge(name: string, help: string, labelNames: readonly string[], collect: CollectFunction<Gauge<string>>): void {
    new Gauge({ name: METRICS_PREFIX + name, help, labelNames, registers: [this.registry], collect });
  }

  private counter(name: string, help: string, labelNames: readonly string[], collect: CollectFunction<Counter<string>>): void {
    new Counter({ name: METRICS_PREFIX + name, help, labelNames, registers: [this.registry], collect });
  }

  private defineGatewayMetrics(version: string): void {
    const self = this;
    this.gauge('build_info', 'vpcgw build information; always 1', ['version'], function () {
      this.reset();
      this.set({ version }, 1);
    });
    this.gauge('start_time_seconds', 'When the gateway started, in seconds since the Unix epoch', [], function () {
      this.set(Date.parse(self.status().gateway.startedAt) / 1000);
    });
    this.counter('tun_packets_total', 'IP packets read from (rx) and written to (tx) the TUN device', ['direction'], function () {
      const t = self.status().gateway.tun;
      this.reset();
      this.inc({ direction: 'rx' }, t.rxPackets);
      this.inc({ direction: 'tx' }, t.txPackets);
    });
    this.counter('tun_bytes_total', 'Bytes read from (rx) and written to (tx) the TUN device', ['direction'], function () {
      const t = self.status().gateway.tun;
      this.reset();
      this.inc({ direction: 'rx' }, t.rxBytes);
      this.inc({ direction: 'tx' }, t.txBytes);
    });
    this.counter('tun_errors_total', 'TUN write errors', [], function () {
      this.reset();
      this.inc(self.status().gateway.tun.errors);
    });
    this.counter('udp_packets_total', 'Datagrams received (rx) and sent (tx) per UDP socket of the gateway (IKE, NAT-T)', ['socket', 'direction'], function () {
      this.reset();
      for (const u of self.status().gateway.udp) {
        const socket = `${u.address}:${u.port}`;
        this.inc({ socket, direction: 'rx' }, u.rxPackets);
        this.inc({ socket, direction: 'tx' }, u.txPackets);
      }
    });
    this.counter('udp_bytes_total', 'Bytes received (rx) and sent (tx) per UDP socket of the gateway', ['socket', 'direction'], function () {
      this.reset();
      for (const u of self.status().gateway.udp) {
        const socket = `${u.address}:${u.port}`;
        this.inc({ socket, direction: 'rx' }, u.rxBytes);
        this.inc({ socket, direction: 'tx' }, u.txBytes);
      }
    });
    this.counter('udp_errors_total', 'Send errors per UDP socket of the gateway', ['socket'], function () {
      this.reset();
      for (const u of self.status().gateway.udp) this.inc({ socket: `${u.address}:${u.port}` }, u.errors);
    });
    if (this.readDrops) {
      const readDrops = this.readDrops;
      this.counter('dataplane_drops_total', 'Packets the data plane dropped, by reason (src/dataplane/drop-counters.ts)', ['reason'], function () {
        this.reset();
        for (const [reason, n] of Object.entries(readDrops())) this.inc({ reason }, n);
      });
    }
  }

  private defineConnectionMetrics(): void {
    const self = this;
    const conns = () => self.status().connections;
    this.gauge('vpn_connection_configured', 'A site-to-cloud VPN connection is configured; always 1, also while it is down', ['connection'], function () {
      this.reset();
      for (const c of conns()) this.set({ connection: c.name }, 1);
    });
    this.gauge('vpn_connection_up', '1 when the connection has an established IKE SA, else 0', ['connection'], function () {
      this.reset();
      for (const c of conns()) this.set({ connection: c.name }, connectionResourceStatus(c.state) === 'ACTIVE' ? 1 : 0);
    });
    this.gauge('vpn_connection_status', "The connection's status as the management API reports it: 1 for the current one, 0 for the others", ['connection', 'status'], function () {
      this.reset();
      for (const c of conns()) {
        const current = connectionResourceStatus(c.state);
        for (const status of CONNECTION_RESOURCE_STATUSES) this.set({ connection: c.name, status }, status === current ? 1 : 0);
      }
    });
    this.gauge('vpn_connection_ike_state', "The IKE state of the connection (vpcgw status): 1 for the current one, 0 for the others", ['connection', 'state'], function () {
      this.reset();
      for (const c of conns()) for (const state of CONNECTION_STATES) this.set({ connection: c.name, state }, state === c.state ? 1 : 0);
    });
    this.counter('vpn_connection_bytes_total', "ESP payload bytes of the connection's current CHILD SAs, from the peer (in) and to it (out)", ['connection', 'direction'], function () {
      this.reset();
      for (const c of conns()) {
        let bytesIn = 0;
        let bytesOut = 0;
        for (const ch of c.children) {
          bytesIn += ch.bytesIn;
          bytesOut += ch.bytesOut;
        }
        this.inc({ connection: c.name, direction: 'in' }, bytesIn);
        this.inc({ connection: c.name, direction: 'out' }, bytesOut);
      }
    });
    this.counter('vpn_connection_packets_total', "ESP packets of the connection's current CHILD SAs, from the peer (in) and to it (out)", ['connection', 'direction'], function () {
      this.reset();
      for (const c of conns()) {
        let packetsIn = 0;
        let packetsOut = 0;
        for (const ch of c.children) {
          packetsIn += ch.packetsIn;
          packetsOut += ch.packetsOut;
        }
        this.inc({ connection: c.name, direction: 'in' }, packetsIn);
        this.inc({ connection: c.name, direction: 'out' }, packetsOut);
      }
    });
    this.gauge('vpn_connection_ike_sa_age_seconds', 'Seconds since the current IKE SA was established (absent while down)', ['connection'], function () {
      this.reset();
      for (const c of conns()) if (c.ikeSaAgeSec !== undefined) this.set({ connection: c.name }, c.ikeSaAgeSec);
    });
    this.gauge('vpn_connection_child_sas', 'CHILD SAs of the connection (installed, rekeyed and being deleted)', ['connection'], function () {
      this.reset();
      for (const c of conns()) this.set({ connection: c.name }, c.children.length);
    });
    this.counter('vpn_connection_rekeys_total', 'Rekeys of the connection since the gateway started, of the IKE SA and of CHILD SAs', ['connection', 'sa'], function () {
      this.reset();
      for (const c of conns()) {
        this.inc({ connection: c.name, sa: 'ike' }, c.ikeRekeys ?? 0);
        this.inc({ connection: c.name, sa: 'child' }, c.childRekeys ?? 0);
      }
    });
    this.counter('vpn_connection_dpd_failures_total', 'Liveness checks (DPD) the peer did not answer, each clearing the IKE SA', ['connection'], function () {
      this.reset();
      for (const c of conns()) this.inc({ connection: c.name }, c.dpdFailures ?? 0);
    });
  }

  private defineIkeResponderMetrics(): void {
    const self = this;
    this.gauge('ike_half_open_sas', 'Responder IKE SAs waiting for IKE_AUTH', [], function () {
      this.reset();
      const r = self.status().ikeResponder;
      if (r) this.set(r.halfOpen);
    });
    this.gauge('ike_half_open_sources', 'Source addresses holding half-open IKE SAs', [], function () {
      this.reset();
      const r = self.status().ikeResponder;
      if (r) this.set(r.halfOpenSources);
    });
    this.counter('ike_cookies_sent_total', 'IKE_SA_INIT requests answered with a COOKIE (RFC 7296 §2.6)', [], function () {
      this.reset();
      const r = self.status().ikeResponder;
      if (r) this.inc(r.cookiesSent);
    });
    this.counter('ike_init_drops_total', 'IKE input dropped before it reached an IKE SA, by reason', ['reason'], function () {
      this.reset();
      const r = self.status().ikeResponder;
      if (r) for (const [reason, n] of Object.entries(r.drops)) this.inc({ reason }, n);
    });
  }

  private defineVpnServerMetrics(): void {
    const self = this;
    const servers = () => self.status().vpnServers;
    this.gauge('vpn_server_up', '1 when the point-to-cloud VPN server listens, else 0', ['vpn_server'], function () {
      this.reset();
      for (const s of servers()) this.set({ vpn_server: s.name }, s.state === 'LISTENING' ? 1 : 0);
    });
    this.gauge('vpn_server_clients', 'Clients online (authenticated, with an address)', ['vpn_server'], function () {
      this.reset();
      for (const s of servers()) this.set({ vpn_server: s.name }, s.clients);
    });
    this.gauge('vpn_server_half_open_sessions', 'Sessions not authenticated yet', ['vpn_server'], function () {
      this.reset();
      for (const s of servers()) if (s.halfOpen !== undefined) this.set({ vpn_server: s.name }, s.halfOpen);
    });
    this.counter('vpn_server_auth_failures_total', 'Clients refused before authentication (bad certificate, no common cipher, ...)', ['vpn_server'], function () {
      this.reset();
      for (const s of servers()) this.inc({ vpn_server: s.name }, s.authFailures ?? 0);
    });
    this.counter('vpn_server_bytes_total', 'Data channel bytes from clients (in) and to them (out), closed sessions included', ['vpn_server', 'direction'], function () {
      this.reset();
      for (const s of servers()) {
        this.inc({ vpn_server: s.name, direction: 'in' }, s.bytesIn ?? 0);
        this.inc({ vpn_server: s.name, direction: 'out' }, s.bytesOut ?? 0);
      }
    });
  }

  /**
   * VPC endpoints and the policy stage (src/vpcep/policy.ts counters, through the status document).
   * `direction` in is client → backend, out is backend → client.
   */
  private defineEndpointMetrics(): void {
    const self = this;
    const eps = () => self.status().endpoints ?? [];
    this.gauge('endpoint_state', "The endpoint's approval state: 1 for the current one, 0 for the others", ['endpoint', 'service', 'state'], function () {
      this.reset();
      for (const e of eps()) for (const state of ENDPOINT_STATES) this.set({ endpoint: e.name, service: e.service, state }, state === e.state ? 1 : 0);
    });
    this.gauge('endpoint_flows', 'Translated flows of the endpoint alive now', ['endpoint'], function () {
      this.reset();
      for (const e of eps()) this.set({ endpoint: e.name }, e.flows);
    });
    this.counter('endpoint_flows_created_total', 'Flows the endpoint created since it appeared', ['endpoint'], function () {
      this.reset();
      for (const e of eps()) this.inc({ endpoint: e.name }, e.flowsCreated);
    });
    this.counter('endpoint_packets_total', 'Packets translated for the endpoint, client to backend (in) and back (out)', ['endpoint', 'direction'], function () {
      this.reset();
      for (const e of eps()) {
        this.inc({ endpoint: e.name, direction: 'in' }, e.packetsIn);
        this.inc({ endpoint: e.name, direction: 'out' }, e.packetsOut);
      }
    });
    this.counter('endpoint_bytes_total', 'IP bytes translated for the endpoint, client to backend (in) and back (out)', ['endpoint', 'direction'], function () {
      this.reset();
      for (const e of eps()) {
        this.inc({ endpoint: e.name, direction: 'in' }, e.bytesIn);
        this.inc({ endpoint: e.name, direction: 'out' }, e.bytesOut);
      }
    });
    this.counter('endpoint_drops_total', 'Packets to the endpoint dropped, by reason (closed, denied by the whitelist, no port, no flow, table full)', ['endpoint', 'reason'], function () {
      this.reset();
      for (const e of eps()) for (const [reason, n] of Object.entries(e.drops)) this.inc({ endpoint: e.name, reason }, n);
    });
    this.counter('policy_drops_total', "Packets the data path's policy stage dropped, by reason (aclDenied: an access policy; endpoint*: VPC endpoints)", ['reason'], function () {
      this.reset();
      const p = self.status().policy;
      if (p) for (const [reason, n] of Object.entries(p.drops)) this.inc({ reason }, n);
    });
  }
}
