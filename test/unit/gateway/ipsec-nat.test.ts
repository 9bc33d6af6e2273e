import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../../src/common/log.js';
import type { Endpoint } from '../../../src/common/endpoint.js';
import type { DataPlane, SaEvent, SaParams } from '../../../src/dataplane/data-plane.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { IpsecController } from '../../../src/gateway/ipsec.js';
import { peerConfigFrom } from '../../../src/gateway/peer-configs.js';
import { IkeManager } from '../../../src/ike/ike-manager.js';
import type { IkeAction } from '../../../src/ike/sa/types.js';

// ike.encap / ike.natKeepalive config, and the gateway's NAT plumbing: the data plane's
// 'peer-moved' event moves the IKE SA and both SAs of every child (setSaRemote), the status shows
// what NAT detection found.

const GW = '192.0.2.2';
const PEER = '192.0.2.1';

function yaml(ike = '{}'): string {
  return `
gateway: { name: gw, dataDir: /tmp, publicAddresses: [${GW}], vpcSubnets: [10.2.0.0/16] }
customerGateways:
  - { name: cgw1, address: ${PEER} }
vpnConnections:
  - { name: c1, customerGateway: cgw1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.11.0.0/16], auth: { psk: test-fixture-psk-c1 }, ike: ${ike} }
`;
}

function setUp() {
  const cfg = parseConfig(yaml(), '/tmp/ipsec-nat-test.yaml');
  const installed: SaParams[] = [];
  const moved: string[] = [];
  let onEvent: (ev: SaEvent) => void = () => undefined;
  const dp = {
    onSaEvent(cb: (ev: SaEvent) => void) { onEvent = cb; },
    installSa(s: SaParams) { installed.push(s); },
    removeSa() { /* not needed */ },
    addRoute() { /* not needed */ },
    removeRoute() { /* not needed */ },
    saCounters() { return undefined; },
    setSaRemote(spi: number, direction: string, r: Endpoint) { moved.push(`${direction}:${spi.toString(16)}->${r.address}:${r.port}`); return true; },
  } as unknown as DataPlane;
  const mine = peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]');
  const child = mine.children[0]!;
  const peer = new IkeManager({ log: captureLogger(), now: Date.now() });
  peer.setConfigs([{
    ...mine, localAddrs: [PEER], remoteAddr: GW, localId: mine.remoteId, remoteId: mine.localId, startAction: 'none',
    children: [{ ...child, localTs: child.remoteTs, remoteTs: child.localTs }],
  }]);
  const wire: { d: Buffer; from: { address: string; port: number }; to: { address: string; port: number } }[] = [];
  const log = captureLogger();
  const ctrl = new IpsecController({
    get config() { return cfg; },
    log,
    dataPlane: dp,
    sendIke: (d, to, local) => { wire.push({ d: Buffer.from(d), from: local, to }); return true; },
  });
  const pump = (): void => {
    for (let i = 0; i < 100 && wire.length > 0; i++) {
      const acts: IkeAction[] = [];
      for (const m of wire.splice(0)) acts.push(...peer.receive(m.d, m.from, m.to, Date.now()));
      for (const a of acts) if (a.kind === 'send') ctrl.receiveIke(a.datagram, { family: 4, ...a.from }, { family: 4, ...a.to });
    }
  };
  ctrl.start();
  pump();
  return { ctrl, installed, moved, fire: (ev: SaEvent) => onEvent(ev), log };
}

describe('ike.encap and ike.natKeepalive', () => {
  it('default: encap forced, keepalives every 20 s; both reach the PeerConfig', () => {
    const cfg = parseConfig(yaml(), '/tmp/x.yaml');
    expect(cfg.vpnConnections[0]!.ike).toMatchObject({ encap: true, natKeepaliveSec: 20 });
    const off = parseConfig(yaml('{ encap: false, natKeepalive: 0 }'), '/tmp/x.yaml');
    expect(peerConfigFrom(off, off.vpnConnections[0]!, 'vpnConnections[0]')).toMatchObject({ encap: false, natKeepaliveSec: 0 });
    expect(() => parseConfig(yaml('{ encap: maybe }'), '/tmp/x.yaml')).toThrow(/vpnConnections\[0\]\.ike\.encap/);
  });
});

describe('gateway NAT plumbing', () => {
  it('a peer-moved event from the data plane moves every child SA (both directions) and the status', () => {
    const t = setUp();
    const st = t.ctrl.status()[0]!;
    expect(st.state).toBe('ESTABLISHED');
    // the peer forces encapsulation too (it fakes its hash), so it looks like behind a NAT
    expect(st.nat).toEqual({ behindNat: 'peer', udpEncap: true, encapForced: true, peerMoves: 0, keepalivesSent: 0 });
    const inSa = t.installed.find((s) => s.direction === 'in')!;
    const outSa = t.installed.find((s) => s.direction === 'out')!;
    t.fire({ spi: inSa.spi, direction: 'in', kind: 'peer-moved', remote: { family: 4, address: PEER, port: 45000 } });
    expect(t.moved.sort()).toEqual([`in:${inSa.spi.toString(16)}->${PEER}:45000`, `out:${outSa.spi.toString(16)}->${PEER}:45000`].sort());
    const after = t.ctrl.status()[0]!;
    expect(after.peer).toBe(`${PEER}:45000`);
    expect(after.nat!.peerMoves).toBe(1);
    const moves = t.log.lines.filter((l) => l.msg === 'peer moved: NAT mapping changed');
    expect(moves.map((l) => l.obj)).toMatchObject([{ from: `${PEER}:4500`, to: `${PEER}:45000`, via: 'ESP' }]);
  });
});
