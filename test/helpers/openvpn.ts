// TEST HELPERS for the OpenVPN interop tests: a lab of network namespaces around our SSL VPN server,
// the real `openvpn` 2.6 client, and log parsing. Every wait is bounded; processes are stopped by PID;
// destroy() deletes the namespaces (and an exit hook does so for a crashed run).
//
//   client1 (10.99.1.2) --veth-- gw (10.99.1.1 | 10.99.2.1 | 10.2.0.1, TUN 10.8.0.1/24) --veth-- vpc host (10.2.0.10)
//   client2 (10.99.2.2) --veth--/
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, spawnProcess, waitFor, type ManagedProcess, type RunResult } from './proc.js';
import type { TestPki } from './pki.js';

export const LAB = Object.freeze({
  gwForClient: ['10.99.1.1', '10.99.2.1'] as const,
  client: ['10.99.1.2', '10.99.2.2'] as const,
  gwInside: '10.2.0.1',
  vpcHost: '10.2.0.10',
  vpcSubnet: '10.2.0.0/16',
  clientCidr: '10.8.0.0/24',
  tunAddress: '10.8.0.1/24',
});

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RUNNER = join(REPO_ROOT, 'test/helpers/openvpn-runner.mjs');

export interface Lab {
  readonly id: string;
  readonly ns: { gw: string; c1: string; c2: string; vpc: string };
  readonly dir: string;
  exec(ns: string, cmd: string, args: readonly string[], opts?: { timeoutMs?: number; allowFail?: boolean }): Promise<RunResult>;
  spawnIn(ns: string, cmd: string, args: readonly string[], label: string): ManagedProcess;
  destroy(): Promise<void>;
}

const liveNs = new Set<string>();
const liveProcs = new Set<ManagedProcess>();
let hook = false;
function exitHook(): void {
  if (hook) return;
  hook = true;
  process.on('exit', () => {
    for (const p of liveProcs) if (p.running) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    for (const n of liveNs) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore', timeout: 5000 });
  });
}

async function sh(args: string[]): Promise<void> {
  await run('ip', args, { timeoutMs: 10_000 });
}

export async function createLab(): Promise<Lab> {
  exitHook();
  const id = `ov${randomBytes(2).toString('hex')}`;
  const ns = { gw: `${id}-gw`, c1: `${id}-c1`, c2: `${id}-c2`, vpc: `${id}-vh` };
  const dir = mkdtempSync(join(tmpdir(), `${id}-`));
  const procs: ManagedProcess[] = [];
  const lab: Lab = {
    id,
    ns,
    dir,
    exec: (n, cmd, args, o = {}) => run('ip', ['netns', 'exec', n, cmd, ...args], { timeoutMs: o.timeoutMs ?? 10_000, allowFail: o.allowFail }),
    spawnIn: (n, cmd, args, label) => {
      const p = spawnProcess('ip', ['netns', 'exec', n, cmd, ...args], { label });
      procs.push(p);
      liveProcs.add(p);
      return p;
    },
    async destroy() {
      for (const p of procs) {
        await p.stop('SIGTERM', 3000);
        liveProcs.delete(p);
      }
      for (const n of Object.values(ns)) {
        await run('ip', ['netns', 'del', n], { timeoutMs: 10_000, allowFail: true });
        liveNs.delete(n);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const n of Object.values(ns)) {
      await sh(['netns', 'add', n]);
      liveNs.add(n);
      await sh(['-n', n, 'link', 'set', 'lo', 'up']);
    }
    const pairs: [string, string, string, string][] = [
      [ns.c1, LAB.client[0], `${id}a`, LAB.gwForClient[0]],
      [ns.c2, LAB.client[1], `${id}b`, LAB.gwForClient[1]],
      [ns.vpc, LAB.vpcHost, `${id}v`, LAB.gwInside],
    ];
    for (const [peerNs, peerAddr, gwIf, gwAddr] of pairs) {
      await sh(['link', 'add', gwIf, 'type', 'veth', 'peer', 'name', `${gwIf}p`]);
      await sh(['link', 'set', gwIf, 'netns', ns.gw]);
      await sh(['link', 'set', `${gwIf}p`, 'netns', peerNs]);
      await sh(['-n', peerNs, 'link', 'set', `${gwIf}p`, 'name', 'eth0']);
      await sh(['-n', ns.gw, 'addr', 'add', `${gwAddr}/24`, 'dev', gwIf]);
      await sh(['-n', peerNs, 'addr', 'add', `${peerAddr}/24`, 'dev', 'eth0']);
      await sh(['-n', ns.gw, 'link', 'set', gwIf, 'up']);
      await sh(['-n', peerNs, 'link', 'set', 'eth0', 'up']);
    }
    await sh(['-n', ns.vpc, 'route', 'add', 'default', 'via', LAB.gwInside]);
  } catch (e) {
    await lab.destroy();
    throw e;
  }
  return lab;
}

/** Compiles src/ to dist/ (the runner imports dist/) unless dist is newer than every file it needs. */
export async function ensureBuilt(): Promise<void> {
  await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { timeoutMs: 180_000, allowFail: true });
  for (const f of ['dist/gateway/ssl-server.js', 'dist/tun/linux-tun.js', 'dist/ssl/session.js']) {
    if (!existsSync(join(REPO_ROOT, f))) throw new Error(`build did not produce ${f}`);
  }
}

