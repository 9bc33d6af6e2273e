/**
 * Durations in the config: "4h", "30m", "45s", "1d", a sequence of them ("1h30m"), or a plain
 * number of seconds (YAML number or digit string). Returns whole seconds, or null when the text
 * is not a duration.
 */
const UNIT_SEC: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

export function parseDurationSec(value: unknown): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : null;
  if (typeof value !== 'string') return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  if (!/^(\d+[smhd])+$/.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/(\d+)([smhd])/g)) total += Number(m[1]) * UNIT_SEC[m[2]!]!;
  return Number.isSafeInteger(total) ? total : null;
}

/** The shortest exact spelling of a duration ("4h", "90s", "1h30m"), for messages and status. */
export function formatDuration(sec: number): string {
  if (sec === 0) return '0s';
  let rest = sec;
  let out = '';
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= n) {
      out += `${Math.floor(rest / n)}${u}`;
      rest %= n;
    }
  }
  return out;
}
