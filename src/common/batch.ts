/**
 * A batch of packets in one preallocated buffer: the unit of data-plane I/O.
 *
 * Layout: `capacity` slots of `slotSize` bytes each. A packet in slot i starts at `off[i]`
 * (normally `i * slotSize + headroom`, leaving room to prepend headers in place) and is `len[i]`
 * bytes long. For UDP batches, `family[i]`/`addr`/`port[i]` hold the remote endpoint of slot i
 * (addr: 16 bytes per slot, an IPv4 address in the first 4).
 *
 * Ownership: a batch handed to an `onBatch` callback is valid only during that call; the I/O layer
 * reuses it. A batch given to `write`/`send` is read synchronously and may be reused on return.
 */
export class PacketBatch {
  readonly capacity: number;
  readonly slotSize: number;
  readonly headroom: number;
  readonly buf: Buffer;
  readonly off: Uint32Array;
  readonly len: Uint32Array;
  readonly family: Uint8Array;
  readonly addr: Buffer;
  readonly port: Uint16Array;
  count = 0;

  constructor(capacity: number, slotSize: number, headroom: number) {
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.headroom = headroom;
    this.buf = Buffer.alloc(capacity * slotSize);
    this.off = new Uint32Array(capacity);
    this.len = new Uint32Array(capacity);
    this.family = new Uint8Array(capacity);
    this.addr = Buffer.alloc(capacity * 16);
    this.port = new Uint16Array(capacity);
    this.resetOffsets();
  }

  /** Puts every slot's start back at `i * slotSize + headroom`. */
  resetOffsets(): void {
    for (let i = 0; i < this.capacity; i++) this.off[i] = i * this.slotSize + this.headroom;
  }

  /** A view of packet i (aliases the batch buffer). */
  packet(i: number): Buffer {
    return this.buf.subarray(this.off[i]!, this.off[i]! + this.len[i]!);
  }

  /** Copies `data` into the next slot (tests and control-plane sends); returns the slot index or -1 when full. */
  push(data: Uint8Array, family: 4 | 6 = 4, addr?: Uint8Array, port = 0): number {
    if (this.count >= this.capacity || data.length > this.slotSize - this.headroom) return -1;
    const i = this.count++;
    const o = i * this.slotSize + this.headroom;
    this.off[i] = o;
    this.buf.set(data, o);
    this.len[i] = data.length;
    this.family[i] = family;
    if (addr) this.addr.set(addr, i * 16);
    this.port[i] = port;
    return i;
  }

  clear(): void {
    this.count = 0;
    this.resetOffsets();
  }
}
