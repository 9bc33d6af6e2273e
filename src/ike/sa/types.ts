import type { HostPort } from '../../common/endpoint.js';
import type { Prefix } from '../../common/ip.js';
import type { IkeFailure } from '../failure.js';
import type { ChildVolumeLimits } from './child-limits.js';

/** A UDP endpoint as the IKE core sees it: address and port (src/common/endpoint.ts). */
export type Endpoint = HostPort;
export { formatEndpoint as endpointToString } from '../../common/endpoint.js';

/** Everything the data plane needs to install one direction pair of an ESP child SA. */
export interface ChildSaParams {
  readonly connection: string;
  readonly child: string;
  readonly spiIn: number;
  readonly spiOut: number;
  readonly encr: number; // EncrId
  readonly encrKeyBits: number;
  readonly integ: number; // IntegId, 0 for AEAD
  readonly esn: boolean; // the ESN transform chose extended sequence numbers (RFC 4303 §2.2.1)
  readonly encrKeyIn: Buffer; // incl. salt for AEAD
  readonly integKeyIn: Buffer;
  readonly encrKeyOut: Buffer;
  readonly integKeyOut: Buffer;
  readonly localTs: readonly Prefix[];
  readonly remoteTs: readonly Prefix[];
  readonly local: Endpoint; // our outer endpoint (UDP 4500)
  readonly remote: Endpoint; // the peer's outer endpoint
  readonly replayWindow: number;
  readonly lifetimeSec: number;
  /** byte/packet limits of each direction's SA (soft: rekey, hard: unusable); crossings come back through IkeManager.childLifetimeEvent */
  readonly limits: ChildVolumeLimits;
  /**
   * Route the remote selectors to this SA's outbound SPI now (true), or only on a later
   * `activateChildSa` (false: a child rekeyed by the peer, where the peer has no inbound SA for it
   * until it has read our response — RFC 7296 §2.8, strongSwan keeps sending on the old SA too).
   */
  readonly activateOutbound: boolean;
}

/**
 * What an IKE SA asks its shell to do. The core does no I/O: the gateway sends datagrams
 * (prepending the non-ESP marker when `from.port` is 4500) and installs SAs in the data plane.
 */
export type IkeAction =
  | { kind: 'send'; from: Endpoint; to: Endpoint; datagram: Buffer }
  | { kind: 'installChildSa'; params: ChildSaParams }
  | { kind: 'activateChildSa'; connection: string; spiOut: number }
  /** `inboundGraceMs`: keep the inbound SA that long (packets still in flight on a rekeyed SA) */
  | { kind: 'deleteChildSa'; connection: string; spiIn: number; spiOut: number; inboundGraceMs: number }
  | { kind: 'ikeUp'; connection: string; ikeId: string }
  /**
   * The peer's NAT mapping changed (RFC 7296 §2.23): an authenticated IKE or ESP packet came from
   * `remote`. Every CHILD_SA of the IKE SA (both directions) must send to / expect it from now on.
   */
  /** RFC 3948 §2.3: a NAT-keepalive (one 0xFF byte, no non-ESP marker) from `from` (port 4500) to `to` */
  | { kind: 'natKeepalive'; from: Endpoint; to: Endpoint }
  | { kind: 'peerMoved'; connection: string; ikeId: string; remote: Endpoint; spis: readonly { spiIn: number; spiOut: number }[] }
  | { kind: 'ikeDown'; connection: string | null; ikeId: string; reason: string }
  /**
   * A negotiation of the connection failed (src/ike/failure.ts): what went wrong and the suggested
   * fix. Comes beside the ikeDown of the SA when the failure ends it, alone when the IKE SA stays
   * (a CHILD_SA refused in IKE_AUTH) or no SA was created (a stateless NO_PROPOSAL_CHOSEN).
   */
  | { kind: 'negotiationFailed'; connection: string; ikeId: string | null; failure: IkeFailure };
