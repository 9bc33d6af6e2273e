import { describe, expect, it } from 'vitest';
import { formatStatus, type GatewayStatus } from '../../../src/gateway/status.js';

function status(extra: Partial<GatewayStatus> = {}): GatewayStatus {
  return {
    gateway: {
      name: 'gw1', pid: 1, startedAt: '2026-01-01T00:00:00.000Z', uptimeSec: 5, config: '/etc/vpcgw.yaml',
      publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'],
      tun: { name: 'vpcgw0', mtu: 1400, rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, errors: 0 },
      udp: [], routes: [], ike: 'available', dataPlane: 'typescript',
    },
    connections: [],
    vpnServers: [],
    ...extra,
  };
}

describe('formatStatus: IKE responder line', () => {
  it('shows half-open SAs, cookies sent and the non-zero drops', () => {
    const text = formatStatus(status({
      ikeResponder: { halfOpen: 3, halfOpenSources: 1, cookiesSent: 7495, drops: { malformed: 0, noConfig: 12, halfOpenPerSource: 2 } },
    }));
    expect(text).toContain('ike responder: 3 half-open from 1 addresses, 7495 cookies sent, drops: noConfig 12, halfOpenPerSource 2');
  });

  it('says "none" without drops and prints no line without IKE', () => {
    expect(formatStatus(status({ ikeResponder: { halfOpen: 0, halfOpenSources: 0, cookiesSent: 0, drops: { malformed: 0 } } })))
      .toContain('0 cookies sent, drops: none');
    expect(formatStatus(status())).not.toContain('ike responder');
  });
});
