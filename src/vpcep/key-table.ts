/**
 * A fixed map from a pair of 32-bit integers to a non-negative integer, built once (when a policy is
 * set) and read per packet: open addressing with linear probing over typed arrays, sized to at most
 * half full, so a lookup allocates nothing and probes a short run. Keys are hashed with a per-instance
 * random seed so that crafted values cannot line up in one run.
 */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h;
}

export function tableSizeFor(entries: number): number {
  let n = 16;
  while (n < entries * 2) n *= 2;
  return n;
}

export class KeyTable {
  private readonly mask: number;
  private readonly keyA: Int32Array;
  private readonly keyB: Int32Array;
  /** value + 1; 0 marks an empty slot */
  private readonly vals: Int32Array;
  private readonly seed: number;
  size = 0;

  constructor(entries: number, seed: number) {
    const n = tableSizeFor(entries);
    this.mask = n - 1;
    this.keyA = new Int32Array(n);
    this.keyB = new Int32Array(n);
    this.vals = new Int32Array(n);
    this.seed = seed | 0;
  }

  private home(a: number, b: number): number {
    return mix32(mix32(a ^ this.seed) + b) & this.mask;
  }

  /** sets (a, b) → value (value ≥ 0); an existing key keeps its first value */
  set(a: number, b: number, value: number): void {
    a |= 0;
    b |= 0;
    let i = this.home(a, b);
    while (this.vals[i] !== 0) {
      if (this.keyA[i] === a && this.keyB[i] === b) return;
      i = (i + 1) & this.mask;
    }
    this.keyA[i] = a;
    this.keyB[i] = b;
    this.vals[i] = value + 1;
    this.size++;
  }

  /** the value for (a, b), or -1 */
  get(a: number, b: number): number {
    a |= 0;
    b |= 0;
    let i = this.home(a, b);
    for (;;) {
      const v = this.vals[i]!;
      if (v === 0) return -1;
      if (this.keyA[i] === a && this.keyB[i] === b) return v - 1;
      i = (i + 1) & this.mask;
    }
  }
}
