import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import type { IkeAction } from '../../src/ike/sa/types.js';
import type { IkeManager } from '../../src/ike/ike-manager.js';
import { REKEYED_IKE_SA_TIMEOUT_MS } from '../../src/ike/sa/ike-sa.js';

// RFC 7296 §2.8.1 (last part): both peers rekey the IKE SA at once. Both exchanges complete; the one
// holding the lowest of the four nonces made the redundant IKE SA, which its initiator deletes; the
// other side deletes the old IKE SA, and the surviving new SA inherits the CHILD_SAs. Message shapes:
//   A: CREATE_CHILD_SA { SA(IKE), Ni(A), KEi } -->
//   B: CREATE_CHILD_SA { SA(IKE), Ni(B), KEi } -->        (crossing on the wire, both on the old SA)
//   each answers the other: <-- { SA(IKE), Nr, KEr }
//   loser:  INFORMATIONAL { D(IKE) } --> on its redundant new SA
//   winner: INFORMATIONAL { D(IKE) } --> on the old SA

type Send = Extract<IkeAction, { kind: 'send' }>;

/**
 * Deterministic nonces: the low side's are 00…00 k, the high side's ff…ff k (k counts up). The low
 * side's own exchange then holds the lowest nonce (its Ni), so it loses.
 */
function nonces(m: IkeManager, low: boolean): void {
  let k = 0;
  (m as unknown as { random: (n: number) => Buffer }).random = (n) => {
    if (n !== 32) return randomBytes(n);
    const b = Buffer.alloc(32, low ? 0x00 : 0xff);
    b.writeUInt16BE(++k, 30);
    return b;
  };
}

function pair(lowSide: 'a' | 'b' | null) {
  const a = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
  const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
  const p = new TwoPeers([a], [b]);
  p.run(p.a.initiate('a2b', p.now), 'a');
  expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  if (lowSide) {
    nonces(p.a, lowSide === 'a');
    nonces(p.b, lowSide === 'b');
  }
  const child = p.a.status()[0]!.children[0]!;
  return { p, child: { spiIn: child.spiIn, spiOut: child.spiOut }, oldId: p.a.status()[0]!.ikeId };
}

function sends(actions: IkeAction[]): Send[] {
  return actions.filter((x): x is Send => x.kind === 'send');
}

/** Hands datagrams to one side by hand (recording what it does) and returns its actions. */
function deliver(p: TwoPeers, side: 'a' | 'b', list: Send[]): IkeAction[] {
  const m = side === 'a' ? p.a : p.b;
  const acts = list.flatMap((s) => m.receive(s.datagram, s.from, s.to, p.now));
  (side === 'a' ? p.actionsA : p.actionsB).push(...acts);
  return acts;
}

/** Both sides start their rekey of the IKE SA now (an operator's `vpcgw rekey --ike` on each side). */
function bothRekey(p: TwoPeers): { reqA: Send[]; reqB: Send[] } {
  const actsA = p.a.rekey('a2b', 'ike', p.now);
  const actsB = p.b.rekey('b2a', 'ike', p.now);
  p.actionsA.push(...actsA);
  p.actionsB.push(...actsB);
  const reqA = sends(actsA);
  const reqB = sends(actsB);
  expect(reqA).toHaveLength(1);
  expect(reqB).toHaveLength(1);
  return { reqA, reqB };
}

/**
 * Exactly one IKE SA on each side, the same one (SPIs), not the old one, holding the one CHILD_SA
 * pair from before: the children were moved, never deleted nor reinstalled.
 */
