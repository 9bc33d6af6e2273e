// The policy stage inside TsDataPlane: decrypted ESP packets pass it with their SA's origin before the
// TUN write, packets read from the TUN pass it before the route lookup, writeToTun with an origin too.
import { describe, expect, it } from 'vitest';
import { MemoryTun } from '../../../src/tun/memory-tun.js';
import { MemoryUdpNetwork } from '../../../src/net/memory-udp.js';
import { TsDataPlane } from '../../../src/dataplane/ts-data-plane.js';
import type { SaParams } from '../../../src/dataplane/data-plane.js';
import { POLICY_DROPS, PROTO_UDP } from '../../../src/vpcep/policy.js';
import type { DataPathPolicy } from '../../../src/vpcep/policy.js';
import { keys, P, SUITES } from '../esp/packets.js';
import { allChecksumsOk, BACKEND, E1, endpoint, TCP_SYN, tcp4, TEST_LIMITS, tupleOf, udp4, v4Rule } from '../../helpers/policy-scenarios.js';

async function settle(turns = 12): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

const SPI_TO_GW = 0xb0000001; // the gateway's inbound SPI
const SPI_TO_SITE = 0xa0000001;
const SITE = '192.0.2.1';
const GW = '192.0.2.2';
const SITE_NET = [P('10.1.0.0/16')];
const VPC_NET = [P('10.2.0.0/16')];
const ORIGIN = 7;
const CLIENT = '10.1.0.5';

function params(dir: 'in' | 'out', spi: number, keySeed: number, local: string, remote: string, localTs = VPC_NET, remoteTs = SITE_NET, over: Partial<SaParams> = {}): SaParams {
  const s = SUITES[0]!;
  const k = keys(s, keySeed);
  return { direction: dir, spi, encr: s.encr, encrKeyBits: s.encrKeyBits, integ: s.integ, encrKey: k.encrKey, integKey: k.integKey, localAddr: local, localPort: 4500, remoteAddr: remote, remotePort: 4500, localTs, remoteTs, ...over };
}

/** the customer's site (a plain TsDataPlane) and the gateway, whose inbound SA carries ORIGIN */
function siteAndGateway(policy: DataPathPolicy) {
  const net = new MemoryUdpNetwork();
  const tunSite = new MemoryTun({ name: 's0' });
  const tunGw = new MemoryTun({ name: 'g0' });
  const site = new TsDataPlane(tunSite, [net.bind(SITE, 4500)]);
  const gw = new TsDataPlane(tunGw, [net.bind(GW, 4500)]);
  site.installSa(params('out', SPI_TO_GW, 1, SITE, GW, SITE_NET, VPC_NET));
  gw.installSa(params('in', SPI_TO_GW, 1, GW, SITE, VPC_NET, SITE_NET, { origin: ORIGIN }));
  gw.installSa(params('out', SPI_TO_SITE, 2, GW, SITE));
  site.installSa(params('in', SPI_TO_SITE, 2, SITE, GW, SITE_NET, VPC_NET));
  site.addRoute(P('10.2.0.0/16'), SPI_TO_GW);
  gw.addRoute(P('10.1.0.0/16'), SPI_TO_SITE);
  gw.setPolicy(policy);
  return { tunSite, tunGw, site, gw };
}

const POLICY: DataPathPolicy = { endpoints: [endpoint(1, E1, { origins: [ORIGIN], sources: [] })], acls: [], limits: TEST_LIMITS };

