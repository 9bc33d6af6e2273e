// VPC endpoints from a data centre, through `vpcgw start` as an operator runs it and a REAL strongSwan
// 5.9.8 (kernel-libipsec) customer gateway: the README's "Data centre to a cloud service" walk-through,
// its YAML loaded as written (only the data dir and the PSK replaced) and its shell block run on the
// site host.
//
//   site-host 10.1.0.10 -- strongSwan 192.0.2.1 == IPsec == 192.0.2.2 vpcgw 10.2.0.1 -- vpc-host 10.2.0.10 (+ 10.2.0.2)
//                                                        TUN: endpoint subnet 10.2.100.0/24, DNS 10.2.255.53
//
// The VPC host runs the service (HTTP :8080, UDP echo :5353) and stands in for the VPC's resolver
// (10.2.0.2:53, names under corp.internal). Checked: the endpoint address answers with the backend
// (which sees the endpoint's address as the source), the endpoint's DNS name resolves through the
// gateway's responder (other names forwarded upstream), UDP through the endpoint, an unmapped port
// dropped and counted, 1,000 concurrent TCP flows each with its own answer, and, with a small
// gateway.endpoints.maxFlows, new flows refused and counted while the open ones keep flowing.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { NsDaemon } from '../helpers/api.js';
import { ADDR, createTopology, waitForPing, type Topology } from '../helpers/netns.js';
import { ensureBuilt } from '../helpers/openvpn.js';
import { waitFor } from '../helpers/proc.js';
import { Charon } from '../helpers/strongswan.js';
import {
  curl,
  dnsQuery,
  dropCount,
  endpointView,
  expectDataPlane,
  netnsResolvConf,
  readmeBlocks,
  runClient,
  startVpcService,
  udpExchange,
  type FlowsResult,
  type HoldResult,
  type NsRun,
} from '../helpers/vpc-service.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-psk-vpcep-site-5678';
const EP = '10.2.100.10';
const DNS = '10.2.255.53';
const RESOLVER = '10.2.0.2';

interface GwConfig {
  gateway: { dataDir: string; endpoints?: Record<string, unknown>; dns?: { address: string } };
  vpnConnections: { auth: { psk: string } }[];
  endpoints: { name: string; address: string; dnsName: string }[];
}

let topo: Topology;
let d: NsDaemon | null = null;
let sw: Charon | null = null;
let cfg: GwConfig;
let configPath: string;
let dataDir: string;
let siteShell: string;
const cleanups: (() => void)[] = [];
const site: NsRun = (cmd, args, o) => topo.exec('siteHost', cmd, args, o);

function cloudNs(): { name: string; exec: NsRun } {
  return { name: topo.ns.cloudGw, exec: (cmd, args, o) => topo.exec('cloudGw', cmd, args, o) };
}

async function startGateway(): Promise<NsDaemon> {
  writeFileSync(configPath, stringify(cfg), { mode: 0o600 }); // holds the (test) PSK
  const token = d?.token;
  const gw = await NsDaemon.start(cloudNs(), { dataDir, config: configPath, label: 'vpcgw vpcep-site', timeoutMs: 30_000 });
  await expectDataPlane(gw);
  if (token) gw.token = token;
  else await gw.createToken();
  return gw;
}

async function tunnelUp(): Promise<void> {
  await sw!.waitInstalled(30_000).catch((e: Error) => {
    throw new Error(`${e.message}\n--- vpcgw ---\n${d?.output().slice(-3000)}\n--- charon ---\n${sw!.logForDiagnostics().slice(-3000)}`);
  });
  await waitForPing(topo, 'siteHost', ADDR.vpcHost, 15_000);
}

beforeAll(async () => {
  await ensureBuilt();
  const blocks = readmeBlocks('#### Data centre to a cloud service', '#### Remote user');
  const yaml = blocks.find((b) => b.lang === 'yaml')?.text;
  const sh = blocks.find((b) => b.lang === 'sh')?.text;
  if (!yaml || !sh) throw new Error('README "Data centre to a cloud service" lost its YAML or shell block');
  siteShell = sh;
  topo = await createTopology({ tag: 'vpces' });
  // the VPC's resolver, a second address of the VPC host
  await topo.exec('vpcHost', 'ip', ['addr', 'add', `${RESOLVER}/24`, 'dev', 'eth0']);
  await startVpcService((cmd, args, label) => topo.spawnIn('vpcHost', cmd, args, { label }), {
    resolver: { address: RESOLVER, zone: 'corp.internal', answer: ADDR.vpcHost },
  });
  cfg = parse(yaml) as GwConfig;
  dataDir = join(topo.workDir, 'var');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  cfg.gateway.dataDir = dataDir;
  cfg.vpnConnections[0]!.auth.psk = PSK;
  configPath = join(topo.workDir, 'vpcgw.yaml');
  // strongSwan first, with its connection loaded: the README's connection has startAction: start, so
  // vpcgw initiates as soon as it runs (and an IKE_SA_INIT that finds no config is refused for good)
  sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
    psk: PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
  });
  d = await startGateway();
  await tunnelUp();
  // the data centre's resolver sends endpoint names to the gateway's responder
  cleanups.push(netnsResolvConf(topo.ns.siteHost, DNS));
}, 120_000);

