import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { IoError, VpnError } from '../common/errors.js';
import { NAME_PATTERN } from './config/field-table.js';
import type { GatewayConfig, VpnServerConfig } from './config/types.js';
import { besideCa, buildCrl, generateTlsCryptV2ClientKeyFile, issueClientCertificate, profileTlsWrapLines, type IssuedCert } from './pki.js';

/**
 * The OpenVPN client profile (.ovpn) of one VPN server, as GET /v1/vpn-servers/{id}/client-profile
 * serves it: everything a stock OpenVPN 2.6 client needs to reach and trust the server — remote and
 * protocol, the CA inline, the tls-crypt / tls-auth key inline (profileTlsWrapLines, the code
 * `vpcgw pki profile` uses), remote-cert-tls server, the data ciphers — but no client certificate:
 * each user brings their own, signed by the server's clientCa, into the commented <cert>/<key>
 * blocks. For tls-crypt-v2 every download carries a newly wrapped client key.
 *
 * clientConfig (`vpcgw client-config USER`, POST …/client-config) is the same profile with a
 * certificate for USER issued on the spot from the CA key beside clientCa, and its key, inline.
 */

export interface ClientProfileOptions {
  /** The address or name clients dial; default: the server's listen address, or the gateway's first public address. */
  host?: string;
  /** Reads a key or certificate file (tests); default node:fs. */
  readFile?: (path: string) => string;
  /** The tls-crypt-v2 client key's creation time (tests); default now. */
  nowMs?: number;
}

/** A DNS name or an IP address: nothing a profile line could be broken with. */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|[0-9A-Fa-f:.]+)$/;

const WILDCARD_LISTEN = new Set(['0.0.0.0', '::']);

export function clientProfile(cfg: GatewayConfig, serverName: string, o: ClientProfileOptions = {}): { text: string; filename: string } {
  return buildProfile(cfg, serverOf(cfg, serverName), o, null);
}

/**
 * The profile with a certificate and key the caller already holds inline (`vpcgw pki profile` and the
 * default config's client1.ovpn, whose client certificate was made with the gateway's PKI).
 */
export function profileWithCertificate(
  cfg: GatewayConfig,
  serverName: string,
  cert: { readonly cert: string; readonly key: string },
  o: ClientProfileOptions = {},
): { text: string; filename: string } {
  return buildProfile(cfg, serverOf(cfg, serverName), o, cert);
}

function serverOf(cfg: GatewayConfig, serverName: string): VpnServerConfig {
  const server = cfg.vpnServers.find((v) => v.name === serverName);
  if (!server) throw new VpnError('ERR_NOT_FOUND', `no VPN server named "${serverName}"`);
  return server;
}

/** `cert`: the client's own certificate and key inline; null: the commented placeholder. */
function buildProfile(cfg: GatewayConfig, server: VpnServerConfig, o: ClientProfileOptions, cert: Pick<IssuedCert, 'cert' | 'key'> | null): { text: string; filename: string } {
  // PEM files written on Windows or by node-forge end lines with CRLF: the profile has LF only
  const readRaw = o.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const read = (p: string): string => readRaw(p).replace(/\r\n/g, '\n');
  if (!server.clientCa) {
    // auth.type password needs no clientCa, but the profile takes the server's trust anchor from it
    throw new VpnError('ERR_STATE', `VPN server ${server.name} has no clientCa: set it to the CA that signed its server certificate to get a profile`);
  }
  const caFile = server.clientCa;
  const host = o.host ?? remoteHostOf(cfg, server);
  if (host.length > 253 || !HOST_RE.test(host)) throw new VpnError('ERR_BAD_REQUEST', `host ${JSON.stringify(host)} is not valid: a DNS name or an IP address`);
  const lines = [
    `# OpenVPN client profile for VPN server ${server.name} of gateway ${cfg.gateway.name}`,
    'client',
    'dev tun',
    'nobind',
  ];
  if (server.protocols.length === 1) {
    lines.push(`proto ${protoOf(server.protocols[0]!)}`, `remote ${host} ${server.port}`);
  } else {
    // several remotes: the client tries them in order (UDP first), each with its own protocol
    for (const p of server.protocols) lines.push(`remote ${host} ${server.port} ${protoOf(p)}`);
  }
  lines.push(
    'remote-cert-tls server',
    `data-ciphers ${server.dataCiphers.join(':')}`,
    'verb 3',
    '<ca>',
    read(caFile).trim(),
    '</ca>',
  );
  // password logins: the client asks for a username and password (OpenVPN --auth-user-pass)
  if (server.auth.type !== 'cert') lines.push('auth-user-pass');
  let text = `${lines.join('\n')}\n`;
  text += profileTlsWrapLines(
    server,
    read,
    server.tlsCryptV2 ? generateTlsCryptV2ClientKeyFile(read(server.tlsCryptV2.serverKey), server.tlsCryptV2.serverKey, o.nowMs) : undefined,
  );
  if (server.auth.type !== 'password') {
    text += cert ? `<cert>\n${cert.cert.replace(/\r\n/g, '\n').trim()}\n</cert>\n<key>\n${cert.key.replace(/\r\n/g, '\n').trim()}\n</key>\n` : CERT_PLACEHOLDER;
  }
  return { text, filename: `${server.name}.ovpn` };
}

