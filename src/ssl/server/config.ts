/**
 * The SSL VPN server's frozen config and the policy constants of its session manager. The gateway
 * builds the config from its YAML model (src/gateway/ssl-server.ts, `sslServerConfigFrom`).
 */
import { ConfigError } from '../../common/errors.js';
import { bytesToIp, parsePrefix } from '../../common/ip.js';
import { isSupportedDataCipher } from '../data/data-aead.js';
import type { TlsWrapConfig } from '../wire/tls-wrap.js';
import type { SslAuthType } from './authenticator.js';

// --- implementation choices ---
/** the shell's timer period; the data paths are polled (pings, native counters) at this rate */
export const TICK_MS = 250;
export const DEFAULT_PING_SEC = 10;
export const DEFAULT_PING_RESTART_SEC = 60;
export const HANDSHAKE_WINDOW_SEC = 60;
/** the server renegotiates data channel keys this often by default (OpenVPN --reneg-sec default) */
export const DEFAULT_RENEG_SEC = 3600;
/**
 * renegSec bounds: a shorter period would keep the control channel busy with TLS handshakes (the
 * handshake window of a renegotiation is HANDSHAKE_WINDOW_SEC); 10 s still lets tests watch keys roll
 */
export const MIN_RENEG_SECONDS = 10;
export const MAX_RENEG_SECONDS = 7 * 24 * 3600;
/** the stock server drops a silent client after twice the pushed ping-restart */
export const SERVER_TIMEOUT_FACTOR = 2;

export type SslProtocol = 'udp' | 'tcp';

/**
 * What an unauthenticated internet may hold on the server. A session is half-open from the
 * client's verified echo (UDP, src/ssl/server/stateless-reset.ts) or its first valid frame (TCP)
 * until it authenticates (TLS, client certificate, lease).
 */
export interface SslServerLimits {
  /** half-open sessions in total */
  readonly maxHalfOpen: number;
  /** half-open sessions per source address */
  readonly maxHalfOpenPerSource: number;
  /** a half-open session that has not authenticated after this is closed */
  readonly handshakeTimeoutSec: number;
  /** stateless hard-reset replies per second, all sources together (OpenVPN --connect-freq-initial) */
  readonly resetRepliesPerSec: number;
  /** open TCP connections in total (with or without a session) */
  readonly maxTcpConnections: number;
  /** open TCP connections per source address */
  readonly maxTcpPerSource: number;
  /** a TCP connection without a valid first frame after this is closed */
  readonly tcpFirstFrameTimeoutSec: number;
}

export const DEFAULT_LIMITS: SslServerLimits = Object.freeze({
  maxHalfOpen: 64,
  maxHalfOpenPerSource: 4,
  handshakeTimeoutSec: 20,
  resetRepliesPerSec: 100,
  maxTcpConnections: 256,
  maxTcpPerSource: 8,
  tcpFirstFrameTimeoutSec: 10,
});

/** The config's limits with the defaults filled in. */
export function limitsOf(c: SslServerConfig): SslServerLimits {
  return { ...DEFAULT_LIMITS, ...(c.limits ?? {}) };
}

/** Frozen server config (the gateway's `sslServerConfigFrom` builds it from a `vpnServers` entry). */
export interface SslServerConfig {
  readonly name: string;
  readonly protocols: readonly SslProtocol[];
  readonly port: number;
  readonly listen: string;
  readonly clientCidr: string;
  readonly localSubnets: readonly string[];
  readonly dnsServers: readonly string[];
  readonly dataCiphers: readonly string[];
  /** PEM text; clientCa is '' when no client certificates are used (auth 'password') */
  readonly identity: Readonly<{ cert: string; key: string; clientCa: string; clientCrl?: string }>;
  /** how clients authenticate (absent: 'cert') */
  readonly auth?: SslAuthType;
  readonly maxConnections: number;
  readonly clientToClient: boolean;
  /** seconds after which the server starts a renegotiation (soft reset, new key id); 0: never (the client's own --reneg-sec still applies) */
  readonly renegSec: number;
  readonly pingSec?: number;
  readonly pingRestartSec?: number;
  /** tls-auth or tls-crypt around every control packet (absent: none) */
  readonly tlsWrap?: TlsWrapConfig;
  /** pre-authentication limits; absent fields take DEFAULT_LIMITS */
  readonly limits?: Readonly<Partial<SslServerLimits>>;
  /**
   * The peer-ids this server hands out: [first, first + count). Servers that share one data plane
   * must not overlap: the data plane finds a session by peer-id alone (absent: all of 0..PEER_ID_MAX).
   */
  readonly peerIds?: Readonly<{ first: number; count: number }>;
  /** sessions one user (password login or certificate CN) may hold at once (absent: 1) */
  readonly sessionsPerUser?: number;
  /** a login beyond sessionsPerUser: replace the user's oldest session (absent) or refuse the new one */
  readonly onExtraSession?: 'replace' | 'refuse';
}

/** A pushed route in the form `route NETWORK NETMASK` wants it. */
export interface PushedRoute {
  network: string;
  netmask: string;
}

/** Checks the parts of the config the session manager relies on and turns localSubnets into pushed routes. */
export function pushedRoutesOf(c: SslServerConfig): PushedRoute[] {
  const routes = c.localSubnets.map((s, i) => {
    const p = parsePrefix(s);
    if (!p || p.family !== 4) throw new ConfigError(`vpnServers.${c.name}.localSubnets[${i}]`, s, 'an IPv4 CIDR');
    return { network: bytesToIp(p.bytes), netmask: lenToMask(p.len) };
  });
  for (const [i, name] of c.dataCiphers.entries()) {
    if (!isSupportedDataCipher(name)) throw new ConfigError(`vpnServers.${c.name}.dataCiphers[${i}]`, name, 'AES-128-GCM, AES-256-GCM or CHACHA20-POLY1305');
  }
  return routes;
}

function lenToMask(len: number): string {
  const m = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}`;
}
