// The C++ policy stage (src/native/core/policy.cc through the test addon's PolicyCore, wrapped as a
// PolicyStageApi by src/dataplane/native-policy.ts): every ACL rule and drop reason of
// src/vpcep/policy.ts, endpoint translation both ways with checksums verified by full recompute,
// ICMP errors about flows, TCP flow creation and states, timeouts with explicit `now`, the flow
// limit, NAT port exhaustion, setPolicy cutting only the affected flows, and malformed packets.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { NativePolicyStage } from '../../../../src/dataplane/native-policy.js';
import { policyScenarios } from '../../../helpers/policy-scenarios.js';
import {
  DEFAULT_POLICY_LIMITS,
  POLICY_DROPS,
  POLICY_PASS,
  ip4ToNumber,
  policyDropCode,
  type DataPathPolicy,
  type EndpointRule,
  type PolicyLimits,
} from '../../../../src/vpcep/policy.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  checksumsValid,
  icmpEcho,
  icmpError,
  ip4Packet,
  ip6Packet,
  tcp4,
  tupleOf,
  udp4,
} from './policy-packets.js';

const EP = '10.2.100.10';
const EP2 = '10.2.100.11';
const BACKEND = '10.3.0.10';
const CLIENT = '10.1.0.5';
const SITE = 7; // a VPN connection's origin, whitelisted
const OTHER = 8; // another origin, not whitelisted
const LIMITED = 20; // an origin with an ACL
const T0 = 1_000_000;

function prefix4(text: string): { addr: number; len: number } {
  const [a, l] = text.split('/');
  return { addr: ip4ToNumber(a!), len: Number(l) };
}

function endpoint(over: Partial<EndpointRule> = {}): EndpointRule {
  return {
    id: 1,
    address: ip4ToNumber(EP),
    open: true,
    ports: [
      { protocol: 6, servicePort: 80, backendAddr: ip4ToNumber(BACKEND), backendPort: 8080 },
      { protocol: 17, servicePort: 53, backendAddr: ip4ToNumber(BACKEND), backendPort: 5353 },
    ],
    origins: [SITE],
    sources: [prefix4('10.9.0.0/16')],
    ...over,
  };
}

const V6NET = Buffer.from('20010db8000000000000000000000000', 'hex');

function policy(over: Partial<DataPathPolicy> = {}, limits: Partial<PolicyLimits> = {}): DataPathPolicy {
  return {
    endpoints: [endpoint()],
    acls: [
      {
        origin: LIMITED,
        rules: [
          { family: 4, addr: Buffer.from([10, 2, 0, 0]), len: 16, protocol: 0, portLo: 0, portHi: 65535 },
          { family: 4, addr: Buffer.from([10, 4, 0, 0]), len: 16, protocol: 6, portLo: 443, portHi: 443 },
          { family: 4, addr: Buffer.from([10, 5, 0, 0]), len: 16, protocol: 17, portLo: 1000, portHi: 2000 },
          { family: 6, addr: V6NET, len: 32, protocol: 0, portLo: 0, portHi: 65535 },
        ],
      },
      { origin: 21, rules: [] },
    ],
    limits: { ...DEFAULT_POLICY_LIMITS, ...limits },
    ...over,
  };
}

function stage(p: DataPathPolicy = policy()): NativePolicyStage {
  const s = new NativePolicyStage();
  s.setPolicy(p, T0);
  return s;
}

const code = policyDropCode;

function inb(s: NativePolicyStage, p: Buffer, origin: number, now = T0): number {
  return s.inbound(p, 0, p.length, origin, now);
}

function outb(s: NativePolicyStage, p: Buffer, now = T0): number {
  return s.outbound(p, 0, p.length, now);
}

/** A UDP request through the endpoint; returns the NAT port it got. */
function udpFlow(s: NativePolicyStage, sport: number, origin = SITE, client = CLIENT, now = T0): number {
  const p = udp4(client, sport, EP, 53);
  expect(inb(s, p, origin, now)).toBe(POLICY_PASS);
  return tupleOf(p).sport;
}

