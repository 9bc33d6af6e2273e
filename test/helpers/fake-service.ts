/**
 * An in-memory ManagementService that behaves the way the gateway's implementation does at its
 * interface (src/api/service.ts): the same kinds and JSON Schemas (from the config field tables),
 * ConfigErrors that name the field, ERR_NOT_FOUND / ERR_CONFLICT / ERR_STATE refusals, views
 * without write-only fields, offset and marker pagination, exact-match filters. It keeps no
 * daemon: creates and changes are applied at once and reported ACTIVE.
 *
 * Tests drive the parts the real service takes from the running daemon through `setStatus`,
 * `setHealthy` and `metricsText`, and read `calls` to see how often each operation ran.
 */
import { createHash, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import {
  DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, type ActionResult, type JsonSchema, type ListPage, type ListQuery,
  type ManagementService, type ResourceKind, type ResourceStatus, type ResourceView,
} from '../../src/api/service.js';
import { ConfigError, VpnError } from '../../src/common/errors.js';
import { configEntryJsonSchema, configJsonSchema } from '../../src/gateway/config/index.js';

export const FAKE_TOKEN = 'test-token-0123456789abcdef';

/** The kinds the gateway serves today, with their actions. */
export function fakeKinds(): ResourceKind[] {
  return [
    {
      kind: 'vpn-gateway', collection: 'vpn-gateways', section: 'gateway', singleton: true,
      schema: configJsonSchema('gateway'),
      actions: [],
    },
    {
      kind: 'customer-gateway', collection: 'customer-gateways', section: 'customerGateways', singleton: false,
      schema: configEntryJsonSchema('customerGateways'),
      actions: [],
    },
    {
      kind: 'vpn-connection', collection: 'vpn-connections', section: 'vpnConnections', singleton: false,
      schema: configEntryJsonSchema('vpnConnections'),
      actions: [
        {
          name: 'peer-config', method: 'GET', produces: 'text/plain',
          description: 'The customer side of the connection as a strongSwan configuration snippet.',
          query: { format: { enum: ['swanctl', 'ipsec.conf'], description: 'Configuration syntax (default swanctl).' } },
        },
        { name: 'reset', method: 'POST', produces: 'json', description: 'Tears the IKE SA down and negotiates it again.' },
      ],
    },
    {
      kind: 'vpn-server', collection: 'vpn-servers', section: 'vpnServers', singleton: false,
      schema: configEntryJsonSchema('vpnServers'),
      actions: [
        {
          name: 'client-profile', method: 'GET', produces: 'application/x-openvpn-profile',
          description: 'An OpenVPN client profile (.ovpn) for this server.',
          query: { client: { description: 'Name of the client certificate to embed.' } },
        },
      ],
    },
  ];
}

const ID_PREFIX: Record<string, string> = {
  'vpn-gateway': 'vgw', 'customer-gateway': 'cgw', 'vpn-connection': 'vpn', 'vpn-server': 'vps',
};

interface Entry {
  id: string;
  spec: Record<string, unknown>;
  status: ResourceStatus;
  createdAt: string;
  updatedAt: string;
}

export interface FakeServiceOptions {
  /** The bearer token verifyToken accepts (compared as a hash, like the real one). */
  token?: string;
  /** The gateway singleton's spec. */
  gateway?: Record<string, unknown>;
  /** Fixed clock for timestamps (ms); default Date.now. */
  nowMs?: () => number;
}

export class FakeManagementService implements ManagementService {
  readonly calls = { list: 0, get: 0, create: 0, replace: 0, delete: 0, action: 0, metrics: 0 };
  /** What metrics() returns. */
  metricsText = '# HELP vpcgw_up The daemon runs.\n# TYPE vpcgw_up gauge\nvpcgw_up 1\n';
  private healthy = true;
  private readonly kindList: ResourceKind[] = fakeKinds();
  private readonly store = new Map<string, Entry[]>();
  private readonly tokenHash: Buffer;
  private readonly nowMs: () => number;

  constructor(opts: FakeServiceOptions = {}) {
    this.tokenHash = sha256(opts.token ?? FAKE_TOKEN);
    this.nowMs = opts.nowMs ?? Date.now;
    for (const k of this.kindList) this.store.set(k.kind, []);
    const gw = opts.gateway ?? { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'] };
    validate(this.kindOf('vpn-gateway').schema, gw, 'gateway');
    this.store.get('vpn-gateway')!.push(this.newEntry('vpn-gateway', gw));
  }

  kinds(): readonly ResourceKind[] {
    return this.kindList;
  }

  list(kind: string, q: ListQuery): ListPage {
    this.calls.list++;
    const k = this.kindOf(kind);
    const limit = q.limit ?? DEFAULT_PAGE_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) throw new VpnError('ERR_BAD_REQUEST', `limit: ${limit} is not an integer from 1 to ${MAX_PAGE_LIMIT}`);
    let items = this.store.get(k.kind)!.map((e) => this.view(k, e));
    for (const [field, want] of Object.entries(q.filters ?? {})) items = items.filter((v) => typeof v[field] === 'string' && v[field] === want);
    const total = items.length;
    let start = q.offset ?? 0;
    if (q.marker !== undefined) {
      const i = items.findIndex((v) => v.id === q.marker);
      if (i < 0) throw new VpnError('ERR_BAD_REQUEST', `marker: no ${k.kind} with id ${JSON.stringify(q.marker)} in this listing`);
      start = i + 1;
    }
    const page = items.slice(start, start + limit);
    const more = start + page.length < total;
    return { items: page, total_count: total, page_info: { current_count: page.length, next_marker: more && page.length ? page[page.length - 1]!.id : null } };
  }

  get(kind: string, idOrName: string): ResourceView {
    this.calls.get++;
    const k = this.kindOf(kind);
    return this.view(k, this.find(k, idOrName));
  }

  async create(kind: string, body: unknown): Promise<ResourceView> {
    this.calls.create++;
    const k = this.kindOf(kind);
    if (k.singleton) throw new VpnError('ERR_STATE', `${k.kind} is a singleton: it cannot be created`);
    const spec = this.checkBody(k, body);
    const entries = this.store.get(k.kind)!;
    if (entries.some((e) => e.spec.name === spec.name)) throw new VpnError('ERR_CONFLICT', `a ${k.kind} named ${JSON.stringify(spec.name)} exists`);
    const e = this.newEntry(k.kind, spec);
    entries.push(e);
    return this.view(k, e);
  }

  async replace(kind: string, idOrName: string, body: unknown): Promise<ResourceView> {
    this.calls.replace++;
    const k = this.kindOf(kind);
    const e = this.find(k, idOrName);
    const spec = this.checkBody(k, body);
    if (!k.singleton && spec.name !== e.spec.name) {
      if (this.store.get(k.kind)!.some((o) => o !== e && o.spec.name === spec.name)) throw new VpnError('ERR_CONFLICT', `a ${k.kind} named ${JSON.stringify(spec.name)} exists`);
      if (this.referrers(k, e).length) throw new VpnError('ERR_CONFLICT', `${k.kind} ${e.spec.name} is in use: it cannot be renamed`);
    }
    e.spec = spec;
    e.updatedAt = new Date(this.nowMs()).toISOString();
    return this.view(k, e);
  }

  async delete(kind: string, idOrName: string): Promise<void> {
    this.calls.delete++;
    const k = this.kindOf(kind);
    if (k.singleton) throw new VpnError('ERR_STATE', `${k.kind} is a singleton: it cannot be deleted`);
    const e = this.find(k, idOrName);
    const users = this.referrers(k, e);
    if (users.length) throw new VpnError('ERR_CONFLICT', `${k.kind} ${e.spec.name} is used by ${users.join(', ')}`);
    const entries = this.store.get(k.kind)!;
    entries.splice(entries.indexOf(e), 1);
  }

  async action(kind: string, idOrName: string, action: string, query: Readonly<Record<string, string>>, body: unknown): Promise<ActionResult> {
    this.calls.action++;
    const k = this.kindOf(kind);
    const e = this.find(k, idOrName);
    const name = String(e.spec.name);
    if (kind === 'vpn-connection' && action === 'peer-config') {
      const format = query.format ?? 'swanctl';
      const text = format === 'swanctl'
        ? `connections {\n  ${name} {\n    remote_addrs = 192.0.2.2\n  }\n}\n`
        : `conn ${name}\n  right=192.0.2.2\n`;
      return { text, filename: format === 'swanctl' ? `${name}.swanctl.conf` : `${name}.ipsec.conf` };
    }
    if (kind === 'vpn-connection' && action === 'reset') return { json: { reset: name, requested: body ?? null } };
    if (kind === 'vpn-server' && action === 'client-profile') {
      const client = query.client ?? 'client1';
      return { text: `client\ndev tun\nremote 192.0.2.2 1194\n# ${client}\n`, filename: `${client}.ovpn` };
    }
    throw new VpnError('ERR_NOT_FOUND', `${k.kind} has no action ${JSON.stringify(action)}`);
  }

  verifyToken(token: string): boolean {
    return sha256(token).equals(this.tokenHash);
  }

  async metrics(): Promise<string> {
    this.calls.metrics++;
    return this.metricsText;
  }

  health(): { readonly ok: boolean; readonly detail: Readonly<Record<string, unknown>> } {
    return { ok: this.healthy, detail: { store: this.healthy ? 'ok' : 'unavailable' } };
  }

  // ---- test controls ----

  setHealthy(ok: boolean): void {
    this.healthy = ok;
  }

  /** Sets a resource's status, as the daemon would when a tunnel comes up or goes down. */
  setStatus(kind: string, idOrName: string, status: ResourceStatus): void {
    this.find(this.kindOf(kind), idOrName).status = status;
  }

  // ---- internals ----

  private kindOf(kind: string): ResourceKind {
    const k = this.kindList.find((x) => x.kind === kind);
    if (!k) throw new VpnError('ERR_NOT_FOUND', `no resource kind ${JSON.stringify(kind)}`);
    return k;
  }

  private find(k: ResourceKind, idOrName: string): Entry {
    const e = this.store.get(k.kind)!.find((x) => x.id === idOrName || x.spec.name === idOrName);
    if (!e) throw new VpnError('ERR_NOT_FOUND', `no ${k.kind} with id or name ${JSON.stringify(idOrName)}`);
    return e;
  }

  private newEntry(kind: string, spec: Record<string, unknown>): Entry {
    const now = new Date(this.nowMs()).toISOString();
    return { id: `${ID_PREFIX[kind] ?? kind}-${randomBytes(6).toString('hex')}`, spec, status: 'ACTIVE', createdAt: now, updatedAt: now };
  }

  /** Validates a body against the kind's schema and the references the loader checks. */
  private checkBody(k: ResourceKind, body: unknown): Record<string, unknown> {
    validate(k.schema, body, k.section);
    const spec = structuredClone(body) as Record<string, unknown>;
    if (k.singleton && spec.name === undefined) spec.name = 'vpcgw';
    if (k.kind === 'vpn-connection') {
      const cgws = this.store.get('customer-gateway')!;
      if (!cgws.some((c) => c.spec.name === spec.customerGateway)) {
        throw new ConfigError(`${k.section}.customerGateway`, spec.customerGateway, `the name of one of customerGateways (${cgws.map((c) => c.spec.name).join(', ') || 'none'})`);
      }
    }
    return spec;
  }

  /** Names of the resources that refer to `e` (connections refer to their customer gateway). */
  private referrers(k: ResourceKind, e: Entry): string[] {
    if (k.kind !== 'customer-gateway') return [];
    return this.store.get('vpn-connection')!.filter((c) => c.spec.customerGateway === e.spec.name).map((c) => `vpn-connection ${String(c.spec.name)}`);
  }

  /**
   * The view: the spec without write-only fields, then the resource fields. A customer gateway's
   * spec has an `id` of its own (its IKE identity) that the resource id hides here; the
   * ResourceView shape in src/api/service.ts does not say yet which one wins.
   */
  private view(k: ResourceKind, e: Entry): ResourceView {
    const spec = withoutWriteOnly(k.schema, e.spec) as Record<string, unknown>;
    return { ...spec, id: e.id, name: String(e.spec.name), status: e.status, created_at: e.createdAt, updated_at: e.updatedAt };
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** A value with the properties the schema marks writeOnly (secrets) left out, at any depth. */
function withoutWriteOnly(schema: JsonSchema, v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const props = objectProperties(schema);
  const out: Record<string, unknown> = {};
  for (const [key, val] of Object.entries(v)) {
    const ps = props?.[key] as JsonSchema | undefined;
    if (ps && isWriteOnly(ps)) continue;
    out[key] = ps ? withoutWriteOnly(ps, val) : val;
  }
  return out;
}

function objectProperties(s: JsonSchema): Record<string, unknown> | undefined {
  if (s.properties) return s.properties as Record<string, unknown>;
  for (const alt of (s.anyOf as JsonSchema[] | undefined) ?? []) {
    const p = objectProperties(alt);
    if (p) return p;
  }
  return undefined;
}

function isWriteOnly(s: JsonSchema): boolean {
  return s.writeOnly === true || ((s.anyOf as JsonSchema[] | undefined) ?? []).some(isWriteOnly);
}

/**
 * The subset of JSON Schema 2020-12 the config schemas use, enough to refuse what the loader
 * refuses field by field. Throws a ConfigError naming the first failing path.
 */
export function validate(schema: JsonSchema, v: unknown, path: string): void {
  const why = check(schema, v, path);
  if (why) throw new ConfigError(why.path, why.value, why.allowed);
}

interface Failure { path: string; value: unknown; allowed: string }

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'object': return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array': return Array.isArray(v);
    case 'string': return typeof v === 'string';
    case 'integer': return Number.isInteger(v);
    case 'number': return typeof v === 'number';
    case 'boolean': return typeof v === 'boolean';
    case 'null': return v === null;
    default: return true;
  }
}

function check(s: JsonSchema, v: unknown, path: string): Failure | null {
  const fail = (allowed: string, at = path, value = v): Failure => ({ path: at, value, allowed });
  if (s.anyOf) {
    const alts = s.anyOf as JsonSchema[];
    let first: Failure | null = null;
    let ok = false;
    for (const alt of alts) {
      const f = check(alt, v, path);
      if (!f) { ok = true; break; }
      // keep the most specific failure: one inside the value rather than about the value itself
      if (!first || (f.path !== path && first.path === path)) first = f;
    }
    if (!ok) return first!.path !== path ? first : fail(typeof s.description === 'string' ? s.description : 'one of the allowed forms');
  }
  if ('const' in s && v !== s.const) return fail(JSON.stringify(s.const));
  if (typeof s.type === 'string' && !typeOk(s.type, v)) return fail(`a value of type ${s.type}`);
  if (s.enum && !(s.enum as unknown[]).includes(v)) return fail(`one of ${(s.enum as unknown[]).join(', ')}`);
  if (s.format === 'ipv4' && typeof v === 'string' && isIP(v) !== 4) return fail('an IPv4 address');
  if (s.format === 'ipv6' && typeof v === 'string' && isIP(v) !== 6) return fail('an IPv6 address');
  if (typeof v === 'string') {
    if (typeof s.minLength === 'number' && v.length < s.minLength) return fail(`at least ${s.minLength} characters`);
    if (typeof s.maxLength === 'number' && v.length > s.maxLength) return fail(`at most ${s.maxLength} characters`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) return fail(`a string matching ${s.pattern}`);
  }
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) return fail(`a number from ${s.minimum}`);
    if (typeof s.maximum === 'number' && v > s.maximum) return fail(`a number up to ${s.maximum}`);
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) return fail(`at least ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) return fail(`at most ${s.maxItems} items`);
    if (s.items) {
      for (let i = 0; i < v.length; i++) {
        const f = check(s.items as JsonSchema, v[i], `${path}[${i}]`);
        if (f) return f;
      }
    }
  }
  if (typeOk('object', v) && (s.properties || s.required)) {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, JsonSchema>;
    for (const r of (s.required as string[] | undefined) ?? []) if (o[r] === undefined) return fail('a value (required)', `${path}.${r}`, undefined);
    for (const [key, val] of Object.entries(o)) {
      const ps = props[key];
      if (!ps) {
        if (s.additionalProperties === false) return fail(`one of the fields ${Object.keys(props).join(', ')}`, `${path}.${key}`, val);
        continue;
      }
      const f = check(ps, val, `${path}.${key}`);
      if (f) return f;
    }
  }
  return null;
}