afterAll(async () => {
  for (const c of cleanups.splice(0)) c();
  await sw?.stop().catch(() => undefined);
  if (d) await d.stop();
  await topo?.destroy();
});

describe('VPC endpoint from a site over IPsec (README walk-through)', () => {
  it('the endpoint address answers with the backend, which sees the endpoint address as the source', async () => {
    const body = await curl(site, `http://${EP}/`);
    expect(body, d!.output().slice(-2000)).not.toBeNull();
    const j = JSON.parse(body!) as { service: string; path: string; from: string };
    expect(j).toMatchObject({ service: 'web', path: '/' });
    expect(j.from.startsWith(`${EP}:`)).toBe(true);
    const v = await endpointView(d!, 'web-ep');
    expect(v.status).toBe('ACCEPTED');
    expect(v.ip).toBe(EP);
    expect(v.flowsCreated).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('the gateway\'s DNS responder answers the endpoint name; other names go to the VPC\'s resolver', async () => {
    const a = await dnsQuery(site, DNS, 'WEB.Endpoint.Internal');
    expect(a).toMatchObject({ rcode: 'NOERROR', aa: true, answers: [{ type: 'A', data: EP }] });
    expect(await dnsQuery(site, DNS, 'web.endpoint.internal', 'AAAA')).toMatchObject({ rcode: 'NOERROR', answers: [] });
    // forwarded: the VPC's resolver knows corp.internal, and says NXDOMAIN for the rest
    expect(await dnsQuery(site, DNS, 'db.corp.internal')).toMatchObject({ rcode: 'NOERROR', answers: [{ type: 'A', data: ADDR.vpcHost }] });
    expect((await dnsQuery(site, DNS, 'nope.example')).rcode).toBe('NXDOMAIN');
  }, 30_000);

  it('the README shell block runs as written on the site host: by address and by name', async () => {
    const r = await topo.exec('siteHost', 'sh', ['-c', `set -e\n${siteShell}`], { timeoutMs: 30_000, allowFail: true });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    // curl prints the two JSON answers back to back
    const answers = r.stdout.replace(/\}\s*\{/g, '}\n{').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { from: string });
    expect(answers).toHaveLength(2);
    for (const a of answers) expect(a.from.startsWith(`${EP}:`)).toBe(true);
  }, 30_000);

  it('UDP through the endpoint: the reply comes from the endpoint address and service port', async () => {
    const r = await udpExchange(site, EP, 53, 'hello-udp');
    expect(r.error).toBeUndefined();
    expect(r.from).toBe(`${EP}:53`);
    expect(r.reply).toMatch(new RegExp(`^echo ${EP.replace(/\./g, '\\.')}:\\d+ hello-udp$`));
  }, 30_000);

  it('a port the service does not map gets no answer and counts as endpointNoPort', async () => {
    const before = dropCount(await endpointView(d!, 'web-ep'), 'endpointNoPort');
    expect(await curl(site, `http://${EP}:81/`, 2)).toBeNull();
    expect((await udpExchange(site, EP, 54, 'nobody')).error).toBe('timeout');
    await waitFor(async () => dropCount(await endpointView(d!, 'web-ep'), 'endpointNoPort') >= before + 2 || undefined,
      { timeoutMs: 5000, intervalMs: 300, what: 'endpointNoPort to count both' });
  }, 30_000);

  it('1,000 concurrent TCP flows through one endpoint each get their own answer', async () => {
    const before = (await endpointView(d!, 'web-ep')).flowsCreated;
    const r = await runClient<FlowsResult>(site, 'flows', { address: EP, port: 80, count: 1000, deadlineMs: 25_000 }, 45_000);
    expect(r, JSON.stringify(r)).toMatchObject({ ok: 1000, failed: 0, wrong: 0 });
    const v = await endpointView(d!, 'web-ep');
    expect(v.flowsCreated - before).toBeGreaterThanOrEqual(1000);
    expect(dropCount(v, 'endpointTableFull')).toBe(0);
  }, 60_000);

  it('with gateway.endpoints.maxFlows 20: new flows are refused and counted, the 20 open ones keep flowing', async () => {
    await d!.stop();
    cfg.gateway.endpoints = { ...cfg.gateway.endpoints, maxFlows: 20 };
    d = await startGateway();
    await tunnelUp();
    const r = await runClient<HoldResult>(site, 'hold', { address: EP, port: 80, count: 20, probes: 5, probeTimeoutMs: 2000 }, 30_000);
    expect(r, JSON.stringify(r)).toEqual({ held: 20, probesOk: 0, probesFailed: 5, heldAlive: 20 });
    const v = await endpointView(d!, 'web-ep');
    expect(dropCount(v, 'endpointTableFull')).toBeGreaterThanOrEqual(5);
    expect(v.flowsCreated).toBeLessThanOrEqual(20);
  }, 90_000);
});
