import { isDeepStrictEqual } from 'node:util';
import type {
  ActionResult, ChangeEvent, ListPage, ListQuery, ManagementService, ResourceKind, ResourceStatus, ResourceView,
  TrafficHistoryView, TrafficObjectKind, TrafficSummaryView,
} from '../api/service.js';
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '../api/service.js';
import { ConfigError, VpnError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { configFromDocument, type GatewayConfig } from './config/index.js';
import { isPlainObject } from './config/field-table.js';
import { canonicalEntry, withAbsolutePaths, withoutSecrets, withStoredSecrets } from './config/raw.js';
import { clientConfig, clientProfile } from './client-profile.js';
import { generatePsk } from './default-config.js';
import { KINDS, LIST_SECTIONS, kindOfSection, type KindDef, type ListSection } from './resources.js';
import type { GatewayStatus } from './status.js';
import { TRAFFIC_STEP_SEC, TrafficHistory } from './traffic-history.js';
import { checkPassword, hashPassword, PASSWORD_MAX } from './users.js';
import type { AdminInfo, EndpointApproval, StoredResource } from '../store/store.js';
import { ENDPOINT_STATES, initialEndpointState, type EndpointState } from './vpcep.js';

/**
 * The management service: the one implementation of every resource operation, called by the HTTPS
 * API (src/api) and the control socket (the CLI) alike.
 *
 *  1. A request body is one entry as written in the YAML. It is validated by building the whole
 *     would-be config with the file loader (src/gateway/config): the same rules, and errors that
 *     name the field and value (`vpnConnections[conn2].remoteSubnets[0]`).
 *  2. The change is committed to the store in one transaction (that is the acknowledgement: a
 *     change the caller saw succeed survives a crash), then
 *  3. the running daemon takes the new config live (`LiveGateway.applyConfig`): only what changed
 *     is touched. A failure there leaves the resource stored, with status ERROR and the reason.
 *
 * Operations run one at a time (a queue), so validation always sees the state it will change.
 */

/** What the service needs of the store (src/store/store.ts implements it). */
export interface ResourceStore {
  transaction<T>(fn: () => T): T;
  insert(kind: string, name: string, spec: unknown): StoredResource;
  update(id: string, name: string, spec: unknown): StoredResource;
  remove(id: string): boolean;
  get(id: string): StoredResource | undefined;
  getByName(kind: string, name: string): StoredResource | undefined;
  all(kind: string): StoredResource[];
  createToken(name: string): { id: string; token: string };
  verifyToken(token: string): boolean;
  /** The name of a live token, null when it is not one. */
  tokenName(token: string): string | null;
  /** Web console admins (src/store/migrations.ts, version 3): name and scrypt hash. */
  addAdmin(name: string, passwordHash: string): AdminInfo;
  removeAdmin(name: string): boolean;
  listAdmins(): AdminInfo[];
  adminPasswordHash(name: string): string | undefined;
  /** VPC endpoint approval decisions by endpoint resource id (src/store/migrations.ts, version 2). */
  endpointApprovals(): Map<string, EndpointApproval>;
  setEndpointApproval(endpointId: string, service: string, state: EndpointState): EndpointApproval;
}

export type { StoredResource };

/** What the service needs of the running daemon (src/gateway/daemon.ts Gateway). */
export interface LiveGateway {
  readonly config: GatewayConfig;
  readonly state: string;
  applyConfig(next: GatewayConfig): Promise<unknown>;
  status(): GatewayStatus;
  initiate(name: string): void;
  terminate(name: string): void;
  rekey?(name: string, which: 'child' | 'ike'): void;
  disconnectClient?(server: string, client: string, halt: boolean): { server: string; client: string; user: string };
  /** Recompiles the data path's policy now (an endpoint was accepted or rejected: the config did not change). */
  refreshPolicy?(): void;
}

export interface ServiceOptions {
  store: ResourceStore;
  /** Relative paths in API bodies resolve against this folder (the data dir). */
  baseDir: string;
  log: Logger;
  /** Label of the config built from the store, for messages and `status` (e.g. the file it came from). */
  source: string;
  /** Set once the daemon runs; before that, changes are only stored and validated. */
  gateway?: LiveGateway | null;
  /** The Prometheus text of the daemon (src/gateway/metrics.ts). */
  metrics?: () => Promise<string>;
  /** GET actions that produce text from the config: peer-config and friends. */
  textActions?: Readonly<Record<string, (cfg: GatewayConfig, name: string, query: Readonly<Record<string, string>>) => ActionResult>>;
}

/** One step of a plan: what `apply` would do to match a document. */
export interface PlanStep {
  readonly op: 'create' | 'update' | 'delete';
  readonly kind: string;
  readonly name: string;
  /** The gateway section changed: the daemon restarts its packet path in place. */
  readonly restarts?: boolean;
}

export interface ApplyResult {
  readonly plan: PlanStep[];
  readonly applied: boolean;
}

/** The config document as the loader reads it, from the store's rows. */
type Document = { gateway: unknown } & Record<ListSection, unknown[]>;

export class GatewayService implements ManagementService {
  private readonly store: ResourceStore;
  private readonly log: Logger;
  private gateway: LiveGateway | null;
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * The document the store holds, kept after each write of this service (the only writer of its
   * store): a change then costs one validation, not a re-read of every row. Null: read it again.
   */
  private docCache: Document | null = null;
  /** resource id → why its last live change failed (status ERROR until the next change) */
  private readonly failed = new Map<string, string>();
  /** Listeners of changes (the API's event streams). */
  private readonly listeners = new Set<(e: ChangeEvent) => void>();
  /** Live state per object at the last `pollStates` while someone listens (null: no baseline). */
  private lastStates: Map<string, string> | null = null;
  /** Bytes/s history of connections, clients and endpoints (`sampleTraffic` every TRAFFIC_STEP_SEC). */
  readonly trafficHistory = new TrafficHistory();

  constructor(private readonly opts: ServiceOptions) {
    this.store = opts.store;
    this.log = opts.log;
    this.gateway = opts.gateway ?? null;
  }

  attach(gateway: LiveGateway | null): void {
    this.gateway = gateway;
  }

  kinds(): readonly ResourceKind[] {
    return KINDS;
  }

  // ---- the config the store holds ----

  /** True once the store holds a gateway (a first start seeds it from a file). */
  isSeeded(): boolean {
    return this.store.all('vpn-gateway').length > 0;
  }

  /** The document the store holds, in the config file's shape. */
  document(): Document {
    if (!this.docCache) {
      const gw = this.store.all('vpn-gateway')[0];
      const doc = { gateway: gw?.spec } as Document;
      for (const s of LIST_SECTIONS) doc[s] = this.store.all(kindOfSection(s).kind).map((r) => r.spec);
      this.docCache = doc;
    }
    // a copy of the lists (callers add and remove entries); the entries themselves are never changed
    const copy = { gateway: this.docCache.gateway } as Document;
    for (const s of LIST_SECTIONS) copy[s] = this.docCache[s].slice();
    return copy;
  }

  /** The validated, frozen config of what the store holds. */
  config(): GatewayConfig {
    return this.build(this.document());
  }

  private build(doc: Document): GatewayConfig {
    try {
      return configFromDocument(doc, this.opts.source, this.opts.baseDir);
    } catch (e) {
      throw e instanceof ConfigError ? namedByResource(e, doc) : e;
    }
  }

  // ---- reads ----

  list(kind: string, q: ListQuery): ListPage {
    const k = kindDef(kind);
    const limit = q.limit ?? DEFAULT_PAGE_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) throw new VpnError('ERR_BAD_REQUEST', `limit ${String(limit)} is not valid: an integer from 1 to ${MAX_PAGE_LIMIT}`);
    const offset = q.offset ?? 0;
    if (!Number.isInteger(offset) || offset < 0) throw new VpnError('ERR_BAD_REQUEST', `offset ${String(offset)} is not valid: an integer from 0`);
    const status = this.statusContext();
    const vc = this.viewContext(); // read once per page, not per item
    const filters = Object.entries(q.filters ?? {});
    // filters on the stored fields run before the views are built: a page costs its own views only
    // (secrets are never matched: a filter must not let a caller probe a value the API hides)
    const stored = filters.filter(([f]) => !VIEW_FIELDS.has(f));
    const derived = filters.filter(([f]) => VIEW_FIELDS.has(f));
    const field = (k2: KindDef, r: StoredResource, f: string): unknown =>
      f === 'id' ? r.id : f === 'name' ? r.name : (withoutSecrets(k2.section, r.spec) as Record<string, unknown>)[f];
    let found = this.store.all(k.kind).filter((r) => stored.every(([f, want]) => filterValue(field(k, r, f)) === want));
    let views: ResourceView[] | null = null;
    if (derived.length) {
      views = found.map((r) => this.view(k, r, status, vc)).filter((v) => derived.every(([f, want]) => filterValue(v[f]) === want));
      const byId = new Map(found.map((r) => [r.id, r]));
      found = views.map((v) => byId.get(v.id)!);
    }
    const rows = found;
    const total = rows.length;
    let start = offset;
    if (q.marker !== undefined) {
      const i = rows.findIndex((v) => v.id === q.marker);
      if (i < 0) throw new VpnError('ERR_BAD_REQUEST', `marker ${q.marker} is not valid: the id of an item of this list`);
      start = i + 1;
    }
    const page = rows.slice(start, start + limit);
    const items = views ? views.slice(start, start + limit) : page.map((r) => this.view(k, r, status, vc));
    const more = start + items.length < total;
    return { items, total_count: total, page_info: { current_count: items.length, next_marker: more ? items.at(-1)!.id : null } };
  }

  get(kind: string, idOrName: string): ResourceView {
    const k = kindDef(kind);
    return this.view(k, this.find(k, idOrName), this.statusContext());
  }

  // ---- writes (serialized) ----

  create(kind: string, body: unknown): Promise<ResourceView> {
    return this.serial(async () => {
      const k = kindDef(kind);
      if (k.singleton) throw new VpnError('ERR_STATE', `there is exactly one ${k.kind}: change it with PUT /v1/${k.collection}/{id}`);
      const spec = this.normalize(k, await prepare(k, body));
      const name = spec.name as string;
      if (this.store.getByName(k.kind, name)) throw new VpnError('ERR_CONFLICT', `a ${k.kind} named "${name}" exists already`);
      const doc = this.document();
      (doc[k.section as ListSection]).push(spec);
      const cfg = this.build(doc);
      const row = this.committed(doc, () => {
        const r = this.store.insert(k.kind, name, spec);
        this.recordEndpoint(k, r, null, cfg);
        return r;
      });
      this.log.info({ kind: k.kind, name, id: row.id }, 'resource created');
      await this.goLive(cfg, [row.id]);
      this.emit(k.kind, name);
      return this.view(k, row, this.statusContext());
    });
  }

  replace(kind: string, idOrName: string, body: unknown): Promise<ResourceView> {
    return this.serial(async () => {
      const k = kindDef(kind);
      const old = this.find(k, idOrName);
      // PUT is a partial update, as in the cloud VPN APIs: the fields given replace the stored
      // ones, the others stay, a null removes a field (back to its default)
      if (!isPlainObject(body)) throw new VpnError('ERR_BAD_REQUEST', `the body must be a JSON object: fields of the ${k.kind} to change`);
      const given = (await prepare(k, body)) as Record<string, unknown>;
      const merged: Record<string, unknown> = { ...(old.spec as Record<string, unknown>), ...(canonicalEntry(k.section, given) as Record<string, unknown>) };
      for (const [f, v] of Object.entries(merged)) if (v === null) delete merged[f];
      const spec = withStoredSecrets(k.section, this.normalize(k, merged), old.spec) as Record<string, unknown>;
      const name = spec.name as string;
      if (name !== old.name) {
        if (this.store.getByName(k.kind, name)) throw new VpnError('ERR_CONFLICT', `a ${k.kind} named "${name}" exists already`);
        this.refuseIfReferenced(k, old, 'renamed');
      }
      const doc = this.document();
      if (k.singleton) doc.gateway = spec;
      else {
        const list = doc[k.section as ListSection];
        const rows = this.store.all(k.kind);
        list[rows.findIndex((r) => r.id === old.id)] = spec;
      }
      const cfg = this.build(doc);
      const row = this.committed(doc, () => {
        const r = this.store.update(old.id, name, spec);
        this.recordEndpoint(k, r, old, cfg);
        return r;
      });
      this.log.info({ kind: k.kind, name, id: row.id }, 'resource updated');
      await this.goLive(cfg, [row.id]);
      this.emit(k.kind, name);
      if (name !== old.name) this.emit(k.kind, old.name);
      return this.view(k, row, this.statusContext());
    });
  }

  delete(kind: string, idOrName: string): Promise<void> {
    return this.serial(async () => {
      const k = kindDef(kind);
      if (k.singleton) throw new VpnError('ERR_STATE', `the ${k.kind} cannot be deleted (stop the daemon instead)`);
      const old = this.find(k, idOrName);
      this.refuseIfReferenced(k, old, 'deleted');
      const doc = this.document();
      const rows = this.store.all(k.kind);
      doc[k.section as ListSection].splice(rows.findIndex((r) => r.id === old.id), 1);
      const cfg = this.build(doc);
      this.committed(doc, () => this.store.remove(old.id));
      this.failed.delete(old.id);
      this.log.info({ kind: k.kind, name: old.name, id: old.id }, 'resource deleted');
      await this.goLive(cfg, []);
      this.emit(k.kind, old.name);
    });
  }

  /**
   * Makes the store match a config document (`vpcgw apply -f`, `vpcgw start --config`): entries
   * the document has and the store lacks are created, differing ones updated, the others deleted,
   * all in one transaction, then taken live at once. `dryRun`: only the plan. Relative paths
   * resolve against `baseDir` (the document's folder) and are stored absolute.
   */
  applyDocument(raw: unknown, baseDir: string, opts: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    return this.serial(async () => {
      if (!isPlainObject(raw)) throw new ConfigError('(document)', raw === null ? null : typeof raw, 'a mapping with gateway, customerGateways, vpnConnections, vpnServers');
      const next = { gateway: withAbsolutePaths('gateway', raw.gateway, baseDir) } as Document;
      for (const s of LIST_SECTIONS) {
        const v = raw[s];
        next[s] = Array.isArray(v) ? v.map((e) => withAbsolutePaths(s, canonicalEntry(s, e), baseDir)) : [];
      }
      // the loader names anything wrong (unknown sections included) with the file's own indexes
      const cfg = configFromDocument({ ...raw, ...next }, this.opts.source, baseDir);
      const plan = this.plan(next);
      if (opts.dryRun || plan.length === 0) return { plan, applied: false };
      const touched: string[] = [];
      this.docCache = null; // rows land in store order, not the file's: read them again
      this.store.transaction(() => {
        // deletes first: a create may reuse a deleted entry's name
        for (const step of plan.filter((p) => p.op === 'delete')) this.store.remove(this.store.getByName(step.kind, step.name)!.id);
        for (const step of plan.filter((p) => p.op !== 'delete')) {
          const k = kindDef(step.kind);
          const spec = k.singleton ? next.gateway : next[k.section as ListSection].find((e) => nameOf(e) === step.name);
          const old = step.op === 'create' ? null : k.singleton ? this.store.all(k.kind)[0]! : this.store.getByName(k.kind, step.name)!;
          const row = old === null ? this.store.insert(k.kind, step.name, spec) : this.store.update(old.id, step.name, spec);
          this.recordEndpoint(k, row, old, cfg);
          touched.push(row.id);
        }
      });
      this.log.info({ steps: plan.map((p) => `${p.op} ${p.kind} ${p.name}`) }, 'config document applied');
      await this.goLive(cfg, touched);
      for (const step of plan) this.emit(step.kind, step.name);
      return { plan, applied: true };
    });
  }

  /** Deletes first (dependents before what they refer to), then creates and updates in file order. */
  private plan(next: Document): PlanStep[] {
    const deletes: PlanStep[] = [];
    const upserts: PlanStep[] = [];
    const gwRow = this.store.all('vpn-gateway')[0];
    const gwName = nameOf(next.gateway) ?? 'vpcgw';
    if (!gwRow) upserts.push({ op: 'create', kind: 'vpn-gateway', name: gwName });
    else if (!isDeepStrictEqual(gwRow.spec, next.gateway)) upserts.push({ op: 'update', kind: 'vpn-gateway', name: gwName, restarts: true });
    for (const s of LIST_SECTIONS) {
      const k = kindOfSection(s);
      const rows = this.store.all(k.kind);
      const want = next[s];
      const gone = rows.filter((r) => !want.some((e) => nameOf(e) === r.name)).map((r): PlanStep => ({ op: 'delete', kind: k.kind, name: r.name }));
      deletes.unshift(...gone);
      for (const e of want) {
        const name = nameOf(e)!;
        const r = rows.find((x) => x.name === name);
        if (!r) upserts.push({ op: 'create', kind: k.kind, name });
        else if (!isDeepStrictEqual(r.spec, e)) upserts.push({ op: 'update', kind: k.kind, name });
      }
    }
    return [...deletes, ...upserts];
  }

  async action(kind: string, idOrName: string, action: string, query: Readonly<Record<string, string>>, body: unknown): Promise<ActionResult> {
    const k = kindDef(kind);
    const row = this.find(k, idOrName);
    if (!k.actions.some((a) => a.name === action)) {
      throw new VpnError('ERR_NOT_FOUND', `a ${k.kind} has no action "${action}" (it has: ${k.actions.map((a) => a.name).join(', ') || 'none'})`);
    }
    const text = this.opts.textActions?.[action];
    if (text) return text(this.config(), row.name, query);
    if (`${k.kind}/${action}` === 'vpn-server/client-profile') {
      // from the stored config: a profile can be handed out before the server runs
      return clientProfile(this.config(), row.name, query.host !== undefined ? { host: query.host } : {});
    }
    if (`${k.kind}/${action}` === 'vpn-server/client-config') {
      // the same profile with a certificate issued now for `user` (src/gateway/client-profile.ts)
      const b = isPlainObject(body) ? body : {};
      const user = query.user ?? b.user;
      const host = query.host ?? b.host;
      if (typeof user !== 'string' || !user) throw new VpnError('ERR_BAD_REQUEST', 'user (a string) is required');
      if (host !== undefined && typeof host !== 'string') throw new VpnError('ERR_BAD_REQUEST', 'body field host must be a string');
      return clientConfig(this.config(), row.name, user, host !== undefined ? { host } : {});
    }
    if (k.kind === 'vpc-endpoint-service') return this.endpointServiceAction(row, action, body);
    if (`${k.kind}/${action}` === 'vpn-connection/regenerate-psk') return this.regeneratePsk(row);
    const gw = this.requireGateway();
    const param = (name: string): string | undefined => {
      const b = isPlainObject(body) ? body[name] : undefined;
      if (b !== undefined && b !== null && typeof b !== 'string' && typeof b !== 'boolean') {
        throw new VpnError('ERR_BAD_REQUEST', `body field ${name} must be a string`);
      }
      return query[name] ?? (b === undefined || b === null ? undefined : String(b));
    };
    switch (`${k.kind}/${action}`) {
      case 'vpn-connection/initiate':
        gw.initiate(row.name);
        return { json: { name: row.name, state: this.connectionState(row.name) } };
      case 'vpn-connection/terminate':
        gw.terminate(row.name);
        return { json: { name: row.name, state: this.connectionState(row.name) } };
      case 'vpn-connection/rekey': {
        const sa = param('sa') ?? 'child';
        if (sa !== 'child' && sa !== 'ike') throw new VpnError('ERR_BAD_REQUEST', `sa ${JSON.stringify(sa)} is not valid: child or ike`);
        if (!gw.rekey) throw new VpnError('ERR_STATE', `the gateway cannot rekey connections`);
        gw.rekey(row.name, sa);
        return { json: { name: row.name, sa, state: this.connectionState(row.name) } };
      }
      case 'vpn-server/disconnect': {
        const client = param('client');
        if (!client) throw new VpnError('ERR_BAD_REQUEST', 'client (an id from clients, or a user name) is required');
        const halt = param('halt') ?? 'false';
        if (halt !== 'true' && halt !== 'false') throw new VpnError('ERR_BAD_REQUEST', `halt ${JSON.stringify(halt)} is not valid: true or false`);
        if (!gw.disconnectClient) throw new VpnError('ERR_STATE', `the gateway cannot disconnect clients`);
        return { json: { ...gw.disconnectClient(row.name, client, halt === 'true'), disconnected: true } };
      }
      case 'vpn-server/clients': {
        const s = gw.status().vpnServers.find((v) => v.name === row.name);
        return { json: { clients: s?.sessions ?? [] } };
      }
    }
    throw new VpnError('ERR_NOT_FOUND', `action ${action} is not available here`);
  }

  /**
   * A new random PSK for a connection that authenticates with one, stored and taken live like a
   * PUT of `auth.psk`; the key is returned this once (views leave PSKs out).
   */
  private async regeneratePsk(row: StoredResource): Promise<ActionResult> {
    const auth = (row.spec as { auth?: unknown }).auth;
    if (!isPlainObject(auth) || typeof auth.psk !== 'string') {
      throw new VpnError('ERR_STATE', `vpn connection "${row.name}" does not authenticate with a pre-shared key`);
    }
    const psk = generatePsk();
    await this.replace('vpn-connection', row.id, { auth: { ...auth, psk } });
    this.log.info({ kind: 'vpn-connection', name: row.name }, 'pre-shared key regenerated');
    return { json: { psk } };
  }

  // ---- change notifications (GET /v1/events) ----

  subscribe(fn: (e: ChangeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.lastStates = null;
    };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  private emit(kind: string, name: string): void {
    for (const fn of [...this.listeners]) {
      try {
        fn({ kind, name });
      } catch (err) {
        this.log.warn({ err, kind, name }, 'a change listener failed');
      }
    }
  }

  /**
   * Compares the live states with the previous call's and notifies what changed: a connection's
   * state or CHILD_SAs, a VPN server's state or clients (and each client that came or went), an
   * endpoint's state. The shell calls it every second; it costs nothing while nobody listens.
   */
  pollStates(): void {
    if (this.listeners.size === 0) return;
    const st = this.statusContext();
    const now = new Map<string, string>();
    for (const c of st?.connections ?? []) now.set(`vpn-connection\0${c.name}`, `${c.state}|${c.ikeSa ?? ''}|${c.children.map((x) => x.spiIn).join(',')}|${c.lastError?.at ?? ''}`);
    for (const s of st?.vpnServers ?? []) {
      now.set(`vpn-server\0${s.name}`, `${s.state}|${s.clients}`);
      for (const x of s.sessions ?? []) now.set(`vpn-server-client\0${s.name}/${x.user}\0${x.id}`, x.state);
    }
    for (const e of st?.endpoints ?? []) now.set(`vpc-endpoint\0${e.name}`, e.state);
    const before = this.lastStates;
    this.lastStates = now;
    if (!before) return;
    const changed = new Set<string>();
    for (const [k, v] of now) if (before.get(k) !== v) changed.add(k);
    for (const k of before.keys()) if (!now.has(k)) changed.add(k);
    for (const k of changed) {
      const [kind, name] = k.split('\0') as [string, string];
      this.emit(kind, name);
    }
  }

  // ---- traffic history (GET /v1/traffic) ----

  /** One sample of the data plane's counters into the history (the shell calls it every TRAFFIC_STEP_SEC). */
  sampleTraffic(nowMs: number): void {
    const st = this.statusContext();
    if (st) this.trafficHistory.sample(st, nowMs);
  }

  traffic(kind: TrafficObjectKind, name: string, sinceMs?: number): TrafficHistoryView {
    const found = this.trafficHistory.series(kind, name, sinceMs);
    if (found) return found;
    // a known object without samples (down, not sampled yet, a user not online): no points
    const known = kind === 'vpn-server-client' ? this.knownClient(name) : this.store.getByName(kind, name) !== undefined;
    if (!known) throw new VpnError('ERR_NOT_FOUND', `no ${kind} named "${name}"`);
    return { kind, name, stepSeconds: TRAFFIC_STEP_SEC, points: [] };
  }

  /** `<server>/<user>`: the server exists and the user is one of its users, or holds a session. */
  private knownClient(name: string): boolean {
    const slash = name.indexOf('/');
    if (slash <= 0) return false;
    const server = name.slice(0, slash);
    const user = name.slice(slash + 1);
    if (!this.store.getByName('vpn-server', server)) return false;
    if (this.store.getByName('user', user)) return true;
    return this.statusContext()?.vpnServers.find((s) => s.name === server)?.sessions?.some((x) => x.user === user) ?? false;
  }

  trafficSummary(): TrafficSummaryView {
    const st = this.statusContext();
    const rates = this.trafficHistory.summary();
    if (!st) return { ...rates, tunnelsUp: 0, tunnelsDown: this.store.all('vpn-connection').length, clientsOnline: 0 };
    const up = st.connections.filter((c) => c.state === 'ESTABLISHED' && c.children.length > 0).length;
    return {
      at: rates.at || Date.now(),
      tunnelsUp: up,
      tunnelsDown: st.connections.length - up,
      clientsOnline: st.vpnServers.reduce((n, s) => n + s.clients, 0),
      inBytesPerSec: rates.inBytesPerSec,
      outBytesPerSec: rates.outBytesPerSec,
    };
  }

  verifyToken(token: string): boolean {
    return this.store.verifyToken(token);
  }

  tokenLabel(token: string): string | null {
    return this.store.tokenName(token);
  }

  // ---- web console admins (password logins; `vpcgw admin`) ----

  /** Adds a console admin; the password is stored only as its scrypt hash (as VPN users' are). */
  async addAdmin(name: string, password: string): Promise<AdminInfo> {
    if (typeof name !== 'string' || !ADMIN_NAME_RE.test(name)) {
      throw new VpnError('ERR_BAD_REQUEST', `admin name ${JSON.stringify(name)} is not valid: 1-64 letters, digits, "_", "-", ".", "@"`);
    }
    if (typeof password !== 'string' || password.length < ADMIN_PASSWORD_MIN || password.length > PASSWORD_MAX) {
      throw new VpnError('ERR_BAD_REQUEST', `the admin password must have ${ADMIN_PASSWORD_MIN} to ${PASSWORD_MAX} characters`);
    }
    if (this.store.adminPasswordHash(name) !== undefined) throw new VpnError('ERR_CONFLICT', `an admin named "${name}" exists already`);
    const info = this.store.addAdmin(name, await hashPassword(password));
    this.log.info({ admin: name }, 'console admin added');
    return info;
  }

  removeAdmin(name: string): { removed: true } {
    if (!this.store.removeAdmin(name)) throw new VpnError('ERR_NOT_FOUND', `no admin named "${String(name)}"`);
    this.log.info({ admin: name }, 'console admin removed');
    return { removed: true };
  }

  listAdmins(): AdminInfo[] {
    return this.store.listAdmins();
  }

  /**
   * True when `password` is admin `username`'s. An unknown name costs one scrypt as a known one
   * does, so the time taken does not tell which names exist.
   */
  async verifyAdminPassword(username: string, password: string): Promise<boolean> {
    const stored = typeof username === 'string' ? this.store.adminPasswordHash(username) : undefined;
    if (stored === undefined) {
      await checkPassword(password, (dummyHash ??= await hashPassword('vpcgw-no-such-admin')));
      return false;
    }
    return checkPassword(password, stored);
  }

  /** A new API token, printed once (only its hash is stored). */
  createToken(name: string): { id: string; token: string } {
    return this.store.createToken(name);
  }

  async metrics(): Promise<string> {
    if (!this.opts.metrics) return '';
    return this.opts.metrics();
  }

  health(): { ok: boolean; detail: Record<string, unknown> } {
    const gwState = this.gateway?.state ?? 'stopped';
    let store = 'ok';
    try {
      this.store.all('vpn-gateway');
    } catch (e) {
      store = (e as Error).message;
    }
    return { ok: gwState === 'running' && store === 'ok', detail: { gateway: gwState, store } };
  }

  // ---- VPC endpoints: approval (the provider's side of an endpoint service) ----

  /**
   * Each endpoint's approval state, by endpoint name: the stored decision about its current service,
   * else what its service implies for a new endpoint (PENDING_ACCEPTANCE with approvalRequired,
   * else ACCEPTED). The daemon compiles the data path's policy with it.
   */
  endpointStates(): Map<string, EndpointState> {
    const approvals = this.store.endpointApprovals();
    const services = new Map(this.store.all('vpc-endpoint-service').map((r) => [r.name, r.spec as { approvalRequired?: unknown }]));
    const out = new Map<string, EndpointState>();
    for (const r of this.store.all('vpc-endpoint')) out.set(r.name, stateOf(r, approvals.get(r.id), services));
    return out;
  }

  /**
   * Stores the state of an endpoint just written: a new endpoint (or one moved to another service)
   * starts as its service says; an update that keeps the service keeps the decision.
   */
  private recordEndpoint(k: KindDef, row: StoredResource, old: StoredResource | null, cfg: GatewayConfig): void {
    if (k.kind !== 'vpc-endpoint') return;
    const service = (row.spec as { service: string }).service;
    if (old && (old.spec as { service?: unknown }).service === service) return;
    const svc = cfg.endpointServices.find((s) => s.name === service);
    if (svc) this.store.setEndpointApproval(row.id, service, initialEndpointState(svc));
  }

  private endpointServiceAction(row: StoredResource, action: string, body: unknown): Promise<ActionResult> | ActionResult {
    if (action === 'connections') return { json: { connections: this.connectionsOf(row.name) } };
    return this.serial(async () => {
      const b = isPlainObject(body) ? body : {};
      const verb = b.action;
      if (verb !== 'receive' && verb !== 'reject') {
        throw new VpnError('ERR_BAD_REQUEST', `action ${JSON.stringify(verb ?? null)} is not valid: receive or reject`);
      }
      const list = b.endpoints;
      if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'string' && x !== '')) {
        throw new VpnError('ERR_BAD_REQUEST', 'endpoints must be a non-empty list of endpoint ids or names');
      }
      const eps = (list as string[]).map((idOrName) => {
        const e = this.find(kindDef('vpc-endpoint'), idOrName);
        if ((e.spec as { service?: unknown }).service !== row.name) {
          throw new VpnError('ERR_BAD_REQUEST', `vpc endpoint "${e.name}" is not an endpoint of service "${row.name}"`);
        }
        return e;
      });
      const state: EndpointState = verb === 'receive' ? 'ACCEPTED' : 'REJECTED';
      this.store.transaction(() => {
        for (const e of eps) this.store.setEndpointApproval(e.id, row.name, state);
      });
      this.log.info({ service: row.name, endpoints: eps.map((e) => e.name), state }, verb === 'receive' ? 'vpc endpoints accepted' : 'vpc endpoints rejected');
      const gw = this.gateway;
      if (gw && gw.state === 'running' && gw.refreshPolicy) {
        try {
          gw.refreshPolicy();
        } catch (err) {
          for (const e of eps) this.failed.set(e.id, (err as Error).message);
          this.log.error({ err }, 'stored endpoint decision could not be applied to the running gateway');
        }
      }
      for (const e of eps) this.emit('vpc-endpoint', e.name);
      this.emit('vpc-endpoint-service', row.name);
      const names = new Set(eps.map((e) => e.name));
      return { json: { connections: this.connectionsOf(row.name).filter((c) => names.has(c.endpoint_name as string)) } };
    });
  }

  /** The endpoints of a service as its provider sees them (GET …/connections). */
  private connectionsOf(service: string): Record<string, unknown>[] {
    const approvals = this.store.endpointApprovals();
    const services = new Map(this.store.all('vpc-endpoint-service').map((r) => [r.name, r.spec as { approvalRequired?: unknown }]));
    let cfg: GatewayConfig | null = null;
    try {
      cfg = this.config();
    } catch {
      cfg = null;
    }
    return this.store.all('vpc-endpoint').filter((e) => (e.spec as { service?: unknown }).service === service).map((e) => {
      const ep = cfg?.endpoints.find((x) => x.name === e.name);
      return {
        endpoint_id: e.id,
        endpoint_name: e.name,
        status: this.failed.get(e.id) ? 'ERROR' : stateOf(e, approvals.get(e.id), services),
        ip: ep?.address ?? null,
        dns_names: ep?.dnsName ? [ep.dnsName] : [],
        description: (e.spec as { description?: unknown }).description ?? null,
        created_at: e.createdAt,
        updated_at: approvals.get(e.id)?.updatedAt ?? e.updatedAt,
      };
    });
  }

  /** What the views of one request read from the store, each at most once (lazily). */
  private viewContext(): ViewContext {
    const once = <T>(f: () => T): (() => T) => {
      let v: { value: T } | null = null;
      return () => (v ??= { value: f() }).value;
    };
    return {
      approvals: once(() => this.store.endpointApprovals()),
      services: once(() => new Map(this.store.all('vpc-endpoint-service').map((x) => [x.name, x.spec as { approvalRequired?: unknown; type?: unknown }]))),
      endpointRows: once(() => this.store.all('vpc-endpoint')),
      endpoints: once(() => {
        try {
          return new Map(this.config().endpoints.map((e) => [e.name, e]));
        } catch {
          return new Map(); // the stored document does not validate now: no derived fields
        }
      }),
    };
  }

  // ---- helpers ----

  /** Runs one store write in a transaction; once committed, `doc` is what the store holds. */
  private committed<T>(doc: Document, write: () => T): T {
    this.docCache = null;
    const out = this.store.transaction(write);
    this.docCache = doc;
    return out;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private requireGateway(): LiveGateway {
    if (!this.gateway || this.gateway.state !== 'running') throw new VpnError('ERR_STATE', `the gateway is ${this.gateway?.state ?? 'not running'}`);
    return this.gateway;
  }

  /** Takes a stored change live; a failure marks the touched resources ERROR (they stay stored). */
  private async goLive(cfg: GatewayConfig, touched: readonly string[]): Promise<void> {
    for (const id of touched) this.failed.delete(id);
    if (!this.gateway || this.gateway.state !== 'running') return;
    try {
      await this.gateway.applyConfig(cfg);
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      for (const id of touched) this.failed.set(id, reason);
      this.log.error({ err: e }, 'stored change could not be applied to the running gateway');
    }
  }

  /** Checks the body's shape, resolves references given as ids to names, makes paths absolute. */
  private normalize(k: KindDef, body: unknown): Record<string, unknown> {
    if (!isPlainObject(body)) throw new VpnError('ERR_BAD_REQUEST', `the body must be a JSON object: one ${k.kind} as written in the config file`);
    const spec = withAbsolutePaths(k.section, canonicalEntry(k.section, body), this.opts.baseDir) as Record<string, unknown>;
    if (typeof spec.name !== 'string' && !k.singleton) throw new ConfigError(`${k.section}[?].name`, spec.name, 'a name (1-64 letters, digits, "_", "-", ".")');
    if (k.singleton && spec.name === undefined) spec.name = this.gateway?.config.gateway.name ?? this.store.all(k.kind)[0]?.name ?? 'vpcgw';
    if (k.kind === 'vpn-connection' && typeof spec.customerGateway === 'string') {
      const byId = this.store.get(spec.customerGateway);
      if (byId?.kind === 'customer-gateway') spec.customerGateway = byId.name;
    }
    if (k.kind === 'vpc-endpoint' && typeof spec.service === 'string') {
      const byId = this.store.get(spec.service);
      if (byId?.kind === 'vpc-endpoint-service') spec.service = byId.name;
    }
    return spec;
  }

  private find(k: KindDef, idOrName: string): StoredResource {
    const byId = this.store.get(idOrName);
    if (byId && byId.kind === k.kind) return byId;
    const byName = this.store.getByName(k.kind, idOrName);
    if (byName) return byName;
    if (k.singleton) {
      const only = this.store.all(k.kind)[0];
      if (only && (idOrName === 'default' || idOrName === only.name)) return only;
    }
    throw new VpnError('ERR_NOT_FOUND', `no ${k.kind} with id or name "${idOrName}"`);
  }

  /** A customer gateway in use by connections cannot be renamed or deleted under them. */
  private refuseIfReferenced(k: KindDef, row: StoredResource, what: string): void {
    if (k.kind === 'vpc-endpoint-service') {
      const eps = this.store.all('vpc-endpoint').filter((e) => (e.spec as { service?: unknown }).service === row.name);
      if (eps.length) {
        throw new VpnError('ERR_CONFLICT', `endpoint service "${row.name}" cannot be ${what}: vpc endpoints ${eps.map((e) => e.name).join(', ')} use it`);
      }
    }
    if (k.kind === 'user-group') {
      this.refuseIfGroupReferenced(row, what);
      return;
    }
    if (k.kind !== 'customer-gateway') return;
    const users = this.store.all('vpn-connection').filter((c) => (c.spec as { customerGateway?: unknown }).customerGateway === row.name);
    if (users.length) {
      throw new VpnError('ERR_CONFLICT', `customer gateway "${row.name}" cannot be ${what}: vpn connections ${users.map((u) => u.name).join(', ')} use it`);
    }
  }

  /** A user group that users or access policies name cannot be renamed or deleted under them. */
  private refuseIfGroupReferenced(row: StoredResource, what: string): void {
    const members = this.store.all('user').filter((u) => ((u.spec as { groups?: unknown }).groups as unknown[] | undefined)?.includes(row.name));
    const policies = this.store.all('access-policy').filter((p) => (p.spec as { group?: unknown }).group === row.name);
    if (members.length + policies.length === 0) return;
    const by = [
      members.length ? `users ${members.map((u) => u.name).join(', ')}` : '',
      policies.length ? `access policies ${policies.map((p) => p.name).join(', ')}` : '',
    ].filter(Boolean).join(' and ');
    throw new VpnError('ERR_CONFLICT', `user group "${row.name}" cannot be ${what}: ${by} name it`);
  }

  private statusContext(): GatewayStatus | null {
    if (!this.gateway || this.gateway.state !== 'running') return null;
    try {
      return this.gateway.status();
    } catch {
      return null;
    }
  }

  private connectionState(name: string): string {
    return this.statusContext()?.connections.find((c) => c.name === name)?.state ?? 'DOWN';
  }

  private view(k: KindDef, r: StoredResource, st: GatewayStatus | null, vc: ViewContext = this.viewContext()): ResourceView {
    const spec = withoutSecrets(k.section, r.spec) as Record<string, unknown>;
    const extra: Record<string, unknown> = {};
    let status: ResourceStatus = st ? 'ACTIVE' : 'DOWN';
    if (k.kind === 'vpn-connection') {
      const c = st?.connections.find((x) => x.name === r.name);
      // ACTIVE only while the IKE SA is established with a child installed
      status = c && c.state === 'ESTABLISHED' && c.children.length > 0 ? 'ACTIVE' : 'DOWN';
      extra.ike_state = c?.state ?? 'DOWN';
      // what the console's detail page shows: the IKE SA and its CHILD_SAs (never keys)
      extra.ike_sa = c?.ikeSa
        ? {
          id: c.ikeSa,
          peer: c.peer ?? null,
          proposal: c.ikeProposal ?? null,
          established_at: c.establishedAt ?? null,
          age_sec: c.ikeSaAgeSec ?? null,
        }
        : null;
      extra.sas = (c?.children ?? []).map((x) => ({
        state: x.state,
        spi_in: x.spiIn,
        spi_out: x.spiOut,
        proposal: x.proposal ?? null,
        installed_at: x.installedAt ?? null,
        age_sec: x.ageSec ?? null,
        bytes_in: x.bytesIn,
        bytes_out: x.bytesOut,
        packets_in: x.packetsIn,
        packets_out: x.packetsOut,
        local_ts: x.localTs ?? [],
        remote_ts: x.remoteTs ?? [],
      }));
      if (c?.reason) extra.status_reason = c.reason;
      // why the last negotiation failed, so the API answers "why is my tunnel down" as status does
      if (c?.lastError) {
        extra.last_error = { ...c.lastError };
        if (status !== 'ACTIVE') extra.status_reason = c.lastError.message;
      }
    } else if (k.kind === 'vpn-server') {
      const s = st?.vpnServers.find((x) => x.name === r.name);
      status = s?.state === 'LISTENING' ? 'ACTIVE' : 'DOWN';
      extra.clients = s?.clients ?? 0;
      if (s?.reason) extra.status_reason = s.reason;
    } else if (k.kind === 'vpc-endpoint-service') {
      status = 'ACTIVE';
      extra.service_type = (r.spec as { type?: string }).type ?? 'interface';
      extra.connections = vc.endpointRows().filter((e) => (e.spec as { service?: unknown }).service === r.name).length;
    } else if (k.kind === 'vpc-endpoint') {
      Object.assign(extra, endpointFields(r, st, vc));
      status = extra.status as ResourceStatus;
      delete extra.status;
    }
    const err = this.failed.get(r.id);
    if (err) {
      status = 'ERROR';
      extra.status_reason = err;
    }
    return { ...spec, id: r.id, name: r.name, status, ...extra, created_at: r.createdAt, updated_at: r.updatedAt };
  }
}

