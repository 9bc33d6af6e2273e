#!/usr/bin/env node
// Point-to-cloud throughput: iperf3 TCP from an openvpn 2.6 client to a VPC host, through
//   (a) our SSL VPN server (SslServer + real TUN, test/helpers/openvpn-runner.mjs over dist/), and
//   (b) a stock `openvpn --server`,
// both UDP with AES-256-GCM, in one run. Prints Mbit/s for each and the ratio (a)/(b), and the
// server process's CPU time per GB carried (user + system from /proc/PID/stat over the iperf3 run,
// divided by the bytes iperf3 received): the figure that says how lean each data path is.
// The runner uses the native data plane (offload TUN; the OpenVPN data channel in C++) when the
// addon has it; VPCGW_SSL_NATIVE=0 keeps the data channel in JS, VPCGW_DATAPLANE=ts uses the
// TypeScript data plane (the line for vpcgw says which one ran).
//
// Beside them, the ESP path's figure for the same shape of traffic: a stock peer (strongSwan's charon
// with kernel-libipsec, as bench/e2e/s2c.mjs pairing (a) runs it) sending iperf3 TCP through a vpcgw
// gateway (`vpcgw start`, ESP aes128gcm16 in UDP 4500); the CPU per GB is the gateway's. --esp 0 skips it.
//
//   npm run bench:p2c [-- --seconds 8 --reps 3 --esp 1 --tcp 0 --queues 1 --rxmod US --perf FILE]
//
// Needs root, openvpn, iperf3, openssl. Everything runs in network namespaces created here and
// deleted at the end (also on Ctrl-C); processes are stopped by PID.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg('seconds', 8);
const REPS = arg('reps', 3);
const ESP = arg('esp', 1) !== 0;
// --tcp 1: the VPN over TCP (openvpn --proto tcp-client / tcp-server; vpcgw protocols [tcp]) instead of UDP
const TCP = arg('tcp', 0) !== 0;
// --rxmod US: gateway.dataPlane.rxModerationUs for both vpcgw runs (SSL and ESP); default: the gateway's default
const RXMOD = (() => { const i = process.argv.indexOf('--rxmod'); return i > 0 ? Number(process.argv[i + 1]) : undefined; })();
// --perf FILE: record the vpcgw server's profile (perf record -g) over its first iperf3 run
const PERF = (() => { const i = process.argv.indexOf('--perf'); return i > 0 ? process.argv[i + 1] : undefined; })();
// --queues N: our server on the multi-queue data plane with N queues (one client: its inbound data
// stays on the queue its peer-id names; the TUN spreads the return flows)
const QUEUES = arg('queues', 1);

const id = `ob${randomBytes(2).toString('hex')}`;
const NS = { srv: `${id}-s`, cli: `${id}-c`, vpc: `${id}-v` };
const dir = mkdtempSync(join(tmpdir(), `${id}-`));
const procs = new Set();

function sh(cmd, args, { allowFail = false, timeoutMs = 20_000 } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (!allowFail && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r;
}
const inNs = (ns, cmd, args, o) => sh('ip', ['netns', 'exec', ns, cmd, ...args], o);

function spawnIn(ns, cmd, args) {
  const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  p.out = '';
  p.stdout.on('data', (d) => (p.out += d));
  p.stderr.on('data', (d) => (p.out += d));
  p.done = new Promise((r) => p.on('exit', r));
  procs.add(p);
  return p;
}

async function stop(p) {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 5000);
  await p.done;
  clearTimeout(t);
  procs.delete(p);
}

async function waitFor(probe, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function cleanup() {
  for (const p of procs) try { p.kill('SIGKILL'); } catch { /* gone */ }
  for (const n of Object.values(NS)) sh('ip', ['netns', 'del', n], { allowFail: true });
  rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });

