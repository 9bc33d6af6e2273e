import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { IoError } from '../common/errors.js';
import { parseIp, parsePrefix, prefixContains } from '../common/ip.js';
import { profileWithCertificate } from './client-profile.js';
import { loadConfigFile } from './config/load.js';
import type { GatewayConfig } from './config/types.js';
import { issueCertificate, validFor } from './pki.js';
import { DEFAULT_CONFIG_NAME } from './paths.js';

/**
 * `vpcgw start` with no --config: the data dir ($VPCGW_DATA_DIR, else ./var) holds vpcgw.yaml,
 * written from the embedded default when missing, and the control socket. The default starts a
 * gateway with no connections; the file carries a commented example connection with a freshly
 * generated PSK (the file is 0600; the PSK is never printed or logged).
 */

export { CONTROL_SOCKET_NAME, DEFAULT_CONFIG_NAME, DEFAULT_DATA_DIR, defaultDataDir } from './paths.js';

/** Candidate VPC subnets for the default, first one that does not clash with this host's addresses. */
const VPC_SUBNET_CANDIDATES = ['10.2.0.0/16', '10.202.0.0/16', '172.31.0.0/16', '192.168.202.0/24'];

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
 * certificate (client1). Keys are 0600 and never logged; existing files are never overwritten.
 */
export function ensureDefaultPki(dir: string): void {
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
  put('ca.crt', ca.pem.cert, 0o644); // last: its presence means the PKI is complete
}

/**
 * <dataDir>/pki/client1.ovpn for the default config's VPN server: the profile every download of it
 * gets (src/gateway/client-profile.ts) with client1's certificate and key inline, dialling `host`.
 * Never overwrites (`vpcgw pki profile` rewrites it on purpose).
 */
export function ensureDefaultProfile(configPath: string, host: string): void {
  const cfg = loadConfigFile(configPath);
  const server = cfg.vpnServers[0];
  const dir = join(cfg.gateway.dataDir, 'pki');
  const file = join(dir, 'client1.ovpn');
  if (!server || existsSync(file)) return;
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  const profile = profileWithCertificate(cfg, server.name, { cert: read('client1.crt'), key: read('client1.key') }, { host });
  writeFileSync(file, profile.text, { mode: 0o600, flag: 'wx' });
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
# At first start it seeds the resource store (vpcgw.db in this folder); from then on the store is the
# configuration: change it through the management API, or edit this file and run
# \`vpcgw apply -f <this file>\` (it prints the plan; --dry-run only prints it).
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
# ./pki/client1.ovpn is a ready client profile (set its "remote" lines to this host's public address).
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

# An example site-to-cloud connection. Uncomment, set the addresses and subnets, then take it live
# with: vpcgw apply -f <this file>   (or create the same resources through the API).
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
 * does not exist, with the SSL VPN's PKI and a client profile dialling `host` (default: this host's
 * first public IPv4 address). Never overwrites. Returns the config path and whether it was created.
 */
export function ensureDefaultConfig(dataDir: string, host: string = firstPublicIpv4()): { path: string; created: boolean } {
  const path = join(dataDir, DEFAULT_CONFIG_NAME);
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (existsSync(path)) return { path, created: false };
    const vpcSubnet = pickDefaultVpcSubnet();
    ensureDefaultPki(join(dataDir, 'pki'));
    writeFileSync(path, defaultConfigText({ vpcSubnet, psk: generatePsk(), clientCidr: DEFAULT_CLIENT_CIDR, localId: host }), { mode: 0o600, flag: 'wx' });
    ensureDefaultProfile(path, host);
  } catch (e) {
    throw new IoError(`cannot create the default config in ${dataDir}: ${(e as Error).message}`, e);
  }
  return { path, created: true };
}

export interface NextStepsContext {
  controlPath: string;
  /** The default file was just written. */
  created: boolean;
  /** https://host:port of the management API, or null when it is off. */
  apiUrl: string | null;
  /** Started with --config (the file is applied at every start) rather than the default file. */
  explicit: boolean;
}

/** What `vpcgw start` prints once the gateway runs: where things are and what to do next. */
export function nextSteps(cfg: GatewayConfig, o: NextStepsContext): string {
  const lines: string[] = [];
  const store = join(cfg.gateway.dataDir, 'vpcgw.db');
  const ctl = `--control ${o.controlPath}`;
  lines.push(`vpcgw: gateway "${cfg.gateway.name}" is running (pid ${process.pid}).`);
  lines.push(`  config:         ${cfg.source}${o.created ? '  (just created with defaults)' : ''}`);
  lines.push(`  store:          ${store}  (${o.explicit ? 'made to match the config file at every start' : 'seeded from the config file once; the store is the config now'})`);
  lines.push(`  control socket: ${o.controlPath}`);
  if (o.apiUrl) lines.push(`  management API: ${o.apiUrl}/v1  (OpenAPI: ${o.apiUrl}/v1/openapi.json, metrics: ${o.apiUrl}/metrics)`);
  lines.push('Next steps:');
  let n = 1;
  if (o.apiUrl) {
    const curl = `curl -sk -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json'`;
    lines.push(`  ${n++}. Create an API token:   TOKEN=$(sudo vpcgw token create ${ctl})`);
    if (cfg.vpnConnections.length === 0) {
      lines.push(`  ${n++}. Add a customer gateway and a VPN connection (or put them in a YAML file: vpcgw apply -f FILE ${ctl}):`);
      lines.push(`       ${curl} -d '{"name":"dc1","address":"192.0.2.1"}' ${o.apiUrl}/v1/customer-gateways`);
      lines.push(`       ${curl} -d '{"name":"dc1-main","customerGateway":"dc1","localSubnets":["${cfg.gateway.vpcSubnets[0]?.text ?? '10.2.0.0/16'}"],`
        + `"remoteSubnets":["10.1.0.0/16"],"auth":{"psk":"<8-128 characters>"}}' ${o.apiUrl}/v1/vpn-connections`);
    }
    lines.push(`  ${n++}. Give the customer gateway its side (strongSwan; format=libreswan for Libreswan):`);
    lines.push(`       ${curl} ${o.apiUrl}/v1/vpn-connections/${cfg.vpnConnections[0]?.name ?? 'dc1-main'}/peer-config?format=swanctl`);
  } else {
    lines.push(`  ${n++}. Change the gateway with a YAML file: vpcgw apply -f FILE ${ctl}`);
    lines.push(`  ${n++}. The customer side of a connection: vpcgw peer-config NAME ${ctl}`);
  }
  for (const v of cfg.vpnServers) {
    const profile = join(cfg.gateway.dataDir, 'pki', 'client1.ovpn');
    lines.push(`  * SSL VPN "${v.name}" listens on ${v.protocols.join('+')} port ${v.port}; clients get addresses from ${v.clientCidr.text}.`);
    if (existsSync(profile)) lines.push(`    Connect a client: sudo openvpn --config ${profile}   (edit its "remote" line first if needed)`);
  }
  lines.push(`  ${n}. Watch it: vpcgw status ${ctl}`);
  return lines.join('\n');
}
