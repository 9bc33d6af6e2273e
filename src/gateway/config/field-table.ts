import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../../common/errors.js';
import { parseIp, parsePrefix, prefixContains, type IpAddr, type Prefix } from '../../common/ip.js';
import { parseDurationSec } from './duration.js';
import { checkProposals, type ParsedProposals } from './proposals.js';
import { Secret } from './secret.js';

/**
 * The config's field tables are data: each section is an `object(...)` of fields, each field a
 * node kind with its bounds, enum values, default and description. Two interpreters read the same
 * tables: `readNode` (below) turns a parsed YAML tree into the typed config objects and throws a
 * ConfigError naming the path, the value and what is allowed; `jsonSchemaOf` (json-schema.ts)
 * turns them into JSON Schema. The TypeScript types of the config objects are derived from the
 * tables with `Out<...>` (types.ts), so a key is written down once.
 *
 * Rules that relate fields to each other (references between sections, overlaps, pool sizes,
 * IKE identities) run in an object's `finish` step; JSON Schema cannot express them, so the
 * schema only mentions them in descriptions.
 */

export interface PrefixSpec {
  /** As written in the file ("10.2.0.0/16"). */
  readonly text: string;
  readonly prefix: Prefix;
}

export interface AddressSpec {
  readonly text: string;
  readonly addr: IpAddr;
}

/** A proposal list as written and as the IKE config parser reads it. */
export interface ProposalsSpec {
  readonly text: string;
  readonly parsed: ParsedProposals;
}

/** What a reader sees besides the value: where relative paths resolve, the top-level sections read so far. */
export interface ReadContext {
  readonly baseDir: string;
  readonly done: Record<string, unknown>;
}

/** The output type of a node, carried as a phantom property (never set at runtime). */
declare const OUT: unique symbol;

/** Address ranges a prefix may refuse (see `unicast` below). */
export const RESERVED_V4_TEXT = ['0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4'] as const;
export const RESERVED_V6_TEXT = ['::1/128', 'ff00::/8'] as const;
export const LINK_LOCAL_V4_TEXT = '169.254.0.0/16';

type Finish = (value: any, path: string, ctx: ReadContext) => unknown;
type ListCheck = (items: any[], path: string, ctx: ReadContext) => void;

export type NodeSpec =
  | { readonly kind: 'string'; readonly what: string; readonly pattern?: RegExp }
  /** A name: 1-64 letters, digits, "_", "-", "." starting with a letter or digit. */
  | { readonly kind: 'name' }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  | { readonly kind: 'boolean' }
  /** An integer in [min, max], or the string `orConst` when given ("auto"). */
  | { readonly kind: 'integer'; readonly min: number; readonly max: number; readonly orConst?: string }
  /** "4h", "30m", "1h30m", or a number of seconds; read as whole seconds in [minSec, maxSec]. */
  | { readonly kind: 'duration'; readonly minSec: number; readonly maxSec: number }
  /** An IP address, or the string `orConst` ("%any"), which reads as null. */
  | { readonly kind: 'address'; readonly orConst?: string }
  /**
   * A CIDR prefix. `hostBits`: an interface address with host bits set is fine. `family`: only
   * this family. `unicast`: refuses the reserved ranges (and link-local when 'noLinkLocal').
   * `maxLen`: the longest prefix length allowed.
   */
  | {
      readonly kind: 'prefix';
      readonly hostBits?: boolean;
      readonly family?: 4;
      readonly unicast?: boolean | 'noLinkLocal';
      readonly maxLen?: number;
    }
  /** A secret string ("a pre-shared key"); its value is never echoed in errors. */
  | { readonly kind: 'secret'; readonly what: string; readonly minLength: number; readonly maxLength: number }
  /** A file or folder path; relative paths resolve against the config file's folder. */
  | { readonly kind: 'path'; readonly what: string }
  /** A strongSwan proposal list ("aes128gcm16-prfsha256-x25519,default"). */
  | { readonly kind: 'proposals'; readonly proto: 'ike' | 'esp' }
  | {
      readonly kind: 'list';
      readonly item: Node;
      readonly what: string;
      readonly min?: number;
      readonly max?: number;
      /** Repeated items are refused (by `check`); JSON Schema says uniqueItems. */
      readonly uniqueItems?: boolean;
      readonly check?: ListCheck;
    }
  /**
   * One of several nodes, picked by the value's JSON type: a mapping reads with the 'object'
   * alternative, a list with the 'list' one, a number with the 'integer' one, a string with the
   * first that takes strings ("10.0.0.0/8" or { cidr, protocol, ports }).
   */
  | { readonly kind: 'either'; readonly alternatives: readonly Node[]; readonly what: string }
  | {
      readonly kind: 'object';
      readonly fields: Readonly<Record<string, Field>>;
      /** A scalar in place of this mapping is most likely a secret: never echo it. */
      readonly hideScalar?: boolean;
      /** Cross-field rules and derived values, after every field has been read. */
      readonly finish?: Finish;
      /** For JSON Schema: rules the schema cannot say (references, overlaps). */
      readonly rules?: string;
    };

