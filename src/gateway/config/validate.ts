import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../../common/errors.js';
import { parsePrefix, prefixContains, prefixesOverlap, type Prefix } from '../../common/ip.js';
import { checkProposals } from './proposals.js';
import {
  address, bool, durationSec, int, isPlainObject, join, list, name, oneOf, optionalList, optionalStr, prefix,
  section, str, type Raw,
} from './schema.js';
import { Secret } from './secret.js';
import {
  DATA_CIPHERS, type AddressSpec, type CustomerGatewayConfig, type DataCipher, type GatewayConfig,
  type GatewaySection, type LogLevel, type PrefixSpec, type SslProtocol, type VpnConnectionConfig,
  type VpnServerConfig,
} from './types.js';

// ---- implementation choices (defaults and bounds) ----
export const DEFAULT_IKE_PROPOSALS = 'aes128gcm16-prfsha256-x25519';
export const DEFAULT_ESP_PROPOSALS = 'aes128gcm16';
export const DEFAULT_IKE_LIFETIME_SEC = 4 * 3600;
export const DEFAULT_ESP_LIFETIME_SEC = 3600;
export const DEFAULT_REPLAY_WINDOW = 1024;
export const DEFAULT_TUN_NAME = 'vpcgw0';
export const DEFAULT_TUN_MTU = 1400;
export const DEFAULT_SSL_PORT = 1194;
export const DEFAULT_MAX_CONNECTIONS = 100;
// Lower bounds are below the cloud anchors' (IKE 60 s, ESP 30 s, DPD 10 s) so rekey tests can run fast.
const IKE_LIFETIME_RANGE_SEC = [10, 7 * 86400] as const;
const ESP_LIFETIME_RANGE_SEC = [10, 7 * 86400] as const;
const DPD_INTERVAL_RANGE_SEC = [1, 3600] as const;
const PSK_LENGTH_RANGE = [8, 128] as const;
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const TUN_NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
export const MAX_DATA_PLANE_QUEUES = 16;

/** Ranges no subnet may sit in (cloud-model §9.1); client pools also avoid link-local. */
const RESERVED_V4 = ['0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4'].map((t) => parsePrefix(t)!);
const LINK_LOCAL_V4 = parsePrefix('169.254.0.0/16')!;
const RESERVED_V6 = ['::1/128', 'ff00::/8'].map((t) => parsePrefix(t)!);

function inside(inner: Prefix, outer: Prefix): boolean {
  return inner.family === outer.family && inner.len >= outer.len && prefixContains(outer, inner.bytes);
}

function checkNotReserved(p: PrefixSpec, path: string, extra: readonly Prefix[] = []): void {
  for (const r of [...RESERVED_V4, ...RESERVED_V6, ...extra]) {
    if (inside(p.prefix, r)) {
      throw new ConfigError(path, p.text, `a unicast subnet outside 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4${extra.length ? ', 169.254.0.0/16' : ''}, ::1 and ff00::/8`);
    }
  }
}

function prefixList(v: unknown, path: string, what: string, opts: { min?: number; max?: number } = {}): PrefixSpec[] {
  const out = list(v, path, what, { min: 1, ...opts }).map((x, i) => prefix(x, join(path, i)));
  out.forEach((p, i) => {
    checkNotReserved(p, join(path, i));
    const dup = out.findIndex((q) => q.prefix.family === p.prefix.family && q.prefix.len === p.prefix.len && q.prefix.bytes.equals(p.prefix.bytes));
    if (dup !== i) throw new ConfigError(join(path, i), p.text, `a prefix not already listed (it repeats ${join(path, dup)})`);
  });
  return out;
}

function uniqueNames(items: readonly { name: string }[], path: string): void {
  const seen = new Map<string, number>();
  items.forEach((it, i) => {
    const prev = seen.get(it.name);
    if (prev !== undefined) throw new ConfigError(join(join(path, i), 'name'), it.name, `a name not used before (${join(path, prev)} has it)`);
    seen.set(it.name, i);
  });
}

