// Plain-Node helpers for end-to-end benches: the four-namespace site-to-cloud lab, strongSwan
// (charon + kernel-libipsec) and vpcgw (dist/cli.js) as gateways, and iperf3 runs.
// A compact sibling of test/helpers/{netns,strongswan,vpcgw}.ts, which benches cannot import
// (they are TypeScript and not built into dist/). Every wait is bounded.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const VPCGW_CLI = join(REPO_ROOT, 'dist', 'cli.js');
export const CHARON = '/usr/lib/ipsec/charon';

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

// BENCH FIXTURE ONLY: not a real secret.
export const BENCH_PSK = 'bench-fixture-psk-not-a-secret-77';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion; rejects on non-zero exit or timeout unless allowFail. */
export function run(cmd, args, { timeoutMs = 10_000, allowFail = false, env = process.env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(t);
      if (!allowFail && (timedOut || code !== 0)) {
        reject(new Error(`${cmd} ${args.join(' ')}: ${timedOut ? 'timed out' : `exit ${code}`}\n${stdout}${stderr}`.slice(0, 3000)));
      } else resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** A spawned long-running process, stopped by its PID. */
export function spawnProc(cmd, args, { env = process.env } = {}) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const add = (d) => {
    out = (out + d).slice(-100_000);
  };
  child.stdout.setEncoding('utf8').on('data', add);
  child.stderr.setEncoding('utf8').on('data', add);
  let exit;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve((exit = { code, signal })));
    child.on('error', (e) => {
      add(`[spawn error] ${e.message}`);
      resolve((exit = { code: null, signal: null }));
    });
  });
  const bounded = (ms) => Promise.race([exited, sleep(ms).then(() => undefined)]);
  return {
    pid: child.pid,
    get running() {
      return exit === undefined;
    },
    output: () => out,
    exited,
    async stop(signal = 'SIGTERM', ms = 5000) {
      if (exit) return exit;
      try {
        process.kill(child.pid, signal);
      } catch {}
      const r = await bounded(ms);
      if (r) return r;
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
      return (await bounded(3000)) ?? { code: null, signal: 'SIGKILL' };
    },
  };
}

export async function waitFor(probe, { timeoutMs, intervalMs = 200, what }) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(intervalMs);
  }
}

/** Creates the site-host / site-gw / cloud-gw / vpc-host namespaces. */
export async function createTopology() {
  const id = `vg${randomBytes(2).toString('hex')}b`;
  const ns = { siteHost: `${id}-sh`, siteGw: `${id}-sgw`, cloudGw: `${id}-cgw`, vpcHost: `${id}-vh` };
  const workDir = mkdtempSync(join(tmpdir(), `${id}-`));
  const procs = [];
  const ip = (args) => run('ip', args);
  const nsOf = (n) => ns[n] ?? n;
  const topo = {
    id,
    ns,
    workDir,
    exec: (n, cmd, args, o = {}) => run('ip', ['netns', 'exec', nsOf(n), cmd, ...args], o),
    spawnIn(n, cmd, args, o = {}) {
      const p = spawnProc('ip', ['netns', 'exec', nsOf(n), cmd, ...args], o);
      procs.push(p);
      return p;
    },
    async destroy() {
      await Promise.all(procs.map((p) => p.stop('SIGTERM', 3000)));
      for (const n of Object.values(ns)) await run('ip', ['netns', 'del', n], { allowFail: true });
      rmSync(workDir, { recursive: true, force: true });
    },
  };
  try {
    for (const n of Object.values(ns)) {
      await ip(['netns', 'add', n]);
      await ip(['-n', n, 'link', 'set', 'lo', 'up']);
    }
    const veth = (a, ia, b, ib) => ip(['-n', a, 'link', 'add', ia, 'type', 'veth', 'peer', 'name', ib, 'netns', b]);
    await veth(ns.siteHost, 'eth0', ns.siteGw, 'in0');
    await veth(ns.siteGw, 'out0', ns.cloudGw, 'out0');
    await veth(ns.cloudGw, 'in0', ns.vpcHost, 'eth0');
    const up = async (n, dev, cidr) => {
      await ip(['-n', n, 'addr', 'add', cidr, 'dev', dev]);
      await ip(['-n', n, 'link', 'set', dev, 'up']);
    };
    await up(ns.siteHost, 'eth0', `${ADDR.siteHost}/24`);
    await up(ns.siteGw, 'in0', `${ADDR.siteGwInside}/24`);
    await up(ns.siteGw, 'out0', `${ADDR.siteGwOutside}/24`);
    await up(ns.cloudGw, 'out0', `${ADDR.cloudGwOutside}/24`);
    await up(ns.cloudGw, 'in0', `${ADDR.cloudGwInside}/24`);
    await up(ns.vpcHost, 'eth0', `${ADDR.vpcHost}/24`);
    await ip(['-n', ns.siteHost, 'route', 'add', 'default', 'via', ADDR.siteGwInside]);
    await ip(['-n', ns.vpcHost, 'route', 'add', 'default', 'via', ADDR.cloudGwInside]);
    for (const gw of [ns.siteGw, ns.cloudGw]) {
      for (const kv of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']) {
        await topo.exec(gw, 'sysctl', ['-q', '-w', kv]);
      }
    }
  } catch (e) {
    await topo.destroy();
    throw e;
  }
  return topo;
}