export interface ServerOptions {
  protocols?: ('udp' | 'tcp')[];
  clientToClient?: boolean;
  maxConnections?: number;
  dataCiphers?: string[];
  renegSec?: number;
  pem: { cert: string; key: string; clientCa: string }; // paths
  logLevel?: string;
  /** tls-crypt / tls-auth with a static key file (path) */
  tlsWrap?: { kind: 'tls-crypt' | 'tls-crypt-v2'; keyFile: string } | { kind: 'tls-auth'; keyFile: string; direction: 0 | 1; digest: string };
  /** SslServerLimits overrides */
  limits?: Record<string, number>;
}

export class LabServer {
  constructor(
    readonly proc: ManagedProcess,
    readonly udpPort: number,
    readonly tcpPort: number,
  ) {}

  /** The runner's status (SIGUSR2 → one STATUS line). */
  async status(): Promise<{ clients: { user: string; virtualAddress: string; realAddress: string; protocol: string; bytesIn: number; bytesOut: number }[]; counters: Record<string, number>; halfOpen: number }> {
    const before = this.proc.output().length;
    process.kill(this.proc.pid, 'SIGUSR2');
    return waitFor(
      async () => {
        const m = /STATUS (.*)\n/.exec(this.proc.output().slice(Math.max(0, before - 1)));
        return m ? JSON.parse(m[1]!) : undefined;
      },
      { timeoutMs: 5000, intervalMs: 50, what: 'server status' },
    );
  }

  /** Parsed pino log lines so far. */
  logs(): { msg?: string; reason?: string; level: number; [k: string]: unknown }[] {
    const out = [];
    for (const line of this.proc.output().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        /* partial line */
      }
    }
    return out;
  }
}

