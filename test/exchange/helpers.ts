import { IkeManager, type IkeManagerOptions } from '../../src/ike/ike-manager.js';
import type { IkeAction, Endpoint } from '../../src/ike/sa/types.js';
import type { PeerConfig, ChildConfig } from '../../src/ike/config/peer-config.js';
import { parseIdentity } from '../../src/ike/config/identity.js';
import { parseProposals } from '../../src/ike/config/proposal.js';
import { parsePrefix, type Prefix } from '../../src/common/ip.js';
import { captureLogger } from '../../src/common/log.js';

export const A_ADDR = '192.0.2.1';
export const B_ADDR = '192.0.2.2';
export const TEST_PSK = 'test-fixture-psk-not-a-secret'; // test fixture

export function prefixes(list: string[]): Prefix[] {
  return list.map((t) => parsePrefix(t)!);
}

export function peerConfig(o: {
  name?: string; local: string; remote: string | null; localId?: string; remoteId?: string; psk?: string;
  ike?: string; esp?: string; localTs: string[]; remoteTs: string[];
}): PeerConfig {
  const child: ChildConfig = {
    name: `${o.name ?? 'conn'}-child`,
    localTs: prefixes(o.localTs),
    remoteTs: prefixes(o.remoteTs),
    espProposals: parseProposals(o.esp ?? 'aes128gcm16', 'esp'),
    lifetimeSec: 3600,
    replayWindow: 1024,
  };
  return {
    name: o.name ?? 'conn',
    localAddrs: [o.local],
    remoteAddr: o.remote,
    localId: parseIdentity(o.localId ?? o.local)!,
    remoteId: parseIdentity(o.remoteId ?? o.remote ?? '%any')!,
    psk: Buffer.from(o.psk ?? TEST_PSK),
    ikeProposals: parseProposals(o.ike ?? 'aes128gcm16-prfsha256-x25519', 'ike'),
    ikeLifetimeSec: 14400,
    startAction: 'none',
    dpdIntervalSec: 0,
    children: [child],
  };
}

/**
 * Two in-process IKE managers joined by a lossless (or lossy, by filter) "network" that routes each
 * 'send' action to the manager owning the destination address. A fixed clock: tests advance `now`.
 */
export class TwoPeers {
  readonly logA = captureLogger();
  readonly logB = captureLogger();
  readonly a: IkeManager;
  readonly b: IkeManager;
  /** the fixed clock (ms); certificate tests start it at the wall clock (validity checks use it) */
  now: number;
  readonly actionsA: IkeAction[] = [];
  readonly actionsB: IkeAction[] = [];
  readonly wire: { from: Endpoint; to: Endpoint; datagram: Buffer }[] = [];
  /** return false to drop a datagram */
  filter: (d: { from: Endpoint; to: Endpoint; datagram: Buffer }, index: number) => boolean = () => true;

  constructor(
    cfgA: PeerConfig[], cfgB: PeerConfig[], retransmit = { timeoutMs: 4000, base: 1.8, tries: 5 },
    optsB: Omit<IkeManagerOptions, 'log' | 'retransmit'> = {},
    startMs = 1_000_000,
  ) {
    this.now = startMs;
    this.a = new IkeManager({ log: this.logA, retransmit });
    this.b = new IkeManager({ log: this.logB, retransmit, now: this.now, ...optsB });
    this.a.setConfigs(cfgA);
    this.b.setConfigs(cfgB);
  }

  /** Delivers actions until the network is quiet (bounded). */
  run(actions: IkeAction[], origin: 'a' | 'b'): void {
    const queue: { actions: IkeAction[]; origin: 'a' | 'b' }[] = [{ actions, origin }];
    for (let steps = 0; queue.length > 0 && steps < 1000; steps++) {
      const { actions: acts, origin: o } = queue.shift()!;
      (o === 'a' ? this.actionsA : this.actionsB).push(...acts);
      for (const act of acts) {
        if (act.kind !== 'send') continue;
        const idx = this.wire.length;
        this.wire.push(act);
        if (!this.filter(act, idx)) continue;
        const target = act.to.address === A_ADDR ? 'a' : 'b';
        const mgr = target === 'a' ? this.a : this.b;
        queue.push({ actions: mgr.receive(act.datagram, act.from, act.to, this.now), origin: target });
      }
    }
  }

  tick(ms: number): void {
    this.now += ms;
    this.run(this.a.tick(this.now), 'a');
    this.run(this.b.tick(this.now), 'b');
  }

  installs(side: 'a' | 'b') {
    return (side === 'a' ? this.actionsA : this.actionsB).filter((x) => x.kind === 'installChildSa').map((x) => (x as Extract<IkeAction, { kind: 'installChildSa' }>).params);
  }

  deletes(side: 'a' | 'b') {
    return (side === 'a' ? this.actionsA : this.actionsB).filter((x) => x.kind === 'deleteChildSa');
  }

  logText(side: 'a' | 'b'): string {
    return (side === 'a' ? this.logA : this.logB).lines.map((l) => `${l.msg ?? ''} ${JSON.stringify(l.obj)}`).join('\n');
  }
}
