// NAT detection, NAT-keepalives and rebinding between two in-process IKE managers, with the
// initiator behind a simulated NAPT (RFC 7296 §2.23, RFC 3948 §2.3).
import { describe, expect, it } from 'vitest';
import { IkeManager } from '../../src/ike/ike-manager.js';
import type { IkeAction, Endpoint } from '../../src/ike/sa/types.js';
import type { PeerConfig } from '../../src/ike/config/peer-config.js';
import { captureLogger } from '../../src/common/log.js';
import { ExchangeType } from '../../src/ike/wire/constants.js';
import { peerConfig } from './helpers.js';
import { decodeMessage } from '../../src/ike/wire/message.js';
import { NotifyType } from '../../src/ike/wire/constants.js';
import { natdHash } from '../../src/ike/tasks/ike-natd.js';

const A_PRIV = '10.0.0.2'; // the initiator, behind the NAT
const NAT_PUB = '198.51.100.1'; // the NAT's public address
const B_ADDR = '192.0.2.2'; // the responder (the gateway), not behind a NAT

type Wire = { from: Endpoint; to: Endpoint; datagram: Buffer };

/** A at A_PRIV behind a NAPT (or not: `nat` false) talking to B; `natPort` maps A's ports to public ones. */
class NattedPeers {
  readonly logA = captureLogger();
  readonly logB = captureLogger();
  readonly a = new IkeManager({ log: this.logA, retransmit: { timeoutMs: 4000, base: 1.8, tries: 5 } });
  readonly b = new IkeManager({ log: this.logB, retransmit: { timeoutMs: 4000, base: 1.8, tries: 5 } });
  now = 1_000_000;
  readonly actionsA: IkeAction[] = [];
  readonly actionsB: IkeAction[] = [];
  readonly wire: Wire[] = [];
  /** rewrites what B sends before A reads it (a peer that behaves differently) */
  rewriteToA: (datagram: Buffer) => Buffer = (d) => d;
  /** A's port → the NAT's public port (the mapping; change it to simulate a new mapping) */
  readonly natPort = new Map<number, number>([[500, 40500], [4500, 44500]]);

  constructor(cfgA: PeerConfig, cfgB: PeerConfig, readonly nat = true) {
    this.a.setConfigs([cfgA]);
    this.b.setConfigs([cfgB]);
  }

  get aPublic(): string {
    return this.nat ? NAT_PUB : A_PRIV;
  }

  run(actions: IkeAction[], origin: 'a' | 'b'): void {
    const queue: { actions: IkeAction[]; origin: 'a' | 'b' }[] = [{ actions, origin }];
    for (let steps = 0; queue.length > 0 && steps < 200; steps++) {
      const { actions: acts, origin: o } = queue.shift()!;
      (o === 'a' ? this.actionsA : this.actionsB).push(...acts);
      for (const act of acts) {
        if (act.kind !== 'send') continue;
        if (o === 'a') {
          // outbound through the NAT: the source is rewritten
          const from = this.nat ? { address: NAT_PUB, port: this.natPort.get(act.from.port)! } : act.from;
          this.wire.push({ from, to: act.to, datagram: act.datagram });
          queue.push({ actions: this.b.receive(act.datagram, from, act.to, this.now), origin: 'b' });
        } else {
          // back in: only to a current mapping
          let to = act.to;
          if (this.nat) {
            const priv = [...this.natPort].find(([, pub]) => pub === act.to.port);
            if (act.to.address !== NAT_PUB || !priv) continue;
            to = { address: A_PRIV, port: priv[0] };
          }
          const datagram = this.rewriteToA(act.datagram);
          this.wire.push({ from: act.from, to: act.to, datagram });
          queue.push({ actions: this.a.receive(datagram, act.from, to, this.now), origin: 'a' });
        }
      }
    }
  }

  of<K extends IkeAction['kind']>(side: 'a' | 'b', kind: K): Extract<IkeAction, { kind: K }>[] {
    return (side === 'a' ? this.actionsA : this.actionsB).filter((x) => x.kind === kind) as Extract<IkeAction, { kind: K }>[];
  }

  logText(side: 'a' | 'b'): string {
    return (side === 'a' ? this.logA : this.logB).lines.map((l) => `${l.msg ?? ''} ${JSON.stringify(l.obj)}`).join('\n');
  }
}

