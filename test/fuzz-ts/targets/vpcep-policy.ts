// Fuzz target: the data path's policy stage in TypeScript (src/vpcep/nat.ts) on hostile packets, both
// ways, with one policy holding ACLs and two endpoints (TCP and UDP maps), and flows that live on
// across inputs (a small maxFlows, so the table fills and expires too). Byte 0 picks the direction,
// the origin, a clock step and an expiry; the rest is the packet. Invariants: the verdict is PASS or
// a drop code; a dropped packet is left as it was; the length never changes; a translated packet
// whose IPv4 header checksum verified still verifies.
import { PolicyStage } from '../../../src/vpcep/nat.js';
import { ip4ToNumber, POLICY_DROPS, POLICY_PASS, PROTO_ICMP, PROTO_TCP, PROTO_UDP, type DataPathPolicy } from '../../../src/vpcep/policy.js';
import { ipChecksumOk } from '../../helpers/ip-packets.js';
import { invariant } from './check.js';

export const maxLen = 2048;

const rule = (a: number[], len: number, protocol = 0, portLo = 0, portHi = 65535) => ({ family: (a.length === 4 ? 4 : 6) as 4 | 6, addr: Uint8Array.from(a), len, protocol, portLo, portHi });
const POLICY: DataPathPolicy = {
  endpoints: [
    {
      id: 1, address: ip4ToNumber('10.2.100.10'), open: true, origins: [7, 9], sources: [{ addr: ip4ToNumber('10.9.0.0'), len: 16 }],
      ports: [
        { protocol: PROTO_TCP, servicePort: 80, backendAddr: ip4ToNumber('10.3.0.10'), backendPort: 8080 },
        { protocol: PROTO_UDP, servicePort: 53, backendAddr: ip4ToNumber('10.3.0.10'), backendPort: 5353 },
      ],
    },
    { id: 2, address: ip4ToNumber('10.2.100.11'), open: false, origins: [7], sources: [], ports: [{ protocol: PROTO_UDP, servicePort: 53, backendAddr: ip4ToNumber('10.3.0.20'), backendPort: 53 }] },
  ],
  acls: [
    { origin: 9, rules: [rule([10, 2, 0, 0], 16), rule([10, 4, 0, 0], 16, PROTO_TCP, 443, 443), rule([10, 6, 0, 0], 24, PROTO_ICMP), rule([0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 64)] },
    { origin: 8, rules: [] },
  ],
  limits: { maxFlows: 64, tcpEstablishedMs: 60_000, tcpTransitoryMs: 5_000, udpMs: 10_000 },
};
const ORIGINS = [0, 7, 8, 9];
const stage = new PolicyStage();
stage.setPolicy(POLICY, 0);
let now = 0;

export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const ctl = data[0]!;
  const pkt = Buffer.from(data.subarray(1));
  const before = Buffer.from(pkt);
  now += (ctl >> 5) * 700;
  const outbound = (ctl & 4) !== 0;
  const v = outbound ? stage.outbound(pkt, 0, pkt.length, now) : stage.inbound(pkt, 0, pkt.length, ORIGINS[ctl & 3]!, now);
  invariant(Number.isInteger(v) && v >= POLICY_PASS && v <= POLICY_DROPS.length, `verdict ${v}`);
  invariant(pkt.length === before.length, 'the packet length changed');
  if (v !== POLICY_PASS) invariant(pkt.equals(before), 'a dropped packet was changed');
  else if (!pkt.equals(before) && pkt.length >= 20 && before[0]! >> 4 === 4 && (before[0]! & 15) >= 5 && (before[0]! & 15) * 4 <= before.length && ipChecksumOk(before)) {
    invariant(ipChecksumOk(pkt), 'a translated packet lost its valid IPv4 header checksum');
  }
  if (ctl & 8) stage.expire(now);
  const c = stage.counters();
  invariant(c.flows >= 0 && c.flows <= POLICY.limits.maxFlows, `flows ${c.flows} outside 0..maxFlows`);
}
