/**
 * The HTTPS management API: fastify routes generated from `service.kinds()`, so a new kind of
 * resource needs no code here. This file only turns requests into ManagementService calls and
 * their results (or VpnErrors) into responses:
 *
 *   GET    /healthz, /v1/openapi.json                  open (no token)
 *   GET    /metrics                                    Prometheus text format 0.0.4
 *   GET    /v1/{collection}                            list: limit, offset | marker, exact-match filters
 *   POST   /v1/{collection}                            create (201 + Location); not for singletons
 *   GET|PUT|DELETE /v1/{collection}/{idOrName}         read, replace, delete (204); no DELETE for singletons
 *   GET|POST /v1/{collection}/{idOrName}/{action}      the kind's actions (JSON, or a text download)
 *   POST|GET|DELETE /v1/console/session                the web console's login, session, logout (open)
 *   GET    /v1/traffic, /v1/traffic/summary            bytes/s history of an object, the overview's figures
 *   GET    /v1/events                                  server-sent change events (src/api/events.ts)
 *   GET    / and any other path outside /v1, /metrics   the web console's files (open; src/api/static.ts)
 *
 * Every other route needs `Authorization: Bearer <token>` (RFC 6750) or the web console's session
 * cookie (src/api/console-session.ts); with the cookie alone, a method other than GET/HEAD must
 * carry the session's `X-CSRF-Token` (else 403 ERR_FORBIDDEN). Every response carries
 * `X-Request-Id`; every non-2xx body is `{ error_code, error_msg, request_id }` with the codes of
 * src/common/errors.ts. Known paths answer a method they do not serve with 405 and `Allow`
 * (RFC 9110 §15.5.6), unknown paths with 404.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fastifyCookie } from '@fastify/cookie';
import { fastify, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { VpnError, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import {
  ConsoleSessions, csrfMatches, SESSION_COOKIE, type ConsoleSession, type SessionTimeouts,
} from './console-session.js';
import { EventHub, KEEPALIVE_MS, MAX_STREAMS } from './events.js';
import { IdempotencyCache, type StoredResponse } from './idempotency.js';
import { CONSOLE_SECURITY_HEADERS, ConsoleFiles, isConsolePath } from './static.js';
import { buildOpenApiDocument, OPENAPI_PATH } from './openapi.js';
import { parseActionQuery, parseListQuery } from './query.js';
import { TRAFFIC_OBJECT_KINDS, type ManagementService, type ResourceAction, type ResourceKind, type TrafficObjectKind } from './service.js';

/** Request bodies over this size are refused with 413 before they are read in full. */
export const API_BODY_LIMIT_BYTES = 1024 * 1024;
/** A request must arrive in full within this time (a slow client cannot hold a socket for ever). */
export const API_REQUEST_TIMEOUT_MS = 30_000;

const JSON_TYPE = 'application/json; charset=utf-8';
const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const ROUTE_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
type Method = (typeof ROUTE_METHODS)[number];

/** VpnError codes → HTTP status; any other code is a 500 with a generic message. */
const STATUS_OF_CODE: Partial<Record<ErrorCode, number>> = {
  ERR_NOT_FOUND: 404,
  ERR_UNKNOWN_CONNECTION: 404,
  ERR_CONFIG: 400,
  ERR_BAD_REQUEST: 400,
  ERR_INVALID_ARG: 400,
  ERR_CONFLICT: 409,
  ERR_STATE: 409,
  ERR_UNAUTHORIZED: 401,
  ERR_FORBIDDEN: 403,
  ERR_REQUEST_TOO_LARGE: 413,
  ERR_RATE_LIMITED: 429,
  ERR_BUSY: 503,
};

/** The console's login route: open (it checks a token or password itself). */
export const CONSOLE_SESSION_PATH = '/v1/console/session';
/** How often ended sessions are swept (their event streams close within this of the timeout). */
const SESSION_SWEEP_MS = 30_000;

/**
 * Failed-login back-off per source address (src/ssl/server/auth-backoff.ts has the gateway's;
 * src/gateway/run.ts passes one). The time comes in as an argument.
 */
