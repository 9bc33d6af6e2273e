import { readFileSync } from 'node:fs';
import { besideCa, crlFileReader } from './pki.js';
import type { SslAuthType } from '../ssl/server/authenticator.js';
import { DEFAULT_RENEG_SEC, type SslProtocol, type SslServerConfig, type SslServerLimits } from '../ssl/server/config.js';
import { parseStaticKey, parseTlsCryptV2ServerKey, type TlsAuthDigest, type TlsWrapConfig } from '../ssl/wire/tls-wrap.js';

/** tls-crypt or tls-auth from the entry (the key files are read here). */
function tlsWrapOf(
  v: {
    name: string;
    tlsCrypt?: string | null;
    tlsAuth?: { key: string; direction: number; digest: string } | null;
    tlsCryptV2?: { serverKey: string } | null;
  },
  read: (path: string) => string,
): TlsWrapConfig | undefined {
  if (v.tlsCryptV2) {
    return Object.freeze({ kind: 'tls-crypt-v2', serverKey: parseTlsCryptV2ServerKey(read(v.tlsCryptV2.serverKey), `vpnServers.${v.name}.tlsCryptV2.serverKey`) });
  }
  if (v.tlsCrypt) return Object.freeze({ kind: 'tls-crypt', key: parseStaticKey(read(v.tlsCrypt), `vpnServers.${v.name}.tlsCrypt`) });
  if (v.tlsAuth) {
    return Object.freeze({
      kind: 'tls-auth',
      key: parseStaticKey(read(v.tlsAuth.key), `vpnServers.${v.name}.tlsAuth.key`),
      direction: v.tlsAuth.direction === 1 ? 1 : 0,
      digest: v.tlsAuth.digest as TlsAuthDigest,
    });
  }
  return undefined;
}

/**
 * The server's certificate, key and client CA (PEM text), and the CRL beside the client CA
 * (`pki/ca.crl` for `pki/ca.crt`, besideCa): `clientCrl` is a getter, so each new session (the
 * session manager copies the identity) sees the file as it is now; '' while there is none.
 */
function identityOf(v: { serverCert: { cert: string; key: string }; clientCa?: string | null }, readPem: (path: string) => string): SslServerConfig['identity'] {
  const crl = v.clientCa ? crlFileReader(besideCa(v.clientCa, '.crl')) : () => '';
  return Object.freeze({
    cert: readPem(v.serverCert.cert),
    key: readPem(v.serverCert.key),
    clientCa: v.clientCa ? readPem(v.clientCa) : '',
    get clientCrl(): string {
      return crl();
    },
  });
}

/**
 * Builds the frozen SslServerConfig from the gateway's validated `vpnServers` entry (reads the PEM
 * files). Kept structural so this module does not depend on the config loader.
 */
export function sslServerConfigFrom(
  v: {
    name: string;
    protocols: readonly SslProtocol[];
    port: number;
    listen: { text: string };
    clientCidr: { text: string };
    localSubnets: readonly { text: string }[];
    dnsServers: readonly { text: string }[];
    dataCiphers: readonly string[];
    serverCert: { cert: string; key: string };
    /** absent with auth.type password */
    clientCa?: string | null;
    /** absent: cert */
    auth?: { type: SslAuthType };
    maxConnections: number;
    clientToClient: boolean;
    /** the validated entry's renegSeconds (absent: OpenVPN's default) */
    renegSeconds?: number;
    limits?: Partial<SslServerLimits> | null;
    tlsCrypt?: string | null;
    tlsAuth?: { key: string; direction: number; digest: string } | null;
    tlsCryptV2?: { serverKey: string } | null;
    /** absent: 1, replace */
    sessionsPerUser?: number;
    onExtraSession?: 'replace' | 'refuse';
  },
  readPem: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): SslServerConfig {
  return Object.freeze({
    name: v.name,
    protocols: Object.freeze([...v.protocols]),
    port: v.port,
    listen: v.listen.text,
    clientCidr: v.clientCidr.text,
    localSubnets: Object.freeze(v.localSubnets.map((s) => s.text)),
    dnsServers: Object.freeze(v.dnsServers.map((s) => s.text)),
    dataCiphers: Object.freeze([...v.dataCiphers]),
    identity: identityOf(v, readPem),
    auth: v.auth?.type ?? 'cert',
    maxConnections: v.maxConnections,
    clientToClient: v.clientToClient,
    renegSec: v.renegSeconds ?? DEFAULT_RENEG_SEC,
    limits: Object.freeze({ ...(v.limits ?? {}) }),
    tlsWrap: tlsWrapOf(v, readPem),
    sessionsPerUser: v.sessionsPerUser ?? 1,
    onExtraSession: v.onExtraSession ?? 'replace',
  });
}