describe('native policy stage: ACLs by origin', () => {
  it('passes what a rule allows (prefix, protocol, port range) and drops the rest as aclDenied', () => {
    const s = stage();
    expect(inb(s, udp4(CLIENT, 1, '10.2.3.4', 9), LIMITED)).toBe(POLICY_PASS);
    expect(inb(s, tcp4(CLIENT, 1, '10.4.0.1', 443, TCP_SYN), LIMITED)).toBe(POLICY_PASS);
    expect(inb(s, tcp4(CLIENT, 1, '10.4.0.1', 444, TCP_SYN), LIMITED)).toBe(code('aclDenied'));
    expect(inb(s, udp4(CLIENT, 1, '10.4.0.1', 443), LIMITED)).toBe(code('aclDenied')); // rule is TCP only
    expect(inb(s, udp4(CLIENT, 1, '10.5.0.1', 1000), LIMITED)).toBe(POLICY_PASS);
    expect(inb(s, udp4(CLIENT, 1, '10.5.0.1', 2000), LIMITED)).toBe(POLICY_PASS);
    expect(inb(s, udp4(CLIENT, 1, '10.5.0.1', 2001), LIMITED)).toBe(code('aclDenied'));
    expect(inb(s, icmpEcho(CLIENT, '10.4.0.1'), LIMITED)).toBe(code('aclDenied'));
    expect(inb(s, icmpEcho(CLIENT, '10.2.0.1'), LIMITED)).toBe(POLICY_PASS);
    expect(inb(s, udp4(CLIENT, 1, '192.168.0.1', 53), LIMITED)).toBe(code('aclDenied'));
    const c = s.counters();
    expect(c.drops.aclDenied).toBe(5);
    expect(c.aclDenied.get(LIMITED)).toBe(5);
  });

  it('applies IPv6 rules to IPv6 packets; an ACL without IPv6 rules drops them', () => {
    const s = stage();
    const src = Buffer.alloc(16, 1);
    const inNet = Buffer.from(V6NET);
    inNet[15] = 9;
    const p = ip6Packet(src, inNet, 17, 53);
    expect(inb(s, p, LIMITED)).toBe(POLICY_PASS);
    const out = ip6Packet(src, Buffer.from('20010db9000000000000000000000001', 'hex'), 17, 53);
    expect(inb(s, out, LIMITED)).toBe(code('aclDenied'));
    expect(inb(s, p, 21)).toBe(code('aclDenied'));
    expect(inb(s, p, SITE)).toBe(POLICY_PASS); // no ACL
  });

  it('IPv6: the port of a rule is read past extension headers; a malformed IPv4 header matches no rule', () => {
    const portRule = { family: 6 as const, addr: V6NET, len: 32, protocol: 17, portLo: 53, portHi: 53 };
    const s = stage(policy({ acls: [{ origin: LIMITED, rules: [portRule] }] }));
    const dst = Buffer.from(V6NET);
    dst[15] = 1;
    const plain = ip6Packet(Buffer.alloc(16, 1), dst, 17, 53);
    expect(inb(s, plain, LIMITED)).toBe(POLICY_PASS);
    // hop-by-hop options (8 bytes) before the UDP header
    const hbh = Buffer.alloc(40 + 8 + 8);
    plain.copy(hbh, 0, 0, 40);
    hbh.writeUInt16BE(16, 4);
    hbh[6] = 0; // next header: hop-by-hop
    hbh[40] = 17; // then UDP
    hbh.writeUInt16BE(53, 48 + 2);
    expect(inb(s, hbh, LIMITED)).toBe(POLICY_PASS);
    hbh.writeUInt16BE(54, 48 + 2);
    expect(inb(s, hbh, LIMITED)).toBe(code('aclDenied'));
    const s4 = stage();
    const bad = udp4(CLIENT, 1, '10.2.3.4', 9);
    bad.writeUInt16BE(bad.length + 1, 2); // total length beyond the packet
    expect(inb(s4, bad, LIMITED)).toBe(code('aclDenied'));
  });

  it('an empty rule list denies everything; origins without an ACL and origin 0 are unrestricted', () => {
    const s = stage();
    expect(inb(s, udp4(CLIENT, 1, '10.2.3.4', 9), 21)).toBe(code('aclDenied'));
    expect(inb(s, udp4(CLIENT, 1, '8.8.8.8', 9), SITE)).toBe(POLICY_PASS);
    expect(inb(s, udp4(CLIENT, 1, '8.8.8.8', 9), 0)).toBe(POLICY_PASS);
    const c = s.counters();
    expect(c.aclDenied.get(21)).toBe(1);
    expect(c.aclDenied.has(SITE)).toBe(false);
  });

  it('a port-restricted rule never matches a packet whose port it cannot read (non-first fragment, truncated)', () => {
    const s = stage();
    const frag = tcp4(CLIENT, 1, '10.4.0.1', 443, TCP_SYN);
    frag.writeUInt16BE(0x0010, 6); // offset 16 * 8
    expect(inb(s, frag, LIMITED)).toBe(code('aclDenied'));
    expect(inb(s, Buffer.from([0x45, 0, 0, 20]), LIMITED)).toBe(code('aclDenied')); // too short to read
  });

  it('per-origin aclDenied counts survive setPolicy; outbound is never filtered by ACLs', () => {
    const s = stage();
    inb(s, udp4(CLIENT, 1, '1.1.1.1', 9), LIMITED);
    s.setPolicy(policy({ acls: [] }), T0);
    expect(inb(s, udp4(CLIENT, 1, '1.1.1.1', 9), LIMITED)).toBe(POLICY_PASS);
    expect(s.counters().aclDenied.get(LIMITED)).toBe(1);
    expect(outb(s, udp4('1.1.1.1', 9, CLIENT, 1))).toBe(POLICY_PASS);
  });
});

