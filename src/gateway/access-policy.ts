/**
 * What an SSL VPN user may reach, from the config's user groups and access policies, as the data
 * path's ACL rules (src/vpcep/policy.ts AclRule; the policy stage applies them per origin).
 *
 *  - each access policy allows one group a list of destinations (a prefix, optionally a protocol
 *    and destination port ranges);
 *  - a user in several groups may reach the union of their groups' policies;
 *  - a user none of whose groups has a policy (or who is in no group) falls under the server's
 *    `defaultAccess`: allow → unrestricted (certificate-only setups keep working), deny → nothing.
 *
 * The gateway gives every (server, sorted group set) combination one origin number and compiles
 * `aclFor` for it; sessions of users with the same groups on the same server share it.
 */
import type { AclRule } from '../vpcep/policy.js';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../vpcep/policy.js';
import type { AccessPolicyConfig, AclProtocol, GatewayConfig } from './config/types.js';

const PROTOCOL_NUMBER: Readonly<Record<AclProtocol, number>> = { any: 0, tcp: PROTO_TCP, udp: PROTO_UDP, icmp: PROTO_ICMP };
/** ICMPv6 (RFC 4443): `icmp` on an IPv6 destination means it */
const PROTO_ICMPV6 = 58;

/**
 * The ACL of a session of a user in `groups` on VPN server `server`: null when unrestricted, else
 * the rules (an empty list denies everything). Groups are matched by name; unknown names and the
 * order of `groups` do not matter. An unknown server counts as defaultAccess allow.
 */
export function aclFor(config: Pick<GatewayConfig, 'vpnServers' | 'accessPolicies'>, server: string, groups: readonly string[]): readonly AclRule[] | null {
  const mine = new Set(groups);
  const policies = config.accessPolicies.filter((p) => mine.has(p.group));
  if (policies.length === 0) {
    const s = config.vpnServers.find((v) => v.name === server);
    return s?.defaultAccess === 'deny' ? [] : null;
  }
  return rulesOf(policies);
}

/** The policies' destinations as ACL rules, without repeats, in policy order. */
function rulesOf(policies: readonly AccessPolicyConfig[]): AclRule[] {
  const out: AclRule[] = [];
  const seen = new Set<string>();
  const add = (r: AclRule): void => {
    const key = `${r.family}/${Buffer.from(r.addr).toString('hex')}/${r.len}/${r.protocol}/${r.portLo}-${r.portHi}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(r);
  };
  for (const p of policies) {
    for (const d of p.destinations) {
      const family = d.prefix.family;
      let protocol = PROTOCOL_NUMBER[d.protocol];
      if (protocol === PROTO_ICMP && family === 6) protocol = PROTO_ICMPV6;
      const base = { family, addr: new Uint8Array(d.prefix.bytes), len: d.prefix.len, protocol };
      if (!d.ports) add(Object.freeze({ ...base, portLo: 0, portHi: 65535 }));
      else for (const r of d.ports) add(Object.freeze({ ...base, portLo: r.lo, portHi: r.hi }));
    }
  }
  return out;
}