/**
 * A user name for a certificate's CN and a file name: the rule of the users section's names
 * (src/gateway/config/field-table.ts NAME_PATTERN), so a cert+password user's CN and login agree.
 */
const USER_RE = new RegExp(NAME_PATTERN);

export function checkUserName(user: string): void {
  if (!USER_RE.test(user)) throw new VpnError('ERR_BAD_REQUEST', `user ${JSON.stringify(user)} is not valid: 1-64 letters, digits, "_", "-", "." starting with a letter or digit`);
}

/**
 * The CA key that signs a server's client certificates: the file named like clientCa with the
 * extension `.key` (`pki/ca.crt` -> `pki/ca.key`, the layout of the default PKI that
 * ensureDefaultPki in src/gateway/default-config.ts writes). null when the gateway does not hold it
 * (an outside CA): then users bring their own certificates.
 */
export function clientCaKeyPath(server: VpnServerConfig, exists: (path: string) => boolean = existsSync): string | null {
  if (!server.clientCa) return null;
  const path = besideCa(server.clientCa, '.key');
  return exists(path) ? path : null;
}

export interface ClientConfigOptions extends ClientProfileOptions {
  /** Tells whether a file exists (tests); default node:fs. */
  exists?: (path: string) => boolean;
}

/**
 * A freshly issued client certificate and key for `user` on a cert or cert+password server, signed
 * with the server's CA key (clientCaKeyPath). The key is generated here and returned only: the
 * gateway never stores it. ERR_STATE for password servers and when the CA key is not held.
 */
export function issueServerClientCert(cfg: GatewayConfig, serverName: string, user: string, o: ClientConfigOptions = {}): IssuedCert {
  checkUserName(user);
  const server = serverOf(cfg, serverName);
  if (server.auth.type === 'password') throw new VpnError('ERR_STATE', `VPN server ${server.name} logs users in with passwords only: it takes no client certificates`);
  const keyPath = clientCaKeyPath(server, o.exists);
  if (!keyPath || !server.clientCa) {
    throw new VpnError('ERR_STATE', `the gateway does not hold the CA key of VPN server ${server.name} (looked for the .key file beside clientCa): issue client certificates with that CA instead`);
  }
  const read = o.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const issued = issueClientCertificate(read(server.clientCa), read(keyPath), user, o.nowMs !== undefined ? { nowMs: o.nowMs } : {});
  // recorded (serial and user, never the key) so `pki revoke-client USER` can find it later
  const x = new X509Certificate(issued.cert);
  const ledgerPath = besideCa(server.clientCa, '.issued.json');
  const ledger = readLedger(ledgerPath);
  ledger.certs.push({ serial: x.serialNumber.toLowerCase(), user, server: server.name, notAfter: new Date(x.validTo).toISOString(), issuedAt: new Date(o.nowMs ?? Date.now()).toISOString() });
  writeAtomic(ledgerPath, `${JSON.stringify(ledger, null, 1)}\n`, 0o600);
  return issued;
}

/** One client certificate issued by issueServerClientCert (pki/ca.issued.json). */
export interface IssuedRecord {
  serial: string; // lower-case hex, as in the certificate
  user: string; // '' for a serial revoked without being issued here
  server: string;
  notAfter: string;
  issuedAt: string;
  revokedAt?: string;
}

function readLedger(path: string): { certs: IssuedRecord[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { certs: [] };
    throw new IoError(`cannot read ${path}: ${(e as Error).message}`, e);
  }
  const doc = JSON.parse(text) as { certs?: unknown };
  if (!Array.isArray(doc.certs)) throw new VpnError('ERR_STATE', `${path} is not a record of issued certificates ({ "certs": [...] })`);
  return { certs: doc.certs as IssuedRecord[] };
}

/** Write to a temporary file and rename: a reader (the server's CRL check) never sees half a file. */
function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode });
    renameSync(tmp, path);
  } catch (e) {
    throw new IoError(`cannot write ${path}: ${(e as Error).message}`, e);
  }
}

/** What revokeClientCert did: the certificates now on the CRL, and the users whose sessions must end. */
export interface RevokeResult {
  server: string;
  revoked: { serial: string; user: string }[];
  crl: string;
}

