/**
 * The data channel of one server session as the session manager sees it. Two implementations share
 * this shape, so the manager never asks which one it drives:
 *  - JsDataPath (below): the TypeScript DataChannel; encrypted packets leave through a DataTransport
 *    the shell provides (a UDP batch slot, a datagram, a TCP frame), and the client's /32 is routed
 *    to it as a PacketSink of the data plane;
 *  - the native twin in src/gateway/ssl-offload-path.ts: the data plane's SSL offload decrypts and
 *    encrypts known sessions in C++, so their packets never reach JavaScript.
 *
 * Contract: `decrypt` works in place and leaves the payload of DATA_IP at buf[outOff, outOff+outLen);
 * drops are return codes counted by the path (DROP_* of src/ssl/data/data-channel.ts). `send` and the
 * sink pushes are per-packet: no allocation, no closures. After `close()` nothing is sent and the
 * client's route is gone.
 */
import type { Prefix } from '../../common/ip.js';
import {
  DataChannel,
  DATA_MAX_OVERHEAD,
  DROP_CODE_COUNT,
  type DataKeyMaterial,
} from '../data/data-channel.js';
import { MAGIC_SIZE } from '../data/special.js';
import type { CompressionMode } from '../data/compression.js';
import type { SslProtocol } from './config.js';
import type { Endpoint } from '../../common/endpoint.js';
import type { PacketSink } from '../../common/packet-sink.js';

/** A client's UDP or TCP address. */
export type SslEndpoint = Endpoint;

/** `tick` result flags */
export const TICK_RX_SEEN = 1; // packets came in since the last tick (native: seen in the counters)
export const TICK_RENEGOTIATE = 2; // the send packet-id is close to wrapping
export const TICK_SEND_FAILED = 4; // a keepalive ping could not be sent

/** `installKey` without a change of compression framing */
export const KEEP_COMPRESSION = -1;

export interface DataPathStats {
  cipher: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** non-zero drop counters by name */
  drops: Record<string, number>;
}

export interface SslDataPath {
  /** where `decrypt` left a DATA_IP payload */
  readonly outOff: number;
  readonly outLen: number;
  /** keys of a key state (it becomes the send key at once); `compression` a COMP_* or KEEP_COMPRESSION */
  installKey(k: DataKeyMaterial, compression: CompressionMode | typeof KEEP_COMPRESSION, nowMs: number): void;
  retireKey(keyId: number): void;
  /** the client was given `address` (`prefix` is its /32): route it here and accept it as inner source */
  attach(prefix: Prefix, address: string): void;
  /** the client's address changed (float) */
  setRemote(remote: SslEndpoint): void;
  /**
   * the origin the session's decrypted packets carry into the data path's policy stage
   * (src/vpcep/policy.ts); absent: the path hands packets up to the session manager, which adds it
   */
  setOrigin?(origin: number): void;
  /** authenticates and decrypts one data packet in place: DATA_IP / DATA_PING / DATA_OCC_EXIT or a drop code */
  decrypt(buf: Buffer, off: number, len: number, nowMs: number): number;
  /** encrypts one IP packet to the client and sends it (client-to-client traffic) */
  send(buf: Buffer, off: number, len: number, nowMs: number): void;
  /** once per server tick: keepalive ping after `pingSec` of silence; TICK_* flags */
  tick(nowMs: number, pingSec: number): number;
  /** counts a drop decided outside the path (an OCC message other than EXIT) */
  countDrop(code: number): void;
  stats(): DataPathStats;
  close(): void;
}

/** What a data path is created for. */
export interface DataPathSession {
  readonly peerId: number;
  readonly protocol: SslProtocol;
  /** the shell's TCP connection id (-1 for UDP) */
  readonly conn: number;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly remoteFamily: 4 | 6;
}

export interface SslDataPathFactory {
  create(s: DataPathSession, nowMs: number): SslDataPath;
}