function configs(o: { encapA?: boolean; encapB?: boolean; keepaliveSec?: number; dpdSec?: number } = {}) {
  const a = {
    ...peerConfig({ name: 'a2b', local: A_PRIV, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }),
    encap: o.encapA, natKeepaliveSec: o.keepaliveSec, dpdIntervalSec: o.dpdSec ?? 0,
  };
  const b = { ...peerConfig({ name: 'b2a', local: B_ADDR, remote: null, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] }), encap: o.encapB };
  return { a, b };
}

function up(o: Parameters<typeof configs>[0] = {}, nat = true): NattedPeers {
  const { a, b } = configs(o);
  const p = new NattedPeers(a, b, nat);
  p.run(p.a.initiate('a2b', p.now), 'a');
  expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
  return p;
}

describe('NAT detection (RFC 7296 §2.23)', () => {
  it('encap forced (the default): both sides float to 4500; each sees the other as behind a NAT', () => {
    const p = up();
    const sa = p.b.status()[0]!;
    expect(sa.remote).toBe(`${NAT_PUB}:44500`);
    expect(sa.local).toBe(`${B_ADDR}:4500`);
    // A really is behind the NAT and B fakes its hash, so each side sees a NAT at the other
    expect(sa.nat).toMatchObject({ behindNat: 'peer', udpEncap: true, encapForced: true });
    expect(p.a.status()[0]!.nat).toMatchObject({ behindNat: 'both', udpEncap: true, encapForced: true });
  });

  it('encap off on both sides, A behind a NAT: honest hashes find it on both sides; ESP in UDP', () => {
    const p = up({ encapA: false, encapB: false });
    expect(p.b.status()[0]!.nat).toEqual({ behindNat: 'peer', udpEncap: true, encapForced: false, peerMoves: 0, keepalivesSent: 0 });
    expect(p.a.status()[0]!.nat).toEqual({ behindNat: 'local', udpEncap: true, encapForced: false, peerMoves: 0, keepalivesSent: 0 });
    // IKE_AUTH went out on 4500 (RFC 7296 §2.23: float once a NAT is detected)
    expect(p.wire.filter((w) => w.datagram[18] === ExchangeType.IKE_AUTH).every((w) => w.to.port === 4500 || w.from.port === 4500)).toBe(true);
    expect(p.of('b', 'installChildSa')[0]!.params.remote).toEqual({ address: NAT_PUB, port: 44500 });
  });

  it('encap off, no NAT: the status says so; the responder keeps UDP encapsulation (no raw ESP path)', () => {
    const p = up({ encapA: false, encapB: false }, false);
    expect(p.b.status()[0]!.nat).toMatchObject({ behindNat: 'none', udpEncap: true, encapForced: true });
    // the initiator believes B is behind a NAT (B faked its hash) and floats
    expect(p.a.status()[0]!.nat).toMatchObject({ behindNat: 'peer', udpEncap: true, encapForced: false });
    expect(p.b.status()[0]!.remote).toBe(`${A_PRIV}:4500`);
    expect(p.logText('b')).toMatch(/no NAT detected; UDP encapsulation kept/);
  });

  it('encap off, no NAT, we initiate and the peer answers honestly: the IKE SA fails, naming the setting', () => {
    const { a, b } = configs({ encapA: false, encapB: false });
    const p = new NattedPeers(a, b, false);
    // a responder with a raw ESP path: its NAT_DETECTION_SOURCE_IP is the honest hash of B:500
    p.rewriteToA = (d) => {
      if (d[18] !== ExchangeType.IKE_SA_INIT) return d;
      const r = decodeMessage(d, null);
      if (!r.ok) return d;
      const src = r.msg.payloads.find((x) => x.type === 41 && (x as { notifyType: number }).notifyType === NotifyType.NAT_DETECTION_SOURCE_IP) as { data: Buffer } | undefined;
      if (!src) return d;
      const out = Buffer.from(d);
      natdHash(r.msg.header.spiI, r.msg.header.spiR, { address: B_ADDR, port: 500 }).copy(out, out.indexOf(src.data));
      return out;
    };
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.a.status()).toHaveLength(0);
    expect(p.of('a', 'ikeDown')[0]!.reason).toMatch(/no NAT between the peers and encap is off: ESP would be raw IP protocol 50.*set encap: true/);
    expect(p.wire.some((w) => w.datagram[18] === ExchangeType.IKE_AUTH)).toBe(false);
  });
});

