import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { captureLogger } from '../../../src/common/log.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { IpsecController } from '../../../src/gateway/ipsec.js';
import { GatewayMetrics, vpcgwVersion } from '../../../src/gateway/metrics.js';
import type { GatewayStatus } from '../../../src/gateway/status.js';

const PROMTOOL = '/usr/bin/promtool';

/** A status as a gateway with one tunnel up, one configured but down and one SSL VPN server reports it. */
function fakeStatus(): GatewayStatus {
  return {
    gateway: {
      name: 'gw1',
      pid: 4242,
      startedAt: '2026-01-02T03:04:05.000Z',
      uptimeSec: 100,
      config: '/etc/vpcgw/config.yaml',
      publicAddresses: ['192.0.2.2'],
      vpcSubnets: ['10.2.0.0/16'],
      tun: { name: 'vpcgw0', mtu: 1400, rxPackets: 11, rxBytes: 1100, txPackets: 12, txBytes: 1200, errors: 1 },
      udp: [
        { address: '192.0.2.2', port: 500, rxPackets: 3, rxBytes: 300, txPackets: 4, txBytes: 400, errors: 0 },
        { address: '192.0.2.2', port: 4500, rxPackets: 30, rxBytes: 3000, txPackets: 40, txBytes: 4000, errors: 2 },
      ],
      routes: ['10.1.0.0/16 dev vpcgw0'],
      ike: 'available',
      dataPlane: 'native',
    },
    ikeResponder: { halfOpen: 2, halfOpenSources: 1, cookiesSent: 7, drops: { malformed: 5, noConfig: 1, unknownSpi: 0 } },
    connections: [
      {
        name: 'dc1-main',
        state: 'ESTABLISHED',
        peer: '192.0.2.1:4500',
        ikeSa: '0123456789abcdef_i fedcba9876543210_r',
        establishedAt: '2026-01-02T03:05:00.000Z',
        ikeSaAgeSec: 45,
        ikeRekeys: 1,
        childRekeys: 3,
        dpdFailures: 0,
        children: [
          { state: 'INSTALLED', spiIn: '0xc0000001', spiOut: '0xc1000001', bytesIn: 1000, bytesOut: 2000, packetsIn: 10, packetsOut: 20 },
          { state: 'REKEYED', spiIn: '0xc0000002', spiOut: '0xc1000002', bytesIn: 5, bytesOut: 6, packetsIn: 1, packetsOut: 2 },
        ],
      },
      { name: 'dc2-backup', state: 'DOWN', reason: 'peer did not answer', children: [], ikeRekeys: 0, childRekeys: 0, dpdFailures: 2 },
    ],
    vpnServers: [
      { name: 'p2c', state: 'LISTENING', protocols: ['udp', 'tcp'], port: 1194, clients: 3, halfOpen: 1, authFailures: 4, bytesIn: 777, bytesOut: 888 },
    ],
  };
}

