// The site-to-cloud lab topology in network namespaces, plus ping and iperf3 helpers.
//
//   site-host (10.1.0.10/24) --veth-- site-gw (10.1.0.1 | 192.0.2.1) --veth--
//   cloud-gw (192.0.2.2 | 10.2.0.1) --veth-- vpc-host (10.2.0.10/24)
//
// Namespace names carry a random per-topology prefix so parallel or leftover runs never collide.
// `destroy()` stops every process spawned through the topology (by PID) and deletes the
// namespaces; a process-exit hook does the same for topologies a crashed test left behind.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, sleep, spawnProcess, waitFor, type ManagedProcess, type RunResult } from './proc.js';

export type NodeName = 'siteHost' | 'siteGw' | 'cloudGw' | 'vpcHost';

export const ADDR = Object.freeze({
  siteHost: '10.1.0.10',
  siteGwInside: '10.1.0.1',
  siteGwOutside: '192.0.2.1',
  cloudGwOutside: '192.0.2.2',
  cloudGwInside: '10.2.0.1',
  vpcHost: '10.2.0.10',
  siteSubnet: '10.1.0.0/16',
  vpcSubnet: '10.2.0.0/16',
});

/** Interface names inside each namespace (veth ends). */
export const IFACE = Object.freeze({
  siteHost: 'eth0',
  siteGwInside: 'in0',
  siteGwOutside: 'out0',
  cloudGwOutside: 'out0',
  cloudGwInside: 'in0',
  vpcHost: 'eth0',
});

export interface ExecOptions {
  timeoutMs?: number;
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

export interface TopologyOptions {
  /** Short tag (letters/digits) added to namespace names, for readability in `ip netns list`. */
  tag?: string;
}

export interface Topology {
  /** Unique prefix of this topology's namespaces, e.g. `vg3fa2`. */
  readonly id: string;
  /** netns name per node. */
  readonly ns: Readonly<Record<NodeName, string>>;
  readonly addr: typeof ADDR;
  /** A private temporary directory for configs, sockets and logs; removed by destroy(). */
  readonly workDir: string;
  /** Runs a command inside a namespace (node name or netns name). Rejects on non-zero exit unless allowFail. */
  exec(ns: NodeName | string, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<RunResult>;
  /** Spawns a long-running process inside a namespace; destroy() stops it if still running. */
  spawnIn(ns: NodeName | string, cmd: string, args: readonly string[], opts?: { env?: NodeJS.ProcessEnv; label?: string }): ManagedProcess;
  /** Stops spawned processes and deletes the namespaces and workDir. Safe to call twice. */
  destroy(): Promise<void>;
}

const live = new Set<{ names: string[]; procs: ManagedProcess[] }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const t of live) {
      for (const p of t.procs) {
        if (!p.running) continue;
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      for (const n of t.names) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore', timeout: 5000 });
    }
  });
}

async function ip(args: string[]): Promise<void> {
  await run('ip', args, { timeoutMs: 10_000 });
}