/**
 * Revokes the certificates of `target` on a server whose CA key the gateway holds: every
 * certificate issued here for the user `target` (pki/ca.issued.json), or the certificate with the
 * serial `target` (hex, colons allowed; also one not issued here). The CRL beside clientCa
 * (besideCa '.crl') is rewritten signed by the CA; the server reads it for every new session
 * (src/gateway/ssl-server-config.ts), so from now on a handshake with such a certificate fails with
 * CERT_REVOKED. Ending the sessions already up is the caller's job (the disconnect action).
 *
 * Once the CRL file exists OpenSSL checks revocation for the whole chain: clientCa should then hold
 * this one CA (a certificate of another CA in the same file would fail with UNABLE_TO_GET_CRL).
 */
export function revokeClientCert(cfg: GatewayConfig, serverName: string, target: string, o: ClientConfigOptions = {}): RevokeResult {
  const server = serverOf(cfg, serverName);
  if (server.auth.type === 'password') throw new VpnError('ERR_STATE', `VPN server ${server.name} logs users in with passwords only: it takes no client certificates`);
  const keyPath = clientCaKeyPath(server, o.exists);
  if (!keyPath || !server.clientCa) {
    throw new VpnError('ERR_STATE', `the gateway does not hold the CA key of VPN server ${server.name} (looked for the .key file beside clientCa): it cannot sign a CRL`);
  }
  const ledgerPath = besideCa(server.clientCa, '.issued.json');
  const ledger = readLedger(ledgerPath);
  const nowIso = new Date(o.nowMs ?? Date.now()).toISOString();
  const serial = target.replace(/:/g, '').replace(/^0x/i, '').toLowerCase().replace(/^0+(?=.)/, '');
  const sameSerial = (r: IssuedRecord): boolean => r.serial.replace(/^0+(?=.)/, '') === serial;
  let hits = ledger.certs.filter((r) => r.user === target);
  if (hits.length === 0) hits = ledger.certs.filter(sameSerial);
  if (hits.length === 0) {
    if (!/^[0-9a-f]{1,40}$/.test(serial)) throw new VpnError('ERR_NOT_FOUND', `no certificate was issued here for user "${target}", and it is not a serial number`);
    const r: IssuedRecord = { serial, user: '', server: server.name, notAfter: '', issuedAt: '' };
    ledger.certs.push(r);
    hits = [r];
  }
  for (const r of hits) r.revokedAt ??= nowIso;
  const read = o.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const revoked = ledger.certs.filter((r) => r.revokedAt !== undefined);
  const crl = buildCrl(read(server.clientCa), read(keyPath), revoked.map((r) => ({ serial: r.serial, revokedAtMs: Date.parse(r.revokedAt!) })), o.nowMs);
  writeAtomic(ledgerPath, `${JSON.stringify(ledger, null, 1)}\n`, 0o600);
  const crlPath = besideCa(server.clientCa, '.crl');
  writeAtomic(crlPath, crl, 0o644);
  return { server: server.name, revoked: hits.map((r) => ({ serial: r.serial, user: r.user })), crl: crlPath };
}

/**
 * `vpcgw client-config USER` and POST /v1/vpn-servers/{id}/client-config: the client profile of
 * clientProfile plus, for cert and cert+password servers, a certificate issued for USER now and its
 * key inline (issueServerClientCert; the key exists only in this download). Password servers get the
 * profile as it is (auth-user-pass, no certificate).
 */
export function clientConfig(cfg: GatewayConfig, serverName: string, user: string, o: ClientConfigOptions = {}): { text: string; filename: string } {
  checkUserName(user);
  const server = serverOf(cfg, serverName);
  const cert = server.auth.type === 'password' ? null : issueServerClientCert(cfg, serverName, user, o);
  const p = buildProfile(cfg, server, o, cert);
  return { text: p.text, filename: `${user}.ovpn` };
}

/** The server's listen address, or for a wildcard listen the gateway's first public address. */
function remoteHostOf(cfg: GatewayConfig, server: VpnServerConfig): string {
  if (!WILDCARD_LISTEN.has(server.listen.text)) return server.listen.text;
  const first = cfg.gateway.publicAddresses[0];
  if (!first) throw new VpnError('ERR_STATE', `VPN server ${server.name} listens on ${server.listen.text} and the gateway has no public address: pass host`);
  return first.text;
}

/** OpenVPN's --proto value for a client (`tcp-client`: the client side of a TCP connection). */
function protoOf(p: string): string {
  return p === 'tcp' ? 'tcp-client' : 'udp';
}

const CERT_PLACEHOLDER = `# Your own certificate and key, signed by the CA above (the certificate's CN is your
# user name): uncomment and paste them here, or use "cert FILE" and "key FILE" instead.
#<cert>
#-----BEGIN CERTIFICATE-----
#...
#-----END CERTIFICATE-----
#</cert>
#<key>
#-----BEGIN PRIVATE KEY-----
#...
#-----END PRIVATE KEY-----
#</key>
`;
