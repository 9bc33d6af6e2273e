import {
  LINK_LOCAL_V4_TEXT, NAME_PATTERN, RESERVED_V4_TEXT, RESERVED_V6_TEXT, type Field, type Node,
} from './field-table.js';
import { CONFIG, CONFIG_SECTIONS, type SectionName } from './sections.js';

/**
 * JSON Schema (draft 2020-12) of the config, generated from the same field tables the loader
 * reads with, for the management API's request validation and its OpenAPI document. A document
 * the schema refuses is refused by the loader too. The reverse does not hold everywhere: rules
 * that relate fields or sections (references, overlaps, pool sizes, IKE identity syntax, proposal
 * syntax) are only described (`description`), and so are the bounds of durations written as text.
 */
export type JsonSchema = { readonly [k: string]: unknown };

const DRAFT = 'https://json-schema.org/draft/2020-12/schema';
const DURATION_PATTERN = '^\\s*(\\d+|(\\d+[smhd])+)\\s*$';
// loose on purpose: the address itself is checked by the loader (node:net isIP)
const PREFIX_PATTERN = '^[0-9A-Fa-f:.]+/\\d{1,3}$';

function withDescription(s: Record<string, unknown>, ...texts: (string | undefined)[]): Record<string, unknown> {
  const d = texts.filter((t): t is string => !!t).join(' ');
  return d ? { ...s, description: d } : s;
}

/** The JSON Schema of one node of the field tables. */
export function jsonSchemaOf(n: Node): Record<string, unknown> {
  switch (n.kind) {
    case 'string':
      return withDescription({ type: 'string', minLength: 1, ...(n.pattern ? { pattern: n.pattern.source } : {}) }, n.description ?? `${n.what[0]!.toUpperCase()}${n.what.slice(1)}.`);
    case 'name':
      return withDescription({ type: 'string', pattern: NAME_PATTERN }, n.description);
    case 'enum':
      return withDescription({ type: 'string', enum: [...n.values] }, n.description);
    case 'boolean':
      return withDescription({ type: 'boolean' }, n.description);
    case 'integer': {
      const int = { type: 'integer', minimum: n.min, maximum: n.max };
      return withDescription(n.orConst === undefined ? int : { anyOf: [int, { const: n.orConst }] }, n.description);
    }
    case 'duration':
      return withDescription({
        anyOf: [{ type: 'integer', minimum: n.minSec, maximum: n.maxSec }, { type: 'string', pattern: DURATION_PATTERN }],
      }, n.description, `A duration (4h, 30m, 45s, 1d, 1h30m) or a number of seconds, from ${n.minSec}s to ${n.maxSec}s.`);
    case 'address': {
      const ip = { type: 'string', anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }] };
      return withDescription(n.orConst === undefined ? ip : { anyOf: [ip, { const: n.orConst }] }, n.description);
    }
    case 'prefix': {
      const notes = [
        n.hostBits ? 'An address with a prefix length (host bits allowed).' : 'A CIDR prefix with the host bits zero.',
        n.family === 4 ? 'IPv4 only.' : undefined,
        n.unicast ? `Not inside ${[...RESERVED_V4_TEXT, ...(n.unicast === 'noLinkLocal' ? [LINK_LOCAL_V4_TEXT] : []), ...RESERVED_V6_TEXT].join(', ')}.` : undefined,
        n.maxLen !== undefined ? `Prefix length at most /${n.maxLen}.` : undefined,
      ];
      return withDescription({ type: 'string', pattern: PREFIX_PATTERN }, n.description, ...notes);
    }
    case 'secret':
      return withDescription({ type: 'string', minLength: n.minLength, maxLength: n.maxLength, writeOnly: true }, n.description);
    case 'path':
      return withDescription({ type: 'string', minLength: 1 }, n.description, 'Relative paths resolve against the config file\'s folder.');
    case 'proposals':
      return withDescription({ type: 'string', minLength: 1 }, n.description, `${n.proto.toUpperCase()} proposals in strongSwan syntax, comma-separated.`);
    case 'list':
      return withDescription({
        type: 'array',
        items: jsonSchemaOf(n.item),
        ...(n.min ? { minItems: n.min } : {}),
        ...(n.max !== undefined ? { maxItems: n.max } : {}),
        ...(n.uniqueItems ? { uniqueItems: true } : {}),
      }, n.description);
    case 'either':
      return withDescription({ anyOf: n.alternatives.map(jsonSchemaOf) }, n.description);
    case 'object': {
      const properties: Record<string, unknown> = {};
      const req: string[] = [];
      for (const [k, f] of Object.entries(n.fields)) {
        properties[k] = fieldSchema(f);
        if (f.presence === 'required') req.push(k);
      }
      return withDescription({
        type: 'object',
        properties,
        ...(req.length ? { required: req } : {}),
        additionalProperties: false,
      }, n.description, n.rules ? `Also checked: ${n.rules}` : undefined);
    }
  }
}

function fieldSchema(f: Field): Record<string, unknown> {
  let s = jsonSchemaOf(f.node);
  if (f.description) {
    // a plain string's own description only repeats its error wording: the field's says more
    const own = f.node.kind === 'string' && !f.node.description ? undefined : s.description;
    s = { ...s, description: [f.description, own].filter(Boolean).join(' ') };
  }
  if (f.default !== undefined) s = { ...s, default: f.default };
  // mappings and nullable fields read an explicit null as "not given"
  if (f.presence !== 'required' && (f.nullable || f.node.kind === 'object')) s = { anyOf: [s, { type: 'null' }] };
  return s;
}

/**
 * The JSON Schema of one section as it appears in the config file (`gateway` is a mapping, the
 * other sections are lists; their `items` schema describes one entry), or of the whole file.
 */
export function configJsonSchema(section?: SectionName): JsonSchema {
  if (section === undefined) return { $schema: DRAFT, title: 'vpcgw config', ...jsonSchemaOf(CONFIG) };
  const field = CONFIG.fields[section]!;
  return { $schema: DRAFT, title: `vpcgw config: ${section}`, ...jsonSchemaOf(field.node) };
}

/** The JSON Schema of one entry of a section (a customer gateway, a connection, a server). */
export function configEntryJsonSchema(section: SectionName): JsonSchema {
  return { $schema: DRAFT, title: `vpcgw config: one entry of ${section}`, ...jsonSchemaOf(CONFIG_SECTIONS[section]) };
}
