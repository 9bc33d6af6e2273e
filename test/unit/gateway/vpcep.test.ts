// VPC endpoints compiled into the data path's policy (src/gateway/vpcep.ts) and wired by the daemon:
// origins stable across config changes, whitelists resolved to origins and source prefixes, ACLs
// from the aclFor hook, endpoint ids stable; the daemon hands every compiled policy to the data
// plane (a fake that records it), routes the endpoint subnet into the TUN without owning endpoint
// addresses, and feeds the DNS responder.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { configFromDocument, type GatewayConfig } from '../../../src/gateway/config/index.js';
import { Gateway, type DnsResponder } from '../../../src/gateway/daemon.js';
import { peerConfigFrom } from '../../../src/gateway/peer-configs.js';
import { sslServerConfigFrom } from '../../../src/gateway/ssl-server-config.js';
import { withEndpointPushes } from '../../../src/gateway/vpn-servers.js';
import {
  compilePolicy, connectionExtraLocalTs, initialEndpointState, OriginRegistry, sslGroupSets, sslPushes, type AclFor, type EndpointState,
} from '../../../src/gateway/vpcep.js';
import { formatPrefix } from '../../../src/common/ip.js';
import type { DataPlane } from '../../../src/dataplane/data-plane.js';
import { ip4ToNumber, POLICY_DROPS, type AclRule, type DataPathPolicy, type PolicyCounters } from '../../../src/vpcep/policy.js';
import { endpointDoc } from './endpoint-fixture.js';
import { FakePlatform, RecordingController } from './daemon-fakes.js';

// TEST FIXTURE ONLY: not a real hash of anything anyone uses.
const HASH = '$scrypt$N=16384,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=';

function doc(over: Record<string, unknown> = {}): Record<string, unknown> {
  return endpointDoc({
    userGroups: [{ name: 'dev' }, { name: 'ops' }],
    users: [
      { name: 'alice', passwordHash: HASH, groups: ['dev'] },
      { name: 'bob', passwordHash: HASH, groups: ['ops', 'dev'] },
      { name: 'carol', passwordHash: HASH, groups: ['dev', 'ops'] },
    ],
    ...over,
  });
}

function load(d: Record<string, unknown>): GatewayConfig {
  return configFromDocument(d, 'test', '/tmp');
}

const accepted = (): EndpointState => 'ACCEPTED';