function resolvePath(p: string, baseDir: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

/**
 * Builds the typed config from a parsed YAML tree. `baseDir` resolves relative paths (dataDir,
 * certificates): the config file's folder. Throws the first ConfigError found.
 */
export function buildConfig(raw: unknown, source: string, baseDir: string): GatewayConfig {
  const top = section(raw, '', ['gateway', 'customerGateways', 'vpnConnections', 'vpnServers'], true);
  const gateway = buildGateway(top.gateway, baseDir);
  const cgwRaw = optionalList(top.customerGateways, 'customerGateways', 'customer gateways') ?? [];
  const customerGateways = cgwRaw.map((c, i) => buildCustomerGateway(c, join('customerGateways', i)));
  uniqueNames(customerGateways, 'customerGateways');
  const connRaw = optionalList(top.vpnConnections, 'vpnConnections', 'VPN connections') ?? [];
  const vpnConnections = connRaw.map((c, i) => buildConnection(c, join('vpnConnections', i), gateway, customerGateways));
  uniqueNames(vpnConnections, 'vpnConnections');
  checkRemoteSubnetsDistinct(vpnConnections);
  const srvRaw = optionalList(top.vpnServers, 'vpnServers', 'VPN servers') ?? [];
  const vpnServers = srvRaw.map((s, i) => buildServer(s, join('vpnServers', i), gateway, vpnConnections, baseDir));
  uniqueNames(vpnServers, 'vpnServers');
  checkServerPorts(vpnServers);
  return { source, gateway, customerGateways, vpnConnections, vpnServers };
}

function buildGateway(v: unknown, baseDir: string): GatewaySection {
  const g = section(v, 'gateway', ['name', 'dataDir', 'publicAddresses', 'vpcSubnets', 'tun', 'logLevel', 'dataPlane'], true);
  const gwName = g.name === undefined ? 'vpcgw' : name(g.name, 'gateway.name');
  const dataDir = resolvePath(optionalStr(g.dataDir, 'gateway.dataDir', 'a folder path') ?? './var', baseDir);
  const publicAddresses = list(g.publicAddresses, 'gateway.publicAddresses', 'IP addresses', { min: 1 }).map((a, i) =>
    address(a, join('gateway.publicAddresses', i)),
  );
  publicAddresses.forEach((a, i) => {
    const dup = publicAddresses.findIndex((b) => b.addr.bytes.equals(a.addr.bytes));
    if (dup !== i) throw new ConfigError(join('gateway.publicAddresses', i), a.text, 'an address not already listed');
  });
  const vpcSubnets = prefixList(g.vpcSubnets, 'gateway.vpcSubnets', 'CIDR prefixes', { max: 50 });
  const t = section(g.tun, 'gateway.tun', ['name', 'mtu', 'address']);
  const tunName = t.name === undefined ? DEFAULT_TUN_NAME : String(t.name);
  if (t.name !== undefined && (typeof t.name !== 'string' || !TUN_NAME_RE.test(t.name))) {
    throw new ConfigError('gateway.tun.name', t.name, 'an interface name of 1-15 letters, digits, "_", "-", "."');
  }
  const mtu = t.mtu === undefined ? DEFAULT_TUN_MTU : int(t.mtu, 'gateway.tun.mtu', 576, 9000);
  const tunAddress = t.address === undefined || t.address === null ? null : prefix(t.address, 'gateway.tun.address', true);
  const logLevel = g.logLevel === undefined ? 'info' : oneOf(g.logLevel, 'gateway.logLevel', LOG_LEVELS);
  const dp = section(g.dataPlane, 'gateway.dataPlane', ['queues']);
  const queues = dp.queues === undefined || dp.queues === 'auto' ? 'auto' : queueCount(dp.queues, 'gateway.dataPlane.queues');
  return {
    name: gwName,
    dataDir,
    publicAddresses,
    vpcSubnets,
    tun: { name: tunName, mtu, address: tunAddress },
    logLevel,
    dataPlane: { queues },
  };
}

function queueCount(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_DATA_PLANE_QUEUES) {
    throw new ConfigError(path, v, `"auto" or an integer from 1 to ${MAX_DATA_PLANE_QUEUES}`);
  }
  return v;
}

