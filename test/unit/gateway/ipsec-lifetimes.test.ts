import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../../src/common/log.js';
import { formatPrefix, type Prefix } from '../../../src/common/ip.js';
import { ConfigError } from '../../../src/common/errors.js';
import type { DataPlane, SaEvent, SaParams } from '../../../src/dataplane/data-plane.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { IpsecController } from '../../../src/gateway/ipsec.js';
import { peerConfigFrom } from '../../../src/gateway/peer-configs.js';
import { IkeManager } from '../../../src/ike/ike-manager.js';
import type { IkeAction } from '../../../src/ike/sa/types.js';

// esp.lifetimeBytes / lifetimePackets: the config fields, the limits handed to the data plane, and
// the data plane's soft/hard reports turned into a rekey or a DELETE by the IKE core.

const GW = '192.0.2.2';
const PEER = '192.0.2.1';
const MB = 1 << 20;

function yaml(esp: string): string {
  return `
gateway: { name: gw, dataDir: /tmp, publicAddresses: [${GW}], vpcSubnets: [10.2.0.0/16] }
customerGateways:
  - { name: cgw1, address: ${PEER} }
vpnConnections:
  - { name: c1, customerGateway: cgw1, localSubnets: [10.2.0.0/16], remoteSubnets: [10.11.0.0/16], auth: { psk: test-fixture-psk-c1 }, esp: ${esp} }
`;
}

function setUp(esp = '{ lifetimeBytes: 8388608, lifetimePackets: 100000 }') {
  const cfg = parseConfig(yaml(esp), '/tmp/ipsec-lifetimes-test.yaml');
  const installed: SaParams[] = [];
  const removed: string[] = [];
  const routes = new Map<string, number>();
  let onEvent: (ev: SaEvent) => void = () => undefined;
  const dp = {
    onSaEvent(cb: (ev: SaEvent) => void) { onEvent = cb; },
    installSa(s: SaParams) { installed.push(s); },
    removeSa(spi: number, direction: string) { removed.push(`${direction}:${spi}`); },
    addRoute(prefix: Prefix, spi: number) { routes.set(formatPrefix(prefix), spi); },
    removeRoute(prefix: Prefix) { routes.delete(formatPrefix(prefix)); },
    saCounters() { return undefined; },
  } as unknown as DataPlane;
  const mine = peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]');
  const child = mine.children[0]!;
  const peer = new IkeManager({ log: captureLogger(), now: Date.now() });
  peer.setConfigs([{
    ...mine, localAddrs: [PEER], remoteAddr: GW, localId: mine.remoteId, remoteId: mine.localId, startAction: 'none',
    children: [{ ...child, localTs: child.remoteTs, remoteTs: child.localTs, lifetimeBytes: 0, lifetimePackets: 0 }],
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
  return { ctrl, installed, removed, routes, pump, fire: (ev: SaEvent) => onEvent(ev), log };
}

describe('esp.lifetimeBytes / lifetimePackets', () => {
  it('config: default 0 (none), values reach the CHILD_SA config; too small a limit names the field', () => {
    const none = parseConfig(yaml('{}'), '/tmp/x.yaml');
    expect(none.vpnConnections[0]!.esp).toMatchObject({ lifetimeBytes: 0, lifetimePackets: 0 });
    const cfg = parseConfig(yaml('{ lifetimeBytes: 5242880, lifetimePackets: 2000 }'), '/tmp/x.yaml');
    const child = peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]').children[0]!;
    expect(child).toMatchObject({ lifetimeBytes: 5 * MB, lifetimePackets: 2000 });
    for (const [esp, field, why] of [
      ['{ lifetimeBytes: 1000 }', 'vpnConnections[0].esp.lifetimeBytes', /0 \(no limit\) or at least 1048576 bytes/],
      ['{ lifetimePackets: 10 }', 'vpnConnections[0].esp.lifetimePackets', /0 \(no limit\) or at least 1000 packets/],
      ['{ lifetimeBytes: -1 }', 'vpnConnections[0].esp.lifetimeBytes', /./],
      ['{ lifetimePackets: 1.5 }', 'vpnConnections[0].esp.lifetimePackets', /./],
    ] as const) {
      let err: unknown;
      try {
        parseConfig(yaml(esp), '/tmp/x.yaml');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toContain(field);
      expect((err as ConfigError).message).toMatch(why);
    }
  });

  it('both ESP SAs of a child are installed with the soft and hard limits', () => {
    const { installed } = setUp();
    expect(installed).toHaveLength(2);
    for (const sa of installed) {
      expect(sa.lifetime!.hardBytes).toBe(8 * MB);
      expect(sa.lifetime!.hardPackets).toBe(100000);
      expect(sa.lifetime!.softBytes).toBeGreaterThan(0.8 * 8 * MB);
      expect(sa.lifetime!.softBytes).toBeLessThanOrEqual(0.9 * 8 * MB);
      expect(sa.lifetime!.softPackets).toBeGreaterThan(80000);
      expect(sa.lifetime!.softPackets).toBeLessThanOrEqual(90000);
    }
  });

  it('a soft report from the data plane rekeys the child: new SAs, routes moved, the old child removed', () => {
    const { ctrl, installed, removed, routes, pump, fire } = setUp();
    const [oldIn, oldOut] = [installed[0]!.spi, installed[1]!.spi];
    fire({ spi: oldOut, direction: 'out', kind: 'soft' });
    pump();
    expect(installed).toHaveLength(4);
    const newOut = installed[3]!.spi;
    expect(routes.get('10.11.0.0/16')).toBe(newOut);
    expect(removed).toContain(`out:${oldOut}`);
    const st = ctrl.status()[0]!;
    expect(st.children).toHaveLength(1);
    expect(st.children[0]!.spiIn).toBe(`0x${installed[2]!.spi.toString(16).padStart(8, '0')}`);
    expect(st.childRekeys).toBe(1);
    expect(oldIn).not.toBe(installed[2]!.spi);
  });

  it('a hard report without a rekey deletes the child at the peer and here', () => {
    const { ctrl, installed, removed, routes, pump, fire } = setUp();
    fire({ spi: installed[0]!.spi, direction: 'in', kind: 'hard' });
    pump();
    expect(removed).toEqual(expect.arrayContaining([`in:${installed[0]!.spi}`, `out:${installed[1]!.spi}`]));
    expect(routes.size).toBe(0);
    expect(ctrl.status()[0]!.state).toBe('ESTABLISHED');
    expect(ctrl.status()[0]!.children).toHaveLength(0);
  });
});