describe('native policy stage: endpoint translation', () => {
  it('UDP: DNAT to the backend and SNAT to E:natPort, then the reply back, checksums valid', () => {
    const s = stage();
    const p = udp4(CLIENT, 40000, EP, 53, Buffer.from('query'));
    expect(inb(s, p, SITE)).toBe(POLICY_PASS);
    const t = tupleOf(p);
    expect(t).toMatchObject({ src: EP, dst: BACKEND, dport: 5353 });
    expect(t.sport).toBeGreaterThanOrEqual(1024);
    expect(checksumsValid(p)).toBe(true);
    expect(p.subarray(28).toString()).toBe('query');

    const r = udp4(BACKEND, 5353, EP, t.sport, Buffer.from('answer'));
    expect(outb(s, r)).toBe(POLICY_PASS);
    expect(tupleOf(r)).toEqual({ src: EP, sport: 53, dst: CLIENT, dport: 40000 });
    expect(checksumsValid(r)).toBe(true);

    // the same flow again: the same NAT port
    const p2 = udp4(CLIENT, 40000, EP, 53);
    expect(inb(s, p2, SITE)).toBe(POLICY_PASS);
    expect(tupleOf(p2).sport).toBe(t.sport);

    const c = s.counters();
    expect(c.flows).toBe(1);
    expect(c.endpoints).toHaveLength(1);
    expect(c.endpoints[0]).toMatchObject({ id: 1, flows: 1, flowsCreated: 1, packetsIn: 2, packetsOut: 1, bytesIn: p.length + p2.length, bytesOut: r.length });
    for (const d of POLICY_DROPS) expect(c.drops[d]).toBe(0);
  });

  it('UDP: a zero checksum stays zero both ways; other checksums stay valid over many addresses', () => {
    const s = stage();
    const p = udp4(CLIENT, 40001, EP, 53, Buffer.from('x'), true);
    expect(inb(s, p, SITE)).toBe(POLICY_PASS);
    expect(p.readUInt16BE(26)).toBe(0);
    expect(checksumsValid(p)).toBe(true);
    const r = udp4(BACKEND, 5353, EP, tupleOf(p).sport, Buffer.from('y'), true);
    expect(outb(s, r)).toBe(POLICY_PASS);
    expect(r.readUInt16BE(26)).toBe(0);
    for (let i = 0; i < 200; i++) {
      const q = udp4(`10.9.${i}.${(i * 7) & 255}`, 1 + i * 301, EP, 53, randomBytes(i % 13));
      expect(inb(s, q, 0)).toBe(POLICY_PASS); // admitted by its source (10.9.0.0/16)
      expect(checksumsValid(q)).toBe(true);
      const back = udp4(BACKEND, 5353, EP, tupleOf(q).sport, randomBytes(i % 5));
      expect(outb(s, back)).toBe(POLICY_PASS);
      expect(checksumsValid(back)).toBe(true);
    }
  });

  it('TCP: only a SYN without ACK creates a flow; the handshake and data pass both ways', () => {
    const s = stage();
    expect(inb(s, tcp4(CLIENT, 5000, EP, 80, TCP_ACK), SITE)).toBe(code('endpointNoFlow'));
    expect(inb(s, tcp4(CLIENT, 5000, EP, 80, TCP_SYN | TCP_ACK), SITE)).toBe(code('endpointNoFlow'));
    expect(inb(s, tcp4(CLIENT, 5000, EP, 80, TCP_RST), SITE)).toBe(code('endpointNoFlow'));
    const syn = tcp4(CLIENT, 5000, EP, 80, TCP_SYN);
    expect(inb(s, syn, SITE)).toBe(POLICY_PASS);
    expect(checksumsValid(syn)).toBe(true);
    const nat = tupleOf(syn);
    expect(nat).toMatchObject({ src: EP, dst: BACKEND, dport: 8080 });
    const synAck = tcp4(BACKEND, 8080, EP, nat.sport, TCP_SYN | TCP_ACK);
    expect(outb(s, synAck)).toBe(POLICY_PASS);
    expect(tupleOf(synAck)).toEqual({ src: EP, sport: 80, dst: CLIENT, dport: 5000 });
    expect(checksumsValid(synAck)).toBe(true);
    const data = tcp4(CLIENT, 5000, EP, 80, TCP_ACK, Buffer.from('GET / HTTP/1.0\r\n\r\n'));
    expect(inb(s, data, SITE)).toBe(POLICY_PASS);
    expect(checksumsValid(data)).toBe(true);
    expect(tupleOf(data).sport).toBe(nat.sport);
    const c = s.counters().endpoints[0]!;
    expect(c.drops.endpointNoFlow).toBe(3);
    expect(c.flowsCreated).toBe(1);
  });

  it('TCP and UDP NAT ports are allocated independently, unique per (endpoint, protocol) in 1024..65535', () => {
    const s = stage();
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const port = udpFlow(s, 1000 + i);
      expect(port).toBeGreaterThanOrEqual(1024);
      expect(seen.has(port)).toBe(false);
      seen.add(port);
    }
    const syn = tcp4(CLIENT, 1000, EP, 80, TCP_SYN);
    expect(inb(s, syn, SITE)).toBe(POLICY_PASS);
    expect(tupleOf(syn).sport).toBeGreaterThanOrEqual(1024);
  });

  it('the same client address and port from two origins are two flows', () => {
    const s = stage(policy({ endpoints: [endpoint({ origins: [SITE, OTHER] })] }));
    const a = udpFlow(s, 777, SITE);
    const b = udpFlow(s, 777, OTHER);
    expect(a).not.toBe(b);
    expect(s.counters().flows).toBe(2);
  });
});

