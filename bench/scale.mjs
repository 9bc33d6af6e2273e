#!/usr/bin/env node
// Scale on one box, each figure beside its anchor measured in the same run:
//   tunnels: one charon (the initiator) with --tunnels connections, each from its own address
//            (198.18.0.0/15, RFC 2544's benchmarking range) and site subnet, all started at once
//            against (a) vpcgw and (b) a second charon as responder. Setup rate (IKE SAs with an
//            installed CHILD_SA per second, from the initiator's `swanctl --stats`), the responder's
//            memory per tunnel (RSS growth / tunnels), and the status query's latency with every
//            tunnel up (`vpcgw status --json` beside `swanctl --list-sas`). A sample of tunnels
//            carries pings from its site subnet to the VPC host.
//   clients: our OpenVPN load tool (test/helpers/ovpn-load.ts: the stock client's wire protocol,
//            password logins, echo requests through the data channel) with --clients sessions
//            against (a) vpcgw's SSL VPN and (b) a stock `openvpn --server` with the same password
//            check, plus two stock openvpn clients beside the load on each. Handshakes per second,
//            the server's memory per client, echo replies and the aggregate data-channel rate.
//
//   sslcpu:  the SSL VPN server's CPU-seconds per GB carried beside the stock openvpn server's and
//            the ESP path's, from bench/e2e/p2c.mjs (one openvpn client, iperf3, 2 × 6 s).
//
//   npm run bench:scale [-- --tunnels 1000 --clients 500 --only sslcpu,tunnels,clients --json]
//
// Needs root, strongSwan (charon + swanctl), openvpn and a built dist/ (npm run build). Namespaces
// are created here and deleted at the end; every wait is bounded.
import { readFileSync, writeFileSync, mkdirSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { ADDR, BENCH_PSK, CHARON, REPO_ROOT, VPCGW_CLI, createTopology, median, run, waitFor } from './e2e/lib.mjs';

const { values: opt } = parseArgs({
  options: {
    tunnels: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '32' },
    only: { type: 'string', default: 'sslcpu,tunnels,clients' },
    json: { type: 'boolean', default: false },
  },
});
const TUNNELS = Number(opt.tunnels);
const CLIENTS = Number(opt.clients);
const ONLY = new Set(opt.only.split(','));
const IKE = 'aes128gcm16-prfsha256-x25519';
const ESP = 'aes128gcm16';
const CHARON_PLUGINS = JSON.parse(readFileSync(new URL('../test/helpers/charon-plugins.json', import.meta.url), 'utf8')).join(' ');
// BENCH FIXTURE ONLY: not a real password.
const PASSWORD = 'bench-scale-fixture-password';

const siteAddr = (i) => `198.18.${(i + 1) >> 8}.${(i + 1) & 255}`;
const siteNet = (i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`;
const siteHostAddr = (i) => `10.${100 + (i >> 8)}.${i & 255}.1`;
const log = (...a) => console.error('bench:scale:', ...a);

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function ipBatch(topo, ns, lines) {
  const f = join(topo.workDir, `ip-batch-${ns}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, `${lines.join('\n')}\n`);
  await topo.exec(ns, 'ip', ['-batch', f], { timeoutMs: 60_000 });
}

function charonConf(dir) {
  return `charon {
    load = ${CHARON_PLUGINS}
    threads = 16
    plugins { vici { socket = unix://${join(dir, 'charon.vici')} } }
    filelog { lab { path = ${join(dir, 'charon.log')}
                    default = 0 } }
    syslog { daemon { default = -1 } }
}
`;
}

/** swanctl.conf with `n` connections; `side` 'site' (initiators, start at load) or 'cloud' (responders). */
function swanctlConf(n, side) {
  const conns = [];
  for (let i = 0; i < n; i++) {
    const [local, remote, lts, rts] = side === 'site'
      ? [siteAddr(i), ADDR.cloudGwOutside, siteNet(i), ADDR.vpcSubnet]
      : [ADDR.cloudGwOutside, siteAddr(i), ADDR.vpcSubnet, siteNet(i)];
    conns.push(`  t${i} { version = 2
    local_addrs = ${local}
    remote_addrs = ${remote}
    proposals = ${IKE}
    encap = yes
    local { auth = psk
      id = ${local} }
    remote { auth = psk
      id = ${remote} }
    children { net { local_ts = ${lts}
      remote_ts = ${rts}
      esp_proposals = ${ESP}
      start_action = ${side === 'site' ? 'start' : 'none'} } } }`);
  }
  return `connections {\n${conns.join('\n')}\n}\nsecrets {\n  ike-all { secret = "${BENCH_PSK}" }\n}\n`;
}

