/**
 * What the management API serves, as an interface: src/gateway implements it (the resource
 * store, validation through the config schema, live changes to the running daemon) and the
 * control socket calls the same implementation, so every operation exists once. src/api only
 * turns HTTP requests into these calls and their results (or VpnErrors) into responses.
 *
 * Resources are the entries of the config file's sections, with the same field names as in the
 * YAML; a view adds `id`, `status` and timestamps and leaves out secrets (write-only fields).
 */
/** A JSON Schema (draft 2020-12) document. */
export type JsonSchema = { readonly [k: string]: unknown };

/** Statuses a resource reports (the cloud VPN services' lifecycle values). */
export const RESOURCE_STATUSES = [
  'PENDING_CREATE', 'PENDING_UPDATE', 'ACTIVE', 'DOWN', 'ERROR',
  // a VPC endpoint: waiting for its service's owner, accepted (open), rejected (closed)
  'PENDING_ACCEPTANCE', 'ACCEPTED', 'REJECTED',
] as const;
export type ResourceStatus = (typeof RESOURCE_STATUSES)[number];

/** One kind of resource: where it lives in the URL space and what a body must look like. */
export interface ResourceKind {
  /** Stable kind id, kebab-case singular: `customer-gateway`. */
  readonly kind: string;
  /** The URL collection under /v1: `customer-gateways`. */
  readonly collection: string;
  /** The config file section it comes from: `customerGateways` (`gateway` for the singleton). */
  readonly section: string;
  /** One instance that always exists (the vpn gateway): no create or delete, PUT updates it. */
  readonly singleton: boolean;
  /** JSON Schema (draft 2020-12) of a request body: one entry as written in the YAML. */
  readonly schema: JsonSchema;
  /** Action names POST /v1/{collection}/{id}/{action} accepts, and GET-only downloads. */
  readonly actions: readonly ResourceAction[];
}

export interface ResourceAction {
  readonly name: string;
  readonly method: 'GET' | 'POST';
  /** What the action returns: JSON (an object), or a text download of this media type. */
  readonly produces: 'json' | 'text/plain' | 'application/x-openvpn-profile';
  readonly description: string;
  /** Query parameters the action reads (e.g. `format` for peer-config). */
  readonly query?: Readonly<Record<string, { readonly enum?: readonly string[]; readonly description: string }>>;
}

/** A resource as the API returns it. The spec fields come first, as written (secrets omitted). */
export type ResourceView = Record<string, unknown> & {
  readonly id: string;
  readonly name: string;
  readonly status: ResourceStatus;
  readonly created_at: string;
  readonly updated_at: string;
};

export interface ListQuery {
  /** 1..MAX_PAGE_LIMIT; default DEFAULT_PAGE_LIMIT. */
  readonly limit?: number;
  /** Offset pagination. */
  readonly offset?: number;
  /** Marker pagination: the id of the last item of the previous page. */
  readonly marker?: string;
  /** Exact-match filters: `name`, `status`, and any top-level string field of the spec (`customerGateway`). */
  readonly filters?: Readonly<Record<string, string>>;
}

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 2000;

export interface ListPage {
  readonly items: ResourceView[];
  readonly total_count: number;
  readonly page_info: { readonly current_count: number; readonly next_marker: string | null };
}

/** What changed, for the event stream (GET /v1/events): the UI refetches the affected list. */
export interface ChangeEvent {
  /** A resource kind (`vpn-connection`), or `vpn-server-client` (a client connected or left). */
  readonly kind: string;
  /** The resource's name (`<server>/<user>` for a client). */
  readonly name: string;
}

/** Traffic history objects (GET /v1/traffic?kind=...). */
export const TRAFFIC_OBJECT_KINDS = ['vpn-connection', 'vpn-server-client', 'vpc-endpoint'] as const;
export type TrafficObjectKind = (typeof TRAFFIC_OBJECT_KINDS)[number];

export interface TrafficHistoryView {
  readonly kind: TrafficObjectKind;
  readonly name: string;
  readonly stepSeconds: number;
  /** [unix ms, bytes/s in, bytes/s out], oldest first */
  readonly points: readonly (readonly [number, number, number])[];
}

export interface TrafficSummaryView {
  readonly at: number;
  readonly tunnelsUp: number;
  readonly tunnelsDown: number;
  readonly clientsOnline: number;
  readonly inBytesPerSec: number;
  readonly outBytesPerSec: number;
}

export interface ActionResult {
  /** JSON body, or a text download. */
  readonly json?: unknown;
  readonly text?: string;
  readonly filename?: string;
}

/**
 * The operations. Every method throws a VpnError for a refusal: ERR_NOT_FOUND (404),
 * ERR_CONFIG / ERR_BAD_REQUEST (400, the message names the field and value), ERR_CONFLICT (409),
 * ERR_STATE (409), anything else 500. `idOrName` accepts a resource's id or its name.
 */
export interface ManagementService {
  kinds(): readonly ResourceKind[];
  list(kind: string, q: ListQuery): ListPage;
  get(kind: string, idOrName: string): ResourceView;
  create(kind: string, body: unknown): Promise<ResourceView>;
  /**
   * Updates a resource (PUT, a partial document as in the cloud VPN APIs): the fields given replace
   * the stored ones, the others are kept, a field set to null goes back to its default.
   */
  replace(kind: string, idOrName: string, body: unknown): Promise<ResourceView>;
  delete(kind: string, idOrName: string): Promise<void>;
  action(kind: string, idOrName: string, action: string, query: Readonly<Record<string, string>>, body: unknown): Promise<ActionResult>;
  /** True when `token` is a valid bearer token (compared as a hash). */
  verifyToken(token: string): boolean;
  /** The label (name) of a valid token, for the console's "logged in as"; null when not valid. */
  tokenLabel?(token: string): string | null;
  /**
   * True when `username` is a local admin (`vpcgw admin add`) and `password` is theirs (checked
   * against the stored scrypt hash). Never throws for a wrong name or password.
   */
  verifyAdminPassword?(username: string, password: string): Promise<boolean>;
  /** Bytes/s in and out of one object over the last hour; ERR_NOT_FOUND for an unknown object. */
  traffic?(kind: TrafficObjectKind, name: string, sinceMs?: number): TrafficHistoryView;
  /** The overview's figures now. */
  trafficSummary?(): TrafficSummaryView;
  /** Calls `fn` for every change (resources written, states, clients); returns the unsubscribe function. */
  subscribe?(fn: (e: ChangeEvent) => void): () => void;
  /** Prometheus text exposition format (version 0.0.4). */
  metrics(): Promise<string>;
  /** Liveness: the daemon runs and its store answers. */
  health(): { readonly ok: boolean; readonly detail: Readonly<Record<string, unknown>> };
}
