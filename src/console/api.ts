/**
 * The console's only way to the gateway: the public management API under /v1, with the session
 * cookie set by POST /v1/console/session (src/api/server.ts). Every state-changing request carries
 * X-CSRF-Token with the value that login (or GET /v1/console/session after a reload) returned, as
 * the server refuses cookie-authenticated writes without it.
 */
import type { Schema } from './schema.js';

/** An API refusal: the body `{ error_code, error_msg, request_id }` of src/api/server.ts. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface Session {
  user: string;
  csrf: string;
  expiresAt: string;
}

let csrf = '';
/** Called on any 401 after login: the session expired or was revoked. */
let onUnauthorized: () => void = () => undefined;

export function setSession(s: Session | null): void {
  csrf = s?.csrf ?? '';
}

export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let msg = res.statusText || `HTTP ${res.status}`;
  try {
    const b = (await res.json()) as { error_code?: string; error_msg?: string };
    if (b.error_code) code = b.error_code;
    if (b.error_msg) msg = b.error_msg;
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, code, msg);
}

/** One request; JSON in and out. `raw` returns the Response (downloads). */
export async function request(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['x-csrf-token'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && !path.startsWith('/v1/console/session')) onUnauthorized();
    throw err;
  }
  return res;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(method, path, body);
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

export const login = (creds: { token: string } | { username: string; password: string }) =>
  api<Session>('POST', '/v1/console/session', creds);
export const currentSession = () => api<Session>('GET', '/v1/console/session');
export const logout = () => api<void>('DELETE', '/v1/console/session');

/** A resource as the API returns it (src/api/service.ts ResourceView). */
export type View = Record<string, unknown> & { id: string; name: string; status: string; created_at: string; updated_at: string };
export interface ListPage {
  items: View[];
  total_count: number;
}

export const list = (collection: string, filters: Record<string, string> = {}) => {
  const q = new URLSearchParams({ limit: '2000', ...filters });
  return api<ListPage>('GET', `/v1/${collection}?${q}`);
};
export const get = (collection: string, name: string) => api<View>('GET', `/v1/${collection}/${encodeURIComponent(name)}`);
export const create = (collection: string, body: unknown) => api<View>('POST', `/v1/${collection}`, body);
export const replace = (collection: string, name: string, body: unknown) => api<View>('PUT', `/v1/${collection}/${encodeURIComponent(name)}`, body);
export const remove = (collection: string, name: string) => api<void>('DELETE', `/v1/${collection}/${encodeURIComponent(name)}`);
export const action = <T = unknown>(collection: string, name: string, act: string, method: 'GET' | 'POST' = 'POST', body?: unknown, query: Record<string, string> = {}) => {
  const q = new URLSearchParams(query).toString();
  return api<T>(method, `/v1/${collection}/${encodeURIComponent(name)}/${act}${q ? `?${q}` : ''}`, body);
};

/** Fetches a text download and hands it to the browser as a file. */
export async function download(path: string, method: 'GET' | 'POST', fallbackName: string, body?: unknown): Promise<void> {
  const res = await request(method, path, body);
  const cd = res.headers.get('content-disposition') ?? '';
  const m = /filename="?([^";]+)"?/.exec(cd);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = m?.[1] ?? fallbackName;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface TrafficSeries {
  kind: string;
  name: string;
  stepSeconds: number;
  points: [number, number, number][];
}
export interface TrafficSummary {
  at: number;
  tunnelsUp: number;
  tunnelsDown: number;
  clientsOnline: number;
  inBytesPerSec: number;
  outBytesPerSec: number;
}
export const traffic = (kind: string, name: string) =>
  api<TrafficSeries>('GET', `/v1/traffic?${new URLSearchParams({ kind, name })}`);
export const trafficSummary = () => api<TrafficSummary>('GET', '/v1/traffic/summary');

/** The request-body schema of each kind, from /v1/openapi.json (fetched once). */
let schemas: Promise<Record<string, Schema>> | null = null;
export type { Schema };
export function kindSchemas(): Promise<Record<string, Schema>> {
  schemas ??= fetch('/v1/openapi.json', { credentials: 'same-origin' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new ApiError(r.status, `HTTP_${r.status}`, 'cannot read /v1/openapi.json'))))
    .then((doc: { components?: { schemas?: Record<string, Schema> } }) => doc.components?.schemas ?? {})
    .catch((e: unknown) => {
      schemas = null;
      throw e;
    });
  return schemas;
}