/** Console admin names: as resource names, plus "@" (an e-mail address as a login). */
const ADMIN_NAME_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
/** The shortest admin password accepted (the console is reachable over the network). */
export const ADMIN_PASSWORD_MIN = 8;
/** A hash to check unknown admins' logins against (made once, on first use). */
let dummyHash: string | undefined;

/** Fields a view adds to the stored entry: filtering on them needs the live status. */
const VIEW_FIELDS: ReadonlySet<string> = new Set([
  'status', 'ike_state', 'ike_sa', 'sas', 'status_reason', 'last_error', 'clients', 'created_at', 'updated_at', 'service_type', 'connections', 'ip', 'dns_names',
]);

/**
 * Per-kind preparation of a request body before it is validated and stored. A user's body may
 * carry `password` (write-only): it is replaced by its scrypt `passwordHash` (src/gateway/users.ts),
 * so the password itself is never stored, logged or returned (and the hash is a secret field,
 * left out of every view).
 */
async function prepare(k: KindDef, body: unknown): Promise<unknown> {
  if (k.kind !== 'user' || !isPlainObject(body) || body.password === undefined) return body;
  const { password, ...rest } = body;
  if (typeof password !== 'string' || password.length === 0) throw new ConfigError('users[?].password', '(hidden)', 'a non-empty password string');
  if (rest.passwordHash !== undefined) throw new VpnError('ERR_BAD_REQUEST', 'give either password or passwordHash, not both');
  return { ...rest, passwordHash: await hashPassword(password) };
}

