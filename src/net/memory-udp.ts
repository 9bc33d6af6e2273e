/**
 * In-memory UdpBind for unit tests: sockets bound on a `MemoryUdpNetwork` exchange datagrams by
 * (address, port). Delivery is asynchronous (setImmediate) and batch-shaped like the native socket:
 * everything queued for a socket before its turn arrives in batches of up to the batch capacity,
 * with the sender's endpoint in the slot's family/addr/port.
 *
 * `network.filter` can drop or observe datagrams (loss, reordering tests); datagrams to an endpoint
 * nobody has bound are counted in `network.undeliverable` (a real network would answer with ICMP).
 */
import { PacketBatch } from '../common/batch.js';
import { IoError } from '../common/errors.js';
import { bytesToIp, parseIp } from '../common/ip.js';
import type { UdpBind, UdpStats } from './udp-bind.js';

export interface MemoryDatagram {
  readonly fromFamily: 4 | 6;
  readonly fromAddr: Buffer;
  readonly fromPort: number;
  readonly toAddr: string;
  readonly toPort: number;
  readonly data: Buffer;
}

export class MemoryUdpNetwork {
  private readonly sockets = new Map<string, MemoryUdp>();
  private nextEphemeral = 40000;
  undeliverable = 0;
  /** Return false to drop a datagram in flight. */
  filter: ((d: MemoryDatagram) => boolean) | null = null;

  /** Binds a socket; port 0 picks an ephemeral port. Throws IoError, as NativeUdp.bind does, when the endpoint is taken. */
  bind(address: string, port = 0, opts: { batchSize?: number; slotSize?: number; headroom?: number } = {}): MemoryUdp {
    const ip = parseIp(address);
    if (!ip) throw new IoError(`MemoryUdpNetwork.bind: bad address ${address}`);
    const text = bytesToIp(ip.bytes);
    if (port === 0) {
      while (this.sockets.has(key(text, this.nextEphemeral))) this.nextEphemeral++;
      port = this.nextEphemeral++;
    }
    const k = key(text, port);
    if (this.sockets.has(k)) throw new IoError(`MemoryUdpNetwork.bind: ${k} in use`);
    const s = new MemoryUdp(this, ip.family, ip.bytes, text, port, opts);
    this.sockets.set(k, s);
    return s;
  }

  /** @internal */
  route(d: MemoryDatagram): void {
    if (this.filter && !this.filter(d)) return;
    const dst = this.sockets.get(key(d.toAddr, d.toPort));
    if (!dst) {
      this.undeliverable++;
      return;
    }
    dst.enqueue(d);
  }

  /** @internal */
  unbind(s: MemoryUdp): void {
    if (this.sockets.get(key(s.address, s.port)) === s) this.sockets.delete(key(s.address, s.port));
  }
}

function key(addr: string, port: number): string {
  return `${addr}|${port}`;
}

export class MemoryUdp implements UdpBind {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly batch: PacketBatch;
  private readonly addrBytes: Buffer;
  private readonly queue: MemoryDatagram[] = [];
  private onBatch: ((batch: PacketBatch) => void) | null = null;
  private scheduled = false;
  private closed = false;
  private readonly counters: UdpStats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, sendErrors: 0, recvErrors: 0 };

  /** Two sockets on a fresh network: 192.0.2.1:port and 192.0.2.2:port. */
  static pair(port = 4500): [MemoryUdp, MemoryUdp, MemoryUdpNetwork] {
    const net = new MemoryUdpNetwork();
    return [net.bind('192.0.2.1', port), net.bind('192.0.2.2', port), net];
  }

  /** Use `MemoryUdpNetwork.bind`. */
  constructor(
    private readonly net: MemoryUdpNetwork,
    family: 4 | 6,
    addrBytes: Buffer,
    address: string,
    port: number,
    opts: { batchSize?: number; slotSize?: number; headroom?: number },
  ) {
    this.family = family;
    this.addrBytes = addrBytes;
    this.address = address;
    this.port = port;
    this.batch = new PacketBatch(opts.batchSize ?? 64, opts.slotSize ?? 2048, opts.headroom ?? 0);
  }

  start(onBatch: (batch: PacketBatch) => void): void {
    if (this.closed) throw new IoError(`MemoryUdp ${this.address}:${this.port}: start after close`);
    if (this.onBatch) throw new IoError(`MemoryUdp ${this.address}:${this.port}: already started`);
    this.onBatch = onBatch;
    this.schedule();
  }

  send(batch: PacketBatch): number {
    if (this.closed) return 0;
    let n = 0;
    for (let i = 0; i < batch.count; i++) {
      const fam = batch.family[i]!;
      const alen = fam === 4 ? 4 : fam === 6 ? 16 : 0;
      const off = batch.off[i]!;
      const len = batch.len[i]!;
      if (alen === 0 || off + len > batch.buf.length) {
        this.counters.sendErrors++;
        continue;
      }
      const to = bytesToIp(batch.addr.subarray(i * 16, i * 16 + alen));
      this.emit(Buffer.from(batch.buf.subarray(off, off + len)), to, batch.port[i]!);
      n++;
    }
    return n;
  }

  /** Single-datagram send, same signature as NativeUdp.sendTo. */
  sendTo(data: Uint8Array, family: 4 | 6, addr: Uint8Array | string, port: number): boolean {
    if (this.closed) return false;
    const to = typeof addr === 'string' ? addr : bytesToIp(Buffer.from(addr.subarray(0, family === 4 ? 4 : 16)));
    const ip = parseIp(to);
    if (!ip) {
      this.counters.sendErrors++;
      return false;
    }
    this.emit(Buffer.from(data), bytesToIp(ip.bytes), port);
    return true;
  }

  private emit(data: Buffer, toAddr: string, toPort: number): void {
    this.counters.txPackets++;
    this.counters.txBytes += data.length;
    this.net.route({ fromFamily: this.family, fromAddr: this.addrBytes, fromPort: this.port, toAddr, toPort, data });
  }

  /** @internal */
  enqueue(d: MemoryDatagram): void {
    if (this.closed) return;
    this.queue.push(d);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || !this.onBatch || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const b = this.batch;
    let head = 0;
    while (this.onBatch && !this.closed && head < this.queue.length) {
      b.clear();
      while (b.count < b.capacity && head < this.queue.length) {
        const d = this.queue[head++]!;
        b.addr.fill(0, b.count * 16, b.count * 16 + 16);
        if (b.push(d.data, d.fromFamily, d.fromAddr, d.fromPort) < 0) {
          this.counters.recvErrors++; // bigger than a slot: truncated, dropped
          continue;
        }
        this.counters.rxPackets++;
        this.counters.rxBytes += d.data.length;
      }
      if (b.count > 0) this.onBatch(b);
    }
    this.queue.splice(0, head);
  }

  stats(): UdpStats {
    return { ...this.counters };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onBatch = null;
    this.queue.length = 0;
    this.net.unbind(this);
  }
}
