import type { GatewayConfig, VpnConnectionConfig } from './config/types.js';
import type { PeerConfig, ChildConfig } from '../ike/config/peer-config.js';
import { decodePsk } from '../ike/config/peer-config.js';
import { connectionLocalIdentity, remoteIdentity } from './config/identities.js';
import { connectionExtraLocalTs } from './vpcep.js';

/**
 * Builds the frozen IKE config graph (PeerConfig → ChildConfig) from the gateway's YAML model.
 * One vpnConnection = one PeerConfig with one child (policy-based: its local/remote subnets).
 */
export function peerConfigsFrom(cfg: GatewayConfig): PeerConfig[] {
  return cfg.vpnConnections.map((c, i) => peerConfigFrom(cfg, c, `vpnConnections[${i}]`));
}

export function peerConfigFrom(cfg: GatewayConfig, c: VpnConnectionConfig, path: string): PeerConfig {
  const localAddrs = cfg.gateway.publicAddresses.map((a) => a.text);
  // the loader ran the same checks (config/identities.ts), so a loaded config does not throw here
  const creds = c.auth.credentials;
  const localId = connectionLocalIdentity(cfg.gateway.publicAddresses, c.ike.localId, `${path}.ike.localId`, creds);
  const cgwIndex = cfg.customerGateways.findIndex((g) => g.name === c.customerGateway);
  const remoteId = remoteIdentity(c.peer.id, `customerGateways[${cgwIndex}].id`);
  const child: ChildConfig = Object.freeze({
    name: c.name,
    // plus what VPC endpoints whitelisting this connection add (the endpoint subnet, gateway services' prefixes)
    localTs: Object.freeze([...c.localSubnets.map((p) => p.prefix), ...connectionExtraLocalTs(cfg, c.name)]),
    remoteTs: Object.freeze(c.remoteSubnets.map((p) => p.prefix)),
    espProposals: Object.freeze([...c.esp.parsedProposals]),
    lifetimeSec: c.esp.lifetimeSec,
    replayWindow: c.esp.replayWindow,
    lifetimeBytes: c.esp.lifetimeBytes,
    lifetimePackets: c.esp.lifetimePackets,
  });
  return Object.freeze({
    name: c.name,
    localAddrs: Object.freeze(localAddrs),
    remoteAddr: c.peer.address?.text ?? null,
    localId,
    remoteId,
    psk: c.auth.psk ? decodePsk(c.auth.psk.reveal()) : Buffer.alloc(0),
    cert: creds && c.peer.trust
      ? Object.freeze({
        cert: creds.cert, chain: creds.chain, key: creds.key, cas: c.peer.trust.cas, crls: c.peer.trust.crls, signatureAuth: true,
      })
      : null,
    ikeProposals: Object.freeze([...c.ike.parsedProposals]),
    ikeLifetimeSec: c.ike.lifetimeSec,
    startAction: c.startAction,
    dpdIntervalSec: c.dpd?.intervalSec ?? 0,
    dpdAction: c.dpd?.action ?? 'clear',
    dpdTimeoutSec: c.dpd?.timeoutSec ?? 0,
    encap: c.ike.encap,
    natKeepaliveSec: c.ike.natKeepaliveSec,
    children: Object.freeze([child]),
  });
}