describe('native policy stage: endpoint drop reasons', () => {
  it('endpointClosed while pending or rejected; no flow is kept', () => {
    const s = stage(policy({ endpoints: [endpoint({ open: false })] }));
    expect(inb(s, udp4(CLIENT, 1, EP, 53), SITE)).toBe(code('endpointClosed'));
    expect(inb(s, tcp4(CLIENT, 1, EP, 80, TCP_SYN), SITE)).toBe(code('endpointClosed'));
    const c = s.counters();
    expect(c.flows).toBe(0);
    expect(c.drops.endpointClosed).toBe(2);
    expect(c.endpoints[0]!.drops.endpointClosed).toBe(2);
    // and the reply direction has no flow
    expect(outb(s, udp4(BACKEND, 5353, EP, 1024))).toBe(code('endpointNoFlow'));
  });

  it('endpointDenied: an origin not whitelisted from a source outside every CIDR; a CIDR admits any origin', () => {
    const s = stage();
    expect(inb(s, udp4(CLIENT, 1, EP, 53), OTHER)).toBe(code('endpointDenied'));
    expect(inb(s, udp4(CLIENT, 1, EP, 53), 0)).toBe(code('endpointDenied'));
    expect(inb(s, udp4('10.9.1.1', 1, EP, 53), OTHER)).toBe(POLICY_PASS);
    expect(inb(s, udp4('10.9.1.1', 2, EP, 53), 0)).toBe(POLICY_PASS);
    expect(s.counters().drops.endpointDenied).toBe(2);
  });

  it('endpointNoPort: no port map for (protocol, port), ICMP that is not an error about a flow, other protocols', () => {
    const s = stage();
    expect(inb(s, udp4(CLIENT, 1, EP, 80), SITE)).toBe(code('endpointNoPort')); // 80 is TCP only
    expect(inb(s, tcp4(CLIENT, 1, EP, 53, TCP_SYN), SITE)).toBe(code('endpointNoPort'));
    expect(inb(s, tcp4(CLIENT, 1, EP, 443, TCP_SYN), SITE)).toBe(code('endpointNoPort'));
    expect(inb(s, icmpEcho(CLIENT, EP), SITE)).toBe(code('endpointNoPort'));
    expect(inb(s, ip4Packet(CLIENT, EP, 47, Buffer.alloc(8)), SITE)).toBe(code('endpointNoPort'));
    // an ICMP error about something that is no flow
    const fake = udp4(EP, 53, CLIENT, 999);
    expect(inb(s, icmpError(3, 3, CLIENT, EP, fake), SITE)).toBe(code('endpointNoPort'));
    expect(s.counters().endpoints[0]!.drops.endpointNoPort).toBe(6);
  });

  it('endpoint traffic ignores the origin\'s ACL (the whitelist governs it)', () => {
    const s = stage(policy({ endpoints: [endpoint({ origins: [LIMITED] })], acls: [{ origin: LIMITED, rules: [] }] }));
    expect(inb(s, udp4(CLIENT, 1, EP, 53), LIMITED)).toBe(POLICY_PASS);
    expect(inb(s, udp4(CLIENT, 1, '10.2.0.1', 53), LIMITED)).toBe(code('aclDenied'));
  });

  it('outbound: a reply to E:natPort from anyone but the flow\'s backend address and port is endpointNoFlow', () => {
    const s = stage();
    const nat = udpFlow(s, 1);
    expect(outb(s, udp4('10.3.0.99', 5353, EP, nat))).toBe(code('endpointNoFlow'));
    expect(outb(s, udp4(BACKEND, 5354, EP, nat))).toBe(code('endpointNoFlow'));
    expect(outb(s, udp4(BACKEND, 5353, EP, nat))).toBe(POLICY_PASS);
  });

  it('a malformed header to a closed endpoint is endpointBadPacket (the header is checked first)', () => {
    const s = stage(policy({ endpoints: [endpoint({ open: false })] }));
    const p = udp4(CLIENT, 1, EP, 53);
    p.writeUInt16BE(p.length + 4, 2);
    expect(inb(s, p, SITE)).toBe(code('endpointBadPacket'));
  });

  it('outbound: endpointNoFlow for an unknown NAT port, a non-error ICMP and other protocols to E', () => {
    const s = stage();
    expect(outb(s, udp4(BACKEND, 5353, EP, 4242))).toBe(code('endpointNoFlow'));
    expect(outb(s, tcp4(BACKEND, 8080, EP, 4242, TCP_SYN | TCP_ACK))).toBe(code('endpointNoFlow'));
    expect(outb(s, icmpEcho(BACKEND, EP))).toBe(code('endpointNoFlow'));
    expect(outb(s, ip4Packet(BACKEND, EP, 47, Buffer.alloc(8)))).toBe(code('endpointNoFlow'));
    expect(outb(s, udp4(BACKEND, 5353, '10.3.0.99', 4242))).toBe(POLICY_PASS); // not an endpoint
    expect(s.counters().drops.endpointNoFlow).toBe(4);
  });
});

