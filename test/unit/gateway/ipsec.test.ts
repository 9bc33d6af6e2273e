import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../../src/common/log.js';
import { formatPrefix, type Prefix } from '../../../src/common/ip.js';
import type { DataPlane } from '../../../src/dataplane/data-plane.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import type { GatewayConfig } from '../../../src/gateway/config/types.js';
import { IpsecController } from '../../../src/gateway/ipsec.js';
import { diffConfigs } from '../../../src/gateway/live-change.js';
import { peerConfigFrom } from '../../../src/gateway/peer-configs.js';
import { IkeManager } from '../../../src/ike/ike-manager.js';
import type { PeerConfig } from '../../../src/ike/config/peer-config.js';
import type { IkeAction } from '../../../src/ike/sa/types.js';

// IpsecController.reconfigure against two in-process customer gateways (IkeManagers), with a data
// plane that records CHILD_SAs and routes.

const GW = '192.0.2.2';
const PEERS: Record<string, string> = { c1: '192.0.2.1', c2: '192.0.2.3' };

function config(c1Extra = '', withC2 = true): GatewayConfig {
  const conn = (name: string, cgw: string, remote: string, extra = '') =>
    `  - { name: ${name}, customerGateway: ${cgw}, localSubnets: [10.2.0.0/16], remoteSubnets: [${remote}], auth: { psk: test-fixture-psk-${name} }${extra} }`;
  return parseConfig(`
gateway: { name: gw, dataDir: /tmp, publicAddresses: [${GW}], vpcSubnets: [10.2.0.0/16] }
customerGateways:
  - { name: cgw1, address: ${PEERS.c1} }
  - { name: cgw2, address: ${PEERS.c2} }
vpnConnections:
${conn('c1', 'cgw1', '10.11.0.0/16', c1Extra)}
${withC2 ? conn('c2', 'cgw2', '10.12.0.0/16') : ''}
`, '/tmp/ipsec-test.yaml');
}

function mirrored(cfg: GatewayConfig, name: string): PeerConfig {
  const i = cfg.vpnConnections.findIndex((c) => c.name === name);
  const mine = peerConfigFrom(cfg, cfg.vpnConnections[i]!, `vpnConnections[${i}]`);
  return {
    ...mine, localAddrs: [mine.remoteAddr!], remoteAddr: GW, localId: mine.remoteId, remoteId: mine.localId, startAction: 'none',
    children: mine.children.map((child) => ({ ...child, localTs: child.remoteTs, remoteTs: child.localTs, routes: undefined })),
  };
}

function setUp(initial: GatewayConfig = config()) {
  let cfg = initial;
  const sas = new Set<string>();
  const routes = new Map<string, number>();
  /** "direction:spi" → the origin the SA was installed with */
  const origins = new Map<string, number | undefined>();
  const dp = {
    onSaEvent() {},
    installSa(s: { spi: number; direction: string; origin?: number }) {
      sas.add(`${s.direction}:${s.spi}`);
      origins.set(`${s.direction}:${s.spi}`, s.origin);
    },
    removeSa(spi: number, direction: string) { sas.delete(`${direction}:${spi}`); },
    addRoute(prefix: Prefix, spi: number) { routes.set(formatPrefix(prefix), spi); },
    removeRoute(prefix: Prefix) { routes.delete(formatPrefix(prefix)); },
    saCounters() { return undefined; },
  } as unknown as DataPlane;
  const peers = new Map<string, IkeManager>();
  for (const [name, addr] of Object.entries(PEERS)) {
    const m = new IkeManager({ log: captureLogger(), now: Date.now() });
    m.setConfigs([mirrored(cfg, name)]);
    peers.set(addr, m);
  }
  const wire: { d: Buffer; from: { address: string; port: number }; to: { address: string; port: number } }[] = [];
  const ctrl = new IpsecController({
    get config() { return cfg; },
    log: captureLogger(),
    dataPlane: dp,
    sendIke: (d, to, local) => { wire.push({ d: Buffer.from(d), from: local, to }); return true; },
    originOf: (connection) => (connection === 'c1' ? 11 : 12),
  });
  const pump = (): void => {
    for (let i = 0; i < 100 && wire.length > 0; i++) {
      const acts: IkeAction[] = [];
      for (const m of wire.splice(0)) acts.push(...peers.get(m.to.address)!.receive(m.d, m.from, m.to, Date.now()));
      for (const a of acts) if (a.kind === 'send') ctrl.receiveIke(a.datagram, { family: 4, ...a.from }, { family: 4, ...a.to });
    }
  };
  const apply = (next: GatewayConfig) => {
    const d = diffConfigs(cfg, next);
    cfg = next;
    ctrl.reconfigure(next, d.connections);
    pump();
    return d.connections;
  };
  ctrl.start();
  pump();
  const spis = (name: string) => ctrl.status().find((c) => c.name === name)?.children.map((c) => [c.spiIn, c.spiOut]) ?? [];
  return { ctrl, sas, routes, peers, pump, apply, spis, origins };
}

