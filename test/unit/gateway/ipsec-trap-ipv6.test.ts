import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../../src/common/log.js';
import { formatPrefix, type Prefix } from '../../../src/common/ip.js';
import type { PacketSink } from '../../../src/common/packet-sink.js';
import type { DataPlane } from '../../../src/dataplane/data-plane.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { IpsecController } from '../../../src/gateway/ipsec.js';
import { peerConfigFrom } from '../../../src/gateway/peer-configs.js';
import { IkeManager } from '../../../src/ike/ike-manager.js';
import type { IkeAction } from '../../../src/ike/sa/types.js';

// startAction trap over IPv6 (src/gateway/ipsec.ts): IPv4 and IPv6 remote subnets both route to the
// trap; an IPv6 packet initiates from the IPv6 public address to the IPv6 customer gateway, and the
// CHILD_SA's routes replace both sinks.

const GW = '2001:db8:ff::2';
const PEER = '2001:db8:ff::1';

function setUp() {
  const cfg = parseConfig(`
gateway: { name: gw, dataDir: /tmp, publicAddresses: [192.0.2.2, "${GW}"], vpcSubnets: [10.2.0.0/16, "fd00:2::/64"] }
customerGateways:
  - { name: cgw1, address: "${PEER}" }
vpnConnections:
  - { name: c1, customerGateway: cgw1, localSubnets: [10.2.0.0/16, "fd00:2::/64"], remoteSubnets: [10.11.0.0/16, "fd00:11::/64"],
      auth: { psk: test-fixture-psk-c1 }, startAction: trap }
`, '/tmp/ipsec-trap-ipv6-test.yaml');
  let now = 1_000_000;
  /** prefix → an SPI, or the sink */
  const routes = new Map<string, number | PacketSink>();
  const dp = {
    onSaEvent() {},
    installSa() {},
    removeSa() {},
    addRoute(prefix: Prefix, spi: number) { routes.set(formatPrefix(prefix), spi); },
    removeRoute(prefix: Prefix) { routes.delete(formatPrefix(prefix)); },
    addSinkRoute(prefix: Prefix, sink: PacketSink) { routes.set(formatPrefix(prefix), sink); },
    removeSinkRoute(prefix: Prefix) { if (typeof routes.get(formatPrefix(prefix)) === 'object') routes.delete(formatPrefix(prefix)); },
    saCounters() { return undefined; },
  } as unknown as DataPlane;
  const mine = peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]');
  const child = mine.children[0]!;
  const peer = new IkeManager({ log: captureLogger(), now });
  peer.setConfigs([{
    ...mine, localAddrs: [PEER], remoteAddr: GW, localId: mine.remoteId, remoteId: mine.localId, startAction: 'none',
    children: [{ ...child, localTs: child.remoteTs, remoteTs: child.localTs }],
  }]);
  const wire: { d: Buffer; from: { address: string; port: number }; to: { address: string; port: number } }[] = [];
  const ctrl = new IpsecController({
    config: cfg, log: captureLogger(), dataPlane: dp,
    sendIke: (d, to, local) => { wire.push({ d: Buffer.from(d), from: local, to }); return true; },
  }, { now: () => now });
  const pump = (): void => {
    for (let i = 0; i < 100 && wire.length > 0; i++) {
      const acts: IkeAction[] = [];
      for (const m of wire.splice(0)) acts.push(...peer.receive(m.d, m.from, m.to, now));
      for (const a of acts) if (a.kind === 'send') ctrl.receiveIke(a.datagram, { family: 6, ...a.from }, { family: 6, ...a.to });
    }
  };
  /** an IPv6 packet from the VPC to the site (fd00:2::10 → fd00:11::10) reaches the trap */
  const packet = (): void => {
    const r = routes.get('fd00:11::/64');
    if (typeof r !== 'object') throw new Error('no sink route');
    const p = Buffer.alloc(80);
    p[0] = 0x60;
    p.writeUInt16BE(40, 4);
    p[6] = 59; // no next header
    p[7] = 64;
    Buffer.from('fd000002000000000000000000000010', 'hex').copy(p, 8);
    Buffer.from('fd000011000000000000000000000010', 'hex').copy(p, 24);
    r.push(p, 0, p.length);
    r.flush();
  };
  return { ctrl, peer, routes, wire, pump, packet, clock: { get: () => now, add: (ms: number) => { now += ms; } } };
}

describe('IpsecController: startAction trap with IPv6', () => {
  it('an IPv6 packet to a trapped IPv6 subnet initiates over IPv6; both families then route to the CHILD_SA', () => {
    const t = setUp();
    t.ctrl.start();
    expect(t.wire).toHaveLength(0);
    expect(typeof t.routes.get('10.11.0.0/16')).toBe('object');
    expect(typeof t.routes.get('fd00:11::/64')).toBe('object');
    t.packet();
    t.ctrl.tick(t.clock.get());
    expect(t.wire).toHaveLength(1);
    expect(t.wire[0]!.from).toMatchObject({ address: GW, port: 500 });
    expect(t.wire[0]!.to).toMatchObject({ address: PEER, port: 500 });
    t.pump();
    expect(t.ctrl.status()[0]!.state).toBe('ESTABLISHED');
    const v4 = t.routes.get('10.11.0.0/16');
    const v6 = t.routes.get('fd00:11::/64');
    expect(typeof v6).toBe('number');
    expect(v4).toBe(v6); // one CHILD_SA carries both families
  });
});