/**
 * Where a JsDataPath's encrypted packets go; the shell implements one per session. A packet is
 * written into `reserve(room)` at `slotOff` and handed over with `commit(n)`.
 */
export interface DataTransport {
  reserve(room: number): Buffer;
  readonly slotOff: number;
  commit(n: number): void;
  /** the end of a data-plane batch: send what was queued */
  flush(): void;
  setRemote(remote: SslEndpoint): void;
  /** the time for packets pushed by the data plane (outside any call of the session manager) */
  now(): number;
}

/** The data plane's routes to sinks (src/dataplane DataPlane has these). */
export type { PacketSink };
export interface SinkRoutes {
  addSinkRoute(prefix: Prefix, sink: PacketSink): void;
  removeSinkRoute(prefix: Prefix): void;
}

/**
 * The TypeScript data path: DataChannel plus a transport. The data plane pushes the client's packets
 * to it as a PacketSink (encrypted straight into the transport's slot).
 */
export class JsDataPath implements SslDataPath, PacketSink {
  readonly channel: DataChannel;
  outOff = 0;
  outLen = 0;
  private closed = false;
  private prefix: Prefix | null = null;

  constructor(
    peerId: number,
    nowMs: number,
    private readonly transport: DataTransport,
    private readonly routes: SinkRoutes,
  ) {
    this.channel = new DataChannel({ peerId }, nowMs);
  }

  installKey(k: DataKeyMaterial, compression: CompressionMode | typeof KEEP_COMPRESSION, nowMs: number): void {
    this.channel.installKey(k, nowMs);
    if (compression !== KEEP_COMPRESSION) this.channel.compression = compression;
  }

  retireKey(keyId: number): void {
    this.channel.retireKey(keyId);
  }

  attach(prefix: Prefix): void {
    this.prefix = prefix;
    this.routes.addSinkRoute(prefix, this);
  }

  setRemote(remote: SslEndpoint): void {
    this.transport.setRemote(remote);
  }

  decrypt(buf: Buffer, off: number, len: number, nowMs: number): number {
    const r = this.channel.decrypt(buf, off, len, nowMs);
    this.outOff = this.channel.outOff;
    this.outLen = this.channel.outLen;
    return r;
  }

  send(buf: Buffer, off: number, len: number, nowMs: number): void {
    if (this.closed) return;
    const t = this.transport;
    const out = t.reserve(len + DATA_MAX_OVERHEAD);
    const o = t.slotOff;
    const n = this.channel.encrypt(buf, off, len, out, o, nowMs);
    if (n > 0) t.commit(n);
  }

  /** PacketSink: an IP packet for this client from the data plane. */
  push(buf: Buffer, off: number, len: number): void {
    this.send(buf, off, len, this.transport.now());
  }

  flush(): void {
    this.transport.flush();
  }

  tick(nowMs: number, pingSec: number): number {
    const ch = this.channel;
    if (!this.closed && ch.pingDue(nowMs, pingSec)) {
      const t = this.transport;
      const out = t.reserve(MAGIC_SIZE + DATA_MAX_OVERHEAD);
      const o = t.slotOff;
      const n = ch.encryptPing(out, o, nowMs);
      if (n > 0) t.commit(n);
    }
    // never let the data packet-id wrap: renegotiate well before (OpenVPN ssl.c, packet_id_close_to_wrapping)
    return ch.needsRenegotiation ? TICK_RENEGOTIATE : 0;
  }

  countDrop(code: number): void {
    if (code >= 0 && code < DROP_CODE_COUNT) this.channel.stats.drops[code]!++;
  }

  stats(): DataPathStats {
    const st = this.channel.stats;
    return {
      cipher: this.channel.cipher,
      bytesIn: st.rxBytes,
      bytesOut: st.txBytes,
      packetsIn: st.rxPackets - st.pingsIn,
      packetsOut: st.txPackets,
      drops: st.dropsByName(),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.prefix) this.routes.removeSinkRoute(this.prefix);
  }
}