function setupNetns() {
  for (const n of Object.values(NS)) {
    sh('ip', ['netns', 'add', n]);
    sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  }
  const link = (gwIf, peerNs, gwAddr, peerAddr) => {
    sh('ip', ['link', 'add', gwIf, 'type', 'veth', 'peer', 'name', `${gwIf}p`]);
    sh('ip', ['link', 'set', gwIf, 'netns', NS.srv]);
    sh('ip', ['link', 'set', `${gwIf}p`, 'netns', peerNs]);
    sh('ip', ['-n', peerNs, 'link', 'set', `${gwIf}p`, 'name', 'eth0']);
    sh('ip', ['-n', NS.srv, 'addr', 'add', gwAddr, 'dev', gwIf]);
    sh('ip', ['-n', peerNs, 'addr', 'add', peerAddr, 'dev', 'eth0']);
    sh('ip', ['-n', NS.srv, 'link', 'set', gwIf, 'up']);
    sh('ip', ['-n', peerNs, 'link', 'set', 'eth0', 'up']);
  };
  link(`${id}c`, NS.cli, '10.99.1.1/24', '10.99.1.2/24');
  link(`${id}v`, NS.vpc, '10.2.0.1/24', '10.2.0.10/24');
  sh('ip', ['-n', NS.vpc, 'route', 'add', 'default', 'via', '10.2.0.1']);
  inNs(NS.srv, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
}

// Test PKI with openssl (EC P-256), as OpenVPN's easy-rsa would make it: CA, server with serverAuth, client with clientAuth.
function makePki() {
  const f = (n) => join(dir, n);
  const ossl = (args) => sh('openssl', args);
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=bench CA']);
  for (const [name, eku] of [['server', 'serverAuth'], ['client', 'clientAuth']]) {
    writeFileSync(f(`${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=${eku}\n`);
    ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=bench ${name}`]);
    ossl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`)]);
  }
  return { ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key') };
}

let clientRuns = 0;
async function connectClient(pki, tag) {
  // a fresh log per connection: the wait below looks for "Initialization Sequence Completed" in it
  const log = join(dir, `client-${tag}-${++clientRuns}.log`);
  const p = spawnIn(NS.cli, 'openvpn', ['--client', '--dev', 'tun', '--proto', TCP ? 'tcp-client' : 'udp', '--remote', '10.99.1.1', '1194', '--nobind',
    '--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--remote-cert-tls', 'server', '--verb', '3', '--log', log]);
  const read = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  await waitFor(() => read().includes('Initialization Sequence Completed'), 30_000, `openvpn client (${tag}) connected`);
  const cipher = /Data Channel: cipher '([^']+)'/.exec(read())?.[1] ?? '?';
  return { p, cipher };
}

