// The policy stage's scenario table (src/vpcep/policy.ts describes the rules): every ACL rule, endpoint
// translation, drop reason, timeout and setPolicy rule, driven only through PolicyStageApi and the
// exported policy types, so the TypeScript stage (src/vpcep/nat.ts) and the native engine's stage (through
// its test wrapper) run the same table. Packets are built here with correct checksums, and every
// translated packet is checked by recomputing its checksums from scratch.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_POLICY_LIMITS,
  ip4ToNumber,
  numberToIp4,
  POLICY_DROPS,
  POLICY_PASS,
  policyDropCode,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
} from '../../src/vpcep/policy.js';
import type { AclRule, DataPathPolicy, EndpointRule, PolicyDrop, PolicyLimits, PolicyStageApi } from '../../src/vpcep/policy.js';
import {
  TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, allChecksumsOk, icmp4, icmpError4, ip4, ip4Bytes, ipChecksumOk, l4ChecksumOk, tcp4, tupleOf, udp4,
} from './ip-packets.js';
export * from './ip-packets.js';

// ---------------------------------------------------------------- the policy used by the table

export const E1 = '10.2.100.10';
export const E2 = '10.2.100.11';
export const E3 = '10.2.100.12';
export const BACKEND = '10.3.0.10';
export const BACKEND2 = '10.3.0.20';
export const CLIENT = '10.1.0.5';
export const CLIENT_CIDR = '10.9.1.1'; // inside the whitelisted 10.9.0.0/16
export const O_SITE = 7; // a VPN connection admitted to E1 and E2
export const O_OTHER = 8; // a connection admitted nowhere
export const O_ACL = 9; // an SSL VPN (server, groups) origin with an ACL, admitted to E1

export function v4Rule(prefix: string, protocol = 0, portLo = 0, portHi = 65535): AclRule {
  const [a, l] = prefix.split('/');
  return { family: 4, addr: ip4Bytes(a!), len: Number(l), protocol, portLo, portHi };
}

export function v6Rule(prefix: string, protocol = 0, portLo = 0, portHi = 65535): AclRule {
  const [a, l] = prefix.split('/');
  const addr = Buffer.alloc(16);
  const parts = a!.split('::');
  const head = parts[0] ? parts[0].split(':') : [];
  const tail = parts[1] ? parts[1].split(':') : [];
  head.forEach((h, i) => addr.writeUInt16BE(parseInt(h, 16), i * 2));
  tail.forEach((h, i) => addr.writeUInt16BE(parseInt(h, 16), 16 - (tail.length - i) * 2));
  return { family: 6, addr, len: Number(l), protocol, portLo, portHi };
}

export function endpoint(id: number, address: string, over: Partial<EndpointRule> = {}): EndpointRule {
  return {
    id,
    address: ip4ToNumber(address),
    open: true,
    ports: [
      { protocol: PROTO_TCP, servicePort: 80, backendAddr: ip4ToNumber(BACKEND), backendPort: 8080 },
      { protocol: PROTO_UDP, servicePort: 53, backendAddr: ip4ToNumber(BACKEND), backendPort: 5353 },
    ],
    origins: [O_SITE, O_ACL],
    sources: [{ addr: ip4ToNumber('10.9.0.0'), len: 16 }],
    ...over,
  };
}

export const TEST_LIMITS: PolicyLimits = { maxFlows: 4096, tcpEstablishedMs: 3_600_000, tcpTransitoryMs: 30_000, udpMs: 60_000 };

export function basePolicy(over: Partial<DataPathPolicy> = {}): DataPathPolicy {
  return {
    endpoints: [endpoint(1, E1), endpoint(2, E2, { ports: [{ protocol: PROTO_UDP, servicePort: 53, backendAddr: ip4ToNumber(BACKEND2), backendPort: 53 }] }), endpoint(3, E3, { open: false })],
    acls: [{ origin: O_ACL, rules: [v4Rule('10.2.0.0/16'), v4Rule('10.4.0.0/16', PROTO_TCP, 443, 443), v6Rule('fd00:2::/64')] }],
    limits: TEST_LIMITS,
    ...over,
  };
}

const code = policyDropCode;
const T0 = 1_000_000;

/** expire() may do bounded work per call: call it until the flow count settles */
function expireAll(s: PolicyStageApi, now: number): void {
  let last = -1;
  for (let i = 0; i < 64; i++) {
    s.expire(now);
    const n = s.counters().flows;
    if (n === last) break;
    last = n;
  }
}

function dropsOf(s: PolicyStageApi): Record<PolicyDrop, number> {
  return s.counters().drops;
}

function epCounters(s: PolicyStageApi, id: number) {
  const c = s.counters().endpoints.find((e) => e.id === id);
  if (!c) throw new Error(`no counters for endpoint ${id}`);
  return c;
}

/** Sends a client packet in; expects PASS and returns the translated copy. */
function passIn(s: PolicyStageApi, pkt: Buffer, origin: number, now = T0): Buffer {
  const b = Buffer.from(pkt);
  expect(s.inbound(b, 0, b.length, origin, now)).toBe(POLICY_PASS);
  return b;
}

function passOut(s: PolicyStageApi, pkt: Buffer, now = T0): Buffer {
  const b = Buffer.from(pkt);
  expect(s.outbound(b, 0, b.length, now)).toBe(POLICY_PASS);
  return b;
}

/** The backend's reply to a translated packet (ports and addresses swapped, same protocol). */
function replyTo(translated: Buffer, payload = 'reply', tcpFlags = TCP_ACK): Buffer {
  const t = tupleOf(translated);
  return t.proto === PROTO_TCP ? tcp4(t.dst, t.dport, t.src, t.sport, tcpFlags, payload) : udp4(t.dst, t.dport, t.src, t.sport, payload);
}

