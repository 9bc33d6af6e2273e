#!/usr/bin/env node
// `npm run bench:endpoint`: what a VPC endpoint costs. One site-to-cloud tunnel (strongSwan on the
// site, kernel-libipsec, initiating; vpcgw in the cloud with IKE aes128gcm16-prfsha256-x25519 / ESP
// aes128gcm16), and iperf3 TCP from the site host to the same VPC host two ways, interleaved:
//   (direct)   site-host -> IPsec -> 10.2.0.10:5201                      plain routing
//   (endpoint) site-host -> IPsec -> 10.2.100.10:5201 (endpoint) -> DNAT/SNAT -> 10.2.0.10:5201
// Prints the median Mbit/s of each and the ratio endpoint/direct (target >= 0.80).
//
// Options: --seconds N (default 6)  --reps N (default 3)  --json  --strict (exit 1 below the target)
// Needs root and a built tree (dist/, build/). Bounded: about 20 s of setup + 2 x reps x (seconds + 1).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ADDR, BENCH_PSK, VPCGW_CLI, createTopology, median, run, startStrongswan, waitFor, waitForTunnel } from './e2e/lib.mjs';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    reps: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
  },
});
const seconds = Number(opt.seconds);
const reps = Number(opt.reps);
if (!(seconds > 0 && seconds <= 15) || !(reps > 0 && reps <= 5)) {
  console.error('--seconds must be in 1..15 and --reps in 1..5 (the whole run stays under two minutes)');
  process.exit(2);
}

const PROPOSALS = { ike: 'aes128gcm16-prfsha256-x25519', esp: 'aes128gcm16' };
const ENDPOINT = '10.2.100.10';
const PORT = 5201;
const TARGET = 0.8;

/** vpcgw on the cloud side with one endpoint whose backend is the VPC host's iperf3 port. */
async function startCloudGateway(topo) {
  if (!existsSync(VPCGW_CLI)) throw new Error(`${VPCGW_CLI} is missing: build the gateway first (npm run build)`);
  const dir = join(topo.workDir, 'vpcgw-cloud');
  mkdirSync(join(dir, 'var'), { recursive: true });
  const { stringify } = await import('yaml');
  const config = {
    gateway: {
      name: 'gw-endpoint-bench',
      dataDir: join(dir, 'var'),
      publicAddresses: [ADDR.cloudGwOutside],
      vpcSubnets: [ADDR.vpcSubnet],
      tun: { name: 'vpcgw0', mtu: 1400 },
      endpoints: { subnet: '10.2.100.0/24' },
    },
    customerGateways: [{ name: 'cgw1', address: ADDR.siteGwOutside, id: ADDR.siteGwOutside }],
    vpnConnections: [
      {
        name: 'cgw1-main',
        customerGateway: 'cgw1',
        localSubnets: [ADDR.vpcSubnet],
        remoteSubnets: [ADDR.siteSubnet],
        auth: { psk: BENCH_PSK },
        ike: { proposals: PROPOSALS.ike, lifetime: '4h', localId: ADDR.cloudGwOutside },
        esp: { proposals: PROPOSALS.esp, lifetime: '1h' },
        startAction: 'none',
      },
    ],
    endpointServices: [
      {
        name: 'iperf',
        backend: { address: ADDR.vpcHost },
        ports: [{ protocol: 'tcp', servicePort: PORT, backendPort: PORT }],
        approvalRequired: false,
        whitelist: ['vpnConnection:cgw1-main'],
      },
    ],
    endpoints: [{ name: 'iperf-ep', service: 'iperf', address: ENDPOINT }],
  };
  const configPath = join(dir, 'vpcgw.yaml');
  const control = join(dir, 'control.sock');
  writeFileSync(configPath, stringify(config), { mode: 0o600 });
  const proc = topo.spawnIn('cloudGw', process.execPath, [VPCGW_CLI, 'start', '--config', configPath, '--control', control]);
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`vpcgw exited: ${proc.output().slice(-3000)}`);
      if (!existsSync(control)) return false;
      await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', control], { timeoutMs: 3000 });
      return true;
    },
    { timeoutMs: 15_000, intervalMs: 150, what: 'vpcgw status --json' },
  );
  return { stop: () => proc.stop('SIGTERM', 5000), diagnostics: () => proc.output().slice(-3000) };
}