/** The two gateway "sides" of the lab. */
export const SIDES = Object.freeze({
  site: { node: 'siteGw', local: ADDR.siteGwOutside, remote: ADDR.cloudGwOutside, localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet },
  cloud: { node: 'cloudGw', local: ADDR.cloudGwOutside, remote: ADDR.siteGwOutside, localTs: ADDR.vpcSubnet, remoteTs: ADDR.siteSubnet },
});

// the same plugin list as the tests' charons (scripts/preflight.mjs checks each is installed)
const CHARON_PLUGINS = JSON.parse(readFileSync(new URL('../../test/helpers/charon-plugins.json', import.meta.url), 'utf8')).join(' ');

/** Starts charon for `side` (site|cloud); `initiate` runs `swanctl --initiate` after loading. */
export async function startStrongswan(topo, sideName, { ike, esp, initiate }) {
  const side = SIDES[sideName];
  const dir = join(topo.workDir, `swan-${sideName}`);
  mkdirSync(dir, { recursive: true });
  const vici = `unix://${join(dir, 'charon.vici')}`;
  writeFileSync(
    join(dir, 'strongswan.conf'),
    `charon {
    load = ${CHARON_PLUGINS}
    plugins {
        vici {
            socket = ${vici}
        }
    }
    filelog {
        lab {
            path = ${join(dir, 'charon.log')}
            default = 1
        }
    }
}
`,
  );
  writeFileSync(
    join(dir, 'swanctl.conf'),
    `connections {
    s2c {
        version = 2
        local_addrs = ${side.local}
        remote_addrs = ${side.remote}
        proposals = ${ike}
        encap = yes
        local {
            auth = psk
            id = ${side.local}
        }
        remote {
            auth = psk
            id = ${side.remote}
        }
        children {
            net {
                local_ts = ${side.localTs}
                remote_ts = ${side.remoteTs}
                esp_proposals = ${esp}
            }
        }
    }
}
secrets {
    ike-s2c {
        id-local = ${side.local}
        id-remote = ${side.remote}
        secret = ${JSON.stringify(BENCH_PSK)}
    }
}
`,
    { mode: 0o600 },
  );
  const env = { ...process.env, STRONGSWAN_CONF: join(dir, 'strongswan.conf') };
  const proc = topo.spawnIn(side.node, 'unshare', ['-m', 'sh', '-c', `mount -t tmpfs none /run && exec ${CHARON}`], { env });
  const swanctl = (args, o = {}) => run('swanctl', [...args, '--uri', vici], { env, ...o });
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`charon exited: ${proc.output()}`);
      return existsSync(join(dir, 'charon.vici')) && (await swanctl(['--version', '--daemon'], { allowFail: true })).code === 0;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: 'charon vici' },
  );
  await swanctl(['--load-all', '--noprompt', '--file', join(dir, 'swanctl.conf')]);
  if (initiate) await swanctl(['--initiate', '--child', 'net', '--timeout', '15'], { timeoutMs: 20_000 });
  return {
    kind: 'strongswan',
    stop: () => proc.stop('SIGTERM', 5000),
    diagnostics: () => {
      try {
        return readFileSync(join(dir, 'charon.log'), 'utf8').slice(-3000);
      } catch {
        return '';
      }
    },
  };
}

