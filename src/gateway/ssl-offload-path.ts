/**
 * The native twin of JsDataPath (src/ssl/server/data-path.ts): a UDP session's data channel inside
 * the data plane's SSL offload (src/dataplane/data-plane.ts, SslOffload). Data packets of the session
 * are decrypted and encrypted in C++; this object installs keys, address and route there, decrypts
 * the few packets JavaScript still sees (floats), and turns the offload's counters into the
 * per-tick facts the session manager needs (traffic seen, keepalive pings, renegotiation).
 */
import type { Prefix } from '../common/ip.js';
import type { SslOffload } from '../dataplane/data-plane.js';
import {
  DATA_IP,
  DATA_OCC_EXIT,
  DATA_PING,
  DataChannelStats,
  DROP_CODE_COUNT,
  DROP_NO_KEY,
  DROP_OCC_OTHER,
  PACKET_ID_RENEG_THRESHOLD,
  type DataKeyMaterial,
} from '../ssl/data/data-channel.js';
import type { CompressionMode } from '../ssl/data/compression.js';
import { OCC_EXIT, occOpcode } from '../ssl/data/special.js';
import {
  KEEP_COMPRESSION,
  TICK_RENEGOTIATE,
  TICK_RX_SEEN,
  TICK_SEND_FAILED,
  type DataPathStats,
  type SslDataPath,
  type SslEndpoint,
} from '../ssl/server/data-path.js';

// native data-channel results (ovpn::Result in src/native/core/ovpn.h)
const OVPN_IP = 0;
const OVPN_PING = 1;
const OVPN_OCC = 2;

export class OffloadDataPath implements SslDataPath {
  outOff = 0;
  outLen = 0;
  private cipher = '';
  private prefix: Prefix | null = null;
  private closed = false;
  /** drops decided in JavaScript (floats without a session, OCC other than EXIT), merged into stats */
  private readonly jsStats = new DataChannelStats();
  /** offload counters seen at the last tick: packets in (any), packets out (any), and when out changed */
  private rx = 0;
  private tx = 0;
  private txMs: number;

  constructor(
    private readonly offload: SslOffload,
    readonly peerId: number,
    private readonly bind: number,
    nowMs: number,
  ) {
    this.txMs = nowMs;
  }

  installKey(k: DataKeyMaterial, compression: CompressionMode | typeof KEEP_COMPRESSION): void {
    this.offload.setSslKey(this.peerId, k);
    this.cipher = k.cipher.toUpperCase();
    if (compression !== KEEP_COMPRESSION) this.offload.setSslCompression(this.peerId, compression);
  }

  retireKey(keyId: number): void {
    this.offload.retireSslKey(this.peerId, keyId);
  }

  setOrigin(origin: number): void {
    this.offload.setSslOrigin?.(this.peerId, origin);
  }

  attach(prefix: Prefix, address: string): void {
    this.prefix = prefix;
    this.offload.setSslVirtualAddress(this.peerId, address);
    this.offload.addSslRoute(prefix, this.peerId);
  }

  setRemote(remote: SslEndpoint): void {
    this.offload.setSslRemote(this.peerId, this.bind, remote);
  }

  decrypt(buf: Buffer, off: number, len: number): number {
    const o = this.offload;
    const r = o.sslDecrypt(this.peerId, buf, off, len);
    this.outOff = o.sslSpan[0]!;
    this.outLen = o.sslSpan[1]!;
    if (r === OVPN_IP) return DATA_IP;
    if (r === OVPN_PING) return DATA_PING;
    if (r === OVPN_OCC) {
      if (occOpcode(buf, this.outOff, this.outLen) === OCC_EXIT) return DATA_OCC_EXIT;
      this.jsStats.drops[DROP_OCC_OTHER]!++;
      return DROP_OCC_OTHER;
    }
    if (r < 0) {
      this.jsStats.drops[DROP_NO_KEY]!++; // no native session (yet)
      return DROP_NO_KEY;
    }
    return r; // a drop, counted natively
  }

  send(buf: Buffer, off: number, len: number): void {
    if (!this.closed) this.offload.sslSend(this.peerId, buf, off, len); // drops are counted natively
  }

  tick(nowMs: number, pingSec: number): number {
    const c = this.offload.sslCounters(this.peerId);
    if (!c) return 0;
    let f = 0;
    if (c.rxPackets !== this.rx) {
      this.rx = c.rxPackets;
      f |= TICK_RX_SEEN;
    }
    const tx = c.txPackets + c.pingsOut;
    if (tx !== this.tx) {
      this.tx = tx;
      this.txMs = nowMs;
    }
    if (pingSec > 0 && c.sendKeyId >= 0 && nowMs - this.txMs >= pingSec * 1000) {
      if (!this.offload.sendSslPing(this.peerId)) f |= TICK_SEND_FAILED;
      this.txMs = nowMs;
    }
    // never let the data packet-id wrap: renegotiate well before (OpenVPN ssl.c, packet_id_close_to_wrapping)
    if (c.sendKeyId >= 0 && c.sendPacketId >= PACKET_ID_RENEG_THRESHOLD) f |= TICK_RENEGOTIATE;
    return f;
  }

