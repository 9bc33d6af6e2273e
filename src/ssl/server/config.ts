/**
 * The SSL VPN server's frozen config and the policy constants of its session manager. The gateway
 * builds the config from its YAML model (src/gateway/ssl-server.ts, `sslServerConfigFrom`).
 */
import { ConfigError } from '../../common/errors.js';
import { bytesToIp, parsePrefix } from '../../common/ip.js';
import { isSupportedDataCipher } from '../data/data-aead.js';

// --- implementation choices ---
/** the shell's timer period; the data paths are polled (pings, native counters) at this rate */
export const TICK_MS = 250;
export const DEFAULT_PING_SEC = 10;
export const DEFAULT_PING_RESTART_SEC = 60;
export const HANDSHAKE_WINDOW_SEC = 60;
/** the stock server drops a silent client after twice the pushed ping-restart */
export const SERVER_TIMEOUT_FACTOR = 2;

export type SslProtocol = 'udp' | 'tcp';

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
  readonly identity: Readonly<{ cert: string; key: string; clientCa: string }>; // PEM text
  readonly maxConnections: number;
  readonly clientToClient: boolean;
  readonly renegSec: number;
  readonly pingSec?: number;
  readonly pingRestartSec?: number;
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
