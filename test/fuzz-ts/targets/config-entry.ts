// Fuzz target: one config section or list entry as the management API receives it (a JSON request
// body), through readEntry (src/gateway/config/sections.ts) against a valid current config. Byte 0
// picks the section, the rest is the body; text that is not JSON is the API layer's to refuse, and
// anything JSON must end in a validated entry or a ConfigError.
import { parseConfig, readEntry, type SectionName } from '../../../src/gateway/config/index.js';
import { allowConfigError } from './check.js';

export const maxLen = 4096;
export const dictionary = ['"name"', '"address"', '"id"', '"customerGateway"', '"localSubnets"', '"remoteSubnets"', '"auth"', '"psk"', '"ike"', '"esp"', '"proposals"', '"lifetime"', '"protocols"', '"port"', '"clientCidr"', '{', '}', '[', ']', ':', ',', 'null', 'true', '1e999', '-0', '"10.0.0.0/8"', '"::/0"', '"4h"'];

const SECTIONS: SectionName[] = ['gateway', 'customerGateways', 'vpnConnections', 'vpnServers'];

const current = parseConfig(
  `gateway: { name: gw1, publicAddresses: [192.0.2.2], vpcSubnets: [10.2.0.0/16] }
customerGateways: [{ name: dc1, address: 192.0.2.1, id: 192.0.2.1 }]
vpnConnections:
  - { name: dc1-main, customerGateway: dc1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.1.0.0/16], auth: { psk: correct-horse-battery } }
vpnServers: []
`,
  '/etc/vpcgw/fuzz.yaml',
  '/etc/vpcgw',
);

export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const section = SECTIONS[data[0]! % SECTIONS.length]!;
  let raw: unknown;
  try {
    raw = JSON.parse(data.toString('utf8', 1));
  } catch {
    return;
  }
  allowConfigError(() => readEntry(section, raw, current, '/etc/vpcgw'));
}
