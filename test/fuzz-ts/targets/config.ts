// Fuzz target: the config loader (src/gateway/config/load.ts parseConfig: YAML text to a validated
// GatewayConfig, through the field tables of src/gateway/config/sections.ts). The config file and
// the management API's request bodies are written by people, so any text must end in a valid
// config or a ConfigError naming the field, never another exception, a hang (YAML aliases,
// deep nesting) or a big allocation.
import { parseConfig } from '../../../src/gateway/config/index.js';
import { allowConfigError } from './check.js';

export const maxLen = 4096;
export const dictionary = [
  'gateway:\n', 'customerGateways:\n', 'vpnConnections:\n', 'vpnServers:\n', '  - ', '  ', ': ', '\n', '&a ', '*a', '<<: ', '[', ']', '{', '}', '"', "'", '|\n', '!!binary ',
  'proposals: ', 'aes256gcm16-prfsha384-ecp384', 'lifetime: ', '4h', '1h30m', '10.0.0.0/8', '::/0', '192.0.2.1', 'psk: ', 'localId: ', 'id: ', 'startAction: ', 'dpd: ', 'interval: ',
  'protocols: ', 'udp', 'tcp', 'port: ', '65536', '-1', '1e309', '0x10', 'null', '~', 'true', '.inf',
];

export function fuzz(data: Buffer): void {
  allowConfigError(() => parseConfig(data.toString('utf8'), '/etc/vpcgw/fuzz.yaml', '/etc/vpcgw'));
}