function expectOneIkeSa(p: TwoPeers, before: { child: { spiIn: string; spiOut: string }; oldId: string }): string {
  const sa = p.a.status();
  const sb = p.b.status();
  expect(sa.map((s) => s.state)).toEqual(['ESTABLISHED']);
  expect(sb.map((s) => s.state)).toEqual(['ESTABLISHED']);
  expect(sa[0]!.ikeId).toBe(sb[0]!.ikeId);
  expect(sa[0]!.ikeId).not.toBe(before.oldId);
  expect(sa[0]!.children.map((c) => [c.state, c.spiIn, c.spiOut])).toEqual([['INSTALLED', before.child.spiIn, before.child.spiOut]]);
  expect(sb[0]!.children.map((c) => [c.state, c.spiIn, c.spiOut])).toEqual([['INSTALLED', before.child.spiOut, before.child.spiIn]]);
  expect(p.deletes('a')).toHaveLength(0);
  expect(p.deletes('b')).toHaveLength(0);
  return sa[0]!.ikeId;
}

/** The surviving IKE SA still carries exchanges both ways (a liveness check from each side). */
function expectUsable(p: TwoPeers): void {
  const wire = p.wire.length;
  p.run(p.a.dpd('a2b', p.now), 'a');
  p.run(p.b.dpd('b2a', p.now), 'b');
  expect(p.wire.length - wire).toBe(4);
  expect(p.a.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
  expect(p.b.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
}

describe('simultaneous IKE SA rekey (RFC 7296 §2.8.1)', () => {
  for (const low of ['a', 'b'] as const) {
    const high = low === 'a' ? 'b' : 'a';
    it(`requests cross: both exchanges complete, ${low.toUpperCase()} (lowest nonce) deletes its redundant IKE SA, ${high.toUpperCase()} the old one; the CHILD_SA moves`, () => {
      const before = pair(low);
      const { p } = before;
      const { reqA, reqB } = bothRekey(p);
      // /* CREATE_CHILD_SA { SA(IKE), Ni, KEi } --> */ both ways before either answer
      const respFromB = sends(deliver(p, 'b', reqA));
      const respFromA = sends(deliver(p, 'a', reqB));
      expect(respFromB).toHaveLength(1);
      expect(respFromA).toHaveLength(1);
      expect(p.logText('a')).toMatch(/IKE_SA rekey collision: the peer rekeyed a2b/);
      expect(p.logText('b')).toMatch(/IKE_SA rekey collision: the peer rekeyed b2a/);
      expect(p.logText('a')).not.toMatch(/TEMPORARY_FAILURE/);
      // /* <-- { SA(IKE), Nr, KEr } */ both answers, then the DELETEs (and their retransmissions)
      p.run(respFromB, 'b');
      p.run(respFromA, 'a');
      p.tick(4000);
      p.tick(7200);
      expect(p.logText(high)).toMatch(/IKE_SA rekey collision won/);
      expect(p.logText(low)).toMatch(/IKE_SA rekey collision lost: deleting our redundant/);
      expect(p.logText(high)).not.toMatch(/collision lost/);
      expect(p.logText(low)).not.toMatch(/collision won/);
      const id = expectOneIkeSa(p, before);
      // one rekey counted per side; nothing more happens later
      expect(p.a.connectionCounters('a2b').ikeRekeys).toBe(1);
      expect(p.b.connectionCounters('b2a').ikeRekeys).toBe(1);
      p.tick(REKEYED_IKE_SA_TIMEOUT_MS);
      expect(expectOneIkeSa(p, before)).toBe(id);
      expectUsable(p);
      expect(p.logText('a')).not.toMatch(/giving up after|peer does not answer/);
      expect(p.logText('b')).not.toMatch(/giving up after|peer does not answer/);
    });
  }

  it("the winner's DELETE of the old SA reaches the loser before the loser's answer: taken from its retransmission", () => {
    const before = pair('b');
    const { p } = before;
    const { reqA, reqB } = bothRekey(p);
    const respFromB = sends(deliver(p, 'b', reqA));
    const respFromA = sends(deliver(p, 'a', reqB));
    // A (winner) reads B's answer and deletes the old SA; A's answer to B is held back
    const delFromA = sends(deliver(p, 'a', respFromB));
    expect(p.logText('a')).toMatch(/IKE_SA rekey collision won/);
    expect(delFromA).toHaveLength(1);
    // /* INFORMATIONAL { D(IKE) } --> B on the old SA */: B's own rekey is unanswered: not taken yet
    expect(sends(deliver(p, 'b', delFromA))).toHaveLength(0);
    expect(p.b.status().find((s) => s.ikeId === before.oldId)?.children).toHaveLength(1);
    // B reads its own answer: it lost, deletes its redundant SA, the children move to A's SA
    p.run(deliver(p, 'b', respFromA), 'b');
    expect(p.logText('b')).toMatch(/IKE_SA rekey collision lost/);
    // A's DELETE of the old SA is retransmitted and now answered
    p.tick(4000);
    expectOneIkeSa(p, before);
    expectUsable(p);
  });

  it("the loser's DELETE of its redundant SA reaches the winner before the winner's answer", () => {
    const before = pair('b');
    const { p } = before;
    const { reqA, reqB } = bothRekey(p);
    const respFromB = sends(deliver(p, 'b', reqA));
    const respFromA = sends(deliver(p, 'a', reqB));
    // B (loser) reads A's answer first and deletes the SA its exchange made
    const delFromB = sends(deliver(p, 'b', respFromA));
    expect(p.logText('b')).toMatch(/IKE_SA rekey collision lost/);
    p.run(deliver(p, 'a', delFromB), 'a');
    // A reads its answer: B's SA is gone already, so A's wins whatever the nonces
    p.run(deliver(p, 'a', respFromB), 'a');
    expect(p.logText('a')).toMatch(/IKE_SA rekey collision won/);
    p.tick(4000);
    expectOneIkeSa(p, before);
    expectUsable(p);
  });

  it("one side reads its answer before the peer's request arrives: that request gets TEMPORARY_FAILURE, the first rekey stands", () => {
    const before = pair('b');
    const { p } = before;
    const { reqA, reqB } = bothRekey(p);
    // B answers A's request while its own is on the wire (a collision at B); A reads that answer first
    const respFromB = sends(deliver(p, 'b', reqA));
    const delFromA = sends(deliver(p, 'a', respFromB)); // A: plain rekey done, D(IKE) on the old SA sent
    expect(p.logText('a')).not.toMatch(/collision/);
    // B's request arrives late at A, on an SA being deleted
    const late = sends(deliver(p, 'a', reqB));
    expect(p.logText('a')).toMatch(/IKE_SA rekey refused: IKE SA is DELETING/);
    // B: held DELETE, then the TEMPORARY_FAILURE: A's SA (from B's collided half) stands
    expect(sends(deliver(p, 'b', delFromA))).toHaveLength(0);
    p.run(deliver(p, 'b', late), 'b');
    expect(p.logText('b')).toMatch(/TEMPORARY_FAILURE.*the peer's collided rekey of it stands/);
    p.tick(4000); // A's DELETE of the old SA, retransmitted, is answered now
    expectOneIkeSa(p, before);
    expectUsable(p);
    // B does not retry its rekey
    const n = p.b.connectionCounters('b2a').ikeRekeys;
    p.tick(15_000);
    expect(p.b.connectionCounters('b2a').ikeRekeys).toBe(n);
  });

  it('random nonces, many rounds: always one IKE SA, the same on both sides, with the CHILD_SA pair', () => {
    for (let i = 0; i < 20; i++) {
      const before = pair(null);
      const { p } = before;
      const { reqA, reqB } = bothRekey(p);
      const respFromB = sends(deliver(p, 'b', reqA));
      const respFromA = sends(deliver(p, 'a', reqB));
      if (i % 2 === 0) {
        p.run(respFromB, 'b');
        p.run(respFromA, 'a');
      } else {
        p.run(respFromA, 'a');
        p.run(respFromB, 'b');
      }
      p.tick(4000);
      p.tick(7200);
      expectOneIkeSa(p, before);
      expect([p.logText('a'), p.logText('b')].filter((t) => /IKE_SA rekey collision won/.test(t))).toHaveLength(1);
    }
  });
});
