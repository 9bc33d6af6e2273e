// `vpcgw start` in a network namespace of its own, driven the way an operator drives it: the CLI
// (`vpcgw token create`, `vpcgw status --json`) and curl against the HTTPS management API, both run
// inside the namespace (the API listens on its 127.0.0.1).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, spawnProcess, waitFor, type ManagedProcess, type RunResult } from './proc.js';
import { VPCGW_CLI } from './vpcgw.js';

export interface Netns {
  readonly name: string;
  exec(cmd: string, args: readonly string[], o?: { timeoutMs?: number; allowFail?: boolean; env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  destroy(): Promise<void>;
}

/** A fresh namespace with lo up; destroy() deletes it (and with it every process's sockets there). */
export async function createNetns(tag: string): Promise<Netns> {
  const name = `vg${randomBytes(2).toString('hex')}${tag.replace(/[^a-z0-9]/gi, '').slice(0, 6)}`;
  await run('ip', ['netns', 'add', name], { timeoutMs: 10_000 });
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up'], { timeoutMs: 10_000 });
  return {
    name,
    exec: (cmd, args, o = {}) => run('ip', ['netns', 'exec', name, cmd, ...args], { timeoutMs: o.timeoutMs ?? 15_000, allowFail: o.allowFail, env: o.env }),
    destroy: async () => {
      await run('ip', ['netns', 'del', name], { timeoutMs: 10_000, allowFail: true });
    },
  };
}

export interface ApiResponse {
  status: number;
  body: string;
  json: unknown;
}

/** A running daemon: `vpcgw start` with VPCGW_DATA_DIR (and `--config` when given), in `ns`. */
export class NsDaemon {
  token = '';
  private constructor(
    readonly ns: Netns,
    readonly proc: ManagedProcess,
    readonly dataDir: string,
    readonly controlPath: string,
  ) {}

  static async start(ns: Netns | { name: string; exec: Netns['exec'] }, o: { dataDir: string; config?: string; label?: string; timeoutMs?: number }): Promise<NsDaemon> {
    const controlPath = join(o.dataDir, 'vpcgw.sock');
    const args = [VPCGW_CLI, 'start', ...(o.config ? ['--config', o.config] : []), '--control', controlPath];
    const proc = spawnProcess('ip', ['netns', 'exec', ns.name, process.execPath, ...args], {
      env: { ...process.env, VPCGW_DATA_DIR: o.dataDir },
      label: o.label ?? `vpcgw@${ns.name}`,
    });
    const d = new NsDaemon(ns as Netns, proc, o.dataDir, controlPath);
    await waitFor(
      async () => {
        if (!proc.running) throw new Error(`vpcgw exited early: ${proc.output().slice(-3000)}`);
        if (!existsSync(controlPath)) return false;
        const r = await d.cli(['status', '--json'], true);
        return r.code === 0;
      },
      { timeoutMs: o.timeoutMs ?? 20_000, intervalMs: 150, what: `vpcgw in ${ns.name} to answer status` },
    );
    return d;
  }

  /** `vpcgw ARGS --control <socket>` in the namespace. */
  cli(args: readonly string[], allowFail = false): Promise<RunResult> {
    return this.ns.exec(process.execPath, [VPCGW_CLI, ...args, '--control', this.controlPath], { allowFail, timeoutMs: 60_000 });
  }

  async status(): Promise<Record<string, any>> {
    return JSON.parse((await this.cli(['status', '--json'])).stdout) as Record<string, any>;
  }

  /** The API's base URL from `vpcgw status --json` (gateway.api.url). */
  async apiUrl(): Promise<string> {
    const url = (await this.status()).gateway?.api?.url as string | undefined;
    if (!url) throw new Error('vpcgw status shows no gateway.api.url');
    return url;
  }

  async createToken(): Promise<string> {
    this.token = (await this.cli(['token', 'create'])).stdout.trim();
    return this.token;
  }

  /** curl -k against the API inside the namespace; `token: null` sends no Authorization header. */
  async api(method: string, path: string, body?: unknown, o: { token?: string | null; url?: string } = {}): Promise<ApiResponse> {
    const url = o.url ?? (await this.apiUrl());
    const token = o.token === undefined ? this.token : o.token;
    const args = ['-sk', '--max-time', '30', '-o', '-', '-w', '\n%{http_code}', '-X', method];
    if (token) args.push('-H', `Authorization: Bearer ${token}`);
    if (body !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(body));
    args.push(`${url}${path}`);
    const r = await this.ns.exec('curl', args, { allowFail: true, timeoutMs: 35_000 });
    const nl = r.stdout.lastIndexOf('\n');
    const status = Number(r.stdout.slice(nl + 1));
    const text = r.stdout.slice(0, nl);
    let json: unknown = undefined;
    try {
      json = JSON.parse(text);
    } catch {
      /* a text download */
    }
    return { status, body: text, json };
  }

  stop(): ReturnType<ManagedProcess['stop']> {
    return this.proc.stop('SIGTERM', 8000);
  }

  kill9(): ReturnType<ManagedProcess['stop']> {
    return this.proc.stop('SIGKILL', 3000);
  }

  output(): string {
    return this.proc.output();
  }
}

/**
 * `<dir>/var` (0700) with a vpcgw.yaml that seeds the store at the first start (no `--config`):
 * a gateway on 127.0.0.1 with no resources (but `users`: that many users user0.. with one password
 * hash), the API on 127.0.0.1:9443. Returns the data dir.
 */
export function seedDataDir(dir: string, o: { name: string; tun: string; logLevel?: string; users?: { count: number; passwordHash: string } }): string {
  const dataDir = join(dir, 'var');
  const users = o.users
    ? `users:\n${Array.from({ length: o.users.count }, (_, i) => `  - { name: user${i}, passwordHash: "${o.users!.passwordHash}" }`).join('\n')}\n`
    : '';
  mkdirSync(dataDir, { mode: 0o700 });
  writeFileSync(join(dataDir, 'vpcgw.yaml'), `gateway:
  name: ${o.name}
  dataDir: .
  publicAddresses: [127.0.0.1]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: ${o.tun} }
  logLevel: ${o.logLevel ?? 'info'}
  api: { listen: "127.0.0.1:9443" }
customerGateways: []
vpnConnections: []
vpnServers: []
${users}`, { mode: 0o600 });
  return dataDir;
}