describe('OriginRegistry and compilePolicy', () => {
  it('gives each connection and each (server, group set) one non-zero origin, the same after a config change', () => {
    const cfg = load(doc());
    expect([...sslGroupSets(cfg).get('p2c')!]).toEqual([[], ['dev'], ['dev', 'ops']]);
    const reg = new OriginRegistry();
    compilePolicy(cfg, reg, accepted);
    const conn = reg.connection('dc1-main');
    const devOps = reg.sslSession('p2c', ['ops', 'dev']);
    expect(conn).toBeGreaterThan(0);
    expect(new Set([conn, reg.sslSession('p2c', []), reg.sslSession('p2c', ['dev']), devOps]).size).toBe(4);
    expect(reg.sslSession('p2c', ['dev', 'ops', 'dev'])).toBe(devOps);
    // a change elsewhere (a new connection, a user removed) keeps the others' numbers
    const next = load(doc({
      customerGateways: [{ name: 'dc1', address: '192.0.2.1' }, { name: 'dc2', address: '192.0.2.5' }],
      vpnConnections: [
        ...(doc().vpnConnections as object[]),
        { name: 'dc2-main', customerGateway: 'dc2', localSubnets: ['10.2.0.0/24'], remoteSubnets: ['10.5.0.0/16'], auth: { psk: 'test-fixture-endpoints-psk-0123' } },
      ],
      users: [{ name: 'bob', passwordHash: HASH, groups: ['ops', 'dev'] }],
    }));
    compilePolicy(next, reg, accepted);
    expect(reg.connection('dc1-main')).toBe(conn);
    expect(reg.sslSession('p2c', ['dev', 'ops'])).toBe(devOps);
    expect(reg.sslOrigins().map((o) => o.groups.join(','))).toEqual(['', 'dev,ops']);
    const dc2 = reg.connection('dc2-main');
    expect([conn, devOps]).not.toContain(dc2);
  });

  it('resolves whitelists: a connection, every origin of a server, every group set holding a group, source prefixes', () => {
    const reg = new OriginRegistry();
    const cfg = load(doc({
      endpointServices: [
        { name: 'web', backend: { address: '10.3.0.10' }, ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 8080 }, { protocol: 'udp', servicePort: 53, backendPort: 5353 }], whitelist: ['vpnConnection:dc1-main', '10.9.0.0/16'] },
        { name: 'all-p2c', backend: { address: '10.3.0.11' }, ports: [{ protocol: 'tcp', servicePort: 443, backendPort: 443 }], whitelist: ['vpnServer:p2c'] },
        { name: 'ops', backend: { address: '10.3.0.12' }, ports: [{ protocol: 'tcp', servicePort: 22, backendPort: 22 }], whitelist: ['userGroup:ops'], approvalRequired: true },
      ],
      endpoints: [
        { name: 'web-ep', service: 'web', address: '10.2.100.10', dnsName: 'web.endpoint.internal' },
        { name: 'p2c-ep', service: 'all-p2c', address: '10.2.100.11' },
        { name: 'ops-ep', service: 'ops', address: '10.2.100.12' },
      ],
    }));
    const states = new Map<string, EndpointState>([['web-ep', 'ACCEPTED'], ['p2c-ep', 'REJECTED']]);
    const c = compilePolicy(cfg, reg, (e, s) => states.get(e.name) ?? initialEndpointState(s));
    const [web, p2c, ops] = c.policy.endpoints;
    expect(web).toEqual({
      id: c.endpointIds.get('web-ep'),
      address: ip4ToNumber('10.2.100.10'),
      open: true,
      ports: [
        { protocol: 6, servicePort: 80, backendAddr: ip4ToNumber('10.3.0.10'), backendPort: 8080 },
        { protocol: 17, servicePort: 53, backendAddr: ip4ToNumber('10.3.0.10'), backendPort: 5353 },
      ],
      origins: [reg.connection('dc1-main')],
      sources: [{ addr: ip4ToNumber('10.9.0.0'), len: 16 }],
    });
    expect(p2c!.open).toBe(false);
    expect(p2c!.origins).toEqual(reg.sslOrigins().map((o) => o.origin).sort((a, b) => a - b));
    expect(ops!.open).toBe(false); // pending acceptance
    expect(ops!.origins).toEqual([reg.sslSession('p2c', ['dev', 'ops'])]);
    expect([...c.dnsRecords]).toEqual([['web.endpoint.internal', '10.2.100.10']]);
    expect(c.policy.limits).toEqual({ maxFlows: 65536, tcpEstablishedMs: 7_200_000, tcpTransitoryMs: 60_000, udpMs: 60_000 });
    expect(c.policy.acls).toEqual([]);
  });

  it('keeps endpoint ids while the endpoint exists; a removed one that comes back gets a new id', () => {
    const reg = new OriginRegistry();
    const two = load(doc({ endpoints: [{ name: 'a', service: 'web', address: '10.2.100.5' }, { name: 'b', service: 'web', address: '10.2.100.6' }] }));
    const first = compilePolicy(two, reg, accepted).endpointIds;
    const onlyB = compilePolicy(load(doc({ endpoints: [{ name: 'b', service: 'web', address: '10.2.100.9' }] })), reg, accepted).endpointIds;
    expect(onlyB.get('b')).toBe(first.get('b'));
    const again = compilePolicy(two, reg, accepted).endpointIds;
    expect(again.get('b')).toBe(first.get('b'));
    expect(again.get('a')).not.toBe(first.get('a'));
  });

  it('asks aclFor once per SSL origin with its sorted groups; null leaves the origin unrestricted', () => {
    const rule: AclRule = { family: 4, addr: new Uint8Array([10, 2, 0, 0]), len: 16, protocol: 0, portLo: 0, portHi: 65535 };
    const asked: string[] = [];
    const aclFor: AclFor = (server, groups) => {
      asked.push(`${server}:${groups.join(',')}`);
      return groups.includes('ops') ? [rule] : groups.length === 0 ? [] : null;
    };
    const reg = new OriginRegistry();
    const c = compilePolicy(load(doc()), reg, accepted, aclFor);
    expect(asked.sort()).toEqual(['p2c:', 'p2c:dev', 'p2c:dev,ops']);
    expect(c.policy.acls).toEqual([
      { origin: reg.sslSession('p2c', []), rules: [] },
      { origin: reg.sslSession('p2c', ['dev', 'ops']), rules: [rule] },
    ].sort((a, b) => a.origin - b.origin));
  });

  it('pushes the endpoint subnet and DNS to whitelisted servers, and widens whitelisted connections\' local selectors', () => {
    const d = doc({
      gateway: { ...(doc().gateway as object), dns: { address: '10.2.100.53', upstream: ['10.2.0.2'] } },
      endpointServices: [
        ...(doc().endpointServices as object[]),
        { name: 's3', type: 'gateway', prefixes: ['10.50.0.0/16'], whitelist: ['vpnConnection:dc1-main', 'userGroup:ops'] },
      ],
      endpoints: [...(doc().endpoints as object[]), { name: 's3-ep', service: 's3' }],
    });
    const cfg = load(d);
    expect(sslPushes(cfg, 'p2c')).toEqual({ routes: ['10.2.100.0/24', '10.50.0.0/16', '10.2.100.53/32'], dns: ['10.2.100.53'] });
    expect(connectionExtraLocalTs(cfg, 'dc1-main').map(formatPrefix)).toEqual(['10.2.100.0/24', '10.50.0.0/16']);
    const peer = peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]');
    expect(peer.children[0]!.localTs.map(formatPrefix)).toEqual(['10.2.0.0/24', '10.2.100.0/24', '10.50.0.0/16']);
    // what the server then pushes (its SslServerConfig): its own routes first, the DNS responder first among DNS servers
    const pushed = sslServerConfigFrom(withEndpointPushes(cfg.vpnServers[0]!, cfg), () => '');
    expect(pushed.localSubnets).toEqual(['10.2.0.0/16', '10.2.100.0/24', '10.50.0.0/16', '10.2.100.53/32']);
    expect(pushed.dnsServers).toEqual(['10.2.100.53']);
    // nothing whitelists: nothing added
    const none = load(doc({ endpointServices: [{ ...(doc().endpointServices as object[])[0] as object, whitelist: [] }] }));
    expect(sslPushes(none, 'p2c')).toEqual({ routes: [], dns: [] });
    expect(connectionExtraLocalTs(none, 'dc1-main')).toEqual([]);
  });
});