export interface LoginBackoff {
  blocked(source: string, nowMs: number): boolean;
  /** Counts a failure; true when the source is now blocked. */
  failure(source: string, nowMs: number): boolean;
  success(source: string): void;
  readonly limits: { readonly blockMs: number };
}

/** The bundle's default folder: dist/console of the package this file belongs to. */
export function defaultConsoleDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'dist', 'console');
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'console');
}

/** An error answered with a given HTTP status and extra headers (401, 405, 415, 503). */
export class ApiHttpError extends VpnError {
  constructor(readonly status: number, code: ErrorCode, message: string, readonly headers: Readonly<Record<string, string>> = {}) {
    super(code, message);
  }
}

export interface ApiServerOptions {
  service: ManagementService;
  /** Address to listen on (`0.0.0.0`, `::`, `127.0.0.1`...). */
  host: string;
  /** TCP port; 0 picks a free one (read it back from the result). */
  port: number;
  /** PEM certificate (chain) and private key. */
  tls: { cert: string; key: string };
  log: Logger;
  /** The web console's bundle (default: dist/console of this package; defaultConsoleDir). */
  consoleDir?: string;
  /** Failed console logins per source address; none: no back-off (src/gateway/run.ts passes one). */
  loginBackoff?: LoginBackoff;
  /** Console session timeouts (default: 30 min idle, 12 h absolute, 1000 sessions). */
  sessionTimeouts?: SessionTimeouts;
  /** Wall clock in ms (session expiry); default Date.now. */
  nowMs?: () => number;
  /** Event streams open at once (default MAX_STREAMS) and their keepalive interval (tests shorten it). */
  eventLimits?: { maxStreams: number; keepaliveMs: number };
}

