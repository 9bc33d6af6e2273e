import type { EspPolicyConfig, GatewayConfig, VpnConnectionConfig } from './config/types.js';
import { parsePrefix } from '../common/ip.js';
import type { PeerConfig, ChildConfig } from '../ike/config/peer-config.js';
import { decodePsk } from '../ike/config/peer-config.js';
import { connectionLocalIdentity, remoteIdentity } from './config/identities.js';
import { publicAddressesFacing } from './config/families.js';
import { connectionExtraLocalTs } from './vpcep.js';

/**
 * Builds the frozen IKE config graph (PeerConfig → ChildConfig) from the gateway's YAML model.
 * One vpnConnection = one PeerConfig; its children are the connection's own local/remote subnets
 * (one child), its `children`, or in route mode one child 0.0.0.0/0 === 0.0.0.0/0 whose outbound SA
 * the connection's `routes` lead to.
 */
export function peerConfigsFrom(cfg: GatewayConfig): PeerConfig[] {
  return cfg.vpnConnections.map((c, i) => peerConfigFrom(cfg, c, `vpnConnections[${i}]`));
}

export function peerConfigFrom(cfg: GatewayConfig, c: VpnConnectionConfig, path: string): PeerConfig {
  // the public addresses of the customer gateway's family: the initiator sends from the first, and
  // an IPv6 peer never reaches an IPv4 address (config/families.ts)
  const facing = publicAddressesFacing(cfg.gateway.publicAddresses, c.peer.address);
  const localAddrs = facing.map((a) => a.text);
  // the loader ran the same checks (config/identities.ts), so a loaded config does not throw here
  const creds = c.auth.credentials;
  const localId = connectionLocalIdentity(facing, c.ike.localId, `${path}.ike.localId`, creds);
  const cgwIndex = cfg.customerGateways.findIndex((g) => g.name === c.customerGateway);
  const remoteId = remoteIdentity(c.peer.id, `customerGateways[${cgwIndex}].id`);
  // plus what VPC endpoints whitelisting this connection add (the endpoint subnet, gateway services' prefixes)
  const extraLocal = connectionExtraLocalTs(cfg, c.name);
  const children: ChildConfig[] = c.mode === 'route'
    ? [routeChild(c)]
    : c.children.map((ch) => Object.freeze({
      name: ch.name,
      localTs: Object.freeze([...ch.localSubnets.map((p) => p.prefix), ...extraLocal]),
      remoteTs: Object.freeze(ch.remoteSubnets.map((p) => p.prefix)),
      ...espOf(ch.esp),
      startAction: ch.startAction,
    }));
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
    fragmentation: c.ike.fragmentation,
    startAction: c.startAction,
    dpdIntervalSec: c.dpd?.intervalSec ?? 0,
    dpdAction: c.dpd?.action ?? 'clear',
    dpdTimeoutSec: c.dpd?.timeoutSec ?? 0,
    encap: c.ike.encap,
    natKeepaliveSec: c.ike.natKeepaliveSec,
    children: Object.freeze(children),
  });
}

function espOf(esp: EspPolicyConfig): Pick<ChildConfig, 'espProposals' | 'lifetimeSec' | 'replayWindow' | 'lifetimeBytes' | 'lifetimePackets'> {
  return {
    espProposals: Object.freeze([...esp.parsedProposals]),
    lifetimeSec: esp.lifetimeSec,
    replayWindow: esp.replayWindow,
    lifetimeBytes: esp.lifetimeBytes,
    lifetimePackets: esp.lifetimePackets,
  };
}

const ANY_V4 = parsePrefix('0.0.0.0/0')!;
const ANY_V6 = parsePrefix('::/0')!;

/**
 * Route-based mode, as the route-based VPNs of AWS and Huawei: one child whose traffic selectors
 * are the whole address space on both sides (per family the routes use), so the peer's policy lets
 * anything through and our route table decides which packets enter this tunnel.
 */
function routeChild(c: VpnConnectionConfig): ChildConfig {
  const any = [...(c.routes.some((r) => r.prefix.family === 4) ? [ANY_V4] : []), ...(c.routes.some((r) => r.prefix.family === 6) ? [ANY_V6] : [])];
  return Object.freeze({
    name: c.name,
    localTs: Object.freeze([...any]),
    remoteTs: Object.freeze([...any]),
    ...espOf(c.esp),
    startAction: 'start' as const,
    routes: Object.freeze(c.routes.map((r) => r.prefix)),
  });
}
