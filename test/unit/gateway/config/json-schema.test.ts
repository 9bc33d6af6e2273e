import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError } from '../../../../src/common/errors.js';
import { configEntryJsonSchema, configJsonSchema, parseConfig, readEntry } from '../../../../src/gateway/config/index.js';

// The JSON Schema comes from the same field tables as the loader. These tests check that each
// section's schema is well-formed (draft 2020-12 keywords only, consistent bounds, compilable
// patterns, defaults that satisfy their own schema) and that schema and loader agree on a few
// documents. The validator below covers the keywords the generator emits; `format` is an
// annotation here, as in draft 2020-12 by default.

type Schema = Record<string, unknown>;

const KEYWORDS = new Set([
  '$schema', 'title', 'description', 'default', 'writeOnly', 'type', 'enum', 'const', 'pattern', 'minLength', 'maxLength',
  'minimum', 'maximum', 'items', 'minItems', 'maxItems', 'uniqueItems', 'properties', 'required', 'additionalProperties',
  'anyOf', 'format',
]);
const TYPES = new Set(['string', 'integer', 'number', 'boolean', 'object', 'array', 'null']);

function wellFormed(s: Schema, at: string): void {
  for (const k of Object.keys(s)) expect(KEYWORDS.has(k), `${at}: keyword ${k}`).toBe(true);
  if ('type' in s) expect(TYPES.has(s.type as string), `${at}: type`).toBe(true);
  if ('pattern' in s) expect(() => new RegExp(s.pattern as string, 'u')).not.toThrow();
  if ('minimum' in s && 'maximum' in s) expect(s.minimum as number).toBeLessThanOrEqual(s.maximum as number);
  if ('minLength' in s && 'maxLength' in s) expect(s.minLength as number).toBeLessThanOrEqual(s.maxLength as number);
  if ('minItems' in s && 'maxItems' in s) expect(s.minItems as number).toBeLessThanOrEqual(s.maxItems as number);
  if ('enum' in s) expect((s.enum as unknown[]).length).toBeGreaterThan(0);
  if ('description' in s) expect(typeof s.description).toBe('string');
  if ('anyOf' in s) (s.anyOf as Schema[]).forEach((x, i) => wellFormed(x, `${at}.anyOf[${i}]`));
  if ('items' in s) wellFormed(s.items as Schema, `${at}.items`);
  if ('properties' in s) {
    expect(s.type).toBe('object');
    expect(s.additionalProperties).toBe(false);
    const props = s.properties as Record<string, Schema>;
    for (const r of (s.required as string[] | undefined) ?? []) expect(props[r], `${at}: required ${r}`).toBeDefined();
    for (const [k, p] of Object.entries(props)) {
      wellFormed(p, `${at}.${k}`);
      const d = defaultOf(p);
      if (d !== undefined) expect(valid(p, d), `${at}.${k}: default ${JSON.stringify(d)}`).toBe(true);
    }
  }
}

function defaultOf(s: Schema): unknown {
  if ('default' in s) return s.default;
  return (s.anyOf as Schema[] | undefined)?.map(defaultOf).find((d) => d !== undefined);
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** A draft 2020-12 validator for the keywords above (format is not asserted). */
function valid(s: Schema, v: unknown): boolean {
  if ('type' in s && typeOf(v) !== s.type && !(s.type === 'number' && typeOf(v) === 'integer')) return false;
  if ('const' in s && v !== s.const) return false;
  if ('enum' in s && !(s.enum as unknown[]).includes(v)) return false;
  if ('anyOf' in s && !(s.anyOf as Schema[]).some((x) => valid(x, v))) return false;
  if (typeof v === 'string') {
    if ('minLength' in s && v.length < (s.minLength as number)) return false;
    if ('maxLength' in s && v.length > (s.maxLength as number)) return false;
    if ('pattern' in s && !new RegExp(s.pattern as string, 'u').test(v)) return false;
  }
  if (typeof v === 'number') {
    if ('minimum' in s && v < (s.minimum as number)) return false;
    if ('maximum' in s && v > (s.maximum as number)) return false;
  }
  if (Array.isArray(v)) {
    if ('minItems' in s && v.length < (s.minItems as number)) return false;
    if ('maxItems' in s && v.length > (s.maxItems as number)) return false;
    if (s.uniqueItems && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) return false;
    if ('items' in s && !v.every((x) => valid(s.items as Schema, x))) return false;
  }
  if (typeOf(v) === 'object') {
    const o = v as Record<string, unknown>;
    const props = (s.properties as Record<string, Schema> | undefined) ?? {};
    for (const r of (s.required as string[] | undefined) ?? []) if (!(r in o)) return false;
    for (const [k, x] of Object.entries(o)) {
      if (!(k in props)) {
        if (s.additionalProperties === false) return false;
      } else if (!valid(props[k]!, x)) return false;
    }
  }
  return true;
}

function loads(doc: unknown): boolean {
  try {
    parseConfig(stringify(doc), '/etc/vpcgw/schema-test.yaml');
    return true;
  } catch (e) {
    if (e instanceof ConfigError) return false;
    throw e;
  }
}

const GATEWAY = { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], tun: { name: 'vpcgw0', mtu: 1400 } };
const CGW = { name: 'dc1', address: '192.0.2.1', id: '192.0.2.1' };
const CONN = {
  name: 'dc1-main', customerGateway: 'dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'],
  auth: { psk: 'correct-horse-battery' }, ike: { proposals: 'aes128gcm16-prfsha256-x25519', lifetime: '4h', localId: '192.0.2.2' },
  esp: { lifetime: 3600, replayWindow: 64 }, startAction: 'start', dpd: { interval: '30s' },
};
const SERVER = {
  name: 'p2c', protocols: ['udp', 'tcp'], port: 1194, clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'],
  dnsServers: ['10.2.0.53'], dataCiphers: ['AES-256-GCM'], auth: { type: 'cert' },
  serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt', maxConnections: 100, clientToClient: false,
};
const FULL = { gateway: GATEWAY, customerGateways: [CGW], vpnConnections: [CONN], vpnServers: [SERVER] };

