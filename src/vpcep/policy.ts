/**
 * The data path's policy: what tunnelled traffic may reach, and the VPC endpoints it reaches through
 * destination NAT. The gateway compiles its config into one DataPathPolicy (addresses as numbers, names
 * resolved to small integers) and hands it to the data plane with `DataPlane.setPolicy`; both data
 * planes (src/dataplane/ts-data-plane.ts with src/vpcep/nat.ts, and the native engine) apply the same
 * rules, described here.
 *
 * Origins. Every packet that leaves a tunnel (decrypted by an inbound ESP SA, or by an SSL VPN session)
 * carries the origin of that SA or session: a non-zero uint32 the gateway assigns (SaParams.origin,
 * SslSessionParams.origin). Origin 0 means "none" (packets JS writes for itself, SAs without one): it
 * has no ACL and is never whitelisted by origin (a source CIDR may still admit it).
 *
 * Inbound (tunnel -> TUN), per decrypted IPv4 packet with origin o:
 *   1. destination is an endpoint's address E (exact match):
 *      - endpoint not open (pending acceptance, rejected)          -> drop `endpointClosed`
 *      - o not in E.origins and the source not in any E.sources   -> drop `endpointDenied`
 *      - not TCP/UDP, or no port map for (protocol, dport)        -> drop `endpointNoPort`
 *        (ICMP errors about a translated flow are the exception: see below)
 *      - the flow (o, src, sport, E, dport, protocol) is looked up; a new one is created for UDP, and
 *        for TCP only by a SYN without ACK (other TCP segments of unknown flows -> `endpointNoFlow`);
 *        with limits.maxFlows flows alive                          -> drop `endpointTableFull`
 *      - rewritten: source E:natPort (natPort unique per (E, protocol), from 1024..65535),
 *        destination backendAddr:backendPort; IP and TCP/UDP checksums updated incrementally
 *        (RFC 1624; a UDP checksum of 0 stays 0); the packet goes to the TUN.
 *   2. otherwise, when o has an ACL (acls lists it): the packet passes only when a rule matches its
 *      destination (prefix, and protocol and destination port when the rule names them); else drop
 *      `aclDenied` (counted globally and per origin).
 *   Endpoint traffic is governed by the endpoint's whitelist alone, not by ACLs.
 *   Non-IPv4 packets skip step 1 and are subject to ACLs (an ACL with no IPv6 rules drops them).
 * Outbound (TUN -> tunnel), before the route lookup, per IPv4 packet whose destination is an
 *   endpoint's address E:
 *      - TCP/UDP: the flow by (E, protocol, dport = natPort) -> rewritten back (source E:servicePort,
 *        destination the client's src:sport) and routed as usual; no flow -> drop `endpointNoFlow`.
 *      - ICMP errors (type 3, 11, 12) whose embedded packet is E:natPort -> backend: the embedded
 *        header and the outer destination are translated back (checksums fixed) and routed.
 *      - anything else to E -> drop `endpointNoFlow`.
 * Flows expire after being idle: limits.udpMs for UDP, limits.tcpEstablishedMs for TCP flows that
 * saw a packet each way, limits.tcpTransitoryMs for TCP before that and after a FIN or RST.
 * setPolicy replaces the whole policy; flows of endpoints that are gone, closed, whose address or port
 * maps changed, or whose origin is no longer admitted are removed at once ("rejecting cuts existing
 * flows"); other flows survive.
 */

/** An IPv4 prefix: `addr` is the network address as an unsigned 32-bit number (host order). */
export interface Prefix4 {
  readonly addr: number;
  readonly len: number;
}

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export interface PortMap {
  readonly protocol: typeof PROTO_TCP | typeof PROTO_UDP;
  readonly servicePort: number;
  /** IPv4 as an unsigned 32-bit number */
  readonly backendAddr: number;
  readonly backendPort: number;
}

export interface EndpointRule {
  /** a small non-zero integer the gateway keeps stable for an endpoint; counters are keyed by it */
  readonly id: number;
  /** the endpoint's private IPv4 address (unsigned 32-bit) */
  readonly address: number;
  /** false while pending acceptance or rejected: every packet is dropped, no flow kept */
  readonly open: boolean;
  readonly ports: readonly PortMap[];
  /** origins admitted */
  readonly origins: readonly number[];
  /** sources admitted whatever their origin */
  readonly sources: readonly Prefix4[];
}

