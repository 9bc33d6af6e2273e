import { describe, expect, it } from 'vitest';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import type { IkeAction } from '../../src/ike/sa/types.js';
import { ExchangeType, PayloadType } from '../../src/ike/wire/constants.js';

// An operator's rekey (IkeManager.rekey, POST /v1/vpn-connections/{id}/rekey) long before the
// lifetimes: the same exchanges the lifetime scheduler starts. vpcgw on both sides, A initiates.

type Install = Extract<IkeAction, { kind: 'installChildSa' }>['params'];

function pair() {
  const a = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
  const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
  const p = new TwoPeers([a], [b]);
  p.run(p.a.initiate('a2b', p.now), 'a');
  expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  return p;
}

/** The two halves of one child mirror each other: SPIs and keys crossed. */
function expectMatching(x: Install, y: Install): void {
  expect(x.spiOut).toBe(y.spiIn);
  expect(x.spiIn).toBe(y.spiOut);
  expect(x.encrKeyOut.equals(y.encrKeyIn)).toBe(true);
  expect(x.encrKeyIn.equals(y.encrKeyOut)).toBe(true);
}

function exchanges(p: TwoPeers, from: number): number[] {
  return p.wire.slice(from).map((w) => w.datagram[18]!);
}

describe('manual rekey (operator action)', () => {
  it('child: new SPIs both ways and new traffic keys at once, the old child deleted on both sides', () => {
    const p = pair();
    const old = p.installs('a')[0]!;
    const wireBefore = p.wire.length;
    p.tick(5_000); // seconds after setup: nowhere near the lifetime
    //   CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr } -->
    //                   <-- { SA, Nr, TSi, TSr }
    //   INFORMATIONAL { D(ESP, old SPI) } -->
    //                   <-- { D(ESP, old SPI) }
    p.run(p.a.rekey('a2b', 'child', p.now), 'a');
    expect(exchanges(p, wireBefore)).toEqual([
      ExchangeType.CREATE_CHILD_SA, ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL, ExchangeType.INFORMATIONAL,
    ]);
    const [na, nb] = [p.installs('a')[1]!, p.installs('b')[1]!];
    expect(na).toBeDefined();
    expectMatching(na, nb);
    expect(na.spiIn).not.toBe(old.spiIn);
    expect(na.spiOut).not.toBe(old.spiOut);
    expect(na.encrKeyOut.equals(old.encrKeyOut)).toBe(false);
    expect(na.encrKeyIn.equals(old.encrKeyIn)).toBe(false);
    expect(na.activateOutbound).toBe(true);
    expect(p.deletes('a')).toEqual([{ kind: 'deleteChildSa', connection: 'a2b', spiIn: old.spiIn, spiOut: old.spiOut, inboundGraceMs: 5000 }]);
    expect(p.deletes('b')).toEqual([{ kind: 'deleteChildSa', connection: 'b2a', spiIn: old.spiOut, spiOut: old.spiIn, inboundGraceMs: 5000 }]);
    for (const m of [p.a, p.b]) expect(m.status()[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
    expect(p.a.status()[0]!.children[0]!.spiIn).toBe(na.spiIn.toString(16).padStart(8, '0'));
    expect(p.a.connectionCounters('a2b').childRekeys).toBe(1);
    expect(p.logText('a')).toMatch(/rekey requested by the operator/);
  });

  it('the responder side can rekey too (it started nothing)', () => {
    const p = pair();
    const old = p.installs('b')[0]!;
    p.run(p.b.rekey('b2a', 'child', p.now), 'b');
    const nb = p.installs('b')[1]!;
    expectMatching(nb, p.installs('a')[1]!);
    expect(nb.spiIn).not.toBe(old.spiIn);
    expect(p.b.status()[0]!.children).toHaveLength(1);
  });

  it('ike: a new IKE SA (new SPIs), the children move untouched, the old IKE SA deleted; the new one answers', () => {
    const p = pair();
    const before = { a: p.a.status()[0]!, b: p.b.status()[0]! };
    const wireBefore = p.wire.length;
    //   CREATE_CHILD_SA { SA(IKE, new SPIi), Ni, KEi } -->
    //                   <-- { SA(IKE, new SPIr), Nr, KEr }
    //   INFORMATIONAL { D(IKE) } --> (on the old SA)
    p.run(p.a.rekey('a2b', 'ike', p.now), 'a');
    expect(exchanges(p, wireBefore).slice(0, 3)).toEqual([ExchangeType.CREATE_CHILD_SA, ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL]);
    const [sa, sb] = [p.a.status(), p.b.status()];
    expect(sa).toHaveLength(1);
    expect(sb).toHaveLength(1);
    expect(sa[0]!.ikeId).not.toBe(before.a.ikeId);
    expect(sa[0]!.ikeId).toBe(sb[0]!.ikeId);
    for (const [x, y] of [[sa[0]!, before.a], [sb[0]!, before.b]] as const) {
      expect(x.state).toBe('ESTABLISHED');
      const spis = (s: typeof x) => s.ikeId.split('/');
      expect(spis(x)[0]).not.toBe(spis(y)[0]);
      expect(spis(x)[1]).not.toBe(spis(y)[1]);
      expect(x.children.map((c) => [c.spiIn, c.spiOut])).toEqual(y.children.map((c) => [c.spiIn, c.spiOut]));
    }
    expect(p.a.connectionCounters('a2b').ikeRekeys).toBe(1);
    // the new IKE SA's keys work: a liveness check on it is answered
    const n = p.wire.length;
    p.run(p.a.dpd('a2b', p.now), 'a');
    expect(p.wire.length).toBe(n + 2);
    expect(p.wire[n + 1]!.datagram[16]).toBe(PayloadType.SK);
  });

  it('refuses with ERR_STATE when not established, while a rekey is under way, and for an unknown connection', () => {
    const a = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
    const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
    const p = new TwoPeers([a], [b]);
    expect(() => p.a.rekey('a2b', 'child', p.now)).toThrow(expect.objectContaining({ code: 'ERR_STATE' }));
    expect(() => p.a.rekey('nope', 'child', p.now)).toThrow(expect.objectContaining({ code: 'ERR_UNKNOWN_CONNECTION' }));
    // half-open: IKE_SA_INIT sent, no answer delivered yet
    p.a.initiate('a2b', p.now);
    expect(() => p.a.rekey('a2b', 'ike', p.now)).toThrow(expect.objectContaining({ code: 'ERR_STATE' }));

    const q = pair();
    q.filter = () => false; // the rekey request goes nowhere: still in flight
    q.run(q.a.rekey('a2b', 'child', q.now), 'a');
    expect(() => q.a.rekey('a2b', 'child', q.now)).toThrow(expect.objectContaining({ code: 'ERR_STATE', message: expect.stringMatching(/being rekeyed/) }));
    expect(() => q.a.rekey('a2b', 'ike', q.now)).toThrow(expect.objectContaining({ code: 'ERR_STATE' }));
  });
});