async function startCharon(topo, ns, dir, n, side) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'strongswan.conf'), charonConf(dir));
  writeFileSync(join(dir, 'swanctl.conf'), swanctlConf(n, side), { mode: 0o600 });
  const env = { ...process.env, STRONGSWAN_CONF: join(dir, 'strongswan.conf') };
  const proc = topo.spawnIn(ns, 'unshare', ['-m', 'sh', '-c', `mount -t tmpfs none /run && exec ${CHARON}`], { env });
  const swanctl = (args, o = {}) => run('swanctl', [...args, '--uri', `unix://${join(dir, 'charon.vici')}`], { env, timeoutMs: 60_000, ...o });
  await waitFor(async () => {
    if (!proc.running) throw new Error(`charon exited: ${proc.output()}`);
    return (await swanctl(['--version', '--daemon'], { allowFail: true, timeoutMs: 3000 })).code === 0;
  }, { timeoutMs: 15_000, intervalMs: 100, what: `charon in ${ns}` });
  return { proc, swanctl, load: () => swanctl(['--load-all', '--noprompt', '--file', join(dir, 'swanctl.conf')], { timeoutMs: 120_000 }) };
}

/** IKE SAs established (total minus half-open) on a charon, from `swanctl --stats`. */
async function establishedOn(charon) {
  const r = await charon.swanctl(['--stats'], { timeoutMs: 10_000 });
  const m = /IKE_SAs: (\d+) total, (\d+) half-open/.exec(r.stdout);
  return m ? Number(m[1]) - Number(m[2]) : 0;
}

/** `vpcgw status --json` as a user runs it (wall time, Node's start included) and the control call alone. */
async function vpcgwStatusMs(control) {
  const t = performance.now();
  const r = await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', control], { timeoutMs: 60_000 });
  const cliMs = performance.now() - t;
  const { controlCall } = await import(join(REPO_ROOT, 'dist/gateway/control.js'));
  const t2 = performance.now();
  await controlCall(control, 'status', {}, { timeoutMs: 60_000 });
  return { ms: performance.now() - t2, cliMs, status: JSON.parse(r.stdout) };
}

// ------------------------------------------------------------------------------------- tunnels

