// VPC endpoints for SSL VPN users, through `vpcgw start` and the REAL openvpn 2.6 client: the README's
// "Remote user to a cloud service by name" walk-through (its YAML loaded as written, with the lab's
// addresses, TUN name and certificate paths put in), plus what the README promises around it:
//  - alice (server p2c, on the whitelist) reaches the endpoint by address and by the name the pushed
//    DNS server answers; the README's shell block runs as written (its openvpn line with the lab's
//    own resolv.conf in place of update-resolv-conf, which would rewrite the host's);
//  - bob (server contractors, not on the whitelist) reaches the VPC but not the endpoint: no answer,
//    endpointDenied counted;
//  - approval: the endpoint of an approvalRequired service is PENDING_ACCEPTANCE and passes nothing
//    (endpointClosed); `vpcgw endpoint accept` lets traffic pass; `vpcgw endpoint reject` cuts an open
//    flow at once.
//
//   alice (c1, 10.99.1.2) --\                                         /-- vpc host 10.2.0.10 (+ 10.2.0.2 resolver)
//   bob   (c2, 10.99.2.2) ---- gw: vpcgw, p2c :1194, contractors :1195 --
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { NsDaemon } from '../helpers/api.js';
import { LAB, createLab, ensureBuilt, pingOk, writePem, type Lab } from '../helpers/openvpn.js';
import { makeTestPki } from '../helpers/pki.js';
import { sleep, waitFor, type ManagedProcess } from '../helpers/proc.js';
import { VPCGW_CLI } from '../helpers/vpcgw.js';
import {
  curl,
  dnsQuery,
  dropCount,
  endpointView,
  expectDataPlane,
  netnsResolvConf,
  readmeBlocks,
  startStream,
  startVpcService,
  streamTicks,
  type NsRun,
  type NsSpawn,
} from '../helpers/vpc-service.js';

const EP = '10.2.100.10';
const SECRET_EP = '10.2.100.20';
const DNS = '10.2.255.53';
const RESOLVER = '10.2.0.2';

interface ServerCfg {
  name: string;
  serverCert: { cert: string; key: string };
  clientCa: string;
  [k: string]: unknown;
}
interface GwConfig {
  gateway: Record<string, unknown> & { dns: { address: string } };
  vpnServers: ServerCfg[];
  endpointServices: Record<string, unknown>[];
  endpoints: Record<string, unknown>[];
}

let lab: Lab;
let d: NsDaemon | null = null;
let shellLines: string[] = [];
let alice: ManagedProcess | null = null;
const cleanups: (() => void)[] = [];
const inNs = (ns: () => string): NsRun => (cmd, args, o) => lab.exec(ns(), cmd, args, o);
const c1: NsRun = inNs(() => lab.ns.c1);
const c2: NsRun = inNs(() => lab.ns.c2);
const spawnC1: NsSpawn = (cmd, args, label) => lab.spawnIn(lab.ns.c1, cmd, args, label);

/** `vpcgw ARGS` in the gateway namespace, as the README's `sudo vpcgw ...` lines run it. */
const shellPrelude = (): string => [
  'set -e',
  `cd ${lab.dir}`,
  'sudo() { "$@"; }',
  `vpcgw() { ${process.execPath} ${VPCGW_CLI} "$@" --control ${d!.controlPath}; }`,
].join('\n');

