// Two data planes (bench/dp-runner.mjs, hand-installed SAs) as the site and cloud gateways of the
// netns lab (helpers/netns.ts). Shared by test/unit/dataplane/native-netns.test.ts and
// multi-queue-netns.test.ts. The runners import the built code (dist/).
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Topology } from './netns.js';
import type { ManagedProcess } from './proc.js';
import { waitFor } from './proc.js';

const RUNNER = new URL('../../bench/dp-runner.mjs', import.meta.url).pathname;

/** Builds dist/ (tsconfig.build.json) for the runners and fails unless `distFile` is there afterwards. */
export function buildDistFor(distFile: string): void {
  spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: new URL('../../', import.meta.url).pathname, timeout: 180_000 });
  if (!existsSync(distFile)) throw new Error(`build did not produce ${distFile}`);
}

/** Drops other than NO_ROUTE (the kernel sends IPv6 router solicitations into a fresh TUN). */
export function dataDrops(d: Record<string, number>): Record<string, number> {
  const { NO_ROUTE: _ignored, ...rest } = d;
  return rest;
}

/**
 * Starts a runner in siteGw and one in cloudGw (config in VPCGW_DP_RUNNER) and waits up to 10 s each
 * for READY. stop() sends SIGTERM (waiting up to `stopMs` for each) and returns each side's final
 * STATS line, site first.
 */
export async function startRunnerPair<S>(
  topo: Topology,
  siteCfg: object,
  cloudCfg: object,
  stopMs: number,
): Promise<{ stop: () => Promise<[S, S]> }> {
  const procs: ManagedProcess[] = [];
  for (const [ns, cfg] of [
    ['siteGw', siteCfg],
    ['cloudGw', cloudCfg],
  ] as const) {
    procs.push(topo.spawnIn(ns, process.execPath, [RUNNER], { env: { ...process.env, VPCGW_DP_RUNNER: JSON.stringify(cfg) }, label: `dp ${ns}` }));
  }
  for (const p of procs) {
    await waitFor(
      async () => {
        if (!p.running) throw new Error(`runner exited: ${p.output()}`);
        return p.output().includes('READY');
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'the data-plane runner' },
    );
  }
  return {
    async stop() {
      const out: S[] = [];
      for (const p of procs) {
        await p.stop('SIGTERM', stopMs);
        const line = p.output().split('\n').find((l) => l.startsWith('STATS '));
        if (!line) throw new Error(`no STATS from runner: ${p.output()}`);
        out.push(JSON.parse(line.slice(6)) as S);
      }
      return [out[0]!, out[1]!];
    },
  };
}