// ---------------------------------------------------------------- the table

export function policyScenarios(name: string, make: () => PolicyStageApi): void {
  function stage(p: DataPathPolicy = basePolicy(), now = T0): PolicyStageApi {
    const s = make();
    s.setPolicy(p, now);
    return s;
  }

  describe(`${name}: policy stage scenarios (src/vpcep/policy.ts)`, () => {
    describe('before any policy / with the empty policy', () => {
      it('passes everything and counts nothing', () => {
        const s = make();
        for (const p of [udp4(CLIENT, 5000, E1, 53), tcp4(CLIENT, 5000, '10.5.0.1', 22, TCP_SYN)]) {
          expect(s.inbound(Buffer.from(p), 0, p.length, O_ACL, T0)).toBe(POLICY_PASS);
          expect(s.outbound(Buffer.from(p), 0, p.length, T0)).toBe(POLICY_PASS);
        }
        const c = s.counters();
        expect(c.flows).toBe(0);
        expect(Object.keys(c.drops).sort()).toEqual([...POLICY_DROPS].sort());
        expect(Object.values(c.drops).every((n) => n === 0)).toBe(true);
      });
    });

    describe('endpoint translation (UDP)', () => {
      it('client → E:53 becomes E:natPort → backend:5353, checksums correct, payload intact; the reply comes back as E:53 → client', () => {
        const s = stage();
        const q = udp4(CLIENT, 40000, E1, 53, 'query');
        const t = passIn(s, q, O_SITE);
        const tt = tupleOf(t);
        expect(tt).toMatchObject({ src: E1, dst: BACKEND, proto: PROTO_UDP, dport: 5353 });
        expect(tt.sport).toBeGreaterThanOrEqual(1024);
        expect(tt.sport).toBeLessThanOrEqual(65535);
        expect(allChecksumsOk(t)).toBe(true);
        expect(t.length).toBe(q.length);
        expect(t.subarray(28).toString()).toBe('query');
        const r = passOut(s, replyTo(t, 'answer'));
        expect(tupleOf(r)).toEqual({ src: E1, dst: CLIENT, proto: PROTO_UDP, sport: 53, dport: 40000 });
        expect(allChecksumsOk(r)).toBe(true);
        expect(r.subarray(28).toString()).toBe('answer');
        const c = epCounters(s, 1);
        expect(c).toMatchObject({ flows: 1, flowsCreated: 1, packetsIn: 1, packetsOut: 1 });
        expect(c.bytesIn).toBe(q.length);
        expect(c.bytesOut).toBe(r.length);
        expect(s.counters().flows).toBe(1);
      });

      it('later packets of the flow reuse its NAT port; a UDP checksum of 0 stays 0', () => {
        const s = stage();
        const a = tupleOf(passIn(s, udp4(CLIENT, 40000, E1, 53, 'one'), O_SITE));
        const z = passIn(s, udp4(CLIENT, 40000, E1, 53, 'two', { zeroChecksum: true }), O_SITE);
        expect(tupleOf(z).sport).toBe(a.sport);
        expect(z.readUInt16BE(26)).toBe(0);
        expect(ipChecksumOk(z)).toBe(true);
        expect(epCounters(s, 1)).toMatchObject({ flows: 1, flowsCreated: 1, packetsIn: 2 });
        const r = passOut(s, udp4(BACKEND, 5353, E1, a.sport, 'x', { zeroChecksum: true }));
        expect(r.readUInt16BE(26)).toBe(0);
        expect(tupleOf(r)).toEqual({ src: E1, dst: CLIENT, proto: PROTO_UDP, sport: 53, dport: 40000 });
      });

      it('a source admitted by CIDR reaches the endpoint with any origin, origin 0 included', () => {
        const s = stage();
        const t = passIn(s, udp4(CLIENT_CIDR, 1111, E1, 53), 0);
        expect(tupleOf(t).src).toBe(E1);
        passIn(s, udp4(CLIENT_CIDR, 1112, E1, 53), O_OTHER);
        expect(s.counters().flows).toBe(2);
      });

      it('the same client port through two origins, or to two endpoints, makes distinct flows', () => {
        const s = stage();
        const a = tupleOf(passIn(s, udp4(CLIENT, 40000, E1, 53), O_SITE));
        const b = tupleOf(passIn(s, udp4(CLIENT, 40000, E1, 53), O_ACL));
        const c = tupleOf(passIn(s, udp4(CLIENT, 40000, E2, 53), O_SITE));
        expect(a.sport).not.toBe(b.sport);
        expect(c).toMatchObject({ src: E2, dst: BACKEND2, dport: 53 });
        expect(s.counters().flows).toBe(3);
        // each reply goes back to its own flow
        expect(tupleOf(passOut(s, udp4(BACKEND, 5353, E1, b.sport)))).toMatchObject({ dst: CLIENT, dport: 40000, sport: 53 });
        expect(tupleOf(passOut(s, udp4(BACKEND2, 53, E2, c.sport)))).toMatchObject({ src: E2, dst: CLIENT, dport: 40000, sport: 53 });
      });

      it('1,000 concurrent flows get distinct NAT ports and each reply reaches its own client', () => {
        const s = stage();
        const nat = new Map<number, { client: string; port: number }>();
        for (let i = 0; i < 1000; i++) {
          const client = `10.1.${(i >> 8) & 255}.${i & 255}`;
          const port = 10000 + ((i * 7919) % 50000);
          const t = tupleOf(passIn(s, udp4(client, port, E1, 53, `q${i}`), O_SITE));
          expect(t.sport).toBeGreaterThanOrEqual(1024);
          expect(nat.has(t.sport)).toBe(false);
          nat.set(t.sport, { client, port });
        }
        expect(s.counters().flows).toBe(1000);
        for (const [p, want] of nat) {
          const r = passOut(s, udp4(BACKEND, 5353, E1, p, `a${p}`));
          expect(tupleOf(r)).toEqual({ src: E1, dst: want.client, proto: PROTO_UDP, sport: 53, dport: want.port });
          expect(allChecksumsOk(r)).toBe(true);
        }
        expect(epCounters(s, 1)).toMatchObject({ flows: 1000, flowsCreated: 1000, packetsIn: 1000, packetsOut: 1000 });
      });
    });

    describe('endpoint translation (TCP)', () => {
      it('a SYN without ACK creates the flow; the handshake and data pass both ways with correct checksums', () => {
        const s = stage();
        const syn = passIn(s, tcp4(CLIENT, 33000, E1, 80, TCP_SYN), O_SITE);
        const t = tupleOf(syn);
        expect(t).toMatchObject({ src: E1, dst: BACKEND, dport: 8080, proto: PROTO_TCP });
        expect(allChecksumsOk(syn)).toBe(true);
        const synAck = passOut(s, tcp4(BACKEND, 8080, E1, t.sport, TCP_SYN | TCP_ACK));
        expect(tupleOf(synAck)).toEqual({ src: E1, dst: CLIENT, proto: PROTO_TCP, sport: 80, dport: 33000 });
        expect(allChecksumsOk(synAck)).toBe(true);
        const data = passIn(s, tcp4(CLIENT, 33000, E1, 80, TCP_ACK, 'GET / HTTP/1.0\r\n\r\n'), O_SITE);
        expect(tupleOf(data).sport).toBe(t.sport);
        expect(allChecksumsOk(data)).toBe(true);
        expect(data.subarray(40).toString()).toBe('GET / HTTP/1.0\r\n\r\n');
        expect(epCounters(s, 1)).toMatchObject({ flows: 1, flowsCreated: 1, packetsIn: 2, packetsOut: 1 });
      });

      it('TCP segments of unknown flows (ACK, SYN+ACK, RST, FIN) are dropped endpointNoFlow and create nothing', () => {
        const s = stage();
        for (const f of [TCP_ACK, TCP_SYN | TCP_ACK, TCP_RST, TCP_FIN | TCP_ACK, 0]) {
          const p = tcp4(CLIENT, 33001, E1, 80, f);
          expect(s.inbound(Buffer.from(p), 0, p.length, O_SITE, T0)).toBe(code('endpointNoFlow'));
        }
        expect(s.counters().flows).toBe(0);
        expect(dropsOf(s).endpointNoFlow).toBe(5);
        expect(epCounters(s, 1).drops.endpointNoFlow).toBe(5);
      });
    });

    describe('endpoint drops', () => {
      it('a closed endpoint (pending acceptance or rejected) drops everything endpointClosed and keeps no flow', () => {
        const s = stage();
        for (const p of [udp4(CLIENT, 1, E3, 53), tcp4(CLIENT, 2, E3, 80, TCP_SYN), icmp4(CLIENT, E3, 8, 0, Buffer.alloc(8))]) {
          expect(s.inbound(Buffer.from(p), 0, p.length, O_SITE, T0)).toBe(code('endpointClosed'));
        }
        expect(s.counters().flows).toBe(0);
        expect(epCounters(s, 3).drops.endpointClosed).toBe(3);
        expect(dropsOf(s).endpointClosed).toBe(3);
      });

      it('an origin not whitelisted from a source outside the CIDRs is dropped endpointDenied; origin 0 is never whitelisted by origin', () => {
        const s = stage();
        const p = udp4(CLIENT, 1000, E1, 53);
        expect(s.inbound(Buffer.from(p), 0, p.length, O_OTHER, T0)).toBe(code('endpointDenied'));
        expect(s.inbound(Buffer.from(p), 0, p.length, 0, T0)).toBe(code('endpointDenied'));
        expect(epCounters(s, 1).drops.endpointDenied).toBe(2);
        expect(s.counters().flows).toBe(0);
      });

      it('no port map for (protocol, port), or not TCP/UDP: endpointNoPort', () => {
        const s = stage();
        const pkts = [udp4(CLIENT, 1000, E1, 54), tcp4(CLIENT, 1000, E1, 53, TCP_SYN), udp4(CLIENT, 1000, E1, 80), icmp4(CLIENT, E1, 8, 0, Buffer.from('ping-data')), ip4({ src: CLIENT, dst: E1, proto: 47, payload: Buffer.alloc(16) })];
        for (const p of pkts) expect(s.inbound(Buffer.from(p), 0, p.length, O_SITE, T0)).toBe(code('endpointNoPort'));
        expect(epCounters(s, 1).drops.endpointNoPort).toBe(pkts.length);
        expect(s.counters().flows).toBe(0);
      });

      it('outbound to an endpoint address without a flow: endpointNoFlow (TCP, UDP, ICMP echo reply)', () => {
        const s = stage();
        const pkts = [udp4(BACKEND, 5353, E1, 2000), tcp4(BACKEND, 8080, E1, 2000, TCP_SYN | TCP_ACK), icmp4(BACKEND, E1, 0, 0, Buffer.alloc(8))];
        for (const p of pkts) expect(s.outbound(Buffer.from(p), 0, p.length, T0)).toBe(code('endpointNoFlow'));
        expect(epCounters(s, 1).drops.endpointNoFlow).toBe(3);
      });

      it('maxFlows flows alive: new flows are dropped endpointTableFull, existing ones unharmed', () => {
        const s = stage(basePolicy({ limits: { ...TEST_LIMITS, maxFlows: 4 } }));
        const nats: number[] = [];
        for (let i = 0; i < 4; i++) nats.push(tupleOf(passIn(s, udp4(CLIENT, 5000 + i, E1, 53), O_SITE)).sport);
        const p = udp4(CLIENT, 6000, E1, 53);
        expect(s.inbound(Buffer.from(p), 0, p.length, O_SITE, T0)).toBe(code('endpointTableFull'));
        const syn = tcp4(CLIENT, 6001, E1, 80, TCP_SYN);
        expect(s.inbound(Buffer.from(syn), 0, syn.length, O_SITE, T0)).toBe(code('endpointTableFull'));
        expect(dropsOf(s).endpointTableFull).toBe(2);
        expect(epCounters(s, 1).drops.endpointTableFull).toBe(2);
        for (let i = 0; i < 4; i++) {
          expect(tupleOf(passIn(s, udp4(CLIENT, 5000 + i, E1, 53), O_SITE)).sport).toBe(nats[i]);
          expect(tupleOf(passOut(s, udp4(BACKEND, 5353, E1, nats[i]!))).dport).toBe(5000 + i);
        }
        expect(s.counters().flows).toBe(4);
        // once one expires there is room again
        expireAll(s, T0 + TEST_LIMITS.udpMs + 1000);
        passIn(s, udp4(CLIENT, 6000, E1, 53), O_SITE, T0 + TEST_LIMITS.udpMs + 1000);
      });
    });

    describe('ICMP errors about translated flows', () => {
      it('the backend\'s port unreachable about E:natPort → backend is carried back with the embedded header translated', () => {
        const s = stage();
        const t = passIn(s, udp4(CLIENT, 40000, E1, 53, 'query'), O_SITE);
        const nat = tupleOf(t).sport;
        const err = passOut(s, icmpError4(BACKEND, E1, 3, 3, t));
        expect(tupleOf(err)).toMatchObject({ src: BACKEND, dst: CLIENT, proto: PROTO_ICMP });
        expect(tupleOf(err, 28)).toEqual({ src: CLIENT, dst: E1, proto: PROTO_UDP, sport: 40000, dport: 53 });
        expect(allChecksumsOk(err)).toBe(true);
        // a router's time exceeded carrying only 8 bytes of the datagram (RFC 792 minimum)
        const te = passOut(s, icmpError4('10.3.0.1', E1, 11, 0, t, 28));
        expect(tupleOf(te).dst).toBe(CLIENT);
        expect(tupleOf(te, 28)).toEqual({ src: CLIENT, dst: E1, proto: PROTO_UDP, sport: 40000, dport: 53 });
        expect(allChecksumsOk(te)).toBe(true);
        void nat;
      });

      it('the same for TCP (parameter problem with the whole segment)', () => {
        const s = stage();
        const syn = passIn(s, tcp4(CLIENT, 33000, E1, 80, TCP_SYN, 'x'), O_SITE);
        const err = passOut(s, icmpError4(BACKEND, E1, 12, 0, syn));
        expect(tupleOf(err, 28)).toEqual({ src: CLIENT, dst: E1, proto: PROTO_TCP, sport: 33000, dport: 80 });
        expect(allChecksumsOk(err)).toBe(true);
      });

      it('an ICMP error about a flow that does not exist is dropped endpointNoFlow', () => {
        const s = stage();
        const fake = udp4(E1, 4242, BACKEND, 5353);
        const p = icmpError4(BACKEND, E1, 3, 3, fake);
        expect(s.outbound(Buffer.from(p), 0, p.length, T0)).toBe(code('endpointNoFlow'));
      });

      it('the client side\'s ICMP error about a reply (E:53 → client) reaches the backend translated', () => {
        const s = stage();
        const t = passIn(s, udp4(CLIENT, 40000, E1, 53, 'query'), O_SITE);
        const nat = tupleOf(t).sport;
        const r = passOut(s, replyTo(t, 'answer'));
        const err = passIn(s, icmpError4(CLIENT, E1, 3, 3, r), O_SITE);
        expect(tupleOf(err)).toMatchObject({ src: E1, dst: BACKEND, proto: PROTO_ICMP });
        expect(tupleOf(err, 28)).toEqual({ src: BACKEND, dst: E1, proto: PROTO_UDP, sport: 5353, dport: nat });
        expect(allChecksumsOk(err)).toBe(true);
      });
    });

    describe('ACLs by origin', () => {
      it('passes destinations a rule matches; drops the rest aclDenied, counted globally and per origin', () => {
        const s = stage();
        passIn(s, udp4(CLIENT, 1, '10.2.1.1', 9), O_ACL);
        passIn(s, tcp4(CLIENT, 1, '10.4.0.1', 443, TCP_SYN), O_ACL);
        const denied = [udp4(CLIENT, 1, '10.5.0.1', 9), tcp4(CLIENT, 1, '10.4.0.1', 80, TCP_SYN), udp4(CLIENT, 1, '10.4.0.1', 443), icmp4(CLIENT, '10.4.0.1', 8, 0, Buffer.alloc(8))];
        for (const p of denied) expect(s.inbound(Buffer.from(p), 0, p.length, O_ACL, T0)).toBe(code('aclDenied'));
        const c = s.counters();
        expect(c.drops.aclDenied).toBe(4);
        expect(c.aclDenied.get(O_ACL)).toBe(4);
        expect(c.aclDenied.has(O_SITE)).toBe(false);
      });

      it('port ranges are inclusive', () => {
        const s = stage(basePolicy({ acls: [{ origin: O_ACL, rules: [v4Rule('10.4.0.0/16', PROTO_UDP, 1000, 2000)] }] }));
        for (const port of [1000, 1500, 2000]) passIn(s, udp4(CLIENT, 1, '10.4.1.1', port), O_ACL);
        for (const port of [999, 2001]) {
          const p = udp4(CLIENT, 1, '10.4.1.1', port);
          expect(s.inbound(Buffer.from(p), 0, p.length, O_ACL, T0)).toBe(code('aclDenied'));
        }
      });

      it('a protocol rule without ports admits that protocol to the prefix', () => {
        const s = stage(basePolicy({ acls: [{ origin: O_ACL, rules: [v4Rule('10.6.0.0/24', PROTO_ICMP)] }] }));
        passIn(s, icmp4(CLIENT, '10.6.0.9', 8, 0, Buffer.alloc(8)), O_ACL);
        const p = udp4(CLIENT, 1, '10.6.0.9', 53);
        expect(s.inbound(Buffer.from(p), 0, p.length, O_ACL, T0)).toBe(code('aclDenied'));
      });

      it('IPv6 packets meet the IPv6 rules; an ACL without IPv6 rules drops them', () => {
        const s = stage();
        passIn(s, ip6(CLIENT6, 'fd00:2::9', PROTO_UDP, udpPayload6(5000, 53)), O_ACL);
        const other = ip6(CLIENT6, 'fd00:3::9', PROTO_UDP, udpPayload6(5000, 53));
        expect(s.inbound(Buffer.from(other), 0, other.length, O_ACL, T0)).toBe(code('aclDenied'));
        const s4 = stage(basePolicy({ acls: [{ origin: O_ACL, rules: [v4Rule('0.0.0.0/0')] }] }));
        const v6 = ip6(CLIENT6, 'fd00:2::9', PROTO_UDP, udpPayload6(5000, 53));
        expect(s4.inbound(Buffer.from(v6), 0, v6.length, O_ACL, T0)).toBe(code('aclDenied'));
        passIn(s4, udp4(CLIENT, 1, '192.0.2.77', 1), O_ACL);
      });

      it('IPv6 TCP/UDP port rules', () => {
        const s = stage(basePolicy({ acls: [{ origin: O_ACL, rules: [v6Rule('fd00:2::/64', PROTO_TCP, 22, 22)] }] }));
        passIn(s, ip6(CLIENT6, 'fd00:2::9', PROTO_TCP, tcpPayload6(5000, 22)), O_ACL);
        const bad = ip6(CLIENT6, 'fd00:2::9', PROTO_TCP, tcpPayload6(5000, 23));
        expect(s.inbound(Buffer.from(bad), 0, bad.length, O_ACL, T0)).toBe(code('aclDenied'));
      });

      it('an empty rule list denies everything; origins without an ACL and origin 0 are unrestricted', () => {
        const s = stage(basePolicy({ acls: [{ origin: O_ACL, rules: [] }, { origin: 0, rules: [] }] }));
        const p = udp4(CLIENT, 1, '10.2.1.1', 9);
        expect(s.inbound(Buffer.from(p), 0, p.length, O_ACL, T0)).toBe(code('aclDenied'));
        passIn(s, p, O_SITE);
        passIn(s, p, 0);
        passIn(s, ip6(CLIENT6, 'fd00:3::9', PROTO_UDP, udpPayload6(1, 2)), O_OTHER);
      });

      it('a second setPolicy keeps every origin\'s ACL, empty rule lists included (the gateway re-sends the policy at each change)', () => {
        const acls = (extra: readonly ReturnType<typeof v4Rule>[]) => [
          { origin: O_OTHER, rules: [] },
          { origin: O_ACL, rules: [v4Rule('10.2.0.0/16'), ...extra] },
          { origin: O_SITE, rules: [] },
        ];
        const s = stage(basePolicy({ acls: acls([]) }));
        const p = udp4(CLIENT, 1, '10.2.1.1', 9);
        for (let round = 0; round < 3; round++) {
          expect(s.inbound(Buffer.from(p), 0, p.length, O_OTHER, T0)).toBe(code('aclDenied'));
          expect(s.inbound(Buffer.from(p), 0, p.length, O_SITE, T0)).toBe(code('aclDenied'));
          passIn(s, p, O_ACL);
          s.setPolicy(basePolicy({ acls: acls(round % 2 ? [] : [v4Rule('10.3.0.0/16', PROTO_ICMP)]) }), T0);
        }
      });

      it('endpoint traffic is decided by the whitelist, not by the ACL', () => {
        const s = stage(basePolicy({ acls: [{ origin: O_ACL, rules: [] }] }));
        expect(tupleOf(passIn(s, udp4(CLIENT, 1, E1, 53), O_ACL)).dst).toBe(BACKEND);
        expect(s.counters().drops.aclDenied).toBe(0);
      });

      it('outbound packets are not subject to ACLs', () => {
        const s = stage(basePolicy({ acls: [{ origin: O_ACL, rules: [] }] }));
        passOut(s, udp4('10.2.1.1', 9, CLIENT, 1));
      });
    });

    describe('flow timeouts', () => {
      it('an idle UDP flow expires after udpMs; replies then drop endpointNoFlow', () => {
        const s = stage();
        const nat = tupleOf(passIn(s, udp4(CLIENT, 40000, E1, 53), O_SITE)).sport;
        expireAll(s, T0 + TEST_LIMITS.udpMs - 1000);
        expect(s.counters().flows).toBe(1);
        passOut(s, udp4(BACKEND, 5353, E1, nat), T0 + TEST_LIMITS.udpMs - 1000); // refreshes
        expireAll(s, T0 + 2 * TEST_LIMITS.udpMs - 2000);
        expect(s.counters().flows).toBe(1);
        const later = T0 + 2 * TEST_LIMITS.udpMs + 1000;
        expireAll(s, later);
        expect(s.counters().flows).toBe(0);
        expect(epCounters(s, 1).flows).toBe(0);
        const r = udp4(BACKEND, 5353, E1, nat);
        expect(s.outbound(Buffer.from(r), 0, r.length, later)).toBe(code('endpointNoFlow'));
      });

      it('TCP: transitory until a packet each way, then established; back to transitory after FIN or RST', () => {
        const s = stage();
        const tr = TEST_LIMITS.tcpTransitoryMs;
        // only a SYN: gone after the transitory timeout
        passIn(s, tcp4(CLIENT, 33000, E1, 80, TCP_SYN), O_SITE);
        expireAll(s, T0 + tr + 1000);
        expect(s.counters().flows).toBe(0);
        // SYN, SYN+ACK, ACK: established, alive long after the transitory timeout
        const t1 = T0 + tr + 2000;
        const nat = tupleOf(passIn(s, tcp4(CLIENT, 33001, E1, 80, TCP_SYN), O_SITE, t1)).sport;
        passOut(s, tcp4(BACKEND, 8080, E1, nat, TCP_SYN | TCP_ACK), t1);
        passIn(s, tcp4(CLIENT, 33001, E1, 80, TCP_ACK), O_SITE, t1);
        expireAll(s, t1 + 10 * tr);
        expect(s.counters().flows).toBe(1);
        const t2 = t1 + 10 * tr;
        passIn(s, tcp4(CLIENT, 33001, E1, 80, TCP_ACK, 'data'), O_SITE, t2);
        // a FIN: transitory again
        passIn(s, tcp4(CLIENT, 33001, E1, 80, TCP_FIN | TCP_ACK), O_SITE, t2);
        expireAll(s, t2 + tr - 1000);
        expect(s.counters().flows).toBe(1);
        expireAll(s, t2 + tr + 1000);
        expect(s.counters().flows).toBe(0);
        // established then an RST from the backend
        const t3 = t2 + 2 * tr;
        const nat2 = tupleOf(passIn(s, tcp4(CLIENT, 33002, E1, 80, TCP_SYN), O_SITE, t3)).sport;
        passOut(s, tcp4(BACKEND, 8080, E1, nat2, TCP_SYN | TCP_ACK), t3);
        passIn(s, tcp4(CLIENT, 33002, E1, 80, TCP_ACK), O_SITE, t3);
        passOut(s, tcp4(BACKEND, 8080, E1, nat2, TCP_RST), t3);
        expireAll(s, t3 + tr + 1000);
        expect(s.counters().flows).toBe(0);
      });

      it('an established flow expires after tcpEstablishedMs', () => {
        const s = stage(basePolicy({ limits: { ...TEST_LIMITS, tcpEstablishedMs: 120_000 } }));
        const nat = tupleOf(passIn(s, tcp4(CLIENT, 33000, E1, 80, TCP_SYN), O_SITE)).sport;
        passOut(s, tcp4(BACKEND, 8080, E1, nat, TCP_SYN | TCP_ACK));
        expireAll(s, T0 + 119_000);
        expect(s.counters().flows).toBe(1);
        expireAll(s, T0 + 121_000);
        expect(s.counters().flows).toBe(0);
      });
    });

    describe('setPolicy', () => {
      /** flows: UDP from O_SITE to E1 and E2, UDP from a whitelisted CIDR source (origin O_OTHER) to E1 */
      function withFlows() {
        const s = stage();
        const a = tupleOf(passIn(s, udp4(CLIENT, 1001, E1, 53), O_SITE)).sport;
        const b = tupleOf(passIn(s, udp4(CLIENT, 1002, E2, 53), O_SITE)).sport;
        const c = tupleOf(passIn(s, udp4(CLIENT_CIDR, 1003, E1, 53), O_OTHER)).sport;
        const d = tupleOf(passIn(s, tcp4(CLIENT, 1004, E1, 80, TCP_SYN), O_SITE)).sport;
        expect(s.counters().flows).toBe(4);
        const alive = (): string[] => {
          const out: string[] = [];
          const tries: [string, Buffer][] = [
            ['a', udp4(BACKEND, 5353, E1, a)],
            ['b', udp4(BACKEND2, 53, E2, b)],
            ['c', udp4(BACKEND, 5353, E1, c)],
            ['d', tcp4(BACKEND, 8080, E1, d, TCP_SYN | TCP_ACK)],
          ];
          for (const [n, p] of tries) {
            // alive = translated back to its client (a packet to an address that is no longer an endpoint passes untouched)
            const b = Buffer.from(p);
            if (s.outbound(b, 0, b.length, T0) === POLICY_PASS && tupleOf(b).dst !== tupleOf(p).dst) out.push(n);
          }
          return out;
        };
        return { s, alive };
      }

      it('the same policy again keeps every flow and every counter', () => {
        const { s, alive } = withFlows();
        s.setPolicy(basePolicy(), T0);
        expect(s.counters().flows).toBe(4);
        expect(epCounters(s, 1)).toMatchObject({ flows: 3, flowsCreated: 3, packetsIn: 3 });
        expect(alive()).toEqual(['a', 'b', 'c', 'd']);
      });

      it('closing (rejecting) an endpoint cuts its flows only', () => {
        const { s, alive } = withFlows();
        const p = basePolicy();
        s.setPolicy({ ...p, endpoints: p.endpoints.map((e) => (e.id === 2 ? { ...e, open: false } : e)) }, T0);
        expect(s.counters().flows).toBe(3);
        expect(epCounters(s, 2).flows).toBe(0);
        expect(alive()).toEqual(['a', 'c', 'd']);
      });

      it('removing an endpoint cuts its flows; its address then passes unchanged', () => {
        const { s, alive } = withFlows();
        const p = basePolicy();
        s.setPolicy({ ...p, endpoints: p.endpoints.filter((e) => e.id !== 1) }, T0);
        expect(s.counters().flows).toBe(1);
        expect(alive()).toEqual(['b']);
        const q = udp4(CLIENT, 1001, E1, 53);
        const b = Buffer.from(q);
        expect(s.inbound(b, 0, b.length, O_SITE, T0)).toBe(POLICY_PASS);
        expect(b.equals(q)).toBe(true);
      });

      it('an origin no longer whitelisted loses its flows; flows admitted by source CIDR stay', () => {
        const { s, alive } = withFlows();
        const p = basePolicy();
        s.setPolicy({ ...p, endpoints: p.endpoints.map((e) => ({ ...e, origins: [O_ACL] })) }, T0);
        expect(alive()).toEqual(['c']);
        expect(s.counters().flows).toBe(1);
      });

      it('a changed endpoint address cuts its flows', () => {
        const { s, alive } = withFlows();
        const p = basePolicy();
        s.setPolicy({ ...p, endpoints: p.endpoints.map((e) => (e.id === 2 ? { ...e, address: ip4ToNumber('10.2.100.99') } : e)) }, T0);
        expect(alive()).toEqual(['a', 'c', 'd']);
        expect(s.counters().flows).toBe(3);
      });

      it('a changed backend of a port map cuts the flows using it (other endpoints keep theirs)', () => {
        const { s, alive } = withFlows();
        const p = basePolicy();
        s.setPolicy({ ...p, endpoints: p.endpoints.map((e) => (e.id === 1 ? { ...e, ports: [e.ports[0]!, { ...e.ports[1]!, backendPort: 5454 }] } : e)) }, T0);
        // the TCP flow 'd' of the same endpoint uses an unchanged map: whether it survives is the stage's choice
        expect(alive().filter((n) => n !== 'd')).toEqual(['b']);
      });

      it('changing ACLs or adding endpoints leaves the flows alone', () => {
        const { s, alive } = withFlows();
        const p = basePolicy();
        s.setPolicy({ ...p, acls: [], endpoints: [...p.endpoints, endpoint(4, '10.2.100.13')] }, T0);
        expect(alive()).toEqual(['a', 'b', 'c', 'd']);
        expect(s.counters().endpoints.map((e) => e.id).sort()).toEqual([1, 2, 3, 4]);
      });

      it('the empty policy cuts every flow and passes everything', () => {
        const { s } = withFlows();
        s.setPolicy({ endpoints: [], acls: [], limits: DEFAULT_POLICY_LIMITS }, T0);
        expect(s.counters().flows).toBe(0);
        const p = udp4(CLIENT, 1, '10.5.0.1', 1);
        expect(s.inbound(Buffer.from(p), 0, p.length, O_ACL, T0)).toBe(POLICY_PASS);
      });
    });

    describe('malformed packets', () => {
      it('bad headers to an endpoint are dropped endpointBadPacket', () => {
        const s = stage();
        const good = udp4(CLIENT, 40000, E1, 53, 'query');
        const cases: Buffer[] = [];
        const badIhl = Buffer.from(good);
        badIhl[0] = 0x44; // IHL 4 < 5
        cases.push(badIhl);
        const bigIhl = Buffer.from(good);
        bigIhl[0] = 0x4f; // 60-byte header with options overlapping the payload: L4 gone
        bigIhl.writeUInt16BE(good.length, 2);
        cases.push(Buffer.concat([bigIhl.subarray(0, 20), Buffer.alloc(20)]).subarray(0, 40)); // IHL 60 > length 40
        const longTotal = Buffer.from(good);
        longTotal.writeUInt16BE(good.length + 10, 2); // total length past the buffer
        cases.push(longTotal);
        const shortTotal = Buffer.from(good);
        shortTotal.writeUInt16BE(24, 2); // total length cuts the UDP header
        cases.push(shortTotal);
        cases.push(udp4(CLIENT, 40000, E1, 53, 'query', { frag: 0x0003 })); // a later fragment
        cases.push(tcp4(CLIENT, 1, E1, 80, TCP_SYN).subarray(0, 30)); // truncated TCP header
        for (const p of cases) {
          const b = Buffer.from(p);
          expect(s.inbound(b, 0, b.length, O_SITE, T0)).toBe(code('endpointBadPacket'));
        }
        expect(epCounters(s, 1).drops.endpointBadPacket).toBe(cases.length);
        expect(s.counters().flows).toBe(0);
        const later = udp4(BACKEND, 5353, E1, 2000, 'x', { frag: 0x0010 });
        expect(s.outbound(Buffer.from(later), 0, later.length, T0)).toBe(code('endpointBadPacket'));
      });

      it('a first fragment (MF set, offset 0) is translated like the rest', () => {
        const s = stage();
        const p = udp4(CLIENT, 40000, E1, 53, 'part one', { frag: 0x2000 });
        const t = passIn(s, p, O_SITE);
        expect(tupleOf(t)).toMatchObject({ src: E1, dst: BACKEND, dport: 5353 });
        expect(ipChecksumOk(t)).toBe(true);
        expect(l4ChecksumOk(t)).toBe(true);
      });

      it('IP options are skipped: ports found after them, checksums correct', () => {
        const s = stage();
        const t = passIn(s, udp4(CLIENT, 40000, E1, 53, 'opts', { options: 8 }), O_SITE);
        expect(tupleOf(t)).toMatchObject({ src: E1, dst: BACKEND, dport: 5353 });
        expect(allChecksumsOk(t)).toBe(true);
        const r = passOut(s, udp4(BACKEND, 5353, E1, tupleOf(t).sport, 'back', { options: 4 }));
        expect(tupleOf(r)).toEqual({ src: E1, dst: CLIENT, proto: PROTO_UDP, sport: 53, dport: 40000 });
        expect(allChecksumsOk(r)).toBe(true);
      });

      it('short and garbage packets never throw and never create flows', () => {
        const s = stage();
        const good = udp4(CLIENT, 40000, E1, 53, 'query');
        for (let n = 0; n <= good.length; n++) {
          const b = Buffer.from(good.subarray(0, n));
          const v = s.inbound(b, 0, n, O_SITE, T0);
          expect(v).toBeGreaterThanOrEqual(0);
          // from 20 bytes on the destination is readable: an endpoint's packet cut short is a drop
          if (n >= 20) expect(v === POLICY_PASS ? n === good.length : v > 0).toBe(true);
          expect(s.outbound(Buffer.from(good.subarray(0, n)), 0, n, T0)).toBeGreaterThanOrEqual(0);
        }
        expect(s.counters().flows).toBe(1);
        const pad = Buffer.alloc(64);
        good.copy(pad, 16);
        expect(s.inbound(pad, 16, good.length, O_SITE, T0)).toBe(POLICY_PASS); // at an offset inside a bigger buffer
        expect(pad.subarray(0, 16).every((x) => x === 0) && pad.subarray(16 + good.length).every((x) => x === 0)).toBe(true);
      });
    });

    describe('properties (fast-check)', () => {
      it('random bytes never throw and give a known verdict, inbound and outbound', () => {
        const s = stage();
        const maxCode = POLICY_DROPS.length;
        fc.assert(
          fc.property(fc.uint8Array({ minLength: 0, maxLength: 120 }), fc.constantFrom(0, O_SITE, O_ACL, O_OTHER), (bytes, origin) => {
            const b = Buffer.from(bytes);
            const v = s.inbound(b, 0, b.length, origin, T0);
            const w = s.outbound(Buffer.from(bytes), 0, bytes.length, T0);
            return v >= 0 && v <= maxCode && w >= 0 && w <= maxCode;
          }),
          { numRuns: 2000 },
        );
      });

      it('random mutations of endpoint packets and ICMP errors never throw', () => {
        const s = stage();
        const base = passIn(s, udp4(CLIENT, 40000, E1, 53, 'query'), O_SITE);
        const seeds = [udp4(CLIENT, 40000, E1, 53, 'query'), tcp4(CLIENT, 33000, E1, 80, TCP_SYN), icmpError4(CLIENT, E1, 3, 3, passOut(s, replyTo(base))), icmpError4(BACKEND, E1, 3, 3, base), icmpError4(BACKEND, E1, 11, 0, base, 28)];
        fc.assert(
          fc.property(fc.nat(seeds.length - 1), fc.array(fc.tuple(fc.nat(80), fc.nat(255)), { maxLength: 6 }), fc.nat(80), (which, flips, cut) => {
            const b = Buffer.from(seeds[which]!);
            for (const [i, v] of flips) if (i < b.length) b[i] = v;
            const n = Math.min(b.length, Math.max(0, b.length - cut));
            const v1 = s.inbound(Buffer.from(b), 0, n, O_SITE, T0);
            const v2 = s.outbound(b, 0, n, T0);
            return v1 >= 0 && v2 >= 0;
          }),
          { numRuns: 2000 },
        );
      });

      it('translate and reverse restore the 5-tuple (TCP and UDP, any client and ports)', () => {
        const s = stage(basePolicy({ limits: { ...TEST_LIMITS, maxFlows: 65536 } }));
        fc.assert(
          fc.property(fc.integer({ min: 0x0a010000, max: 0x0a01ffff }), fc.integer({ min: 1, max: 65535 }), fc.boolean(), fc.boolean(), (addr, sport, isTcp, zero) => {
            const client = numberToIp4(addr);
            const p = isTcp ? tcp4(client, sport, E1, 80, TCP_SYN, 'hi') : udp4(client, sport, E1, 53, 'hi', { zeroChecksum: zero });
            const t = Buffer.from(p);
            if (s.inbound(t, 0, t.length, O_SITE, T0) !== POLICY_PASS) return false;
            if (!allChecksumsOk(t)) return false;
            const r = Buffer.from(replyTo(t, 'yo', TCP_SYN | TCP_ACK));
            if (s.outbound(r, 0, r.length, T0) !== POLICY_PASS) return false;
            const back = tupleOf(r);
            const orig = tupleOf(p);
            return allChecksumsOk(r) && back.src === orig.dst && back.dst === orig.src && back.sport === orig.dport && back.dport === orig.sport && back.proto === orig.proto;
          }),
          { numRuns: 500 },
        );
      });
    });
  });
}

// ---------------------------------------------------------------- IPv6 helpers (ACL cases only)

export const CLIENT6 = 'fd00:1::5';

function ip6Bytes(text: string): Buffer {
  return Buffer.from(v6Rule(`${text}/128`).addr);
}

export function ip6(src: string, dst: string, nextHeader: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(40 + payload.length);
  b[0] = 0x60;
  b.writeUInt16BE(payload.length, 4);
  b[6] = nextHeader;
  b[7] = 64;
  ip6Bytes(src).copy(b, 8);
  ip6Bytes(dst).copy(b, 24);
  payload.copy(b, 40);
  return b;
}

export function udpPayload6(sport: number, dport: number): Buffer {
  const u = Buffer.alloc(12);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(12, 4);
  return u;
}

export function tcpPayload6(sport: number, dport: number): Buffer {
  const t = Buffer.alloc(20);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t[12] = 5 << 4;
  t[13] = TCP_SYN;
  return t;
}