interface ViewContext {
  approvals(): Map<string, EndpointApproval>;
  services(): Map<string, { approvalRequired?: unknown; type?: unknown }>;
  endpointRows(): StoredResource[];
  endpoints(): Map<string, GatewayConfig['endpoints'][number]>;
}

/** What an endpoint's view adds: its state, address, DNS name and flow counters (zero without a running gateway). */
function endpointFields(r: StoredResource, st: GatewayStatus | null, vc: ViewContext): Record<string, unknown> {
  const state = stateOf(r, vc.approvals().get(r.id), vc.services());
  const live = st?.endpoints?.find((x) => x.name === r.name);
  const ep = live ? null : vc.endpoints().get(r.name);
  const ip = live ? live.address : ep?.address ?? null;
  const dnsName = live ? live.dnsName : ep?.dnsName ?? null;
  const svcType = vc.services().get((r.spec as { service?: string }).service ?? '')?.type;
  return {
    status: state,
    service_type: typeof svcType === 'string' ? svcType : 'interface',
    ip,
    dns_names: dnsName ? [dnsName] : [],
    flows: live?.flows ?? 0,
    flows_created: live?.flowsCreated ?? 0,
    packets_in: live?.packetsIn ?? 0,
    bytes_in: live?.bytesIn ?? 0,
    packets_out: live?.packetsOut ?? 0,
    bytes_out: live?.bytesOut ?? 0,
    drops: live?.drops ?? {},
  };
}

