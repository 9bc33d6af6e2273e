import { isIP } from 'node:net';
import { ConfigError } from '../../common/errors.js';
import { prefixesOverlap } from '../../common/ip.js';
import { isSupportedDataCipher } from '../../ssl/data/data-aead.js';
import { DEFAULT_LIMITS as SSL_DEFAULT_LIMITS, DEFAULT_RENEG_SEC as SSL_DEFAULT_RENEG_SEC, MAX_RENEG_SECONDS, MIN_RENEG_SECONDS } from '../../ssl/server/config.js';
import { formatDuration } from './duration.js';
import {
  address, addressOr, bool, duration, either, filePath, inside, int, intOr, join, list, name, object, oneOf, optional,
  prefix, proposals, readField, readNode, required, secret, str, withDefault, type AddressSpec, type Field, type Out, type PrefixSpec,
  type Node, type ReadContext,
} from './field-table.js';
import { connectionLocalIdentity, remoteIdentity, REMOTE_ID_WHAT } from './identities.js';
import { checkConnectionFamilies, publicAddressesFacing } from './families.js';
import { LocalCredentials, TrustAnchors } from './credentials.js';
import { DEFAULT_HALF_OPEN_TIMEOUT_SEC, DEFAULT_INIT_LIMITS } from '../../ike/init-guard.js';
import { DEFAULT_RETRANSMIT, IKE_FRAGMENTATION_MODES, NAT_KEEPALIVE_DEFAULT_SEC } from '../../ike/config/peer-config.js';
import { PASSWORD_HASH_FORMAT, parsePasswordHash } from '../users.js';
import { DEFAULT_RX_MODERATION_US, MAX_RX_MODERATION_US } from '../../dataplane/moderation.js';

/**
 * The config file, one field table per section. Everything about a key (type, bounds, enum
 * values, default, description) is written here once; field-table.ts reads files with it,
 * json-schema.ts publishes it, and types.ts derives the config object types from it.
 */

// ---- implementation choices (defaults and bounds) ----
export const DEFAULT_IKE_PROPOSALS = 'aes128gcm16-prfsha256-x25519';
export const DEFAULT_ESP_PROPOSALS = 'aes128gcm16';
export const DEFAULT_IKE_LIFETIME_SEC = 4 * 3600;
export const DEFAULT_ESP_LIFETIME_SEC = 3600;
export const DEFAULT_REPLAY_WINDOW = 1024;
export const DEFAULT_TUN_NAME = 'vpcgw0';
export const DEFAULT_TUN_MTU = 1400;
export const DEFAULT_SSL_PORT = 1194;
export const DEFAULT_MAX_CONNECTIONS = 100;
export const MAX_DATA_PLANE_QUEUES = 16;
// Lower bounds are below what cloud providers allow (IKE 60 s, ESP 30 s, DPD 10 s) so rekey tests can run fast.
const IKE_LIFETIME_RANGE_SEC = [10, 7 * 86400] as const;
const NAT_KEEPALIVE_MAX_SEC = 3600;
const ESP_LIFETIME_RANGE_SEC = [10, 7 * 86400] as const;
const DPD_INTERVAL_RANGE_SEC = [1, 3600] as const;
const PSK_LENGTH_RANGE = [8, 128] as const;
const MAX_SUBNETS = 50;
const MAX_PUSHED_ROUTES = 20;
const TUN_NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
/** UDP ports the gateway's IKE sockets use (RFC 7296 §2, RFC 3948 §2). */
const IKE_UDP_PORTS: readonly number[] = [500, 4500];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const START_ACTIONS = ['start', 'none', 'trap'] as const;
/** What an unanswered liveness check does (strongSwan's dpd_action); clear is the default. */
export const DPD_ACTIONS = ['clear', 'restart', 'none'] as const;
export const SSL_PROTOCOLS = ['udp', 'tcp'] as const;
/** OpenVPN data-channel ciphers the SSL server implements (src/ssl/data/data-aead.ts), in preference order. */
export const DATA_CIPHERS = ['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305'] as const;
export const SSL_AUTH_TYPES = ['cert', 'password', 'cert+password'] as const;
export const DEFAULT_ACCESS = ['allow', 'deny'] as const;
export const EXTRA_SESSION_ACTIONS = ['replace', 'refuse'] as const;
export const ACL_PROTOCOLS = ['any', 'tcp', 'udp', 'icmp'] as const;
const MAX_SESSIONS_PER_USER = 64;
const MAX_POLICY_DESTINATIONS = 100;
const MAX_PORT_RANGES = 32;

// ---- list rules ----

function prefixKey(p: PrefixSpec): string {
  return `${p.prefix.family}:${p.prefix.bytes.toString('hex')}/${p.prefix.len}`;
}

function noRepeatedPrefixes(items: PrefixSpec[], path: string): void {
  const seen = new Map<string, number>();
  items.forEach((p, i) => {
    const prev = seen.get(prefixKey(p));
    if (prev !== undefined) throw new ConfigError(join(path, i), p.text, `a prefix not already listed (it repeats ${join(path, prev)})`);
    seen.set(prefixKey(p), i);
  });
}

function noRepeatedAddresses(items: AddressSpec[], path: string): void {
  items.forEach((a, i) => {
    if (items.findIndex((b) => b.addr.bytes.equals(a.addr.bytes)) !== i) throw new ConfigError(join(path, i), a.text, 'an address not already listed');
  });
}

function eachAtMostOnce(allowed: string) {
  return (items: string[], path: string): void => {
    if (new Set(items).size !== items.length) throw new ConfigError(path, items, allowed);
  };
}

function uniqueNames(items: readonly { name: string }[], path: string): void {
  const seen = new Map<string, number>();
  items.forEach((it, i) => {
    const prev = seen.get(it.name);
    if (prev !== undefined) throw new ConfigError(join(join(path, i), 'name'), it.name, `a name not used before (${join(path, prev)} has it)`);
    seen.set(it.name, i);
  });
}

function subnets(max: number, description: string, family?: 4) {
  return list(prefix({ unicast: true, family }), 'CIDR prefixes', { min: 1, max, uniqueItems: true, check: noRepeatedPrefixes, description });
}

// ---- gateway ----

export const TUN = object({
  name: withDefault(str('an interface name of 1-15 letters, digits, "_", "-", "."', { pattern: TUN_NAME_RE }), DEFAULT_TUN_NAME),
  mtu: withDefault(int(576, 9000), DEFAULT_TUN_MTU),
  address: optional(prefix({ hostBits: true }), {
    nullable: true,
    description: 'Optional address put on the TUN, e.g. 169.254.0.1/32; host bits allowed.',
  }),
}, { description: 'The TUN device between the VPC side and the tunnels.' });

export const DATA_PLANE = object({
  queues: withDefault(intOr(1, MAX_DATA_PLANE_QUEUES, 'auto'), 'auto', {
    description: 'Queues of the native data plane: each is one TUN queue, one SO_REUSEPORT socket per 4500 address and one '
      + 'thread (the first is the main thread). "auto" picks the measured default (AUTO_QUEUES in src/dataplane/multi-queue.ts). '
      + 'The TypeScript fallback always runs one.',
  }),
  rxModerationUs: withDefault(int(0, MAX_RX_MODERATION_US), DEFAULT_RX_MODERATION_US, {
    description: 'Receive moderation of the native data plane, in microseconds (0: off), as a NIC\'s rx-usecs: a UDP socket that '
      + 'stays busy is read at most once per this period, so its datagrams are decrypted, coalesced into the TUN and answered in '
      + 'batches. Costs at most this much latency, and only while a socket is busy (src/native/engine/engine.cc).',
  }),
}, { description: 'The packet path.' });

// Thresholds for IKE_SA_INIT requests the gateway answers (src/ike/init-guard.ts has the order they apply in).
const IKE_RESPONDER_COUNT_MAX = 1_000_000;
const HALF_OPEN_TIMEOUT_RANGE_SEC = [1, 3600] as const;
const RETRANSMIT_TIMEOUT_RANGE_SEC = [1, 60] as const;
const MAX_RETRANSMIT_TRIES = 10;