export interface ApiServer {
  readonly address: string;
  readonly port: number;
  /** Requests refused for a missing or wrong bearer token (or session), and failed console logins, since start. */
  readonly authFailures: number;
  /** The console's sessions (tests read their count and listeners). */
  readonly sessions: ConsoleSessions;
  /** The open event streams (GET /v1/events). */
  readonly events: EventHub;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

type Handler = (req: FastifyRequest) => Promise<StoredResponse>;

const ok = (status: number, body?: unknown, headers: Record<string, string> = {}): StoredResponse =>
  body === undefined ? { status, headers, body: undefined } : { status, headers: { 'content-type': JSON_TYPE, ...headers }, body: JSON.stringify(body) };

/** `filename=` of Content-Disposition with only characters every client reads the same way. */
function safeFilename(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return s.slice(0, 128) || 'download';
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

const SESSION_COOKIE_OPTIONS = { path: '/', secure: true, httpOnly: true, sameSite: 'strict' } as const;

function sessionCookieOf(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== 'string') return undefined;
  try {
    return fastifyCookie.parse(header)[SESSION_COOKIE];
  } catch {
    return undefined;
  }
}

/** The console session a request was authenticated with (none: a bearer token or an open path). */
const sessionOfRequest = new WeakMap<FastifyRequest, ConsoleSession>();
export function requestSession(req: FastifyRequest): ConsoleSession | undefined {
  return sessionOfRequest.get(req);
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const { service, log } = opts;
  const kinds = service.kinds();
  const openapi = JSON.stringify(buildOpenApiDocument(kinds));
  const idempotency = new IdempotencyCache();
  let authFailures = 0;
  let healthy = true;

  const app = fastify({
    https: { cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' },
    logger: false,
    bodyLimit: API_BODY_LIMIT_BYTES,
    requestTimeout: API_REQUEST_TIMEOUT_MS,
    forceCloseConnections: true,
    // a body with __proto__ or constructor.prototype keys is refused (400), not parsed
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // our own ids: a client's X-Request-Id is not trusted into the logs
    requestIdHeader: false,
    genReqId: () => randomUUID(),
  });
  // JSON only: anything else with a body is 415
  app.removeContentTypeParser('text/plain');
  // the cookie parser and serializer (RFC 6265) the session routes use; fastify loads it (and it its
  // codec) during listen, so startup stays one synchronous run up to listen as before
  void app.register(fastifyCookie);

  // ---- per request: auth, ids, one log line ----

  const PUBLIC = new Set(['/healthz', OPENAPI_PATH]);
  const nowMs = opts.nowMs ?? Date.now;
  const sessions = new ConsoleSessions(opts.sessionTimeouts);
  const sweep = setInterval(() => sessions.sweep(nowMs()), SESSION_SWEEP_MS);
  sweep.unref();
  const files = new ConsoleFiles(opts.consoleDir ?? defaultConsoleDir());
  const events = new EventHub(service, sessions, opts.eventLimits ?? { maxStreams: MAX_STREAMS, keepaliveMs: KEEPALIVE_MS });
  const refuse = (req: FastifyRequest, reason: string): never => {
    authFailures++;
    // the token or cookie itself is never logged, only what was wrong with it
    log.warn({ reqId: req.id, method: req.method, url: req.url, remote: req.ip, reason }, 'api: request without a valid bearer token or session refused');
    throw new ApiHttpError(401, 'ERR_UNAUTHORIZED', 'a valid bearer token (Authorization: Bearer <token>) or console session is required', { 'www-authenticate': 'Bearer' });
  };
  app.addHook('onRequest', async (req) => {
    const path = pathOf(req.url);
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (read && (PUBLIC.has(path) || isConsolePath(path))) return;
    if (path === CONSOLE_SESSION_PATH) return; // checks the token, password or cookie itself
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = typeof header === 'string' ? /^Bearer +([^\s]+) *$/i.exec(header) : null;
      let valid = false;
      if (m) {
        try {
          valid = service.verifyToken(m[1]!);
        } catch (err) {
          log.error({ err, reqId: req.id }, 'api: token check failed');
        }
      }
      if (!valid) refuse(req, 'invalid');
      return;
    }
    const cookie = sessionCookieOf(req);
    if (cookie === undefined) return refuse(req, 'missing');
    const s = sessions.touch(cookie, nowMs());
    if (!s) return refuse(req, 'session');
    // synchronizer token: a write made with the cookie alone must echo the session's CSRF token
    if (!read && !csrfMatches(s, req.headers['x-csrf-token'])) {
      log.warn({ reqId: req.id, method: req.method, url: req.url, remote: req.ip, user: s.user }, 'api: console request without its CSRF token refused');
      throw new ApiHttpError(403, 'ERR_FORBIDDEN', 'a console session\'s request that changes something needs its X-CSRF-Token header');
    }
    sessionOfRequest.set(req, s);
  });
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
    reply.header('cache-control', 'no-store');
  });
  app.addHook('onResponse', async (req, reply) => {
    log.debug({ reqId: req.id, method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'api request');
  });

  // ---- errors ----

  const sendError = (reply: FastifyReply, req: FastifyRequest, status: number, code: ErrorCode, msg: string, headers: Readonly<Record<string, string>> = {}): void => {
    reply.code(status).headers(headers).type(JSON_TYPE).send(JSON.stringify({ error_code: code, error_msg: msg, request_id: req.id }));
  };
  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    if (err instanceof ApiHttpError) return sendError(reply, req, err.status, err.code, err.message, err.headers);
    if (err instanceof VpnError) {
      const status = STATUS_OF_CODE[err.code];
      if (status !== undefined) return sendError(reply, req, status, err.code, err.message);
    } else {
      const fe = err as FastifyError;
      const status = fe.statusCode ?? 500;
      if (typeof fe.code === 'string' && fe.code.startsWith('FST_') && status >= 400 && status < 500) {
        if (status === 413) return sendError(reply, req, 413, 'ERR_REQUEST_TOO_LARGE', `request body larger than ${API_BODY_LIMIT_BYTES} bytes`);
        if (status === 415) return sendError(reply, req, 415, 'ERR_BAD_REQUEST', `unsupported Content-Type ${JSON.stringify(req.headers['content-type'] ?? '')}: request bodies are application/json`);
        if (fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) return sendError(reply, req, 400, 'ERR_BAD_REQUEST', 'the request body is not valid JSON');
        return sendError(reply, req, 400, 'ERR_BAD_REQUEST', fe.message);
      }
      if (err instanceof SyntaxError && status === 400) return sendError(reply, req, 400, 'ERR_BAD_REQUEST', 'the request body is not valid JSON');
    }
    log.error({ err, reqId: req.id, method: req.method, url: req.url }, 'api request failed');
    return sendError(reply, req, 500, 'ERR_INTERNAL', `internal error (request id ${req.id} in the gateway log)`);
  });
  app.setNotFoundHandler((req, reply) => {
    sendError(reply, req, 404, 'ERR_NOT_FOUND', `no route ${req.method} ${pathOf(req.url)}`);
  });

  // ---- routes: one table of path → method → handler; a method not in it is 405 ----

  const table = new Map<string, Map<Method, Handler>>();
  const route = (url: string, method: Method, h: Handler): void => {
    let m = table.get(url);
    if (!m) table.set(url, (m = new Map()));
    m.set(method, h);
  };

  route('/healthz', 'GET', async () => {
    let h: { ok: boolean; detail: unknown };
    try {
      h = service.health();
    } catch (err) {
      h = { ok: false, detail: { err: String(err) } };
    }
    if (h.ok !== healthy) {
      healthy = h.ok;
      if (h.ok) log.info({}, 'api: health check passes again');
      else log.warn({ detail: h.detail }, 'api: health check fails');
    }
    if (!h.ok) throw new ApiHttpError(503, 'ERR_STATE', 'the gateway is not healthy');
    return ok(200, { status: 'ok' });
  });
  route(OPENAPI_PATH, 'GET', async () => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: openapi }));
  route('/metrics', 'GET', async () => ({ status: 200, headers: { 'content-type': METRICS_TYPE }, body: await service.metrics() }));

  for (const kind of kinds) addKindRoutes(kind);
  addConsoleSessionRoutes();

  route('/v1/traffic', 'GET', async (req) => {
    if (!service.traffic) throw new VpnError('ERR_NOT_FOUND', 'this gateway keeps no traffic history');
    const q = req.query as Record<string, unknown>;
    const kind = q.kind;
    if (typeof kind !== 'string' || !(TRAFFIC_OBJECT_KINDS as readonly string[]).includes(kind)) {
      throw new VpnError('ERR_BAD_REQUEST', `kind ${JSON.stringify(kind ?? null)} is not valid: one of ${TRAFFIC_OBJECT_KINDS.join(', ')}`);
    }
    if (typeof q.name !== 'string' || q.name === '') throw new VpnError('ERR_BAD_REQUEST', 'name (the object\'s name; <server>/<user> for a client) is required');
    let since: number | undefined;
    if (q.since !== undefined) {
      since = typeof q.since === 'string' && /^\d{1,16}$/.test(q.since) ? Number(q.since) : NaN;
      if (!Number.isSafeInteger(since)) throw new VpnError('ERR_BAD_REQUEST', `since ${JSON.stringify(q.since)} is not valid: unix time in milliseconds`);
    }
    return ok(200, service.traffic(kind as TrafficObjectKind, q.name, since));
  });
  route('/v1/traffic/summary', 'GET', async () => {
    if (!service.trafficSummary) throw new VpnError('ERR_NOT_FOUND', 'this gateway keeps no traffic history');
    return ok(200, service.trafficSummary());
  });

  function sessionBody(s: ConsoleSession): Record<string, string> {
    return { user: s.user, csrf: s.csrf, expiresAt: new Date(sessions.expiresAtMs(s)).toISOString() };
  }

  function addConsoleSessionRoutes(): void {
    const backoff = opts.loginBackoff;
    route(CONSOLE_SESSION_PATH, 'POST', async (req) => {
      const now = nowMs();
      const source = req.ip;
      if (backoff?.blocked(source, now)) {
        authFailures++;
        log.warn({ reqId: req.id, remote: source }, 'api: console login refused: too many failed logins from this address');
        throw new ApiHttpError(429, 'ERR_RATE_LIMITED', 'too many failed logins from this address: try again later', { 'retry-after': String(Math.ceil(backoff.limits.blockMs / 1000)) });
      }
      const b = req.body as Record<string, unknown> | null | undefined;
      const body = b !== null && typeof b === 'object' && !Array.isArray(b) ? b : {};
      let user: string | null = null;
      let method: 'token' | 'password';
      if (typeof body.token === 'string' && body.username === undefined && body.password === undefined) {
        method = 'token';
        try {
          if (service.verifyToken(body.token)) user = service.tokenLabel?.(body.token) ?? 'api-token';
        } catch (err) {
          log.error({ err, reqId: req.id }, 'api: token check failed');
        }
      } else if (typeof body.username === 'string' && typeof body.password === 'string' && body.token === undefined) {
        method = 'password';
        if (service.verifyAdminPassword && body.username.length <= 64 && body.password.length <= 4096) {
          try {
            if (await service.verifyAdminPassword(body.username, body.password)) user = body.username;
          } catch (err) {
            log.error({ err, reqId: req.id }, 'api: admin password check failed');
          }
        }
      } else {
        throw new VpnError('ERR_BAD_REQUEST', 'the body must be {"token": "..."} or {"username": "...", "password": "..."}');
      }
      if (user === null) {
        authFailures++;
        const blocked = backoff?.failure(source, now) ?? false;
        // never the token or the password; the user name of a password login is no secret
        log.warn({ reqId: req.id, remote: source, method, ...(method === 'password' ? { user: body.username } : {}), blocked }, 'api: console login failed');
        throw new ApiHttpError(401, 'ERR_UNAUTHORIZED', method === 'token' ? 'the token is not valid' : 'wrong user name or password');
      }
      backoff?.success(source);
      const { id, session } = sessions.create(user, now);
      log.info({ reqId: req.id, remote: source, method, user }, 'api: console login');
      const maxAge = Math.max(0, Math.floor((session.createdMs + sessions.limits.absoluteMs - now) / 1000));
      return ok(200, sessionBody(session), { 'set-cookie': fastifyCookie.serialize(SESSION_COOKIE, id, { ...SESSION_COOKIE_OPTIONS, maxAge }) });
    });
    route(CONSOLE_SESSION_PATH, 'GET', async (req) => {
      const cookie = sessionCookieOf(req);
      const s = cookie === undefined ? null : sessions.touch(cookie, nowMs());
      if (!s) throw new ApiHttpError(401, 'ERR_UNAUTHORIZED', 'no console session: log in with POST /v1/console/session');
      return ok(200, sessionBody(s));
    });
    route(CONSOLE_SESSION_PATH, 'DELETE', async (req) => {
      const cookie = sessionCookieOf(req);
      if (cookie !== undefined) {
        const s = sessions.peek(cookie, nowMs());
        // a logout needs no CSRF token when the session is already gone; with a live one it does
        if (s && !csrfMatches(s, req.headers['x-csrf-token'])) {
          throw new ApiHttpError(403, 'ERR_FORBIDDEN', 'logging out needs the session\'s X-CSRF-Token header');
        }
        if (s) {
          sessions.remove(cookie);
          log.info({ reqId: req.id, remote: req.ip, user: s.user }, 'api: console logout');
        }
      }
      return ok(204, undefined, { 'set-cookie': fastifyCookie.serialize(SESSION_COOKIE, '', { ...SESSION_COOKIE_OPTIONS, maxAge: 0 }) });
    });
  }

  function addKindRoutes(k: ResourceKind): void {
    const base = `/v1/${k.collection}`;
    const item = `${base}/:idOrName`;
    const idOf = (req: FastifyRequest): string => (req.params as { idOrName: string }).idOrName;

    route(base, 'GET', async (req) => ok(200, service.list(k.kind, parseListQuery(k, req.query as Record<string, string>))));
    route(item, 'GET', async (req) => ok(200, service.get(k.kind, idOf(req))));
    route(item, 'PUT', async (req) => ok(200, await service.replace(k.kind, idOf(req), req.body)));
    if (!k.singleton) {
      route(base, 'POST', async (req) => {
        const view = await service.create(k.kind, req.body);
        return ok(201, view, { location: `${base}/${encodeURIComponent(view.id)}` });
      });
      route(item, 'DELETE', async (req) => {
        await service.delete(k.kind, idOf(req));
        return ok(204);
      });
    }
    for (const a of k.actions) route(`${item}/${a.name}`, a.method, (req) => runAction(k, a, idOf(req), req));
  }

  async function runAction(k: ResourceKind, a: ResourceAction, idOrName: string, req: FastifyRequest): Promise<StoredResponse> {
    const query = parseActionQuery(a, req.query as Record<string, string>);
    const r = await service.action(k.kind, idOrName, a.name, query, a.method === 'POST' ? req.body : undefined);
    if (a.produces === 'json') return r.json === undefined ? ok(204) : ok(200, r.json);
    const filename = safeFilename(r.filename ?? `${idOrName}-${a.name}.txt`);
    return {
      status: 200,
      headers: { 'content-type': `${a.produces}; charset=utf-8`, 'content-disposition': `attachment; filename="${filename}"` },
      body: r.text ?? '',
    };
  }

  for (const [url, methods] of table) {
    const allow = [...methods.keys(), ...(methods.has('GET') ? ['HEAD'] : [])].join(', ');
    app.route({
      method: [...ROUTE_METHODS],
      url,
      handler: async (req, reply) => {
        const method = (req.method === 'HEAD' ? 'GET' : req.method) as Method;
        const h = methods.get(method);
        if (!h) throw new ApiHttpError(405, 'ERR_BAD_REQUEST', `${req.method} is not allowed on ${pathOf(req.url)} (allowed: ${allow})`, { allow });
        const token = req.headers['x-client-token'];
        let r: StoredResponse;
        if (method === 'POST' && token !== undefined && url !== CONSOLE_SESSION_PATH) {
          if (typeof token !== 'string') throw new VpnError('ERR_BAD_REQUEST', 'X-Client-Token: given more than once');
          const out = await idempotency.run(token, method, req.url, req.body, () => h(req));
          r = out.response;
          if (out.replayed) reply.header('x-idempotent-replay', 'true');
        } else {
          r = await h(req);
        }
        reply.code(r.status).headers(r.headers);
        return reply.send(r.body);
      },
    });
  }

  // server-sent events: the handler keeps the response (hijack) and the hub writes to it
  app.get('/v1/events', async (req, reply) => {
    if (req.method === 'HEAD') return reply.code(200).type('text/event-stream; charset=utf-8').send();
    if (!events.hasRoom()) {
      throw new ApiHttpError(503, 'ERR_BUSY', `too many event streams open (at most ${events.limits.maxStreams}): poll instead, or retry later`, { 'retry-after': '5' });
    }
    reply.hijack();
    events.open(reply.raw, requestSession(req)?.key ?? null, { 'x-request-id': req.id });
    log.debug({ reqId: req.id, streams: events.size }, 'api: event stream opened');
  });

  // the web console: any GET the routes above do not serve, outside /v1 and /metrics
  app.get('/*', async (req, reply) => {
    const path = pathOf(req.url);
    if (!isConsolePath(path)) return sendError(reply, req, 404, 'ERR_NOT_FOUND', `no route ${req.method} ${path}`);
    const f = await files.resolve(path);
    reply.code(f.status).headers(CONSOLE_SECURITY_HEADERS).type(f.type);
    return reply.send(f.body);
  });

  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address() as AddressInfo;
  log.info({ address: addr.address, port: addr.port, kinds: kinds.map((k) => k.kind) }, 'api: listening (HTTPS)');
  return {
    address: addr.address,
    port: addr.port,
    get authFailures() {
      return authFailures;
    },
    sessions,
    events,
    close: () => {
      clearInterval(sweep);
      events.closeAll();
      return app.close();
    },
  };
}
