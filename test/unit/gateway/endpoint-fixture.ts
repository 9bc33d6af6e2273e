// A config document with VPC endpoints, shared by the endpoint tests (config, compilation, service).

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-endpoints-psk-0123';

/** gateway.endpoints, one connection (dc1-main), one server (p2c), the service `web` and its endpoint `web-ep`. */
export function endpointDoc(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    gateway: {
      name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16', '10.3.0.0/16'],
      endpoints: { subnet: '10.2.100.0/24' },
    },
    customerGateways: [{ name: 'dc1', address: '192.0.2.1' }],
    vpnConnections: [{ name: 'dc1-main', customerGateway: 'dc1', localSubnets: ['10.2.0.0/24'], remoteSubnets: ['10.1.0.0/16'], auth: { psk: PSK } }],
    vpnServers: [{
      name: 'p2c', clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], auth: { type: 'cert' },
      serverCert: { cert: '/nonexistent/server.crt', key: '/nonexistent/server.key' }, clientCa: '/nonexistent/ca.crt',
    }],
    users: [],
    endpointServices: [{
      name: 'web',
      backend: { address: '10.3.0.10' },
      ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 8080 }],
      whitelist: ['vpnConnection:dc1-main', 'vpnServer:p2c', '10.9.0.0/16'],
    }],
    endpoints: [{ name: 'web-ep', service: 'web', address: '10.2.100.10', dnsName: 'Web.Endpoint.Internal.' }],
    ...over,
  };
}