describe('native policy stage: ICMP errors about flows', () => {
  it('an error from the VPC quoting E:natPort -> backend goes to the client with the quote translated back', () => {
    const s = stage();
    const req = udp4(CLIENT, 40000, EP, 53, Buffer.from('q'));
    expect(inb(s, req, SITE)).toBe(POLICY_PASS); // now E:nat -> backend:5353, as the backend saw it
    const nat = tupleOf(req).sport;
    const err = icmpError(3, 3, BACKEND, EP, req);
    expect(outb(s, err)).toBe(POLICY_PASS);
    expect(tupleOf(err, true)).toEqual({ src: CLIENT, sport: 40000, dst: EP, dport: 53 });
    expect(err.readUInt32BE(16)).toBe(ip4ToNumber(CLIENT));
    expect(err.readUInt32BE(12)).toBe(ip4ToNumber(BACKEND));
    expect(checksumsValid(err)).toBe(true);
    // the quoted UDP checksum is what the client's own packet carried (a full quote of it)
    const orig = udp4(CLIENT, 40000, EP, 53, Buffer.from('q'));
    expect(err.readUInt16BE(20 + 8 + 26)).toBe(orig.readUInt16BE(26));
    expect(nat).toBeGreaterThanOrEqual(1024);
  });

  it('a quote longer than 8 bytes (TCP, checksum included) and time exceeded / parameter problem', () => {
    const s = stage();
    const syn = tcp4(CLIENT, 6000, EP, 80, TCP_SYN);
    const pristine = Buffer.from(syn);
    expect(inb(s, syn, SITE)).toBe(POLICY_PASS);
    for (const type of [3, 11, 12]) {
      const err = icmpError(type, 0, '10.3.0.1', EP, syn, syn.length);
      expect(outb(s, err)).toBe(POLICY_PASS);
      expect(checksumsValid(err)).toBe(true);
      expect(err.subarray(28)).toEqual(pristine); // exactly the client's packet again
    }
  });

  it('drops errors whose quote does not match the flow', () => {
    const s = stage();
    const req = udp4(CLIENT, 40000, EP, 53);
    inb(s, req, SITE);
    const wrong = Buffer.from(req);
    wrong.writeUInt16BE(5354, 22); // another backend port
    expect(outb(s, icmpError(3, 3, BACKEND, EP, wrong))).toBe(code('endpointNoFlow'));
    const short = icmpError(3, 3, BACKEND, EP, req, 20 + 2); // no room for the ports
    expect(outb(s, short)).toBe(code('endpointNoFlow'));
  });

  it('a client\'s ICMP error about a flow\'s packet reaches the backend translated like the flow', () => {
    const s = stage();
    const req = udp4(CLIENT, 40000, EP, 53);
    inb(s, req, SITE);
    const nat = tupleOf(req).sport;
    const reply = udp4(BACKEND, 5353, EP, nat);
    expect(outb(s, reply)).toBe(POLICY_PASS); // EP:53 -> CLIENT:40000 as the client sees it
    const err = icmpError(3, 3, CLIENT, EP, reply, reply.length);
    expect(inb(s, err, SITE)).toBe(POLICY_PASS);
    expect(err.readUInt32BE(12)).toBe(ip4ToNumber(EP));
    expect(err.readUInt32BE(16)).toBe(ip4ToNumber(BACKEND));
    expect(tupleOf(err, true)).toEqual({ src: BACKEND, sport: 5353, dst: EP, dport: nat });
    expect(checksumsValid(err)).toBe(true);
    // from another origin it is not that flow's
    expect(inb(s, icmpError(3, 3, '10.9.0.1', EP, udp4(EP, 53, CLIENT, 40000)), OTHER)).toBe(code('endpointNoPort'));
  });
});