/** A data plane that records what the daemon gives it (the real ones implement setPolicy in parallel). */
class RecordingDataPlane implements Partial<DataPlane> {
  policies: DataPathPolicy[] = [];
  sas: { spi: number; direction: string; origin?: number }[] = [];
  readonly sslOffload = null;
  installSa(p: { spi: number; direction: 'in' | 'out'; origin?: number }): void {
    this.sas.push({ spi: p.spi, direction: p.direction, origin: p.origin });
  }
  removeSa(): void {}
  addRoute(): void {}
  removeRoute(): void {}
  saCounters() {
    return undefined;
  }
  dropCounters() {
    return {};
  }
  stats() {
    return { tunRxPackets: 0, tunRxBytes: 0, espTxPackets: 0, espRxPackets: 0, tunTxPackets: 0, tunTxBytes: 0, sinkPackets: 0, controlPackets: 0, natKeepalives: 0 };
  }
  onControl(): void {}
  sendControl(): boolean {
    return true;
  }
  onSaEvent(): void {}
  addSinkRoute(): void {}
  removeSinkRoute(): void {}
  writeToTun(): void {}
  setPolicy(p: DataPathPolicy): void {
    this.policies.push(p);
  }
  policyCounters(): PolicyCounters {
    const drops = Object.fromEntries(POLICY_DROPS.map((r) => [r, 0])) as Record<(typeof POLICY_DROPS)[number], number>;
    const id = this.policies.at(-1)?.endpoints[0]?.id ?? 1;
    return {
      drops: { ...drops, endpointDenied: 2 },
      endpoints: [{ id, flows: 3, flowsCreated: 7, packetsIn: 10, bytesIn: 1000, packetsOut: 9, bytesOut: 900, drops: { ...drops, endpointDenied: 2 } }],
      aclDenied: new Map(),
      flows: 3,
    };
  }
  close(): void {}
}

/** Takes connection changes live (a changed local selector must not restart the gateway). */
class ReconfigurableController extends RecordingController {
  reconfigure(): void {}
}

