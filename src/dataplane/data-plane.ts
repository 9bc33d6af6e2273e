import type { Endpoint } from '../common/endpoint.js';
import type { Prefix } from '../common/ip.js';
import type { PacketSink } from '../common/packet-sink.js';
import type { SaLifetime } from '../esp/esp-sa.js';
import type { UdpBind } from '../net/udp-bind.js';
import type { DataPathPolicy, PolicyCounters } from '../vpcep/policy.js';

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
  /**
   * RFC 4303 §2.2.1 extended sequence numbers (the ESN transform was negotiated): 64-bit counters of
   * which only the low 32 bits are sent; default false
   */
  esn?: boolean;
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
  /**
   * inbound: the origin packets decrypted by this SA carry into the policy stage (src/vpcep/policy.ts):
   * the gateway's number for the VPN connection; 0 or absent: none
   */
  origin?: number;
  /** outbound: the last sequence number already used (default 0); for tests */
  initialSeq?: number;
  /** outbound with ESN: the high 32 bits of that last used sequence number (default 0); for tests */
  initialSeqHi?: number;
}

export interface SaCounters {
  bytes: number;
  packets: number;
  /** non-zero drop counters by DropReason name */
  drops: Record<string, number>;
  /** outbound: last sequence number sent; inbound: highest authenticated sequence number (64-bit with ESN, exact below 2^53) */
  seq: number;
}

export type SaEventKind = 'soft' | 'hard' | 'seq-exhausted' | 'peer-moved';

export interface SaEvent {
  spi: number;
  direction: 'in' | 'out';
  kind: SaEventKind;
  /**
   * 'peer-moved' only: the outer address:port an authenticated (ICV-verified) packet of this inbound
   * SA came from, which is now the SA's peer endpoint (a NAT mapping changed, RFC 7296 §2.23)
   */
  remote?: Endpoint;
}

export interface DataPlaneStats {
  tunRxPackets: number;
  /** IP bytes read from the TUN */
  tunRxBytes: number;
  espTxPackets: number;
  espRxPackets: number;
  tunTxPackets: number;
  /** IP bytes written to the TUN */
  tunTxBytes: number;
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
  /**
   * Moves an installed SA's outer peer endpoint (NAT rebinding, RFC 7296 §2.23): outbound, where its
   * datagrams go from now on; inbound, the endpoint its packets are compared with ('peer-moved'
   * events). Keys, sequence numbers and counters stay. false: no such SA, or another address family.
   * Call it between batches (from a callback or the control path), like installSa.
   */
  setSaRemote(spi: number, direction: 'in' | 'out', remote: Endpoint): boolean;
  /** global drop counters by DropReason name (every name present) */
  dropCounters(): Record<string, number>;
  stats(): DataPlaneStats;
  /** IKE on 4500: called with the IKE message (the 4-byte non-ESP marker already stripped), as a copy */
  onControl(cb: (pkt: Buffer, from: Endpoint, local: Endpoint) => void): void;
  /** sends an IKE message from the local 4500 socket, prepending the non-ESP marker (RFC 3948 §2.2) */
  sendControl(pkt: Buffer, to: Endpoint, local: Endpoint): boolean;
  /**
   * sends a NAT-keepalive (RFC 3948 §2.3: one 0xFF byte, no non-ESP marker) from the local 4500
   * socket; false: not sent (no such socket, or the kernel refused)
   */
  sendNatKeepalive(to: Endpoint, local: Endpoint): boolean;
  onSaEvent(cb: (ev: SaEvent) => void): void;
  addSinkRoute(prefix: Prefix, sink: PacketSink): void;
  removeSinkRoute(prefix: Prefix): void;
  /**
   * queues a packet for the TUN; flushed once per batch/turn. `origin` (a decrypted packet of a tunnel
   * JS carries, e.g. an SSL VPN session on the TypeScript path) puts it through the policy stage first.
   */
  writeToTun(pkt: Buffer, off: number, len: number, origin?: number): void;
  /**
   * Replaces the policy stage's rules (ACLs by origin and VPC endpoint translation; the semantics are
   * in src/vpcep/policy.ts). Optional while a backend does not implement it.
   */
  setPolicy?(p: DataPathPolicy): void;
  /** the policy stage's counters (all zero before setPolicy) */
  policyCounters?(): PolicyCounters;
  /** the SSL VPN data channel in this backend (NativeDataPlane), or null (it then runs in TypeScript) */
  readonly sslOffload: SslOffload | null;
  close(): void;
}

