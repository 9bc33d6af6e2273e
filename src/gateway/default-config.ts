import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { IoError } from '../common/errors.js';
import { parseIp, parsePrefix, prefixContains } from '../common/ip.js';
import type { GatewayConfig, VpnConnectionConfig } from './config/types.js';

/**
 * `vpcgw start` with no --config: the data dir ($VPCGW_DATA_DIR, else ./var) holds vpcgw.yaml,
 * written from the embedded default when missing, and the control socket. The default starts a
 * gateway with no connections; the file carries a commented example connection with a freshly
 * generated PSK (the file is 0600; the PSK is never printed or logged).
 */

export const DEFAULT_DATA_DIR = './var';
export const DEFAULT_CONFIG_NAME = 'vpcgw.yaml';
export const CONTROL_SOCKET_NAME = 'vpcgw.sock';

/** Candidate VPC subnets for the default, first one that does not clash with this host's addresses. */
const VPC_SUBNET_CANDIDATES = ['10.2.0.0/16', '10.202.0.0/16', '172.31.0.0/16', '192.168.202.0/24'];

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  const fromEnv = env.VPCGW_DATA_DIR?.trim();
  return resolve(cwd, fromEnv || DEFAULT_DATA_DIR);
}

/** A VPC subnet for the default config that none of this host's interface addresses fall in. */
export function pickDefaultVpcSubnet(hostAddresses: readonly string[] = localAddresses()): string {
  for (const text of VPC_SUBNET_CANDIDATES) {
    const p = parsePrefix(text)!;
    const clash = hostAddresses.some((a) => {
      const ip = parseIp(a);
      return ip !== null && ip.family === p.family && prefixContains(p, ip.bytes);
    });
    if (!clash) return text;
  }
  return VPC_SUBNET_CANDIDATES[0]!;
}

function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

/** A PSK for the example: 32 random characters from 24 random bytes (base64url). */
export function generatePsk(): string {
  return randomBytes(24).toString('base64url');
}

export function defaultConfigText(opts: { vpcSubnet: string; psk: string }): string {
  return `# vpcgw configuration (created by \`vpcgw start\` because none existed).
# Relative paths are relative to this file's folder. Check edits with: vpcgw check-config <this file>
gateway:
  name: vpcgw
  dataDir: .                       # this folder: the control socket lives here
  publicAddresses: [0.0.0.0]       # the addresses peers reach; UDP 500 and 4500 are bound on each
  vpcSubnets: [${opts.vpcSubnet}]        # cloud-side subnets behind the gateway
  tun: { name: vpcgw0, mtu: 1400 }
  logLevel: info

customerGateways: []
vpnConnections: []

# An example site-to-cloud connection. Uncomment, set the addresses and subnets, and restart.
# The PSK below was generated for this gateway; give the same value to the customer side.
#
# customerGateways:
#   - { name: dc1, address: 192.0.2.1, id: 192.0.2.1 }
# vpnConnections:
#   - name: dc1-main
#     customerGateway: dc1
#     localSubnets: [${opts.vpcSubnet}]
#     remoteSubnets: [10.1.0.0/16]
#     auth: { psk: "${opts.psk}" }
#     ike: { proposals: "aes128gcm16-prfsha256-x25519", lifetime: 4h }
#     esp: { proposals: "aes128gcm16", lifetime: 1h }
#     startAction: start
#     dpd: { interval: 30s }
`;
}

/**
 * Creates the data dir (0700) and writes `<dataDir>/vpcgw.yaml` (0600) from the default when it
 * does not exist. Never overwrites. Returns the config path and whether it was created.
 */
export function ensureDefaultConfig(dataDir: string): { path: string; created: boolean } {
  const path = join(dataDir, DEFAULT_CONFIG_NAME);
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (existsSync(path)) return { path, created: false };
    writeFileSync(path, defaultConfigText({ vpcSubnet: pickDefaultVpcSubnet(), psk: generatePsk() }), { mode: 0o600, flag: 'wx' });
  } catch (e) {
    throw new IoError(`cannot create the default config in ${dataDir}: ${(e as Error).message}`, e);
  }
  return { path, created: true };
}

/**
 * The customer side of a connection as a strongSwan swanctl.conf snippet. The PSK is not
 * included: the snippet says where to copy it from.
 */
export function swanctlSnippet(cfg: GatewayConfig, conn: VpnConnectionConfig): string {
  const ours = cfg.gateway.publicAddresses.map((a) => a.text).filter((a) => a !== '0.0.0.0' && a !== '::');
  const remoteAddrs = ours.length ? ours.join(', ') : '<this gateway\'s public address>';
  const ourId = conn.ike.localId ?? ours[0] ?? '<this gateway\'s public address>';
  const idx = cfg.vpnConnections.indexOf(conn);
  return `connections {
  ${conn.name} {
    remote_addrs = ${remoteAddrs}
    local_addrs = ${conn.peer.address?.text ?? '%any'}
    proposals = ${conn.ike.proposals}
    local { auth = psk
            id = ${conn.peer.id} }
    remote { auth = psk
             id = ${ourId} }
    children {
      ${conn.name} {
        local_ts = ${conn.remoteSubnets.map((p) => p.text).join(', ')}
        remote_ts = ${conn.localSubnets.map((p) => p.text).join(', ')}
        esp_proposals = ${conn.esp.proposals}
        start_action = ${conn.startAction === 'start' ? 'none' : 'start'}
      }
    }
    encap = yes
  }
}
secrets {
  ike-${conn.name} {
    id-1 = ${conn.peer.id}
    id-2 = ${ourId}
    secret = "<vpnConnections[${idx}].auth.psk from ${cfg.source}>"
  }
}`;
}

/** What `vpcgw start` prints once the gateway runs: where things are and what to do next. */
export function nextSteps(cfg: GatewayConfig, controlPath: string, created: boolean): string {
  const lines: string[] = [];
  lines.push(`vpcgw: gateway "${cfg.gateway.name}" is running (pid ${process.pid}).`);
  lines.push(`  config:         ${cfg.source}${created ? '  (just created with defaults)' : ''}`);
  lines.push(`  control socket: ${controlPath}`);
  lines.push('Next steps:');
  if (cfg.vpnConnections.length === 0) {
    lines.push(`  1. Edit ${cfg.source}: set gateway.publicAddresses to the address your peers reach and`);
    lines.push('     gateway.vpcSubnets to the cloud-side subnets, then add a customer gateway and a VPN');
    lines.push('     connection (a commented example with a generated PSK is in the file).');
    lines.push(`  2. Check it: vpcgw check-config ${cfg.source}; then restart vpcgw.`);
    lines.push('  3. Configure the customer side; vpcgw prints a matching swanctl.conf once a connection exists.');
  } else {
    lines.push('  1. On each customer gateway (strongSwan), use a swanctl.conf like this (encap = yes is required:');
    lines.push('     this gateway carries ESP in UDP 4500):');
    for (const c of cfg.vpnConnections) {
      lines.push('');
      lines.push(swanctlSnippet(cfg, c).split('\n').map((l) => `     ${l}`).join('\n'));
    }
    lines.push('');
  }
  lines.push(`  ${cfg.vpnConnections.length === 0 ? '4' : '2'}. Watch it: vpcgw status --control ${controlPath}`);
  return lines.join('\n');
}