  countDrop(code: number): void {
    if (code >= 0 && code < DROP_CODE_COUNT) this.jsStats.drops[code]!++;
  }

  stats(): DataPathStats {
    const st = this.jsStats;
    const c = this.closed ? undefined : this.offload.sslCounters(this.peerId);
    if (!c) return { cipher: this.cipher, bytesIn: st.rxBytes, bytesOut: st.txBytes, packetsIn: st.rxPackets - st.pingsIn, packetsOut: st.txPackets, drops: st.dropsByName() };
    const drops = { ...c.drops };
    for (const [k, v] of Object.entries(st.dropsByName())) drops[k] = (drops[k] ?? 0) + v;
    return { cipher: this.cipher, bytesIn: c.rxBytes, bytesOut: c.txBytes, packetsIn: c.rxPackets - c.pingsIn, packetsOut: c.txPackets, drops };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.prefix) this.offload.removeSslRoute(this.prefix);
    this.offload.removeSslSession(this.peerId);
  }
}

/**
 * A TCP session whose data channel runs wholly in the native data plane: inbound, the stream's
 * frames are split and the session's data packets decrypted to the TUN in C++ (SslOffload.sslTcpChunk,
 * driven by src/gateway/ssl-server.ts); outbound, the client's /32 is an SSL route of the data plane,
 * whose packets (and `send` payloads, keepalive pings) are encrypted by the same native session and
 * framed for the stream there (SslOffload.setSslTcpWriter); the shell writes each batch's frames with
 * one socket write. One TCP connection per session: its remote never changes.
 */
export class NativeTcpDataPath extends OffloadDataPath {
  constructor(offload: SslOffload, peerId: number, nowMs: number) {
    super(offload, peerId, -1, nowMs);
  }

  override setRemote(): void {}
}

/**
 * A TCP session on a data plane that parses the stream natively but cannot encrypt for it (no
 * SslOffload.setSslTcpWriter): inbound, the stream's frames are split and the session's
 * data packets decrypted to the TUN in C++ (SslOffload.sslTcpChunk, one call per socket read, driven
 * by src/gateway/ssl-server.ts); outbound, the client's /32 is routed to a JsDataPath whose frames the
 * TcpTransport writes as one chunk per data-plane batch. Both directions get every key state: the
 * native session holds the receive side (replay window), the TypeScript channel the send side
 * (packet-ids, keepalive pings, the renegotiation threshold).
 */
export class TcpOffloadDataPath implements SslDataPath {
  private readonly rx: OffloadDataPath;

  constructor(
    private readonly offload: SslOffload,
    readonly peerId: number,
    private readonly tx: SslDataPath,
    nowMs: number,
  ) {
    this.rx = new OffloadDataPath(offload, peerId, -1, nowMs);
  }

  get outOff(): number {
    return this.rx.outOff;
  }

  get outLen(): number {
    return this.rx.outLen;
  }

  installKey(k: DataKeyMaterial, compression: CompressionMode | typeof KEEP_COMPRESSION, nowMs: number): void {
    this.rx.installKey(k, compression);
    this.tx.installKey(k, compression, nowMs);
  }

  retireKey(keyId: number): void {
    this.rx.retireKey(keyId);
    this.tx.retireKey(keyId);
  }

  setOrigin(origin: number): void {
    this.rx.setOrigin(origin);
  }

  attach(prefix: Prefix, address: string): void {
    this.offload.setSslVirtualAddress(this.peerId, address); // the inner source check of inbound packets
    this.tx.attach(prefix, address); // the route: a sink of the data plane, encrypted in TypeScript
  }

  /** one TCP connection per session: its remote never changes */
  setRemote(): void {}

  decrypt(buf: Buffer, off: number, len: number): number {
    return this.rx.decrypt(buf, off, len);
  }

  send(buf: Buffer, off: number, len: number, nowMs: number): void {
    this.tx.send(buf, off, len, nowMs);
  }

  tick(nowMs: number, pingSec: number): number {
    // pings and renegotiation follow the sending side; traffic seen, the native receiving side
    return this.tx.tick(nowMs, pingSec) | (this.rx.tick(nowMs, 0) & TICK_RX_SEEN);
  }

  countDrop(code: number): void {
    this.rx.countDrop(code);
  }

  stats(): DataPathStats {
    const i = this.rx.stats();
    const o = this.tx.stats();
    const drops = { ...o.drops };
    for (const [k, v] of Object.entries(i.drops)) drops[k] = (drops[k] ?? 0) + v;
    return { cipher: o.cipher, bytesIn: i.bytesIn, bytesOut: o.bytesOut, packetsIn: i.packetsIn, packetsOut: o.packetsOut, drops };
  }

  close(): void {
    this.tx.close();
    this.rx.close();
  }
}
