/**
 * The kinds' request-body schemas (JSON Schema 2020-12, as /v1/openapi.json publishes them from
 * src/gateway/resources.ts) drive the console's forms: this file turns a schema into form fields,
 * form values back into a request body, and checks a body against the schema before it is sent.
 *
 * The validator covers the keywords those schemas use (type, properties, required,
 * additionalProperties, items, min/maxItems, uniqueItems, enum, const, anyOf, pattern,
 * min/maxLength, minimum/maximum, format ipv4/ipv6/cidr); the server's checks stay the authority
 * (names unique, references exist), and its ConfigError, which names the field, is shown beside it.
 */
/** A JSON Schema object (one kind's request body, or a part of it). */
export type Schema = { [k: string]: unknown };

/** Field path ("ike.proposals", "localSubnets") → message. */
export type FieldErrors = Record<string, string>;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const isIpv6 = (s: string) => /^[0-9a-f:.]+$/i.test(s) && s.includes(':') && (s.match(/::/g) ?? []).length <= 1;

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'string': return typeof v === 'string';
    case 'integer': return Number.isInteger(v);
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'boolean': return typeof v === 'boolean';
    case 'null': return v === null;
    case 'array': return Array.isArray(v);
    case 'object': return typeof v === 'object' && v !== null && !Array.isArray(v);
    default: return true;
  }
}

function formatOk(f: string, v: string): boolean {
  switch (f) {
    case 'ipv4': return IPV4.test(v);
    case 'ipv6': return isIpv6(v);
    default: return true;
  }
}

/** Errors of `v` against `s`, keyed by path; the first error per path wins. */
export function validate(s: Schema, v: unknown, path = '', out: FieldErrors = {}): FieldErrors {
  const put = (p: string, msg: string) => {
    out[p || '(body)'] ??= msg;
  };
  if (s.anyOf) {
    const alts = s.anyOf as Schema[];
    const tries = alts.map((a) => validate(a, v, path, {}));
    if (!tries.some((e) => Object.keys(e).length === 0)) {
      // alternatives of one value (an address or "%any"): name them all in one message
      if (tries.every((e) => Object.keys(e).every((p) => p === (path || '(body)')))) {
        const msgs = [...new Set(tries.flatMap((e) => Object.values(e)).flatMap((m) => m.replace(/^must be /, '').split(/, | or /)))];
        put(path, `must be ${msgs.length > 1 ? `${msgs.slice(0, -1).join(', ')} or ${msgs[msgs.length - 1]}` : msgs[0]}`);
        return out;
      }
      // else the alternative whose type matched (an object with a bad field)
      const typed = alts.findIndex((a) => a.type !== undefined && typeOk(String(a.type), v));
      Object.entries(typed >= 0 ? tries[typed]! : tries[0]!).forEach(([p, m]) => put(p, m));
      return out;
    }
  }
  if (s.const !== undefined && v !== s.const) put(path, `must be ${JSON.stringify(s.const)}`);
  if (s.enum && !(s.enum as unknown[]).includes(v)) put(path, `must be one of ${(s.enum as unknown[]).join(', ')}`);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [String(s.type)];
    if (!types.some((t) => typeOk(t, v))) {
      put(path, `must be ${types.join(' or ')}`);
      return out;
    }
  }
  if (typeof v === 'string') {
    if (typeof s.minLength === 'number' && v.length < s.minLength) put(path, s.minLength === 1 ? 'must not be empty' : `must be at least ${s.minLength} characters`);
    if (typeof s.maxLength === 'number' && v.length > s.maxLength) put(path, `must be at most ${s.maxLength} characters`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) put(path, `does not match ${s.pattern}`);
    if (typeof s.format === 'string' && !formatOk(s.format, v)) put(path, `must be an ${s.format.replace('ip', 'IP')} address`);
  }
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) put(path, `must be at least ${s.minimum}`);
    if (typeof s.maximum === 'number' && v > s.maximum) put(path, `must be at most ${s.maximum}`);
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) put(path, `needs at least ${s.minItems} item${s.minItems === 1 ? '' : 's'}`);
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) put(path, `takes at most ${s.maxItems} items`);
    if (s.uniqueItems && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) put(path, 'has duplicates');
    if (s.items) v.forEach((x, i) => {
      const e = validate(s.items as Schema, x, `${path}[${i}]`, {});
      // array items are edited in one field: report on the field itself
      for (const m of Object.values(e)) put(path, `item ${i + 1}: ${m}`);
    });
  }
  if (typeOk('object', v) && (s.properties || s.required)) {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const r of (s.required ?? []) as string[]) if (o[r] === undefined) put(join(path, r), 'is required');
    for (const [k, x] of Object.entries(o)) {
      if (props[k]) validate(props[k]!, x, join(path, k), out);
      else if (s.additionalProperties === false) put(join(path, k), 'is not a known field');
    }
  }
  return out;
}

export const join = (a: string, b: string) => (a ? `${a}.${b}` : b);