/**
 * Starts vpcgw for `side` through its CLI; `initiate` sets startAction: start; `queues` and
 * `rxModerationUs` (optional) set gateway.dataPlane's fields.
 */
export async function startVpcgw(topo, sideName, { ike, esp, initiate, queues, rxModerationUs }) {
  if (!existsSync(VPCGW_CLI)) throw new Error(`${VPCGW_CLI} is missing: build the gateway first (npm run build)`);
  const side = SIDES[sideName];
  const dir = join(topo.workDir, `vpcgw-${sideName}`);
  mkdirSync(join(dir, 'var'), { recursive: true });
  const { stringify } = await import('yaml');
  const config = {
    gateway: {
      name: `gw-${sideName}`,
      dataDir: join(dir, 'var'),
      publicAddresses: [side.local],
      vpcSubnets: [side.localTs],
      tun: { name: 'vpcgw0', mtu: 1400 },
      dataPlane: {
        ...(queues === undefined ? {} : { queues }),
        ...(rxModerationUs === undefined ? {} : { rxModerationUs }),
      },
    },
    customerGateways: [{ name: 'cgw1', address: side.remote, id: side.remote }],
    vpnConnections: [
      {
        name: 'cgw1-main',
        customerGateway: 'cgw1',
        localSubnets: [side.localTs],
        remoteSubnets: [side.remoteTs],
        auth: { psk: BENCH_PSK },
        ike: { proposals: ike, lifetime: '4h', localId: side.local },
        esp: { proposals: esp, lifetime: '1h' },
        startAction: initiate ? 'start' : 'none',
      },
    ],
  };
  const configPath = join(dir, 'vpcgw.yaml');
  const control = join(dir, 'control.sock');
  writeFileSync(configPath, stringify(config), { mode: 0o600 });
  const proc = topo.spawnIn(side.node, process.execPath, [VPCGW_CLI, 'start', '--config', configPath, '--control', control]);
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`vpcgw exited: ${proc.output()}`);
      if (!existsSync(control)) return false;
      await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', control], { timeoutMs: 3000 });
      return true;
    },
    { timeoutMs: 10_000, intervalMs: 150, what: 'vpcgw status --json' },
  );
  return { kind: 'vpcgw', stop: () => proc.stop('SIGTERM', 5000), diagnostics: () => proc.output().slice(-3000), output: () => proc.output() };
}

/** Waits until site-host gets a ping reply from vpc-host (the tunnel carries traffic). */
export async function waitForTunnel(topo, timeoutMs = 20_000) {
  await waitFor(
    async () => (await topo.exec('siteHost', 'ping', ['-n', '-c', '1', '-W', '1', ADDR.vpcHost], { allowFail: true, timeoutMs: 3000 })).code === 0,
    { timeoutMs, intervalMs: 100, what: 'a ping through the tunnel' },
  );
}

/** One iperf3 TCP run site-host -> vpc-host; returns receiver Mbit/s. */
export async function iperf3Mbps(topo, seconds, port = 5201, parallel = 1) {
  const server = topo.spawnIn('vpcHost', 'iperf3', ['-s', '-1', '-B', ADDR.vpcHost, '-p', String(port)]);
  try {
    await waitFor(
      async () => (await topo.exec('vpcHost', 'ss', ['-Hltn', `sport = :${port}`], { allowFail: true })).stdout.includes(`:${port}`),
      { timeoutMs: 5000, intervalMs: 100, what: 'iperf3 server' },
    );
    const r = await topo.exec('siteHost', 'iperf3', ['-c', ADDR.vpcHost, '-p', String(port), '-t', String(seconds), '-P', String(parallel), '-J', '--connect-timeout', '3000'], {
      timeoutMs: (seconds + 15) * 1000,
      allowFail: true,
    });
    const j = JSON.parse(r.stdout);
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await server.stop('SIGTERM', 2000);
  }
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
