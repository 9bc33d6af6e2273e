/**
 * VPC endpoints in the control plane: the config's endpoint services, endpoints and SSL VPN users
 * compiled into the data path's policy (src/vpcep/policy.ts), plus what the endpoints add to the
 * tunnels around them (routes pushed to SSL VPN clients, local traffic selectors of site
 * connections). Pure functions over the frozen config, and one small stateful object: the
 * OriginRegistry, which keeps the numbers the data plane knows things by stable across config
 * changes.
 *
 *  1. Origins. Every VPN connection gets a non-zero origin (its inbound SAs carry it); every SSL VPN
 *     session gets the origin of its (VPN server, sorted group set) combination. The combinations
 *     are those the config can produce: for each server, the empty set (certificate users without a
 *     users entry, users in no group) and the group set of each user.
 *  2. Endpoint rules. An endpoint of an interface service becomes an EndpointRule: its address, its
 *     service's port maps toward the backend, `open` while ACCEPTED, and the whitelist resolved to
 *     origins (vpnConnection → that connection's origin; vpnServer → every origin of that server;
 *     userGroup → every SSL origin whose group set holds the group) and source prefixes (CIDR entries).
 *  3. ACLs. For every SSL origin, `aclFor(server, groups)` (null: unrestricted) becomes an OriginAcl;
 *     site connections have none.
 *  4. Limits from gateway.endpoints (flow table size, idle timeouts).
 *
 * Gateway services (route type, no NAT) are not in the data path's rules: their prefixes are added
 * to what whitelisted tunnels reach (`sslPushes`, `connectionExtraLocalTs`), which depends on the
 * config only (an approval change does not renegotiate tunnels or restart servers).
 */
import { prefixesOverlap, type Prefix } from '../common/ip.js';
import {
  DEFAULT_POLICY_LIMITS, ip4ToNumber, PROTO_TCP, PROTO_UDP,
  type AclRule, type DataPathPolicy, type EndpointRule, type OriginAcl, type Prefix4,
} from '../vpcep/policy.js';
import type { EndpointConfig, EndpointServiceConfig, GatewayConfig, WhitelistEntry } from './config/types.js';
import { inside } from './config/field-table.js';

/** An endpoint's approval state (the cloud VPC endpoint lifecycle, minus the transient ones). */
export const ENDPOINT_STATES = ['PENDING_ACCEPTANCE', 'ACCEPTED', 'REJECTED'] as const;
export type EndpointState = (typeof ENDPOINT_STATES)[number];

/**
 * The access rules of an SSL VPN user of `server` whose groups are `groups` (sorted, unique); null:
 * unrestricted. Groups and access policies decide it; the daemon passes `unrestrictedAcl` until
 * they exist (GatewayOptions.aclFor).
 */
export type AclFor = (server: string, groups: readonly string[]) => readonly AclRule[] | null;
export const unrestrictedAcl: AclFor = () => null;

/** The state of an endpoint no one has accepted or rejected yet: its service decides. */
export function initialEndpointState(service: { readonly approvalRequired: boolean }): EndpointState {
  return service.approvalRequired ? 'PENDING_ACCEPTANCE' : 'ACCEPTED';
}

/** The sorted, duplicate-free group names of `user` in `cfg` ([] for a name without a users entry). */
export function userGroups(cfg: GatewayConfig, user: string): string[] {
  const u = cfg.users.find((x) => x.name === user);
  return u ? [...new Set(u.groups)].sort() : [];
}

/** May `user` log in to `server` (a users entry's `servers`; all servers when omitted). */
function allowedOn(u: GatewayConfig['users'][number], server: string): boolean {
  return !u.servers || u.servers.includes(server);
}

/**
 * The group sets SSL sessions of each server can have: [] first, then each user's, distinct. Every
 * user counts on every server, whatever its `servers` list (that list gates password logins; a
 * certificate's CN may still name the user elsewhere), so a session's combination is always known.
 */