/** The value of one sample line, by its exact series text (name plus labels). */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('GatewayMetrics', () => {
  it('renders the status as valid Prometheus text format that passes promtool check metrics and its lint', async () => {
    expect(existsSync(PROMTOOL), `${PROMTOOL} (Debian package prometheus) is missing`).toBe(true);
    const m = new GatewayMetrics({ status: fakeStatus, dropCounters: () => ({ replay: 3, badIcv: 1, noSa: 0 }), defaultMetrics: false });
    const r = promtoolCheck(await m.metrics());
    // exit 0 and no output: it parses and follows the naming conventions (exit 1: parse error, 3: lint findings)
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("with prom-client's process metrics the text still parses; the only lint findings are prom-client's own gauge names", async () => {
    const m = new GatewayMetrics({ status: fakeStatus, dropCounters: () => ({ replay: 3 }) });
    const r = promtoolCheck(await m.metrics());
    // prom-client 15 names three gauges *_total (nodejs_active_handles_total, ...); promtool lints
    // that (exit 3) but parses everything (a parse error is exit 1)
    expect([0, 3]).toContain(r.status);
    const findings = r.output.split('\n').filter((l) => l !== '');
    for (const f of findings) expect(f).toMatch(/^vpcgw_nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/);
  });

  it('promtool rejects a broken exposition (the check above can fail)', () => {
    const r = promtoolCheck('# TYPE vpcgw_x counter\nvpcgw_x{a="1" 2\n');
    expect(r.status).not.toBe(0);
  });

  it('values follow the status: connection up and down, bytes, rekeys, DPD, IKE responder, VPN server, drops', async () => {
    const m = new GatewayMetrics({ status: fakeStatus, dropCounters: () => ({ replay: 3, badIcv: 1 }), version: '9.8.7' });
    const t = await m.metrics();
    expect(sample(t, 'vpcgw_build_info{version="9.8.7"}')).toBe(1);
    expect(sample(t, 'vpcgw_start_time_seconds')).toBe(Date.parse('2026-01-02T03:04:05.000Z') / 1000);

    expect(sample(t, 'vpcgw_vpn_connection_configured{connection="dc1-main"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_up{connection="dc1-main"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_status{connection="dc1-main",status="ACTIVE"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_status{connection="dc1-main",status="DOWN"}')).toBe(0);
    expect(sample(t, 'vpcgw_vpn_connection_ike_state{connection="dc1-main",state="ESTABLISHED"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_bytes_total{connection="dc1-main",direction="in"}')).toBe(1005);
    expect(sample(t, 'vpcgw_vpn_connection_bytes_total{connection="dc1-main",direction="out"}')).toBe(2006);
    expect(sample(t, 'vpcgw_vpn_connection_packets_total{connection="dc1-main",direction="in"}')).toBe(11);
    expect(sample(t, 'vpcgw_vpn_connection_packets_total{connection="dc1-main",direction="out"}')).toBe(22);
    expect(sample(t, 'vpcgw_vpn_connection_ike_sa_age_seconds{connection="dc1-main"}')).toBe(45);
    expect(sample(t, 'vpcgw_vpn_connection_child_sas{connection="dc1-main"}')).toBe(2);
    expect(sample(t, 'vpcgw_vpn_connection_rekeys_total{connection="dc1-main",sa="ike"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_rekeys_total{connection="dc1-main",sa="child"}')).toBe(3);
    expect(sample(t, 'vpcgw_vpn_connection_dpd_failures_total{connection="dc2-backup"}')).toBe(2);

    expect(sample(t, 'vpcgw_ike_half_open_sas')).toBe(2);
    expect(sample(t, 'vpcgw_ike_half_open_sources')).toBe(1);
    expect(sample(t, 'vpcgw_ike_cookies_sent_total')).toBe(7);
    expect(sample(t, 'vpcgw_ike_init_drops_total{reason="malformed"}')).toBe(5);
    expect(sample(t, 'vpcgw_ike_init_drops_total{reason="noConfig"}')).toBe(1);

    expect(sample(t, 'vpcgw_dataplane_drops_total{reason="replay"}')).toBe(3);
    expect(sample(t, 'vpcgw_dataplane_drops_total{reason="badIcv"}')).toBe(1);
    expect(sample(t, 'vpcgw_tun_packets_total{direction="rx"}')).toBe(11);
    expect(sample(t, 'vpcgw_tun_bytes_total{direction="tx"}')).toBe(1200);
    expect(sample(t, 'vpcgw_tun_errors_total')).toBe(1);
    expect(sample(t, 'vpcgw_udp_packets_total{socket="192.0.2.2:4500",direction="tx"}')).toBe(40);
    expect(sample(t, 'vpcgw_udp_bytes_total{socket="192.0.2.2:500",direction="rx"}')).toBe(300);
    expect(sample(t, 'vpcgw_udp_errors_total{socket="192.0.2.2:4500"}')).toBe(2);

    expect(sample(t, 'vpcgw_vpn_server_up{vpn_server="p2c"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_server_clients{vpn_server="p2c"}')).toBe(3);
    expect(sample(t, 'vpcgw_vpn_server_half_open_sessions{vpn_server="p2c"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_server_auth_failures_total{vpn_server="p2c"}')).toBe(4);
    expect(sample(t, 'vpcgw_vpn_server_bytes_total{vpn_server="p2c",direction="in"}')).toBe(777);
    expect(sample(t, 'vpcgw_vpn_server_bytes_total{vpn_server="p2c",direction="out"}')).toBe(888);

    // process metrics of prom-client, on this registry with the vpcgw_ prefix
    expect(t).toMatch(/^vpcgw_process_cpu_user_seconds_total \d/m);
    expect(t).toMatch(/^vpcgw_nodejs_heap_size_used_bytes \d/m);
  });

  it('a configured connection that is down still appears in every scrape, with up 0 and no IKE SA age', async () => {
    const m = new GatewayMetrics({ status: fakeStatus, defaultMetrics: false });
    const t = await m.metrics();
    expect(sample(t, 'vpcgw_vpn_connection_configured{connection="dc2-backup"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_up{connection="dc2-backup"}')).toBe(0);
    expect(sample(t, 'vpcgw_vpn_connection_status{connection="dc2-backup",status="DOWN"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_status{connection="dc2-backup",status="ACTIVE"}')).toBe(0);
    expect(sample(t, 'vpcgw_vpn_connection_bytes_total{connection="dc2-backup",direction="in"}')).toBe(0);
    expect(sample(t, 'vpcgw_vpn_connection_child_sas{connection="dc2-backup"}')).toBe(0);
    expect(sample(t, 'vpcgw_vpn_connection_ike_sa_age_seconds{connection="dc2-backup"}')).toBeUndefined();
    expect(t).not.toMatch(/^vpcgw_process_/m);
  });

  it('a connection the IKE controller has never brought up is scraped as configured and down, with zero counters', async () => {
    const yaml = stringify({
      gateway: { name: 'gw', dataDir: '/tmp', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.1.0.0/16'] },
      customerGateways: [{ name: 'cgw1', address: '192.0.2.1', id: '192.0.2.1' }],
      vpnConnections: [{
        name: 'c1', customerGateway: 'cgw1', localSubnets: ['10.1.0.0/16'], remoteSubnets: ['10.2.0.0/16'],
        auth: { psk: 'test-fixture-psk-not-a-secret' }, ike: { proposals: 'aes128gcm16-prfsha256-x25519', localId: '192.0.2.2' },
        esp: { proposals: 'aes128gcm16' }, startAction: 'none',
      }],
    });
    const ctrl = new IpsecController({ config: parseConfig(yaml, '/tmp/metrics-test.yaml'), log: captureLogger(), dataPlane: null, sendIke: () => true });
    const base = fakeStatus();
    const m = new GatewayMetrics({
      status: () => ({ ...base, ikeResponder: ctrl.responderStatus(), connections: ctrl.status(), vpnServers: [] }),
      defaultMetrics: false,
    });
    const t = await m.metrics();
    expect(sample(t, 'vpcgw_vpn_connection_configured{connection="c1"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_up{connection="c1"}')).toBe(0);
    expect(sample(t, 'vpcgw_vpn_connection_ike_state{connection="c1",state="DOWN"}')).toBe(1);
    expect(sample(t, 'vpcgw_vpn_connection_rekeys_total{connection="c1",sa="child"}')).toBe(0);
    expect(sample(t, 'vpcgw_vpn_connection_dpd_failures_total{connection="c1"}')).toBe(0);
    expect(sample(t, 'vpcgw_ike_half_open_sas')).toBe(0);
    expect(sample(t, 'vpcgw_ike_init_drops_total{reason="malformed"}')).toBe(0);
    expect(promtoolCheck(t)).toEqual({ status: 0, output: '' });
  });

  it('reads the status once per scrape, at scrape time: values move between scrapes, removed connections vanish', async () => {
    let st = fakeStatus();
    let calls = 0;
    const m = new GatewayMetrics({
      status: () => {
        calls++;
        return st;
      },
      defaultMetrics: false,
    });
    expect(calls).toBe(0);
    const first = await m.metrics();
    expect(calls).toBe(1);
    expect(sample(first, 'vpcgw_vpn_connection_up{connection="dc1-main"}')).toBe(1);

    st = fakeStatus();
    st.connections[0]!.state = 'DOWN';
    st.connections[0]!.children = [];
    delete st.connections[0]!.ikeSaAgeSec;
    st.connections[0]!.dpdFailures = 1;
    st.connections.pop();
    st.vpnServers[0]!.authFailures = 9;
    const second = await m.metrics();
    expect(calls).toBe(2);
    expect(sample(second, 'vpcgw_vpn_connection_up{connection="dc1-main"}')).toBe(0);
    expect(sample(second, 'vpcgw_vpn_connection_dpd_failures_total{connection="dc1-main"}')).toBe(1);
    expect(sample(second, 'vpcgw_vpn_server_auth_failures_total{vpn_server="p2c"}')).toBe(9);
    expect(second).not.toContain('dc2-backup');
    expect(promtoolCheck(second).status).toBe(0);
  });

  it('several instances in one process keep separate registries (no duplicate-metric errors)', async () => {
    const a = new GatewayMetrics({ status: fakeStatus, version: 'a' });
    const b = new GatewayMetrics({ status: () => ({ ...fakeStatus(), connections: [] }), version: 'b' });
    const [ta, tb] = await Promise.all([a.metrics(), b.metrics()]);
    expect(sample(ta, 'vpcgw_build_info{version="a"}')).toBe(1);
    expect(sample(tb, 'vpcgw_build_info{version="b"}')).toBe(1);
    expect(tb).not.toContain('dc1-main');
  });

  it('without IKE or a data plane: no drop series, responder gauges at 0, still valid', async () => {
    const st = fakeStatus();
    delete st.ikeResponder;
    const t = await new GatewayMetrics({ status: () => st, defaultMetrics: false }).metrics();
    expect(t).not.toContain('vpcgw_dataplane_drops_total');
    expect(sample(t, 'vpcgw_ike_half_open_sas')).toBe(0);
    expect(promtoolCheck(t).status).toBe(0);
  });

  it('build_info defaults to the version in package.json', () => {
    expect(vpcgwVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('GatewayMetrics: VPC endpoints', () => {
  const withEndpoints = (): GatewayStatus => ({
    ...fakeStatus(),
    endpoints: [
      {
        name: 'web-ep', service: 'web', type: 'interface', state: 'ACCEPTED', address: '10.2.100.10', dnsName: 'web.endpoint.internal',
        flows: 4, flowsCreated: 19, packetsIn: 100, bytesIn: 8000, packetsOut: 90, bytesOut: 70000,
        drops: { endpointClosed: 0, endpointDenied: 3, endpointNoPort: 1, endpointNoFlow: 0, endpointTableFull: 0, endpointBadPacket: 0 },
      },
      {
        name: 'db-ep', service: 'db', type: 'interface', state: 'PENDING_ACCEPTANCE', address: '10.2.100.11', dnsName: null,
        flows: 0, flowsCreated: 0, packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0,
        drops: { endpointClosed: 6, endpointDenied: 0, endpointNoPort: 0, endpointNoFlow: 0, endpointTableFull: 0, endpointBadPacket: 0 },
      },
    ],
    policy: {
      flows: 4,
      drops: { aclDenied: 8, endpointClosed: 6, endpointDenied: 3, endpointNoPort: 1, endpointNoFlow: 0, endpointTableFull: 0, endpointBadPacket: 0 },
    },
  });

  it('per-endpoint flows, packets, bytes, drops and state, and the policy stage\'s drops; promtool accepts the text', async () => {
    const m = new GatewayMetrics({ status: withEndpoints, defaultMetrics: false });
    const text = await m.metrics();
    expect(sample(text, 'vpcgw_endpoint_flows{endpoint="web-ep"}')).toBe(4);
    expect(sample(text, 'vpcgw_endpoint_flows_created_total{endpoint="web-ep"}')).toBe(19);
    expect(sample(text, 'vpcgw_endpoint_packets_total{endpoint="web-ep",direction="in"}')).toBe(100);
    expect(sample(text, 'vpcgw_endpoint_packets_total{endpoint="web-ep",direction="out"}')).toBe(90);
    expect(sample(text, 'vpcgw_endpoint_bytes_total{endpoint="web-ep",direction="out"}')).toBe(70000);
    expect(sample(text, 'vpcgw_endpoint_drops_total{endpoint="web-ep",reason="endpointDenied"}')).toBe(3);
    expect(sample(text, 'vpcgw_endpoint_drops_total{endpoint="db-ep",reason="endpointClosed"}')).toBe(6);
    expect(sample(text, 'vpcgw_endpoint_state{endpoint="db-ep",service="db",state="PENDING_ACCEPTANCE"}')).toBe(1);
    expect(sample(text, 'vpcgw_endpoint_state{endpoint="db-ep",service="db",state="ACCEPTED"}')).toBe(0);
    expect(sample(text, 'vpcgw_policy_drops_total{reason="aclDenied"}')).toBe(8);
    // connections keep their own statuses only
    expect(text).not.toMatch(/vpcgw_vpn_connection_status\{[^}]*status="ACCEPTED"/);
    if (existsSync(PROMTOOL)) expect(promtoolCheck(text).status).toBe(0);
  });

  it('without endpoints or a policy stage: no endpoint or policy series', async () => {
    const text = await new GatewayMetrics({ status: fakeStatus, defaultMetrics: false }).metrics();
    expect(text).not.toMatch(/^vpcgw_endpoint_flows\{/m);
    expect(text).not.toMatch(/^vpcgw_policy_drops_total\{/m);
  });
});
