import { ConfigError } from '../../common/errors.js';
import { bytesToIp } from '../../common/ip.js';
import { certificateSubjectIdentity, parseIdentity, type Identity } from '../../ike/config/identity.js';
import { certContainsId, certName } from '../../ike/config/trust.js';
import { altNames } from '../../ike/config/x509.js';
import type { AddressSpec } from './field-table.js';
import type { LocalCredentials } from './credentials.js';

/**
 * IKE identities from the config, in strongSwan's syntax (an IP, fqdn:host, email:user@host, a DN,
 * a bare host name = FQDN; RFC 7296 §3.5). The loader runs these so that `check-config` refuses
 * what the IPsec controller would refuse at start; peer-configs.ts calls the same functions to
 * build the IKE config graph.
 */

export const LOCAL_ID_WHAT = 'an IP address, fqdn:host, email:user@host or a DN';
export const REMOTE_ID_WHAT = 'an IKE identity: an IP, fqdn:host, email:user@host, a DN or a host name';

/** Whether an address is a wildcard bind (0.0.0.0 or ::), which says nothing about who we are. */
export function isWildcard(text: string | undefined): boolean {
  return text === undefined || text === '0.0.0.0' || text === '::';
}

/**
 * Our identity for a connection: `localId` when set, else the first public address. With a
 * wildcard bind we do not know which address the peer reaches, so the ID must then be explicit.
 * `path` names the connection's `ike.localId`.
 */
export function localIdentity(publicAddresses: readonly AddressSpec[], localId: string | null, path: string): Identity {
  const firstAddr = publicAddresses[0]?.text;
  if (localId === null && isWildcard(firstAddr)) {
    throw new ConfigError(path, undefined, `required when gateway.publicAddresses is ${firstAddr ?? 'empty'} (set it to the address or name the customer gateway expects)`);
  }
  const text = localId ?? firstAddr!;
  const id = parseIdentity(text);
  if (!id || id.any) throw new ConfigError(path, text, LOCAL_ID_WHAT);
  return id;
}

/**
 * Our identity for a connection that may authenticate with a certificate: as strongSwan does,
 * without `localId` it is the certificate's subject DN, and a `localId` must be in the
 * certificate (the subject DN or a subjectAltName), or the peer would refuse it.
 */
export function connectionLocalIdentity(publicAddresses: readonly AddressSpec[], localId: string | null, path: string,
  creds: LocalCredentials | null): Identity {
  if (!creds) return localIdentity(publicAddresses, localId, path);
  if (localId === null) return certificateSubjectIdentity(creds.cert);
  const id = parseIdentity(localId);
  if (!id || id.any) throw new ConfigError(path, localId, LOCAL_ID_WHAT);
  if (!certContainsId(creds.cert, id)) {
    const a = altNames(creds.cert);
    const sans = [...a.dns.map((d) => `fqdn:${d}`), ...a.email.map((e) => `email:${e}`), ...a.ip.map(bytesToIp)];
    throw new ConfigError(path, localId, `an identity in the certificate ${creds.certFile}: its subject ${certName(creds.cert)}`
      + `${sans.length ? ` or ${sans.join(', ')}` : ''} (or null for the subject)`);
  }
  return id;
}

/** The customer gateway's identity ("%any" matches any peer). `path` names its `id`. */
export function remoteIdentity(text: string, path: string): Identity {
  const id = parseIdentity(text);
  if (!id) throw new ConfigError(path, text, REMOTE_ID_WHAT);
  return id;
}
