// TEST HELPERS for the VPC endpoint interop tests: a "service" in a VPC namespace (an HTTP server, a
// UDP echo service and a tiny DNS resolver standing in for the VPC's DNS), small client programs run
// in a site or client namespace (a DNS query, a UDP exchange, N concurrent HTTP flows, long-lived
// streaming flows), the endpoint counters from the management API, and a per-namespace resolv.conf.
// Programs are plain Node ESM passed with -e, so they run in any namespace without a build; every
// one of them is bounded by its own deadline and by the caller's timeout.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './openvpn.js';
import { waitFor, type ManagedProcess, type RunResult } from './proc.js';

/** Runs a program inside one namespace (Topology.exec / Lab.exec bound to a namespace). */
export type NsRun = (cmd: string, args: readonly string[], o?: { timeoutMs?: number; allowFail?: boolean }) => Promise<RunResult>;
/** Spawns a long-running program inside one namespace; the lab stops it at teardown. */
export type NsSpawn = (cmd: string, args: readonly string[], label: string) => ManagedProcess;

const REQUIRE_DNS_PACKET = `import { createRequire } from 'node:module';
const dnsPacket = createRequire(${JSON.stringify(join(REPO_ROOT, 'package.json'))})('dns-packet');`;

/**
 * The backend: `GET /...` answers JSON {service, path, from: "addr:port"} (the source the backend saw:
 * with an endpoint in between, the endpoint's address); `GET /hold` streams "tick N\n" every 200 ms
 * until the client goes away. UDP: "echo <source> <payload>". Resolver: any A query for a name under
 * `zone` gets `answer`, other types NODATA, other names NXDOMAIN.
 */
const SERVICE_PROGRAM = `${REQUIRE_DNS_PACKET}
import http from 'node:http';
import dgram from 'node:dgram';
const o = JSON.parse(process.argv[1]);
const ready = [];
const srv = http.createServer((req, res) => {
  const from = req.socket.remoteAddress + ':' + req.socket.remotePort;
  if (req.url.startsWith('/hold')) {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let n = 0;
    const t = setInterval(() => res.write('tick ' + n++ + '\\n'), 200);
    req.socket.on('close', () => clearInterval(t));
    return;
  }
  const body = JSON.stringify({ service: o.name, path: req.url, from });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
});
srv.maxConnections = 5000;
ready.push(new Promise((r) => srv.listen(o.httpPort, '0.0.0.0', 4096, r)));
const echo = dgram.createSocket('udp4');
echo.on('message', (m, ri) => echo.send(Buffer.concat([Buffer.from('echo ' + ri.address + ':' + ri.port + ' '), m]), ri.port, ri.address));
ready.push(new Promise((r) => echo.bind(o.udpPort, '0.0.0.0', r)));
if (o.resolver) {
  const dns = dgram.createSocket('udp4');
  dns.on('message', (m, ri) => {
    let q;
    try { q = dnsPacket.decode(m); } catch { return; }
    const qq = q.questions && q.questions[0];
    if (q.type !== 'query' || !qq) return;
    const inZone = qq.name.toLowerCase().endsWith('.' + o.resolver.zone);
    const answers = inZone && qq.type === 'A' ? [{ type: 'A', name: qq.name, ttl: 5, data: o.resolver.answer }] : [];
    dns.send(dnsPacket.encode({ type: 'response', id: q.id, flags: (inZone ? 0 : 3) | dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers }), ri.port, ri.address);
  });
  ready.push(new Promise((r) => dns.bind(o.resolver.port, o.resolver.address, r)));
}
await Promise.all(ready);
console.log('READY');
process.on('SIGTERM', () => process.exit(0));
`;

export interface VpcServiceOptions {
  /** shown in HTTP answers */
  name?: string;
  httpPort?: number;
  udpPort?: number;
  /** a stand-in for the VPC's DNS resolver (the gateway's DNS upstream) */
  resolver?: { address: string; port?: number; zone: string; answer: string };
}