async function gwShell(line: string): Promise<string> {
  const r = await lab.exec(lab.ns.gw, 'sh', ['-c', `${shellPrelude()}\n${line}`], { timeoutMs: 30_000, allowFail: true });
  if (r.code !== 0) throw new Error(`${line}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** openvpn --config PROFILE in `ns`, resolved once the tunnel is up. */
async function connect(ns: string, profile: string, name: string): Promise<ManagedProcess> {
  const logPath = join(lab.dir, `${name}.log`);
  const p = lab.spawnIn(ns, 'openvpn', ['--config', profile, '--log', logPath, '--verb', '4', '--connect-retry-max', '3'], `openvpn ${name}`);
  const log = (): string => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  await waitFor(async () => {
    if (!p.running) throw new Error(`openvpn ${name} exited:\n${log().slice(-3000)}`);
    return log().includes('Initialization Sequence Completed');
  }, { timeoutMs: 30_000, intervalMs: 200, what: `openvpn ${name} connected` }).catch((e: Error) => {
    throw new Error(`${e.message}\n--- vpcgw ---\n${d?.output().slice(-3000)}`);
  });
  (p as ManagedProcess & { logText?: () => string }).logText = log;
  return p;
}

beforeAll(async () => {
  await ensureBuilt();
  const blocks = readmeBlocks('#### Remote user to a cloud service by name', '## Management API');
  const yaml = blocks.find((b) => b.lang === 'yaml')?.text;
  const sh = blocks.find((b) => b.lang === 'sh')?.text;
  if (!yaml || !sh) throw new Error('README "Remote user to a cloud service by name" lost its YAML or shell block');
  shellLines = sh.split('\n').filter((l) => l.trim() !== '');
  lab = await createLab();
  await lab.exec(lab.ns.vpc, 'ip', ['addr', 'add', `${RESOLVER}/24`, 'dev', 'eth0']);
  await startVpcService((cmd, args, label) => lab.spawnIn(lab.ns.vpc, cmd, args, label), {
    resolver: { address: RESOLVER, zone: 'corp.internal', answer: LAB.vpcHost },
  });
  const pki = makeTestPki();
  // the CA key beside the CA certificate, so `vpcgw client-config` can issue certificates
  const ca = writePem(lab, 'ca.crt', pki.ca.cert);
  writePem(lab, 'ca.key', pki.ca.key);
  const serverCert = { cert: writePem(lab, 'server.crt', pki.server.cert), key: writePem(lab, 'server.key', pki.server.key) };

  const cfg = parse(yaml) as GwConfig;
  const dataDir = join(lab.dir, 'var');
  cfg.gateway.dataDir = dataDir;
  cfg.gateway.publicAddresses = [LAB.gwForClient[0]];
  cfg.gateway.tun = { name: `${lab.id}t`, mtu: 1500 };
  cfg.vpnServers[0]!.serverCert = serverCert;
  cfg.vpnServers[0]!.clientCa = ca;
  // not in the README: a second server that is not on the whitelist, and a service that needs approval
  cfg.vpnServers.push({
    ...cfg.vpnServers[0]!,
    name: 'contractors',
    port: 1195,
    clientCidr: '10.9.0.0/24',
  });
  cfg.endpointServices.push({
    name: 'secret',
    backend: { address: LAB.vpcHost },
    ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 8080 }],
    approvalRequired: true,
    whitelist: ['vpnServer:p2c'],
  });
  cfg.endpoints.push({ name: 'secret-ep', service: 'secret', address: SECRET_EP, dnsName: 'secret.endpoint.internal' });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const configPath = join(lab.dir, 'vpcgw.yaml');
  writeFileSync(configPath, stringify(cfg), { mode: 0o600 });
  d = await NsDaemon.start({ name: lab.ns.gw, exec: (cmd, args, o) => lab.exec(lab.ns.gw, cmd, args, o) }, {
    dataDir, config: configPath, label: 'vpcgw vpcep-client', timeoutMs: 30_000,
  });
  await expectDataPlane(d);
  await d.createToken();
}, 120_000);

afterAll(async () => {
  for (const c of cleanups.splice(0)) c();
  await alice?.stop('SIGTERM', 5000);
  if (d) await d.stop();
  await lab?.destroy();
});

describe('VPC endpoint for SSL VPN clients (README walk-through)', () => {
  it('alice, with the README profile, reaches the endpoint by address and by the name the pushed DNS server answers', async () => {
    // line 1: the profile
    expect(shellLines[0]).toBe('sudo vpcgw client-config alice --server p2c > alice.ovpn');
    await gwShell(shellLines[0]!);
    // line 2: openvpn with that profile; the lab writes the namespace's resolv.conf instead of update-resolv-conf
    expect(shellLines[1]).toMatch(/^sudo openvpn --config alice\.ovpn\b/);
    alice = await connect(lab.ns.c1, join(lab.dir, 'alice.ovpn'), 'alice');
    const log = (alice as ManagedProcess & { logText: () => string }).logText();
    const push = /PUSH_REPLY[^']*/.exec(log)?.[0] ?? '';
    expect(push).toContain(`dhcp-option DNS ${DNS}`);
    cleanups.push(netnsResolvConf(lab.ns.c1, DNS));
    // the name, straight from the responder
    expect(await dnsQuery(c1, DNS, 'web.endpoint.internal')).toMatchObject({ rcode: 'NOERROR', answers: [{ type: 'A', data: EP }] });
    // line 3: curl by name, as written
    expect(shellLines[2]).toBe('curl -s http://web.endpoint.internal/');
    const r = await lab.exec(lab.ns.c1, 'sh', ['-c', shellLines[2]!], { timeoutMs: 20_000, allowFail: true });
    expect(r.code, `${r.stdout}${r.stderr}\n${d!.output().slice(-2000)}`).toBe(0);
    const j = JSON.parse(r.stdout) as { service: string; from: string };
    expect(j.service).toBe('web');
    expect(j.from.startsWith(`${EP}:`)).toBe(true);
    // and by address
    expect(JSON.parse((await curl(c1, `http://${EP}/`))!)).toMatchObject({ service: 'web' });
    expect((await endpointView(d!, 'web-ep')).flowsCreated).toBeGreaterThanOrEqual(2);
  }, 90_000);

  it('bob, on a server that is not on the whitelist, reaches the VPC but not the endpoint (endpointDenied)', async () => {
    await gwShell(`vpcgw client-config bob --server contractors --host ${LAB.gwForClient[1]} > bob.ovpn`);
    const bob = await connect(lab.ns.c2, join(lab.dir, 'bob.ovpn'), 'bob');
    try {
      const p = await pingOk(lab, lab.ns.c2, LAB.vpcHost, 2);
      expect(p.received, p.out).toBe(2);
      const before = dropCount(await endpointView(d!, 'web-ep'), 'endpointDenied');
      expect(await curl(c2, `http://${EP}/`, 2)).toBeNull();
      await waitFor(async () => dropCount(await endpointView(d!, 'web-ep'), 'endpointDenied') > before || undefined,
        { timeoutMs: 5000, intervalMs: 300, what: 'endpointDenied counted for web-ep' });
    } finally {
      await bob.stop('SIGTERM', 5000);
    }
  }, 90_000);

  it('approval: PENDING_ACCEPTANCE passes nothing; accept lets traffic pass; reject cuts an open flow', async () => {
    expect((await endpointView(d!, 'secret-ep')).status).toBe('PENDING_ACCEPTANCE');
    expect(await curl(c1, `http://${SECRET_EP}/`, 2)).toBeNull();
    expect(dropCount(await endpointView(d!, 'secret-ep'), 'endpointClosed')).toBeGreaterThanOrEqual(1);

    await gwShell('vpcgw endpoint accept secret secret-ep');
    expect((await endpointView(d!, 'secret-ep')).status).toBe('ACCEPTED');
    const ok = await waitFor(async () => (await curl(c1, `http://${SECRET_EP}/`, 2)) ?? undefined,
      { timeoutMs: 10_000, intervalMs: 300, what: 'secret-ep to answer after accept' });
    expect(JSON.parse(ok)).toMatchObject({ path: '/' });

    const stream = startStream(spawnC1, SECRET_EP, 80, 30_000);
    try {
      await waitFor(async () => streamTicks(stream).length >= 3 || undefined, { timeoutMs: 10_000, intervalMs: 100, what: 'the open flow to stream' });
      await gwShell('vpcgw endpoint reject secret secret-ep');
      const cutAt = Date.now();
      await sleep(2500);
      // a tick already on its way may land just after the reject; nothing after that
      expect(streamTicks(stream).filter((t) => t > cutAt + 500)).toEqual([]);
    } finally {
      await stream.stop('SIGTERM', 3000);
    }
    expect((await endpointView(d!, 'secret-ep')).status).toBe('REJECTED');
    expect(await curl(c1, `http://${SECRET_EP}/`, 2)).toBeNull();
    // web-ep is not touched by another service's reject
    expect(JSON.parse((await curl(c1, `http://${EP}/`))!)).toMatchObject({ service: 'web' });
  }, 90_000);
});