/** An endpoint's state from its stored decision (about its current service) or its service's rule. */
function stateOf(
  e: StoredResource,
  approval: EndpointApproval | undefined,
  services: ReadonlyMap<string, { approvalRequired?: unknown }>,
): EndpointState {
  const service = (e.spec as { service?: unknown }).service;
  if (approval && approval.service === service && (ENDPOINT_STATES as readonly string[]).includes(approval.state)) return approval.state;
  return initialEndpointState({ approvalRequired: services.get(String(service))?.approvalRequired === true });
}

function kindDef(kind: string): KindDef {
  const k = KINDS.find((x) => x.kind === kind || x.collection === kind);
  if (!k) throw new VpnError('ERR_NOT_FOUND', `no resource kind "${kind}" (kinds: ${KINDS.map((x) => x.kind).join(', ')})`);
  return k;
}

function nameOf(e: unknown): string | undefined {
  return isPlainObject(e) && typeof e.name === 'string' ? e.name : undefined;
}

function filterValue(v: unknown): string | undefined {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
}

/**
 * The loader names list entries by index (`vpnConnections[3]`); a resource is known by its name,
 * so the error says `vpnConnections[conn2]` instead. Only the path changes, never the reason.
 */
function namedByResource(e: ConfigError, doc: Document): ConfigError {
  const m = new RegExp(`^(${LIST_SECTIONS.join('|')})\\[(\\d+)\\]`).exec(e.path);
  if (!m) return e;
  const name = nameOf(doc[m[1] as ListSection][Number(m[2])]);
  if (!name) return e;
  const path = `${m[1]}[${name}]${e.path.slice(m[0].length)}`;
  const out = new ConfigError(path, null, '');
  out.message = e.message.replace(e.path, path);
  return out;
}

