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
 *
 * Every other route needs `Authorization: Bearer <token>` (RFC 6750). Every response carries
 * `X-Request-Id`; every non-2xx body is `{ error_code, error_msg, request_id }` with the codes of
 * src/common/errors.ts. Known paths answer a method they do not serve with 405 and `Allow`
 * (RFC 9110 §15.5.6), unknown paths with 404.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { VpnError, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { IdempotencyCache, type StoredResponse } from './idempotency.js';
import { buildOpenApiDocument, OPENAPI_PATH } from './openapi.js';
import { parseActionQuery, parseListQuery } from './query.js';
import type { ManagementService, ResourceAction, ResourceKind } from './service.js';

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
  ERR_REQUEST_TOO_LARGE: 413,
};

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
}

export interface ApiServer {
  readonly address: string;
  readonly port: number;
  /** Requests refused for a missing or wrong bearer token since start. */
  readonly authFailures: number;
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

  // ---- per request: auth, ids, one log line ----

  const PUBLIC = new Set(['/healthz', OPENAPI_PATH]);
  app.addHook('onRequest', async (req) => {
    if ((req.method === 'GET' || req.method === 'HEAD') && PUBLIC.has(pathOf(req.url))) return;
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer +([^\s]+) *$/i.exec(header) : null;
    let valid = false;
    if (m) {
      try {
        valid = service.verifyToken(m[1]!);
      } catch (err) {
        log.error({ err, reqId: req.id }, 'api: token check failed');
      }
    }
    if (!valid) {
      authFailures++;
      // the token itself is never logged, only whether there was one
      log.warn({ reqId: req.id, method: req.method, url: req.url, remote: req.ip, reason: header === undefined ? 'missing' : 'invalid' }, 'api: request without a valid bearer token refused');
      throw new ApiHttpError(401, 'ERR_UNAUTHORIZED', 'a valid bearer token is required (Authorization: Bearer <token>)', { 'www-authenticate': 'Bearer' });
    }
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
        if (method === 'POST' && token !== undefined) {
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

  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address() as AddressInfo;
  log.info({ address: addr.address, port: addr.port, kinds: kinds.map((k) => k.kind) }, 'api: listening (HTTPS)');
  return {
    address: addr.address,
    port: addr.port,
    get authFailures() {
      return authFailures;
    },
    close: () => app.close(),
  };
}