describe('native policy stage: flow table', () => {
  it('1,000 flows get distinct NAT ports and each reply finds its client', () => {
    const s = stage();
    const nat: number[] = [];
    for (let i = 0; i < 1000; i++) nat.push(udpFlow(s, 10000 + i, SITE, `10.1.${i >> 8}.${i & 255}`));
    expect(new Set(nat).size).toBe(1000);
    for (let i = 0; i < 1000; i++) {
      const r = udp4(BACKEND, 5353, EP, nat[i]!);
      expect(outb(s, r)).toBe(POLICY_PASS);
      expect(tupleOf(r)).toEqual({ src: EP, sport: 53, dst: `10.1.${i >> 8}.${i & 255}`, dport: 10000 + i });
    }
    expect(s.counters().flows).toBe(1000);
  });

  it('maxFlows: the next new flow is endpointTableFull, existing flows are unharmed, expiry makes room', () => {
    const s = stage(policy({}, { maxFlows: 10 }));
    const nat: number[] = [];
    for (let i = 0; i < 10; i++) nat.push(udpFlow(s, 2000 + i, SITE, CLIENT, T0 + i));
    expect(inb(s, udp4(CLIENT, 3000, EP, 53), SITE, T0 + 20)).toBe(code('endpointTableFull'));
    expect(inb(s, tcp4(CLIENT, 3000, EP, 80, TCP_SYN), SITE, T0 + 20)).toBe(code('endpointTableFull'));
    for (let i = 0; i < 10; i++) {
      expect(inb(s, udp4(CLIENT, 2000 + i, EP, 53), SITE, T0 + 20)).toBe(POLICY_PASS);
      expect(outb(s, udp4(BACKEND, 5353, EP, nat[i]!), T0 + 20)).toBe(POLICY_PASS);
    }
    const c = s.counters();
    expect(c.drops.endpointTableFull).toBe(2);
    expect(c.endpoints[0]!.drops.endpointTableFull).toBe(2);
    s.expire(T0 + 20 + DEFAULT_POLICY_LIMITS.udpMs + 1);
    expect(s.counters().flows).toBe(0);
    expect(inb(s, udp4(CLIENT, 3000, EP, 53), SITE, T0 + 70_000)).toBe(POLICY_PASS);
  });

  it('NAT ports run out after 64,512 flows per (endpoint, protocol)', () => {
    const s = stage(policy({}, { maxFlows: 100_000 }));
    const p = udp4(CLIENT, 1, EP, 53);
    const pristine = Buffer.from(p);
    let passed = 0;
    for (let i = 0; i < 64_513; i++) {
      pristine.copy(p);
      p.writeUInt32BE(ip4ToNumber('10.1.0.0') + (i >>> 8), 12);
      p.writeUInt16BE(1 + (i & 255), 20);
      p.writeUInt16BE(0, 26);
      if (inb(s, p, SITE) === POLICY_PASS) passed++;
    }
    expect(passed).toBe(64_512);
    expect(s.counters().drops.endpointTableFull).toBe(1);
    // TCP has its own ports
    expect(inb(s, tcp4(CLIENT, 1, EP, 80, TCP_SYN), SITE)).toBe(POLICY_PASS);
  });

  it('an idle flow is not used even before expire() swept it: a new flow (new NAT port) replaces it', () => {
    const s = stage(policy({}, { udpMs: 1_000 }));
    const nat = udpFlow(s, 1, SITE, CLIENT, T0);
    expect(outb(s, udp4(BACKEND, 5353, EP, nat), T0 + 1_001)).toBe(code('endpointNoFlow'));
    expect(s.counters().flows).toBe(0);
    expect(udpFlow(s, 1, SITE, CLIENT, T0 + 1_002)).not.toBe(nat);
  });

  it('a SYN after a FIN on the same 4-tuple reopens the flow with the same NAT port', () => {
    const s = stage(policy({}, { tcpTransitoryMs: 1_000, tcpEstablishedMs: 100_000 }));
    const syn = tcp4(CLIENT, 7, EP, 80, TCP_SYN);
    inb(s, syn, SITE, T0);
    const nat = tupleOf(syn).sport;
    outb(s, tcp4(BACKEND, 8080, EP, nat, TCP_SYN | TCP_ACK), T0);
    inb(s, tcp4(CLIENT, 7, EP, 80, TCP_FIN | TCP_ACK), SITE, T0);
    const again = tcp4(CLIENT, 7, EP, 80, TCP_SYN);
    expect(inb(s, again, SITE, T0 + 10)).toBe(POLICY_PASS);
    expect(tupleOf(again).sport).toBe(nat);
    outb(s, tcp4(BACKEND, 8080, EP, nat, TCP_SYN | TCP_ACK), T0 + 10);
    s.expire(T0 + 10 + 1_001); // established again: the transitory timeout no longer applies
    expect(s.counters().flows).toBe(1);
  });

  it('UDP flows expire when idle longer than udpMs (not at exactly udpMs); traffic keeps them alive', () => {
    const s = stage(policy({}, { udpMs: 30_000 }));
    const nat = udpFlow(s, 1, SITE, CLIENT, T0);
    udpFlow(s, 2, SITE, CLIENT, T0);
    s.expire(T0 + 20_000);
    expect(outb(s, udp4(BACKEND, 5353, EP, nat), T0 + 20_000)).toBe(POLICY_PASS); // refreshes flow 1
    s.expire(T0 + 30_000);
    expect(s.counters().flows).toBe(2);
    s.expire(T0 + 30_001);
    expect(s.counters().flows).toBe(1);
    s.expire(T0 + 50_001);
    expect(s.counters().flows).toBe(0);
    expect(outb(s, udp4(BACKEND, 5353, EP, nat), T0 + 50_002)).toBe(code('endpointNoFlow'));
  });

  it('TCP: transitory until a packet each way, established after, transitory again after FIN or RST', () => {
    const lim = { tcpTransitoryMs: 1_000, tcpEstablishedMs: 100_000 };
    const s = stage(policy({}, lim));
    // A: only a SYN, never answered
    const a = tcp4(CLIENT, 1, EP, 80, TCP_SYN);
    inb(s, a, SITE, T0);
    // B: established
    const b = tcp4(CLIENT, 2, EP, 80, TCP_SYN);
    inb(s, b, SITE, T0);
    expect(outb(s, tcp4(BACKEND, 8080, EP, tupleOf(b).sport, TCP_SYN | TCP_ACK), T0)).toBe(POLICY_PASS);
    // C: established, then FIN
    const c = tcp4(CLIENT, 3, EP, 80, TCP_SYN);
    inb(s, c, SITE, T0);
    outb(s, tcp4(BACKEND, 8080, EP, tupleOf(c).sport, TCP_SYN | TCP_ACK), T0);
    expect(inb(s, tcp4(CLIENT, 3, EP, 80, TCP_FIN | TCP_ACK), SITE, T0)).toBe(POLICY_PASS);
    // D: established, then RST from the backend
    const d = tcp4(CLIENT, 4, EP, 80, TCP_SYN);
    inb(s, d, SITE, T0);
    outb(s, tcp4(BACKEND, 8080, EP, tupleOf(d).sport, TCP_SYN | TCP_ACK), T0);
    expect(outb(s, tcp4(BACKEND, 8080, EP, tupleOf(d).sport, TCP_RST), T0)).toBe(POLICY_PASS);
    expect(s.counters().flows).toBe(4);
    s.expire(T0 + 1_001);
    expect(s.counters().flows).toBe(1); // only B
    expect(inb(s, tcp4(CLIENT, 2, EP, 80, TCP_ACK), SITE, T0 + 1_001)).toBe(POLICY_PASS);
    expect(inb(s, tcp4(CLIENT, 1, EP, 80, TCP_ACK), SITE, T0 + 1_001)).toBe(code('endpointNoFlow'));
    s.expire(T0 + 1_001 + 100_000);
    expect(s.counters().flows).toBe(1);
    s.expire(T0 + 1_002 + 100_000);
    expect(s.counters().flows).toBe(0);
  });
});