export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  installExitHook();
  const tag = (opts.tag ?? '').replace(/[^a-z0-9]/gi, '').slice(0, 6);
  const id = `vg${randomBytes(2).toString('hex')}${tag}`;
  const ns: Record<NodeName, string> = {
    siteHost: `${id}-sh`,
    siteGw: `${id}-sgw`,
    cloudGw: `${id}-cgw`,
    vpcHost: `${id}-vh`,
  };
  const workDir = mkdtempSync(join(tmpdir(), `${id}-`));
  const entry = { names: Object.values(ns), procs: [] as ManagedProcess[] };
  live.add(entry);
  const resolveNs = (n: NodeName | string): string => (n in ns ? ns[n as NodeName] : n);

  let destroyed = false;
  const topo: Topology = {
    id,
    ns,
    addr: ADDR,
    workDir,
    exec(n, cmd, args, o = {}) {
      return run('ip', ['netns', 'exec', resolveNs(n), cmd, ...args], {
        timeoutMs: o.timeoutMs ?? 10_000,
        allowFail: o.allowFail,
        env: o.env,
        input: o.input,
      });
    },
    spawnIn(n, cmd, args, o = {}) {
      const p = spawnProcess('ip', ['netns', 'exec', resolveNs(n), cmd, ...args], {
        env: o.env,
        label: o.label ?? `${n}: ${cmd}`,
      });
      entry.procs.push(p);
      return p;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await Promise.all(entry.procs.map((p) => p.stop('SIGTERM', 3000)));
      for (const n of entry.names) await run('ip', ['netns', 'del', n], { timeoutMs: 10_000, allowFail: true });
      live.delete(entry);
      rmSync(workDir, { recursive: true, force: true });
    },
  };

  try {
    for (const n of Object.values(ns)) {
      await ip(['netns', 'add', n]);
      await ip(['-n', n, 'link', 'set', 'lo', 'up']);
    }
    // veth pairs are created inside the first namespace with the peer moved straight into the
    // second, so the fixed interface names never collide in the root namespace.
    await veth(ns.siteHost, IFACE.siteHost, ns.siteGw, IFACE.siteGwInside);
    await veth(ns.siteGw, IFACE.siteGwOutside, ns.cloudGw, IFACE.cloudGwOutside);
    await veth(ns.cloudGw, IFACE.cloudGwInside, ns.vpcHost, IFACE.vpcHost);

    await addrUp(ns.siteHost, IFACE.siteHost, `${ADDR.siteHost}/24`);
    await addrUp(ns.siteGw, IFACE.siteGwInside, `${ADDR.siteGwInside}/24`);
    await addrUp(ns.siteGw, IFACE.siteGwOutside, `${ADDR.siteGwOutside}/24`);
    await addrUp(ns.cloudGw, IFACE.cloudGwOutside, `${ADDR.cloudGwOutside}/24`);
    await addrUp(ns.cloudGw, IFACE.cloudGwInside, `${ADDR.cloudGwInside}/24`);
    await addrUp(ns.vpcHost, IFACE.vpcHost, `${ADDR.vpcHost}/24`);

    await ip(['-n', ns.siteHost, 'route', 'add', 'default', 'via', ADDR.siteGwInside]);
    await ip(['-n', ns.vpcHost, 'route', 'add', 'default', 'via', ADDR.cloudGwInside]);

    for (const gw of [ns.siteGw, ns.cloudGw]) {
      await topo.exec(gw, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
      // Decapsulated packets arrive on a TUN whose reverse route may live in a policy table.
      await topo.exec(gw, 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0']);
      await topo.exec(gw, 'sysctl', ['-q', '-w', 'net.ipv4.conf.default.rp_filter=0']);
    }
  } catch (err) {
    await topo.destroy();
    throw err;
  }
  return topo;
}

async function veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
  await ip(['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
}

async function addrUp(n: string, ifname: string, cidr: string): Promise<void> {
  await ip(['-n', n, 'addr', 'add', cidr, 'dev', ifname]);
  await ip(['-n', n, 'link', 'set', ifname, 'up']);
}

// ---------------------------------------------------------------------------------------------
// ping

export interface PingResult {
  transmitted: number;
  received: number;
  lossPct: number;
  output: string;
}

export interface PingOptions {
  count?: number;
  intervalSec?: number;
  /** Per-reply wait in seconds (ping -W). */
  waitSec?: number;
  size?: number;
  /** Source address (ping -I). */
  from?: string;
}

/** Pings `dst` from namespace `from`; never rejects on loss, only on timeout or a ping error. */
export async function ping(topo: Topology, fromNs: NodeName | string, dst: string, o: PingOptions = {}): Promise<PingResult> {
  const count = o.count ?? 3;
  const interval = o.intervalSec ?? 0.2;
  const wait = o.waitSec ?? 1;
  const args = ['-n', '-q', '-c', String(count), '-i', String(interval), '-W', String(wait)];
  if (o.size !== undefined) args.push('-s', String(o.size));
  if (o.from !== undefined) args.push('-I', o.from);
  args.push(dst);
  const timeoutMs = Math.ceil((count * interval + wait + 5) * 1000);
  const r = await topo.exec(fromNs, 'ping', args, { timeoutMs, allowFail: true });
  if (r.timedOut) throw new Error(`ping ${dst} timed out: ${r.stdout}${r.stderr}`);
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  if (!m) throw new Error(`cannot parse ping output: ${r.stdout}${r.stderr}`);
  const transmitted = Number(m[1]);
  const received = Number(m[2]);
  return { transmitted, received, lossPct: transmitted ? (100 * (transmitted - received)) / transmitted : 100, output: r.stdout };
}

/** Repeats single pings until one is answered (e.g. while a tunnel comes up). */
export async function waitForPing(topo: Topology, fromNs: NodeName | string, dst: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => (await ping(topo, fromNs, dst, { count: 1, waitSec: 1 })).received === 1, {
    timeoutMs,
    intervalMs: 100,
    what: `a ping reply from ${dst}`,
  });
}

// ---------------------------------------------------------------------------------------------
// iperf3

export interface IperfOptions {
  serverNs: NodeName | string;
  serverAddr: string;
  clientNs: NodeName | string;
  seconds?: number;
  port?: number;
  /** Run the client in reverse mode (server sends). */
  reverse?: boolean;
}

export interface IperfResult {
  /** Receiver-side throughput in Mbit/s. */
  mbps: number;
  senderMbps: number;
  retransmits: number;
  bytes: number;
}

/** One bounded iperf3 TCP run; the server is started for a single test and stopped afterwards. */
export async function iperf3Tcp(topo: Topology, o: IperfOptions): Promise<IperfResult> {
  const seconds = o.seconds ?? 3;
  const port = o.port ?? 5201;
  const server = topo.spawnIn(o.serverNs, 'iperf3', ['-s', '-1', '-B', o.serverAddr, '-p', String(port)], {
    label: 'iperf3 server',
  });
  try {
    await waitFor(
      async () => {
        if (!server.running) throw new Error(`iperf3 server exited: ${server.output()}`);
        const r = await topo.exec(o.serverNs, 'ss', ['-Hltn', `sport = :${port}`], { allowFail: true });
        return r.stdout.includes(`:${port}`);
      },
      { timeoutMs: 5000, intervalMs: 100, what: 'the iperf3 server to listen' },
    );
    const args = ['-c', o.serverAddr, '-p', String(port), '-t', String(seconds), '-J', '--connect-timeout', '3000'];
    if (o.reverse) args.push('-R');
    const r = await topo.exec(o.clientNs, 'iperf3', args, { timeoutMs: (seconds + 15) * 1000, allowFail: true });
    return parseIperfJson(r.stdout, r.stderr);
  } finally {
    await server.stop('SIGTERM', 2000);
  }
}

export function parseIperfJson(stdout: string, stderr = ''): IperfResult {
  let j: {
    error?: string;
    end?: {
      sum_received?: { bits_per_second: number; bytes: number };
      sum_sent?: { bits_per_second: number; retransmits?: number };
    };
  };
  try {
    j = JSON.parse(stdout);
  } catch {
    throw new Error(`iperf3 printed no JSON: ${stdout.slice(0, 500)} ${stderr.slice(0, 500)}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const rx = j.end?.sum_received;
  const tx = j.end?.sum_sent;
  if (!rx || !tx) throw new Error('iperf3 JSON lacks end.sum_received/sum_sent');
  return {
    mbps: rx.bits_per_second / 1e6,
    senderMbps: tx.bits_per_second / 1e6,
    retransmits: tx.retransmits ?? 0,
    bytes: rx.bytes,
  };
}

// ---------------------------------------------------------------------------------------------
// capture: what crosses a link, as tcpdump decodes it

export interface EspPacket {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** 8 lower-case hex digits. */
  spi: string;
  seq: number;
}

export interface Capture {
  /** Stops tcpdump (SIGINT, bounded) and returns its decoded lines. */
  stop(): Promise<string[]>;
}

/**
 * Starts `tcpdump -n -l --immediate-mode -i IFACE FILTER` in a namespace and resolves once it is listening.
 * At most `maxPackets` are kept; stop() ends it.
 */
export async function startCapture(
  topo: Topology,
  ns: NodeName | string,
  iface: string,
  filter: readonly string[],
  maxPackets = 200,
): Promise<Capture> {
  const p = topo.spawnIn(ns, 'tcpdump', ['-n', '-l', '--immediate-mode', '-i', iface, '-c', String(maxPackets), ...filter], { label: 'tcpdump' });
  await waitFor(
    async () => {
      if (!p.running) throw new Error(`tcpdump exited: ${p.output()}`);
      return p.output().includes('listening on');
    },
    { timeoutMs: 5000, intervalMs: 50, what: 'tcpdump to listen' },
  );
  // tcpdump announces "listening" slightly before its packet ring sees traffic.
  await sleep(300);
  return {
    async stop() {
      await sleep(200); // let the last packets of the traffic under test reach tcpdump
      await p.stop('SIGINT', 3000);
      return p.output().split('\n');
    },
  };
}

/** Parses tcpdump lines of the form `IP a.b.c.d.4500 > e.f.g.h.4500: UDP-encap: ESP(spi=0x…,seq=0x…), length N`. */
export function parseEspLines(lines: readonly string[]): EspPacket[] {
  const out: EspPacket[] = [];
  const re = /IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): UDP-encap: ESP\(spi=0x([0-9a-f]+),seq=0x([0-9a-f]+)\)/i;
  for (const line of lines) {
    const m = re.exec(line);
    if (!m) continue;
    out.push({
      src: m[1]!,
      srcPort: Number(m[2]),
      dst: m[3]!,
      dstPort: Number(m[4]),
      spi: m[5]!.toLowerCase().padStart(8, '0'),
      seq: parseInt(m[6]!, 16),
    });
  }
  return out;
}
