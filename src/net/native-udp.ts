/**
 * UdpBind on the native addon (src/native/io/udp.cc): recvmmsg into a PacketBatch, sendmmsg from
 * batch slots, both driven from the event loop by uv_poll. One socket serves IKE (500) or
 * IKE + ESP-in-UDP (4500); `sendTo` is the single-datagram path for control-plane packets.
 *
 * ICMP errors (port/host unreachable) are received through IP_RECVERR, counted in
 * `stats().recvErrors`/`icmpErrors` and never stop the socket.
 *
 * Bound to a wildcard address (0.0.0.0 / ::), the socket answers every remote from the local
 * address that remote last reached (IP_PKTINFO; src/native/io/pktinfo.h), as OpenVPN's
 * `multihome` does: `send` and `sendTo` need no source address from the caller.
 */
import { PacketBatch } from '../common/batch.js';
import { IoError } from '../common/errors.js';
import { bytesToIp, parseIp } from '../common/ip.js';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { isNativeErrnoError, loadNative, UDP_STAT, UDP_STAT_COUNT } from '../native/loader.js';
import type { NativeUdpHandle } from '../native/loader.js';
import type { UdpBind, UdpStats } from './udp-bind.js';

// Implementation choices.
export const UDP_DEFAULT_BATCH = 64;
/** Slot size for received datagrams: a 1500-byte path MTU plus room, aligned. */
export const UDP_DEFAULT_SLOT = 2048;
export const UDP_DEFAULT_HEADROOM = 0;
// Socket option bits for the addon's UdpHandle (mirror of kFlag* in src/native/io/udp.cc).
const UDP_FLAG_REUSE_ADDR = 1;
const UDP_FLAG_REUSE_PORT = 2;

export interface NativeUdpOptions {
  /** Local address, e.g. "0.0.0.0", "127.0.0.1", "::", "::1". */
  address: string;
  /** 0 picks an ephemeral port (read it back from `port`). */
  port: number;
  /** IPv6 sockets are dual-stack (v4 peers appear as family 4) unless this is true. */
  ipv6Only?: boolean;
  /**
   * SO_REUSEADDR (default false). On Linux it would let a second UDP socket bind the same address
   * and port, so a second gateway could silently share port 500: we want that bind to fail instead.
   */
  reuseAddr?: boolean;
  /**
   * SO_REUSEPORT (default false): several sockets of this process on one address:port, the kernel
   * spreads datagrams over them (multi-queue data plane: one socket per queue; see `steerBySpi`).
   * Every socket of the group must set it, the first one included.
   */
  reusePort?: boolean;
  batchSize?: number;
  slotSize?: number;
  headroom?: number;
  log?: Logger;
}

export interface NativeUdpStats extends UdpStats {
  recvBatches: number;
  pollErrors: number;
  icmpErrors: number;
  truncated: number;
}

export class NativeUdp implements UdpBind {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** The batch handed to `onBatch` (owned by this socket, reused every wake-up). */
  readonly batch: PacketBatch;
  private readonly handle: NativeUdpHandle;
  private readonly counters = new Float64Array(UDP_STAT_COUNT);
  private readonly log: Logger;
  private onBatch: ((batch: PacketBatch) => void) | null = null;
  /** per batch slot: the destination address of the datagram (wildcard sockets; family 0 otherwise) */
  private readonly localFamily: Uint8Array;
  private readonly localAddr: Buffer;
  private closed = false;

  /** Creates and binds the socket. Throws IoError naming the address on failure (EADDRINUSE...). */
  static bind(opts: NativeUdpOptions): NativeUdp {
    return new NativeUdp(opts);
  }