// ---------------------------------------------------------------- SSL VPN offload

/** Key material of one OpenVPN key state (the shape of the control channel's 'keys' action). */
export interface SslKeyMaterial {
  keyId: number;
  cipher: string;
  encKey: Buffer;
  encImplicitIv: Buffer;
  decKey: Buffer;
  decImplicitIv: Buffer;
  initialSendPacketId?: number;
}

/** Where a native SSL session lives and what it may carry. */
export interface SslSessionParams {
  /** the index attachSslUdp returned for the socket the session talks on */
  bind: number;
  remote: Endpoint;
  /** COMP_* of src/ssl/data/compression.ts (learned from the uplink as in the TS core) */
  compression: number;
  /** the client pool: inner destinations inside it (except serverAddress) go to JS (client-to-client) */
  clientPrefix: Prefix;
  serverAddress: string;
  /** the origin the session's decrypted packets carry into the policy stage (src/vpcep/policy.ts); 0: none */
  origin?: number;
}

export interface SslSessionCounters {
  rxPackets: number; // authenticated packets in (IP, ping, OCC)
  rxBytes: number;
  txPackets: number; // IP packets out (pings not counted)
  txBytes: number;
  pingsIn: number;
  pingsOut: number;
  /** ms since the last authenticated packet in / packet out (-1: none yet) */
  msSinceRx: number;
  msSinceTx: number;
  sendKeyId: number; // -1: no send key
  sendPacketId: number; // the last packet-id sent with the send key
  compression: number;
  /** non-zero drop counters by OVPN_RESULT_NAMES name */
  drops: Record<string, number>;
}

/**
 * What the SSL VPN shell receives from its socket through the native data plane. Buffers are valid
 * only during the call (copy to keep). `flush` runs once after each batch.
 */
export interface SslDatagramHandler {
  /** a datagram native code did not handle: control packets, unknown peer-ids, a session's packet from another address */
  datagram(buf: Buffer, off: number, len: number, from: Endpoint): void;
  /** the decrypted payload of a session that JS decides on: OCC messages, client-to-client packets */
  plaintext(peerId: number, buf: Buffer, off: number, len: number, from: Endpoint): void;
  flush(): void;
}

/**
 * The OpenVPN data channel inside a data plane (an optional capability: DataPlane.sslOffload). The SSL
 * server's UDP socket is handed over with `attachSslUdp`; from then on P_DATA_V1/V2 packets of the
 * sessions installed here (keyed by peer-id) are decrypted to the TUN and routes to a session's /32
 * are encrypted to its client without JavaScript. The handler sees only what needs a decision:
 * control packets, unknown peer-ids and floats (as datagrams), OCC and client-to-client plaintext.
 * Results of `sslDecrypt`: OVPN_IP 0, OVPN_PING 1, OVPN_OCC 2, a drop code, or -1 (no such session);
 * the payload is then at `sslSpan` [off, len]. After the data plane closed every call is a no-op
 * (false / undefined).
 */
