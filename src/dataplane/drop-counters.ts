import { DROP_REASON_COUNT, DROP_REASON_NAMES } from '../esp/drop-reason.js';

/**
 * Drop counts by reason name, read from `counts[base + reason]` for every reason but `none` (0).
 * Shared by both backends: `DataPlane.dropCounters()` lists every reason, `SaCounters.drops`
 * (`nonZero`) only those that happened.
 */
export function dropsByName(counts: ArrayLike<number>, base: number, nonZero: boolean): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 1; i < DROP_REASON_COUNT; i++) {
    const n = counts[base + i]!;
    if (!nonZero || n > 0) out[DROP_REASON_NAMES[i]!] = n;
  }
  return out;
}