export type Node<T = unknown> = NodeSpec & { readonly description?: string; readonly [OUT]?: T };

/** The type a node reads to. */
export type Out<N> = N extends { readonly [OUT]?: infer T } ? Exclude<T, undefined> : never;

export type Presence = 'required' | 'default' | 'optional';

export interface Field<T = unknown, P extends Presence = Presence> {
  readonly node: Node<T>;
  /** required: missing is an error; default: missing reads `default`; optional: missing reads null. */
  readonly presence: P;
  /** The raw (YAML) value used when missing; read like input, and published in JSON Schema. */
  readonly default?: unknown;
  /** Whether an explicit null counts as missing (mappings always do). */
  readonly nullable: boolean;
  readonly description?: string;
}

type FieldOut<F> = F extends Field<infer T, infer P> ? (P extends 'optional' ? T | null : T) : never;

/** The record an object's fields read to, before `finish`. */
export type Shape<Fs> = { readonly [K in keyof Fs]: FieldOut<Fs[K]> };

// ---- node constructors ----

export function str(what: string, o: { pattern?: RegExp; description?: string } = {}): Node<string> {
  return { kind: 'string', what, ...o };
}
export function name(description?: string): Node<string> {
  return { kind: 'name', description };
}
export function oneOf<const V extends readonly string[]>(values: V, description?: string): Node<V[number]> {
  return { kind: 'enum', values, description };
}
export function bool(description?: string): Node<boolean> {
  return { kind: 'boolean', description };
}
export function int(min: number, max: number, description?: string): Node<number> {
  return { kind: 'integer', min, max, description };
}
export function intOr<const C extends string>(min: number, max: number, orConst: C, description?: string): Node<number | C> {
  return { kind: 'integer', min, max, orConst, description };
}
export function duration(minSec: number, maxSec: number, description?: string): Node<number> {
  return { kind: 'duration', minSec, maxSec, description };
}
export function address(description?: string): Node<AddressSpec> {
  return { kind: 'address', description };
}
export function addressOr(orConst: string, description?: string): Node<AddressSpec | null> {
  return { kind: 'address', orConst, description };
}
export function prefix(
  o: { hostBits?: boolean; family?: 4; unicast?: boolean | 'noLinkLocal'; maxLen?: number; description?: string } = {},
): Node<PrefixSpec> {
  return { kind: 'prefix', ...o };
}
export function secret(what: string, minLength: number, maxLength: number, description?: string): Node<Secret> {
  return { kind: 'secret', what, minLength, maxLength, description };
}
export function filePath(what: string, description?: string): Node<string> {
  return { kind: 'path', what, description };
}
export function proposals(proto: 'ike' | 'esp', description?: string): Node<ProposalsSpec> {
  return { kind: 'proposals', proto, description };
}
export function list<T>(
  item: Node<T>,
  what: string,
  o: { min?: number; max?: number; uniqueItems?: boolean; check?: (items: T[], path: string, ctx: ReadContext) => void; description?: string } = {},
): Node<readonly T[]> {
  return { kind: 'list', item, what, ...o } as Node<readonly T[]>;
}
/** A value of one of several shapes, told apart by JSON type (see the 'either' node). */
export function either<A, B>(what: string, a: Node<A>, b: Node<B>, description?: string): Node<A | B>;
export function either<A, B, C>(what: string, a: Node<A>, b: Node<B>, c: Node<C>, description?: string): Node<A | B | C>;
export function either(what: string, ...rest: (Node | string | undefined)[]): Node<unknown> {
  const description = typeof rest.at(-1) === 'string' || rest.at(-1) === undefined ? (rest.pop() as string | undefined) : undefined;
  return { kind: 'either', alternatives: rest as Node[], what, description };
}

/** Which alternative of an 'either' node reads `v` (by its JSON type), or undefined. */
export function alternativeFor(n: Extract<NodeSpec, { kind: 'either' }>, v: unknown): Node | undefined {
  const want = (a: Node): boolean => {
    if (isPlainObject(v)) return a.kind === 'object';
    if (Array.isArray(v)) return a.kind === 'list';
    if (typeof v === 'number') return a.kind === 'integer' || a.kind === 'duration';
    if (typeof v === 'boolean') return a.kind === 'boolean';
    if (typeof v === 'string') return !['object', 'list', 'integer', 'boolean', 'either'].includes(a.kind) || (a.kind === 'integer' && a.orConst === v);
    return false;
  };
  return n.alternatives.find(want);
}

