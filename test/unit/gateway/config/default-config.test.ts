import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../../../src/gateway/config/load.js';
import {
  defaultDataDir, ensureDefaultConfig, nextSteps, pickDefaultVpcSubnet,
} from '../../../../src/gateway/default-config.js';

describe('default config', () => {
  it('data dir: $VPCGW_DATA_DIR, else ./var, resolved against the cwd', () => {
    expect(defaultDataDir({}, '/srv')).toBe('/srv/var');
    expect(defaultDataDir({ VPCGW_DATA_DIR: 'state' }, '/srv')).toBe('/srv/state');
    expect(defaultDataDir({ VPCGW_DATA_DIR: '/var/lib/vpcgw' }, '/srv')).toBe('/var/lib/vpcgw');
  });

  it('picks a VPC subnet that does not contain the host\'s own addresses', () => {
    expect(pickDefaultVpcSubnet(['127.0.0.1'])).toBe('10.2.0.0/16');
    expect(pickDefaultVpcSubnet(['10.2.3.4', '::1'])).toBe('10.202.0.0/16');
  });

  it('writes a valid 0600 config once, with the data dir as its folder, and never overwrites', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'vpcgw-def-')), 'var');
    try {
      const a = ensureDefaultConfig(dir);
      expect(a).toEqual({ path: join(dir, 'vpcgw.yaml'), created: true });
      expect(statSync(a.path).mode & 0o777).toBe(0o600);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      const text = readFileSync(a.path, 'utf8');
      const cfg = parseConfig(text, a.path);
      expect(cfg.gateway.dataDir).toBe(dir);
      expect(cfg.gateway.publicAddresses.map((x) => x.text)).toEqual(['0.0.0.0']);
      expect(cfg.vpnConnections).toEqual([]);
      writeFileSync(a.path, text + '# mine\n');
      expect(ensureDefaultConfig(dir).created).toBe(false);
      expect(readFileSync(a.path, 'utf8')).toContain('# mine');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the commented example becomes a valid connection with a generated PSK when uncommented', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-def-'));
    try {
      const { path } = ensureDefaultConfig(dir);
      const text = readFileSync(path, 'utf8');
      const uncommented = text
        .replace(/^customerGateways: \[\]\n|^vpnConnections: \[\]\n/gm, '')
        .replace(/^# (customerGateways:|vpnConnections:|  .*)$/gm, '$1');
      const cfg = parseConfig(uncommented, path);
      expect(cfg.vpnConnections).toHaveLength(1);
      const psk = cfg.vpnConnections[0]!.auth.psk!.reveal();
      expect(psk).toMatch(/^[A-Za-z0-9_-]{32}$/);
      // a second gateway gets a different PSK
      const other = mkdtempSync(join(tmpdir(), 'vpcgw-def-'));
      expect(readFileSync(ensureDefaultConfig(other).path, 'utf8')).not.toContain(psk);
      rmSync(other, { recursive: true, force: true });
      // what start prints names the store, the API and the next steps, and never the PSK
      const steps = nextSteps(cfg, { controlPath: '/run/vpcgw.sock', created: true, apiUrl: 'https://127.0.0.1:9443', explicit: false });
      expect(steps).toContain('vpcgw status --control /run/vpcgw.sock');
      expect(steps).toContain('token create --control /run/vpcgw.sock');
      expect(steps).toContain('https://127.0.0.1:9443/v1/vpn-connections/dc1-main/peer-config?format=swanctl');
      expect(steps).toMatch(/seeded from the config file once/);
      expect(steps).not.toContain(psk);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
