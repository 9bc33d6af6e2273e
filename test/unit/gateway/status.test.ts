import { describe, expect, it } from 'vitest';
import { diagnose, formatDiagnosis, formatStatus, type ConnectionStatus, type GatewayStatus } from '../../../src/gateway/status.js';

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

describe('last error and vpcgw diagnose', () => {
  const down: ConnectionStatus = {
    name: 'dc1', state: 'DOWN', children: [],
    lastError: {
      code: 'IKE_PROPOSAL_MISMATCH', at: '2026-01-01T00:00:05.000Z',
      message: 'no acceptable IKE proposal: peer offered aes256-sha1-modp1024, we accept aes128gcm16-prfsha256-x25519',
      hint: 'set ike.proposals to include aes256-sha1-modp1024 or ask the peer for aes128gcm16-prfsha256-x25519',
    },
  };

  it('status shows the last error under the connection', () => {
    expect(formatStatus(status({ connections: [down] }))).toContain(
      '    last error 2026-01-01T00:00:05.000Z: no acceptable IKE proposal: peer offered aes256-sha1-modp1024, we accept aes128gcm16-prfsha256-x25519 [IKE_PROPOSAL_MISMATCH]',
    );
  });

  it('diagnose prints the state, the last error and the suggested fix', () => {
    const d = diagnose(down);
    expect(d).toMatchObject({ name: 'dc1', state: 'DOWN', children: 0, suggestedFix: down.lastError!.hint });
    expect(formatDiagnosis(d).split('\n')).toEqual([
      'connection dc1: DOWN',
      `  last error (2026-01-01T00:00:05.000Z): ${down.lastError!.message}`,
      '  code: IKE_PROPOSAL_MISMATCH',
      `  suggested fix: ${down.lastError!.hint}`,
    ]);
  });

  it('an established tunnel with a child needs no fix; one without children says no traffic passes', () => {
    const child = { state: 'INSTALLED', spiIn: '0x1', spiOut: '0x2', bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0 };
    expect(diagnose({ name: 'dc1', state: 'ESTABLISHED', children: [child] }).suggestedFix).toBe('none: the tunnel is up');
    const text = formatDiagnosis(diagnose({ name: 'dc1', state: 'DOWN', children: [] }));
    expect(text).toContain('last error: none');
    expect(text).toContain('vpcgw initiate dc1');
    expect(formatDiagnosis(diagnose({ ...down, state: 'ESTABLISHED' }))).toContain('children: 0 installed (no traffic passes)');
  });
});

describe('formatStatus: NAT line', () => {
  it('prints what NAT detection found for an established connection, and nothing without it', () => {
    const up: ConnectionStatus = {
      name: 'dc1', state: 'ESTABLISHED', peer: '198.51.100.1:42017', ikeSa: '0011223344556677/8899aabbccddeeff', children: [],
      nat: { behindNat: 'peer', udpEncap: true, encapForced: true, peerMoves: 1, keepalivesSent: 0 },
    };
    const lines = formatStatus(status({ connections: [up] })).split('\n');
    const at = lines.findIndex((l) => l.startsWith('  dc1: ESTABLISHED'));
    expect(lines[at]).toBe('  dc1: ESTABLISHED (peer 198.51.100.1:42017, ike 0011223344556677/8899aabbccddeeff)');
    expect(lines[at + 1]).toBe('    nat: behind peer, esp in udp 4500 (forced), peer moves 1, keepalives sent 0');
    const { nat: _nat, ...noNat } = up;
    expect(formatStatus(status({ connections: [noNat] }))).not.toContain('nat:');
  });
});
