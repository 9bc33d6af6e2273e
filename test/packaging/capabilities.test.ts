// The capabilities packaging/vpcgw.service leaves the daemon (CapabilityBoundingSet=CAP_NET_ADMIN
// CAP_NET_BIND_SERVICE, NoNewPrivileges=yes) are enough and both are needed: `vpcgw start` runs as
// uid 0 under setpriv(1) with the same bounding set and no_new_privs, in a fresh network namespace,
// with an IPsec connection (UDP 500/4500) and an SSL VPN server on port 443. With both capabilities
// it starts (TUN, routes, forwarding, sockets), answers status and on SIGTERM removes its routes
// and exits 0; without either one it refuses to start. Needs root and dist/ (built when missing).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultConfig } from '../../src/gateway/default-config.js';
import { buildDistFor } from '../helpers/dp-runner.js';
import { run, spawnProcess, waitFor } from '../helpers/proc.js';
import { VPCGW_CLI } from '../helpers/vpcgw.js';

const NS = `vgcap${process.pid.toString(16)}`;
const ADDRESS = '192.0.2.2';
/** The unit's CapabilityBoundingSet (packaging/vpcgw.service), in setpriv's spelling. */
const UNIT_CAPS = ['net_admin', 'net_bind_service'];

let dir = '';
let configPath = '';

function unitCapabilities(): string[] {
  const unit = readFileSync(new URL('../../packaging/vpcgw.service', import.meta.url), 'utf8');
  const line = /^CapabilityBoundingSet=(.*)$/m.exec(unit)?.[1] ?? '';
  return line.split(/\s+/).filter(Boolean).map((c) => c.replace(/^CAP_/, '').toLowerCase());
}

/** `vpcgw start` in the namespace with only `caps` in the bounding set, no_new_privs, as systemd would run it. */
function startWith(caps: readonly string[]) {
  const bounding = ['-all', ...caps.map((c) => `+${c}`)].join(',');
  return spawnProcess('ip', ['netns', 'exec', NS, 'setpriv', `--bounding-set=${bounding}`, '--inh-caps=-all', '--no-new-privs',
    process.execPath, VPCGW_CLI, 'start', '--config', configPath], { label: `vpcgw start (caps ${caps.join(' ') || 'none'})` });
}

async function routes(): Promise<string> {
  return (await run('ip', ['-n', NS, 'route', 'show'], { timeoutMs: 10_000 })).stdout;
}

describe('the systemd unit capability set', () => {
  beforeAll(async () => {
    if (!existsSync(VPCGW_CLI)) buildDistFor(VPCGW_CLI);
    dir = mkdtempSync(join(tmpdir(), 'vpcgw-caps-'));
    configPath = ensureDefaultConfig(dir).path;
    // the default config plus an IPsec connection (binds UDP 500 and 4500) and the SSL VPN on 443
    const text = readFileSync(configPath, 'utf8')
      .replace(/publicAddresses: \[[^\]]*\]/, `publicAddresses: [${ADDRESS}]`)
      .replace(/port: 1194/, 'port: 443')
      .replace(/^customerGateways: \[\]$/m, 'customerGateways:\n  - { name: dc1, address: 192.0.2.1, id: 192.0.2.1 }')
      .replace(/^vpnConnections: \[\]$/m, `vpnConnections:
  - name: dc1-main
    customerGateway: dc1
    localSubnets: [10.2.0.0/16]
    remoteSubnets: [10.1.0.0/16]
    auth: { psk: "a long random secret for the capability check" }
    ike: { proposals: "aes128gcm16-prfsha256-x25519", localId: ${ADDRESS} }
    esp: { proposals: "aes128gcm16" }
    startAction: none`);
    expect(text).toContain('dc1-main');
    expect(text).toContain('port: 443');
    writeFileSync(configPath, text);
    await run('ip', ['netns', 'add', NS], { timeoutMs: 10_000 });
    await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up'], { timeoutMs: 10_000 });
    await run('ip', ['-n', NS, 'addr', 'add', `${ADDRESS}/32`, 'dev', 'lo'], { timeoutMs: 10_000 });
  }, 240_000);

  afterAll(async () => {
    await run('ip', ['netns', 'del', NS], { timeoutMs: 10_000, allowFail: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the unit names exactly CAP_NET_ADMIN and CAP_NET_BIND_SERVICE', () => {
    expect(unitCapabilities().sort()).toEqual([...UNIT_CAPS].sort());
  });

  it('with them: starts, binds 500/4500/443, adds its routes, answers status; SIGTERM removes the routes and exits 0', async () => {
    const gw = startWith(UNIT_CAPS);
    try {
      const st = await waitFor(async () => {
        if (!gw.running) throw new Error(`exited: ${gw.output()}`);
        const r = await run('ip', ['netns', 'exec', NS, process.execPath, VPCGW_CLI, 'status', '--json', '--config', configPath], { timeoutMs: 10_000, allowFail: true });
        return r.code === 0 ? (JSON.parse(r.stdout) as { gateway: { udp: { port: number }[]; routes: string[] }; vpnServers: { state: string; port: number }[] }) : undefined;
      }, { timeoutMs: 30_000, what: 'vpcgw status' });
      expect(st.gateway.udp.map((u) => u.port).sort()).toEqual([4500, 500]);
      expect(st.vpnServers).toMatchObject([{ state: 'LISTENING', port: 443 }]);
      expect(await routes()).toMatch(/10\.1\.0\.0\/16 dev vpcgw0/);
      const status = readFileSync(`/proc/${gw.pid}/status`, 'utf8');
      // CAP_NET_BIND_SERVICE is bit 10, CAP_NET_ADMIN bit 12: nothing else is left
      expect(/^CapBnd:\s*(\S+)$/m.exec(status)?.[1]).toBe('0000000000001400');
      expect(/^NoNewPrivs:\s*(\S+)$/m.exec(status)?.[1]).toBe('1');
    } finally {
      const end = await gw.stop('SIGTERM', 10_000);
      expect(end, gw.output()).toMatchObject({ code: 0, killed: false });
    }
    expect(await routes()).not.toMatch(/vpcgw0/);
  }, 60_000);

  it.each([
    ['net_admin', /cannot open \/dev\/net\/tun: Operation not permitted/],
    ['net_bind_service', /cannot bind UDP 192\.0\.2\.2:500: bind: Permission denied/],
  ])('without CAP_%s it refuses to start (exit 1)', async (missing, why) => {
    const gw = startWith(UNIT_CAPS.filter((c) => c !== missing));
    const end = await Promise.race([gw.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
    if (end === null) await gw.stop('SIGKILL', 5000);
    expect(end, gw.output()).toMatchObject({ code: 1 });
    expect(gw.output()).toMatch(why);
    expect(await routes()).not.toMatch(/vpcgw0/);
  }, 60_000);
});