/** Starts our server (runner) in the lab's gateway namespace. The runner PID is the node process. */
export async function startServer(lab: Lab, o: ServerOptions): Promise<LabServer> {
  const cfgPath = join(lab.dir, `server-${randomBytes(3).toString('hex')}.json`);
  writeFileSync(
    cfgPath,
    JSON.stringify({
      logLevel: o.logLevel ?? 'info',
      tun: { name: `${lab.id}t`, mtu: 1500, address: LAB.tunAddress },
      server: {
        name: 'p2c',
        protocols: o.protocols ?? ['udp', 'tcp'],
        port: 1194,
        listen: '0.0.0.0',
        clientCidr: LAB.clientCidr,
        localSubnets: [LAB.vpcSubnet],
        dnsServers: ['10.2.0.53'],
        dataCiphers: o.dataCiphers ?? ['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305'],
        identity: o.pem,
        maxConnections: o.maxConnections ?? 10,
        clientToClient: o.clientToClient ?? false,
        renegSec: o.renegSec ?? 0,
        ...(o.tlsWrap ? { tlsWrap: o.tlsWrap } : {}),
        ...(o.limits ? { limits: o.limits } : {}),
      },
    }),
  );
  // `ip netns exec` execs node directly, so the spawned PID is the runner itself
  const p = lab.spawnIn(lab.ns.gw, process.execPath, [RUNNER, cfgPath], 'vpcgw ssl runner');
  const m = await waitFor(
    async () => {
      if (!p.running) throw new Error(`runner exited: ${p.output().slice(-2000)}`);
      return /READY udp=(\d+) tcp=(\d+)/.exec(p.output()) ?? undefined;
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'ssl server runner READY' },
  );
  // npm test runs this suite once per data plane: make sure the one asked for is in use
  const mode = /DATAPLANE (\w+)/.exec(p.output())?.[1];
  const want = process.env.VPCGW_DATAPLANE === 'ts' ? 'ts' : 'native';
  if (mode !== want) {
    await p.stop('SIGTERM', 3000);
    throw new Error(`the runner uses the ${mode} data plane, expected ${want}: ${p.output().slice(-2000)}`);
  }
  return new LabServer(p, Number(m[1]), Number(m[2]));
}

export interface ClientOptions {
  proto: 'udp' | 'tcp';
  remote: string;
  ca: string;
  cert: string;
  key: string;
  extra?: string[];
}

export class OpenVpnClient {
  constructor(
    readonly proc: ManagedProcess,
    readonly logPath: string,
  ) {}

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  async waitConnected(timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => {
      if (!this.proc.running) throw new Error(`openvpn exited:\n${this.log().slice(-3000)}`);
      return this.log().includes('Initialization Sequence Completed');
    }, { timeoutMs, intervalMs: 200, what: 'openvpn "Initialization Sequence Completed"' }).catch((e: Error) => {
      throw new Error(`${e.message}\n--- client log ---\n${this.log().slice(-3000)}`);
    });
  }

  /** The PUSH_REPLY the client received (the first one). */
  pushReply(): string | null {
    const m = /PUSH: Received control message: '(PUSH_REPLY[^']*)'/.exec(this.log());
    return m ? m[1]! : null;
  }

  async stop(): Promise<void> {
    await this.proc.stop('SIGTERM', 5000);
  }
}

export function startClient(lab: Lab, ns: string, o: ClientOptions, name: string): OpenVpnClient {
  const logPath = join(lab.dir, `${name}-${randomBytes(3).toString('hex')}.log`);
  const args = [
    '--client', '--dev', 'tun', '--proto', o.proto === 'udp' ? 'udp' : 'tcp-client',
    '--remote', o.remote, '1194', '--nobind',
    '--ca', o.ca, '--cert', o.cert, '--key', o.key, '--remote-cert-tls', 'server',
    '--verb', '4', '--log', logPath, '--connect-retry', '1', '--connect-retry-max', '3',
    ...(o.extra ?? []),
  ];
  const p = lab.spawnIn(ns, 'openvpn', args, `openvpn ${name}`);
  return new OpenVpnClient(p, logPath);
}

/** Writes PEM text to files in the lab dir; returns their paths. */
export function writePem(lab: Lab, name: string, pem: string): string {
  const p = join(lab.dir, name);
  writeFileSync(p, pem, { mode: 0o600 });
  return p;
}

export async function pingOk(lab: Lab, ns: string, dst: string, count = 3): Promise<{ sent: number; received: number; out: string }> {
  const r = await lab.exec(ns, 'ping', ['-c', String(count), '-i', '0.3', '-W', '2', dst], { timeoutMs: 5000 + count * 2500, allowFail: true });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, out: r.stdout + r.stderr };
}

