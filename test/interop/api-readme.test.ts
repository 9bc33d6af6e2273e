// The README's management walk-through, step by step, as an operator runs it: `vpcgw start` with
// the embedded default (no config file of our own: it is written into the data dir and seeds the
// store), `vpcgw token create`, then curl against the HTTPS API to set the VPC's addresses, create
// a customer gateway and a VPN connection, and download the customer side's swanctl.conf. A real
// strongSwan loads that file unchanged, the tunnel comes up (the API says ACTIVE) and a ping
// crosses it. Then the connection is deleted through the API and the tunnel goes away.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NsDaemon } from '../helpers/api.js';
import { ADDR, createTopology, ping, type Topology } from '../helpers/netns.js';
import { ensureBuilt, REPO_ROOT } from '../helpers/openvpn.js';
import { VPCGW_CLI } from '../helpers/vpcgw.js';
import { run, waitFor } from '../helpers/proc.js';
import { Charon } from '../helpers/strongswan.js';

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

  it('the README block (token, PUT gateway, POST customer gateway and connection, download swanctl.conf) runs as written', async () => {
    const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const section = md.slice(md.indexOf('## Management API'), md.indexOf('## Status and control'));
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block, 'README lost its management API walk-through').toBeDefined();
    const lines = block!.split('\n');
    // the daemon already runs as `sudo npm start` runs it (the embedded default in a data dir)
    expect(lines[0]).toMatch(/^sudo npm start\b/);
    const script = [
      'set -e',
      `cd ${topo.workDir}`,
      'sudo() { "$@"; }',
      `vpcgw() { ${process.execPath} ${VPCGW_CLI} "$@" --control ${d.controlPath}; }`,
      ...lines.slice(1),
      'printf %s "$TOKEN" > token',
    ].join('\n');
    const r = await topo.exec('cloudGw', 'sh', ['-c', script], { timeoutMs: 60_000 });
    d.token = readFileSync(join(topo.workDir, 'token'), 'utf8').trim();
    expect(d.token).toMatch(/^vpcgw_[A-Za-z0-9_-]{40,}$/);
    // curl prints each answer without a newline: the last of the JSON documents is the connection
    const answers = jsonDocuments(r.stdout);
    expect(answers.map((a) => (a as { name?: string }).name)).toEqual(['vpcgw', 'dc1', 'dc1-main', 'dc1-main']);
    const conn = answers.at(-1) as Record<string, unknown>;
    expect(conn).toMatchObject({ name: 'dc1-main', customerGateway: 'dc1', remoteSubnets: [ADDR.siteSubnet] });
    expect(r.stdout).not.toContain('a long random secret');
    expect(readFileSync(join(topo.workDir, 'swanctl.conf'), 'utf8')).toContain('a long random secret');
    // the gateway took the PUT: its public address and VPC subnet
    const st = await d.status();
    expect(st.gateway.publicAddresses).toEqual([ADDR.cloudGwOutside]);
    expect(st.gateway.vpcSubnets).toEqual([ADDR.vpcSubnet]);
  }, 90_000);

  it('the API refuses requests without the token or with a wrong one', async () => {
    expect((await d.api('GET', '/v1/vpn-connections', undefined, { token: null })).status).toBe(401);
    expect((await d.api('GET', '/v1/vpn-connections', undefined, { token: `${d.token}x` })).status).toBe(401);
    expect((await d.api('GET', '/v1/vpn-connections')).status).toBe(200);
  });

  it('the exported swanctl.conf, loaded unchanged by strongSwan, brings the tunnel up: ACTIVE in the API, ping crosses', async () => {
    const exported = readFileSync(join(topo.workDir, 'swanctl.conf'), 'utf8');
    sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: 'harness-placeholder-psk-not-used', ikeProposals: 'default', espProposals: 'default', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
      connName: 'placeholder', startAction: 'none',
    });
    writeFileSync(sw.swanctlPath, exported, { mode: 0o600 });
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
    // Prometheus sees it up and counting; health is open, metrics need the token
    const m = await d.api('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^vpcgw_vpn_connection_up\{connection="dc1-main"\} 1$/m);
    expect(Number(/^vpcgw_vpn_connection_packets_total\{connection="dc1-main",direction="in"\} (\d+)/m.exec(m.body)?.[1])).toBeGreaterThanOrEqual(3);
    expect((await d.api('GET', '/metrics', undefined, { token: null })).status).toBe(401);
    expect((await d.api('GET', '/healthz', undefined, { token: null })).status).toBe(200);
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

/** Splits concatenated JSON objects ({..}{..}) as curl prints them one after another. */
function jsonDocuments(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && --depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
  }
  return out;
}
