// VPC endpoints in the config file: endpointServices, endpoints, gateway.endpoints and gateway.dns.
// Every refusal names the field and the value (src/gateway/config/sections.ts).
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../src/common/errors.js';
import { configFromDocument, type GatewayConfig } from '../../../../src/gateway/config/index.js';
import { endpointDoc } from '../endpoint-fixture.js';

function load(doc: Record<string, unknown>): GatewayConfig {
  return configFromDocument(doc, 'test', '/tmp');
}

function refusal(doc: Record<string, unknown>): ConfigError {
  try {
    load(doc);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('the config loaded');
}

const base = endpointDoc();
const svc = (o: Record<string, unknown>) => [{ ...(base.endpointServices as object[])[0], ...o }];
const ep = (o: Record<string, unknown>) => [{ ...(base.endpoints as object[])[0], ...o }];
const gw = (o: Record<string, unknown>) => ({ ...(base.gateway as object), ...o });

describe('config: VPC endpoints', () => {
  it('reads the example: defaults, whitelist entries parsed, DNS name lowercased', () => {
    const c = load(base);
    const s = c.endpointServices[0]!;
    expect(s.type).toBe('interface');
    expect(s.approvalRequired).toBe(false);
    expect(s.whitelist.map((w) => w.kind)).toEqual(['vpnConnection', 'vpnServer', 'cidr']);
    expect(c.endpoints[0]).toMatchObject({ name: 'web-ep', service: 'web', type: 'interface', address: '10.2.100.10', dnsName: 'web.endpoint.internal' });
    expect(c.gateway.endpoints).toMatchObject({ maxFlows: 65536, tcpTimeoutSec: 7200, udpTimeoutSec: 60 });
    expect(c.gateway.dns).toBeNull();
  });

  it('allocates an address from the subnet when none is given, the same one at every load', () => {
    const doc = endpointDoc({ endpoints: [{ name: 'a', service: 'web' }, { name: 'b', service: 'web', address: '10.2.100.10' }] });
    const first = load(doc).endpoints[0]!.address!;
    expect(first).toMatch(/^10\.2\.100\.\d+$/);
    expect(first).not.toBe('10.2.100.10');
    expect(['10.2.100.0', '10.2.100.255']).not.toContain(first);
    expect(load(doc).endpoints[0]!.address).toBe(first);
    // another endpoint coming or going does not move it
    const alone = endpointDoc({ endpoints: [{ name: 'a', service: 'web' }] });
    expect(load(alone).endpoints[0]!.address).toBe(first);
  });

  it('refuses whitelist entries that name nothing, or are not entries at all', () => {
    expect(refusal(endpointDoc({ endpointServices: svc({ whitelist: ['vpnConnection:nope'] }) })).message)
      .toMatch(/endpointServices\[0\]\.whitelist\[0\].*vpnConnection:nope.*dc1-main/);
    expect(refusal(endpointDoc({ endpointServices: svc({ whitelist: ['vpnServer:nope'] }) })).path).toBe('endpointServices[0].whitelist[0]');
    expect(refusal(endpointDoc({ endpointServices: svc({ whitelist: ['tenant:x'] }) })).message).toMatch(/tenant:x/);
    expect(refusal(endpointDoc({ endpointServices: svc({ whitelist: ['2001:db8::/32'] }) })).path).toBe('endpointServices[0].whitelist[0]');
    expect(refusal(endpointDoc({ endpointServices: svc({ whitelist: ['10.9.0.1/16'] }) })).path).toBe('endpointServices[0].whitelist[0]');
    // a user group needs no declaration (users carry their groups)
    expect(load(endpointDoc({ endpointServices: svc({ whitelist: ['userGroup:dev'] }) })).endpointServices[0]!.whitelist[0]).toMatchObject({ kind: 'userGroup', name: 'dev' });
  });

  it('refuses a (protocol, servicePort) mapped twice, and shapes that do not fit the type', () => {
    const twice = svc({ ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 1 }, { protocol: 'udp', servicePort: 80, backendPort: 2 }, { protocol: 'tcp', servicePort: 80, backendPort: 3 }] });
    expect(refusal(endpointDoc({ endpointServices: twice })).message).toMatch(/endpointServices\[0\]\.ports\[2\].*tcp\/80.*ports\[0\]/);
    expect(refusal(endpointDoc({ endpointServices: svc({ ports: [] }) })).path).toBe('endpointServices[0].ports');
    expect(refusal(endpointDoc({ endpointServices: svc({ backend: { address: '2001:db8::1' } }) })).path).toBe('endpointServices[0].backend.address');
    expect(refusal(endpointDoc({ endpointServices: svc({ ports: [{ protocol: 'sctp', servicePort: 1, backendPort: 1 }] }) })).path)
      .toBe('endpointServices[0].ports[0].protocol');
    const gwSvc = [{ name: 's3', type: 'gateway', prefixes: ['10.50.0.0/16'], whitelist: ['vpnConnection:dc1-main'] }];
    expect(load(endpointDoc({ endpointServices: gwSvc, endpoints: [{ name: 's3-ep', service: 's3' }] })).endpoints[0]!.address).toBeNull();
    expect(refusal(endpointDoc({ endpointServices: [{ ...gwSvc[0], backend: { address: '10.3.0.1' } }], endpoints: [] })).path).toBe('endpointServices[0].backend');
    expect(refusal(endpointDoc({ endpointServices: [{ ...gwSvc[0], prefixes: [] }], endpoints: [] })).path).toBe('endpointServices[0].prefixes');
    expect(refusal(endpointDoc({ endpointServices: gwSvc, endpoints: [{ name: 'e', service: 's3', address: '10.2.100.5' }] })).path).toBe('endpoints[0].address');
  });

  it('refuses endpoints of unknown services, outside the subnet, or clashing', () => {
    expect(refusal(endpointDoc({ endpoints: ep({ service: 'nope' }) })).message).toMatch(/endpoints\[0\]\.service.*nope.*web/);
    expect(refusal(endpointDoc({ endpoints: ep({ address: '10.2.101.10' }) })).message).toMatch(/endpoints\[0\]\.address.*10\.2\.101\.10.*10\.2\.100\.0\/24/);
    expect(refusal(endpointDoc({ endpoints: ep({ address: '10.2.100.255' }) })).path).toBe('endpoints[0].address');
    const two = [{ name: 'a', service: 'web', address: '10.2.100.7' }, { name: 'b', service: 'web', address: '10.2.100.7' }];
    expect(refusal(endpointDoc({ endpoints: two })).message).toMatch(/endpoints\[1\]\.address.*endpoints\[0\]/);
    const dns = [{ name: 'a', service: 'web', dnsName: 'x.internal' }, { name: 'b', service: 'web', dnsName: 'X.internal' }];
    expect(refusal(endpointDoc({ endpoints: dns })).path).toBe('endpoints[1].dnsName');
    expect(refusal(endpointDoc({ gateway: gw({ dns: { address: '10.2.100.10' } }) })).message).toMatch(/endpoints\[0\]\.address.*gateway\.dns\.address/);
    expect(refusal(endpointDoc({ endpointServices: svc({ backend: { address: '10.2.100.10' } }) })).message).toMatch(/endpoints\[0\]\.address.*endpointServices\[0\]\.backend\.address/);
    const { endpoints: _, ...noEndpoints } = base.gateway as Record<string, unknown>;
    expect(refusal(endpointDoc({ gateway: noEndpoints })).path).toBe('gateway.endpoints');
  });

  it('refuses an endpoint subnet that overlaps a client pool or a remote subnet, or holds the TUN address', () => {
    expect(refusal(endpointDoc({ gateway: gw({ endpoints: { subnet: '10.8.0.0/16' } }), endpoints: [] })).message).toMatch(/gateway\.endpoints\.subnet.*vpnServers\[0\]\.clientCidr/);
    expect(refusal(endpointDoc({ gateway: gw({ endpoints: { subnet: '10.1.2.0/24' } }), endpoints: [] })).message).toMatch(/vpnConnections\[0\]\.remoteSubnets/);
    expect(refusal(endpointDoc({ gateway: gw({ tun: { address: '10.2.100.1/24' } }) })).path).toBe('gateway.tun.address');
  });

  it('runs one data-plane queue with endpoints: an explicit count above 1 is refused, naming the field', () => {
    const e = refusal(endpointDoc({ gateway: gw({ dataPlane: { queues: 4 } }) }));
    expect(e.path).toBe('gateway.dataPlane.queues');
    expect(e.message).toMatch(/"auto" or 1/);
    expect(load(endpointDoc({ gateway: gw({ dataPlane: { queues: 1 } }) })).gateway.dataPlane.queues).toBe(1);
    // without interface endpoints the count is free
    expect(load(endpointDoc({ gateway: gw({ dataPlane: { queues: 4 } }), endpoints: [] })).gateway.dataPlane.queues).toBe(4);
  });

  it('reads gateway.dns: an IPv4 address and upstreams with optional ports', () => {
    const c = load(endpointDoc({ gateway: gw({ dns: { address: '10.2.100.53', upstream: ['10.2.0.2', '10.2.0.3:5353', '[2001:db8::53]:53'] } }) }));
    expect(c.gateway.dns!.address.text).toBe('10.2.100.53');
    expect(c.gateway.dns!.upstream).toEqual(['10.2.0.2', '10.2.0.3:5353', '[2001:db8::53]:53']);
    expect(refusal(endpointDoc({ gateway: gw({ dns: { address: '2001:db8::53' } }) })).path).toBe('gateway.dns.address');
    expect(refusal(endpointDoc({ gateway: gw({ dns: { address: '10.2.100.53', upstream: ['resolver.example'] } }) })).path).toBe('gateway.dns.upstream[0]');
    expect(refusal(endpointDoc({ gateway: gw({ dns: { address: '10.2.100.53', upstream: ['10.2.0.2:0'] } }) })).path).toBe('gateway.dns.upstream[0]');
  });
});