/** A bounded iperf3 TCP run from `fromNs` to an iperf3 server on `to` (started and stopped here). */
export async function iperf3(lab: Lab, fromNs: string, serverNs: string, to: string, seconds = 3): Promise<number> {
  const srv = lab.spawnIn(serverNs, 'iperf3', ['-s', '-1', '-B', to], 'iperf3 server');
  try {
    await waitFor(async () => (await lab.exec(serverNs, 'ss', ['-ltn'], { allowFail: true })).stdout.includes(`${to}:5201`), {
      timeoutMs: 5000, intervalMs: 100, what: 'iperf3 server',
    });
    const r = await lab.exec(fromNs, 'iperf3', ['-c', to, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 15) * 1000 });
    const j = JSON.parse(r.stdout);
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await srv.stop('SIGTERM', 3000);
  }
}

/** The test PKI's CA and server certificate and key, written into the lab dir; their paths. */
export function writeServerPki(lab: Lab, pki: TestPki): { ca: string; cert: string; key: string } {
  return {
    ca: writePem(lab, 'ca.crt', pki.ca.cert),
    cert: writePem(lab, 'server.crt', pki.server.cert),
    key: writePem(lab, 'server.key', pki.server.key),
  };
}

export interface LabServerOptions {
  name?: string;
  protocols?: readonly ('udp' | 'tcp')[];
  port?: number;
  clientCidr?: string;
  localSubnets?: readonly string[];
  auth?: 'cert' | 'password' | 'cert+password';
  /** the CA clients' certificates must chain to (default: with cert auth) */
  clientCa?: boolean;
  /** further `key: value` lines of the entry */
  extra?: readonly string[];
}

/**
 * One `vpnServers:` list entry (YAML, two-space indented) for the lab: by default the server "p2c" on
 * UDP 1194 with the lab's client CIDR and VPC subnet, certificate auth against the lab's CA.
 */
export function labServerYaml(files: { ca: string; cert: string; key: string }, o: LabServerOptions = {}): string {
  const auth = o.auth ?? 'cert';
  const lines = [
    `  - name: ${o.name ?? 'p2c'}`,
    `    protocols: [${(o.protocols ?? ['udp']).join(', ')}]`,
    `    port: ${o.port ?? 1194}`,
    `    clientCidr: ${o.clientCidr ?? LAB.clientCidr}`,
    `    localSubnets: [${(o.localSubnets ?? [LAB.vpcSubnet]).join(', ')}]`,
    `    auth: { type: ${auth} }`,
    `    serverCert: { cert: ${files.cert}, key: ${files.key} }`,
    ...(o.clientCa ?? auth !== 'password' ? [`    clientCa: ${files.ca}`] : []),
    ...(o.extra ?? []).map((l) => `    ${l}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** The lab's `gateway:` section for `vpcgw start` (its TUN named after the lab), as YAML. */
export function labGatewayYaml(lab: Lab, name: string, o: { tunAddress?: boolean } = {}): string {
  const address = o.tunAddress === false ? '' : `, address: ${LAB.tunAddress}`;
  return `gateway:
  name: ${name}
  dataDir: ${lab.dir}/var
  publicAddresses: [${LAB.gwForClient[0]}]
  vpcSubnets: [${LAB.vpcSubnet}]
  tun: { name: ${lab.id}t, mtu: 1500${address} }
`;
}

/**
 * `vpcgw start --config <lab>/vpcgw.yaml --control <lab>/vpcgw.sock` (dist/cli.js) in the lab's gateway
 * namespace with `yaml` as the config, resolved once it prints that it runs.
 */
export async function startLabDaemon(lab: Lab, yaml: string): Promise<{ daemon: ManagedProcess; control: string }> {
  const control = join(lab.dir, 'vpcgw.sock');
  const cfg = join(lab.dir, 'vpcgw.yaml');
  writeFileSync(cfg, yaml, { mode: 0o600 });
  const cli = join(REPO_ROOT, 'dist/cli.js');
  const daemon = lab.spawnIn(lab.ns.gw, process.execPath, [cli, 'start', '--config', cfg, '--control', control], 'vpcgw start');
  await waitFor(
    async () => {
      if (!daemon.running) throw new Error(`vpcgw exited: ${daemon.output().slice(-2000)}`);
      return daemon.output().includes('is running');
    },
    { timeoutMs: 20_000, intervalMs: 100, what: 'vpcgw start' },
  );
  return { daemon, control };
}