export const IKE_RESPONDER = object({
  cookieThreshold: withDefault(int(0, IKE_RESPONDER_COUNT_MAX), DEFAULT_INIT_LIMITS.cookieThreshold, {
    description: 'Half-open IKE SAs in total from which every new IKE_SA_INIT must echo a COOKIE (RFC 7296 §2.6); 0: always.',
  }),
  cookieThresholdPerSource: withDefault(int(0, IKE_RESPONDER_COUNT_MAX), DEFAULT_INIT_LIMITS.cookieThresholdPerSource, {
    description: 'Half-open IKE SAs from one address from which that address must echo a COOKIE; 0: always.',
  }),
  halfOpenPerSource: withDefault(int(1, IKE_RESPONDER_COUNT_MAX), DEFAULT_INIT_LIMITS.halfOpenPerSource, {
    description: 'Half-open IKE SAs one address may hold; further IKE_SA_INITs from it are dropped.',
  }),
  halfOpenLimit: withDefault(int(1, IKE_RESPONDER_COUNT_MAX), DEFAULT_INIT_LIMITS.halfOpenLimit, {
    description: 'Half-open IKE SAs in total; further IKE_SA_INITs are dropped before any crypto.',
  }),
  halfOpenTimeout: withDefault(duration(...HALF_OPEN_TIMEOUT_RANGE_SEC), formatDuration(DEFAULT_HALF_OPEN_TIMEOUT_SEC), {
    description: 'A responder IKE SA without IKE_AUTH is dropped after this long.',
  }),
  retransmitTimeout: withDefault(duration(...RETRANSMIT_TIMEOUT_RANGE_SEC), formatDuration(DEFAULT_RETRANSMIT.timeoutMs / 1000), {
    description: 'First retransmission of an unanswered IKE request after this long; each next one waits 1.8 times longer '
      + '(strongSwan charon.retransmit_timeout and retransmit_base).',
  }),
  retransmitTries: withDefault(int(0, MAX_RETRANSMIT_TRIES), DEFAULT_RETRANSMIT.tries, {
    description: 'Retransmissions before the peer counts as gone (strongSwan charon.retransmit_tries); the IKE SA is then deleted '
      + 'and the connection\'s last error says "no answer".',
  }),
}, {
  description: 'Protection of the IKE responder against IKE_SA_INIT floods (cookies and half-open limits, RFC 8019).',
  finish: (v) => ({
    cookieThreshold: v.cookieThreshold,
    cookieThresholdPerSource: v.cookieThresholdPerSource,
    halfOpenPerSource: v.halfOpenPerSource,
    halfOpenLimit: v.halfOpenLimit,
    halfOpenTimeoutSec: v.halfOpenTimeout,
    retransmit: { timeoutMs: v.retransmitTimeout * 1000, tries: v.retransmitTries, base: DEFAULT_RETRANSMIT.base },
  }),
});

// ---- management API ----

export const DEFAULT_API_LISTEN = '127.0.0.1:9443';
const API_LISTEN_RE = /^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d{1,5})$/;

export const API = object({
  enabled: withDefault(bool('Serve the HTTPS management API.'), true),
  listen: withDefault(str('an address:port such as 127.0.0.1:9443 or [::1]:9443 (port 0: any free port)', { pattern: API_LISTEN_RE }), DEFAULT_API_LISTEN, {
    description: 'Where the HTTPS management API listens. Keep it on a private address: it can change everything.',
  }),
  cert: optional(filePath('a PEM certificate file path'), {
    nullable: true,
    description: 'The API\'s TLS certificate (PEM); omitted: a self-signed one is generated in <dataDir>/api at first start.',
  }),
  key: optional(filePath('a PEM private key file path'), { nullable: true, description: 'The private key of cert.' }),
}, {
  description: 'The HTTPS management API (REST under /v1, bearer tokens from `vpcgw token create`, /metrics, /healthz).',
  rules: 'cert and key come together.',
  finish: (v, path) => {
    const m = API_LISTEN_RE.exec(v.listen)!;
    const port = Number(m[2]);
    const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
    if (port > 65535) throw new ConfigError(join(path, 'listen'), v.listen, 'a port from 0 to 65535');
    if (!isIP(host)) throw new ConfigError(join(path, 'listen'), v.listen, 'an IP address and a port, e.g. 127.0.0.1:9443');
    if ((v.cert === null) !== (v.key === null)) {
      throw new ConfigError(join(path, v.cert === null ? 'cert' : 'key'), undefined, 'set together with ' + (v.cert === null ? 'key' : 'cert'));
    }
    return { enabled: v.enabled, listen: v.listen, host, port, cert: v.cert, key: v.key };
  },
});

// ---- VPC endpoints: the gateway's side (the endpoint subnet, flow limits, the DNS responder) ----

export const DEFAULT_ENDPOINT_MAX_FLOWS = 65_536;
const ENDPOINT_MAX_FLOWS_RANGE = [1, 4_194_304] as const;
const ENDPOINT_TIMEOUT_RANGE_SEC = [5, 7 * 86400] as const;
const MAX_DNS_UPSTREAMS = 4;

export const GATEWAY_ENDPOINTS = object({
  subnet: required(prefix({ family: 4, unicast: 'noLinkLocal', maxLen: 30 }),
    'IPv4 subnet of the endpoint addresses (e.g. 10.2.100.0/24). The gateway routes it into the TUN so the backends\' replies '
    + 'come back to the data plane; it never puts these addresses on an interface. Endpoints without an address get one from here.'),
  maxFlows: withDefault(int(...ENDPOINT_MAX_FLOWS_RANGE), DEFAULT_ENDPOINT_MAX_FLOWS, {
    description: 'Translated flows alive at once over all endpoints; new flows beyond it are dropped (endpointTableFull).',
  }),
  tcpTimeout: withDefault(duration(...ENDPOINT_TIMEOUT_RANGE_SEC), '2h', {
    description: 'An established TCP flow (a packet seen each way) is forgotten after this long idle.',
  }),
  udpTimeout: withDefault(duration(...ENDPOINT_TIMEOUT_RANGE_SEC), '60s', {
    description: 'A UDP flow is forgotten after this long idle.',
  }),
}, {
  description: 'VPC endpoints: where their addresses live and how long their translated flows are kept.',
  finish: (v) => ({ subnet: v.subnet, maxFlows: v.maxFlows, tcpTimeoutSec: v.tcpTimeout, udpTimeoutSec: v.udpTimeout }),
});

/** "ADDR", "ADDR:PORT" (IPv4), "V6" or "[V6]:PORT". */
function dnsUpstreamValid(u: string): boolean {
  if (isIP(u)) return true;
  const m = /^(?:\[([^\]]+)\]|([0-9.]+)):(\d{1,5})$/.exec(u);
  if (!m) return false;
  const port = Number(m[3]);
  return port >= 1 && port <= 65535 && (m[1] !== undefined ? isIP(m[1]) === 6 : isIP(m[2]!) === 4);
}

export const GATEWAY_DNS = object({
  address: required(address(), 'IPv4 address of the DNS responder: put on the TUN (as a /32) and pushed to SSL VPN clients '
    + '(dhcp-option DNS, plus a route to it). Endpoint dnsNames are answered here, other names are forwarded to upstream.'),
  upstream: withDefault(list(str('an IP address, optionally with :port ([v6]:port for IPv6)'),
    'DNS servers', { max: MAX_DNS_UPSTREAMS, uniqueItems: true }), [], {
    nullable: true, description: 'Resolvers that answer the names the responder does not own ("ADDR" or "ADDR:PORT", port 53 by default).',
  }),
}, {
  description: 'A small DNS responder on the gateway for the endpoints\' dnsNames.',
  finish: (v, path) => {
    if (v.address.addr.family !== 4) throw new ConfigError(join(path, 'address'), v.address.text, 'an IPv4 address');
    v.upstream.forEach((u, i) => {
      if (!dnsUpstreamValid(u)) throw new ConfigError(join(join(path, 'upstream'), i), u, 'an IP address, optionally with :port (1-65535; [v6]:port for IPv6)');
    });
    return { address: v.address, upstream: v.upstream };
  },
});

export const GATEWAY = object({
  name: withDefault(name(), 'vpcgw'),
  dataDir: withDefault(filePath('a folder path'), './var', {
    nullable: true,
    description: 'Data folder (holds the control socket).',
  }),
  publicAddresses: required(list(address(), 'IP addresses', { min: 1, uniqueItems: true, check: noRepeatedAddresses }),
    'Addresses peers reach (the "EIPs"), IPv4 or IPv6; UDP 500 and 4500 are bound on each ("::" binds both families).'),
  vpcSubnets: required(subnets(MAX_SUBNETS, 'Cloud-side subnets behind the gateway.')),
  tun: withDefault(TUN, {}),
  logLevel: withDefault(oneOf(LOG_LEVELS), 'info'),
  dataPlane: withDefault(DATA_PLANE, {}),
  ike: withDefault(IKE_RESPONDER, {}),
  api: withDefault(API, {}),
  endpoints: optional(GATEWAY_ENDPOINTS, {
    nullable: true,
    description: 'Required by endpoints of interface services; with it dataPlane.queues "auto" runs one queue (the flow table lives in one thread).',
  }),
  dns: optional(GATEWAY_DNS, { nullable: true, description: 'Omitted: no DNS responder.' }),
});

// ---- customer gateways ----

export const CUSTOMER_GATEWAY = object({
  name: required(name()),
  address: required(addressOr('%any'), 'The peer\'s IPv4 or IPv6 address (a public address of its family must exist), or "%any" (responder only; read as null).'),
  ikeId: optional(str(REMOTE_ID_WHAT), {
    nullable: true,
    description: 'IKE identity in strongSwan syntax (IP, fqdn:host, email:user@host, DN, bare name = FQDN, %any); '
      + 'defaults to the address, required when the address is "%any". With certificates it must be in the peer\'s '
      + 'certificate (its subject DN or a subjectAltName).',
  }),
  id: optional(str(REMOTE_ID_WHAT), {
    nullable: true,
    description: 'The former name of ikeId, still read from config files (a resource\'s "id" is its API id).',
  }),
  ca: optional(filePath('a PEM CA certificate file path'), {
    nullable: true,
    description: 'CA certificate(s) (PEM) the peer\'s certificate must chain to; required by connections with auth.cert.',
  }),
  crl: optional(filePath('a PEM or DER CRL file path'), {
    nullable: true,
    description: 'CRL of that CA: certificates it lists are refused. Read at load (and at every config reload).',
  }),
}, {
  rules: 'id parses as a strongSwan identity; names are unique; ca and crl are readable, the CRL is signed by the CA.',
  finish: (v, path) => {
    if (v.ikeId !== null && v.id !== null) throw new ConfigError(join(path, 'id'), v.id, `absent when ikeId is set (id is the former name of ikeId)`);
    const idPath = join(path, v.id !== null ? 'id' : 'ikeId');
    const given = v.ikeId ?? v.id;
    if (given === null && !v.address) throw new ConfigError(idPath, undefined, 'an IKE identity (required when address is "%any")');
    const id = given ?? v.address!.text;
    remoteIdentity(id, idPath);
    if (v.crl !== null && v.ca === null) throw new ConfigError(join(path, 'ca'), undefined, 'the CA file the CRL belongs to (required with crl)');
    const trust = v.ca !== null ? new TrustAnchors(v.ca, v.crl, path) : null;
    return { name: v.name, address: v.address, id, ca: v.ca, crl: v.crl, trust };
  },
});