/** Starts the backend service; resolves once every socket listens. */
export async function startVpcService(spawn: NsSpawn, o: VpcServiceOptions = {}): Promise<ManagedProcess> {
  const args = {
    name: o.name ?? 'web',
    httpPort: o.httpPort ?? 8080,
    udpPort: o.udpPort ?? 5353,
    resolver: o.resolver ? { port: 53, ...o.resolver } : null,
  };
  const p = spawn(process.execPath, ['--input-type=module', '-e', SERVICE_PROGRAM, JSON.stringify(args)], 'vpc service');
  await waitFor(async () => {
    if (!p.running) throw new Error(`vpc service exited: ${p.output().slice(-2000)}`);
    return p.output().includes('READY');
  }, { timeoutMs: 10_000, intervalMs: 100, what: 'the VPC service to listen' });
  return p;
}

/**
 * Client programs, one JSON line out:
 *  dns   {server, port, name, type}            -> {rcode, answers: [{type, data}], aa}
 *  udp   {address, port, payload}              -> {reply, from} | {error}
 *  flows {address, port, count, deadlineMs}    -> {ok, failed, wrong, ms, errors: {...}}
 *  hold  {address, port, count, probes, probeTimeoutMs}
 *        opens `count` streaming flows, then tries `probes` new connections, then checks that every
 *        streaming flow still receives: -> {held, probesOk, probesFailed, heldAlive}
 *  stream {address, port} prints "tick <n> <Date.now()>" per chunk until killed (for cut-flow checks)
 */
const CLIENT_PROGRAM = `${REQUIRE_DNS_PACKET}
import dgram from 'node:dgram';
import net from 'node:net';
const [mode, json] = process.argv.slice(1);
const o = JSON.parse(json);
const out = (v) => { console.log(JSON.stringify(v)); process.exit(0); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function udpOnce(address, port, payload, timeoutMs) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); resolve({ error: 'timeout' }); }, timeoutMs);
    s.on('message', (m, ri) => { clearTimeout(t); s.close(); resolve({ reply: m, from: ri.address + ':' + ri.port }); });
    s.send(payload, port, address);
  });
}
function httpGet(address, port, path, timeoutMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: address, port });
    let data = '';
    const t = setTimeout(() => { s.destroy(); resolve({ error: 'timeout' }); }, timeoutMs);
    s.on('connect', () => s.write('GET ' + path + ' HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'));
    s.on('data', (d) => (data += d));
    s.on('error', (e) => { clearTimeout(t); resolve({ error: e.code || e.message }); });
    s.on('close', () => { clearTimeout(t); const i = data.indexOf('\\r\\n\\r\\n'); resolve(i < 0 ? { error: 'no answer' } : { body: data.slice(i + 4) }); });
  });
}
function stream(address, port) {
  const s = net.connect({ host: address, port });
  const st = { ticks: 0, connected: false, closed: false, socket: s };
  s.on('connect', () => { st.connected = true; s.write('GET /hold HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); });
  s.on('data', (d) => { st.ticks += (String(d).match(/tick/g) || []).length; if (mode === 'stream') process.stdout.write('tick ' + st.ticks + ' ' + Date.now() + '\\n'); });
  s.on('error', () => {});
  s.on('close', () => { st.closed = true; });
  return st;
}
if (mode === 'dns') {
  const q = dnsPacket.encode({ type: 'query', id: 4711, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: o.type || 'A', name: o.name }] });
  const r = await udpOnce(o.server, o.port || 53, q, 3000);
  if (r.error) out(r);
  const a = dnsPacket.decode(r.reply);
  out({ rcode: a.rcode, aa: a.flag_aa, id: a.id, answers: a.answers.map((x) => ({ type: x.type, data: x.data })) });
} else if (mode === 'udp') {
  const r = await udpOnce(o.address, o.port, Buffer.from(o.payload), 3000);
  out(r.error ? r : { reply: String(r.reply), from: r.from });
} else if (mode === 'flows') {
  const t0 = Date.now();
  const res = await Promise.all(Array.from({ length: o.count }, (_, i) => httpGet(o.address, o.port, '/flow/' + i, o.deadlineMs)));
  let ok = 0, failed = 0, wrong = 0; const errors = {};
  res.forEach((r, i) => {
    if (r.error) { failed++; errors[r.error] = (errors[r.error] || 0) + 1; return; }
    try { const j = JSON.parse(r.body); if (j.path === '/flow/' + i) ok++; else wrong++; } catch { wrong++; }
  });
  out({ ok, failed, wrong, ms: Date.now() - t0, errors });
} else if (mode === 'hold') {
  const held = Array.from({ length: o.count }, () => stream(o.address, o.port));
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline && held.some((h) => h.ticks === 0)) await sleep(100);
  const heldOk = held.filter((h) => h.ticks > 0).length;
  const probes = await Promise.all(Array.from({ length: o.probes }, (_, i) => httpGet(o.address, o.port, '/probe/' + i, o.probeTimeoutMs)));
  const before = held.map((h) => h.ticks);
  await sleep(1000);
  const heldAlive = held.filter((h, i) => h.ticks > before[i] && !h.closed).length;
  out({ held: heldOk, probesOk: probes.filter((p) => !p.error).length, probesFailed: probes.filter((p) => p.error).length, heldAlive });
} else if (mode === 'stream') {
  stream(o.address, o.port);
  setTimeout(() => process.exit(0), o.maxMs || 60000);
} else {
  out({ error: 'unknown mode ' + mode });
}
`;