class FakeDns implements DnsResponder {
  records: ReadonlyMap<string, string> = new Map();
  closed = false;
  setRecords(r: ReadonlyMap<string, string>): void {
    this.records = new Map(r);
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  stats() {
    return {};
  }
}

describe('the daemon and the policy', () => {
  async function started(cfg: GatewayConfig, states: Map<string, EndpointState>) {
    const p = new FakePlatform();
    const dp = new RecordingDataPlane();
    const dns = new FakeDns();
    let ctl: ReconfigurableController | null = null;
    const gw = new Gateway({
      config: cfg, log: silentLogger, platform: p, controlPath: `/tmp/vpcgw-test-${process.pid}-${Math.random()}.sock`,
      dataPlane: () => dp as unknown as DataPlane,
      tunnels: (ctx) => (ctl = new ReconfigurableController(ctx)),
      endpointStates: () => states,
      startDns: async () => dns,
    });
    await gw.start();
    return { gw, p, dp, dns, ctl: ctl! };
  }

  it('sets the policy at start and at every change, routes the endpoint subnet, and never owns endpoint addresses', async () => {
    const states = new Map<string, EndpointState>([['web-ep', 'PENDING_ACCEPTANCE']]);
    const cfg = load(doc({ gateway: { ...(doc().gateway as object), dns: { address: '10.2.100.53' } } }));
    const { gw, p, dp, dns, ctl } = await started(cfg, states);
    try {
      expect(dp.policies).toHaveLength(1);
      expect(dp.policies[0]!.endpoints[0]).toMatchObject({ address: ip4ToNumber('10.2.100.10'), open: false });
      expect([...p.routes]).toContain('10.2.100.0/24 dev vpcgw0');
      expect(p.addresses).toEqual(['10.2.100.53/32 dev vpcgw0']); // the DNS responder's address, no endpoint's
      expect([...dns.records]).toEqual([['web.endpoint.internal', '10.2.100.10']]);
      // inbound SAs get the connection's origin
      expect(ctl.ctx.originOf!('dc1-main')).toBeGreaterThan(0);

      // accepting: the service refreshes the policy, nothing else changes
      states.set('web-ep', 'ACCEPTED');
      gw.refreshPolicy();
      expect(dp.policies).toHaveLength(2);
      expect(dp.policies[1]!.endpoints[0]!.open).toBe(true);
      expect(dp.policies[1]!.endpoints[0]!.id).toBe(dp.policies[0]!.endpoints[0]!.id);

      // a config change (the endpoint removed) goes live without a restart
      const report = await gw.applyConfig(load(doc({ gateway: { ...(doc().gateway as object), dns: { address: '10.2.100.53' } }, endpoints: [] })));
      expect(report.restarted).toBe(false);
      expect(dp.policies.at(-1)!.endpoints).toEqual([]);
      expect([...p.routes]).toContain('10.2.100.0/24 dev vpcgw0');
      expect(dns.records.size).toBe(0);
    } finally {
      await gw.stop();
    }
    expect(dns.closed).toBe(true);
  });

  it('a DNS responder that cannot start leaves the gateway running without it', async () => {
    const cfg = load(doc({ gateway: { ...(doc().gateway as object), dns: { address: '10.2.100.53' } } }));
    const dp = new RecordingDataPlane();
    const gw = new Gateway({
      config: cfg, log: silentLogger, platform: new FakePlatform(), controlPath: `/tmp/vpcgw-test-${process.pid}-${Math.random()}.sock`,
      dataPlane: () => dp as unknown as DataPlane,
      startDns: () => Promise.reject(new Error('bind 10.2.100.53:53: EADDRINUSE')),
    });
    await gw.start();
    try {
      expect(gw.state).toBe('running');
      expect(dp.policies).toHaveLength(1);
    } finally {
      await gw.stop();
    }
  });

  it('reports endpoints with their state and the policy stage\'s counters', async () => {
    const { gw } = await started(load(doc()), new Map([['web-ep', 'ACCEPTED']]));
    try {
      const st = gw.status();
      expect(st.endpoints).toEqual([expect.objectContaining({
        name: 'web-ep', service: 'web', state: 'ACCEPTED', address: '10.2.100.10', dnsName: 'web.endpoint.internal',
        flows: 3, flowsCreated: 7, packetsIn: 10, bytesIn: 1000, packetsOut: 9, bytesOut: 900,
      })]);
      expect(st.endpoints![0]!.drops.endpointDenied).toBe(2);
      expect(st.policy).toMatchObject({ flows: 3, drops: expect.objectContaining({ endpointDenied: 2, aclDenied: 0 }) });
    } finally {
      await gw.stop();
    }
  });
});
