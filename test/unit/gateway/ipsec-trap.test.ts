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

// startAction trap in the gateway (src/gateway/ipsec.ts): the remote subnets route to a sink until a
// CHILD_SA carries them; the first packet initiates; the sink comes back when the SAs go.

const GW = '192.0.2.2';
const PEER = '192.0.2.1';

function setUp() {
  const cfg = parseConfig(`
gateway: { name: gw, dataDir: /tmp, publicAddresses: [${GW}], vpcSubnets: [10.2.0.0/16] }
customerGateways:
  - { name: cgw1, address: ${PEER} }
vpnConnections:
  - { name: c1, customerGateway: cgw1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.11.0.0/16], auth: { psk: test-fixture-psk-c1 }, startAction: trap }
`, '/tmp/ipsec-trap-test.yaml');
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
      for (const a of acts) if (a.kind === 'send') ctrl.receiveIke(a.datagram, { family: 4, ...a.from }, { family: 4, ...a.to });
    }
  };
  const packet = (): void => {
    const r = routes.get('10.11.0.0/16');
    if (typeof r !== 'object') throw new Error('no sink route');
    r.push(Buffer.alloc(84), 0, 84);
    r.flush();
  };
  return { ctrl, peer, routes, wire, pump, packet, clock: { get: () => now, add: (ms: number) => { now += ms; } } };
}

describe('IpsecController: startAction trap', () => {
  it('routes the remote subnets to a sink, initiates on the first packet, and re-arms when the SA goes', () => {
    const t = setUp();
    t.ctrl.start();
    expect(t.wire).toHaveLength(0); // nothing at boot
    expect(typeof t.routes.get('10.11.0.0/16')).toBe('object');
    expect(t.ctrl.status()[0]!.state).toBe('DOWN');
    t.packet();
    t.packet();
    expect(t.ctrl.nextDeadline()).toBe(t.clock.get()); // the next tick acts on it
    t.ctrl.tick(t.clock.get());
    expect(t.wire).toHaveLength(1); // one IKE_SA_INIT for both packets
    t.pump();
    expect(t.ctrl.status()[0]!.state).toBe('ESTABLISHED');
    const spi = t.routes.get('10.11.0.0/16');
    expect(typeof spi).toBe('number'); // the CHILD_SA's route replaced the sink
    // the peer deletes the IKE SA: the sink route comes back for the next packet
    t.clock.add(1000);
    const acts = t.peer.terminate('c1', t.clock.get());
    for (const a of acts) if (a.kind === 'send') t.ctrl.receiveIke(a.datagram, { family: 4, ...a.from }, { family: 4, ...a.to });
    t.wire.length = 0;
    expect(t.ctrl.status()[0]!.state).toBe('DOWN');
    expect(typeof t.routes.get('10.11.0.0/16')).toBe('object');
    t.clock.add(10_000);
    t.packet();
    t.ctrl.tick(t.clock.get());
    t.pump();
    expect(t.ctrl.status()[0]!.state).toBe('ESTABLISHED');
  });

  it('stop removes the sink routes', async () => {
    const t = setUp();
    t.ctrl.start();
    await t.ctrl.stop();
    expect(t.routes.size).toBe(0);
  });
});

describe('peerConfigFrom: dpd block', () => {
  it('carries the DPD action and timeout into the IKE config (clear and the retransmit schedule by default)', () => {
    const cfg = (dpd: string) => parseConfig(`
gateway: { name: gw, dataDir: /tmp, publicAddresses: [${GW}], vpcSubnets: [10.2.0.0/16] }
customerGateways:
  - { name: cgw1, address: ${PEER} }
vpnConnections:
  - { name: c1, customerGateway: cgw1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.11.0.0/16], auth: { psk: test-fixture-psk-c1 }, dpd: ${dpd} }
`, '/tmp/ipsec-dpd-test.yaml');
    const a = cfg('{ interval: 10s, action: restart, timeout: 20s }');
    expect(peerConfigFrom(a, a.vpnConnections[0]!, 'vpnConnections[0]')).toMatchObject({ dpdIntervalSec: 10, dpdAction: 'restart', dpdTimeoutSec: 20 });
    const b = cfg('{ interval: 30s }');
    expect(peerConfigFrom(b, b.vpnConnections[0]!, 'vpnConnections[0]')).toMatchObject({ dpdIntervalSec: 30, dpdAction: 'clear', dpdTimeoutSec: 0 });
  });
});
