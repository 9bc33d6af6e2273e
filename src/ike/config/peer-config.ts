import type { Proposal } from '../wire/types.js';
import type { Prefix } from '../../common/ip.js';
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { Identity } from './identity.js';
import type { CrlInfo } from './x509.js';

/**
 * Frozen configuration objects for IKE (strongSwan's peer_cfg / ike_cfg / child_cfg graph).
 * Runtime objects (IkeSa, ChildSa) refer to these and never change them; a reload builds new ones.
 */

export interface ChildConfig {
  readonly name: string;
  readonly localTs: readonly Prefix[];
  readonly remoteTs: readonly Prefix[];
  /** ESP proposals as configured (a DH group in them means PFS for CREATE_CHILD_SA) */
  readonly espProposals: readonly Proposal[];
  readonly lifetimeSec: number;
  readonly replayWindow: number;
  /**
   * Hard byte and packet limits of each direction's ESP SA (strongSwan's life_bytes/life_packets);
   * absent or 0: none. The rekey starts at a soft limit below them (src/ike/sa/child-limits.ts).
   */
  readonly lifetimeBytes?: number;
  readonly lifetimePackets?: number;
  /**
   * start (or absent): when we initiate the IKE SA we create this child too, the first one in
   * IKE_AUTH and the others with CREATE_CHILD_SA right after (RFC 7296 §1.3.1); none: only the
   * peer creates it (we accept it as responder).
   */
  readonly startAction?: 'start' | 'none';
  /**
   * Route-based mode: the prefixes the shell routes into this child's outbound SA instead of its
   * negotiated remote TS (which are 0.0.0.0/0 there). Absent: the remote TS are routed.
   */
  readonly routes?: readonly Prefix[];
}

export interface PeerConfig {
  readonly name: string;
  /** our addresses peers reach (publicAddresses); empty means any local address */
  readonly localAddrs: readonly string[];
  /** the customer gateway's address, or null for "%any" (responder only) */
  readonly remoteAddr: string | null;
  readonly localId: Identity;
  readonly remoteId: Identity;
  /** the pre-shared key, raw bytes (strongSwan 0x/0s forms decoded); empty with certificate auth */
  readonly psk: Buffer;
  /** certificate authentication (RFC 7296 §2.15, RFC 7427) instead of the PSK; absent or null: PSK */
  readonly cert?: CertAuthConfig | null;
  readonly ikeProposals: readonly Proposal[];
  readonly ikeLifetimeSec: number;
  /**
   * RFC 7383 IKE fragmentation, as strongSwan's `fragmentation` (swanctl.conf): yes (absent) announces
   * N(IKEV2_FRAGMENTATION_SUPPORTED) and sends oversized messages as SKF fragments when the peer
   * announced it too; accept announces it but sends whole messages; no does not announce it. The
   * peer's fragments are reassembled whatever the setting, as strongSwan does.
   */
  readonly fragmentation?: IkeFragmentation;
  /** start: initiate at boot; none: wait for the peer; trap: initiate on the first packet for remoteTs (the shell sees it) */
  readonly startAction: 'start' | 'none' | 'trap';
  readonly dpdIntervalSec: number;
  /**
   * What an unanswered liveness check leads to, as strongSwan's dpd_action: clear (the default)
   * deletes the SAs, restart deletes them and initiates again with back-off until the peer is back,
   * none only logs and counts it and keeps the SAs.
   */
  readonly dpdAction?: DpdAction;
  /** give up on a liveness check after this long (seconds); 0 or absent: the retransmission schedule */
  readonly dpdTimeoutSec?: number;
  /**
   * Force UDP encapsulation of ESP (strongSwan's `encap = yes`): our NAT_DETECTION_SOURCE_IP is
   * faked so the peer always uses ESP in UDP 4500. false: honest NAT detection (RFC 7296 §2.23);
   * absent: true. See src/ike/tasks/ike-natd.ts for what happens when no NAT is found.
   */
  readonly encap?: boolean;
  /**
   * Seconds between NAT-keepalives (RFC 3948 §2.3) sent while we are behind a NAT
   * (strongSwan's charon.keep_alive); 0: none; absent: NAT_KEEPALIVE_DEFAULT_SEC.
   */
  readonly natKeepaliveSec?: number;
  readonly children: readonly ChildConfig[];
}

/**
 * Certificate authentication, parsed and checked by the shell at config load: the core reads no
 * files. Our end-entity certificate with its private key (and intermediates to send along), the
 * CAs the peer's certificate must chain to, and CRLs already verified as signed by their issuer.
 */
export interface CertAuthConfig {
  readonly cert: X509Certificate;
  readonly chain: readonly X509Certificate[];
  readonly key: KeyObject;
  readonly cas: readonly X509Certificate[];
  readonly crls: readonly CrlInfo[];
  /**
   * Offer RFC 7427 signature authentication (N(SIGNATURE_HASH_ALGORITHMS) in IKE_SA_INIT, AUTH
   * method 14). Off, we use and accept only the classic methods 1 (RSA) and 9/10/11 (ECDSA).
   */
  readonly signatureAuth: boolean;
}

/** strongSwan's charon.keep_alive default. */
export const NAT_KEEPALIVE_DEFAULT_SEC = 20;

export type DpdAction = 'clear' | 'restart' | 'none';

export const IKE_FRAGMENTATION_MODES = ['yes', 'accept', 'no'] as const;
export type IkeFragmentation = (typeof IKE_FRAGMENTATION_MODES)[number];

/** Whether a connection announces RFC 7383 support in IKE_SA_INIT. */
export function announcesFragmentation(cfg: Pick<PeerConfig, 'fragmentation'>): boolean {
  return (cfg.fragmentation ?? 'yes') !== 'no';
}

/** Whether a connection sends its oversized messages as fragments (once both sides announced support). */
export function sendsFragments(cfg: Pick<PeerConfig, 'fragmentation'>): boolean {
  return (cfg.fragmentation ?? 'yes') === 'yes';
}

/** Retransmission schedule (strongSwan's retransmit_timeout/base/tries). */
export interface RetransmitConfig {
  readonly timeoutMs: number;
  readonly base: number;
  readonly tries: number;
}

export const DEFAULT_RETRANSMIT: RetransmitConfig = Object.freeze({ timeoutMs: 4000, base: 1.8, tries: 5 });

/** Decodes strongSwan's PSK forms: "0x<hex>", "0s<base64>", otherwise the UTF-8 text itself. */
export function decodePsk(text: string): Buffer {
  if (/^0x[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0) return Buffer.from(text.slice(2), 'hex');
  if (text.startsWith('0s')) return Buffer.from(text.slice(2), 'base64');
  return Buffer.from(text, 'utf8');
}
