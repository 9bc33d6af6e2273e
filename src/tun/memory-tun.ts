/**
 * In-memory TunDevice for unit tests of the layers above (gateway, data plane).
 *
 * - `inject(packet)` queues a packet as if the kernel routed it into the TUN; queued packets are
 *   delivered to `onBatch` in batches (up to the batch capacity) on a later event-loop turn
 *   (setImmediate), never synchronously, like the native device.
 * - `write(batch)` records a copy of each packet in `written` (what the kernel would receive).
 */
import { PacketBatch } from '../common/batch.js';
import { IoError } from '../common/errors.js';
import type { TunDevice, TunStats } from './tun-device.js';

export interface MemoryTunOptions {
  name?: string;
  mtu?: number;
  batchSize?: number;
  headroom?: number;
  tailroom?: number;
}

export class MemoryTun implements TunDevice {
  readonly name: string;
  readonly mtu: number;
  readonly batch: PacketBatch;
  /** Copies of the packets written to the device, in order. */
  readonly written: Buffer[] = [];
  private readonly queue: Buffer[] = [];
  private queueHead = 0;
  private onBatch: ((batch: PacketBatch) => void) | null = null;
  private scheduled = false;
  private closed = false;
  private readonly counters: TunStats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, readBatches: 0, writeErrors: 0 };

  constructor(opts: MemoryTunOptions = {}) {
    this.name = opts.name ?? 'mtun0';
    this.mtu = opts.mtu ?? 1400;
    const headroom = opts.headroom ?? 64;
    const slot = Math.ceil((headroom + this.mtu + (opts.tailroom ?? 64)) / 64) * 64;
    this.batch = new PacketBatch(opts.batchSize ?? 64, slot, headroom);
  }

  /** Queues packets "from the kernel". Packets over the MTU are refused (a TUN never yields them). */
  inject(...packets: Uint8Array[]): void {
    if (this.closed) return;
    for (const p of packets) {
      if (p.length > this.mtu) throw new RangeError(`MemoryTun.inject: ${p.length} bytes exceeds MTU ${this.mtu}`);
      this.queue.push(Buffer.from(p));
    }
    this.schedule();
  }

  /** Packets injected but not yet delivered. */
  get pending(): number {
    return this.queue.length - this.queueHead;
  }

  start(onBatch: (batch: PacketBatch) => void): void {
    if (this.closed) throw new IoError(`MemoryTun ${this.name}: start after close`);
    if (this.onBatch) throw new IoError(`MemoryTun ${this.name}: already started`);
    this.onBatch = onBatch;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || !this.onBatch || this.pending === 0) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const b = this.batch;
    while (this.onBatch && !this.closed && this.pending > 0) {
      b.clear();
      while (b.count < b.capacity && this.queueHead < this.queue.length) {
        const p = this.queue[this.queueHead++]!;
        b.push(p);
        this.counters.rxPackets++;
        this.counters.rxBytes += p.length;
      }
      if (this.queueHead === this.queue.length) {
        this.queue.length = 0;
        this.queueHead = 0;
      }
      this.counters.readBatches++;
      this.onBatch(b);
    }
  }

  write(batch: PacketBatch): number {
    if (this.closed) return 0;
    let n = 0;
    for (let i = 0; i < batch.count; i++) {
      const off = batch.off[i]!;
      const len = batch.len[i]!;
      // Like the kernel: an empty packet or one that is not IPv4/IPv6 is refused (EINVAL).
      const version = len > 0 ? batch.buf[off]! >> 4 : 0;
      if (len === 0 || off + len > batch.buf.length || (version !== 4 && version !== 6)) {
        this.counters.writeErrors++;
        continue;
      }
      this.written.push(Buffer.from(batch.buf.subarray(off, off + len)));
      this.counters.txPackets++;
      this.counters.txBytes += len;
      n++;
    }
    return n;
  }

  stats(): TunStats {
    return { ...this.counters };
  }

  close(): void {
    this.closed = true;
    this.onBatch = null;
    this.queue.length = 0;
    this.queueHead = 0;
  }
}