  private constructor(opts: NativeUdpOptions) {
    const native = loadNative();
    this.log = opts.log ?? silentLogger;
    const ip = parseIp(opts.address);
    if (!ip) throw new IoError(`cannot bind UDP ${opts.address}:${opts.port}: not an IP address`);
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
      throw new IoError(`cannot bind UDP ${opts.address}:${opts.port}: bad port`);
    }
    this.family = ip.family;
    this.address = bytesToIp(ip.bytes);
    const headroom = opts.headroom ?? UDP_DEFAULT_HEADROOM;
    this.batch = new PacketBatch(opts.batchSize ?? UDP_DEFAULT_BATCH, opts.slotSize ?? UDP_DEFAULT_SLOT, headroom);
    this.localFamily = new Uint8Array(this.batch.capacity);
    this.localAddr = Buffer.alloc(this.batch.capacity * 16);
    try {
      const flags = (opts.reuseAddr ? UDP_FLAG_REUSE_ADDR : 0) | (opts.reusePort ? UDP_FLAG_REUSE_PORT : 0);
      this.handle = new native.UdpHandle(ip.family, ip.bytes, opts.port, opts.ipv6Only ?? false, this.counters, flags);
    } catch (e) {
      const why = isNativeErrnoError(e) ? `${e.syscall}: ${e.message}` : String(e);
      throw new IoError(`cannot bind UDP ${fmtEndpoint(this.address, opts.port)}: ${why}`, e);
    }
    this.port = this.handle.port;
    this.log.info({ udp: fmtEndpoint(this.address, this.port) }, 'UDP bound');
  }

  get fd(): number {
    return this.handle.fd;
  }

  /**
   * Steers the datagrams of this socket's SO_REUSEPORT group by ESP SPI: member (SPI % groupSize),
   * members numbered in bind order; IKE (non-ESP marker 0) and NAT-T keepalives go to member 0.
   * Call once, on any member, after all `groupSize` sockets are bound. Throws IoError when the
   * kernel or the addon cannot.
   */
  steerBySpi(groupSize: number): void {
    const where = fmtEndpoint(this.address, this.port);
    if (!this.handle.steerBySpi) throw new IoError(`UDP ${where}: the native addon cannot steer by SPI (rebuild it)`);
    try {
      this.handle.steerBySpi(groupSize);
    } catch (e) {
      const why = isNativeErrnoError(e) ? `${e.syscall}: ${e.message}` : String(e);
      throw new IoError(`UDP ${where}: cannot steer the SO_REUSEPORT group by SPI: ${why}`, e);
    }
  }

  /**
   * Steers this socket's SO_REUSEPORT group by OpenVPN peer-id (the SSL VPN's UDP socket on the
   * multi-queue data plane): P_DATA_V2 (opcode 9) goes to member (peer-id % groupSize), where the
   * peer-id is bytes 1..3; control packets, P_DATA_V1 and datagrams shorter than 4 bytes go to
   * member 0. Members are numbered in bind order. Throws IoError when the kernel or the addon cannot.
   */
  steerByPeerId(groupSize: number): void {
    const where = fmtEndpoint(this.address, this.port);
    if (!this.handle.steerByPeerId) throw new IoError(`UDP ${where}: the native addon cannot steer by peer-id (rebuild it)`);
    try {
      this.handle.steerByPeerId(groupSize);
    } catch (e) {
      const why = isNativeErrnoError(e) ? `${e.syscall}: ${e.message}` : String(e);
      throw new IoError(`UDP ${where}: cannot steer the SO_REUSEPORT group by peer-id: ${why}`, e);
    }
  }

  start(onBatch: (batch: PacketBatch) => void): void {
    if (this.closed) throw new IoError(`UDP ${fmtEndpoint(this.address, this.port)}: start after close`);
    if (this.onBatch) throw new IoError(`UDP ${fmtEndpoint(this.address, this.port)}: already started`);
    this.onBatch = onBatch;
    const b = this.batch;
    const readMax = b.slotSize - b.headroom;
    this.handle.start(
      b.buf, b.off, b.len, b.family, b.addr, b.port, b.capacity, b.slotSize, b.headroom, readMax,
      (n) => this.deliver(n),
      this.localFamily, this.localAddr,
    );
  }

  private deliver(n: number): void {
    if (this.closed || !this.onBatch) return;
    this.batch.count = n;
    this.onBatch(this.batch);
  }

  /**
   * The local address datagram i of the current batch was sent to, on a wildcard socket (the
   * address the peer reached); null on a socket bound to one address or when the kernel said none.
   * Valid during the onBatch call, like the batch.
   */
  localAddressOf(i: number): string | null {
    const f = this.localFamily[i];
    if (f !== 4 && f !== 6) return null;
    return bytesToIp(this.localAddr.subarray(i * 16, i * 16 + (f === 4 ? 4 : 16)));
  }

  send(batch: PacketBatch): number {
    if (this.closed || batch.count === 0) return 0;
    return this.handle.send(batch.buf, batch.off, batch.len, batch.family, batch.addr, batch.port, batch.count);
  }

  /**
   * Sends one datagram (control plane: IKE, OpenVPN control). `addr` is 4 or 16 bytes in network
   * order, or text. Returns false when the kernel refused it (counted in sendErrors).
   */
  sendTo(data: Uint8Array, family: 4 | 6, addr: Uint8Array | string, port: number): boolean {
    if (this.closed) return false;
    let a: Uint8Array;
    if (typeof addr === 'string') {
      const ip = parseIp(addr);
      if (!ip) return false;
      a = ip.bytes;
      family = ip.family;
    } else {
      a = addr;
    }
    return this.handle.sendTo(data, family, a, port);
  }

  stats(): NativeUdpStats {
    const c = this.counters;
    return {
      rxPackets: c[UDP_STAT.rxPackets]!,
      rxBytes: c[UDP_STAT.rxBytes]!,
      txPackets: c[UDP_STAT.txPackets]!,
      txBytes: c[UDP_STAT.txBytes]!,
      sendErrors: c[UDP_STAT.sendErrors]!,
      recvErrors: c[UDP_STAT.recvErrors]! + c[UDP_STAT.icmpErrors]!,
      recvBatches: c[UDP_STAT.recvBatches]!,
      pollErrors: c[UDP_STAT.pollErrors]!,
      icmpErrors: c[UDP_STAT.icmpErrors]!,
      truncated: c[UDP_STAT.truncated]!,
    };
  }

  /** Stops polling and closes the socket. Idempotent; no callback fires afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onBatch = null;
    this.handle.close();
  }
}

function fmtEndpoint(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}