// ---- VPN connections ----

export const AUTH = object({
  psk: optional(secret('a pre-shared key', ...PSK_LENGTH_RANGE), {
    description: 'strongSwan forms: text, 0x<hex> or 0s<base64>. Never printed or logged.',
  }),
  cert: optional(filePath('a PEM certificate file path'), {
    description: 'Our certificate (PEM; intermediates may follow it) for certificate authentication instead of psk.',
  }),
  key: optional(filePath('a PEM private key file path'), {
    description: 'The private key of cert (PEM, unencrypted): RSA or ECDSA P-256/P-384/P-521.',
  }),
}, {
  hideScalar: true,
  rules: 'either psk, or cert and key (a matching pair); certificate auth needs the customer gateway\'s ca.',
  finish: (v, path) => {
    if (v.psk !== null && (v.cert !== null || v.key !== null)) {
      throw new ConfigError(join(path, v.cert !== null ? 'cert' : 'key'), v.cert ?? v.key, 'absent when psk is set (either psk, or cert and key)');
    }
    if (v.psk === null && v.cert === null && v.key === null) {
      throw new ConfigError(join(path, 'psk'), undefined, 'a pre-shared key, or cert and key files for certificate authentication');
    }
    if (v.psk !== null) return { psk: v.psk, cert: null, key: null, credentials: null };
    if (v.cert === null) throw new ConfigError(join(path, 'cert'), undefined, 'a PEM certificate file path (required with key)');
    if (v.key === null) throw new ConfigError(join(path, 'key'), undefined, 'a PEM private key file path (required with cert)');
    return { psk: null, cert: v.cert, key: v.key, credentials: new LocalCredentials(v.cert, v.key, path) };
  },
});

export const IKE_POLICY = object({
  proposals: withDefault(proposals('ike'), DEFAULT_IKE_PROPOSALS),
  lifetime: withDefault(duration(...IKE_LIFETIME_RANGE_SEC), formatDuration(DEFAULT_IKE_LIFETIME_SEC)),
  localId: optional(str('an IKE identity'), {
    nullable: true,
    description: 'Our IKE identity (strongSwan syntax), or null to use the first public address (with auth.cert: the certificate\'s '
      + 'subject DN); required when that is 0.0.0.0 or ::.',
  }),
  fragmentation: withDefault(oneOf(IKE_FRAGMENTATION_MODES, 'RFC 7383 IKE fragmentation, as strongSwan\'s fragmentation setting: '
    + 'yes: announced, and messages larger than 1200 bytes (certificate chains) go as fragments when the peer announced it too; '
    + 'accept: announced, but our messages go whole; no: not announced. The peer\'s fragments are always accepted. '
    + '(strongSwan\'s force applies to IKEv1 only.)'), 'yes'),
  encap: withDefault(bool(), true, {
    description: 'Force UDP encapsulation of ESP (strongSwan\'s encap = yes): our NAT detection hash is faked, so the peer always '
      + 'sends ESP in UDP 4500. false: honest NAT detection (RFC 7296 §2.23), ESP in UDP when a NAT is found on the path. '
      + 'vpcgw has no raw ESP (IP protocol 50) path: with false and no NAT found, it still keeps UDP encapsulation when it '
      + 'answers (it fakes its hash then), and an IKE SA it initiated fails with a reason saying so.',
  }),
  natKeepalive: withDefault(duration(0, NAT_KEEPALIVE_MAX_SEC), formatDuration(NAT_KEEPALIVE_DEFAULT_SEC), {
    description: 'While we are behind a NAT, a NAT-keepalive (one 0xFF byte, RFC 3948 §2.3) goes to the peer\'s port 4500 after '
      + 'this long without sending to it (strongSwan\'s charon.keep_alive); 0: none.',
  }),
}, {
  finish: (v) => ({
    proposals: v.proposals.text, parsedProposals: v.proposals.parsed, lifetimeSec: v.lifetime, localId: v.localId, fragmentation: v.fragmentation,
    encap: v.encap, natKeepaliveSec: v.natKeepalive,
  }),
});

// Volume limits of a CHILD_SA (strongSwan's life_bytes/life_packets). A limit far below the
// traffic rate would rekey without pause, so a non-zero value has a floor.
const ESP_LIFETIME_BYTES_MIN = 1 << 20;
const ESP_LIFETIME_PACKETS_MIN = 1000;

function volumeFloor(v: number, path: string, min: number, unit: string): void {
  if (v !== 0 && v < min) throw new ConfigError(path, v, `0 (no limit) or at least ${min} ${unit}`);
}

export const ESP_POLICY = object({
  proposals: withDefault(proposals('esp'), DEFAULT_ESP_PROPOSALS),
  lifetime: withDefault(duration(...ESP_LIFETIME_RANGE_SEC), formatDuration(DEFAULT_ESP_LIFETIME_SEC)),
  replayWindow: withDefault(int(0, 65536), DEFAULT_REPLAY_WINDOW, { description: 'Replay window in packets; 0 disables replay protection.' }),
  lifetimeBytes: withDefault(int(0, Number.MAX_SAFE_INTEGER), 0, {
    description: `Hard limit of bytes through each direction of a CHILD_SA (strongSwan's life_bytes); 0: none, else at least `
      + `${ESP_LIFETIME_BYTES_MIN}. The gateway rekeys at 81-90 % of it (random, like rekey_bytes minus rand_bytes) and deletes `
      + 'a CHILD_SA that reaches it without a rekey.',
  }),
  lifetimePackets: withDefault(int(0, Number.MAX_SAFE_INTEGER), 0, {
    description: `Hard limit of packets through each direction of a CHILD_SA (strongSwan's life_packets); 0: none, else at least `
      + `${ESP_LIFETIME_PACKETS_MIN}. Rekeyed at 81-90 % of it, like lifetimeBytes.`,
  }),
}, {
  finish: (v, path) => {
    volumeFloor(v.lifetimeBytes, join(path, 'lifetimeBytes'), ESP_LIFETIME_BYTES_MIN, 'bytes');
    volumeFloor(v.lifetimePackets, join(path, 'lifetimePackets'), ESP_LIFETIME_PACKETS_MIN, 'packets');
    return {
      proposals: v.proposals.text, parsedProposals: v.proposals.parsed, lifetimeSec: v.lifetime, replayWindow: v.replayWindow,
      lifetimeBytes: v.lifetimeBytes, lifetimePackets: v.lifetimePackets,
    };
  },
});

export const DPD = object({
  interval: required(duration(...DPD_INTERVAL_RANGE_SEC), 'Liveness check after this long without traffic from the peer.'),
  action: withDefault(oneOf(DPD_ACTIONS,
    'clear: delete the SAs; restart: delete them and initiate again (with back-off) until the peer is back; none: only log and count.'), 'clear'),
  timeout: optional(duration(...DPD_INTERVAL_RANGE_SEC), {
    description: 'The peer counts as dead when a liveness check stays unanswered this long. Default: the IKE retransmission schedule (about 165 s).',
  }),
}, { finish: (v) => ({ intervalSec: v.interval, action: v.action, timeoutSec: v.timeout ?? 0 }) });

type CustomerGateway = Out<typeof CUSTOMER_GATEWAY>;
type Gateway = Out<typeof GATEWAY>;

export const CONNECTION_MODES = ['policy', 'route'] as const;
const MAX_CHILDREN = 20;

/**
 * One CHILD_SA of a connection, as swanctl.conf's `children { NAME { local_ts remote_ts esp_proposals } }`:
 * several subnets on one side are several traffic selectors in one TSi/TSr (RFC 7296 §2.9).
 */
export const VPN_CHILD = object({
  name: required(name(), 'Name of the CHILD_SA (status, logs, the peer-side child name it pairs with).'),
  localSubnets: required(subnets(MAX_SUBNETS, 'Cloud-side traffic selectors of this CHILD_SA; each inside gateway.vpcSubnets.')),
  remoteSubnets: required(subnets(MAX_SUBNETS, 'Customer-side traffic selectors of this CHILD_SA, routed into the TUN; none inside gateway.vpcSubnets.')),
  esp: optional(ESP_POLICY, { description: 'ESP proposals, lifetimes and replay window of this CHILD_SA. Default: the connection\'s esp.' }),
  startAction: optional(oneOf(['start', 'none'] as const,
    'start: when we initiate the connection we also create this CHILD_SA (in IKE_AUTH for the first, CREATE_CHILD_SA for the others); '
      + 'none: only the peer creates it. Default: start.')),
});

