import { isAbsolute, resolve } from 'node:path';
import { alternativeFor, isPlainObject, type Node } from './field-table.js';
import { CONFIG_SECTIONS, type SectionName } from './sections.js';

/**
 * Walks one entry as written (the raw YAML/JSON value) alongside its field table, for the
 * resource store and the management API: what is a secret, what is a file path. Values the table
 * does not describe are left as they are (the loader refuses them later with a named field).
 */
function walk(node: Node, raw: unknown, visit: (node: Node, raw: unknown) => { replace: unknown } | null): unknown {
  const hit = visit(node, raw);
  if (hit) return hit.replace;
  if (node.kind === 'object' && isPlainObject(raw)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) {
      const f = node.fields[k];
      if (!f) {
        out[k] = v;
        continue;
      }
      const w = walk(f.node, v, visit);
      if (w !== OMIT) out[k] = w;
    }
    return out;
  }
  if (node.kind === 'list' && Array.isArray(raw)) return raw.map((v) => walk(node.item, v, visit));
  if (node.kind === 'either') {
    const alt = alternativeFor(node, raw);
    if (alt) return walk(alt, raw, visit);
  }
  return raw;
}

const OMIT = Symbol('omit');

/** The entry without its secrets (PSKs): what the API may show. Write-only fields are left out. */
export function withoutSecrets(section: SectionName, raw: unknown): unknown {
  return walk(CONFIG_SECTIONS[section], raw, (n) => (n.kind === 'secret' ? { replace: OMIT } : null));
}

/** The entry with every relative file path made absolute against `baseDir` (the file it came from). */
export function withAbsolutePaths(section: SectionName, raw: unknown, baseDir: string): unknown {
  return walk(CONFIG_SECTIONS[section], raw, (n, v) =>
    n.kind === 'path' && typeof v === 'string' && v !== '' && !isAbsolute(v) ? { replace: resolve(baseDir, v) } : null);
}

/**
 * A replacement entry keeps the stored secrets it does not restate: the API never shows them, so a
 * client that PUTs back what it read must not erase them. A secret given in `next` wins, and a
 * mapping whose shape changed (a field the stored one lacks) carries nothing.
 */
export function withStoredSecrets(section: SectionName, next: unknown, stored: unknown): unknown {
  const carry = (node: Node, n: unknown, s: unknown): unknown => {
    if (node.kind !== 'object' || !isPlainObject(n) || !isPlainObject(s)) return n;
    const out: Record<string, unknown> = { ...n };
    // a mapping that names a field the stored one lacks changed shape (auth: psk → cert + key): no carrying
    const sameShape = Object.keys(n).every((k) => k in s);
    for (const [k, f] of Object.entries(node.fields)) {
      if (f.node.kind === 'secret') {
        if (sameShape && out[k] === undefined && s[k] !== undefined) out[k] = s[k];
      } else if (out[k] !== undefined) out[k] = carry(f.node, out[k], s[k]);
    }
    return out;
  };
  return carry(CONFIG_SECTIONS[section], next, stored);
}

/**
 * One spelling per field, as the store keeps it: a customer gateway's former `id` (its IKE
 * identity) is stored as `ikeId`, since a resource's `id` is its API id.
 */
export function canonicalEntry(section: SectionName, raw: unknown): unknown {
  if (section !== 'customerGateways' || !isPlainObject(raw) || raw.id === undefined || raw.ikeId !== undefined) return raw;
  const { id, ...rest } = raw;
  return { ...rest, ikeId: id };
}
