import type { IpAddr, Prefix } from '../../common/ip.js';
import type { Secret } from './secret.js';
import type { ParsedProposals } from './proposals.js';

/**
 * The validated, frozen configuration (config objects in STYLE §4): built once by
 * `parseConfig`/`loadConfigFile`, then shared read-only. Durations are whole seconds (`...Sec`),
 * prefixes keep their original text next to the parsed form, secrets are `Secret` values.
 */
export interface GatewayConfig {
  /** Where the config came from (file path or a label), for messages. */
  readonly source: string;
  readonly gateway: GatewaySection;
  readonly customerGateways: readonly CustomerGatewayConfig[];
  readonly vpnConnections: readonly VpnConnectionConfig[];
  readonly vpnServers: readonly VpnServerConfig[];
}

export interface PrefixSpec {
  /** As written in the file ("10.2.0.0/16"). */
  readonly text: string;
  readonly prefix: Prefix;
}

export interface AddressSpec {
  readonly text: string;
  readonly addr: IpAddr;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface TunConfig {
  readonly name: string;
  readonly mtu: number;
  /** Optional address put on the TUN, e.g. 169.254.0.1/32; host bits allowed. */
  readonly address: PrefixSpec | null;
}

/** The packet path (issue 3: one queue per core). */
export interface DataPlaneConfig {
  /**
   * Queues of the native data plane: each is one TUN queue, one SO_REUSEPORT socket per 4500
   * address and one thread (the first is the main thread). `auto` picks the measured default
   * (AUTO_QUEUES in src/dataplane/multi-queue.ts). The TypeScript fallback always runs one.
   */
  readonly queues: number | 'auto';
}

export interface GatewaySection {
  readonly name: string;
  /** Absolute path (relative paths are resolved against the config file's folder). */
  readonly dataDir: string;
  /** Addresses peers reach (the "EIPs"); UDP 500 and 4500 are bound on each. */
  readonly publicAddresses: readonly AddressSpec[];
  /** Cloud-side subnets behind the gateway. */
  readonly vpcSubnets: readonly PrefixSpec[];
  readonly tun: TunConfig;
  readonly logLevel: LogLevel;
  readonly dataPlane: DataPlaneConfig;
}

export interface CustomerGatewayConfig {
  readonly name: string;
  /** The peer's address, or null for "%any" (responder only). */
  readonly address: AddressSpec | null;
  /** IKE identity in strongSwan syntax (IP, fqdn:host, email:user@host, DN, bare name = FQDN); unparsed. */
  readonly id: string;
}

export type StartAction = 'start' | 'none';

export interface IkePolicyConfig {
  readonly proposals: string;
  readonly parsedProposals: ParsedProposals;
  readonly lifetimeSec: number;
  /** Our IKE identity (strongSwan syntax), or null to use the public address the SA runs on. */
  readonly localId: string | null;
}

export interface EspPolicyConfig {
  readonly proposals: string;
  readonly parsedProposals: ParsedProposals;
  readonly lifetimeSec: number;
  /** Replay window in packets; 0 disables replay protection. */
  readonly replayWindow: number;
}

export interface DpdConfig {
  readonly intervalSec: number;
}

export interface VpnConnectionConfig {
  readonly name: string;
  /** Name of the customer gateway (also resolved in `peer`). */
  readonly customerGateway: string;
  readonly peer: CustomerGatewayConfig;
  readonly localSubnets: readonly PrefixSpec[];
  readonly remoteSubnets: readonly PrefixSpec[];
  readonly auth: { readonly psk: Secret };
  readonly ike: IkePolicyConfig;
  readonly esp: EspPolicyConfig;
  readonly startAction: StartAction;
  /** null: no DPD. */
  readonly dpd: DpdConfig | null;
}

export type SslProtocol = 'udp' | 'tcp';
export type DataCipher = 'AES-256-GCM' | 'AES-128-GCM' | 'CHACHA20-POLY1305';
export const DATA_CIPHERS: readonly DataCipher[] = ['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305'];

export interface VpnServerConfig {
  readonly name: string;
  readonly protocols: readonly SslProtocol[];
  readonly port: number;
  /** Listen address; 0.0.0.0 when not given. */
  readonly listen: AddressSpec;
  readonly clientCidr: PrefixSpec;
  readonly localSubnets: readonly PrefixSpec[];
  readonly dnsServers: readonly AddressSpec[];
  readonly dataCiphers: readonly DataCipher[];
  readonly auth: { readonly type: 'cert' };
  /** Absolute paths (resolved against the config file's folder). */
  readonly serverCert: { readonly cert: string; readonly key: string };
  readonly clientCa: string;
  readonly maxConnections: number;
  readonly clientToClient: boolean;
}