function buildCustomerGateway(v: unknown, path: string): CustomerGatewayConfig {
  const c = section(v, path, ['name', 'address', 'id'], true);
  const cgwName = name(c.name, join(path, 'name'));
  const addrText = str(c.address, join(path, 'address'), 'an IP address or "%any"');
  const addr = addrText === '%any' ? null : address(addrText, join(path, 'address'));
  let id: string;
  if (c.id === undefined || c.id === null) {
    if (!addr) throw new ConfigError(join(path, 'id'), undefined, 'an IKE identity (required when address is "%any")');
    id = addr.text;
  } else {
    id = str(c.id, join(path, 'id'), 'an IKE identity: an IP, fqdn:host, email:user@host, a DN or a host name');
    if (/\s/.test(id.trim()) && !id.includes('=')) {
      throw new ConfigError(join(path, 'id'), id, 'an IKE identity: an IP, fqdn:host, email:user@host, a DN or a host name');
    }
  }
  return { name: cgwName, address: addr, id };
}

function buildConnection(
  v: unknown,
  path: string,
  gw: GatewaySection,
  cgws: readonly CustomerGatewayConfig[],
): VpnConnectionConfig {
  const c = section(v, path, [
    'name', 'customerGateway', 'localSubnets', 'remoteSubnets', 'auth', 'ike', 'esp', 'startAction', 'dpd',
  ], true);
  const connName = name(c.name, join(path, 'name'));
  const cgwName = str(c.customerGateway, join(path, 'customerGateway'), 'the name of a customer gateway');
  const peer = cgws.find((g) => g.name === cgwName);
  if (!peer) {
    const known = cgws.length ? cgws.map((g) => g.name).join(', ') : 'none are defined';
    throw new ConfigError(join(path, 'customerGateway'), cgwName, `the name of a customer gateway (${known})`);
  }
  const localSubnets = prefixList(c.localSubnets, join(path, 'localSubnets'), 'CIDR prefixes', { max: 50 });
  localSubnets.forEach((p, i) => {
    if (!gw.vpcSubnets.some((s) => inside(p.prefix, s.prefix))) {
      throw new ConfigError(join(join(path, 'localSubnets'), i), p.text,
        `a prefix inside gateway.vpcSubnets (${gw.vpcSubnets.map((s) => s.text).join(', ')})`);
    }
  });
  const remoteSubnets = prefixList(c.remoteSubnets, join(path, 'remoteSubnets'), 'CIDR prefixes', { max: 50 });
  remoteSubnets.forEach((p, i) => {
    const hit = gw.vpcSubnets.find((s) => inside(p.prefix, s.prefix));
    if (hit) {
      throw new ConfigError(join(join(path, 'remoteSubnets'), i), p.text,
        `a customer-side prefix, not inside the VPC subnet ${hit.text} (its route would take over VPC traffic)`);
    }
  });

  const authPath = join(path, 'auth');
  // a scalar here is most likely the PSK itself: never echo it
  if (c.auth !== undefined && !isPlainObject(c.auth)) throw new ConfigError(authPath, '(hidden)', 'a mapping with key psk');
  const a = section(c.auth, authPath, ['psk'], true);
  if (typeof a.psk !== 'string') throw new ConfigError(join(authPath, 'psk'), a.psk === undefined ? undefined : '(hidden)', 'a pre-shared key string');
  if (a.psk.length < PSK_LENGTH_RANGE[0] || a.psk.length > PSK_LENGTH_RANGE[1]) {
    throw new ConfigError(join(authPath, 'psk'), '(hidden)', `a pre-shared key of ${PSK_LENGTH_RANGE[0]} to ${PSK_LENGTH_RANGE[1]} characters`);
  }
  const psk = new Secret(a.psk);

  const ikePath = join(path, 'ike');
  const ike = section(c.ike, ikePath, ['proposals', 'lifetime', 'localId']);
  const ikeProposals = ike.proposals === undefined ? DEFAULT_IKE_PROPOSALS : str(ike.proposals, join(ikePath, 'proposals'), 'a proposal list');
  const ikeParsed = checkProposals(ikeProposals, 'ike', join(ikePath, 'proposals'));
  const ikeLifetimeSec = ike.lifetime === undefined ? DEFAULT_IKE_LIFETIME_SEC : durationSec(ike.lifetime, join(ikePath, 'lifetime'), ...IKE_LIFETIME_RANGE_SEC);
  const localId = ike.localId === undefined || ike.localId === null ? null : str(ike.localId, join(ikePath, 'localId'), 'an IKE identity');

  const espPath = join(path, 'esp');
  const esp = section(c.esp, espPath, ['proposals', 'lifetime', 'replayWindow']);
  const espProposals = esp.proposals === undefined ? DEFAULT_ESP_PROPOSALS : str(esp.proposals, join(espPath, 'proposals'), 'a proposal list');
  const espParsed = checkProposals(espProposals, 'esp', join(espPath, 'proposals'));
  const espLifetimeSec = esp.lifetime === undefined ? DEFAULT_ESP_LIFETIME_SEC : durationSec(esp.lifetime, join(espPath, 'lifetime'), ...ESP_LIFETIME_RANGE_SEC);
  const replayWindow = esp.replayWindow === undefined ? DEFAULT_REPLAY_WINDOW : int(esp.replayWindow, join(espPath, 'replayWindow'), 0, 65536);

  const startAction = c.startAction === undefined ? (peer.address ? 'start' : 'none') : oneOf(c.startAction, join(path, 'startAction'), ['start', 'none'] as const);
  if (startAction === 'start' && !peer.address) {
    throw new ConfigError(join(path, 'startAction'), startAction, `"none": customer gateway ${peer.name} has address "%any", so we cannot initiate`);
  }
  let dpd: VpnConnectionConfig['dpd'] = null;
  if (c.dpd !== undefined && c.dpd !== null) {
    const d = section(c.dpd, join(path, 'dpd'), ['interval'], true);
    dpd = { intervalSec: durationSec(d.interval, join(path, 'dpd.interval'), ...DPD_INTERVAL_RANGE_SEC) };
  }
  return {
    name: connName,
    customerGateway: cgwName,
    peer,
    localSubnets,
    remoteSubnets,
    auth: { psk },
    ike: { proposals: ikeProposals, parsedProposals: ikeParsed, lifetimeSec: ikeLifetimeSec, localId },
    esp: { proposals: espProposals, parsedProposals: espParsed, lifetimeSec: espLifetimeSec, replayWindow },
    startAction,
    dpd,
  };
}

