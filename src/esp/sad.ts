import type { EspSa } from './esp-sa.js';

/**
 * Security association database: SAs by SPI, one map per direction. Inbound SPIs are ours
 * (unique: IKE allocates them), outbound SPIs are the peer's inbound SPIs and are only unique per
 * peer, but in practice random 32-bit values; a clash replaces the older SA and is returned.
 */
export class Sad {
  private readonly inbound = new Map<number, EspSa>();
  private readonly outbound = new Map<number, EspSa>();

  /** Adds an SA; returns the SA it replaced (same SPI and direction), if any. */
  add(sa: EspSa): EspSa | undefined {
    const m = sa.direction === 'in' ? this.inbound : this.outbound;
    const old = m.get(sa.spi);
    m.set(sa.spi, sa);
    return old;
  }

  remove(spi: number, direction: 'in' | 'out'): EspSa | undefined {
    const m = direction === 'in' ? this.inbound : this.outbound;
    const sa = m.get(spi >>> 0);
    if (sa) m.delete(spi >>> 0);
    return sa;
  }

  get(spi: number, direction: 'in' | 'out'): EspSa | undefined {
    return (direction === 'in' ? this.inbound : this.outbound).get(spi >>> 0);
  }

  /** Inbound lookup by the SPI in the first 4 bytes of an ESP packet at buf[off] (caller checked len ≥ 4). */
  lookupInbound(buf: Buffer, off: number): EspSa | undefined {
    return this.inbound.get(buf.readUInt32BE(off));
  }

  get inboundCount(): number {
    return this.inbound.size;
  }

  get outboundCount(): number {
    return this.outbound.size;
  }

  clear(): void {
    this.inbound.clear();
    this.outbound.clear();
  }

  *all(): IterableIterator<EspSa> {
    yield* this.inbound.values();
    yield* this.outbound.values();
  }
}