async function benchTunnels() {
  const topo = await createTopology();
  try {
    const siteLines = [];
    for (let i = 0; i < TUNNELS; i++) {
      siteLines.push(`addr add ${siteAddr(i)}/15 dev out0`, `addr add ${siteHostAddr(i)}/32 dev lo`);
    }
    await ipBatch(topo, 'siteGw', siteLines);
    await topo.exec('cloudGw', 'ip', ['route', 'add', '198.18.0.0/15', 'dev', 'out0']);
    const results = {};
    for (const responder of ['vpcgw', 'charon']) {
      log(`tunnels: ${TUNNELS} against ${responder} as responder`);
      let resp;
      let pid;
      let control;
      if (responder === 'vpcgw') {
        const dir = join(topo.workDir, 'vpcgw');
        mkdirSync(join(dir, 'var'), { recursive: true });
        const { stringify } = await import('yaml');
        const config = {
          gateway: { name: 'scale', dataDir: join(dir, 'var'), publicAddresses: [ADDR.cloudGwOutside], vpcSubnets: [ADDR.vpcSubnet], tun: { name: 'vpcgw0', mtu: 1400 }, logLevel: 'warn' },
          customerGateways: Array.from({ length: TUNNELS }, (_, i) => ({ name: `s${i}`, address: siteAddr(i), id: siteAddr(i) })),
          vpnConnections: Array.from({ length: TUNNELS }, (_, i) => ({
            name: `s${i}-main`, customerGateway: `s${i}`, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [siteNet(i)],
            auth: { psk: BENCH_PSK }, ike: { proposals: IKE, lifetime: '4h', localId: ADDR.cloudGwOutside },
            esp: { proposals: ESP, lifetime: '1h' }, startAction: 'none',
          })),
        };
        const configPath = join(dir, 'vpcgw.yaml');
        control = join(dir, 'control.sock');
        writeFileSync(configPath, stringify(config), { mode: 0o600 });
        const proc = topo.spawnIn('cloudGw', process.execPath, [VPCGW_CLI, 'start', '--config', configPath, '--control', control]);
        await waitFor(async () => {
          if (!proc.running) throw new Error(`vpcgw exited: ${proc.output().slice(-3000)}`);
          return (await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', control], { allowFail: true, timeoutMs: 20_000 })).code === 0;
        }, { timeoutMs: 120_000, intervalMs: 500, what: 'vpcgw to start' });
        resp = { proc, stop: () => proc.stop('SIGTERM', 15_000) };
        pid = proc.pid;
      } else {
        const c = await startCharon(topo, 'cloudGw', join(topo.workDir, 'swan-cloud'), TUNNELS, 'cloud');
        await c.load();
        resp = { proc: c.proc, swanctl: c.swanctl, stop: () => c.proc.stop('SIGTERM', 15_000) };
        pid = c.proc.pid;
      }
      await new Promise((r) => setTimeout(r, 2000));
      const rssBefore = rssKiB(pid);
      const init = await startCharon(topo, 'siteGw', join(topo.workDir, `swan-site-${responder}`), TUNNELS, 'site');
      const t0 = performance.now();
      await init.load();
      let n = 0;
      await waitFor(async () => (n = await establishedOn(init)) >= TUNNELS, { timeoutMs: 300_000, intervalMs: 250, what: `${TUNNELS} IKE SAs (${n} so far)` });
      const setupSec = (performance.now() - t0) / 1000;
      await new Promise((r) => setTimeout(r, 2000));
      const rssAfter = rssKiB(pid);
      // status latency with every tunnel up: three queries, the median
      const lat = [];
      const cliLat = [];
      let installed = 0;
      for (let k = 0; k < 3; k++) {
        if (responder === 'vpcgw') {
          const s = await vpcgwStatusMs(control);
          lat.push(s.ms);
          cliLat.push(s.cliMs);
          installed = s.status.connections.filter((c) => c.state === 'ESTABLISHED' && c.children.some((ch) => ch.state === 'INSTALLED')).length;
        } else {
          const t = performance.now();
          const r = await resp.swanctl(['--list-sas', '--noblock'], { timeoutMs: 60_000 });
          lat.push(performance.now() - t);
          installed = (r.stdout.match(/INSTALLED/g) ?? []).length;
        }
      }
      // a sample of tunnels carries traffic
      const sample = Array.from({ length: Math.min(20, TUNNELS) }, (_, k) => Math.floor((k * TUNNELS) / Math.min(20, TUNNELS)));
      let pingsOk = 0;
      for (const i of sample) {
        const r = await topo.exec('siteGw', 'ping', ['-c', '2', '-i', '0.2', '-W', '2', '-I', siteHostAddr(i), ADDR.vpcHost], { allowFail: true, timeoutMs: 10_000 });
        if (/ [12] received/.test(r.stdout)) pingsOk++;
      }
      results[responder] = {
        setupSec: round(setupSec, 2),
        setupPerSec: round(TUNNELS / setupSec, 1),
        installed,
        rssBeforeMiB: round(rssBefore / 1024, 1),
        rssAfterMiB: round(rssAfter / 1024, 1),
        kibPerTunnel: round((rssAfter - rssBefore) / TUNNELS, 1),
        statusMs: round(median(lat), 0),
        ...(cliLat.length ? { statusCliMs: round(median(cliLat), 0) } : {}),
        sampledTunnelsWithPings: `${pingsOk}/${sample.length}`,
      };
      log(`tunnels: ${responder}: ${JSON.stringify(results[responder])}`);
      await init.proc.stop('SIGTERM', 20_000);
      await resp.stop();
    }
    return results;
  } finally {
    await topo.destroy();
  }
}

// ------------------------------------------------------------------------------------- clients

async function bundleLoadTool(dir) {
  const out = join(dir, 'ovpn-load.mjs');
  await build({ entryPoints: [join(REPO_ROOT, 'test/helpers/ovpn-load-main.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: out, logLevel: 'error' });
  return out;
}

async function makePki(dir) {
  // node-forge through the gateway's own PKI helper (dist/): a CA and a server certificate
  const { issueCertificate, validFor } = await import(join(REPO_ROOT, 'dist/gateway/pki.js'));
  const ca = issueCertificate({ cn: 'bench CA', isCa: true, ...validFor(30) }, null);
  const server = issueCertificate({ cn: 'bench server', isCa: false, eku: 'serverAuth', ...validFor(30) }, ca);
  const put = (n, t) => (writeFileSync(join(dir, n), t, { mode: 0o600 }), join(dir, n));
  return { ca: put('ca.crt', ca.pem.cert), cert: put('server.crt', server.pem.cert), key: put('server.key', server.pem.key), caPem: ca.pem.cert };
}

async function benchClients() {
  const topo = await createTopology();
  const dir = join(topo.workDir, 'clients');
  mkdirSync(dir, { recursive: true });
  try {
    // clients live in site-gw (the load tool) and site-host (two stock clients); the servers in cloud-gw
    await topo.exec('cloudGw', 'ip', ['route', 'add', ADDR.siteSubnet, 'via', ADDR.siteGwOutside]);
    const tool = await bundleLoadTool(dir);
    const pki = await makePki(dir);
    const { hashPassword } = await import(join(REPO_ROOT, 'dist/gateway/users.js'));
    const hash = await hashPassword(PASSWORD);
    const total = CLIENTS + 2;
    const user = (i) => `c${String(i + 1).padStart(4, '0')}`;
    const results = {};
    for (const server of ['vpcgw', 'openvpn']) {
      log(`clients: ${CLIENTS} load sessions + 2 stock clients against ${server}`);
      let proc;
      if (server === 'vpcgw') {
        const { stringify } = await import('yaml');
        mkdirSync(join(dir, 'var'), { recursive: true });
        const config = {
          gateway: { name: 'scale-p2c', dataDir: join(dir, 'var'), publicAddresses: [ADDR.cloudGwOutside], vpcSubnets: [ADDR.vpcSubnet], tun: { name: 'vpcgw0', mtu: 1500, address: '10.8.0.1/22' }, logLevel: 'warn' },
          vpnServers: [{
            name: 'p2c', protocols: ['udp'], port: 1194, clientCidr: '10.8.0.0/22', localSubnets: [ADDR.vpcSubnet],
            auth: { type: 'password' }, serverCert: { cert: pki.cert, key: pki.key }, clientCa: pki.ca,
            dataCiphers: ['AES-256-GCM', 'AES-128-GCM'], maxConnections: total + 10, limits: { maxHalfOpen: 64, maxHalfOpenPerSource: 64 },
          }],
          users: Array.from({ length: total }, (_, i) => ({ name: user(i), passwordHash: hash })),
        };
        const configPath = join(dir, 'vpcgw.yaml');
        writeFileSync(configPath, stringify(config), { mode: 0o600 });
        const control = join(dir, 'control.sock');
        proc = topo.spawnIn('cloudGw', process.execPath, [VPCGW_CLI, 'start', '--config', configPath, '--control', control]);
        await waitFor(async () => {
          if (!proc.running) throw new Error(`vpcgw exited: ${proc.output().slice(-3000)}`);
          return proc.output().includes('is running');
        }, { timeoutMs: 60_000, intervalMs: 200, what: 'vpcgw to start' });
      } else {
        // the same check as vpcgw's: the password against the same scrypt hash, by a script
        // (OpenVPN's --auth-user-pass-verify; Python's hashlib.scrypt)
        const verify = join(dir, 'verify.py');
        writeFileSync(verify, `#!/usr/bin/python3
import base64, hashlib, hmac, os, sys
_, _, params, salt, want = ${JSON.stringify(hash)}.split('$')
p = dict(kv.split('=') for kv in params.split(','))
want = base64.b64decode(want)
got = hashlib.scrypt(os.environ.get('password', '').encode(), salt=base64.b64decode(salt), n=int(p['N']), r=int(p['r']), p=int(p['p']), maxmem=64 * 1024 * 1024, dklen=len(want))
sys.exit(0 if hmac.compare_digest(got, want) else 1)
`, { mode: 0o700 });
        proc = topo.spawnIn('cloudGw', 'openvpn', [
          '--dev', 'tun', '--dev-type', 'tun', '--proto', 'udp', '--port', '1194', '--server', '10.8.0.0', '255.255.252.0', '--topology', 'subnet',
          '--ca', pki.ca, '--cert', pki.cert, '--key', pki.key, '--dh', 'none', '--verify-client-cert', 'none', '--username-as-common-name',
          '--auth-user-pass-verify', verify, 'via-env', '--script-security', '3', '--max-clients', String(total + 10),
          '--data-ciphers', 'AES-256-GCM:AES-128-GCM', '--push', `route 10.2.0.0 255.255.0.0`, '--keepalive', '10', '120', '--verb', '1',
        ]);
        await waitFor(async () => {
          if (!proc.running) throw new Error(`openvpn exited: ${proc.output().slice(-3000)}`);
          return proc.output().includes('Initialization Sequence Completed');
        }, { timeoutMs: 30_000, intervalMs: 200, what: 'openvpn --server to start' });
      }
      await new Promise((r) => setTimeout(r, 1500));
      const rssBefore = rssKiB(proc.pid);
      // two stock clients beside the load
      const stock = [];
      for (let r = 0; r < 2; r++) {
        const auth = join(dir, `stock${r}.auth`);
        writeFileSync(auth, `${user(CLIENTS + r)}\n${PASSWORD}\n`, { mode: 0o600 });
        const logPath = join(dir, `${server}-stock${r}.log`);
        stock.push({ logPath, proc: topo.spawnIn('siteHost', 'openvpn', ['--client', '--dev', `tun${r}`, '--dev-type', 'tun', '--proto', 'udp', '--remote', ADDR.cloudGwOutside, '1194', '--nobind',
          '--ca', pki.ca, '--remote-cert-tls', 'server', '--auth-user-pass', auth, '--auth-retry', 'none', '--route-nopull', '--verb', '3', '--log', logPath,
          '--connect-retry', '1', '--connect-retry-max', '20']) });
      }
      const optsFile = join(dir, `load-${server}.json`);
      writeFileSync(optsFile, JSON.stringify({
        host: ADDR.cloudGwOutside, port: 1194, bind: ADDR.siteGwOutside, ca: pki.caPem, userPrefix: 'c', userDigits: 4, password: PASSWORD,
        clients: CLIENTS, concurrency: Number(opt.concurrency), pingTarget: ADDR.vpcHost, pingsPerClient: 50, pingBytes: 1200, pingWindow: 8,
        connectTimeoutMs: 240_000, pingTimeoutMs: 60_000,
      }));
      const r = await topo.exec('siteGw', process.execPath, [tool, optsFile], { timeoutMs: 330_000 });
      const load = JSON.parse(r.stdout.trim().split('\n').pop());
      const rssAfter = rssKiB(proc.pid);
      let stockUp = 0;
      for (const s of stock) {
        let text = '';
        try { text = readFileSync(s.logPath, 'utf8'); } catch {}
        if (text.includes('Initialization Sequence Completed')) stockUp++;
      }
      results[server] = {
        connected: load.connected,
        failed: load.failed.length,
        handshakesPerSec: load.handshakesPerSec,
        handshakeP50Ms: load.handshakeP50Ms,
        handshakeP95Ms: load.handshakeP95Ms,
        pings: `${load.pingsAnswered}/${load.pingsSent}`,
        clientsWithTraffic: load.clientsWithTraffic,
        aggregateMbps: round(load.throughputBitsPerSec / 1e6, 1),
        kibPerClient: round((rssAfter - rssBefore) / CLIENTS, 1),
        stockClientsUp: `${stockUp}/2`,
      };
      log(`clients: ${server}: ${JSON.stringify(results[server])}`);
      for (const s of stock) await s.proc.stop('SIGTERM', 5000);
      await proc.stop('SIGTERM', 15_000);
      rmSync(join(dir, 'var'), { recursive: true, force: true });
    }
    return results;
  } finally {
    await topo.destroy();
  }
}

function round(x, d) {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
const ratio = (a, b) => (b > 0 ? round(a / b, 2) : NaN);

/** bench/e2e/p2c.mjs's summary: the server CPU-per-GB line and the ESP path's. */
async function benchSslCpu() {
  log('sslcpu: bench/e2e/p2c.mjs --seconds 6 --reps 2');
  const r = await run(process.execPath, [join(REPO_ROOT, 'bench/e2e/p2c.mjs'), '--seconds', '6', '--reps', '2'], { timeoutMs: 400_000 });
  const lines = r.stdout.split('\n').filter((l) => /CPU per GB|ESP path/.test(l)).map((l) => l.trim());
  const m = /vpcgw ([\d.]+) s, openvpn server ([\d.]+) s/.exec(r.stdout);
  const esp = /ESP path .*?, ([\d.]+) CPU-s\/GB/.exec(r.stdout);
  return { vpcgwCpuPerGb: m ? Number(m[1]) : NaN, openvpnCpuPerGb: m ? Number(m[2]) : NaN, espCpuPerGb: esp ? Number(esp[1]) : NaN, lines };
}

const out = {};
const started = performance.now();
if (ONLY.has('sslcpu')) out.sslcpu = await benchSslCpu();
if (ONLY.has('tunnels')) out.tunnels = await benchTunnels();
if (ONLY.has('clients')) out.clients = await benchClients();
out.seconds = round((performance.now() - started) / 1000, 0);

if (opt.json) {
  console.log(JSON.stringify(out));
} else {
  if (out.sslcpu) {
    const c = out.sslcpu;
    console.log(`\nSSL VPN data path, one openvpn 2.6 client, AES-256-GCM over UDP (server CPU-seconds per GB carried):`);
    console.log(`  vpcgw ${c.vpcgwCpuPerGb}, openvpn server ${c.openvpnCpuPerGb}: ${ratio(c.vpcgwCpuPerGb, c.openvpnCpuPerGb)}x (target <= 0.33x); `
      + `ESP path ${c.espCpuPerGb}: SSL/ESP ${ratio(c.vpcgwCpuPerGb, c.espCpuPerGb)}x (target <= 1.5x)`);
  }
  if (out.tunnels) {
    const v = out.tunnels.vpcgw;
    const c = out.tunnels.charon;
    console.log(`\n${TUNNELS} site tunnels (one charon initiating), responder:     vpcgw      charon     ratio`);
    console.log(`  setup rate (IKE SAs/s)                                  ${String(v.setupPerSec).padStart(8)}  ${String(c.setupPerSec).padStart(8)}  ${ratio(v.setupPerSec, c.setupPerSec)}x`);
    console.log(`  memory per tunnel (KiB RSS)                             ${String(v.kibPerTunnel).padStart(8)}  ${String(c.kibPerTunnel).padStart(8)}  ${ratio(v.kibPerTunnel, c.kibPerTunnel)}x`);
    console.log(`  status, all up (ms: vpcgw's control call | swanctl --list-sas) ${String(v.statusMs).padStart(6)}  ${String(c.statusMs).padStart(8)}  ${ratio(v.statusMs, c.statusMs)}x`);
    console.log(`  vpcgw status --json as a user runs it (Node's start included) ${String(v.statusCliMs).padStart(6)} ms`);
    console.log(`  installed / sampled tunnels passing pings               ${v.installed}, ${v.sampledTunnelsWithPings}   ${c.installed}, ${c.sampledTunnelsWithPings}`);
  }
  if (out.clients) {
    const v = out.clients.vpcgw;
    const o = out.clients.openvpn;
    console.log(`\n${CLIENTS} SSL VPN clients (our load tool) + 2 stock clients, server:  vpcgw    openvpn   ratio`);
    console.log(`  connected                                              ${String(v.connected).padStart(8)}  ${String(o.connected).padStart(8)}`);
    console.log(`  handshakes/s                                           ${String(v.handshakesPerSec).padStart(8)}  ${String(o.handshakesPerSec).padStart(8)}  ${ratio(v.handshakesPerSec, o.handshakesPerSec)}x`);
    console.log(`  memory per client (KiB RSS)                            ${String(v.kibPerClient).padStart(8)}  ${String(o.kibPerClient).padStart(8)}  ${ratio(v.kibPerClient, o.kibPerClient)}x`);
    console.log(`  aggregate echo traffic (Mbit/s, load-tool bound)       ${String(v.aggregateMbps).padStart(8)}  ${String(o.aggregateMbps).padStart(8)}  ${ratio(v.aggregateMbps, o.aggregateMbps)}x`);
    console.log(`  echo replies / clients with traffic / stock clients up  ${v.pings} ${v.clientsWithTraffic} ${v.stockClientsUp}   ${o.pings} ${o.clientsWithTraffic} ${o.stockClientsUp}`);
  }
  console.log(`\n(${out.seconds} s)`);
}