describe('NAT rebinding', () => {
  it('an authenticated IKE request from a new NAT port moves the IKE SA and all its children (once, logged)', () => {
    const p = up({ dpdSec: 10 });
    const [child] = p.of('b', 'installChildSa').map((x) => x.params);
    p.natPort.set(4500, 45000); // the NAT forgot the mapping and made a new one
    p.now += 10_000;
    p.run(p.a.livenessCheck(p.now, () => 0), 'a'); // INFORMATIONAL request (DPD) from the new port
    const moves = p.of('b', 'peerMoved');
    expect(moves).toHaveLength(1);
    expect(moves[0]).toMatchObject({ connection: 'b2a', remote: { address: NAT_PUB, port: 45000 }, spis: [{ spiIn: child!.spiIn, spiOut: child!.spiOut }] });
    expect(p.b.status()[0]!.remote).toBe(`${NAT_PUB}:45000`);
    expect(p.b.status()[0]!.nat.peerMoves).toBe(1);
    const moveLines = p.logB.lines.filter((l) => l.msg === 'peer moved: NAT mapping changed');
    expect(moveLines.map((l) => l.obj)).toMatchObject([{ from: `${NAT_PUB}:44500`, to: `${NAT_PUB}:45000`, via: 'IKE' }]);
    // the answer reached A through the new mapping: the DPD was answered, A stays up
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    // the same endpoint again: no second move
    p.now += 10_000;
    p.run(p.a.livenessCheck(p.now, () => 0), 'a');
    expect(p.of('b', 'peerMoved')).toHaveLength(1);
  });

  it('an ICV-verified ESP packet from a new endpoint (the data plane event) moves the IKE SA and its children', () => {
    const p = up();
    const [child] = p.of('b', 'installChildSa').map((x) => x.params);
    const acts = p.b.espPeerMoved(child!.spiIn, { address: NAT_PUB, port: 45001 }, p.now);
    expect(acts).toEqual([{ kind: 'peerMoved', connection: 'b2a', ikeId: p.b.status()[0]!.ikeId, remote: { address: NAT_PUB, port: 45001 }, spis: [{ spiIn: child!.spiIn, spiOut: child!.spiOut }] }]);
    expect(p.b.status()[0]!.remote).toBe(`${NAT_PUB}:45001`);
    expect(p.b.espPeerMoved(0x1234, { address: NAT_PUB, port: 1 }, p.now)).toEqual([]); // unknown SPI
  });

  it('a side that is itself behind a NAT does not follow the peer (RFC 7296 §2.23 SHOULD NOT)', () => {
    const p = up({ encapA: false, encapB: false });
    const [child] = p.of('a', 'installChildSa').map((x) => x.params);
    expect(p.a.espPeerMoved(child!.spiIn, { address: B_ADDR, port: 4600 }, p.now)).toEqual([]);
    expect(p.a.status()[0]!.remote).toBe(`${B_ADDR}:4500`);
  });
});

describe('NAT-keepalives (RFC 3948 §2.3)', () => {
  it('only the side behind the NAT sends them, after the interval without ESP sent', () => {
    const p = up({ encapA: false, encapB: false, keepaliveSec: 20 });
    let espOut = 0;
    const tick = (ms: number) => {
      p.now += ms;
      return [...p.a.natKeepalives(p.now, () => espOut), ...p.b.natKeepalives(p.now, () => 0)];
    };
    expect(tick(0)).toEqual([]); // arms the timer
    expect(p.a.nextNatKeepalive()).toBe(p.now + 20_000);
    expect(p.b.nextNatKeepalive()).toBe(Infinity); // B is not behind a NAT
    expect(tick(19_000)).toEqual([]);
    expect(tick(1_000)).toEqual([{ kind: 'natKeepalive', from: { address: A_PRIV, port: 4500 }, to: { address: B_ADDR, port: 4500 } }]);
    // ESP going out keeps the mapping alive: no keepalive while it flows
    for (let i = 0; i < 3; i++) {
      espOut += 5;
      expect(tick(15_000)).toEqual([]);
    }
    expect(tick(20_000)).toHaveLength(1);
    expect(p.a.status()[0]!.nat.keepalivesSent).toBe(2);
  });

  it('none when forced encapsulation is the only "NAT", or when the interval is 0', () => {
    const p = up({}, false);
    p.now += 3_600_000;
    expect(p.a.natKeepalives(p.now, () => 0)).toEqual([]);
    const q = up({ encapA: false, encapB: false, keepaliveSec: 0 });
    q.now += 3_600_000;
    expect(q.a.natKeepalives(q.now, () => 0)).toEqual([]);
    expect(q.a.nextNatKeepalive()).toBe(Infinity);
  });
});
