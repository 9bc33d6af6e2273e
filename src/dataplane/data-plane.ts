import type { Endpoint } from '../common/endpoint.js';
import type { Prefix } from '../common/ip.js';
import type { PacketSink } from '../common/packet-sink.js';
import type { SaLifetime } from '../esp/esp-sa.js';

/**
 * Everything the data plane needs to install one direction of a child SA. The control plane builds it
 * from IKE's installChildSa action (keys sliced from KEYMAT, RFC 7296 §2.17).
 */
export interface SaParams {
  direction: 'in' | 'out';
  /** inbound: our SPI (what the peer puts in its packets); outbound: the peer's inbound SPI */
  spi: number;
  /** EncrId (12 AES-CBC, 18/19/20 AES-GCM-8/12/16, 28 ChaCha20-Poly1305) */
  encr: number;
  /** 128/192/256 for AES (the Key Length attribute); 256 (or 0) for ChaCha20 */
  encrKeyBits: number;
  /** IntegId (0 for AEAD; 2 SHA1-96, 12 SHA2-256-128, 13 SHA2-384-192, 14 SHA2-512-256) */
  integ: number;
  /** encryption key material; AEAD: key | 4-byte salt (encrKeyMatLen() in crypto/aead.ts gives the size) */
  encrKey: Buffer;
  /** integrity key (empty for AEAD) */
  integKey: Buffer;
  /** inbound anti-replay window in packets, multiple of 32 (default 1024) */
  replayWindow?: number;
  /** outer addresses/ports: ours (must match one of the data plane's UDP binds, or a wildcard bind) and the peer's observed ones */
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  /** traffic selectors as prefixes: ours (TSr for a responder) and the peer's (TSi) */
  localTs: Prefix[];
  remoteTs: Prefix[];
  /** byte/packet lifetimes (0 = none); crossings are reported through onSaEvent */
  lifetime?: SaLifetime;
  /** outbound: the last sequence number already used (default 0); for tests */
  initialSeq?: number;
}

export interface SaCounters {
  bytes: number;
  packets: number;
  /** non-zero drop counters by DropReason name */
  drops: Record<string, number>;
  /** outbound: last sequence number sent; inbound: highest authenticated sequence number */
  seq: number;
}

export type SaEventKind = 'soft' | 'hard' | 'seq-exhausted';

export interface SaEvent {
  spi: number;
  direction: 'in' | 'out';
  kind: SaEventKind;
}

export interface DataPlaneStats {
  tunRxPackets: number;
  espTxPackets: number;
  espRxPackets: number;
  tunTxPackets: number;
  sinkPackets: number;
  controlPackets: number;
  natKeepalives: number;
}

/**
 * The narrow interface the control plane drives. A TypeScript backend (TsDataPlane) and, later, a
 * native one implement it. Contract:
 * - SAs are keyed by (spi, direction). Installing an SA with an existing key replaces it.
 * - Routes map an inner destination prefix to an outbound SPI (or a sink). A route may name an SPI that
 *   is not installed (yet): packets then drop NO_SA. Rekey = install new SAs, re-point routes, remove old.
 * - Callbacks run after each batch, never in the middle of one; control packets are copies the callee owns.
 * - The TUN device and UDP binds passed to a backend stay owned by the caller: the backend starts them
 *   (installs its batch callbacks) but never closes them. After close() nothing is delivered or sent,
 *   all SAs are forgotten, and installs/routes are ignored; the caller then closes the devices.
 */
export interface DataPlane {
  installSa(p: SaParams): void;
  removeSa(spi: number, direction: 'in' | 'out'): void;
  addRoute(prefix: Prefix, outSpi: number): void;
  removeRoute(prefix: Prefix): void;
  saCounters(spi: number, direction: 'in' | 'out'): SaCounters | undefined;
  /** global drop counters by DropReason name (every name present) */
  dropCounters(): Record<string, number>;
  stats(): DataPlaneStats;
  /** IKE on 4500: called with the IKE message (the 4-byte non-ESP marker already stripped), as a copy */
  onControl(cb: (pkt: Buffer, from: Endpoint, local: Endpoint) => void): void;
  /** sends an IKE message from the local 4500 socket, prepending the non-ESP marker (RFC 3948 §2.2) */
  sendControl(pkt: Buffer, to: Endpoint, local: Endpoint): boolean;
  onSaEvent(cb: (ev: SaEvent) => void): void;
  addSinkRoute(prefix: Prefix, sink: PacketSink): void;
  removeSinkRoute(prefix: Prefix): void;
  /** queues a packet for the TUN; flushed once per batch/turn */
  writeToTun(pkt: Buffer, off: number, len: number): void;
  close(): void;
}
