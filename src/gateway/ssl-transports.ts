/**
 * Where the SSL VPN shell's JsDataPaths send their encrypted packets (DataTransport of
 * src/ssl/server/data-path.ts): a slot of the shared sendmmsg batch (NativeUdp/MemoryUdp), a
 * node:dgram datagram, or a TCP frame. Per packet: the batch slot or the TCP staging buffer is
 * encrypted in place; dgram needs one buffer per packet because the socket keeps it until sent.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { Socket as TcpSocket } from 'node:net';
import { PacketBatch } from '../common/batch.js';
import { parseIp } from '../common/ip.js';
import type { SslTcpWriter } from '../dataplane/data-plane.js';
import type { UdpBind } from '../net/udp-bind.js';
import { TCP_LENGTH_SIZE, writeTcpLength } from '../ssl/wire/tcp-framing.js';
import type { DataTransport, SslEndpoint } from '../ssl/server/data-path.js';
import type { SslServerCounters } from '../ssl/server/session-manager.js';

// --- implementation choices ---
/** TCP output queue above which data packets are dropped rather than buffered */
export const TCP_MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** bytes of one TCP session's staging buffer (frames of a batch are written to the socket at once) */
export const TCP_STAGING_BYTES = 64 * 1024;
/** outgoing data datagrams per sendmmsg batch */
export const UDP_TX_BATCH = 64;
export const UDP_TX_SLOT = 2048;

/** A UdpBind with the single-datagram control-plane send (NativeUdp and MemoryUdp have it). */
export interface BatchUdp extends UdpBind {
  sendTo(data: Uint8Array, family: 4 | 6, addr: Uint8Array | string, port: number): boolean;
  /** the socket's descriptor when it is a kernel socket (NativeUdp): the SSL offload can poll it */
  readonly fd?: number;
}

/** The shared sendmmsg batch of the UDP socket; flushed at the end of each batch or event-loop turn. */
export class UdpTx {
  readonly batch = new PacketBatch(UDP_TX_BATCH, UDP_TX_SLOT, 0);
  bind: BatchUdp | null = null;
  private scheduled = false;
  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flush();
  };

  constructor(private readonly counters: SslServerCounters) {}

  /** the offset of the next free slot (flushes a full batch first) */
  slot(): number {
    const b = this.batch;
    if (b.count === b.capacity) this.flush();
    return b.count * b.slotSize;
  }

  queue(o: number, n: number, family: 4 | 6, addr: Buffer, port: number): void {
    const b = this.batch;
    const i = b.count++;
    b.off[i] = o;
    b.len[i] = n;
    b.family[i] = family;
    addr.copy(b.addr, i * 16);
    b.port[i] = port;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  flush(): void {
    const b = this.batch;
    if (b.count === 0 || !this.bind) return;
    const sent = this.bind.send(b);
    if (sent < b.count) this.counters.sendErrors += b.count - sent;
    b.count = 0;
  }
}

/** A UDP session's packets as slots of the shared batch (encrypted in place, no copy). */
export class BatchUdpTransport implements DataTransport {
  slotOff = 0;
  /** the remote address in network order (16 bytes, IPv4 in the first 4) */
  private readonly addr = Buffer.alloc(16);
  private family: 4 | 6 = 4;
  private port = 0;

  constructor(
    private readonly tx: UdpTx,
    remote: SslEndpoint,
    readonly now: () => number,
  ) {
    this.setRemote(remote);
  }

  reserve(): Buffer {
    this.slotOff = this.tx.slot();
    return this.tx.batch.buf;
  }

  commit(n: number): void {
    this.tx.queue(this.slotOff, n, this.family, this.addr, this.port);
  }

  flush(): void {
    this.tx.flush();
  }

  setRemote(remote: SslEndpoint): void {
    const ip = parseIp(remote.address);
    this.addr.fill(0);
    if (ip) {
      ip.bytes.copy(this.addr);
      this.family = ip.family;
    }
    this.port = remote.port;
  }
}

