// vpcgw (our gateway daemon, dist/cli.js) as a lab peer: write its YAML config, start it in a
// namespace, query `vpcgw status --json`, and stop it with SIGTERM.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { NodeName, Topology } from './netns.js';
import { run, waitFor, type ExitInfo, type ManagedProcess } from './proc.js';
import { normSpi } from './strongswan.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const VPCGW_CLI = join(REPO_ROOT, 'dist', 'cli.js');

/** The daemon's YAML config contract (site-to-cloud subset). */
export interface VpcgwConfig {
  gateway: {
    name: string;
    dataDir: string;
    publicAddresses: string[];
    vpcSubnets: string[];
    tun: { name: string; mtu: number };
  };
  customerGateways: Array<{ name: string; address: string; id: string }>;
  vpnConnections: Array<{
    name: string;
    customerGateway: string;
    localSubnets: string[];
    remoteSubnets: string[];
    auth: { psk: string };
    ike: { proposals: string; lifetime: string; localId: string };
    esp: { proposals: string; lifetime: string };
    startAction: 'start' | 'none';
  }>;
}

export interface VpcgwChildStatus {
  name: string;
  state: string;
  spiIn: string;
  spiOut: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  localTs: string[];
  remoteTs: string[];
}

export interface VpcgwStatus {
  /** "native" | "typescript" | "not available" */
  dataPlane: string;
  connections: Array<{ name: string; state: string; children: VpcgwChildStatus[] }>;
}

export interface S2cConfigOptions {
  gatewayName: string;
  dataDir: string;
  publicAddress: string;
  peerAddress: string;
  /** Our IKE ID (an IPv4 address ID). */
  localId: string;
  /** The customer gateway's IKE ID. */
  peerId: string;
  localSubnets: string[];
  remoteSubnets: string[];
  /** Test fixture PSK. */
  psk: string;
  ikeProposals: string;
  espProposals: string;
  startAction: 'start' | 'none';
  tunName?: string;
  /** gateway.ike settings (e.g. retransmitTimeout, retransmitTries) */
  gatewayIke?: Record<string, unknown>;
}

/** Builds a one-connection config in the contract's shape. */
export function s2cConfig(o: S2cConfigOptions): VpcgwConfig {
  return {
    gateway: {
      name: o.gatewayName,
      dataDir: o.dataDir,
      publicAddresses: [o.publicAddress],
      vpcSubnets: o.localSubnets,
      tun: { name: o.tunName ?? 'vpcgw0', mtu: 1400 },
      ...(o.gatewayIke ? { ike: o.gatewayIke } : {}),
    },
    customerGateways: [{ name: 'cgw1', address: o.peerAddress, id: o.peerId }],
    vpnConnections: [
      {
        name: 'cgw1-main',
        customerGateway: 'cgw1',
        localSubnets: o.localSubnets,
        remoteSubnets: o.remoteSubnets,
        auth: { psk: o.psk },
        ike: { proposals: o.ikeProposals, lifetime: '4h', localId: o.localId },
        esp: { proposals: o.espProposals, lifetime: '1h' },
        startAction: o.startAction,
      },
    ],
  };
}

export class Vpcgw {
  private constructor(
    readonly ns: NodeName | string,
    readonly configPath: string,
    readonly controlPath: string,
    readonly proc: ManagedProcess,
  ) {}

  /** Output (stdout+stderr) of the daemon so far, for failure messages. */
  output(): string {
    return this.proc.output();
  }

  /** `vpcgw status --json --control SOCK`, parsed; SPIs normalised to 8 lower-case hex digits. */
  async status(timeoutMs = 15_000): Promise<VpcgwStatus> {
    const r = await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', this.controlPath], { timeoutMs });
    return parseVpcgwStatus(r.stdout);
  }

  /** Waits until a connection is ESTABLISHED with an INSTALLED child. */
  async waitInstalled(timeoutMs = 15_000): Promise<VpcgwStatus> {
    return waitFor(
      async () => {
        if (!this.proc.running) throw new Error(`vpcgw exited: ${this.output()}`);
        const s = await this.status();
        const ok = s.connections.some((c) => c.state === 'ESTABLISHED' && c.children.some((ch) => ch.state === 'INSTALLED'));
        return ok ? s : undefined;
      },
      { timeoutMs, intervalMs: 250, what: `an INSTALLED child in vpcgw@${this.ns}` },
    );
  }

