import { ConfigError } from '../../common/errors.js';
import type { Family } from '../../common/ip.js';
import { join, type AddressSpec, type PrefixSpec } from './field-table.js';

/**
 * IPv4 and IPv6 in one connection. The outer family (the customer gateway's address and the
 * public address it reaches) and the inner families (the traffic selectors) are independent: IPv6
 * subnets may run over an IPv4 outer and the other way round (RFC 4301 §4.1 tunnel mode, the ESP
 * trailer's next header says which: RFC 4303 §2.6). What must hold:
 * - a customer gateway with an address is reached from a public address of its family (a wildcard
 *   "::" bind is dual-stack and reaches both; "0.0.0.0" only IPv4);
 * - every family in remoteSubnets is also in localSubnets and the other way round: a traffic
 *   selector pair is only ever of one family (TS_IPV4_ADDR_RANGE with TS_IPV4_ADDR_RANGE, RFC 7296
 *   §2.9), so a lone family could never be negotiated.
 */

function familyName(f: Family): string {
  return f === 4 ? 'IPv4' : 'IPv6';
}

/** Whether a bind on `a` reaches peers of `family` ("::" is a dual-stack socket, src/net/native-udp.ts). */
export function bindReaches(a: AddressSpec, family: Family): boolean {
  if (a.addr.family === family) return true;
  return a.addr.family === 6 && a.addr.bytes.every((b) => b === 0);
}

/**
 * The public addresses a peer at `peer` reaches, in config order (all of them for a "%any" peer).
 * Our default IKE identity is the first of them, as strongSwan's default identity is the IKE SA's
 * own address.
 */
export function publicAddressesFacing(publicAddresses: readonly AddressSpec[], peer: AddressSpec | null): readonly AddressSpec[] {
  if (!peer) return publicAddresses;
  const same = publicAddresses.filter((a) => a.addr.family === peer.addr.family);
  if (same.length) return same;
  return publicAddresses.filter((a) => bindReaches(a, peer.addr.family));
}

/**
 * Checks one connection's families (see the file comment). `cgwPath` is the customer gateway's
 * path (`customerGateways[i]`), `path` the connection's.
 */
export function checkConnectionFamilies(
  publicAddresses: readonly AddressSpec[],
  peerAddress: AddressSpec | null,
  localSubnets: readonly PrefixSpec[],
  remoteSubnets: readonly PrefixSpec[],
  path: string,
  cgwPath: string,
): void {
  if (peerAddress && !publicAddresses.some((a) => bindReaches(a, peerAddress.addr.family))) {
    const have = publicAddresses.map((a) => a.text).join(', ');
    throw new ConfigError(join(cgwPath, 'address'), peerAddress.text,
      `an address of a family gateway.publicAddresses can reach (${have}: no ${familyName(peerAddress.addr.family)} address; `
      + `${path} uses this customer gateway)`);
  }
  const localFamilies = new Set(localSubnets.map((p) => p.prefix.family));
  const remoteFamilies = new Set(remoteSubnets.map((p) => p.prefix.family));
  const lone = (list: readonly PrefixSpec[], other: Set<Family>, field: string, otherField: string): void => {
    const i = list.findIndex((p) => !other.has(p.prefix.family));
    if (i < 0) return;
    const p = list[i]!;
    throw new ConfigError(join(join(path, field), i), p.text,
      `a prefix of a family ${otherField} also has (it has ${[...other].map(familyName).join(' and ')} only; `
      + `add a ${familyName(p.prefix.family)} prefix there or remove this one)`);
  };
  lone(remoteSubnets, localFamilies, 'remoteSubnets', 'localSubnets');
  lone(localSubnets, remoteFamilies, 'localSubnets', 'remoteSubnets');
}