export const VPN_CONNECTION = object({
  name: required(name()),
  customerGateway: required(str('the name of a customer gateway'), 'Name of an entry of customerGateways.'),
  mode: withDefault(oneOf(CONNECTION_MODES,
    'policy: the traffic selectors (localSubnets/remoteSubnets or children) decide what enters the tunnel; '
      + 'route: one CHILD_SA 0.0.0.0/0 === 0.0.0.0/0 and the routes decide (route-based VPN).'), 'policy'),
  localSubnets: optional(subnets(MAX_SUBNETS, 'Cloud-side traffic selectors (IPv4 and/or IPv6); each inside gateway.vpcSubnets (one CHILD_SA; or use children).')),
  remoteSubnets: optional(subnets(MAX_SUBNETS, 'Customer-side traffic selectors (the same families as localSubnets), routed into the TUN; none inside gateway.vpcSubnets (one CHILD_SA; or use children).')),
  children: optional(list(VPN_CHILD, 'CHILD_SAs', { min: 1, max: MAX_CHILDREN, check: uniqueNames }), {
    description: 'Several CHILD_SAs, each with its own subnets and ESP settings; instead of localSubnets/remoteSubnets.',
  }),
  routes: optional(subnets(MAX_SUBNETS, 'Customer-side prefixes routed into this tunnel (required with mode route, not allowed otherwise); none inside gateway.vpcSubnets.')),
  auth: required(AUTH),
  ike: withDefault(IKE_POLICY, {}),
  esp: withDefault(ESP_POLICY, {}),
  startAction: optional(oneOf(START_ACTIONS, 'start: initiate at boot; none: wait for the peer; trap: initiate when traffic for remoteSubnets first arrives. Default: start, or none when the customer gateway is "%any".')),
  dpd: optional(DPD, { description: 'Omitted or null: no DPD.' }),
}, {
  rules: 'customerGateway names a customer gateway; either localSubnets and remoteSubnets (one CHILD_SA), or children, or mode route with '
    + 'routes; local subnets lie inside gateway.vpcSubnets and remote subnets and routes outside; '
    + 'no remote subnet on two connections or children; ike.localId (or the first public address of the customer gateway\'s family) parses as a strongSwan identity; '
    + 'a public address reaches the customer gateway\'s family; each child\'s local and remote subnets hold the same families (IPv4, IPv6 or both); '
    + 'with auth.cert, ike.localId defaults to the certificate\'s subject DN and must be in the certificate.',
  finish: (v, path, ctx) => {
    const gw = ctx.done.gateway as Gateway;
    const cgws = ctx.done.customerGateways as readonly CustomerGateway[];
    const peer = cgws.find((g) => g.name === v.customerGateway);
    if (!peer) {
      const known = cgws.length ? cgws.map((g) => g.name).join(', ') : 'none are defined';
      throw new ConfigError(join(path, 'customerGateway'), v.customerGateway, `the name of a customer gateway (${known})`);
    }
    const checkLocal = (list: readonly PrefixSpec[], at: string) => list.forEach((p, i) => {
      if (!gw.vpcSubnets.some((s) => inside(p.prefix, s.prefix))) {
        throw new ConfigError(join(at, i), p.text, `a prefix inside gateway.vpcSubnets (${gw.vpcSubnets.map((s) => s.text).join(', ')})`);
      }
    });
    const checkRemote = (list: readonly PrefixSpec[], at: string) => list.forEach((p, i) => {
      const hit = gw.vpcSubnets.find((s) => inside(p.prefix, s.prefix));
      if (hit) {
        throw new ConfigError(join(at, i), p.text, `a customer-side prefix, not inside the VPC subnet ${hit.text} (its route would take over VPC traffic)`);
      }
    });
    const children = connectionChildren(v, path);
    for (const [k, c] of children.entries()) {
      const at = v.children !== null ? join(join(path, 'children'), k) : path;
      checkLocal(c.localSubnets, join(at, 'localSubnets'));
      checkRemote(c.remoteSubnets, join(at, 'remoteSubnets'));
    }
    if (v.routes) checkRemote(v.routes, join(path, 'routes'));
    const startAction = v.startAction ?? (peer.address ? 'start' : 'none');
    if ((startAction === 'start' || startAction === 'trap') && !peer.address) {
      throw new ConfigError(join(path, 'startAction'), startAction, `"none": customer gateway ${peer.name} has address "%any", so we cannot initiate`);
    }
    if (startAction !== 'none' && !children.some((c) => c.startAction === 'start')) {
      throw new ConfigError(join(path, 'children'), undefined, `at least one child with startAction "start" (the connection's startAction is ${startAction})`);
    }
    const cgwIndex = cgws.indexOf(peer);
    if (v.auth.credentials && !peer.trust) {
      throw new ConfigError(`customerGateways[${cgwIndex}].ca`, undefined,
        `the CA file that signs ${peer.name}'s certificate (required: ${path} authenticates with a certificate)`);
    }
    checkConnectionFamilies(gw.publicAddresses, peer.address, [], [], path, `customerGateways[${cgwIndex}]`);
    children.forEach((c, k) => {
      const at = v.children !== null ? join(join(path, 'children'), k) : path;
      checkConnectionFamilies(gw.publicAddresses, null, c.localSubnets, c.remoteSubnets, at, `customerGateways[${cgwIndex}]`);
    });
    connectionLocalIdentity(publicAddressesFacing(gw.publicAddresses, peer.address), v.ike.localId, join(path, 'ike.localId'), v.auth.credentials);
    const routes = v.routes ?? [];
    return {
      name: v.name,
      /** Name of the customer gateway (also resolved in `peer`). */
      customerGateway: v.customerGateway,
      peer,
      /** policy: the traffic selectors pick the tunnel; route: one 0.0.0.0/0 child, `routes` pick the tunnel */
      mode: v.mode,
      /**
       * Every child's local subnets (route mode: gateway.vpcSubnets, what the VPC offers); what
       * connection-wide checks and endpoint whitelists look at.
       */
      localSubnets: v.mode === 'route' ? gw.vpcSubnets : uniquePrefixes(children.flatMap((c) => c.localSubnets)),
      /** Every prefix routed into this connection: all children's remote subnets, or `routes` in route mode. */
      remoteSubnets: v.mode === 'route' ? routes : uniquePrefixes(children.flatMap((c) => c.remoteSubnets)),
      /** The CHILD_SAs, in order (the first comes up in IKE_AUTH); one named after the connection unless `children` is given. */
      children,
      /** where each child came from in the file: `children` or the connection's own subnets (error paths) */
      explicitChildren: v.children !== null,
      routes,
      auth: v.auth,
      ike: v.ike,
      esp: v.esp,
      startAction,
      dpd: v.dpd,
    };
  },
});

type ChildIn = Out<typeof VPN_CHILD>;
type EspPolicy = Out<typeof ESP_POLICY>;

/** One CHILD_SA of a loaded connection (route mode: localSubnets/remoteSubnets are empty, its TS are 0.0.0.0/0). */
export interface VpnChildOut {
  readonly name: string;
  readonly localSubnets: readonly PrefixSpec[];
  readonly remoteSubnets: readonly PrefixSpec[];
  readonly esp: EspPolicy;
  readonly startAction: 'start' | 'none';
}

/**
 * The children a connection's fields describe: exactly one of localSubnets+remoteSubnets (one child
 * named after the connection), children, or mode route with routes (one wide child).
 */
function connectionChildren(
  v: { name: string; mode: (typeof CONNECTION_MODES)[number]; localSubnets: readonly PrefixSpec[] | null; remoteSubnets: readonly PrefixSpec[] | null;
    children: readonly ChildIn[] | null; routes: readonly PrefixSpec[] | null; esp: EspPolicy },
  path: string,
): VpnChildOut[] {
  if (v.mode === 'route') {
    for (const f of ['localSubnets', 'remoteSubnets', 'children'] as const) {
      if (v[f] !== null) {
        throw new ConfigError(join(path, f), v[f]!.length ? describeField(v[f]!) : undefined,
          'nothing: a route-based connection (mode route) negotiates 0.0.0.0/0 === 0.0.0.0/0; list the remote prefixes in routes');
      }
    }
    if (!v.routes) throw new ConfigError(join(path, 'routes'), undefined, 'the customer-side prefixes routed into the tunnel (required with mode route)');
    return [Object.freeze({ name: v.name, localSubnets: [], remoteSubnets: [], esp: v.esp, startAction: 'start' as const })];
  }
  if (v.routes !== null) {
    throw new ConfigError(join(path, 'routes'), describeField(v.routes),
      'nothing: routes belong to mode route; a policy-based connection routes its remoteSubnets');
  }
  if (v.children) {
    for (const f of ['localSubnets', 'remoteSubnets'] as const) {
      if (v[f] !== null) {
        throw new ConfigError(join(path, f), describeField(v[f]!), 'nothing: the connection has children, each with its own localSubnets and remoteSubnets');
      }
    }
    return v.children.map((c) => Object.freeze({
      name: c.name, localSubnets: c.localSubnets, remoteSubnets: c.remoteSubnets, esp: c.esp ?? v.esp, startAction: c.startAction ?? 'start',
    }));
  }
  if (!v.localSubnets) throw new ConfigError(join(path, 'localSubnets'), undefined, 'the cloud-side subnets (or children, or mode route with routes)');
  if (!v.remoteSubnets) throw new ConfigError(join(path, 'remoteSubnets'), undefined, 'the customer-side subnets (or children, or mode route with routes)');
  return [Object.freeze({ name: v.name, localSubnets: v.localSubnets, remoteSubnets: v.remoteSubnets, esp: v.esp, startAction: 'start' as const })];
}

