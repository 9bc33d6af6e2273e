// `vpcgw endpoint accept|reject SERVICE ENDPOINT` and endpoints in `vpcgw get` and `vpcgw status`,
// over a real control socket to the real service and store (the daemon is a fake).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { main, type CliIo } from '../../../src/cli.js';
import { ControlServer } from '../../../src/gateway/control.js';
import { controlHandlers } from '../../../src/gateway/run.js';
import { GatewayService } from '../../../src/gateway/service.js';
import { formatStatus, type GatewayStatus } from '../../../src/gateway/status.js';
import { Store } from '../../../src/store/store.js';
import { FakeGateway } from '../../helpers/fake-gateway.js';
import { endpointDoc } from './endpoint-fixture.js';

let dir = '';
let store: Store;
let svc: GatewayService;
let srv: ControlServer;
let sock = '';

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-ep-cli-'));
  store = Store.open(join(dir, 'vpcgw.db'));
  svc = new GatewayService({ store, baseDir: dir, log: silentLogger, source: 'test' });
  const d = endpointDoc();
  const s = (d.endpointServices as Record<string, unknown>[])[0]!;
  await svc.applyDocument({ ...d, endpointServices: [{ ...s, approvalRequired: true }] }, dir);
  svc.attach(new FakeGateway(svc.config()));
  sock = join(dir, 'vpcgw.sock');
  srv = await ControlServer.listen({ path: sock, handlers: controlHandlers(svc) });
});

afterEach(async () => {
  await srv.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, cwd: dir, isRoot: () => true };
  const code = await main([...argv, '--control', sock], io);
  return { code, out, err };
}

describe('vpcgw endpoint', () => {
  it('accept and reject change the stored state; get lists endpoints with state and address', async () => {
    expect((await cli(['get', 'vpc-endpoints'])).out).toMatch(/^NAME\s+STATUS\s+IP\s+ID\nweb-ep\s+PENDING_ACCEPTANCE\s+10\.2\.100\.10\s+[0-9a-f-]{36}\n$/);
    expect(await cli(['endpoint', 'accept', 'web', 'web-ep'])).toMatchObject({ code: 0, out: 'web-ep: ACCEPTED\n' });
    expect(svc.endpointStates().get('web-ep')).toBe('ACCEPTED');
    expect(await cli(['endpoint', 'reject', 'web', 'web-ep'])).toMatchObject({ code: 0, out: 'web-ep: REJECTED\n' });
    expect(svc.endpointStates().get('web-ep')).toBe('REJECTED');
  });

  it('refuses a wrong verb or an unknown endpoint in one line', async () => {
    expect(await cli(['endpoint', 'approve', 'web', 'web-ep'])).toMatchObject({ code: 1, err: expect.stringMatching(/^vpcgw: endpoint takes accept or reject/) });
    expect(await cli(['endpoint', 'accept', 'web', 'nope'])).toMatchObject({ code: 1, err: expect.stringMatching(/nope/) });
  });
});

describe('vpcgw status with endpoints', () => {
  it('shows each endpoint with its state and flows, and the policy stage', () => {
    const st = {
      gateway: {
        name: 'gw1', pid: 1, startedAt: '2026-01-01T00:00:00.000Z', uptimeSec: 5, config: 'x', publicAddresses: [], vpcSubnets: [],
        tun: { name: 'vpcgw0', mtu: 1400, rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, errors: 0 }, udp: [], routes: [], ike: 'available', dataPlane: 'native',
      },
      connections: [],
      vpnServers: [],
      endpoints: [{
        name: 'web-ep', service: 'web', type: 'interface', state: 'ACCEPTED', address: '10.2.100.10', dnsName: 'web.endpoint.internal',
        flows: 2, flowsCreated: 9, packetsIn: 20, bytesIn: 2048, packetsOut: 18, bytesOut: 4096, drops: { endpointDenied: 1, endpointClosed: 0 },
      }],
      policy: { flows: 2, drops: { aclDenied: 0, endpointDenied: 1 } },
    } satisfies GatewayStatus;
    const text = formatStatus(st);
    expect(text).toContain('vpc endpoints (1):');
    expect(text).toContain('  web-ep -> web: 10.2.100.10 (web.endpoint.internal) ACCEPTED, 2 flows (9 created), in 20 pkts / 2.0 KiB, out 18 pkts / 4.0 KiB, drops: endpointDenied 1');
    expect(text).toContain('policy: 2 flows, drops: endpointDenied 1');
  });
});
