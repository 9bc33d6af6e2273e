import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { IoError } from '../common/errors.js';
import { parseIp, parsePrefix, prefixContains } from '../common/ip.js';
import type { GatewayConfig, VpnConnectionConfig } from './config/types.js';
import { issueCertificate, validFor } from './pki.js';
import { dnToString, subjectDer } from '../ike/config/x509.js';

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

export const DEFAULT_CLIENT_CIDR = '10.8.0.0/24';

/**
 * The SSL VPN's own PKI for the default config: a CA, a server certificate and one client
 * certificate with a ready-to-use inline .ovpn profile. Keys are 0600 and never logged; existing
 * files are never overwritten.
 */
export function ensureDefaultPki(dir: string, host: string = firstPublicIpv4()): void {
  if (existsSync(join(dir, 'ca.crt'))) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = issueCertificate({ cn: 'vpcgw CA', isCa: true, ...validFor(3650) }, null);
  const server = issueCertificate({ cn: 'vpcgw server', isCa: false, eku: 'serverAuth', ...validFor(825) }, ca);
  const client = issueCertificate({ cn: 'client1', isCa: false, eku: 'clientAuth', ...validFor(825) }, ca);
  const put = (name: string, text: string, mode: number) => writeFileSync(join(dir, name), text, { mode, flag: 'wx' });
  put('ca.key', ca.pem.key, 0o600);
  put('server.crt', server.pem.cert, 0o644);
  put('server.key', server.pem.key, 0o600);
  put('client1.crt', client.pem.cert, 0o644);
  put('client1.key', client.pem.key, 0o600);
  put('client1.ovpn', ovpnProfile({ host, port: 1194, ca: ca.pem.cert, cert: client.pem.cert, key: client.pem.key }), 0o600);
  put('ca.crt', ca.pem.cert, 0o644); // last: its presence means the PKI is complete
}

/** An inline OpenVPN client profile (`openvpn --config client1.ovpn`). */
export function ovpnProfile(o: { host: string; port: number; ca: string; cert: string; key: string }): string {
  return `client
dev tun
proto udp
remote ${o.host} ${o.port}
# proto tcp-client   (the server listens on TCP ${o.port} too)
nobind
remote-cert-tls server
verb 3
<ca>
${o.ca.trim()}
</ca>
<cert>
${o.cert.trim()}
</cert>
<key>
${o.key.trim()}
</key>
`;
}

function firstPublicIpv4(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  }
  return '127.0.0.1';
}

/** A PSK for the example: 32 random characters from 24 random bytes (base64url). */
export function generatePsk(): string {
  return randomBytes(24).toString('base64url');
}

export function defaultConfigText(opts: { vpcSubnet: string; psk: string; clientCidr: string; localId: string }): string {
  return `# vpcgw configuration (created by \`vpcgw start\` because none existed).
# Relative paths are relative to this file's folder. Check edits with: vpcgw check-config <this file>
gateway:
  name: vpcgw
  dataDir: .                       # this folder: the control socket lives here
  publicAddresses: [0.0.0.0]       # the addresses peers reach; UDP 500 and 4500 are bound on each
                                   # once vpnConnections has an entry (not while it is empty)
  vpcSubnets: [${opts.vpcSubnet}]        # cloud-side subnets behind the gateway
  tun: { name: vpcgw0, mtu: 1400 }
  logLevel: info

customerGateways: []
vpnConnections: []

# Point-to-cloud SSL VPN for stock OpenVPN 2.6 clients. The PKI in ./pki was generated on first start;
# ./pki/client1.ovpn is a ready client profile (set its "remote" line to this host's public address).
vpnServers:
  - name: p2c
    protocols: [udp, tcp]
    port: 1194
    clientCidr: ${opts.clientCidr}
    localSubnets: [${opts.vpcSubnet}]
    dnsServers: []
    dataCiphers: [AES-256-GCM, AES-128-GCM, CHACHA20-POLY1305]
    auth: { type: cert }
    serverCert: { cert: pki/server.crt, key: pki/server.key }
    clientCa: pki/ca.crt
    maxConnections: 50

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
#     # our IKE identity: needed while publicAddresses is 0.0.0.0 (set the address the customer gateway reaches)
#     ike: { proposals: "aes128gcm16-prfsha256-x25519", lifetime: 4h, localId: ${opts.localId} }
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
    const vpcSubnet = pickDefaultVpcSubnet();
    ensureDefaultPki(join(dataDir, 'pki'));
    writeFileSync(path, defaultConfigText({ vpcSubnet, psk: generatePsk(), clientCidr: DEFAULT_CLIENT_CIDR, localId: firstPublicIpv4() }), { mode: 0o600, flag: 'wx' });
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
  const creds = conn.auth.credentials;
  // with a certificate our default ID is its subject DN (src/gateway/config/identities.ts)
  const ourId = conn.ike.localId ?? (creds ? `"${dnToString(subjectDer(creds.cert))}"` : ours[0] ?? '<this gateway\'s public address>');
  const idx = cfg.vpnConnections.indexOf(conn);
  const auth = creds ? 'pubkey' : 'psk';
  const certs = creds ? `
            certs = <the customer gateway's certificate, issued by the CA in ${conn.peer.ca}>` : '';
  const cacerts = creds ? `
             cacerts = <the CA that issued ${creds.certFile}>` : '';
  const secrets = creds ? '' : `
secrets {
  ike-${conn.name} {
    id-1 = ${conn.peer.id}
    id-2 = ${ourId}
    secret = "<vpnConnections[${idx}].auth.psk from ${cfg.source}>"
  }
}`;
  return `connections {
  ${conn.name} {
    remote_addrs = ${remoteAddrs}
    local_addrs = ${conn.peer.address?.text ?? '%any'}
    proposals = ${conn.ike.proposals}
    local { auth = ${auth}
            id = ${conn.peer.id}${certs} }
    remote { auth = ${auth}
             id = ${ourId}${cacerts} }
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
}${secrets}`;
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
  for (const v of cfg.vpnServers) {
    const profile = join(dirname(cfg.source), 'pki', 'client1.ovpn');
    lines.push(`  * SSL VPN "${v.name}" listens on ${v.protocols.join('+')} port ${v.port}; clients get addresses from ${v.clientCidr.text}.`);
    if (existsSync(profile)) lines.push(`    Connect a client: sudo openvpn --config ${profile}   (edit its "remote" line first if needed)`);
  }
  lines.push(`  ${cfg.vpnConnections.length === 0 ? '4' : '2'}. Watch it: vpcgw status --control ${controlPath}`);
  return lines.join('\n');
}