type ObjectOptions = { hideScalar?: boolean; rules?: string; description?: string };

/** A mapping node, typed so that its fields can be looked up (CONFIG.fields.gateway). */
export type ObjectNode<T> = Extract<NodeSpec, { kind: 'object' }> & { readonly description?: string; readonly [OUT]?: T };

/** A mapping of fields; `finish` (cross-field rules, derived values) decides the type it reads to. */
export function object<const Fs extends Record<string, Field>, R>(
  fields: Fs,
  o: ObjectOptions & { finish: (v: Shape<Fs>, path: string, ctx: ReadContext) => R },
): ObjectNode<Readonly<R>>;
export function object<const Fs extends Record<string, Field>>(fields: Fs, o?: ObjectOptions): ObjectNode<Shape<Fs>>;
export function object(fields: Record<string, Field>, o: ObjectOptions & { finish?: Finish } = {}): ObjectNode<unknown> {
  return { kind: 'object', fields, ...o };
}

// ---- field constructors ----

export function required<T>(node: Node<T>, description?: string): Field<T, 'required'> {
  return { node, presence: 'required', nullable: false, description };
}
export function withDefault<T>(node: Node<T>, def: unknown, o: { nullable?: boolean; description?: string } = {}): Field<T, 'default'> {
  return { node, presence: 'default', default: def, nullable: o.nullable ?? false, description: o.description };
}
export function optional<T>(node: Node<T>, o: { nullable?: boolean; description?: string } = {}): Field<T, 'optional'> {
  return { node, presence: 'optional', nullable: o.nullable ?? false, description: o.description };
}

// ---- the reader ----

export type Raw = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const NAME_PATTERN = NAME_RE.source;
const NAME_WHAT = 'a name of 1-64 letters, digits, "_", "-", "." starting with a letter or digit';

const RESERVED = [...RESERVED_V4_TEXT, ...RESERVED_V6_TEXT].map((t) => parsePrefix(t)!);
const LINK_LOCAL_V4 = parsePrefix(LINK_LOCAL_V4_TEXT)!;

export function inside(inner: Prefix, outer: Prefix): boolean {
  return inner.family === outer.family && inner.len >= outer.len && prefixContains(outer, inner.bytes);
}

function mappingWhat(n: Extract<NodeSpec, { kind: 'object' }>): string {
  return `a mapping with keys ${Object.keys(n.fields).join(', ')}`;
}

/** Reads a field of a mapping (`raw` is the field's value, undefined when absent). */
export function readField(f: Field, raw: unknown, path: string, ctx: ReadContext): unknown {
  // a null where a secret's mapping belongs is reported like any other scalar there (hidden)
  const nullIsMissing = f.nullable || (f.node.kind === 'object' && !f.node.hideScalar);
  const missing = raw === undefined || (raw === null && nullIsMissing);
  if (!missing) return readNode(f.node, raw, path, ctx);
  if (f.presence === 'required') {
    if (f.node.kind === 'object') throw new ConfigError(path, undefined, mappingWhat(f.node));
    return readNode(f.node, undefined, path, ctx); // the node words "(missing)" its own way
  }
  if (f.presence === 'default') return readNode(f.node, f.default, path, ctx);
  return null;
}

