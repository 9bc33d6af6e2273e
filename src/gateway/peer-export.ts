import { VpnError } from '../common/errors.js';
import type { GatewayConfig } from './config/types.js';
import { exportFacts } from './peer-export/facts.js';
import { swanctlText } from './peer-export/swanctl.js';
import { libreswanText } from './peer-export/libreswan.js';

/**
 * The customer gateway's side of a VPN connection as a configuration file its IPsec software loads
 * unchanged: strongSwan's swanctl.conf or Libreswan's ipsec.conf. The management API's
 * `GET /v1/vpn-connections/{id}/peer-config` and `vpcgw peer-config NAME` both call
 * `exportPeerConfig`. The PSK is part of the text (the download is for the operator); each file
 * says so in its first lines.
 *
 * What the peer must do to work with this gateway, in both formats:
 *   - IKEv2 only, ESP in UDP 4500 (a userspace gateway cannot send raw ESP, README "Why encap = yes"),
 *     no MOBIKE (RFC 4555 is not implemented here);
 *   - one Child SA that carries every subnet pair (additional Child SAs are refused with
 *     NO_ADDITIONAL_SAS, src/ike/ike-manager.ts), so all subnets go into one set of traffic selectors;
 *   - our proposals, and PFS on rekeys exactly when our ESP proposals name a DH group;
 *   - lifetimes like ours: rekey at the lifetime minus up to 10 %, hard expiry at the lifetime + 10 %
 *     (src/ike/rekey-scheduler.ts);
 *   - who brings the tunnel up: when this gateway waits (startAction none) the peer starts it at load
 *     and keeps it up; when this gateway initiates too, the peer installs trap policies instead, so
 *     the two sides do not both open an IKE SA, and traffic from the site still brings it up.
 */

export type PeerExportFormat = 'swanctl' | 'libreswan';
export const PEER_EXPORT_FORMATS: readonly PeerExportFormat[] = ['swanctl', 'libreswan'];

export interface PeerExport {
  /** The file's content. */
  readonly text: string;
  /** A file name for the download: `<connection>.swanctl.conf` or `<connection>.libreswan.conf`. */
  readonly filename: string;
}

/**
 * The customer gateway's configuration for `connection` in `format`. Throws VpnError
 * ERR_NOT_FOUND for an unknown connection, ERR_INVALID_ARG for an unknown format or a name outside
 * the config's name pattern, ERR_CRYPTO_UNSUPPORTED when the format cannot express our proposals,
 * and a ConfigError when the config lacks something the peer needs (our reachable address).
 */
export function exportPeerConfig(cfg: GatewayConfig, connection: string, format: PeerExportFormat): PeerExport {
  if (!PEER_EXPORT_FORMATS.includes(format)) {
    throw new VpnError('ERR_INVALID_ARG', `peer config format ${JSON.stringify(format)} is not one of ${PEER_EXPORT_FORMATS.join(', ')}`);
  }
  const facts = exportFacts(cfg, connection);
  return format === 'swanctl'
    ? { text: swanctlText(facts), filename: `${facts.name}.swanctl.conf` }
    : { text: libreswanText(facts), filename: `${facts.name}.libreswan.conf` };
}