/**
 * node:dgram: one send per packet (headroom for a TCP length kept so both transports share the layout).
 * node:dgram cannot choose a source address per datagram: on a multihomed host listening on a
 * wildcard address, replies leave from the address the route picks. The daemon therefore binds
 * the SSL VPN's UDP socket with NativeUdp (src/gateway/vpn-servers.ts), which answers each client
 * from the address it reached (src/native/io/pktinfo.h); this transport is for embedders and tests.
 */
export class DgramTransport implements DataTransport {
  readonly slotOff = TCP_LENGTH_SIZE;
  private out: Buffer = Buffer.alloc(0);
  private address: string;
  private port: number;

  constructor(
    private readonly socket: () => UdpSocket | null,
    remote: SslEndpoint,
    readonly now: () => number,
  ) {
    this.address = remote.address;
    this.port = remote.port;
  }

  reserve(room: number): Buffer {
    this.out = Buffer.allocUnsafe(TCP_LENGTH_SIZE + room);
    return this.out;
  }

  commit(n: number): void {
    this.socket()?.send(this.out, TCP_LENGTH_SIZE, n, this.port, this.address);
  }

  flush(): void {}

  setRemote(remote: SslEndpoint): void {
    this.address = remote.address;
    this.port = remote.port;
  }
}

/**
 * One TCP connection: each packet is a frame (2-byte length, then the packet) in a staging buffer,
 * and the frames of a batch go to the socket as ONE write at flush() (the end of the data plane's
 * batch), or at the latest on the next tick (packets sent outside a batch, e.g. keepalive pings).
 * The socket keeps views of what it was given until sent, so a full staging buffer is replaced,
 * never reused: one allocation per TCP_STAGING_BYTES, none per packet.
 */
export class TcpTransport implements DataTransport {
  slotOff = TCP_LENGTH_SIZE;
  private buf: Buffer = Buffer.allocUnsafe(TCP_STAGING_BYTES);
  /** [start, used): committed frames not yet handed to the socket */
  private start = 0;
  private used = 0;
  private scheduled = false;
  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flush();
  };

  constructor(
    private readonly sock: TcpSocket,
    private readonly counters: SslServerCounters,
    readonly now: () => number,
  ) {}

  reserve(room: number): Buffer {
    if (this.used + TCP_LENGTH_SIZE + room > this.buf.length) {
      this.flush();
      this.buf = Buffer.allocUnsafe(Math.max(TCP_STAGING_BYTES, TCP_LENGTH_SIZE + room));
      this.start = 0;
      this.used = 0;
    }
    this.slotOff = this.used + TCP_LENGTH_SIZE;
    return this.buf;
  }

  commit(n: number): void {
    if (this.sock.writableLength + (this.used - this.start) > TCP_MAX_QUEUED_BYTES) {
      this.counters.tcpBackpressureDrops++;
      return;
    }
    writeTcpLength(this.buf, this.used, n);
    this.used += TCP_LENGTH_SIZE + n;
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flushSoon);
    }
  }

  flush(): void {
    if (this.used === this.start) return;
    if (!this.sock.destroyed) this.sock.write(this.buf.subarray(this.start, this.used));
    this.start = this.used;
  }

  setRemote(): void {}
}

/**
 * The socket side of a TCP session whose packets the native data plane encrypts and frames
 * (SslOffload.setSslTcpWriter): each batch's frames arrive as one Buffer of their own, written with
 * one socket write. TcpTransport's rule holds: above TCP_MAX_QUEUED_BYTES of queued output the
 * batch is dropped and its frames counted, rather than buffered without bound.
 */
export function tcpBatchWriter(sock: TcpSocket, counters: SslServerCounters): SslTcpWriter {
  return (buf: Buffer, frames: number): void => {
    if (sock.destroyed) return;
    if (sock.writableLength + buf.length > TCP_MAX_QUEUED_BYTES) {
      counters.tcpBackpressureDrops += frames;
      return;
    }
    sock.write(buf);
  };
}
