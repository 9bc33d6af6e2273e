import { createHash, KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { GatewayConfig, VpnServerConfig } from './config/types.js';
import { Secret } from './config/secret.js';
import { peerConfigFrom } from './peer-configs.js';
import { sslPushes } from './vpcep.js';

/**
 * What a running gateway must do to go from one validated config to the next (Gateway.applyConfig
 * in daemon.ts). Config objects are immutable and runtime objects (IKE SAs, CHILD_SAs, SSL sessions)
 * refer to the config they were made with, so a change is found by comparing *fingerprints*: a
 * SHA-256 over a canonical rendering of everything a resource's runtime config is built from.
 *
 *  - a VPN connection's fingerprint covers its whole PeerConfig (peer-configs.ts): its own fields and
 *    the customer gateway's (address, identity, CA certificates, CRLs), the public addresses, the
 *    pre-shared key and private key (hashed before they enter the rendering), certificates by their
 *    DER fingerprint;
 *  - a VPN server's covers its entry and the contents of the files it names (certificate, key, CA,
 *    tls-crypt / tls-auth / tls-crypt-v2 keys), since the server reads them when it starts, and the
 *    routes and DNS servers VPC endpoints add to what it pushes (vpcep.ts sslPushes: clients get
 *    them when they connect, so the server restarts for a change there);
 *  - VPC endpoints and endpoint services need no restart of anything: the daemon recompiles the
 *    data path's policy at every apply (a connection whose local selectors they change is changed);
 *  - the `gateway` section is compared as a whole: the TUN, the data plane, the sockets and the IKE
 *    responder limits are built from it once, so any change there needs a full internal restart.
 */

export interface ResourceDiff {
  added: string[];
  removed: string[];
  /** present in both with a different fingerprint: the resource alone is re-created */
  changed: string[];
  unchanged: string[];
}

export interface ConfigDiff {
  connections: ResourceDiff;
  vpnServers: ResourceDiff;
  /** why the change needs a full internal restart (teardown and start), or null when it does not */
  restartReason: string | null;
}

/** Reads a file a VPN server entry names; null when it cannot be read. */
export type FileReader = (path: string) => Buffer | null;

const readOrNull: FileReader = (path) => {
  try {
    return readFileSync(path);
  } catch {
    return null;
  }
};

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * A deterministic text form of a config value: object keys sorted, Buffers in hex, secrets (Secret
 * values, private keys) replaced by their SHA-256 so the rendering itself never holds them,
 * certificates by their SHA-256 DER fingerprint. Functions are skipped; a cycle prints as "<cycle>".
 */
export function canonical(value: unknown): string {
  const onPath = new Set<object>();
  const walk = (v: unknown): string => {
    if (v === null || v === undefined) return 'null';
    switch (typeof v) {
      case 'string':
        return JSON.stringify(v);
      case 'number':
      case 'boolean':
        return String(v);
      case 'bigint':
        return `${v}n`;
      case 'function':
      case 'symbol':
        return 'null';
    }
    if (v instanceof Secret) return `secret:${sha256(v.reveal())}`;
    if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `hex:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
    if (v instanceof X509Certificate) return `x509:${v.fingerprint256}`;
    if (v instanceof KeyObject) return `key:${sha256(keyBytes(v))}`;
    const o = v as object;
    if (onPath.has(o)) return '"<cycle>"';
    onPath.add(o);
    try {
      if (Array.isArray(o)) return `[${o.map(walk).join(',')}]`;
      if (o instanceof Set) return `set[${[...o].map(walk).sort().join(',')}]`;
      if (o instanceof Map) return `map{${[...o].map(([k, x]) => `${walk(k)}:${walk(x)}`).sort().join(',')}}`;
      const keys = Object.keys(o).sort();
      const kind = Object.getPrototypeOf(o)?.constructor?.name;
      const head = kind && kind !== 'Object' ? `${kind}` : '';
      return `${head}{${keys.map((k) => `${JSON.stringify(k)}:${walk((o as Record<string, unknown>)[k])}`).join(',')}}`;
    } finally {
      onPath.delete(o);
    }
  };
  return walk(value);
}

function keyBytes(k: KeyObject): Buffer {
  if (k.type === 'secret') return k.export();
  return k.type === 'private' ? k.export({ format: 'der', type: 'pkcs8' }) : k.export({ format: 'der', type: 'spki' });
}

/** The fingerprint of everything connection `name`'s PeerConfig is built from. */
export function connectionFingerprint(cfg: GatewayConfig, name: string): string {
  const i = cfg.vpnConnections.findIndex((c) => c.name === name);
  if (i < 0) throw new RangeError(`no connection ${name}`);
  return fingerprintAt(cfg, i);
}

/**
 * Fingerprints by connection object: a config tree is frozen and each entry object belongs to one
 * tree, so the value never changes, and the previous apply's `next` is this apply's `prev`.
 */
const fingerprints = new WeakMap<object, string>();

function fingerprintAt(cfg: GatewayConfig, i: number): string {
  const c = cfg.vpnConnections[i]!;
  const known = fingerprints.get(c);
  if (known !== undefined) return known;
  const peer = peerConfigFrom(cfg, c, `vpnConnections[${i}]`);
  // the PSK enters the rendering as its hash only
  const fp = sha256(canonical({ ...peer, psk: `psk:${sha256(peer.psk)}` }));
  fingerprints.set(c, fp);
  return fp;
}

/** The fingerprint of a VPN server entry and of the files it names. */
export function vpnServerFingerprint(v: VpnServerConfig, read: FileReader = readOrNull): string {
  const files = [v.serverCert.cert, v.serverCert.key, v.clientCa ?? null, v.tlsCrypt ?? null, v.tlsAuth?.key ?? null, v.tlsCryptV2?.serverKey ?? null];
  const contents = files.map((f) => {
    if (f === null) return null;
    const b = read(f);
    return b === null ? 'unreadable' : sha256(b);
  });
  return sha256(canonical({ entry: v, files: contents }));
}

function diffByName<T extends { name: string }>(prev: readonly T[], next: readonly T[], same: (name: string) => boolean): ResourceDiff {
  const before = new Set(prev.map((x) => x.name));
  const after = new Set(next.map((x) => x.name));
  const d: ResourceDiff = { added: [], removed: [], changed: [], unchanged: [] };
  for (const x of prev) if (!after.has(x.name)) d.removed.push(x.name);
  for (const x of next) {
    if (!before.has(x.name)) d.added.push(x.name);
    else if (same(x.name)) d.unchanged.push(x.name);
    else d.changed.push(x.name);
  }
  return d;
}

/**
 * Compares two validated configs. `stale` names resources whose last apply failed part-way (they
 * count as changed, so applying the same config again retries them): "connection:<name>" or
 * "vpnServer:<name>".
 */
export function diffConfigs(prev: GatewayConfig, next: GatewayConfig, opts: { read?: FileReader; stale?: ReadonlySet<string> } = {}): ConfigDiff {
  const stale = opts.stale ?? new Set<string>();
  const indexOf = (cfg: GatewayConfig): Map<string, number> => new Map(cfg.vpnConnections.map((c, i) => [c.name, i]));
  const prevAt = indexOf(prev);
  const nextAt = indexOf(next);
  const connections = diffByName(prev.vpnConnections, next.vpnConnections, (name) =>
    !stale.has(`connection:${name}`) && fingerprintAt(prev, prevAt.get(name)!) === fingerprintAt(next, nextAt.get(name)!));
  const read = opts.read ?? readOrNull;
  const serverOf = (cfg: GatewayConfig, name: string) => cfg.vpnServers.find((v) => v.name === name)!;
  const vpnServers = diffByName(prev.vpnServers, next.vpnServers, (name) =>
    !stale.has(`vpnServer:${name}`) && vpnServerFingerprint(serverOf(prev, name), read) === vpnServerFingerprint(serverOf(next, name), read)
    && canonical(sslPushes(prev, name)) === canonical(sslPushes(next, name)));
  let restartReason: string | null = null;
  if (canonical(prev.gateway) !== canonical(next.gateway)) restartReason = 'the gateway section changed';
  else if (prev.vpnConnections.length === 0 && next.vpnConnections.length > 0) restartReason = 'the first IPsec connection needs UDP 500/4500 bound';
  else if (prev.vpnConnections.length > 0 && next.vpnConnections.length === 0) restartReason = 'no IPsec connection is left: UDP 500/4500 are unbound';
  return { connections, vpnServers, restartReason };
}