export interface AclRule {
  readonly family: 4 | 6;
  /** the destination network address: 4 or 16 bytes */
  readonly addr: Uint8Array;
  readonly len: number;
  /** 0: any protocol; else the IP protocol number (ports apply to 6 and 17 only) */
  readonly protocol: number;
  /** destination port range, inclusive; 0..65535 for any */
  readonly portLo: number;
  readonly portHi: number;
}

export interface OriginAcl {
  readonly origin: number;
  /** an empty list denies everything from that origin */
  readonly rules: readonly AclRule[];
}

export interface PolicyLimits {
  /** flows alive at once over all endpoints */
  readonly maxFlows: number;
  readonly tcpEstablishedMs: number;
  readonly tcpTransitoryMs: number;
  readonly udpMs: number;
}

export interface DataPathPolicy {
  readonly endpoints: readonly EndpointRule[];
  /** origins not listed here are unrestricted */
  readonly acls: readonly OriginAcl[];
  readonly limits: PolicyLimits;
}

export const DEFAULT_POLICY_LIMITS: PolicyLimits = {
  maxFlows: 65_536,
  tcpEstablishedMs: 2 * 3600_000,
  tcpTransitoryMs: 60_000,
  udpMs: 60_000,
};

export const EMPTY_POLICY: DataPathPolicy = { endpoints: [], acls: [], limits: DEFAULT_POLICY_LIMITS };

/** Drop reasons of the policy stage, in the order the native engine's counters use. */
export const POLICY_DROPS = [
  'aclDenied',
  'endpointClosed',
  'endpointDenied',
  'endpointNoPort',
  'endpointNoFlow',
  'endpointTableFull',
  'endpointBadPacket',
] as const;
export type PolicyDrop = (typeof POLICY_DROPS)[number];

export interface EndpointCounters {
  readonly id: number;
  /** flows alive now */
  readonly flows: number;
  /** flows created since the endpoint appeared */
  readonly flowsCreated: number;
  /** client -> backend (translated inbound) */
  readonly packetsIn: number;
  readonly bytesIn: number;
  /** backend -> client (translated outbound) */
  readonly packetsOut: number;
  readonly bytesOut: number;
  /** drops attributed to this endpoint, by reason (every endpoint* reason present) */
  readonly drops: Readonly<Record<PolicyDrop, number>>;
}

export interface PolicyCounters {
  /** every reason present */
  readonly drops: Readonly<Record<PolicyDrop, number>>;
  readonly endpoints: readonly EndpointCounters[];
  /** aclDenied per origin (origins with a non-zero count) */
  readonly aclDenied: ReadonlyMap<number, number>;
  /** flows alive now over all endpoints */
  readonly flows: number;
}

/** IPv4 text to the unsigned 32-bit number the policy uses. */
export function ip4ToNumber(text: string): number {
  const p = text.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

export function numberToIp4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** `inbound`/`outbound` verdicts: PASS, or 1 + the index of the drop reason in POLICY_DROPS. */
export const POLICY_PASS = 0;
export function policyDropCode(reason: PolicyDrop): number {
  return 1 + POLICY_DROPS.indexOf(reason);
}

/**
 * The policy stage as a sans-I/O object, one per data plane (src/vpcep/nat.ts in TypeScript; the native
 * engine has the same stage in C++ and a test wrapper with these methods). Translation rewrites
 * addresses and ports only, so a packet keeps its length and is changed in place. `now` is in ms
 * on any monotonic clock; nothing here reads a clock.
 */
export interface PolicyStageApi {
  setPolicy(p: DataPathPolicy, now: number): void;
  /** a decrypted IP packet at buf[off, off + len) from a tunnel of `origin`: POLICY_PASS (maybe rewritten) or a drop code */
  inbound(buf: Uint8Array, off: number, len: number, origin: number, now: number): number;
  /** an IP packet read from the TUN, before its route lookup: POLICY_PASS (maybe rewritten) or a drop code */
  outbound(buf: Uint8Array, off: number, len: number, now: number): number;
  /** forgets flows idle past their timeout (the data plane calls it about once a second) */
  expire(now: number): void;
  counters(): PolicyCounters;
}