describe('IpsecController: policy origins', () => {
  it('inbound SAs carry their connection\'s origin (the policy stage keys ACLs and endpoint whitelists by it)', () => {
    const { spis, origins } = setUp();
    for (const [name, origin] of [['c1', 11], ['c2', 12]] as const) {
      const [spiIn, spiOut] = spis(name)[0]!;
      expect(origins.get(`in:${parseInt(spiIn!, 16)}`)).toBe(origin);
      expect(origins.get(`out:${parseInt(spiOut!, 16)}`)).toBeUndefined();
    }
  });
});

describe('IpsecController.reconfigure', () => {
  it('a removed connection is deleted at the peer, its CHILD_SAs and data-plane routes go; the other one is untouched', () => {
    const { ctrl, sas, routes, peers, apply, spis } = setUp();
    expect(ctrl.status().map((c) => [c.name, c.state])).toEqual([['c1', 'ESTABLISHED'], ['c2', 'ESTABLISHED']]);
    expect(sas.size).toBe(4);
    const c1 = spis('c1');
    const c1Route = routes.get('10.11.0.0/16');
    expect(apply(config('', false))).toMatchObject({ removed: ['c2'], unchanged: ['c1'] });
    expect(peers.get(PEERS.c2!)!.size).toBe(0);
    expect(ctrl.status().map((c) => c.name)).toEqual(['c1']);
    expect([...routes.keys()]).toEqual(['10.11.0.0/16']);
    expect(routes.get('10.11.0.0/16')).toBe(c1Route);
    expect(spis('c1')).toEqual(c1);
    expect(sas.size).toBe(2);
    expect(peers.get(PEERS.c1!)!.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
  });

  it('a changed connection is re-created: new SAs and routes to them, the old ones removed; an added one comes up', () => {
    const { ctrl, sas, routes, peers, apply, spis } = setUp();
    apply(config('', false));
    const before = spis('c1');
    const c2Peer = peers.get(PEERS.c2!)!;
    const change = apply(config(', esp: { lifetime: 30m }'));
    expect(change).toEqual({ added: ['c2'], removed: [], changed: ['c1'], unchanged: [] });
    expect(ctrl.status().map((c) => [c.name, c.state])).toEqual([['c1', 'ESTABLISHED'], ['c2', 'ESTABLISHED']]);
    const after = spis('c1');
    expect(after).toHaveLength(1);
    expect(after[0]).not.toEqual(before[0]);
    expect(sas.size).toBe(4);
    expect(sas.has(`in:${parseInt(before[0]![0]!, 16)}`)).toBe(false);
    expect(routes.get('10.11.0.0/16')).toBe(parseInt(after[0]![1]!, 16));
    expect(c2Peer.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(peers.get(PEERS.c1!)!.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
  });
});

describe('IpsecController: the last error of a connection', () => {
  it('keeps why the negotiation failed with a time, and clears it once the IKE SA comes up', () => {
    const { ctrl, peers, pump } = setUp();
    const peer = peers.get(PEERS.c1!)!;
    const good = peer.config('c1')!;
    ctrl.terminate('c1');
    pump();
    peer.setConfigs([{ ...good, psk: Buffer.from('another-test-fixture-psk') }]);
    ctrl.initiate('c1');
    pump();
    const c1 = ctrl.status().find((c) => c.name === 'c1')!;
    expect(c1.state).toBe('DOWN');
    expect(c1.lastError).toMatchObject({ code: 'AUTH_REJECTED_BY_PEER', message: 'PSK mismatch (AUTHENTICATION_FAILED from the peer)' });
    expect(c1.lastError!.hint).toMatch(/same psk/);
    expect(Date.now() - Date.parse(c1.lastError!.at)).toBeLessThan(60_000);
    expect(ctrl.status().find((c) => c.name === 'c2')!.lastError).toBeUndefined();
    peer.setConfigs([good]);
    ctrl.initiate('c1');
    pump();
    const up = ctrl.status().find((c) => c.name === 'c1')!;
    expect(up.state).toBe('ESTABLISHED');
    expect(up.lastError).toBeUndefined();
  });
});

describe('IpsecController: several children and route-based connections', () => {
  const yaml = (conns: string) => parseConfig(`
gateway: { name: gw, dataDir: /tmp, publicAddresses: [${GW}], vpcSubnets: [10.2.0.0/16] }
customerGateways:
  - { name: cgw1, address: ${PEERS.c1} }
  - { name: cgw2, address: ${PEERS.c2} }
vpnConnections:
${conns}
`, '/tmp/ipsec-test.yaml');

  it('each child\'s remote subnets route to its own outbound SA', () => {
    const { ctrl, routes } = setUp(yaml(`
  - name: c1
    customerGateway: cgw1
    auth: { psk: test-fixture-psk-c1 }
    children:
      - { name: app, localSubnets: [10.2.0.0/24], remoteSubnets: [10.11.0.0/24] }
      - { name: db, localSubnets: [10.2.1.0/24], remoteSubnets: [10.11.1.0/24, 10.11.2.0/24] }
  - { name: c2, customerGateway: cgw2, localSubnets: [10.2.0.0/16], remoteSubnets: [10.12.0.0/16], auth: { psk: test-fixture-psk-c2 } }
`));
    const c1 = ctrl.status().find((c) => c.name === 'c1')!;
    expect(c1.children.map((c) => c.name)).toEqual(['app', 'db']);
    const out = (n: string) => parseInt(c1.children.find((c) => c.name === n)!.spiOut, 16);
    expect(routes.get('10.11.0.0/24')).toBe(out('app'));
    expect(routes.get('10.11.1.0/24')).toBe(out('db'));
    expect(routes.get('10.11.2.0/24')).toBe(out('db'));
    expect(out('app')).not.toBe(out('db'));
  });

  it('mode route: the TS are 0.0.0.0/0 but only each connection\'s routes lead to its SA (the route table picks the tunnel)', () => {
    const { ctrl, routes } = setUp(yaml(`
  - { name: c1, customerGateway: cgw1, mode: route, routes: [10.11.0.0/16, 10.21.0.0/16], auth: { psk: test-fixture-psk-c1 } }
  - { name: c2, customerGateway: cgw2, mode: route, routes: [10.12.0.0/16], auth: { psk: test-fixture-psk-c2 } }
`));
    const spiOut = (name: string) => parseInt(ctrl.status().find((c) => c.name === name)!.children[0]!.spiOut, 16);
    expect(ctrl.status().find((c) => c.name === 'c1')!.children[0]!.remoteTs).toEqual(['0.0.0.0/0']);
    expect([...routes.keys()].sort()).toEqual(['10.11.0.0/16', '10.12.0.0/16', '10.21.0.0/16']);
    expect(routes.get('10.11.0.0/16')).toBe(spiOut('c1'));
    expect(routes.get('10.21.0.0/16')).toBe(spiOut('c1'));
    expect(routes.get('10.12.0.0/16')).toBe(spiOut('c2'));
  });
});