/** The same remote prefix on two connections would make the route (and the SPD) ambiguous. */
function checkRemoteSubnetsDistinct(conns: readonly VpnConnectionConfig[]): void {
  const seen = new Map<string, string>();
  conns.forEach((c, i) => {
    c.remoteSubnets.forEach((p, j) => {
      const key = `${p.prefix.family}:${p.prefix.bytes.toString('hex')}/${p.prefix.len}`;
      const prev = seen.get(key);
      if (prev !== undefined) {
        throw new ConfigError(`vpnConnections[${i}].remoteSubnets[${j}]`, p.text, `a prefix no other connection routes (${prev} has it)`);
      }
      seen.set(key, `vpnConnections[${i}] (${c.name})`);
    });
  });
}

function buildServer(
  v: unknown,
  path: string,
  gw: GatewaySection,
  conns: readonly VpnConnectionConfig[],
  baseDir: string,
): VpnServerConfig {
  const s = section(v, path, [
    'name', 'protocols', 'port', 'listen', 'clientCidr', 'localSubnets', 'dnsServers', 'dataCiphers', 'auth',
    'serverCert', 'clientCa', 'maxConnections', 'clientToClient',
  ], true);
  const srvName = name(s.name, join(path, 'name'));
  const protoRaw = optionalList(s.protocols, join(path, 'protocols'), 'protocols (udp, tcp)', { min: 1, max: 2 }) ?? ['udp'];
  const protocols = protoRaw.map((p, i) => oneOf(p, join(join(path, 'protocols'), i), ['udp', 'tcp'] as const));
  if (new Set(protocols).size !== protocols.length) throw new ConfigError(join(path, 'protocols'), protocols, 'udp and/or tcp, each at most once');
  const port = s.port === undefined ? DEFAULT_SSL_PORT : int(s.port, join(path, 'port'), 1, 65535);
  if (protocols.includes('udp') && (port === 500 || port === 4500)) {
    throw new ConfigError(join(path, 'port'), port, 'a UDP port other than 500 and 4500 (IKE uses them)');
  }
  const listen: AddressSpec = s.listen === undefined || s.listen === null ? address('0.0.0.0', join(path, 'listen')) : address(s.listen, join(path, 'listen'));

  const cidrPath = join(path, 'clientCidr');
  const clientCidr = prefix(s.clientCidr, cidrPath);
  if (clientCidr.prefix.family !== 4) throw new ConfigError(cidrPath, clientCidr.text, 'an IPv4 prefix');
  checkNotReserved(clientCidr, cidrPath, [LINK_LOCAL_V4]);
  if (clientCidr.prefix.len > 29) throw new ConfigError(cidrPath, clientCidr.text, 'a prefix of length /29 or shorter');
  const localSubnets = prefixList(s.localSubnets, join(path, 'localSubnets'), 'CIDR prefixes', { max: 20 });
  const clash = [
    ...localSubnets.map((p) => ({ p, where: `${path}.localSubnets` })),
    ...gw.vpcSubnets.map((p) => ({ p, where: 'gateway.vpcSubnets' })),
    ...conns.flatMap((c, i) => c.remoteSubnets.map((p) => ({ p, where: `vpnConnections[${i}].remoteSubnets` }))),
  ].find(({ p }) => prefixesOverlap(p.prefix, clientCidr.prefix));
  if (clash) {
    throw new ConfigError(cidrPath, clientCidr.text, `a client pool that does not overlap ${clash.p.text} in ${clash.where}`);
  }
  const maxConnections = s.maxConnections === undefined ? DEFAULT_MAX_CONNECTIONS : int(s.maxConnections, join(path, 'maxConnections'), 1, 65535);
  // topology subnet: the network address, the server's own address and the broadcast address are not leased
  const usable = 2 ** (32 - clientCidr.prefix.len) - 3;
  if (usable < maxConnections) {
    throw new ConfigError(cidrPath, clientCidr.text, `a pool with at least ${maxConnections} client addresses (maxConnections); this one has ${usable}`);
  }
  const dnsServers = (optionalList(s.dnsServers, join(path, 'dnsServers'), 'IP addresses', { max: 2 }) ?? []).map((a, i) =>
    address(a, join(join(path, 'dnsServers'), i)),
  );
  const cipherRaw = optionalList(s.dataCiphers, join(path, 'dataCiphers'), 'data ciphers', { min: 1 }) ?? [...DATA_CIPHERS];
  const dataCiphers = cipherRaw.map((c, i) => oneOf<DataCipher>(c, join(join(path, 'dataCiphers'), i), DATA_CIPHERS));
  if (new Set(dataCiphers).size !== dataCiphers.length) throw new ConfigError(join(path, 'dataCiphers'), dataCiphers, 'each cipher at most once');

  const auth = section(s.auth, join(path, 'auth'), ['type'], true);
  const authType = oneOf(auth.type, join(path, 'auth.type'), ['cert'] as const);
  const sc = section(s.serverCert, join(path, 'serverCert'), ['cert', 'key'], true);
  const serverCert = {
    cert: resolvePath(str(sc.cert, join(path, 'serverCert.cert'), 'a PEM certificate file path'), baseDir),
    key: resolvePath(str(sc.key, join(path, 'serverCert.key'), 'a PEM private key file path'), baseDir),
  };
  const clientCa = resolvePath(str(s.clientCa, join(path, 'clientCa'), 'a PEM CA certificate file path (required with auth.type cert)'), baseDir);
  const clientToClient = s.clientToClient === undefined ? false : bool(s.clientToClient, join(path, 'clientToClient'));
  return {
    name: srvName,
    protocols: protocols as SslProtocol[],
    port,
    listen,
    clientCidr,
    localSubnets,
    dnsServers,
    dataCiphers,
    auth: { type: authType },
    serverCert,
    clientCa,
    maxConnections,
    clientToClient,
  };
}

function checkServerPorts(servers: readonly VpnServerConfig[]): void {
  const seen = new Map<string, number>();
  servers.forEach((s, i) => {
    for (const proto of s.protocols) {
      const key = `${proto}/${s.port}`;
      const prev = seen.get(key);
      if (prev !== undefined) {
        throw new ConfigError(`vpnServers[${i}].port`, s.port, `a ${proto} port not used by vpnServers[${prev}]`);
      }
      seen.set(key, i);
    }
  });
}

/** Freezes a config tree in place (Buffers inside prefixes are left as they are: they cannot be frozen). */
export function deepFreeze<T>(v: T): T {
  if (v === null || typeof v !== 'object' || Object.isFrozen(v) || Buffer.isBuffer(v) || ArrayBuffer.isView(v)) return v;
  for (const k of Object.keys(v as object)) deepFreeze((v as Raw)[k]);
  return Object.freeze(v);
}