describe('native policy stage: setPolicy', () => {
  function twoEndpoints(e1: Partial<EndpointRule> = {}, e2: Partial<EndpointRule> = {}, acls = policy().acls): DataPathPolicy {
    return policy({ endpoints: [endpoint(e1), endpoint({ id: 2, address: ip4ToNumber(EP2), ...e2 })], acls });
  }

  function flowTo(s: NativePolicyStage, ep: string, sport: number, origin = SITE): number {
    const p = udp4(CLIENT, sport, ep, 53);
    expect(inb(s, p, origin)).toBe(POLICY_PASS);
    return tupleOf(p).sport;
  }

  function alive(s: NativePolicyStage, ep: string, nat: number): boolean {
    return outb(s, udp4(BACKEND, 5353, ep, nat)) === POLICY_PASS;
  }

  it('keeps flows of unchanged endpoints (same NAT port) and counters by endpoint id', () => {
    const s = stage(twoEndpoints());
    const n1 = flowTo(s, EP, 1);
    const n2 = flowTo(s, EP2, 1);
    s.setPolicy(twoEndpoints({ sources: [] }, {}, []), T0 + 1);
    expect(alive(s, EP, n1)).toBe(true);
    expect(alive(s, EP2, n2)).toBe(true);
    const c = s.counters();
    expect(c.flows).toBe(2);
    expect(c.endpoints.map((e) => [e.id, e.flowsCreated, e.packetsIn])).toEqual([[1, 1, 1], [2, 1, 1]]);
    const again = udp4(CLIENT, 1, EP, 53);
    inb(s, again, SITE);
    expect(tupleOf(again).sport).toBe(n1);
  });

  it('a smaller maxFlows keeps the most recently active flows that fit', () => {
    const s = stage();
    const nat = [1, 2, 3, 4].map((i) => udpFlow(s, i, SITE, CLIENT, T0 + i));
    s.setPolicy(policy({}, { maxFlows: 2 }), T0 + 10);
    expect(s.counters().flows).toBe(2);
    expect(outb(s, udp4(BACKEND, 5353, EP, nat[3]!), T0 + 11)).toBe(POLICY_PASS);
    expect(outb(s, udp4(BACKEND, 5353, EP, nat[2]!), T0 + 11)).toBe(POLICY_PASS);
    expect(outb(s, udp4(BACKEND, 5353, EP, nat[0]!), T0 + 11)).toBe(code('endpointNoFlow'));
  });

  it('cuts the flows of a removed endpoint only', () => {
    const s = stage(twoEndpoints());
    const n1 = flowTo(s, EP, 1);
    const n2 = flowTo(s, EP2, 1);
    s.setPolicy(policy({ endpoints: [endpoint({ id: 2, address: ip4ToNumber(EP2) })] }), T0 + 1);
    expect(alive(s, EP2, n2)).toBe(true);
    expect(outb(s, udp4(BACKEND, 5353, EP, n1))).toBe(POLICY_PASS); // EP is no endpoint any more: plain routing
    expect(s.counters().flows).toBe(1);
    expect(s.counters().endpoints.map((e) => e.id)).toEqual([2]);
  });

  it('cuts flows of a closed endpoint, a changed address, a changed port map, a removed origin', () => {
    const cases: Array<[string, Partial<EndpointRule>]> = [
      ['closed', { open: false }],
      ['address', { address: ip4ToNumber('10.2.100.50') }],
      ['backend port', { ports: [{ protocol: 17, servicePort: 53, backendAddr: ip4ToNumber(BACKEND), backendPort: 5354 }] }],
      ['backend address', { ports: [{ protocol: 17, servicePort: 53, backendAddr: ip4ToNumber('10.3.0.11'), backendPort: 5353 }] }],
      ['origin', { origins: [] }],
    ];
    for (const [what, change] of cases) {
      const s = stage(twoEndpoints());
      const n1 = flowTo(s, EP, 1);
      const n2 = flowTo(s, EP2, 1);
      s.setPolicy(twoEndpoints(change), T0 + 1);
      expect(s.counters().flows, what).toBe(1);
      expect(alive(s, EP2, n2), what).toBe(true);
      if (what !== 'address') expect(outb(s, udp4(BACKEND, 5353, EP, n1)), what).toBe(code('endpointNoFlow'));
    }
  });

  it('keeps a flow admitted by its source CIDR when its origin leaves the whitelist; a TCP flow survives adding a port map', () => {
    const s = stage();
    const viaCidr = udp4('10.9.0.7', 1, EP, 53);
    inb(s, viaCidr, SITE);
    const syn = tcp4(CLIENT, 9, EP, 80, TCP_SYN);
    inb(s, syn, SITE);
    const ports = [...endpoint().ports, { protocol: 6 as const, servicePort: 443, backendAddr: ip4ToNumber(BACKEND), backendPort: 8443 }];
    s.setPolicy(policy({ endpoints: [endpoint({ ports, origins: [] })] }), T0 + 1);
    expect(s.counters().flows).toBe(1); // the CIDR flow; the TCP flow's origin is gone
    s.setPolicy(policy({ endpoints: [endpoint({ ports })] }), T0 + 2);
    expect(outb(s, udp4(BACKEND, 5353, EP, tupleOf(viaCidr).sport))).toBe(POLICY_PASS);
  });

  it('an empty policy cuts every flow and passes everything', () => {
    const s = stage();
    udpFlow(s, 1);
    s.setPolicy({ endpoints: [], acls: [], limits: DEFAULT_POLICY_LIMITS }, T0 + 1);
    expect(s.counters().flows).toBe(0);
    expect(inb(s, udp4(CLIENT, 1, EP, 53), SITE)).toBe(POLICY_PASS);
    expect(outb(s, udp4(BACKEND, 5353, EP, 1024))).toBe(POLICY_PASS);
  });

  it('rejects limits out of range with VpnError ERR_INVALID_ARG, a malformed policy with a TypeError, and keeps the old one', () => {
    const s = stage();
    expect(() => s.setPolicy(policy({}, { maxFlows: 0 }), T0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => s.setPolicy(policy({}, { udpMs: -1 }), T0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    const bad = policy({ endpoints: [endpoint({ ports: [{ protocol: 1 as 6, servicePort: 1, backendAddr: 1, backendPort: 1 }] })] });
    expect(() => s.setPolicy(bad, T0)).toThrow(TypeError);
    expect(() => s.setPolicy({} as DataPathPolicy, T0)).toThrow(TypeError);
    expect(inb(s, udp4(CLIENT, 1, EP, 53), SITE)).toBe(POLICY_PASS);
  });
});

describe('native policy stage: malformed packets', () => {
  it('endpointBadPacket: bad IHL, total length beyond the buffer or below the header, non-first fragments, truncated headers', () => {
    const s = stage();
    const base = udp4(CLIENT, 1, EP, 53);
    const variants: Array<[string, (p: Buffer) => Buffer]> = [
      ['ihl 4', (p) => { p[0] = 0x44; return p; }],
      ['ihl beyond total', (p) => { p[0] = 0x4f; return p; }],
      ['total > buffer', (p) => { p.writeUInt16BE(p.length + 1, 2); return p; }],
      ['total < ihl', (p) => { p.writeUInt16BE(19, 2); return p; }],
      ['non-first fragment', (p) => { p.writeUInt16BE(0x0001, 6); return p; }],
      ['udp header cut', (p) => { p.writeUInt16BE(24, 2); return p.subarray(0, 24); }],
    ];
    for (const [what, f] of variants) expect(inb(s, f(Buffer.from(base)), SITE), what).toBe(code('endpointBadPacket'));
    const tcpCut = tcp4(CLIENT, 1, EP, 80, TCP_SYN).subarray(0, 30);
    tcpCut.writeUInt16BE(30, 2);
    expect(inb(s, tcpCut, SITE)).toBe(code('endpointBadPacket'));
    // outbound too
    const r = udp4(BACKEND, 5353, EP, 1024);
    r.writeUInt16BE(0x2001, 6);
    expect(outb(s, r)).toBe(code('endpointBadPacket'));
    expect(s.counters().endpoints[0]!.drops.endpointBadPacket).toBe(variants.length + 2);
  });

  it('a first fragment (MF, offset 0) is translated; padding after the total length is left alone', () => {
    const s = stage();
    const p = udp4(CLIENT, 1, EP, 53);
    p.writeUInt16BE(0x2000, 6); // MF
    p.writeUInt16BE(0, 10);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += p.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    p.writeUInt16BE(~sum & 0xffff, 10);
    expect(inb(s, p, SITE)).toBe(POLICY_PASS);
    expect(checksumsValid(p)).toBe(true);
    const padded = Buffer.concat([udp4(CLIENT, 2, EP, 53), Buffer.from([0xaa, 0xbb])]);
    expect(inb(s, padded, SITE)).toBe(POLICY_PASS);
    expect(padded.subarray(-2)).toEqual(Buffer.from([0xaa, 0xbb]));
  });

  it('random bytes and mutated packets only ever get a verdict, never a crash, and touch nothing outside [off, off+len)', () => {
    const s = stage(policy({}, { maxFlows: 64 }));
    const seeds = [udp4(CLIENT, 1, EP, 53), tcp4(CLIENT, 1, EP, 80, TCP_SYN), icmpError(3, 3, BACKEND, EP, udp4(EP, 1024, BACKEND, 5353))];
    for (let i = 0; i < 5000; i++) {
      let p: Buffer;
      if (i % 3 === 0) p = randomBytes(i % 80);
      else {
        p = Buffer.from(seeds[i % seeds.length]!);
        for (let k = 0; k < 1 + (i % 4); k++) p[(i * 7 + k * 13) % p.length] ^= 1 << (k % 8);
        if (i % 5 === 0) p[16] = 10, p[17] = 2, p[18] = 100, p[19] = 10; // aimed at the endpoint
      }
      const frame = Buffer.alloc(p.length + 8, 0x5a);
      p.copy(frame, 4);
      const v = i % 2 === 0 ? s.inbound(frame, 4, p.length, i % 3 === 0 ? SITE : LIMITED, T0 + i) : s.outbound(frame, 4, p.length, T0 + i);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(POLICY_DROPS.length);
      expect(frame.subarray(0, 4)).toEqual(Buffer.alloc(4, 0x5a));
      expect(frame.subarray(4 + p.length)).toEqual(Buffer.alloc(4, 0x5a));
    }
    s.expire(T0 + 10_000_000);
    expect(s.counters().flows).toBe(0);
  });
});

// The same scenario table the TypeScript stage runs (test/unit/vpcep/nat.test.ts): both stages obey src/vpcep/policy.ts alike.
policyScenarios('native', () => new NativePolicyStage());
