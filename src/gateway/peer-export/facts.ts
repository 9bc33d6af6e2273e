import { ConfigError, VpnError } from '../../common/errors.js';
import { bytesToIp } from '../../common/ip.js';
import { decodePsk } from '../../ike/config/peer-config.js';
import { keyKind } from '../../ike/sa/pubkey-auth.js';
import { IdType } from '../../ike/wire/constants.js';
import { dnToString, subjectDer } from '../../ike/config/x509.js';
import type { Identity } from '../../ike/config/identity.js';
import type { Proposal } from '../../ike/wire/types.js';
import { HARD_LIFETIME_MARGIN } from '../../ike/rekey-scheduler.js';
import type { GatewayConfig } from '../config/types.js';
import { connectionLocalIdentity, isWildcard, remoteIdentity } from '../config/identities.js';
import { NAME_PATTERN, type AddressSpec } from '../config/field-table.js';
import { publicAddressesFacing } from '../config/families.js';

/** What the writers (swanctl.ts, libreswan.ts) need from the config, derived once by exportFacts. */

/** Names as the config loader admits them: the writers put them into section and file names. */
const NAME_RE = new RegExp(NAME_PATTERN);

/** How the customer gateway authenticates, and what it needs to know about our certificate. */
export type ExportAuth =
  | { readonly kind: 'psk'; readonly secret: PskText }
  | {
    readonly kind: 'cert';
    /** key type of our certificate (the customer's should match it for Libreswan's authby) */
    readonly ourKey: 'rsa' | 'ecdsa';
    /** DN of the CA that issued our certificate: the customer gateway must trust it */
    readonly ourIssuer: string;
    /** DNs of the CAs the customer's certificate must chain to (customerGateways[].ca) */
    readonly peerCas: readonly string[];
  };

/** A PSK as both formats can write it: a quoted text, or hex of its bytes. */
export type PskText = { readonly quoted: string } | { readonly hex: string };

/** Everything both writers need, derived once from the config. */
export interface ExportFacts {
  readonly name: string;
  readonly gatewayName: string;
  /** the customer gateway's own address, null for "%any" */
  readonly peerAddr: string | null;
  /** addresses the customer gateway reaches us on (never a wildcard) */
  readonly ourAddrs: readonly string[];
  /** the identity we expect from the customer gateway, null when we accept any */
  readonly peerId: Identity | null;
  /** the identity we authenticate with */
  readonly ourId: Identity;
  /** the customer's subnets (our remoteSubnets) and ours (our localSubnets), as prefixes */
  readonly peerSubnets: readonly string[];
  readonly ourSubnets: readonly string[];
  /**
   * The CHILD_SAs as the customer side configures them (its local_ts is our remote side): one named
   * after the connection for localSubnets/remoteSubnets, one per `children` entry, or in route mode
   * one with 0.0.0.0/0 on both sides (its routes then decide what enters the tunnel).
   */
  readonly children: readonly ExportChild[];
  /** route mode: the customer side should not trap 0.0.0.0/0 (that would catch all its traffic) */
  readonly routeBased: boolean;
  /** proposal lists in strongSwan syntax (normalised: no spaces, lower case) and parsed */
  readonly ikeProposals: string;
  readonly espProposals: string;
  readonly parsedIke: readonly Proposal[];
  readonly parsedEsp: readonly Proposal[];
  readonly ikeLifetimeSec: number;
  readonly espLifetimeSec: number;
  /** our DPD interval, null when we run none */
  readonly dpdSec: number | null;
  /** true: this gateway waits, the peer starts the tunnel; false: we initiate, the peer traps */
  readonly peerStarts: boolean;
  readonly auth: ExportAuth;
}

export interface ExportChild {
  readonly name: string;
  readonly peerSubnets: readonly string[];
  readonly ourSubnets: readonly string[];
  readonly espProposals: string;
  readonly espLifetimeSec: number;
}