export function sslGroupSets(cfg: GatewayConfig): Map<string, string[][]> {
  const out = new Map<string, string[][]>();
  for (const s of cfg.vpnServers) {
    const seen = new Set<string>(['']);
    const sets: string[][] = [[]];
    for (const u of cfg.users) {
      const g = [...new Set(u.groups)].sort();
      const key = g.join('\n');
      if (seen.has(key)) continue;
      seen.add(key);
      sets.push(g);
    }
    out.set(s.name, sets);
  }
  return out;
}

function sslKey(server: string, groups: readonly string[]): string {
  return `${server}\n${groups.join('\n')}`;
}

/**
 * The numbers the data plane knows origins and endpoints by. A number is handed out once per
 * process (never reused), and kept while its thing exists in the config: a connection, server or
 * endpoint that is changed keeps it; one that is removed loses it (`retain`), and one added again
 * later gets a new number.
 */
export class OriginRegistry {
  private nextOrigin = 1;
  private nextEndpoint = 1;
  private readonly connections = new Map<string, number>();
  private readonly ssl = new Map<string, { server: string; groups: readonly string[]; origin: number }>();
  private readonly endpoints = new Map<string, number>();

  /** The origin of a VPN connection's inbound SAs. */
  connection(name: string): number {
    let o = this.connections.get(name);
    if (o === undefined) this.connections.set(name, (o = this.take()));
    return o;
  }

  /** The origin of SSL sessions of `server` whose user is in `groups` (any order). */
  sslSession(server: string, groups: readonly string[]): number {
    const sorted = [...new Set(groups)].sort();
    const key = sslKey(server, sorted);
    let e = this.ssl.get(key);
    if (!e) this.ssl.set(key, (e = { server, groups: Object.freeze(sorted), origin: this.take() }));
    return e.origin;
  }

  /** Every SSL origin known: its server and group set. */
  sslOrigins(): { server: string; groups: readonly string[]; origin: number }[] {
    return [...this.ssl.values()];
  }

  /** The id of an endpoint's rule and counters. */
  endpoint(name: string): number {
    let id = this.endpoints.get(name);
    if (id === undefined) this.endpoints.set(name, (id = this.nextEndpoint++));
    return id;
  }

  /** The endpoint with this id, or undefined. */
  endpointName(id: number): string | undefined {
    for (const [n, i] of this.endpoints) if (i === id) return n;
    return undefined;
  }

  /** Registers everything `cfg` has and forgets what it no longer has. */
  retain(cfg: GatewayConfig): void {
    const conns = new Set(cfg.vpnConnections.map((c) => c.name));
    for (const n of [...this.connections.keys()]) if (!conns.has(n)) this.connections.delete(n);
    for (const c of cfg.vpnConnections) this.connection(c.name);
    const keys = new Set<string>();
    for (const [server, sets] of sslGroupSets(cfg)) {
      for (const g of sets) {
        keys.add(sslKey(server, g));
        this.sslSession(server, g);
      }
    }
    for (const k of [...this.ssl.keys()]) if (!keys.has(k)) this.ssl.delete(k);
    const eps = new Set(cfg.endpoints.map((e) => e.name));
    for (const n of [...this.endpoints.keys()]) if (!eps.has(n)) this.endpoints.delete(n);
    for (const e of cfg.endpoints) this.endpoint(e.name);
  }

  private take(): number {
    const o = this.nextOrigin;
    this.nextOrigin = this.nextOrigin >= 0xffff_ffff ? 1 : this.nextOrigin + 1;
    return o;
  }
}

export interface CompiledPolicy {
  readonly policy: DataPathPolicy;
  /** endpoint name → the id its rule and counters carry */
  readonly endpointIds: ReadonlyMap<string, number>;
  /** lowercased DNS name → IPv4 address (interface endpoints with a dnsName) */
  readonly dnsRecords: ReadonlyMap<string, string>;
}