/** How a schema is edited in a form. */
export type FieldKind = 'text' | 'number' | 'boolean' | 'enum' | 'list' | 'json' | 'object';

/** The non-null alternative of an optional field (`anyOf: [X, {type: null}]`). */
export function unwrap(s: Schema): Schema {
  const alts = s.anyOf as Schema[] | undefined;
  if (!alts) return s;
  const real = alts.filter((a) => a.type !== 'null');
  if (real.length === 1) return { ...real[0]!, description: real[0]!.description ?? s.description };
  return s;
}

export function fieldKind(s0: Schema): FieldKind {
  const s = unwrap(s0);
  if (s.enum) return 'enum';
  if (s.type === 'boolean') return 'boolean';
  if (s.type === 'integer' || s.type === 'number') return 'number';
  if (s.type === 'object' && s.properties) return 'object';
  if (s.type === 'array') {
    const it = unwrap((s.items ?? {}) as Schema);
    return it.type === 'string' || it.anyOf ? 'list' : 'json';
  }
  if (s.type === 'object') return 'json';
  return 'text';
}

/** Form values: path → the text in its input ("true"/"" for checkboxes). */
export type FormValues = Record<string, string>;

/** Form values from a resource (for edit forms): only fields the schema knows. */
export function valuesOf(s: Schema, o: Record<string, unknown>, path = '', out: FormValues = {}): FormValues {
  const props = (unwrap(s).properties ?? {}) as Record<string, Schema>;
  for (const [k, ps] of Object.entries(props)) {
    const v = o[k];
    const p = join(path, k);
    if (v === undefined || v === null || ps.writeOnly) continue;
    switch (fieldKind(ps)) {
      case 'object': if (typeof v === 'object') valuesOf(ps, v as Record<string, unknown>, p, out); break;
      case 'list': out[p] = Array.isArray(v) ? v.join(', ') : String(v); break;
      case 'json': out[p] = JSON.stringify(v, null, 2); break;
      case 'boolean': out[p] = v ? 'true' : ''; break;
      default: out[p] = String(v);
    }
  }
  return out;
}

/**
 * A request body from form values: empty fields are left out (the server's default applies);
 * numbers are parsed when they look like numbers (durations such as "4h" stay strings where the
 * schema accepts them); a JSON field that does not parse is reported against its path.
 */
export function bodyOf(s: Schema, values: FormValues, path = '', errors: FieldErrors = {}): Record<string, unknown> {
  const props = (unwrap(s).properties ?? {}) as Record<string, Schema>;
  const out: Record<string, unknown> = {};
  for (const [k, ps] of Object.entries(props)) {
    const p = join(path, k);
    const kind = fieldKind(ps);
    if (kind === 'object') {
      const sub = bodyOf(ps, values, p, errors);
      if (Object.keys(sub).length) out[k] = sub;
      continue;
    }
    const raw = values[p];
    if (raw === undefined || raw.trim() === '') continue;
    const t = raw.trim();
    switch (kind) {
      case 'boolean': out[k] = raw === 'true'; break;
      case 'number': out[k] = /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t; break;
      case 'list': out[k] = t.split(/[\s,]+/).filter(Boolean).map((x) => (/^\d+$/.test(x) && acceptsNumber(unwrap(ps).items as Schema) ? Number(x) : x)); break;
      case 'json':
        try {
          out[k] = JSON.parse(t);
        } catch {
          errors[p] = 'is not valid JSON';
        }
        break;
      default: out[k] = /^\d+$/.test(t) && acceptsNumber(ps) && !acceptsString(ps) ? Number(t) : t;
    }
  }
  return out;
}

function types(s: Schema | undefined): string[] {
  if (!s) return [];
  if (s.anyOf) return (s.anyOf as Schema[]).flatMap(types);
  return Array.isArray(s.type) ? (s.type as string[]) : s.type ? [String(s.type)] : [];
}
const acceptsNumber = (s: Schema | undefined) => types(s).some((t) => t === 'integer' || t === 'number');
const acceptsString = (s: Schema | undefined) => types(s).includes('string');

/**
 * The field a server ConfigError names: its message starts with the config path
 * (`vpnConnections[dc1].localSubnets[0]: ...`, src/common/errors.ts ConfigError). Returns the form
 * path ("localSubnets") or null when the message names no field the form has.
 */
export function fieldOfServerError(message: string, known: readonly string[]): string | null {
  const head = /^(?:config\s+)?([^\s:]+)\s*:/.exec(message)?.[1] ?? '';
  // drop the section and entry selector, and array indexes
  const parts = head.replace(/\[[^\]]*\]/g, '.').split('.').filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const p = parts.slice(i).join('.');
    if (known.includes(p)) return p;
  }
  for (const k of [...known].sort((a, b) => b.length - a.length)) if (new RegExp(`\\b${k.replace(/\./g, '\\.')}\\b`).test(message)) return k;
  return null;
}
