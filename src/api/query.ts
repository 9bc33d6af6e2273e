import { VpnError } from '../common/errors.js';
import {
  DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, RESOURCE_STATUSES, type JsonSchema, type ListQuery, type ResourceAction, type ResourceKind,
} from './service.js';

/** Query parameters a list reads itself; every other one is an exact-match filter. */
export const PAGING_PARAMETERS = ['limit', 'offset', 'marker'] as const;

type RawQuery = Readonly<Record<string, string | string[] | undefined>>;

function badParam(name: string, message: string): VpnError {
  return new VpnError('ERR_BAD_REQUEST', `query parameter ${name}: ${message}`);
}

/** One value per parameter: a repeated parameter is refused rather than silently using one. */
function single(q: RawQuery, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) throw badParam(name, 'given more than once');
  return v;
}

function nonNegativeInt(q: RawQuery, name: string, min: number, max: number): number | undefined {
  const v = single(q, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) throw badParam(name, `${JSON.stringify(v)} is not an integer from ${min} to ${max}`);
  return Number(v);
}

/**
 * The fields a list may be filtered on: `id`, `name`, `status` and every top-level property of
 * the kind's schema that holds a single value (a string, number, boolean or their anyOf), not an
 * object or a list.
 */
export function filterFields(kind: ResourceKind): string[] {
  const out = new Set(['id', 'name', 'status']);
  const props = (kind.schema.properties ?? {}) as Record<string, JsonSchema>;
  for (const [key, s] of Object.entries(props)) if (isScalar(s)) out.add(key);
  return [...out];
}

function isScalar(s: JsonSchema): boolean {
  if (s.writeOnly === true) return false;
  if (typeof s.type === 'string') return s.type !== 'object' && s.type !== 'array';
  const alts = s.anyOf as JsonSchema[] | undefined;
  if (alts) return alts.every(isScalar);
  return 'const' in s || 'enum' in s;
}

/** Reads `limit`, `offset`, `marker` and the filters of a list request; errors name the parameter. */
export function parseListQuery(kind: ResourceKind, q: RawQuery): ListQuery {
  const limit = nonNegativeInt(q, 'limit', 1, MAX_PAGE_LIMIT) ?? DEFAULT_PAGE_LIMIT;
  const offset = nonNegativeInt(q, 'offset', 0, Number.MAX_SAFE_INTEGER);
  const marker = single(q, 'marker');
  if (marker !== undefined && marker === '') throw badParam('marker', 'empty (give the id of the last item of the previous page)');
  if (marker !== undefined && offset !== undefined) throw badParam('marker', 'cannot be combined with offset');
  const allowed = filterFields(kind);
  const filters: Record<string, string> = {};
  for (const name of Object.keys(q)) {
    if ((PAGING_PARAMETERS as readonly string[]).includes(name)) continue;
    if (!allowed.includes(name)) throw badParam(name, `not a parameter of this list (paging: ${PAGING_PARAMETERS.join(', ')}; filters: ${allowed.join(', ')})`);
    const v = single(q, name)!;
    if (name === 'status' && !(RESOURCE_STATUSES as readonly string[]).includes(v)) throw badParam(name, `${JSON.stringify(v)} is not one of ${RESOURCE_STATUSES.join(', ')}`);
    filters[name] = v;
  }
  return { limit, ...(offset !== undefined ? { offset } : {}), ...(marker !== undefined ? { marker } : {}), filters };
}

/** Reads an action's query: only the parameters it declares, enum values checked. */
export function parseActionQuery(action: ResourceAction, q: RawQuery): Record<string, string> {
  const declared = action.query ?? {};
  const out: Record<string, string> = {};
  for (const name of Object.keys(q)) {
    const spec = declared[name];
    if (!spec) throw badParam(name, `not a parameter of ${action.name}${Object.keys(declared).length ? ` (allowed: ${Object.keys(declared).join(', ')})` : ''}`);
    const v = single(q, name)!;
    if (spec.enum && !spec.enum.includes(v)) throw badParam(name, `${JSON.stringify(v)} is not one of ${spec.enum.join(', ')}`);
    out[name] = v;
  }
  return out;
}
