/**
 * The OpenAPI 3.1 document of the management API, built from `service.kinds()` so it always
 * lists the routes src/api/server.ts serves. OpenAPI 3.1 schema objects are JSON Schema 2020-12
 * (OpenAPI 3.1.0 §4.8.24), so each kind's request schema is used as is; a response adds the
 * read-only `id`, `status`, `created_at` and `updated_at`.
 */
import { filterFields, PAGING_PARAMETERS } from './query.js';
import {
  DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, RESOURCE_STATUSES, TRAFFIC_OBJECT_KINDS, type ResourceAction, type ResourceKind,
} from './service.js';
import { CLIENT_TOKEN_MAX_LENGTH, IDEMPOTENCY_WINDOW_MS } from './idempotency.js';

export const OPENAPI_PATH = '/v1/openapi.json';
export const API_VERSION = '1.0.0';

type Obj = Record<string, unknown>;

/** `customer-gateway` → `CustomerGateway` (and `connections/action` → `ConnectionsAction`): component and operation names. */
function pascal(kebab: string): string {
  return kebab.split(/[-/]/).map((w) => (w ? w[0]!.toUpperCase() + w.slice(1) : '')).join('');
}

const ref = (section: string, name: string): Obj => ({ $ref: `#/components/${section}/${name}` });

const ERROR_RESPONSE = ref('responses', 'Error');

/** The request schema as a component: the document-level keywords ($schema) left out. */
function specSchema(k: ResourceKind): Obj {
  const { $schema: _drop, ...rest } = k.schema as Obj;
  return { ...rest, title: `${pascal(k.kind)}Spec` };
}

/** The response schema: the spec's properties plus the read-only fields every view has. */
function viewSchema(k: ResourceKind): Obj {
  const spec = specSchema(k);
  const props = (spec.properties ?? {}) as Obj;
  const required = (spec.required ?? []) as string[];
  return {
    ...spec,
    title: pascal(k.kind),
    properties: {
      ...props,
      id: { type: 'string', readOnly: true, description: 'Stable identifier (also accepted wherever a name is).' },
      name: props.name ?? { type: 'string' },
      status: { type: 'string', enum: [...RESOURCE_STATUSES], readOnly: true },
      created_at: { type: 'string', format: 'date-time', readOnly: true },
      updated_at: { type: 'string', format: 'date-time', readOnly: true },
    },
    required: [...new Set([...required, 'id', 'name', 'status', 'created_at', 'updated_at'])],
  };
}

function listSchema(k: ResourceKind): Obj {
  return {
    type: 'object',
    required: ['items', 'total_count', 'page_info'],
    properties: {
      items: { type: 'array', items: ref('schemas', pascal(k.kind)) },
      total_count: { type: 'integer', minimum: 0, description: 'Items matching the filters, on all pages.' },
      page_info: {
        type: 'object',
        required: ['current_count', 'next_marker'],
        properties: {
          current_count: { type: 'integer', minimum: 0 },
          next_marker: { type: ['string', 'null'], description: 'Pass as `marker` for the next page; null on the last page.' },
        },
      },
    },
  };
}

function jsonContent(schema: Obj): Obj {
  return { 'application/json': { schema } };
}

function filterParameters(k: ResourceKind): Obj[] {
  return filterFields(k).map((name) => ({
    name,
    in: 'query',
    required: false,
    description: name === 'id' || name === 'name' || name === 'status' ? `Only items with this ${name}.` : `Only items whose ${name} is exactly this value.`,
    schema: name === 'status' ? { type: 'string', enum: [...RESOURCE_STATUSES] } : { type: 'string' },
  }));
}

function actionOperation(k: ResourceKind, a: ResourceAction): Obj {
  const params: Obj[] = [ref('parameters', 'IdOrName')];
  for (const [name, q] of Object.entries(a.query ?? {})) {
    params.push({ name, in: 'query', required: false, description: q.description, schema: q.enum ? { type: 'string', enum: [...q.enum] } : { type: 'string' } });
  }
  if (a.method === 'POST') params.push(ref('parameters', 'ClientToken'));
  const success = a.produces === 'json'
    ? { '200': { description: 'The result.', content: jsonContent({}) }, '204': { description: 'Done; nothing to return.' } }
    : {
      '200': {
        description: 'A download (Content-Disposition: attachment).',
        headers: { 'Content-Disposition': { schema: { type: 'string' } } },
        content: { [a.produces]: { schema: { type: 'string' } } },
      },
    };
  return {
    operationId: `${a.method.toLowerCase()}${pascal(k.kind)}${pascal(a.name)}`,
    tags: [k.collection],
    summary: a.description,
    parameters: params,
    ...(a.method === 'POST' ? { requestBody: { required: false, content: jsonContent({}) } } : {}),
    responses: { ...success, default: ERROR_RESPONSE },
  };
}

