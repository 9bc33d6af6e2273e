import type { GatewayConfig, VpnConnectionConfig } from './config/types.js';
import type { PeerConfig, ChildConfig } from '../ike/config/peer-config.js';
import { decodePsk } from '../ike/config/peer-config.js';
import { parseIdentity } from '../ike/config/identity.js';
import { ConfigError } from '../common/errors.js';

/**
 * Builds the frozen IKE config graph (PeerConfig → ChildConfig) from the gateway's YAML model.
 * One vpnConnection = one PeerConfig with one child (policy-based: its local/remote subnets).
 */
export function peerConfigsFrom(cfg: GatewayConfig): PeerConfig[] {
  return cfg.vpnConnections.map((c, i) => peerConfigFrom(cfg, c, `vpnConnections[${i}]`));
}

export function peerConfigFrom(cfg: GatewayConfig, c: VpnConnectionConfig, path: string): PeerConfig {
  const localAddrs = cfg.gateway.publicAddresses.map((a) => a.text);
  const firstAddr = localAddrs[0];
  if (!c.ike.localId && (!firstAddr || firstAddr === '0.0.0.0' || firstAddr === '::')) {
    // with a wildcard bind we do not know which address the peer reaches, so the ID must be explicit
    throw new ConfigError(`${path}.ike.localId`, undefined, `required when gateway.publicAddresses is ${firstAddr ?? 'empty'} (set it to the address or name the customer gateway expects)`);
  }
  const localIdText = c.ike.localId ?? firstAddr!;
  const localId = parseIdentity(localIdText);
  if (!localId || localId.any) throw new ConfigError(`${path}.ike.localId`, localIdText, 'an IP address, fqdn:host, email:user@host or a DN');
  const remoteId = parseIdentity(c.peer.id || c.peer.address?.text || '%any');
  if (!remoteId) throw new ConfigError(`customerGateways[${c.customerGateway}].id`, c.peer.id, 'an IP address, fqdn:host, email:user@host, a DN or %any');
  const child: ChildConfig = Object.freeze({
    name: c.name,
    localTs: Object.freeze(c.localSubnets.map((p) => p.prefix)),
    remoteTs: Object.freeze(c.remoteSubnets.map((p) => p.prefix)),
    espProposals: Object.freeze([...c.esp.parsedProposals]),
    lifetimeSec: c.esp.lifetimeSec,
    replayWindow: c.esp.replayWindow,
  });
  return Object.freeze({
    name: c.name,
    localAddrs: Object.freeze(localAddrs),
    remoteAddr: c.peer.address?.text ?? null,
    localId,
    remoteId,
    psk: decodePsk(c.auth.psk.reveal()),
    ikeProposals: Object.freeze([...c.ike.parsedProposals]),
    ikeLifetimeSec: c.ike.lifetimeSec,
    startAction: c.startAction,
    dpdIntervalSec: c.dpd?.intervalSec ?? 0,
    children: Object.freeze([child]),
  });
}