/** One iperf3 TCP run site-host -> `target`; the server on the VPC host listens on every address. */
async function iperf3To(topo, target) {
  const server = topo.spawnIn('vpcHost', 'iperf3', ['-s', '-1', '-p', String(PORT)]);
  try {
    await waitFor(
      async () => (await topo.exec('vpcHost', 'ss', ['-Hltn', `sport = :${PORT}`], { allowFail: true })).stdout.includes(`:${PORT}`),
      { timeoutMs: 5000, intervalMs: 100, what: 'iperf3 server' },
    );
    const r = await topo.exec('siteHost', 'iperf3', ['-c', target, '-p', String(PORT), '-t', String(seconds), '-J', '--connect-timeout', '3000'], {
      timeoutMs: (seconds + 15) * 1000,
      allowFail: true,
    });
    let j;
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 to ${target} printed no JSON: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`);
    }
    if (j.error) throw new Error(`iperf3 to ${target}: ${j.error}`);
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await server.stop('SIGTERM', 2000);
  }
}

const topo = await createTopology();
const gws = [];
let result;
let failed = false;
try {
  gws.push(await startCloudGateway(topo));
  gws.push(await startStrongswan(topo, 'site', { ...PROPOSALS, initiate: true }));
  try {
    await waitForTunnel(topo, 20_000);
  } catch (e) {
    throw new Error(`${e.message}\n${gws.map((g) => g.diagnostics()).join('\n')}`);
  }
  const direct = [];
  const endpoint = [];
  for (let i = 0; i < reps; i++) {
    process.stderr.write(`[bench:endpoint] rep ${i + 1}/${reps}: direct, then through the endpoint (${seconds} s each)\n`);
    direct.push(await iperf3To(topo, ADDR.vpcHost));
    endpoint.push(await iperf3To(topo, ENDPOINT));
  }
  result = { direct: { mbps: median(direct), runs: direct }, endpoint: { mbps: median(endpoint), runs: endpoint } };
  result.ratio = result.endpoint.mbps / result.direct.mbps;
} catch (e) {
  failed = true;
  process.stderr.write(`[bench:endpoint] failed: ${e.message}\n`);
} finally {
  for (const g of gws.reverse()) await g.stop();
  await topo.destroy();
}

if (result) {
  const fmt = (r) => `${r.mbps.toFixed(1)} Mbit/s  [${r.runs.map((x) => x.toFixed(1)).join(', ')}]`;
  console.log(`endpoint bench: iperf3 TCP site-host -> vpc-host over one strongSwan <-> vpcgw tunnel (ike ${PROPOSALS.ike} / esp ${PROPOSALS.esp}), median of ${reps} x ${seconds} s`);
  console.log(`  ${`direct   ${ADDR.vpcHost}`.padEnd(36)} ${fmt(result.direct)}`);
  console.log(`  ${`endpoint ${ENDPOINT} -> ${ADDR.vpcHost}`.padEnd(36)} ${fmt(result.endpoint)}`);
  console.log(`  ratio endpoint/direct: ${result.ratio.toFixed(2)} (target >= ${TARGET.toFixed(2)}: ${result.ratio >= TARGET ? 'met' : 'NOT met'})`);
  if (opt.json) console.log(JSON.stringify({ seconds, reps, proposals: PROPOSALS, ...result, target: TARGET }));
}
process.exit(failed || (opt.strict && result.ratio < TARGET) ? 1 : 0);
