import { existsSync, readFileSync } from 'node:fs';
import { VpnError } from '../common/errors.js';
import { NAME_PATTERN } from './config/field-table.js';
import type { GatewayConfig, VpnServerConfig } from './config/types.js';
import { generateTlsCryptV2ClientKeyFile, issueClientCertificate, profileTlsWrapLines, type IssuedCert } from './pki.js';

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

function serverOf(cfg: GatewayConfig, serverName: string): VpnServerConfig {
  const server = cfg.vpnServers.find((v) => v.name === serverName);
  if (!server) throw new VpnError('ERR_NOT_FOUND', `no VPN server named "${serverName}"`);
  return server;
}

/** `cert`: the client's own certificate and key inline; null: the commented placeholder. */
function buildProfile(cfg: GatewayConfig, server: VpnServerConfig, o: ClientProfileOptions, cert: IssuedCert | null): { text: string; filename: string } {
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
  const path = `${server.clientCa.replace(/\.(crt|pem|cer)$/i, '')}.key`;
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
  return issueClientCertificate(read(server.clientCa), read(keyPath), user, o.nowMs !== undefined ? { nowMs: o.nowMs } : {});
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