export interface DnsResult {
  rcode?: string;
  aa?: boolean;
  answers?: { type: string; data: unknown }[];
  error?: string;
}
export interface FlowsResult {
  ok: number;
  failed: number;
  wrong: number;
  ms: number;
  errors: Record<string, number>;
}
export interface HoldResult {
  held: number;
  probesOk: number;
  probesFailed: number;
  heldAlive: number;
}

/** Runs a client program in a namespace and parses its JSON line. */
export async function runClient<T>(nsRun: NsRun, mode: 'dns' | 'udp' | 'flows' | 'hold', args: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
  const r = await nsRun(process.execPath, ['--input-type=module', '-e', CLIENT_PROGRAM, mode, JSON.stringify(args)], { timeoutMs, allowFail: true });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`client program ${mode} printed no JSON (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stdout.slice(-1000)} ${r.stderr.slice(-1000)}`);
  }
}

export const dnsQuery = (nsRun: NsRun, server: string, name: string, type = 'A'): Promise<DnsResult> =>
  runClient<DnsResult>(nsRun, 'dns', { server, name, type }, 10_000);

export const udpExchange = (nsRun: NsRun, address: string, port: number, payload: string): Promise<{ reply?: string; from?: string; error?: string }> =>
  runClient(nsRun, 'udp', { address, port, payload }, 10_000);

/** A long-lived streaming flow (GET /hold) whose output lines are "tick <n> <ms since epoch>". */
export function startStream(spawn: NsSpawn, address: string, port: number, maxMs = 60_000): ManagedProcess {
  return spawn(process.execPath, ['--input-type=module', '-e', CLIENT_PROGRAM, 'stream', JSON.stringify({ address, port, maxMs })], 'stream flow');
}

/** Tick timestamps (ms since epoch) a stream printed so far. */
export function streamTicks(p: ManagedProcess): number[] {
  return [...p.output().matchAll(/^tick \d+ (\d+)$/gm)].map((m) => Number(m[1]));
}

/** `curl -s --max-time S URL` in a namespace: the body, or null when nothing came back. */
export async function curl(nsRun: NsRun, url: string, maxTimeSec = 3): Promise<string | null> {
  const r = await nsRun('curl', ['-s', '--max-time', String(maxTimeSec), url], { timeoutMs: (maxTimeSec + 5) * 1000, allowFail: true });
  return r.code === 0 ? r.stdout : null;
}

/**
 * `ip netns exec NS` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf: the namespace's
 * programs then resolve through `nameserver` (what a site's resolver or openvpn's
 * update-resolv-conf would set up). Returns the cleanup.
 */