const CSRF_HEADER: Obj = {
  name: 'X-CSRF-Token',
  in: 'header',
  required: false,
  description: 'With the console session cookie (and no bearer token): the session\'s csrf value, required on every method other than GET and HEAD (else 403 ERR_FORBIDDEN).',
  schema: { type: 'string' },
};

/** The web console's login session (src/api/console-session.ts). */
function consolePaths(): Obj {
  const session = jsonContent(ref('schemas', 'ConsoleSession'));
  return {
    '/v1/console/session': {
      post: {
        operationId: 'createConsoleSession',
        tags: ['console'],
        summary: 'Logs in to the web console with an API token or a local admin\'s password (`vpcgw admin add`).',
        description: 'Sets the session cookie `vpcgw_session` (Path=/; Secure; HttpOnly; SameSite=Strict). Sessions end after 30 minutes idle or 12 hours. '
          + 'Failed logins are 401; after 5 from one address within a minute that address is refused (429, Retry-After) for a minute.',
        security: [],
        requestBody: {
          required: true,
          content: jsonContent({
            oneOf: [
              { type: 'object', required: ['token'], additionalProperties: false, properties: { token: { type: 'string', writeOnly: true } } },
              {
                type: 'object',
                required: ['username', 'password'],
                additionalProperties: false,
                properties: { username: { type: 'string' }, password: { type: 'string', writeOnly: true } },
              },
            ],
          }),
        },
        responses: {
          '200': { description: 'Logged in.', headers: { 'Set-Cookie': { description: 'The session cookie.', schema: { type: 'string' } } }, content: session },
          '401': ERROR_RESPONSE,
          '429': ERROR_RESPONSE,
          default: ERROR_RESPONSE,
        },
      },
      get: {
        operationId: 'getConsoleSession',
        tags: ['console'],
        summary: 'The current console session (its CSRF token again, for a reloaded page); 401 without one.',
        security: [{ consoleSession: [] }],
        responses: { '200': { description: 'The session.', content: session }, '401': ERROR_RESPONSE, default: ERROR_RESPONSE },
      },
      delete: {
        operationId: 'deleteConsoleSession',
        tags: ['console'],
        summary: 'Logs out: ends the session and clears the cookie.',
        security: [{ consoleSession: [] }, {}],
        parameters: [ref('parameters', 'CsrfToken')],
        responses: { '204': { description: 'Logged out (also when there was no session).' }, '403': ERROR_RESPONSE, default: ERROR_RESPONSE },
      },
    },
  };
}

