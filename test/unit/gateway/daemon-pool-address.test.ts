// The gateway's own address in each SSL VPN client pool (the first one, pushed to clients as
// route-gateway): on the TUN with the pool's prefix while the server exists, like OpenVPN's server
// configures its tun in topology subnet, so a client's ping to 10.8.0.1 is answered by the kernel.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/log.js';
import type { GatewayConfig, VpnServerConfig } from '../../../src/gateway/config/types.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { Gateway } from '../../../src/gateway/daemon.js';
import type { VpnServers, VpnServersFactory } from '../../../src/gateway/vpn-servers.js';
import type { VpnServerStatus } from '../../../src/gateway/status.js';
import { FakePlatform } from './daemon-fakes.js';

const P2C = '{ name: p2c, protocols: [tcp], port: 1194, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], auth: { type: cert }, serverCert: { cert: a, key: b }, clientCa: c }';
const P2C2 = '{ name: p2c-2, protocols: [udp], port: 1195, clientCidr: 10.9.0.0/28, localSubnets: [10.2.0.0/16], auth: { type: cert }, serverCert: { cert: a, key: b }, clientCa: c, maxConnections: 10 }';

const dirs: string[] = [];
const gateways: Gateway[] = [];
afterEach(async () => {
  for (const g of gateways.splice(0)) await g.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

class AddressPlatform extends FakePlatform {
  removed: string[] = [];
  delAddress(dev: string, p: string): void {
    this.removed.push(`${p} dev ${dev}`);
    this.addresses = this.addresses.filter((a) => a !== `${p} dev ${dev}`);
  }
}

class NoServers implements VpnServers {
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  status(): VpnServerStatus[] {
    return [];
  }
  async addServer(_v: VpnServerConfig): Promise<void> {}
  async removeServer(_name: string): Promise<void> {}
}
const factory: VpnServersFactory = () => new NoServers();

let dir = '';
function config(servers: string[], tunAddress = '169.254.0.1/32'): GatewayConfig {
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'vpcgw-pool-'));
    dirs.push(dir);
  }
  const text = `
gateway:
  name: gw1
  dataDir: ./var
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: vpcgwt0, mtu: 1380, address: ${tunAddress} }
vpnConnections: []
vpnServers:
${servers.map((s) => `  - ${s}`).join('\n')}
`;
  return parseConfig(text, join(dir, 'vpcgw.yaml'));
}

async function started(cfg: GatewayConfig, p: FakePlatform): Promise<Gateway> {
  const gw = new Gateway({ config: cfg, log: silentLogger, platform: p, vpnServers: factory, dataPlane: undefined });
  gateways.push(gw);
  await gw.start();
  return gw;
}

describe('the pool address on the TUN', () => {
  afterEach(() => {
    dir = '';
  });

  it("each pool's first address goes on the TUN with the pool's prefix, next to its route", async () => {
    const p = new AddressPlatform();
    await started(config([P2C, P2C2]), p);
    expect(p.addresses).toEqual(['169.254.0.1/32 dev vpcgwt0', '10.8.0.1/24 dev vpcgwt0', '10.9.0.1/28 dev vpcgwt0']);
    expect([...p.routes]).toEqual(expect.arrayContaining(['10.8.0.0/24 dev vpcgwt0', '10.9.0.0/28 dev vpcgwt0']));
  });

  it('a live change that removes a server removes its pool address; an added server gets one', async () => {
    const p = new AddressPlatform();
    const gw = await started(config([P2C, P2C2]), p);
    await gw.applyConfig(config([P2C]));
    expect(p.removed).toEqual(['10.9.0.1/28 dev vpcgwt0']);
    expect(p.addresses).toEqual(['169.254.0.1/32 dev vpcgwt0', '10.8.0.1/24 dev vpcgwt0']);
    await gw.applyConfig(config([P2C, P2C2]));
    expect(p.addresses).toEqual(['169.254.0.1/32 dev vpcgwt0', '10.8.0.1/24 dev vpcgwt0', '10.9.0.1/28 dev vpcgwt0']);
  });

  it('a pool address that is also gateway.tun.address stays when the server goes', async () => {
    const p = new AddressPlatform();
    const gw = await started(config([P2C, P2C2], '10.9.0.1/28'), p);
    await gw.applyConfig(config([P2C], '10.9.0.1/28'));
    expect(p.removed).toEqual([]);
  });
});
