import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VpnError } from '../../../src/common/errors.js';
import { PolicyStage } from '../../../src/vpcep/nat.js';
import { ip4ToNumber, POLICY_PASS, policyDropCode, PROTO_UDP } from '../../../src/vpcep/policy.js';
import type { DataPathPolicy, PolicyLimits } from '../../../src/vpcep/policy.js';
import {
  BACKEND,
  basePolicy,
  CLIENT,
  E1,
  E2,
  icmpError4,
  O_ACL,
  O_SITE,
  policyScenarios,
  TCP_ACK,
  TCP_FIN,
  TCP_SYN,
  tcp4,
  TEST_LIMITS,
  tupleOf,
  udp4,
} from '../../helpers/policy-scenarios.js';

policyScenarios('PolicyStage (TypeScript)', () => new PolicyStage());

describe('PolicyStage (TypeScript): choices the contract leaves open', () => {
  const T0 = 1_000_000;
  const code = policyDropCode;

  function stage(p: DataPathPolicy = basePolicy()): PolicyStage {
    const s = new PolicyStage();
    s.setPolicy(p, T0);
    return s;
  }

  function natPortOf(s: PolicyStage, pkt: Buffer, origin = O_SITE, now = T0): number {
    const b = Buffer.from(pkt);
    expect(s.inbound(b, 0, b.length, origin, now)).toBe(POLICY_PASS);
    return tupleOf(b).sport;
  }

  it('rejects limits out of range with ERR_INVALID_ARG', () => {
    const s = new PolicyStage();
    expect(() => s.setPolicy(basePolicy({ limits: { ...TEST_LIMITS, maxFlows: 0 } }), T0)).toThrow(VpnError);
    try {
      s.setPolicy(basePolicy({ limits: { ...TEST_LIMITS, udpMs: -1 } }), T0);
    } catch (e) {
      expect((e as VpnError).code).toBe('ERR_INVALID_ARG');
    }
  });

  it('NAT ports count up from 1024 per (endpoint, protocol); a freed port is not handed out again at once', () => {
    const s = stage();
    expect(natPortOf(s, udp4(CLIENT, 1, E1, 53))).toBe(1024);
    expect(natPortOf(s, udp4(CLIENT, 2, E1, 53))).toBe(1025);
    expect(natPortOf(s, tcp4(CLIENT, 3, E1, 80, TCP_SYN))).toBe(1024);
    expect(natPortOf(s, udp4(CLIENT, 4, E2, 53))).toBe(1024);
    const later = T0 + TEST_LIMITS.udpMs + 1;
    s.expire(later); // all UDP flows gone (1024, 1025 free again)
    expect(natPortOf(s, udp4(CLIENT, 5, E1, 53), O_SITE, later)).toBe(1026);
  });

  it('all 64,512 NAT ports of (E, UDP) in use: the next UDP flow is endpointTableFull, TCP still gets ports; a freed port is reused', () => {
    const s = stage(basePolicy({ limits: { ...TEST_LIMITS, maxFlows: 70_000 } }));
    const pkt = udp4(CLIENT, 1, E1, 53, 'x', { zeroChecksum: true });
    const b = Buffer.alloc(pkt.length);
    const seen = new Uint8Array(65536);
    for (let i = 0; i < 64_512; i++) {
      pkt.copy(b);
      b.writeUInt32BE(ip4ToNumber(CLIENT) + (i >>> 16), 12);
      b.writeUInt16BE((i & 0xffff) + 1, 20);
      // the header checksum is not the stage's business on the way in; it keeps whatever delta it gets
      let bad = s.inbound(b, 0, b.length, O_SITE, T0) !== POLICY_PASS;
      const port = b.readUInt16BE(20);
      bad ||= seen[port] !== 0;
      seen[port] = 1;
      if (bad) expect.fail(`flow ${i}: not passed or NAT port ${port} reused`);
    }
    expect(seen.subarray(0, 1024).every((x) => x === 0)).toBe(true);
    const extra = udp4('10.1.200.1', 9, E1, 53);
    expect(s.inbound(Buffer.from(extra), 0, extra.length, O_SITE, T0)).toBe(code('endpointTableFull'));
    expect(natPortOf(s, tcp4(CLIENT, 1, E1, 80, TCP_SYN))).toBe(1024);
    // one UDP flow refreshed later, the rest expire: the freed ports are available again
    const keep = udp4(CLIENT, 1, E1, 53, 'x', { zeroChecksum: true });
    natPortOf(s, keep, O_SITE, T0 + 30_000);
    const later = T0 + TEST_LIMITS.udpMs + 1000;
    for (let i = 0; i < 20; i++) s.expire(later);
    expect(s.counters().endpoints.find((e) => e.id === 1)!.flows).toBe(1); // the kept UDP flow (the TCP SYN flow expired too)
    const p = natPortOf(s, extra, O_SITE, later);
    expect(p).toBeGreaterThanOrEqual(1024);
  });

  it('an idle flow is not used even before expire() swept it', () => {
    const s = stage();
    const nat = natPortOf(s, udp4(CLIENT, 40000, E1, 53));
    const r = udp4(BACKEND, 5353, E1, nat);
    expect(s.outbound(Buffer.from(r), 0, r.length, T0 + TEST_LIMITS.udpMs + 5000)).toBe(code('endpointNoFlow'));
    expect(s.counters().flows).toBe(0);
  });

  it('a changed port map cuts only the flows using it: the endpoint\'s other flows stay', () => {
    const s = stage();
    natPortOf(s, udp4(CLIENT, 1001, E1, 53));
    const tcpNat = natPortOf(s, tcp4(CLIENT, 1004, E1, 80, TCP_SYN));
    const p = basePolicy();
    s.setPolicy({ ...p, endpoints: p.endpoints.map((e) => (e.id === 1 ? { ...e, ports: [e.ports[0]!, { ...e.ports[1]!, backendPort: 5454 }] } : e)) }, T0);
    expect(s.counters().flows).toBe(1);
    const r = tcp4(BACKEND, 8080, E1, tcpNat, TCP_SYN | TCP_ACK);
    expect(s.outbound(Buffer.from(r), 0, r.length, T0)).toBe(POLICY_PASS);
  });

  it('a reply to E:natPort from anyone but the flow\'s backend is endpointNoFlow', () => {
    const s = stage();
    const nat = natPortOf(s, udp4(CLIENT, 40000, E1, 53));
    for (const p of [udp4('10.3.0.66', 5353, E1, nat), udp4(BACKEND, 5354, E1, nat)]) {
      expect(s.outbound(Buffer.from(p), 0, p.length, T0)).toBe(code('endpointNoFlow'));
    }
    const wrongTcp = tcp4(BACKEND, 8080, E1, nat, TCP_SYN | TCP_ACK);
    expect(s.outbound(Buffer.from(wrongTcp), 0, wrongTcp.length, T0)).toBe(code('endpointNoFlow')); // the flow is UDP
  });

  it('ICMP errors not about a flow: endpointNoPort inbound, endpointNoFlow outbound; ICMP to a closed endpoint: endpointClosed', () => {
    const s = stage();
    const inb = icmpError4(CLIENT, E1, 3, 3, udp4(E1, 53, CLIENT, 40000));
    expect(s.inbound(Buffer.from(inb), 0, inb.length, O_SITE, T0)).toBe(code('endpointNoPort'));
    const outb = icmpError4(BACKEND, E1, 3, 3, udp4(E1, 1024, BACKEND, 5353));
    expect(s.outbound(Buffer.from(outb), 0, outb.length, T0)).toBe(code('endpointNoFlow'));
    const truncated = icmpError4(BACKEND, E1, 3, 3, udp4(E1, 1024, BACKEND, 5353), 24);
    expect(s.outbound(Buffer.from(truncated), 0, truncated.length, T0)).toBe(code('endpointNoFlow'));
  });

  it('packets too short to hold an IPv4 header pass when no ACL applies (the data plane checks IP itself), are aclDenied under an ACL', () => {
    const s = stage();
    const short = Buffer.from([0x45, 0, 0, 10, 0, 0, 0, 0, 64, 17]);
    expect(s.inbound(short, 0, short.length, O_SITE, T0)).toBe(POLICY_PASS);
    expect(s.inbound(short, 0, short.length, O_ACL, T0)).toBe(code('aclDenied'));
    expect(s.outbound(short, 0, short.length, T0)).toBe(POLICY_PASS);
  });

  it('a SYN after FIN on the same 4-tuple reopens the flow with the same NAT port (established timeout again after replies)', () => {
    const s = stage();
    const nat = natPortOf(s, tcp4(CLIENT, 33000, E1, 80, TCP_SYN));
    natPortOf(s, tcp4(CLIENT, 33000, E1, 80, TCP_FIN | TCP_ACK));
    expect(natPortOf(s, tcp4(CLIENT, 33000, E1, 80, TCP_SYN), O_SITE, T0 + 1000)).toBe(nat);
    const sa = tcp4(BACKEND, 8080, E1, nat, TCP_SYN | TCP_ACK);
    expect(s.outbound(Buffer.from(sa), 0, sa.length, T0 + 1000)).toBe(POLICY_PASS);
    s.expire(T0 + 1000 + TEST_LIMITS.tcpTransitoryMs + 1000);
    expect(s.counters().flows).toBe(1);
  });

  it('adding a port map to an endpoint keeps its flows; a smaller maxFlows keeps the most recently active flows that fit', () => {
    const s = stage();
    const nats = [1, 2, 3].map((i) => natPortOf(s, udp4(CLIENT, 1000 + i, E1, 53), O_SITE, T0 + 10 * (3 - i))); // the first is the most recent
    const p = basePolicy();
    const e1 = p.endpoints[0]!;
    const more = { ...e1, ports: [...e1.ports, { protocol: PROTO_UDP, servicePort: 123, backendAddr: ip4ToNumber(BACKEND), backendPort: 123 }] } as const;
    s.setPolicy({ ...p, endpoints: [more, ...p.endpoints.slice(1)] }, T0);
    expect(s.counters().flows).toBe(3);
    s.setPolicy({ ...p, limits: { ...TEST_LIMITS, maxFlows: 2 } }, T0);
    expect(s.counters().flows).toBe(2);
    const alive = nats.filter((n) => {
      const r = udp4(BACKEND, 5353, E1, n);
      return s.outbound(Buffer.from(r), 0, r.length, T0) === POLICY_PASS;
    });
    expect(alive).toEqual([nats[0], nats[1]]); // the most recently active ones
    const x = udp4(CLIENT, 9999, E1, 53);
    expect(s.inbound(Buffer.from(x), 0, x.length, O_SITE, T0)).toBe(code('endpointTableFull'));
  });

  it('counters follow endpoint ids and origins across setPolicy; aclDenied of a removed ACL is kept', () => {
    const s = stage();
    natPortOf(s, udp4(CLIENT, 1, E1, 53));
    const d = udp4(CLIENT, 1, '10.9.9.9', 1);
    expect(s.inbound(Buffer.from(d), 0, d.length, O_ACL, T0)).toBe(code('aclDenied'));
    const p = basePolicy();
    s.setPolicy({ ...p, acls: [], endpoints: [...p.endpoints].reverse() }, T0);
    const c = s.counters();
    expect(c.endpoints.find((e) => e.id === 1)).toMatchObject({ flows: 1, flowsCreated: 1, packetsIn: 1 });
    expect(c.aclDenied.get(O_ACL)).toBe(1);
    expect(c.drops.aclDenied).toBe(1);
  });

  it('expire() looks at a bounded number of slots per call and gets through all of them over calls', () => {
    const s = stage(basePolicy({ limits: { ...TEST_LIMITS, maxFlows: 20_000 } }));
    for (let i = 0; i < 20_000; i++) natPortOf(s, udp4(`10.1.${i >> 8}.${i & 255}`, 1000, E1, 53));
    const later = T0 + TEST_LIMITS.udpMs + 1;
    s.expire(later);
    const after1 = s.counters().flows;
    expect(after1).toBeGreaterThan(0);
    expect(after1).toBeLessThan(20_000);
    for (let i = 0; i < 3; i++) s.expire(later);
    expect(s.counters().flows).toBe(0);
  });

  it('the flow tables agree with a model under random create / refresh / expire / lookup (backward-shift deletion)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('new', 'reply', 'tick'), fc.nat(40)), { minLength: 1, maxLength: 300 }),
        (ops) => {
          const limits: PolicyLimits = { maxFlows: 24, tcpEstablishedMs: 100, tcpTransitoryMs: 100, udpMs: 100 };
          const s = stage(basePolicy({ limits }));
          const model = new Map<number, { nat: number; last: number }>(); // client port → flow
          let now = T0;
          for (const [op, k] of ops) {
            for (const [port, f] of model) if (now - f.last > limits.udpMs) model.delete(port);
            if (op === 'tick') {
              now += k * 5;
              s.expire(now);
              continue;
            }
            const port = 2000 + k;
            const f = model.get(port);
            if (op === 'new') {
              const p = Buffer.from(udp4(CLIENT, port, E1, 53));
              const v = s.inbound(p, 0, p.length, O_SITE, now);
              if (f) {
                if (v !== POLICY_PASS || tupleOf(p).sport !== f.nat) return false;
                f.last = now;
              } else if (model.size >= limits.maxFlows) {
                if (v !== code('endpointTableFull')) return false;
              } else {
                if (v !== POLICY_PASS) return false;
                const nat = tupleOf(p).sport;
                for (const g of model.values()) if (g.nat === nat) return false;
                model.set(port, { nat, last: now });
              }
            } else if (f) {
              const r = Buffer.from(udp4(BACKEND, 5353, E1, f.nat));
              if (s.outbound(r, 0, r.length, now) !== POLICY_PASS || tupleOf(r).dport !== port) return false;
              f.last = now;
            }
          }
          // every live flow of the model answers
          for (const [port, f] of model) {
            if (now - f.last > limits.udpMs) continue;
            const r = Buffer.from(udp4(BACKEND, 5353, E1, f.nat));
            if (s.outbound(r, 0, r.length, now) !== POLICY_PASS || tupleOf(r).dport !== port) return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});