/** What a whitelist admits: origins and source prefixes. */
export function resolveWhitelist(
  cfg: GatewayConfig,
  registry: OriginRegistry,
  whitelist: readonly WhitelistEntry[],
): { origins: number[]; sources: Prefix4[] } {
  const origins = new Set<number>();
  const sources: Prefix4[] = [];
  for (const w of whitelist) {
    switch (w.kind) {
      case 'vpnConnection':
        if (cfg.vpnConnections.some((c) => c.name === w.name)) origins.add(registry.connection(w.name));
        break;
      case 'vpnServer':
        for (const o of registry.sslOrigins()) if (o.server === w.name) origins.add(o.origin);
        break;
      case 'userGroup':
        for (const o of registry.sslOrigins()) if (o.groups.includes(w.name)) origins.add(o.origin);
        break;
      case 'cidr':
        sources.push({ addr: ip4ToNumber(addrText(w.prefix.prefix)), len: w.prefix.prefix.len });
        break;
    }
  }
  return { origins: [...origins].sort((a, b) => a - b), sources };
}

function addrText(p: Prefix): string {
  return [...p.bytes.subarray(0, 4)].join('.');
}

/**
 * The data path's policy for `cfg`. `stateOf` gives each endpoint's approval state; `aclFor` the
 * ACL of each SSL origin. Registers (and forgets) origins and endpoint ids in `registry`.
 */
export function compilePolicy(
  cfg: GatewayConfig,
  registry: OriginRegistry,
  stateOf: (endpoint: EndpointConfig, service: EndpointServiceConfig) => EndpointState,
  aclFor: AclFor = unrestrictedAcl,
): CompiledPolicy {
  registry.retain(cfg);
  const endpointIds = new Map<string, number>();
  const dnsRecords = new Map<string, string>();
  const endpoints: EndpointRule[] = [];
  for (const e of cfg.endpoints) {
    const id = registry.endpoint(e.name);
    endpointIds.set(e.name, id);
    const svc = cfg.endpointServices.find((s) => s.name === e.service);
    if (!svc || svc.type !== 'interface' || e.address === null || !svc.backend) continue;
    if (e.dnsName !== null) dnsRecords.set(e.dnsName, e.address);
    const backendAddr = ip4ToNumber(svc.backend.address.text);
    const { origins, sources } = resolveWhitelist(cfg, registry, svc.whitelist);
    endpoints.push({
      id,
      address: ip4ToNumber(e.address),
      open: stateOf(e, svc) === 'ACCEPTED',
      ports: svc.ports.map((p) => ({
        protocol: p.protocol === 'tcp' ? PROTO_TCP : PROTO_UDP,
        servicePort: p.servicePort,
        backendAddr,
        backendPort: p.backendPort,
      })),
      origins,
      sources,
    });
  }
  const acls: OriginAcl[] = [];
  for (const o of registry.sslOrigins()) {
    const rules = aclFor(o.server, o.groups);
    if (rules !== null) acls.push({ origin: o.origin, rules: [...rules] });
  }
  acls.sort((a, b) => a.origin - b.origin);
  const ep = cfg.gateway.endpoints;
  const limits = ep
    ? {
      maxFlows: ep.maxFlows,
      tcpEstablishedMs: ep.tcpTimeoutSec * 1000,
      tcpTransitoryMs: Math.min(DEFAULT_POLICY_LIMITS.tcpTransitoryMs, ep.tcpTimeoutSec * 1000),
      udpMs: ep.udpTimeoutSec * 1000,
    }
    : DEFAULT_POLICY_LIMITS;
  return { policy: { endpoints, acls, limits }, endpointIds, dnsRecords };
}

/** The services with at least one endpoint (a service nobody has an endpoint of adds nothing). */
function servicesInUse(cfg: GatewayConfig): EndpointServiceConfig[] {
  return cfg.endpointServices.filter((s) => cfg.endpoints.some((e) => e.service === s.name));
}