  /** SIGTERM to the daemon PID; bounded wait with SIGKILL fallback. Callers assert `code === 0`. */
  stop(timeoutMs = 5000): Promise<ExitInfo & { killed: boolean }> {
    return this.proc.stop('SIGTERM', timeoutMs);
  }

  static async start(topo: Topology, ns: NodeName | string, config: VpcgwConfig, timeoutMs = 10_000): Promise<Vpcgw> {
    if (!existsSync(VPCGW_CLI)) throw new Error(`${VPCGW_CLI} is missing: build the gateway first (npm run build)`);
    const dir = join(topo.workDir, `vpcgw-${ns}`);
    mkdirSync(dir, { recursive: true });
    mkdirSync(config.gateway.dataDir, { recursive: true });
    const configPath = join(dir, 'vpcgw.yaml');
    const controlPath = join(dir, 'control.sock');
    writeFileSync(configPath, stringify(config), { mode: 0o600 }); // holds the (test) PSK
    const proc = topo.spawnIn(ns, process.execPath, [VPCGW_CLI, 'start', '--config', configPath, '--control', controlPath], {
      label: `vpcgw@${ns}`,
    });
    const gw = new Vpcgw(ns, configPath, controlPath, proc);
    try {
      await waitFor(
        async () => {
          if (!proc.running) throw new Error(`vpcgw exited early: ${proc.output()}`);
          if (!existsSync(controlPath)) return false;
          await gw.status(5000); // the CLI alone needs over 2 s to start on a loaded machine
          return true;
        },
        { timeoutMs, intervalMs: 150, what: `vpcgw in ${ns} to answer status --json` },
      );
      // the suite runs once per data plane (scripts/test.mjs): make sure the one asked for is in use
      const want = process.env.VPCGW_DATAPLANE === 'ts' ? 'typescript' : 'native';
      const got = (await gw.status(5000)).dataPlane;
      if (got !== want) throw new Error(`vpcgw runs the ${got} data plane, expected ${want}: ${proc.output().slice(-2000)}`);
    } catch (err) {
      await proc.stop('SIGTERM', 3000);
      throw err;
    }
    return gw;
  }
}

/** Starts vpcgw in `ns` with `config` (see the Vpcgw class). */
export function startVpcgw(topo: Topology, ns: NodeName | string, config: VpcgwConfig, timeoutMs?: number): Promise<Vpcgw> {
  return Vpcgw.start(topo, ns, config, timeoutMs);
}

export function parseVpcgwStatus(stdout: string): VpcgwStatus {
  let j: unknown;
  try {
    j = JSON.parse(stdout);
  } catch {
    throw new Error(`vpcgw status printed no JSON: ${stdout.slice(0, 500)}`);
  }
  const conns = (j as { connections?: unknown }).connections;
  if (!Array.isArray(conns)) throw new Error(`vpcgw status JSON lacks connections[]: ${stdout.slice(0, 500)}`);
  return {
    dataPlane: String((j as { gateway?: { dataPlane?: unknown } }).gateway?.dataPlane ?? ''),
    connections: conns.map((c: Record<string, unknown>) => ({
      name: String(c.name),
      state: String(c.state),
      children: (Array.isArray(c.children) ? c.children : []).map((ch: Record<string, unknown>) => ({
        name: String(ch.name ?? ''),
        state: String(ch.state),
        spiIn: normSpi(String(ch.spiIn ?? '')),
        spiOut: normSpi(String(ch.spiOut ?? '')),
        bytesIn: Number(ch.bytesIn ?? 0),
        bytesOut: Number(ch.bytesOut ?? 0),
        packetsIn: Number(ch.packetsIn ?? 0),
        packetsOut: Number(ch.packetsOut ?? 0),
        localTs: Array.isArray(ch.localTs) ? ch.localTs.map(String) : [],
        remoteTs: Array.isArray(ch.remoteTs) ? ch.remoteTs.map(String) : [],
      })),
    })),
  };
}
