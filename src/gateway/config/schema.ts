import { ConfigError } from '../../common/errors.js';
import { parseIp, parsePrefix } from '../../common/ip.js';
import { parseDurationSec } from './duration.js';
import type { AddressSpec, PrefixSpec } from './types.js';

/**
 * Small typed readers over the raw YAML tree. Each one names the field path in its ConfigError,
 * and `section` rejects keys it does not know, so a typo never passes silently.
 */

export type Raw = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Reads a mapping and rejects unknown keys. A missing optional section reads as {}. */
export function section(v: unknown, path: string, keys: readonly string[], required = false): Raw {
  if (v === undefined || v === null) {
    if (required) throw new ConfigError(path, undefined, `a mapping with keys ${keys.join(', ')}`);
    return {};
  }
  if (!isPlainObject(v)) throw new ConfigError(path, v, `a mapping with keys ${keys.join(', ')}`);
  for (const k of Object.keys(v)) {
    // the key name, never the value: a misspelt "pks:" must not print the secret under it
    if (!keys.includes(k)) throw new ConfigError(join(path, k), k, `unknown key; allowed here: ${keys.join(', ')}`);
  }
  return v;
}

export function list(v: unknown, path: string, what: string, opts: { min?: number; max?: number } = {}): unknown[] {
  if (!Array.isArray(v)) throw new ConfigError(path, v, `a list of ${what}`);
  const min = opts.min ?? 0;
  if (v.length < min) throw new ConfigError(path, v, `a list of at least ${min} ${what}`);
  if (opts.max !== undefined && v.length > opts.max) throw new ConfigError(path, v, `a list of at most ${opts.max} ${what}`);
  return v;
}

export function optionalList(v: unknown, path: string, what: string, opts: { min?: number; max?: number } = {}): unknown[] | undefined {
  return v === undefined || v === null ? undefined : list(v, path, what, opts);
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function name(v: unknown, path: string): string {
  if (typeof v !== 'string' || !NAME_RE.test(v)) {
    throw new ConfigError(path, v, 'a name of 1-64 letters, digits, "_", "-", "." starting with a letter or digit');
  }
  return v;
}

export function str(v: unknown, path: string, what = 'a non-empty string'): string {
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(path, v, what);
  return v;
}

export function optionalStr(v: unknown, path: string, what?: string): string | undefined {
  return v === undefined || v === null ? undefined : str(v, path, what);
}

export function oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(path, v, `one of ${allowed.join(', ')}`);
  }
  return v as T;
}

export function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(path, v, 'true or false');
  return v;
}

export function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(path, v, `an integer from ${min} to ${max}`);
  }
  return v;
}

export function durationSec(v: unknown, path: string, minSec: number, maxSec: number): number {
  const sec = parseDurationSec(v);
  const allowed = `a duration like 4h, 30m, 45s, 1d or a number of seconds, from ${minSec}s to ${maxSec}s`;
  if (sec === null || sec < minSec || sec > maxSec) throw new ConfigError(path, v, allowed);
  return sec;
}

export function address(v: unknown, path: string): AddressSpec {
  const addr = typeof v === 'string' ? parseIp(v) : null;
  if (!addr) throw new ConfigError(path, v, 'an IPv4 or IPv6 address');
  return { text: v as string, addr };
}

/** A CIDR prefix; host bits must be zero unless `loose` (interface addresses). */
export function prefix(v: unknown, path: string, loose = false): PrefixSpec {
  const p = typeof v === 'string' && v.includes('/') ? parsePrefix(v, loose) : null;
  if (!p) {
    const allowed = loose
      ? 'an address with a prefix length, like 169.254.0.1/32'
      : 'a CIDR prefix with the host bits zero, like 10.2.0.0/16';
    throw new ConfigError(path, v, allowed);
  }
  return { text: v as string, prefix: p };
}