export interface SslOffload {
  /**
   * The SSL socket must be bound with SO_REUSEPORT: attachSslUdp grows it into a group of one socket
   * per data-plane queue (the multi-queue data plane). Absent or false: a plain socket.
   */
  readonly sslReusePort?: boolean;
  /** polls the bind from now on (not started; the caller keeps it and calls detachSslUdp before closing it); returns its index */
  attachSslUdp(bind: UdpBind & { readonly fd: number }, handler: SslDatagramHandler): number;
  detachSslUdp(bind: number): void;
  /** creates (or replaces, without keys) a peer-id's session; false: the remote is unusable on that bind */
  installSslSession(peerId: number, p: SslSessionParams): boolean;
  setSslRemote(peerId: number, bind: number, remote: Endpoint): boolean;
  setSslVirtualAddress(peerId: number, address: string | null): boolean;
  setSslCompression(peerId: number, mode: number): boolean;
  /** changes a session's origin (its user's groups changed); optional while a backend lacks it */
  setSslOrigin?(peerId: number, origin: number): boolean;
  setSslKey(peerId: number, k: SslKeyMaterial): boolean;
  retireSslKey(peerId: number, keyId: number): boolean;
  removeSslSession(peerId: number): boolean;
  addSslRoute(prefix: Prefix, peerId: number): void;
  removeSslRoute(prefix: Prefix): boolean;
  sslCounters(peerId: number): SslSessionCounters | undefined;
  sendSslPing(peerId: number): boolean;
  sslSend(peerId: number, buf: Buffer, off: number, len: number): boolean;
  sslDecrypt(peerId: number, buf: Buffer, off: number, len: number): number;
  readonly sslSpan: Uint32Array;
  /**
   * OpenVPN over TCP (optional while a backend lacks it): the stream framing and the data packets of
   * a TCP session in native code. `openSslTcp(stream)` starts a stream (the shell's connection id;
   * false: unavailable; `maxFrame`, default 65535: longer packets break the stream), `bindSslTcp`
   * names the session whose data packets it carries (installed with installSslSession, bind -1),
   * `closeSslTcp` forgets it.
   */
  openSslTcp?(stream: number, maxFrame?: number): boolean;
  bindSslTcp?(stream: number, peerId: number): boolean;
  closeSslTcp?(stream: number): void;
  /**
   * Feeds one chunk read from a stream's socket, buf[off, off+len): the session's data packets are
   * decrypted in place and queued for the TUN until `flushSslTcp` (keep the chunk until then; call
   * it once per event-loop turn, so the reads of a turn reach the TUN as one batch); the rest is
   * listed in `sslTcpList` (layout: SSL_TCP_* below) for the shell, in stream order. Returns the
   * entries listed, or -1 (no such stream); call again from `sslTcpList[0]` while it is below
   * off+len (the list was full).
   */
  sslTcpChunk?(stream: number, buf: Buffer, off: number, len: number): number;
  flushSslTcp?(): void;
  /**
   * OpenVPN over TCP, the send side (optional while a backend lacks it): with a writer, the session
   * (installed with bind -1 and bound to a stream with bindSslTcp) encrypts what its route carries,
   * `sslSend` payloads and keepalive pings natively, one packet-id sequence per key; the frames
   * (2-byte length, then the packet) of each data-plane batch reach `write` in one call, and those
   * of an `sslSend` / `sendSslPing` call before it returns, so nothing is pending between calls and
   * control packets written to the same socket keep their order. null stops it; false: unavailable
   * (no such session, or the backend cannot).
   */
  setSslTcpWriter?(peerId: number, write: SslTcpWriter | null): boolean;
  readonly sslTcpList?: Uint32Array;
  /** where entries with SSL_TCP_SPILL lie (valid until the next sslTcpChunk) */
  readonly sslTcpSpill?: Buffer;
}

/** One TCP session's framed, encrypted packets of one batch (a Buffer the socket may keep) and how many frames it holds. */
export type SslTcpWriter = (buf: Buffer, frames: number) => void;

// sslTcpList layout: [0] where parsing stopped, [1] 1 = a zero or over-long length broke the stream,
// then per entry off, len, kind (mirrors kTcpListHead and kTcpItem* in src/native/engine/engine.h)
export const SSL_TCP_HEAD = 2;
export const SSL_TCP_STRIDE = 3;
/** kind bit: the session's decrypted payload JS decides on (OCC, client-to-client); else a raw packet */
export const SSL_TCP_PLAIN = 1;
/** kind bit: the bytes lie in sslTcpSpill (the packet crossed chunks), else in the chunk */
export const SSL_TCP_SPILL = 2;