/** The console's live data: traffic history and the change event stream. */
function livePaths(): Obj {
  return {
    '/v1/traffic': {
      get: {
        operationId: 'getTraffic',
        tags: ['console'],
        summary: 'Bytes per second in and out of one object over the last hour (at most 720 points, one per 5 s), from the gateway\'s own counters.',
        parameters: [
          { name: 'kind', in: 'query', required: true, description: 'What the object is.', schema: { type: 'string', enum: [...TRAFFIC_OBJECT_KINDS] } },
          { name: 'name', in: 'query', required: true, description: 'Its name; for vpn-server-client `<server>/<user>`.', schema: { type: 'string', minLength: 1 } },
          { name: 'since', in: 'query', required: false, description: 'Only points after this time (unix ms).', schema: { type: 'integer', minimum: 0 } },
        ],
        responses: {
          '200': {
            description: 'The points, oldest first: [unix ms, bytes/s in, bytes/s out].',
            content: jsonContent({
              type: 'object',
              required: ['kind', 'name', 'stepSeconds', 'points'],
              properties: {
                kind: { type: 'string', enum: [...TRAFFIC_OBJECT_KINDS] },
                name: { type: 'string' },
                stepSeconds: { type: 'integer', const: 5 },
                points: { type: 'array', maxItems: 720, items: { type: 'array', prefixItems: [{ type: 'integer' }, { type: 'number' }, { type: 'number' }], minItems: 3, maxItems: 3 } },
              },
            }),
          },
          '404': ERROR_RESPONSE,
          default: ERROR_RESPONSE,
        },
      },
    },
    '/v1/traffic/summary': {
      get: {
        operationId: 'getTrafficSummary',
        tags: ['console'],
        summary: 'The overview\'s figures: tunnels up and down, clients online, throughput now (connections and clients, bytes/s).',
        responses: {
          '200': {
            description: 'The figures.',
            content: jsonContent({
              type: 'object',
              required: ['at', 'tunnelsUp', 'tunnelsDown', 'clientsOnline', 'inBytesPerSec', 'outBytesPerSec'],
              properties: {
                at: { type: 'integer', description: 'When the rates were sampled (unix ms).' },
                tunnelsUp: { type: 'integer', minimum: 0 },
                tunnelsDown: { type: 'integer', minimum: 0 },
                clientsOnline: { type: 'integer', minimum: 0 },
                inBytesPerSec: { type: 'number', minimum: 0 },
                outBytesPerSec: { type: 'number', minimum: 0 },
              },
            }),
          },
          default: ERROR_RESPONSE,
        },
      },
    },
    '/v1/events': {
      get: {
        operationId: 'getEvents',
        tags: ['console'],
        summary: 'Server-sent events: `event: change` with data {"kind", "name"} when a resource is created, replaced or deleted, a connection\'s or '
          + 'endpoint\'s state changes, or a client connects or leaves (kind vpn-server-client, name <server>/<user>, and kind vpn-server); '
          + 'a `: keepalive` comment every 15 s. At most 32 streams at once (503 beyond). A stream opened with a console session ends with it.',
        responses: {
          '200': { description: 'The stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } },
          '503': ERROR_RESPONSE,
          default: ERROR_RESPONSE,
        },
      },
    },
  };
}

/** The document for these kinds. */
export function buildOpenApiDocument(kinds: readonly ResourceKind[]): Obj {
  const schemas: Obj = {
    Error: {
      type: 'object',
      required: ['error_code', 'error_msg', 'request_id'],
      properties: {
        error_code: { type: 'string', description: 'Stable code (ERR_NOT_FOUND, ERR_CONFIG, ERR_CONFLICT, ERR_UNAUTHORIZED, ...).' },
        error_msg: { type: 'string', description: 'What went wrong; wording may change, the code does not.' },
        request_id: { type: 'string', description: 'Also in the X-Request-Id header and the gateway log.' },
      },
    },
    ConsoleSession: {
      type: 'object',
      required: ['user', 'csrf', 'expiresAt'],
      properties: {
        user: { type: 'string', description: 'Who logged in: the token\'s name or the admin\'s user name.' },
        csrf: { type: 'string', description: 'Send as X-CSRF-Token on every request other than GET/HEAD made with the cookie.' },
        expiresAt: { type: 'string', format: 'date-time', description: 'When the session ends unless used again (idle or absolute limit).' },
      },
    },
  };
  const paths: Obj = {
    '/healthz': {
      get: {
        operationId: 'getHealth',
        tags: ['operations'],
        summary: 'Liveness: the daemon runs and its store answers.',
        security: [],
        responses: {
          '200': { description: 'Healthy.', content: jsonContent({ type: 'object', required: ['status'], properties: { status: { const: 'ok' } } }) },
          '503': ERROR_RESPONSE,
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'getMetrics',
        tags: ['operations'],
        summary: 'Counters and gauges in the Prometheus text format 0.0.4.',
        responses: { '200': { description: 'Metrics.', content: { 'text/plain': { schema: { type: 'string' } } } }, default: ERROR_RESPONSE },
      },
    },
    [OPENAPI_PATH]: {
      get: {
        operationId: 'getOpenApi',
        tags: ['operations'],
        summary: 'This document.',
        security: [],
        responses: { '200': { description: 'The OpenAPI 3.1 document.', content: jsonContent({ type: 'object' }) } },
      },
    },
    ...consolePaths(),
    ...livePaths(),
  };

  for (const k of kinds) {
    const name = pascal(k.kind);
    schemas[`${name}Spec`] = specSchema(k);
    schemas[name] = viewSchema(k);
    schemas[`${name}List`] = listSchema(k);
    const one = { description: `The ${k.kind}.`, content: jsonContent(ref('schemas', name)) };
    const body = { required: true, content: jsonContent(ref('schemas', `${name}Spec`)) };

    const collection: Obj = {
      get: {
        operationId: `list${name}s`,
        tags: [k.collection],
        summary: `Lists ${k.kind}s.`,
        parameters: [...PAGING_PARAMETERS.map((p) => ref('parameters', pascal(p))), ...filterParameters(k)],
        responses: { '200': { description: 'One page.', content: jsonContent(ref('schemas', `${name}List`)) }, default: ERROR_RESPONSE },
      },
    };
    if (!k.singleton) {
      collection.post = {
        operationId: `create${name}`,
        tags: [k.collection],
        summary: `Creates a ${k.kind}.`,
        parameters: [ref('parameters', 'ClientToken')],
        requestBody: body,
        responses: {
          '201': { ...one, headers: { Location: { description: 'The new resource\'s URL.', schema: { type: 'string' } } } },
          default: ERROR_RESPONSE,
        },
      };
    }
    const item: Obj = {
      parameters: [ref('parameters', 'IdOrName')],
      get: { operationId: `get${name}`, tags: [k.collection], summary: `Reads a ${k.kind}.`, responses: { '200': one, default: ERROR_RESPONSE } },
      put: {
        operationId: `replace${name}`,
        tags: [k.collection],
        summary: `Replaces a ${k.kind}'s spec (the whole entry, as written in the config file).`,
        requestBody: body,
        responses: { '200': one, default: ERROR_RESPONSE },
      },
    };
    if (!k.singleton) {
      item.delete = { operationId: `delete${name}`, tags: [k.collection], summary: `Deletes a ${k.kind}.`, responses: { '204': { description: 'Deleted.' }, default: ERROR_RESPONSE } };
    }
    paths[`/v1/${k.collection}`] = collection;
    paths[`/v1/${k.collection}/{idOrName}`] = item;
    for (const a of k.actions) paths[`/v1/${k.collection}/{idOrName}/${a.name}`] = { [a.method.toLowerCase()]: actionOperation(k, a) };
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'vpcgw management API',
      version: API_VERSION,
      description: 'Resources are the entries of the config file\'s sections, with the same field names. Secrets are write-only.',
    },
    security: [{ bearerAuth: [] }, { consoleSession: [] }],
    tags: [{ name: 'operations' }, { name: 'console' }, ...kinds.map((k) => ({ name: k.collection }))],
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'A token the gateway issued.' },
        consoleSession: {
          type: 'apiKey',
          in: 'cookie',
          name: 'vpcgw_session',
          description: 'The web console\'s session (POST /v1/console/session). Requests other than GET/HEAD made with it alone need X-CSRF-Token.',
        },
      },
      parameters: {
        CsrfToken: CSRF_HEADER,
        IdOrName: { name: 'idOrName', in: 'path', required: true, description: 'The resource\'s id or name.', schema: { type: 'string' } },
        Limit: { name: 'limit', in: 'query', required: false, description: 'Page size.', schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE_LIMIT, default: DEFAULT_PAGE_LIMIT } },
        Offset: { name: 'offset', in: 'query', required: false, description: 'Items to skip (not with marker).', schema: { type: 'integer', minimum: 0 } },
        Marker: { name: 'marker', in: 'query', required: false, description: 'The id of the last item of the previous page (page_info.next_marker).', schema: { type: 'string', minLength: 1 } },
        ClientToken: {
          name: 'X-Client-Token',
          in: 'header',
          required: false,
          description: `Idempotency token: the same token with the same request within ${IDEMPOTENCY_WINDOW_MS / 60_000} minutes returns the first response; with a different request it is refused (409).`,
          schema: { type: 'string', minLength: 1, maxLength: CLIENT_TOKEN_MAX_LENGTH },
        },
      },
      responses: {
        Error: { description: 'An error.', content: jsonContent(ref('schemas', 'Error')) },
      },
    },
  };
}