describe('config JSON Schema', () => {
  it.each(['gateway', 'customerGateways', 'vpnConnections', 'vpnServers', 'userGroups', 'users', 'accessPolicies', undefined] as const)('%s: well-formed draft 2020-12', (section) => {
    const s = configJsonSchema(section) as Schema;
    expect(s.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(JSON.parse(JSON.stringify(s))).toEqual(s); // plain JSON: no RegExp, no functions
    wellFormed(s, section ?? '(file)');
  });

  it('a section schema lists exactly the keys the loader allows, with types and bounds from the table', () => {
    const gw = configJsonSchema('gateway') as Schema;
    expect(Object.keys(gw.properties as object)).toEqual(['name', 'dataDir', 'publicAddresses', 'vpcSubnets', 'tun', 'logLevel', 'dataPlane', 'ike', 'api', 'endpoints', 'dns']);
    expect(gw.required).toEqual(['publicAddresses', 'vpcSubnets']);
    const conn = configEntryJsonSchema('vpnConnections') as Schema;
    const esp = (conn.properties as Record<string, Schema>).esp!;
    const espObj = (esp.anyOf as Schema[])[0]!;
    expect((espObj.properties as Record<string, Schema>).replayWindow).toMatchObject({ type: 'integer', minimum: 0, maximum: 65536, default: 1024 });
    const psk = ((conn.properties as Record<string, Schema>).auth!.properties as Record<string, Schema>).psk!;
    expect(psk).toMatchObject({ type: 'string', minLength: 8, maxLength: 128, writeOnly: true });
    const servers = configJsonSchema('vpnServers') as Schema;
    expect(servers.type).toBe('array');
    const ciphers = ((servers.items as Schema).properties as Record<string, Schema>).dataCiphers!;
    expect(((ciphers.anyOf as Schema[])[0]!.items as Schema).enum).toEqual(['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305']);
  });

  const edits: [string, (d: any) => void, boolean][] = [
    ['the documented example', () => {}, true],
    ['only required keys', (d) => {
      d.gateway = { publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'] };
      d.vpnConnections = [{ name: 'c', customerGateway: 'dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'], auth: { psk: 'correct-horse-battery' } }];
      d.vpnServers = [{ name: 's', clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], auth: { type: 'cert' }, serverCert: { cert: 'a', key: 'b' }, clientCa: 'c' }];
    }, true],
    ['queues auto and null optional sections', (d) => {
      d.gateway.dataPlane = { queues: 'auto' };
      d.gateway.tun = null;
      d.vpnConnections[0].dpd = null;
    }, true],
    ['an unknown key', (d) => (d.gateway.publicAdresses = ['192.0.2.3']), false],
    ['a missing required key', (d) => delete d.vpnConnections[0].auth, false],
    ['an MTU out of range', (d) => (d.gateway.tun.mtu = 100), false],
    ['queues out of range', (d) => (d.gateway.dataPlane = { queues: 17 }), false],
    ['an unknown log level', (d) => (d.gateway.logLevel = 'verbose'), false],
    ['a short PSK', (d) => (d.vpnConnections[0].auth.psk = 'short'), false],
    ['a bad name', (d) => (d.customerGateways[0].name = 'dc 1'), false],
    ['a lifetime out of range', (d) => (d.vpnConnections[0].esp.lifetime = 5), false],
    ['a lifetime that is not a duration', (d) => (d.vpnConnections[0].ike.lifetime = '4x'), false],
    ['three DNS servers', (d) => (d.vpnServers[0].dnsServers = ['10.2.0.53', '10.2.0.54', '10.2.0.55']), false],
    ['a protocol twice', (d) => (d.vpnServers[0].protocols = ['tcp', 'tcp']), false],
    ['an unknown cipher', (d) => (d.vpnServers[0].dataCiphers = ['BF-CBC']), false],
    ['clientToClient as a string', (d) => (d.vpnServers[0].clientToClient = 'yes'), false],
    ['a PSK in place of the auth mapping', (d) => (d.vpnConnections[0].auth = 'correct-horse-battery'), false],
    ['no gateway', (d) => delete d.gateway, false],
    ['user groups and access policies (a CIDR, or cidr/protocol/ports)', (d) => {
      d.userGroups = [{ name: 'eng', description: 'engineers' }];
      d.accessPolicies = [{ name: 'p', group: 'eng', destinations: ['10.2.0.0/16', { cidr: '10.3.0.0/16', protocol: 'tcp', ports: ['443', '8000-8100', 22] }, { cidr: '10.4.0.0/16', protocol: 'udp', ports: 53 }] }];
    }, true],
    ['a policy destination that is neither a CIDR nor a mapping', (d) => {
      d.userGroups = [{ name: 'eng' }];
      d.accessPolicies = [{ name: 'p', group: 'eng', destinations: [42] }];
    }, false],
    ['a policy protocol out of the list', (d) => {
      d.userGroups = [{ name: 'eng' }];
      d.accessPolicies = [{ name: 'p', group: 'eng', destinations: [{ cidr: '10.3.0.0/16', protocol: 'gre' }] }];
    }, false],
    ['a port that is not a port or a range', (d) => {
      d.userGroups = [{ name: 'eng' }];
      d.accessPolicies = [{ name: 'p', group: 'eng', destinations: [{ cidr: '10.3.0.0/16', protocol: 'tcp', ports: 'https' }] }];
    }, false],
    ['sessionsPerUser out of range', (d) => (d.vpnServers[0].sessionsPerUser = 0), false],
  ];

  it.each(edits)('schema and loader agree: %s', (_t, edit, ok) => {
    const doc = structuredClone(FULL);
    edit(doc);
    expect(valid(configJsonSchema() as Schema, doc)).toBe(ok);
    expect(loads(doc)).toBe(ok);
  });

  it('section and entry schemas agree with the whole-file schema', () => {
    const doc = structuredClone(FULL);
    for (const k of ['gateway', 'customerGateways', 'vpnConnections', 'vpnServers'] as const) {
      expect(valid(configJsonSchema(k) as Schema, doc[k])).toBe(true);
    }
    expect(valid(configEntryJsonSchema('vpnServers') as Schema, SERVER)).toBe(true);
    expect(valid(configEntryJsonSchema('vpnServers') as Schema, { ...SERVER, port: 0 })).toBe(false);
    expect(loads({ ...doc, vpnServers: [{ ...SERVER, port: 0 }] })).toBe(false);
  });
});

describe('readEntry: one entry against a loaded config (management API requests)', () => {
  it('reads with the table and the rules, naming paths under the given prefix', () => {
    const cfg = parseConfig(stringify(FULL), '/etc/vpcgw/schema-test.yaml');
    const conn = readEntry('vpnConnections', { ...CONN, name: 'c2', remoteSubnets: ['10.7.0.0/16'] }, cfg, '/etc/vpcgw', 'body');
    expect(conn.peer.name).toBe('dc1');
    expect(conn.ike.lifetimeSec).toBe(14400);
    expect(() => readEntry('vpnConnections', { ...CONN, customerGateway: 'dc9' }, cfg, '/etc/vpcgw', 'body'))
      .toThrow(/config body\.customerGateway: "dc9" is not valid: the name of a customer gateway \(dc1\)/);
    expect(() => readEntry('vpnServers', { ...SERVER, clientCidr: '10.2.8.0/24' }, cfg, '/etc/vpcgw', 'body'))
      .toThrow(/config body\.clientCidr: .*overlap/);
    expect(readEntry('vpnServers', SERVER, cfg, '/etc/vpcgw').serverCert.cert).toBe('/etc/vpcgw/server.crt');
  });
});