function describeField(v: readonly (PrefixSpec | ChildIn)[]): string {
  return v.map((x) => ('text' in x ? x.text : x.name)).join(',');
}

function uniquePrefixes(list: readonly PrefixSpec[]): readonly PrefixSpec[] {
  const seen = new Set<string>();
  return list.filter((p) => {
    const k = prefixKey(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The same remote prefix on two connections would make the route (and the SPD) ambiguous. */
function remoteSubnetsDistinct(conns: readonly Out<typeof VPN_CONNECTION>[]): void {
  const seen = new Map<string, string>();
  conns.forEach((c, i) => {
    // each remote prefix with the path it was written at: routes, a child's or the connection's remoteSubnets
    const entries: { p: PrefixSpec; at: string; owner: string }[] = c.mode === 'route'
      ? c.routes.map((p, j) => ({ p, at: `vpnConnections[${i}].routes[${j}]`, owner: `vpnConnections[${i}] (${c.name})` }))
      : c.children.flatMap((ch, k) => ch.remoteSubnets.map((p, j) => c.explicitChildren
        ? { p, at: `vpnConnections[${i}].children[${k}].remoteSubnets[${j}]`, owner: `vpnConnections[${i}].children[${k}] (${c.name}/${ch.name})` }
        : { p, at: `vpnConnections[${i}].remoteSubnets[${j}]`, owner: `vpnConnections[${i}] (${c.name})` }));
    for (const { p, at, owner } of entries) {
      const prev = seen.get(prefixKey(p));
      if (prev !== undefined) throw new ConfigError(at, p.text, `a prefix no other connection or child routes (${prev} has it)`);
      seen.set(prefixKey(p), owner);
    }
  });
}

// ---- VPN servers (OpenVPN-compatible) ----

/** What unauthenticated clients may hold (src/ssl/server/config.ts SslServerLimits). */
export const SSL_LIMITS = object({
  maxHalfOpen: withDefault(int(1, 65535, 'Sessions not yet authenticated, in total.'), SSL_DEFAULT_LIMITS.maxHalfOpen),
  maxHalfOpenPerSource: withDefault(int(1, 65535, 'Sessions not yet authenticated, per source address.'), SSL_DEFAULT_LIMITS.maxHalfOpenPerSource),
  handshakeTimeoutSec: withDefault(int(1, 600, 'Seconds a new session has to authenticate.'), SSL_DEFAULT_LIMITS.handshakeTimeoutSec),
  resetRepliesPerSec: withDefault(int(1, 100000, 'Answers to new-session requests (UDP hard resets) per second.'), SSL_DEFAULT_LIMITS.resetRepliesPerSec),
  maxTcpConnections: withDefault(int(1, 65535, 'Open TCP connections in total.'), SSL_DEFAULT_LIMITS.maxTcpConnections),
  maxTcpPerSource: withDefault(int(1, 65535, 'Open TCP connections per source address.'), SSL_DEFAULT_LIMITS.maxTcpPerSource),
  tcpFirstFrameTimeoutSec: withDefault(int(1, 600, 'Seconds a TCP connection has to send a valid first packet.'), SSL_DEFAULT_LIMITS.tcpFirstFrameTimeoutSec),
});

export const VPN_SERVER = object({
  name: required(name()),
  protocols: withDefault(list(oneOf(SSL_PROTOCOLS), 'protocols (udp, tcp)', {
    min: 1, max: 2, uniqueItems: true, check: eachAtMostOnce('udp and/or tcp, each at most once'),
  }), ['udp'], { nullable: true, description: 'udp, tcp or both, on the same port.' }),
  port: withDefault(int(1, 65535), DEFAULT_SSL_PORT),
  listen: withDefault(address(), '0.0.0.0', { nullable: true, description: 'Listen address.' }),
  clientCidr: required(prefix({ family: 4, unicast: 'noLinkLocal', maxLen: 29 }),
    'Client pool (topology subnet): .1 is the gateway, clients get .2 upward.'),
  localSubnets: required(subnets(MAX_PUSHED_ROUTES, 'IPv4 subnets pushed to clients as routes.', 4)),
  dnsServers: withDefault(list(address(), 'IP addresses', { max: 2 }), [], { nullable: true }),
  dataCiphers: withDefault(list(oneOf(DATA_CIPHERS), 'data ciphers', {
    min: 1, uniqueItems: true, check: eachAtMostOnce('each cipher at most once'),
  }), [...DATA_CIPHERS], { nullable: true }),
  auth: required(object({
    type: required(oneOf(SSL_AUTH_TYPES, 'cert: client certificates signed by clientCa; the CN is the user name. '
      + 'password: no client certificate; the client\'s username/password (OpenVPN --auth-user-pass) must match a user of the users section. '
      + 'cert+password: both; the username is the user name.')),
  })),
  serverCert: required(object({
    cert: required(filePath('a PEM certificate file path')),
    key: required(filePath('a PEM private key file path')),
  }), 'PEM files; relative paths resolve against the config file\'s folder.'),
  clientCa: optional(filePath('a PEM CA certificate file path'), {
    nullable: true, description: 'The CA that signs client certificates; required with auth.type cert and cert+password, unused with password.',
  }),
  maxConnections: withDefault(int(1, 65535), DEFAULT_MAX_CONNECTIONS),
  clientToClient: withDefault(bool(), false),
  renegSeconds: withDefault(int(0, MAX_RENEG_SECONDS,
    'Seconds after which the server renegotiates the data channel keys (OpenVPN --reneg-sec); 0: only when the client asks.'),
  SSL_DEFAULT_RENEG_SEC),
  tlsCrypt: optional(filePath('an OpenVPN static key file (openvpn --genkey tls-crypt)'), {
    nullable: true, description: 'tls-crypt: every control packet encrypted and authenticated with this key; clients need the same key.',
  }),
  tlsAuth: optional(object({
    key: required(filePath('an OpenVPN static key file (openvpn --genkey tls-auth)')),
    direction: withDefault(int(0, 1, 'The server\'s key direction (clients use the other one).'), 0),
    digest: withDefault(oneOf(['SHA1', 'SHA256', 'SHA384', 'SHA512'], 'The clients\' --auth digest.'), 'SHA1'),
  }), { nullable: true, description: 'tls-auth: every control packet carries an HMAC with this key; clients need the same key.' }),
  tlsCryptV2: optional(object({
    serverKey: required(filePath('an OpenVPN tls-crypt-v2 server key file (vpcgw pki tls-crypt-v2-server, openvpn --genkey tls-crypt-v2-server)')),
  }), { nullable: true, description: 'tls-crypt-v2: per-client keys wrapped by this server key (OpenVPN 2.6 clients).' }),
  limits: optional(SSL_LIMITS, { nullable: true, description: 'Pre-authentication limits (half-open sessions, handshake timeout, TCP sockets); omitted fields take the defaults.' }),
  // -- user groups, access policies and sessions per user --
  defaultAccess: withDefault(oneOf(DEFAULT_ACCESS, 'What a client may reach when none of its user\'s groups has an access policy (or it is in no group): '
    + 'allow: everything the server routes; deny: nothing.'), 'allow'),
  sessionsPerUser: withDefault(int(1, MAX_SESSIONS_PER_USER, 'Sessions one user (password login or certificate CN) may hold at once.'), 1),
  onExtraSession: withDefault(oneOf(EXTRA_SESSION_ACTIONS, 'A login beyond sessionsPerUser: replace: the oldest session of that user is told '
    + '(HALT) and ends, as OpenVPN does without duplicate-cn; refuse: the new client gets AUTH_FAILED with the reason.'), 'replace'),
}, {
  rules: 'a UDP server avoids ports 500 and 4500; clientCidr overlaps no local, VPC or remote subnet and has room for '
    + 'maxConnections clients; no two servers share a protocol and port; names are unique.',
  finish: (v, path, ctx) => {
    const wraps = (['tlsCrypt', 'tlsAuth', 'tlsCryptV2'] as const).filter((k) => v[k]);
    if (wraps.length > 1) {
      throw new ConfigError(join(path, wraps[1]!), 'set', `one of tlsCrypt, tlsAuth and tlsCryptV2, not both ${wraps[0]} and ${wraps[1]}`);
    }
    if (!v.clientCa && v.auth.type !== 'password') {
      throw new ConfigError(join(path, 'clientCa'), v.clientCa, `a PEM CA certificate file path (auth.type ${v.auth.type} verifies client certificates with it)`);
    }
    if (v.renegSeconds > 0 && v.renegSeconds < MIN_RENEG_SECONDS) {
      throw new ConfigError(join(path, 'renegSeconds'), v.renegSeconds, `0 (off) or at least ${MIN_RENEG_SECONDS} seconds`);
    }
    if (v.protocols.includes('udp') && IKE_UDP_PORTS.includes(v.port)) {
      throw new ConfigError(join(path, 'port'), v.port, 'a UDP port other than 500 and 4500 (IKE uses them)');
    }
    const gw = ctx.done.gateway as Gateway;
    const conns = ctx.done.vpnConnections as readonly Out<typeof VPN_CONNECTION>[];
    const cidrPath = join(path, 'clientCidr');
    const clientCidr = v.clientCidr;
    const clash = [
      ...v.localSubnets.map((p) => ({ p, where: `${path}.localSubnets` })),
      ...gw.vpcSubnets.map((p) => ({ p, where: 'gateway.vpcSubnets' })),
      ...conns.flatMap((c, i) => c.remoteSubnets.map((p) => ({ p, where: `vpnConnections[${i}].remoteSubnets` }))),
    ].find(({ p }) => prefixesOverlap(p.prefix, clientCidr.prefix));
    if (clash) {
      throw new ConfigError(cidrPath, clientCidr.text, `a client pool that does not overlap ${clash.p.text} in ${clash.where}`);
    }
    // topology subnet: the network address, the server's own address and the broadcast address are not leased
    const usable = 2 ** (32 - clientCidr.prefix.len) - 3;
    if (usable < v.maxConnections) {
      throw new ConfigError(cidrPath, clientCidr.text, `a pool with at least ${v.maxConnections} client addresses (maxConnections); this one has ${usable}`);
    }
    // the SSL server refuses a cipher its data channel lacks; DATA_CIPHERS should only list those
    v.dataCiphers.forEach((c, i) => {
      if (!isSupportedDataCipher(c)) throw new ConfigError(join(join(path, 'dataCiphers'), i), c, `a data cipher this build implements`);
    });
    return v;
  },
});

function serverPortsDistinct(servers: readonly Out<typeof VPN_SERVER>[]): void {
  const seen = new Map<string, number>();
  servers.forEach((s, i) => {
    for (const proto of s.protocols) {
      const key = `${proto}/${s.port}`;
      const prev = seen.get(key);
      if (prev !== undefined) throw new ConfigError(`vpnServers[${i}].port`, s.port, `a ${proto} port not used by vpnServers[${prev}]`);
      seen.set(key, i);
    }
  });
}

// ---- user groups (SSL VPN) ----

export const USER_GROUP = object({
  name: required(name('The group name users list in their groups.')),
  description: optional(str('a description'), { nullable: true }),
}, { description: 'A group of SSL VPN users; access policies allow a group destinations.' });

type UserGroup = Out<typeof USER_GROUP>;

/** Refuses a group name that is not defined (`ctx.done.userGroups` is absent when one entry is read alone). */
function knownGroup(group: string, path: string, ctx: ReadContext): void {
  const groups = ctx.done.userGroups as readonly UserGroup[] | undefined;
  if (!groups || groups.some((g) => g.name === group)) return;
  const known = groups.length ? groups.map((g) => g.name).join(', ') : 'none are defined';
  throw new ConfigError(path, group, `the name of a user group (${known})`);
}

// ---- users (SSL VPN logins by username/password) ----

export const USER = object({
  name: required(name('The login name (OpenVPN --auth-user-pass username).')),
  passwordHash: required(secret(`a password hash (${PASSWORD_HASH_FORMAT})`, 1, 1024,
    'The scrypt hash of the password. The API and CLI take a write-only `password` instead and store its hash; neither is ever shown.')),
  disabled: withDefault(bool('A disabled user cannot log in (its stored password stays); disabling ends the user\'s sessions at once.'), false),
  groups: withDefault(list(name(), 'group names', { uniqueItems: true }), [], {
    nullable: true, description: 'Names of userGroups entries: the user may reach what their access policies allow.',
  }),
  servers: optional(list(name(), 'vpn server names', { uniqueItems: true }), {
    nullable: true, description: 'The vpnServers this user may log in to; all of them when omitted.',
  }),
  staticAddress: optional(address(), {
    nullable: true,
    description: 'The IPv4 address this user always gets: inside the clientCidr of a server the user may log in to (not its first '
      + 'address, the server\'s, nor the broadcast address), held by no other user; that server never hands it to anyone else.',
  }),
}, {
  rules: 'groups name userGroups entries; staticAddress lies inside the client pool of one of the user\'s servers and is unique.',
  finish: (v, path, ctx) => {
    if (!parsePasswordHash(v.passwordHash.reveal())) throw new ConfigError(join(path, 'passwordHash'), '(hidden)', `a password hash (${PASSWORD_HASH_FORMAT})`);
    v.groups.forEach((g, i) => knownGroup(g, join(join(path, 'groups'), i), ctx));
    if (v.staticAddress) staticAddressFits(v.staticAddress, v.servers, join(path, 'staticAddress'), ctx);
    return v;
  },
});

/** A user's static address: IPv4, a client address of the pool of at least one server the user may use. */
function staticAddressFits(a: AddressSpec, servers: readonly string[] | null, path: string, ctx: ReadContext): void {
  if (a.addr.family !== 4) throw new ConfigError(path, a.text, 'an IPv4 address (client pools are IPv4)');
  const all = ctx.done.vpnServers as readonly Out<typeof VPN_SERVER>[] | undefined;
  if (!all) return; // one entry read alone: the whole config is checked before it is applied
  const mine = all.filter((s) => !servers || servers.includes(s.name));
  const n = a.addr.bytes.readUInt32BE(0);
  const fits = mine.some((s) => {
    const p = s.clientCidr.prefix;
    const base = p.bytes.readUInt32BE(0);
    const last = base + 2 ** (32 - p.len) - 1;
    return n >= base + 2 && n < last; // not the network, the server's own (.1) or the broadcast address
  });
  if (!fits) {
    const pools = mine.map((s) => `${s.name} ${s.clientCidr.text}`).join(', ') || 'no vpn server is defined';
    throw new ConfigError(path, a.text, `a client address inside the pool of a server the user may log in to (${pools}), not its first two or its broadcast address`);
  }
}

function staticAddressesDistinct(users: readonly Out<typeof USER>[], path: string): void {
  const seen = new Map<string, number>();
  users.forEach((u, i) => {
    if (!u.staticAddress) return;
    const prev = seen.get(u.staticAddress.text);
    if (prev !== undefined) {
      throw new ConfigError(join(join(path, i), 'staticAddress'), u.staticAddress.text, `an address no other user holds (${join(path, prev)} has it)`);
    }
    seen.set(u.staticAddress.text, i);
  });
}

// ---- access policies (what a user group may reach) ----

const PORT_RANGE_RE = /^(\d{1,5})(?:-(\d{1,5}))?$/;
const PORT_RANGE = str('a port or a port range like "8000-8100"', { pattern: PORT_RANGE_RE });
const PORTS = either('a port (443), a range ("8000-8100"), or a list of them',
  int(1, 65535), PORT_RANGE, list(either('a port or a range', int(1, 65535), PORT_RANGE), 'ports or port ranges', { min: 1, max: MAX_PORT_RANGES }));

export type AclProtocol = (typeof ACL_PROTOCOLS)[number];

/** One destination of an access policy, as the gateway reads it. */
export interface PolicyDestination {
  /** the prefix as written */
  readonly text: string;
  readonly prefix: PrefixSpec['prefix'];
  readonly protocol: AclProtocol;
  /** inclusive port ranges (tcp and udp only); null: any port */
  readonly ports: readonly { readonly lo: number; readonly hi: number }[] | null;
}

function portRange(v: number | string, path: string): { lo: number; hi: number } {
  if (typeof v === 'number') return { lo: v, hi: v };
  const m = PORT_RANGE_RE.exec(v)!;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > hi) throw new ConfigError(path, v, 'ports from 1 to 65535, the first of a range not above the last');
  return { lo, hi };
}

const DESTINATION = either('a CIDR prefix, or a mapping with keys cidr, protocol, ports',
  prefix(),
  object({
    cidr: required(prefix(), 'The destination network.'),
    protocol: withDefault(oneOf(ACL_PROTOCOLS), 'any'),
    ports: optional(PORTS, { nullable: true, description: 'Destination ports (tcp and udp only); omitted: all.' }),
  }, {
    finish: (v, path): PolicyDestination => {
      let ports: { lo: number; hi: number }[] | null = null;
      if (v.ports !== null) {
        if (v.protocol !== 'tcp' && v.protocol !== 'udp') {
          throw new ConfigError(join(path, 'ports'), v.ports, `absent: ports apply to protocol tcp or udp (this one is ${v.protocol})`);
        }
        const items = Array.isArray(v.ports) ? v.ports : [v.ports];
        ports = items.map((x, i) => portRange(x as number | string, Array.isArray(v.ports) ? join(join(path, 'ports'), i) : join(path, 'ports')));
      }
      return { text: v.cidr.text, prefix: v.cidr.prefix, protocol: v.protocol, ports };
    },
  }));

export const ACCESS_POLICY = object({
  name: required(name()),
  group: required(name('The userGroups entry this policy is for.')),
  destinations: required(list(DESTINATION, 'destinations', { min: 1, max: MAX_POLICY_DESTINATIONS }),
    'What the group\'s users may reach: CIDR prefixes, or { cidr, protocol: tcp|udp|icmp|any, ports: "443" | "8000-8100" | [..] }.'),
  description: optional(str('a description'), { nullable: true }),
}, {
  description: 'Allows a user group destinations. A user may reach the union of their groups\' policies; '
    + 'a user none of whose groups has a policy falls under the server\'s defaultAccess.',
  rules: 'group names a userGroups entry.',
  finish: (v, path, ctx) => {
    knownGroup(v.group, join(path, 'group'), ctx);
    const destinations: PolicyDestination[] = v.destinations.map((d) =>
      'protocol' in d ? (d as PolicyDestination) : { text: d.text, prefix: d.prefix, protocol: 'any', ports: null });
    return { name: v.name, group: v.group, destinations, description: v.description };
  },
});


// ---- VPC endpoint services and endpoints ----

export const ENDPOINT_SERVICE_TYPES = ['interface', 'gateway'] as const;
export const ENDPOINT_PROTOCOLS = ['tcp', 'udp'] as const;
export const WHITELIST_KINDS = ['vpnConnection', 'vpnServer', 'userGroup'] as const;
const MAX_PORT_MAPS = 200;
const MAX_WHITELIST = 100;
const DESCRIPTION_RE = /^[^<>]{0,128}$/;
const DNS_NAME_RE = /^(?=.{1,253}\.?$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+\.?$/;
const WHITELIST_WHAT = '"vpnConnection:NAME", "vpnServer:NAME", "userGroup:NAME" or an IPv4 CIDR';

function description(): Field<string, 'optional'> {
  return optional(str('a text of up to 128 characters without < or >', { pattern: DESCRIPTION_RE }), { nullable: true });
}

export const PORT_MAP = object({
  protocol: required(oneOf(ENDPOINT_PROTOCOLS)),
  servicePort: required(int(1, 65535, 'The port clients connect to on the endpoint address.')),
  backendPort: required(int(1, 65535, 'The port of the backend it is translated to.')),
});

/** One whitelist entry as read: who may use the service's endpoints. */
export type WhitelistEntry =
  | { readonly text: string; readonly kind: (typeof WHITELIST_KINDS)[number]; readonly name: string }
  | { readonly text: string; readonly kind: 'cidr'; readonly prefix: PrefixSpec };

function readWhitelistEntry(text: string, path: string, ctx: ReadContext): WhitelistEntry {
  const colon = text.indexOf(':');
  const kind = colon > 0 ? text.slice(0, colon) : '';
  if ((WHITELIST_KINDS as readonly string[]).includes(kind)) {
    const n = text.slice(colon + 1);
    const k = kind as (typeof WHITELIST_KINDS)[number];
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(n)) throw new ConfigError(path, text, `${kind}: followed by a name`);
    const known = k === 'vpnConnection' ? (ctx.done.vpnConnections as readonly { name: string }[])
      : k === 'vpnServer' ? (ctx.done.vpnServers as readonly { name: string }[]) : null;
    if (known && !known.some((x) => x.name === n)) {
      const names = known.length ? known.map((x) => x.name).join(', ') : 'none are defined';
      throw new ConfigError(path, text, `the name of a ${k === 'vpnConnection' ? 'VPN connection' : 'VPN server'} (${names})`);
    }
    return { text, kind: k, name: n };
  }
  if (!text.includes('/') || colon >= 0) throw new ConfigError(path, text, WHITELIST_WHAT);
  const p = readNode(prefix({ family: 4 }), text, path, ctx) as PrefixSpec;
  return { text, kind: 'cidr', prefix: p };
}

export const ENDPOINT_SERVICE = object({
  name: required(name()),
  type: withDefault(oneOf(ENDPOINT_SERVICE_TYPES, 'interface: reached through endpoint addresses (destination and source NAT to the backend); '
    + 'gateway: no NAT, its prefixes are added to what whitelisted tunnels reach (routes pushed, local traffic selectors).'), 'interface'),
  backend: optional(object({
    address: required(address(), 'The backend\'s IPv4 address in the VPC.'),
  }), { description: 'Interface services: where the traffic goes.' }),
  ports: withDefault(list(PORT_MAP, 'port maps', { max: MAX_PORT_MAPS }), [], {
    nullable: true, description: 'Interface services: the ports of the endpoint address and the backend ports they map to; no (protocol, servicePort) twice.',
  }),
  approvalRequired: withDefault(bool('New endpoints wait in PENDING_ACCEPTANCE until the service owner accepts them (connections/action receive).'), false),
  whitelist: withDefault(list(str(WHITELIST_WHAT), 'whitelist entries', { max: MAX_WHITELIST, uniqueItems: true }), [], {
    nullable: true,
    description: 'Who may reach the endpoints: a VPN connection (its sites), a VPN server (all its clients), a user group (SSL VPN users in it), '
      + 'or a source CIDR. Empty: nobody.',
  }),
  prefixes: withDefault(subnetsOrNone(), [], { nullable: true, description: 'Gateway services: the service\'s IPv4 prefixes.' }),
  description: description(),
}, {
  rules: 'interface services have a backend (IPv4) and at least one port map, and no prefixes; gateway services have prefixes and neither; '
    + 'whitelisted VPN connections and servers exist.',
  finish: (v, path, ctx) => {
    if (v.type === 'interface') {
      if (!v.backend) throw new ConfigError(join(path, 'backend'), undefined, 'a mapping with key address (required by an interface service)');
      if (v.backend.address.addr.family !== 4) throw new ConfigError(join(path, 'backend.address'), v.backend.address.text, 'an IPv4 address');
      if (v.ports.length === 0) throw new ConfigError(join(path, 'ports'), v.ports, 'a list of at least 1 port maps (required by an interface service)');
      if (v.prefixes.length > 0) throw new ConfigError(join(path, 'prefixes'), v.prefixes.map((p) => p.text), 'absent: prefixes belong to gateway services');
      const seen = new Map<string, number>();
      v.ports.forEach((m, i) => {
        const key = `${m.protocol}/${m.servicePort}`;
        const prev = seen.get(key);
        if (prev !== undefined) throw new ConfigError(join(join(path, 'ports'), i), key, `a (protocol, servicePort) not already mapped (ports[${prev}] has it)`);
        seen.set(key, i);
      });
    } else {
      if (v.backend) throw new ConfigError(join(path, 'backend'), v.backend.address.text, 'absent: a gateway service has no backend (no NAT)');
      if (v.ports.length > 0) throw new ConfigError(join(path, 'ports'), v.ports.length, 'absent: a gateway service has no port maps');
      if (v.prefixes.length === 0) throw new ConfigError(join(path, 'prefixes'), v.prefixes, 'a list of at least 1 IPv4 prefix (required by a gateway service)');
    }
    const whitelist = v.whitelist.map((t, i) => readWhitelistEntry(t, join(join(path, 'whitelist'), i), ctx));
    return {
      name: v.name,
      type: v.type,
      backend: v.backend,
      ports: v.ports,
      approvalRequired: v.approvalRequired,
      whitelist,
      prefixes: v.prefixes,
      description: v.description,
    };
  },
});

function subnetsOrNone() {
  return list(prefix({ unicast: true, family: 4 }), 'CIDR prefixes', { max: MAX_SUBNETS, uniqueItems: true, check: noRepeatedPrefixes });
}

type EndpointService = Out<typeof ENDPOINT_SERVICE>;

export const ENDPOINT = object({
  name: required(name()),
  service: required(name('The name of an entry of endpointServices.')),
  address: optional(address(), {
    nullable: true,
    description: 'Interface services: the endpoint\'s private IPv4 address, inside gateway.endpoints.subnet; omitted: one is allocated there '
      + '(from a hash of the name, so it stays the same while the endpoint exists).',
  }),
  dnsName: optional(str('a DNS name such as web.endpoint.internal', { pattern: DNS_NAME_RE }), {
    nullable: true, description: 'Interface services: a name the gateway\'s DNS responder (gateway.dns) answers with the address.',
  }),
  description: description(),
}, {
  rules: 'service names an endpoint service; an interface service\'s endpoint lies in gateway.endpoints.subnet, its address is unique and not '
    + 'the subnet\'s network, broadcast or any gateway address; gateway services\' endpoints have neither address nor dnsName.',
  finish: (v, path, ctx) => {
    const services = (ctx.done.endpointServices ?? []) as readonly EndpointService[];
    const svc = services.find((s) => s.name === v.service);
    if (!svc) {
      const known = services.length ? services.map((s) => s.name).join(', ') : 'none are defined';
      throw new ConfigError(join(path, 'service'), v.service, `the name of an endpoint service (${known})`);
    }
    if (svc.type === 'gateway') {
      if (v.address) throw new ConfigError(join(path, 'address'), v.address.text, `absent: service ${svc.name} is a gateway service (no endpoint address)`);
      if (v.dnsName) throw new ConfigError(join(path, 'dnsName'), v.dnsName, `absent: service ${svc.name} is a gateway service (no endpoint address)`);
      return { name: v.name, service: v.service, type: svc.type, address: null as string | null, dnsName: null as string | null, description: v.description };
    }
    const gw = ctx.done.gateway as Gateway;
    const ep = gw.endpoints;
    if (!ep) throw new ConfigError('gateway.endpoints', undefined, `a mapping with key subnet (required: ${path} is an endpoint of the interface service ${svc.name})`);
    if (v.address) {
      const a = v.address.addr;
      if (a.family !== 4) throw new ConfigError(join(path, 'address'), v.address.text, 'an IPv4 address');
      if (!inside({ family: 4, bytes: a.bytes, len: 32 }, ep.subnet.prefix)) {
        throw new ConfigError(join(path, 'address'), v.address.text, `an address inside gateway.endpoints.subnet (${ep.subnet.text})`);
      }
      const host = ipv4Number(a.bytes);
      const net = ipv4Number(ep.subnet.prefix.bytes);
      const last = net + 2 ** (32 - ep.subnet.prefix.len) - 1;
      if (host === net || host === last) {
        throw new ConfigError(join(path, 'address'), v.address.text, `a host address of ${ep.subnet.text} (not its network or broadcast address)`);
      }
    }
    return {
      name: v.name,
      service: v.service,
      type: svc.type,
      /** IPv4 text; set for interface endpoints (allocated by `endpointsRules` when omitted) */
      address: v.address?.text ?? null,
      dnsName: v.dnsName ? v.dnsName.toLowerCase().replace(/\.$/, '') : null,
      description: v.description,
    };
  },
});

type Endpoint = Out<typeof ENDPOINT>;

function ipv4Number(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

function ipv4Text(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** FNV-1a over the name: where an endpoint's address allocation starts looking. */
function nameHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Rules across the endpoints: addresses allocated for those without one (from a hash of the name,
 * probing upward on a clash, so an endpoint keeps its address while others come and go, unless it
 * clashed), addresses and DNS names unique, no clash with addresses the gateway owns (the TUN address,
 * the DNS responder, the SSL VPN pools' server addresses), and one data-plane queue.
 */
function endpointsRules(items: Endpoint[], path: string, ctx: ReadContext): void {
  uniqueNames(items, path);
  const gw = ctx.done.gateway as Gateway;
  const servers = (ctx.done.vpnServers ?? []) as readonly Out<typeof VPN_SERVER>[];
  const conns = (ctx.done.vpnConnections ?? []) as readonly Out<typeof VPN_CONNECTION>[];
  const ep = gw.endpoints;
  const iface = items.filter((e) => e.type === 'interface');
  if (ep) {
    const clash = [
      ...servers.map((s, i) => ({ p: s.clientCidr, where: `vpnServers[${i}].clientCidr` })),
      ...conns.flatMap((c, i) => c.remoteSubnets.map((p) => ({ p, where: `vpnConnections[${i}].remoteSubnets` }))),
    ].find(({ p }) => prefixesOverlap(p.prefix, ep.subnet.prefix));
    if (clash) throw new ConfigError('gateway.endpoints.subnet', ep.subnet.text, `a subnet that does not overlap ${clash.p.text} in ${clash.where}`);
    const tunAddr = gw.tun.address;
    if (tunAddr && tunAddr.prefix.family === 4 && (inside(tunAddr.prefix, ep.subnet.prefix) || inside(ep.subnet.prefix, tunAddr.prefix))) {
      throw new ConfigError('gateway.tun.address', tunAddr.text, `an address outside gateway.endpoints.subnet (${ep.subnet.text}): the kernel would answer for the endpoints`);
    }
  }
  const queues = gw.dataPlane.queues;
  if (iface.length > 0 && queues !== 'auto' && queues > 1) {
    throw new ConfigError('gateway.dataPlane.queues', queues, `"auto" or 1: VPC endpoints (${join(path, items.indexOf(iface[0]!))}) keep their flow table in one data-plane thread`);
  }
  // addresses an endpoint must not take: the gateway's own, and the backends' (replies would loop)
  const owned = new Map<number, string>();
  if (gw.dns) owned.set(ipv4Number(gw.dns.address.addr.bytes), 'gateway.dns.address');
  gw.publicAddresses.forEach((a, i) => {
    if (a.addr.family === 4) owned.set(ipv4Number(a.addr.bytes), `gateway.publicAddresses[${i}]`);
  });
  const services = (ctx.done.endpointServices ?? []) as readonly EndpointService[];
  services.forEach((svc, i) => {
    if (svc.backend && svc.backend.address.addr.family === 4) owned.set(ipv4Number(svc.backend.address.addr.bytes), `endpointServices[${i}].backend.address`);
  });
  const used = new Map<number, number>();
  items.forEach((e, i) => {
    if (e.address === null) return;
    const n = ipv4Number(parseIpv4Bytes(e.address));
    const at = join(join(path, i), 'address');
    const own = owned.get(n);
    if (own) throw new ConfigError(at, e.address, `an address the gateway does not own (${own} has it)`);
    const prev = used.get(n);
    if (prev !== undefined) throw new ConfigError(at, e.address, `an address no other endpoint has (${join(path, prev)} has it)`);
    used.set(n, i);
  });
  if (ep) {
    const net = ipv4Number(ep.subnet.prefix.bytes);
    const size = 2 ** (32 - ep.subnet.prefix.len);
    items.forEach((e, i) => {
      if (e.type !== 'interface' || e.address !== null) return;
      const hosts = size - 2;
      const start = nameHash(e.name) % hosts;
      for (let k = 0; k < hosts; k++) {
        const n = net + 1 + ((start + k) % hosts);
        if (used.has(n) || owned.has(n)) continue;
        used.set(n, i);
        (e as { address: string | null }).address = ipv4Text(n);
        return;
      }
      throw new ConfigError(join(join(path, i), 'address'), undefined, `an address: gateway.endpoints.subnet ${ep.subnet.text} has no free one left`);
    });
  }
  const names = new Map<string, number>();
  items.forEach((e, i) => {
    if (e.dnsName === null) return;
    const prev = names.get(e.dnsName);
    if (prev !== undefined) throw new ConfigError(join(join(path, i), 'dnsName'), e.dnsName, `a name no other endpoint has (${join(path, prev)} has it)`);
    names.set(e.dnsName, i);
  });
}

function parseIpv4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

// ---- the whole file ----

/** The sections of the config file, in the order they are read (later ones refer to earlier ones). */
export const CONFIG = object({
  gateway: required(GATEWAY),
  customerGateways: withDefault(list(CUSTOMER_GATEWAY, 'customer gateways', { check: uniqueNames }), [], { nullable: true }),
  vpnConnections: withDefault(list(VPN_CONNECTION, 'VPN connections', {
    check: (items, path) => {
      uniqueNames(items, path);
      remoteSubnetsDistinct(items);
    },
  }), [], { nullable: true }),
  vpnServers: withDefault(list(VPN_SERVER, 'VPN servers', {
    check: (items, path) => {
      uniqueNames(items, path);
      serverPortsDistinct(items);
    },
  }), [], { nullable: true }),
  userGroups: withDefault(list(USER_GROUP, 'user groups', { check: uniqueNames }), [], { nullable: true }),
  users: withDefault(list(USER, 'users', {
    check: (items, path) => {
      uniqueNames(items, path);
      staticAddressesDistinct(items, path);
    },
  }), [], { nullable: true }),
  accessPolicies: withDefault(list(ACCESS_POLICY, 'access policies', { check: uniqueNames }), [], { nullable: true }),
  endpointServices: withDefault(list(ENDPOINT_SERVICE, 'endpoint services', { check: uniqueNames }), [], { nullable: true }),
  endpoints: withDefault(list(ENDPOINT, 'endpoints', { check: endpointsRules }), [], { nullable: true }),
});

export type SectionName = keyof typeof CONFIG_SECTIONS;
export const CONFIG_SECTIONS = {
  gateway: GATEWAY,
  customerGateways: CUSTOMER_GATEWAY,
  vpnConnections: VPN_CONNECTION,
  vpnServers: VPN_SERVER,
  users: USER,
  userGroups: USER_GROUP,
  accessPolicies: ACCESS_POLICY,
  endpointServices: ENDPOINT_SERVICE,
  endpoints: ENDPOINT,
} as const;

/** Reads a parsed YAML tree with the tables; throws the first ConfigError. */
export function readConfig(raw: unknown, ctx: ReadContext): Out<typeof CONFIG> {
  return readField(required(CONFIG), raw, '', ctx) as Out<typeof CONFIG>;
}

/**
 * Reads one section or one entry of a list section (a management API request body) with the same
 * table, rules and errors as the file loader; `current` supplies the sections it refers to (a
 * connection's customer gateway, a server's overlap checks). Rules across a whole list (unique
 * names, ports) need the merged config: load it again with `readConfig` before applying it.
 */
export function readEntry<S extends SectionName>(
  section: S,
  raw: unknown,
  current: {
    readonly gateway: unknown; readonly customerGateways: unknown; readonly vpnConnections: unknown;
    readonly vpnServers?: unknown; readonly endpointServices?: unknown;
  },
  baseDir: string,
  path: string = section,
): Out<(typeof CONFIG_SECTIONS)[S]> {
  const done = {
    gateway: current.gateway, customerGateways: current.customerGateways, vpnConnections: current.vpnConnections,
    vpnServers: current.vpnServers ?? [], endpointServices: current.endpointServices ?? [],
  };
  const node: Node = CONFIG_SECTIONS[section];
  return readField(required(node), raw, path, { baseDir, done }) as Out<(typeof CONFIG_SECTIONS)[S]>;
}
