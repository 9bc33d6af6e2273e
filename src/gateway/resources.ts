import type { JsonSchema, ResourceAction, ResourceKind } from '../api/service.js';
import { configEntryJsonSchema, configJsonSchema, type SectionName } from './config/index.js';

/**
 * The resource model: every kind the management API, the CLI and the store know, each one the
 * entries of one section of the config file (the gateway section is the one vpn gateway), with the
 * same field names and the same schema. Kinds added later (users, groups, endpoint services,
 * endpoints) are one more row here and one more section in config/sections.ts.
 */
export interface KindDef extends ResourceKind {
  readonly section: SectionName;
}

const CONNECTION_ACTIONS: readonly ResourceAction[] = [
  { name: 'initiate', method: 'POST', produces: 'json', description: 'Bring the tunnel up now (IKE_SA_INIT to the customer gateway).' },
  { name: 'terminate', method: 'POST', produces: 'json', description: 'Take the tunnel down now (IKE DELETE); it stays configured.' },
  {
    name: 'rekey',
    method: 'POST',
    produces: 'json',
    description: 'Rekey the established tunnel now (CREATE_CHILD_SA, RFC 7296 §1.3.3/§2.8): its CHILD_SAs (default) or its IKE SA. '
      + '`sa` in the query or a JSON body. 409 when the connection is not ESTABLISHED.',
    query: { sa: { enum: ['child', 'ike'], description: 'What to rekey (default child).' } },
  },
  {
    name: 'regenerate-psk',
    method: 'POST',
    produces: 'json',
    description: 'Replace the connection\'s pre-shared key with a new random one and return it, this once: `{"psk": "..."}` '
      + '(views never show a PSK). The change goes live at once; the customer gateway needs the new key too (peer-config has it). '
      + '409 when the connection does not authenticate with a PSK.',
  },
  {
    name: 'peer-config',
    method: 'GET',
    produces: 'text/plain',
    description: 'The customer gateway\'s side of this connection, ready to load: strongSwan swanctl.conf or Libreswan ipsec.conf. '
      + 'It contains the pre-shared key.',
    query: { format: { enum: ['swanctl', 'libreswan'], description: 'Which peer software (default swanctl).' } },
  },
];

const SERVER_ACTIONS: readonly ResourceAction[] = [
  {
    name: 'clients',
    method: 'GET',
    produces: 'json',
    description: 'The clients online now: id, user, real and virtual address, cipher, bytes, connected since.',
  },
  {
    name: 'disconnect',
    method: 'POST',
    produces: 'json',
    description: 'Close one client session now: the client is sent RESTART (it reconnects; with halt=true HALT: it exits), '
      + 'its address and route are released. `client` (an id from clients, or a user name) in the query or a JSON body.',
    query: {
      client: { description: 'The session: its id from clients, or its user name.' },
      halt: { enum: ['true', 'false'], description: 'Tell the client to exit instead of reconnecting (default false).' },
    },
  },
  {
    name: 'client-profile',
    method: 'GET',
    produces: 'application/x-openvpn-profile',
    description: 'An OpenVPN client profile (.ovpn) for this server: remote, protocol, the CA and the tls-crypt / tls-auth key inline, '
      + 'the data ciphers; the user adds their own certificate and key. No secrets of the server beyond the tls key.',
    query: { host: { description: 'The address or name clients dial (default: the listen address, or the gateway\'s first public address).' } },
  },
  {
    name: 'client-config',
    method: 'POST',
    produces: 'application/x-openvpn-profile',
    description: 'A ready client profile (.ovpn) for one user: the client-profile plus, on cert and cert+password servers whose CA key the gateway '
      + 'holds (the .key file beside clientCa), a certificate issued now (CN = user, EKU clientAuth) and its private key inline. '
      + 'The key is generated for this download and never stored. Password servers: the profile with auth-user-pass. '
      + '`user` (and optionally `host`) in the query or a JSON body.',
    query: {
      user: { description: 'The user name: the certificate\'s CN.' },
      host: { description: 'The address or name clients dial (default as for client-profile).' },
    },
  },
];

function kind(k: string, collection: string, section: SectionName, actions: readonly ResourceAction[] = []): KindDef {
  const singleton = section === 'gateway';
  const schema = singleton ? configJsonSchema('gateway') : configEntryJsonSchema(section);
  return Object.freeze({
    kind: k,
    collection,
    section,
    singleton,
    schema: section === 'users' ? withWriteOnlyPassword(schema) : schema,
    actions,
  });
}

/**
 * A user's request body may carry `password` instead of `passwordHash`: the service hashes it
 * before storing (src/gateway/service.ts, `prepare`). Both are write-only.
 */
function withWriteOnlyPassword(schema: JsonSchema): JsonSchema {
  const s = schema as { properties: Record<string, unknown>; required?: string[] };
  return {
    ...s,
    properties: {
      ...s.properties,
      password: { type: 'string', minLength: 1, maxLength: 4096, writeOnly: true, description: 'The user\'s password: stored as its scrypt hash, never shown.' },
    },
    // one of the two is required: the loader names a missing one (users[name].passwordHash)
    required: (s.required ?? []).filter((f) => f !== 'passwordHash'),
  };
}

/**
 * The provider's side of an endpoint service (the cloud VPC endpoint API's `connections`): the
 * endpoints of the service with their approval state, and accepting or rejecting them.
 */
const ENDPOINT_SERVICE_ACTIONS: readonly ResourceAction[] = [
  {
    name: 'connections',
    method: 'GET',
    produces: 'json',
    description: 'The endpoints of this service with their state (PENDING_ACCEPTANCE, ACCEPTED, REJECTED), address and DNS name.',
  },
  {
    name: 'connections/action',
    method: 'POST',
    produces: 'json',
    description: 'Accept (`receive`) or reject (`reject`) endpoints of this service: body `{"action": "receive"|"reject", "endpoints": [id or name, ...]}`. '
      + 'The state is stored and survives restarts and `vpcgw apply`; rejecting cuts the endpoint\'s flows at once, accepting opens it.',
  },
];

export const KINDS: readonly KindDef[] = Object.freeze([
  kind('vpn-gateway', 'vpn-gateways', 'gateway'),
  kind('customer-gateway', 'customer-gateways', 'customerGateways'),
  kind('vpn-connection', 'vpn-connections', 'vpnConnections', CONNECTION_ACTIONS),
  kind('vpn-server', 'vpn-servers', 'vpnServers', SERVER_ACTIONS),
  kind('user', 'users', 'users'),
  kind('user-group', 'user-groups', 'userGroups'),
  kind('access-policy', 'access-policies', 'accessPolicies'),
  kind('vpc-endpoint-service', 'vpc-endpoint-services', 'endpointServices', ENDPOINT_SERVICE_ACTIONS),
  kind('vpc-endpoint', 'vpc-endpoints', 'endpoints'),
]);

/** List sections in the order the config file (and a document built from the store) has them. */
export const LIST_SECTIONS = ['customerGateways', 'vpnConnections', 'vpnServers', 'userGroups', 'users', 'accessPolicies', 'endpointServices', 'endpoints'] as const;
export type ListSection = (typeof LIST_SECTIONS)[number];

export function kindOfSection(section: SectionName): KindDef {
  return KINDS.find((k) => k.section === section)!;
}