/** Does the whitelist admit clients of VPN server `server`? */
function admitsServer(cfg: GatewayConfig, w: readonly WhitelistEntry[], server: string): boolean {
  const s = cfg.vpnServers.find((x) => x.name === server);
  if (!s) return false;
  return w.some((e) => {
    if (e.kind === 'vpnServer') return e.name === server;
    if (e.kind === 'userGroup') return cfg.users.some((u) => allowedOn(u, server) && u.groups.includes(e.name));
    if (e.kind === 'cidr') return prefixesOverlap(e.prefix.prefix, s.clientCidr.prefix);
    return false;
  });
}

/** Does the whitelist admit sites of VPN connection `conn`? */
function admitsConnection(cfg: GatewayConfig, w: readonly WhitelistEntry[], conn: string): boolean {
  const c = cfg.vpnConnections.find((x) => x.name === conn);
  if (!c) return false;
  return w.some((e) => (e.kind === 'vpnConnection' && e.name === conn)
    || (e.kind === 'cidr' && c.remoteSubnets.some((p) => prefixesOverlap(e.prefix.prefix, p.prefix))));
}

/**
 * What VPN server `server` pushes to its clients besides its localSubnets: a route to the endpoint
 * subnet when its clients are whitelisted for an interface service in use, the prefixes of the
 * gateway services in use that whitelist them, and the DNS responder (its address as the DNS server
 * and a /32 route to it) when gateway.dns is set. Routes as CIDR text, in a stable order.
 */
export function sslPushes(cfg: GatewayConfig, server: string): { routes: string[]; dns: string[] } {
  const routes: string[] = [];
  const add = (t: string): void => {
    if (!routes.includes(t)) routes.push(t);
  };
  const ep = cfg.gateway.endpoints;
  for (const s of servicesInUse(cfg)) {
    if (!admitsServer(cfg, s.whitelist, server)) continue;
    if (s.type === 'interface' && ep) add(ep.subnet.text);
    if (s.type === 'gateway') for (const p of s.prefixes) add(p.text);
  }
  const dns: string[] = [];
  if (cfg.gateway.dns) {
    dns.push(cfg.gateway.dns.address.text);
    add(`${cfg.gateway.dns.address.text}/32`);
  }
  return { routes, dns };
}

/**
 * Prefixes added to VPN connection `conn`'s local traffic selectors: the endpoint subnet when its
 * sites are whitelisted for an interface service in use, the DNS responder's /32 then too, and the
 * prefixes of gateway services in use that whitelist it; each only when the connection's
 * localSubnets do not cover it already. The customer side must include them in its remote
 * selectors (strongSwan remote_ts) to reach them.
 */
export function connectionExtraLocalTs(cfg: GatewayConfig, conn: string): Prefix[] {
  const c = cfg.vpnConnections.find((x) => x.name === conn);
  if (!c) return [];
  const out: Prefix[] = [];
  const add = (p: Prefix): void => {
    if (c.localSubnets.some((l) => inside(p, l.prefix))) return;
    if (out.some((x) => inside(p, x))) return;
    out.push(p);
  };
  const ep = cfg.gateway.endpoints;
  let interfaceAccess = false;
  for (const s of servicesInUse(cfg)) {
    if (!admitsConnection(cfg, s.whitelist, conn)) continue;
    if (s.type === 'interface' && ep) {
      add(ep.subnet.prefix);
      interfaceAccess = true;
    }
    if (s.type === 'gateway') for (const p of s.prefixes) add(p.prefix);
  }
  const dns = cfg.gateway.dns;
  if (interfaceAccess && dns) add({ family: 4, bytes: Buffer.from(dns.address.addr.bytes), len: 32 });
  return out;
}

/** Interface endpoints in the config: the daemon then runs one data-plane queue. */
export function hasInterfaceEndpoints(cfg: GatewayConfig): boolean {
  return cfg.endpoints.some((e) => e.type === 'interface');
}