export function exportFacts(cfg: GatewayConfig, connection: string): ExportFacts {
  const index = cfg.vpnConnections.findIndex((c) => c.name === connection);
  const conn = cfg.vpnConnections[index];
  if (!conn) throw new VpnError('ERR_NOT_FOUND', `no VPN connection is named ${JSON.stringify(connection)}`);
  const path = `vpnConnections[${index}]`;
  // a loaded config holds only such names; a config built another way must not break the file
  for (const n of [conn.name, cfg.gateway.name]) {
    if (!NAME_RE.test(n)) throw new VpnError('ERR_INVALID_ARG', `name ${JSON.stringify(n)} does not match ${NAME_RE.source}`);
  }
  const cgwIndex = cfg.customerGateways.findIndex((g) => g.name === conn.customerGateway);
  const creds = conn.auth.credentials;
  const facing = publicAddressesFacing(cfg.gateway.publicAddresses, conn.peer.address);
  const ourId = connectionLocalIdentity(facing, conn.ike.localId, `${path}.ike.localId`, creds);
  const peerId = remoteIdentity(conn.peer.id, `customerGateways[${cgwIndex}].id`);
  return {
    name: conn.name,
    gatewayName: cfg.gateway.name,
    peerAddr: conn.peer.address?.text ?? null,
    ourAddrs: reachableAddresses(cfg, facing, ourId),
    peerId: peerId.any ? null : peerId,
    ourId,
    peerSubnets: conn.remoteSubnets.map((p) => p.text),
    ourSubnets: conn.localSubnets.map((p) => p.text),
    routeBased: conn.mode === 'route',
    children: conn.children.map((ch) => ({
      name: conn.explicitChildren ? ch.name : conn.name,
      peerSubnets: conn.mode === 'route' ? ['0.0.0.0/0'] : ch.remoteSubnets.map((p) => p.text),
      ourSubnets: conn.mode === 'route' ? ['0.0.0.0/0'] : ch.localSubnets.map((p) => p.text),
      espProposals: normaliseProposals(ch.esp.proposals),
      espLifetimeSec: ch.esp.lifetimeSec,
    })),
    ikeProposals: normaliseProposals(conn.ike.proposals),
    espProposals: normaliseProposals(conn.esp.proposals),
    parsedIke: conn.ike.parsedProposals,
    parsedEsp: conn.esp.parsedProposals,
    ikeLifetimeSec: conn.ike.lifetimeSec,
    espLifetimeSec: conn.esp.lifetimeSec,
    dpdSec: conn.dpd?.intervalSec ?? null,
    // start and trap: we initiate (at boot, or on the first packet), the peer traps as well
    peerStarts: conn.startAction === 'none',
    auth: creds && conn.peer.trust
      ? {
        kind: 'cert',
        ourKey: keyKind(creds.key) === 'rsa' ? 'rsa' : 'ecdsa',
        ourIssuer: issuerName(creds.cert),
        peerCas: conn.peer.trust.cas.map((c) => dnToString(subjectDer(c))),
      }
      : { kind: 'psk', secret: pskText(conn.auth.psk?.reveal() ?? '') },
  };
}

/**
 * Where the customer gateway reaches us: the public addresses of its family, without wildcard binds. With only a
 * wildcard bind, an IP address identity names the address (identities.ts requires a localId then).
 */
function reachableAddresses(cfg: GatewayConfig, facing: readonly AddressSpec[], ourId: Identity): string[] {
  // only the addresses of the customer gateway's family (config/families.ts): charon pairs
  // local_addrs with remote_addrs of the same family
  const addrs = facing.map((a) => a.text).filter((a) => !isWildcard(a));
  if (addrs.length) return addrs;
  if (ourId.type === IdType.ID_IPV4_ADDR || ourId.type === IdType.ID_IPV6_ADDR) return [bytesToIp(ourId.data)];
  throw new ConfigError('gateway.publicAddresses', cfg.gateway.publicAddresses.map((a) => a.text),
    'an address the customer gateway can reach (with only a wildcard bind the peer configuration cannot name this gateway; '
    + 'list the public address, or set ike.localId to it)');
}

function normaliseProposals(text: string): string {
  return text.split(',').map((p) => p.trim().toLowerCase()).filter((p) => p.length > 0).join(',');
}

/**
 * The issuer DN of a certificate for a comment line, in strongSwan's "O=.., CN=.." order: node
 * prints it one attribute per line, in the certificate's order.
 */
function issuerName(cert: { issuer: string }): string {
  return cert.issuer.split('\n').filter((l) => l.length > 0).join(', ');
}

/**
 * A PSK both strongSwan and Libreswan read as the same bytes as decodePsk (src/ike/config/peer-config.ts):
 * plain printable text goes in double quotes; anything else (0x/0s forms, quotes, backslashes,
 * non-ASCII) as hex of the decoded bytes, which both parse ("0x" prefix).
 */
export function pskText(psk: string): PskText {
  if (/^[\x20-\x7e]+$/.test(psk) && !/["\\]/.test(psk) && !/^0[xs]/i.test(psk)) return { quoted: `"${psk}"` };
  return { hex: `0x${decodePsk(psk).toString('hex')}` };
}

export function pskValue(p: PskText): string {
  return 'quoted' in p ? p.quoted : p.hex;
}

/**
 * A value for a config file: bare when it has only "safe" characters, else in double quotes.
 * `what` names the config field for the ConfigError when the value cannot be written at all
 * (a double quote, a backslash or a control character would break out of the value).
 */
export function confValue(v: string, what: string): string {
  if (/^[A-Za-z0-9._:@%/+*-]+$/.test(v)) return v;
  if (/^[^"\\\x00-\x1f\x7f]+$/.test(v)) return `"${v}"`;
  throw new ConfigError(what, v, 'a value without double quotes, backslashes or control characters (it goes into the peer\'s config file)');
}

/**
 * A duration in one unit (strongSwan and Libreswan read "66m" but not "1h6m"): the largest of
 * d, h, m, s that divides it.
 */
export function oneUnitDuration(sec: number): string {
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (sec > 0 && sec % n === 0) return `${sec / n}${u}`;
  }
  return `${sec}s`;
}

/** The hard-expiry margin after a lifetime, in whole seconds (src/ike/rekey-scheduler.ts). */
export function hardMarginSec(lifetimeSec: number): number {
  return Math.floor((lifetimeSec * Math.round(HARD_LIFETIME_MARGIN * 1000)) / 1000);
}