describe('TsDataPlane with a policy', () => {
  it('an ESP packet of an SA with an origin to an endpoint reaches the TUN translated; the backend\'s reply leaves to the same SA translated back', async () => {
    const t = siteAndGateway(POLICY);
    const q = udp4(CLIENT, 40000, E1, 53, 'query');
    t.tunSite.inject(q);
    await settle();
    expect(t.tunGw.written.length).toBe(1);
    const fwd = t.tunGw.written[0]!;
    const ft = tupleOf(fwd);
    expect(ft).toMatchObject({ src: E1, dst: BACKEND, proto: PROTO_UDP, dport: 5353 });
    expect(allChecksumsOk(fwd)).toBe(true);
    // the backend answers to E1:natPort; the gateway reads it from its TUN
    t.tunGw.inject(udp4(BACKEND, 5353, E1, ft.sport, 'answer'));
    await settle();
    expect(t.tunSite.written.length).toBe(1);
    const back = t.tunSite.written[0]!;
    expect(tupleOf(back)).toEqual({ src: E1, dst: CLIENT, proto: PROTO_UDP, sport: 53, dport: 40000 });
    expect(allChecksumsOk(back)).toBe(true);
    expect(back.subarray(28).toString()).toBe('answer');
    const c = t.gw.policyCounters();
    expect(c.flows).toBe(1);
    expect(c.endpoints[0]).toMatchObject({ id: 1, packetsIn: 1, packetsOut: 1 });
    expect(t.gw.saCounters(SPI_TO_SITE, 'out')!.packets).toBe(1);
    t.site.close();
    t.gw.close();
  });

  it('an ACL drop is counted per origin and nothing is written; allowed destinations pass untouched', async () => {
    const t = siteAndGateway({ ...POLICY, acls: [{ origin: ORIGIN, rules: [v4Rule('10.2.1.0/24')] }] });
    const ok = udp4(CLIENT, 1000, '10.2.1.9', 9, 'fine');
    t.tunSite.inject(udp4(CLIENT, 1000, '10.2.5.5', 9, 'denied'), tcp4(CLIENT, 1000, '10.2.7.7', 22, TCP_SYN), ok);
    await settle();
    expect(t.tunGw.written).toEqual([ok]);
    const c = t.gw.policyCounters();
    expect(c.drops.aclDenied).toBe(2);
    expect(c.aclDenied.get(ORIGIN)).toBe(2);
    expect(t.gw.stats().espRxPackets).toBe(3);
    expect(t.gw.stats().tunTxPackets).toBe(1);
    t.site.close();
    t.gw.close();
  });

  it('packets from the TUN to an endpoint without a flow are dropped endpointNoFlow before routing', async () => {
    const t = siteAndGateway(POLICY);
    t.tunGw.inject(udp4(BACKEND, 5353, E1, 2000), udp4('10.2.0.9', 1, CLIENT, 2, 'plain'));
    await settle();
    expect(t.tunSite.written.length).toBe(1);
    expect(tupleOf(t.tunSite.written[0]!).src).toBe('10.2.0.9');
    expect(t.gw.policyCounters().drops.endpointNoFlow).toBe(1);
    t.site.close();
    t.gw.close();
  });

  it('writeToTun with an origin passes the stage (translated copy, caller\'s buffer untouched); without one it does not', async () => {
    const tun = new MemoryTun();
    const net = new MemoryUdpNetwork();
    const dp = new TsDataPlane(tun, [net.bind(GW, 4500)]);
    dp.setPolicy({ ...POLICY, endpoints: [endpoint(1, E1, { origins: [42], sources: [] })], acls: [{ origin: 43, rules: [] }] });
    const q = udp4('10.8.0.6', 5000, E1, 53);
    const copy = Buffer.from(q);
    dp.writeToTun(q, 0, q.length, 42);
    dp.writeToTun(q, 0, q.length, 43); // not whitelisted: endpointDenied
    const denied = udp4('10.8.0.6', 5000, '10.2.0.1', 53);
    dp.writeToTun(denied, 0, denied.length, 43); // ACL with no rules
    dp.writeToTun(denied, 0, denied.length); // no origin: not checked
    await settle();
    expect(q.equals(copy)).toBe(true);
    expect(tun.written.length).toBe(2);
    expect(tupleOf(tun.written[0]!)).toMatchObject({ src: E1, dst: BACKEND, dport: 5353 });
    expect(tun.written[1]!.equals(denied)).toBe(true);
    const c = dp.policyCounters();
    expect(c.drops.endpointDenied).toBe(1);
    expect(c.drops.aclDenied).toBe(1);
    dp.close();
  });

  it('before setPolicy: counters are all zero and nothing is filtered', async () => {
    const tun = new MemoryTun();
    const dp = new TsDataPlane(tun, [new MemoryUdpNetwork().bind(GW, 4500)]);
    const c = dp.policyCounters();
    expect(c.flows).toBe(0);
    expect(Object.keys(c.drops).sort()).toEqual([...POLICY_DROPS].sort());
    const p = tcp4('10.8.0.6', 1, E1, 80, TCP_SYN);
    dp.writeToTun(p, 0, p.length, 9);
    await settle();
    expect(tun.written).toEqual([p]);
    dp.close();
  });
});