export function netnsResolvConf(ns: string, nameserver: string): () => void {
  const dir = join('/etc/netns', ns);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'resolv.conf'), `nameserver ${nameserver}\noptions timeout:2 attempts:2\n`);
  liveResolvDirs.add(dir);
  if (!resolvExitHook) {
    // a crashed run must not leave files under /etc behind
    resolvExitHook = true;
    process.on('exit', () => {
      for (const d of liveResolvDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return () => {
    rmSync(dir, { recursive: true, force: true });
    liveResolvDirs.delete(dir);
  };
}
const liveResolvDirs = new Set<string>();
let resolvExitHook = false;

// ---------------------------------------------------------------------------------------------
// endpoint counters, from the management API's /v1/vpc-endpoints views

export interface EndpointView {
  name: string;
  status: string;
  ip: string | undefined;
  flows: number;
  flowsCreated: number;
  drops: Record<string, number>;
  raw: Record<string, unknown>;
}

/** The API view, with counters read whether the view spells them snake_case or camelCase, flat or under `counters`. */
export function normalizeEndpointView(v: Record<string, unknown>): EndpointView {
  const c = (typeof v.counters === 'object' && v.counters !== null ? v.counters : v) as Record<string, unknown>;
  const num = (...keys: string[]): number => {
    for (const k of keys) if (typeof c[k] === 'number') return c[k] as number;
    for (const k of keys) if (typeof v[k] === 'number') return v[k] as number;
    return 0;
  };
  const drops = (c.drops ?? v.drops ?? {}) as Record<string, number>;
  return {
    name: String(v.name),
    status: String(v.status),
    ip: typeof v.ip === 'string' ? v.ip : typeof v.address === 'string' ? v.address : undefined,
    flows: num('flows'),
    flowsCreated: num('flows_created', 'flowsCreated'),
    drops: Object.fromEntries(Object.entries(drops).map(([k, n]) => [k.replace(/_([a-z])/g, (_, x: string) => x.toUpperCase()), Number(n)])),
    raw: v,
  };
}

/** A drop counter by its reason in src/vpcep/policy.ts spelling (endpointDenied, ...), 0 when absent. */
export function dropCount(v: EndpointView, reason: string): number {
  return v.drops[reason] ?? v.drops[reason.replace(/^endpoint/, '').replace(/^./, (x) => x.toLowerCase())] ?? 0;
}

/** Something with the NsDaemon `api` method (test/helpers/api.ts). */
export interface ApiClient {
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: string; json: unknown }>;
}

export async function endpointView(d: ApiClient, name: string): Promise<EndpointView> {
  const r = await d.api('GET', `/v1/vpc-endpoints/${encodeURIComponent(name)}`);
  if (r.status !== 200 || typeof r.json !== 'object' || r.json === null) {
    throw new Error(`GET /v1/vpc-endpoints/${name}: HTTP ${r.status} ${r.body.slice(0, 500)}`);
  }
  return normalizeEndpointView(r.json as Record<string, unknown>);
}

/**
 * npm test runs the interop suites once per data plane (scripts/test.mjs, VPCGW_DATAPLANE): make sure
 * the daemon runs the one asked for, from `vpcgw status --json` (gateway.dataPlane).
 */
export async function expectDataPlane(d: { status(): Promise<Record<string, any>>; output(): string }): Promise<void> {
  const want = process.env.VPCGW_DATAPLANE === 'ts' ? 'typescript' : 'native';
  const got = String((await d.status()).gateway?.dataPlane ?? '');
  if (got !== want) throw new Error(`vpcgw runs the ${got} data plane, expected ${want}: ${d.output().slice(-2000)}`);
}

// ---------------------------------------------------------------------------------------------
// README blocks

/** The fenced blocks of README.md between two headings (the first heading's text may be a prefix). */
export function readmeBlocks(from: string, to: string): { lang: string; text: string }[] {
  const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = md.indexOf(from);
  if (start < 0) throw new Error(`README has no ${JSON.stringify(from)}`);
  const end = md.indexOf(to, start + from.length);
  const section = md.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, text: m[2]! }));
}
