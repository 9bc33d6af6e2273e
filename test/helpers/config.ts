// Small config documents for the config tests.
import { ConfigError } from '../../src/common/errors.js';
import { parseConfig } from '../../src/gateway/config/index.js';

/** A minimal gateway config with one extra `gateway.<key>` given as YAML text (null: left out). */
export function gatewayWith(key: string, yaml: string | null): string {
  return `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
${yaml === null ? '' : `  ${key}: ${yaml}\n`}`;
}

/** The ConfigError that loading `text` raises (a test failure when it loads). */
export function configErrorOf(text: string): ConfigError {
  try {
    parseConfig(text, '/etc/vpcgw/t.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}
