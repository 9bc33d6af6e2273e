// The README's management walk-through, step by step, as an operator runs it: `vpcgw start` with
// the embedded default (no config file of our own: it is written into the data dir and seeds the
// store), `vpcgw token create`, then curl against the HTTPS API to set the VPC's addresses, create
// a customer gateway and a VPN connection, and download the customer side's swanctl.conf. A real
// strongSwan loads that file unchanged, the tunnel comes up (the API says ACTIVE) and a ping
// crosses it. Then the connection is deleted through the API and the tunnel goes away.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NsDaemon } from '../helpers/api.js';
import { ADDR, createTopology, ping, type Topology } from '../helpers/netns.js';
import { ensureBuilt } from '../helpers/openvpn.js';
import { run, waitFor } from '../helpers/proc.js';
import { Charon } from '../helpers/strongswan.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-readme-psk-0123456789';

let topo: Topology;
let d: NsDaemon;
let sw: Charon | null = null;

beforeAll(async () => {
  await ensureBuilt();
  topo = await createTopology({ tag: 'readme' });
}, 60_000);

afterAll(async () => {
  await sw?.stop().catch(() => undefined);
  if (d) await d.stop();
  await topo?.destroy();
});

describe('README: a site-to-cloud tunnel built through the management API', () => {
  it('starts with the embedded default, backed by the store, with the API on 127.0.0.1:9443', async () => {
    const ns = { name: topo.ns.cloudGw, exec: (cmd: string, args: readonly string[], o?: { timeoutMs?: number; allowFail?: boolean }) => topo.exec('cloudGw', cmd, args, o) };
    d = await NsDaemon.start(ns, { dataDir: join(topo.workDir, 'var'), label: 'vpcgw-readme', timeoutMs: 30_000 });
    expect(await d.apiUrl()).toBe('https://127.0.0.1:9443');
    expect(d.output()).toContain('management API: https://127.0.0.1:9443/v1');
    expect(d.output()).toContain('token create');
  }, 60_000);

  it('token create prints a token alone; the API refuses requests without it', async () => {
    const token = await d.createToken();
    expect(token).toMatch(/^vpcgw_[A-Za-z0-9_-]{40,}$/);
    expect((await d.api('GET', '/v1/vpn-connections', undefined, { token: null })).status).toBe(401);
    expect((await d.api('GET', '/v1/vpn-connections', undefined, { token: `${token}x` })).status).toBe(401);
    expect((await d.api('GET', '/v1/vpn-connections')).status).toBe(200);
  });

  it('PUT the gateway (public address, VPC subnet), POST a customer gateway and a connection', async () => {
    const gw = await d.api('PUT', '/v1/vpn-gateways/vpcgw', { publicAddresses: [ADDR.cloudGwOutside], vpcSubnets: [ADDR.vpcSubnet] });
    expect(gw.status, gw.body).toBe(200);
    const cgw = await d.api('POST', '/v1/customer-gateways', { name: 'dc1', address: ADDR.siteGwOutside });
    expect(cgw.status, cgw.body).toBe(201);
    const conn = await d.api('POST', '/v1/vpn-connections', {
      name: 'dc1-main', customerGateway: 'dc1', localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet], auth: { psk: PSK },
    });
    expect(conn.status, conn.body).toBe(201);
    expect(conn.body).not.toContain(PSK);
    expect(conn.json).toMatchObject({ name: 'dc1-main', customerGateway: 'dc1' });
    expect(['DOWN', 'ACTIVE']).toContain((conn.json as { status: string }).status);
  }, 60_000);

  it('the exported swanctl.conf, loaded unchanged by strongSwan, brings the tunnel up: ACTIVE in the API, ping crosses', async () => {
    const exp = await d.api('GET', '/v1/vpn-connections/dc1-main/peer-config?format=swanctl');
    expect(exp.status, exp.body).toBe(200);
    expect(exp.body).toContain(PSK); // the download is for the customer side: it carries the PSK
    sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: 'harness-placeholder-psk', ikeProposals: 'default', espProposals: 'default', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
      connName: 'placeholder', startAction: 'none',
    });
    writeFileSync(sw.swanctlPath, exp.body, { mode: 0o600 });
    await run('swanctl', ['--load-all', '--noprompt', '--clear', '--file', sw.swanctlPath, '--uri', sw.vici], {
      timeoutMs: 15_000, env: { ...process.env, STRONGSWAN_CONF: join(sw.dir, 'strongswan.conf') },
    });
    await waitFor(async () => {
      const r = await d.api('GET', '/v1/vpn-connections/dc1-main');
      return (r.json as { status?: string }).status === 'ACTIVE' ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500, what: 'dc1-main ACTIVE in the API' }).catch((e: Error) => {
      throw new Error(`${e.message}\n${d.output().slice(-4000)}\n${sw!.logForDiagnostics().slice(-3000)}`);
    });
    await waitFor(async () => ((await ping(topo, 'siteHost', ADDR.vpcHost, { count: 1, waitSec: 1 })).received > 0) || undefined,
      { timeoutMs: 15_000, intervalMs: 300, what: 'a ping site-host -> vpc-host through the tunnel' });
    const r = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(r.received).toBe(3);
  }, 90_000);

  it('DELETE takes the connection down live; the customer gateway can go after it', async () => {
    expect((await d.api('DELETE', '/v1/customer-gateways/dc1')).status).toBe(409);
    expect((await d.api('DELETE', '/v1/vpn-connections/dc1-main')).status).toBe(204);
    expect((await d.api('GET', '/v1/vpn-connections/dc1-main')).status).toBe(404);
    await waitFor(async () => ((await d.status()).connections.length === 0) || undefined, { timeoutMs: 10_000, intervalMs: 300, what: 'no connection in status' });
    expect((await ping(topo, 'siteHost', ADDR.vpcHost, { count: 1, waitSec: 1 })).received).toBe(0);
    expect((await d.api('DELETE', '/v1/customer-gateways/dc1')).status).toBe(204);
    expect((await d.stop()).code).toBe(0);
  }, 60_000);
});