/** Reads one value against its node; throws the first ConfigError. */
export function readNode(n: Node, v: unknown, path: string, ctx: ReadContext): unknown {
  switch (n.kind) {
    case 'string':
      if (typeof v !== 'string' || v.length === 0 || (n.pattern && !n.pattern.test(v))) throw new ConfigError(path, v, n.what);
      return v;
    case 'name':
      if (typeof v !== 'string' || !NAME_RE.test(v)) throw new ConfigError(path, v, NAME_WHAT);
      return v;
    case 'enum':
      if (typeof v !== 'string' || !n.values.includes(v)) throw new ConfigError(path, v, `one of ${n.values.join(', ')}`);
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') throw new ConfigError(path, v, 'true or false');
      return v;
    case 'integer':
      if (n.orConst !== undefined && v === n.orConst) return v;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < n.min || v > n.max) {
        const range = `an integer from ${n.min} to ${n.max}`;
        throw new ConfigError(path, v, n.orConst === undefined ? range : `"${n.orConst}" or ${range}`);
      }
      return v;
    case 'duration': {
      const sec = parseDurationSec(v);
      if (sec === null || sec < n.minSec || sec > n.maxSec) {
        throw new ConfigError(path, v, `a duration like 4h, 30m, 45s, 1d or a number of seconds, from ${n.minSec}s to ${n.maxSec}s`);
      }
      return sec;
    }
    case 'address': {
      if (n.orConst !== undefined) {
        if (typeof v !== 'string' || v.length === 0) throw new ConfigError(path, v, `an IP address or "${n.orConst}"`);
        if (v === n.orConst) return null;
      }
      const addr = typeof v === 'string' ? parseIp(v) : null;
      if (!addr) throw new ConfigError(path, v, 'an IPv4 or IPv6 address');
      return { text: v as string, addr } satisfies AddressSpec;
    }
    case 'prefix':
      return readPrefix(n, v, path);
    case 'secret':
      if (typeof v !== 'string') throw new ConfigError(path, v === undefined ? undefined : '(hidden)', `${n.what} string`);
      if (v.length < n.minLength || v.length > n.maxLength) {
        throw new ConfigError(path, '(hidden)', `${n.what} of ${n.minLength} to ${n.maxLength} characters`);
      }
      return new Secret(v);
    case 'path':
      if (typeof v !== 'string' || v.length === 0) throw new ConfigError(path, v, n.what);
      return isAbsolute(v) ? v : resolve(ctx.baseDir, v);
    case 'proposals': {
      if (typeof v !== 'string' || v.length === 0) throw new ConfigError(path, v, 'a proposal list');
      return { text: v, parsed: checkProposals(v, n.proto, path) } satisfies ProposalsSpec;
    }
    case 'list': {
      const min = n.min ?? 0;
      if (!Array.isArray(v)) throw new ConfigError(path, v, `a list of ${n.what}`);
      if (v.length < min) throw new ConfigError(path, v, `a list of at least ${min} ${n.what}`);
      if (n.max !== undefined && v.length > n.max) throw new ConfigError(path, v, `a list of at most ${n.max} ${n.what}`);
      const items = v.map((x, i) => readNode(n.item, x, join(path, i), ctx));
      n.check?.(items, path, ctx);
      return items;
    }
    case 'either': {
      const alt = alternativeFor(n, v);
      if (!alt) throw new ConfigError(path, v, n.what);
      return readNode(alt, v, path, ctx);
    }
    case 'object': {
      if (!isPlainObject(v)) {
        if (n.hideScalar && v !== undefined) throw new ConfigError(path, '(hidden)', mappingWhat(n).replace(/^a mapping with keys (\w+)$/, 'a mapping with key $1'));
        throw new ConfigError(path, v === null ? undefined : v, mappingWhat(n));
      }
      const keys = Object.keys(n.fields);
      for (const k of Object.keys(v)) {
        // the key name, never the value: a misspelt "pks:" must not print the secret under it
        if (!keys.includes(k)) throw new ConfigError(join(path, k), k, `unknown key; allowed here: ${keys.join(', ')}`);
      }
      const out: Raw = {};
      for (const k of keys) {
        out[k] = readField(n.fields[k]!, v[k], join(path, k), ctx);
        // the top level records each section as it is read, for the rules of later sections
        if (path === '') ctx.done[k] = out[k];
      }
      return n.finish ? n.finish(out, path, ctx) : out;
    }
  }
}

function readPrefix(n: Extract<NodeSpec, { kind: 'prefix' }>, v: unknown, path: string): PrefixSpec {
  const p = typeof v === 'string' && v.includes('/') ? parsePrefix(v, n.hostBits === true) : null;
  if (!p) {
    throw new ConfigError(path, v, n.hostBits
      ? 'an address with a prefix length, like 169.254.0.1/32'
      : 'a CIDR prefix with the host bits zero, like 10.2.0.0/16');
  }
  const text = v as string;
  if (n.family === 4 && p.family !== 4) throw new ConfigError(path, text, 'an IPv4 prefix');
  if (n.unicast) {
    const extra = n.unicast === 'noLinkLocal';
    if (RESERVED.some((r) => inside(p, r)) || (extra && inside(p, LINK_LOCAL_V4))) {
      throw new ConfigError(path, text, `a unicast subnet outside ${RESERVED_V4_TEXT.join(', ')}${extra ? `, ${LINK_LOCAL_V4_TEXT}` : ''}, ::1 and ff00::/8`);
    }
  }
  if (n.maxLen !== undefined && p.len > n.maxLen) throw new ConfigError(path, text, `a prefix of length /${n.maxLen} or shorter`);
  return { text, prefix: p };
}