// user + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15, in clock ticks)
const CLK_TCK = 100;
function cpuSec(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

async function iperf(serverPid, reps = 1, perfFile = undefined) {
  const results = [];
  for (let i = 0; i < reps; i++) {
    const srv = spawnIn(NS.vpc, 'iperf3', ['-s', '-1', '-B', '10.2.0.10']);
    await waitFor(() => inNs(NS.vpc, 'ss', ['-ltn'], { allowFail: true }).stdout.includes('10.2.0.10:5201'), 5000, 'iperf3 server');
    const perf = perfFile && i === 0 ? spawn('perf', process.env.PERF_STAT ? ['stat', '-o', perfFile, '-e', process.env.PERF_STAT, '-p', String(serverPid)] : ['record', '-g', '-o', perfFile, '-p', String(serverPid)], { stdio: 'ignore' }) : undefined;
    const cpu0 = cpuSec(serverPid);
    const r = inNs(NS.cli, 'iperf3', ['-c', '10.2.0.10', '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 20) * 1000 });
    const cpu = cpuSec(serverPid) - cpu0;
    if (perf) {
      perf.kill('SIGINT');
      await new Promise((r) => perf.on('exit', r));
    }
    const j = JSON.parse(r.stdout);
    if (!j.end?.sum_received) {
      const routes = inNs(NS.cli, 'ip', ['route'], { allowFail: true }).stdout;
      throw new Error(`iperf3 failed: ${j.error ?? r.stdout.slice(0, 300)}\nclient routes:\n${routes}`);
    }
    // CPU-seconds per GB: the server's CPU over the run by the bytes that crossed it
    results.push({ mbit: j.end.sum_received.bits_per_second / 1e6, cpuPerGb: cpu / (j.end.sum_received.bytes / 1e9) });
    await stop(srv);
  }
  results.sort((a, b) => a.mbit - b.mbit);
  return results[Math.floor(results.length / 2)];
}

async function runOurs(pki) {
  if (!existsSync(join(root, 'dist/gateway/ssl-server.js'))) {
    console.error('building dist/ ...');
    sh('npx', ['tsc', '-p', 'tsconfig.build.json'], { allowFail: true, timeoutMs: 240_000 });
  }
  const cfg = join(dir, 'vpcgw.json');
  writeFileSync(cfg, JSON.stringify({
    logLevel: 'warn',
    ...(RXMOD === undefined ? {} : { rxModerationUs: RXMOD }),
    tun: { name: `${id}t`, mtu: 1500, address: '10.8.0.1/24' },
    server: { name: 'bench', protocols: [TCP ? 'tcp' : 'udp'], port: 1194, listen: '0.0.0.0', clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'],
      dnsServers: [], dataCiphers: ['AES-256-GCM'], identity: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca },
      maxConnections: 10, clientToClient: false, renegSec: 0 },
    queues: QUEUES,
  }));
  const srv = spawnIn(NS.srv, process.execPath, [join(root, 'test/helpers/openvpn-runner.mjs'), cfg]);
  try {
    await waitFor(() => srv.out.includes('READY'), 15_000, 'vpcgw ssl runner');
    const dpLine = /DATAPLANE (\w+)( queues=\d+)?/.exec(srv.out);
    const dp = dpLine?.[1] ?? '?';
    const channel = dp === 'native' && process.env.VPCGW_SSL_NATIVE !== '0' ? 'native data channel' : 'JS data channel';
    const c = await connectClient(pki, 'vpcgw');
    try {
      return { ...(await iperf(srv.pid, 1, PERF)), cipher: `${c.cipher}, ${dp} data plane${dpLine?.[2] ?? ''}, ${channel}` };
    } finally {
      await stop(c.p);
    }
  } finally {
    await stop(srv);
  }
}

async function runStock(pki) {
  const srv = spawnIn(NS.srv, 'openvpn', ['--server', '10.8.0.0', '255.255.255.0', '--dev', 'tun', '--proto', TCP ? 'tcp-server' : 'udp', '--port', '1194',
    '--topology', 'subnet', '--ca', pki.ca, '--cert', pki.serverCert, '--key', pki.serverKey, '--dh', 'none',
    '--data-ciphers', 'AES-256-GCM', '--keepalive', '10', '60', '--push', 'route 10.2.0.0 255.255.0.0', '--verb', '3']);
  try {
    await waitFor(() => srv.out.includes('Initialization Sequence Completed'), 15_000, 'stock openvpn server');
    const c = await connectClient(pki, 'stock');
    try {
      return { ...(await iperf(srv.pid)), cipher: c.cipher };
    } finally {
      await stop(c.p);
    }
  } finally {
    await stop(srv);
  }
}

// The ESP path under the same load: strongSwan (site) -> vpcgw (cloud), iperf3 TCP site-host ->
// vpc-host; CPU per GB of the vpcgw process. Uses the s2c bench's topology (bench/e2e/lib.mjs).
let perfEspDone = false;
async function runEsp() {
  const lib = await import('./lib.mjs');
  const topo = await lib.createTopology();
  const gws = [];
  try {
    const proposals = { ike: 'aes128gcm16-prfsha256-x25519', esp: 'aes128gcm16' };
    gws.push(await lib.startVpcgw(topo, 'cloud', { ...proposals, initiate: false, rxModerationUs: RXMOD }));
    gws.push(await lib.startStrongswan(topo, 'site', { ...proposals, initiate: true }));
    await lib.waitForTunnel(topo, 20_000);
    // the gateway's process: `ip netns exec` execs node, so it is the one whose command line names its config
    const pid = Number(sh('pgrep', ['-f', `${join(topo.workDir, 'vpcgw-cloud', 'vpcgw.yaml')}`]).stdout.trim().split('\n')[0]);
    const perf = PERF && !perfEspDone ? spawn('perf', process.env.PERF_STAT ? ['stat', '-o', `${PERF}.esp`, '-e', process.env.PERF_STAT, '-p', String(pid)] : ['record', '-g', '-o', `${PERF}.esp`, '-p', String(pid)], { stdio: 'ignore' }) : undefined;
    perfEspDone = true;
    const cpu0 = cpuSec(pid);
    const mbit = await lib.iperf3Mbps(topo, SECONDS);
    const cpu = cpuSec(pid) - cpu0;
    if (perf) {
      perf.kill('SIGINT');
      await new Promise((r) => perf.on('exit', r));
    }
    return { mbit, cpuPerGb: cpu / ((mbit * 1e6 * SECONDS) / 8 / 1e9) };
  } finally {
    for (const g of gws) await g.stop();
    await topo.destroy();
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

try {
  setupNetns();
  const pki = makePki();
  // interleaved (ours, stock, ours, stock, ...) so both see the same machine load over time
  const oursRuns = [];
  const stockRuns = [];
  const espRuns = [];
  for (let r = 0; r < REPS; r++) {
    oursRuns.push(await runOurs(pki));
    console.error(`[bench:p2c] run ${r + 1}/${REPS}: vpcgw ${oursRuns[r].mbit.toFixed(0)} Mbit/s, ${oursRuns[r].cpuPerGb.toFixed(2)} CPU-s/GB`);
    stockRuns.push(await runStock(pki));
    console.error(`[bench:p2c] run ${r + 1}/${REPS}: openvpn server ${stockRuns[r].mbit.toFixed(0)} Mbit/s, ${stockRuns[r].cpuPerGb.toFixed(2)} CPU-s/GB`);
    if (ESP) {
      espRuns.push(await runEsp());
      console.error(`[bench:p2c] run ${r + 1}/${REPS}: ESP strongSwan -> vpcgw ${espRuns[r].mbit.toFixed(0)} Mbit/s, ${espRuns[r].cpuPerGb.toFixed(2)} CPU-s/GB`);
    }
  }
  const ours = { mbit: median(oursRuns.map((x) => x.mbit)), cpuPerGb: median(oursRuns.map((x) => x.cpuPerGb)), cipher: oursRuns[0].cipher };
  const stock = { mbit: median(stockRuns.map((x) => x.mbit)), cpuPerGb: median(stockRuns.map((x) => x.cpuPerGb)), cipher: stockRuns[0].cipher };
  const fmtRuns = (xs) => xs.map((x) => x.mbit.toFixed(0)).join(', ');
  console.log(`p2c iperf3 TCP, ${SECONDS} s x ${REPS} interleaved (median), VPN over ${TCP ? 'TCP' : 'UDP'}, vpcgw receive moderation ${RXMOD ?? 'default (200)'} µs:`);
  console.log(`  runs: vpcgw [${fmtRuns(oursRuns)}], openvpn server [${fmtRuns(stockRuns)}]`);
  console.log(`  openvpn client <-> vpcgw          ${ours.mbit.toFixed(1).padStart(8)} Mbit/s  (${ours.cipher})`);
  console.log(`  openvpn client <-> openvpn server ${stock.mbit.toFixed(1).padStart(8)} Mbit/s  (${stock.cipher})`);
  console.log(`  ratio vpcgw / openvpn             ${(ours.mbit / stock.mbit).toFixed(2).padStart(8)}x`);
  console.log(`  server CPU per GB: vpcgw ${ours.cpuPerGb.toFixed(2)} s, openvpn server ${stock.cpuPerGb.toFixed(2)} s, ratio ${(ours.cpuPerGb / stock.cpuPerGb).toFixed(2)}x`);
  console.log(`  CPU-s/GB runs: vpcgw [${oursRuns.map((x) => x.cpuPerGb.toFixed(2)).join(', ')}], openvpn server [${stockRuns.map((x) => x.cpuPerGb.toFixed(2)).join(', ')}]`);
  if (ESP) {
    const esp = median(espRuns.map((x) => x.cpuPerGb));
    console.log(`  ESP path (strongSwan -> vpcgw gateway): ${median(espRuns.map((x) => x.mbit)).toFixed(1)} Mbit/s, ${esp.toFixed(2)} CPU-s/GB [${espRuns.map((x) => x.cpuPerGb.toFixed(2)).join(', ')}]; SSL / ESP ${(ours.cpuPerGb / esp).toFixed(2)}x`);
  }
} catch (e) {
  console.error(`bench failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
