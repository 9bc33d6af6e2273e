import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import type { PeerConfig } from '../../src/ike/config/peer-config.js';
import type { IkeAction } from '../../src/ike/sa/types.js';
import type { IkeManager } from '../../src/ike/ike-manager.js';
import { lowerNonce } from '../../src/ike/tasks/child-rekey.js';

// RFC 7296 §2.8.1: both peers rekey the same CHILD_SA at once. Both exchanges complete; the one
// holding the lowest of the four nonces made the redundant child, which its initiator deletes, and
// the other side deletes the old child. Message shapes:
//   A: CREATE_CHILD_SA { N(REKEY_SA, old), SA, Ni(A), TSi, TSr } -->
//   B: CREATE_CHILD_SA { N(REKEY_SA, old), SA, Ni(B), TSi, TSr } -->   (crossing on the wire)
//   each answers the other: <-- { SA, Nr, TSi, TSr }
//   loser:  INFORMATIONAL { D(ESP, its redundant child) } -->
//   winner: INFORMATIONAL { D(ESP, old child) } -->

type Install = Extract<IkeAction, { kind: 'installChildSa' }>['params'];
type Send = Extract<IkeAction, { kind: 'send' }>;

/**
 * Deterministic nonces: the low side's are 00…00 k, the high side's ff…ff k (k counts up). The low
 * side's own exchange then holds the lowest nonce (its Ni, drawn before its Nr), so it loses.
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

function pair(lowSide: 'a' | 'b') {
  const life = (c: PeerConfig): PeerConfig => ({ ...c, children: c.children.map((ch) => ({ ...ch, lifetimeSec: 600 })) });
  const a = life(peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }));
  const b = life(peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] }));
  const p = new TwoPeers([a], [b]);
  p.run(p.a.initiate('a2b', p.now), 'a');
  expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  nonces(p.a, lowSide === 'a');
  nonces(p.b, lowSide === 'b');
  return { p, old: p.installs('a')[0]! };
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

/** Both sides start their rekey of the child now (an operator's `vpcgw rekey` on each side). */
function bothRekey(p: TwoPeers): { reqA: Send[]; reqB: Send[] } {
  const actsA = p.a.rekey('a2b', 'child', p.now);
  const actsB = p.b.rekey('b2a', 'child', p.now);
  p.actionsA.push(...actsA);
  p.actionsB.push(...actsB);
  const reqA = sends(actsA);
  const reqB = sends(actsB);
  expect(reqA).toHaveLength(1);
  expect(reqB).toHaveLength(1);
  return { reqA, reqB };
}

/** One installed child on each side, the two halves of the same SA pair; nothing else left. */
function expectOnePair(p: TwoPeers, old: Install): { a: Install; b: Install } {
  const sa = p.a.status()[0]!;
  const sb = p.b.status()[0]!;
  expect(sa.state).toBe('ESTABLISHED');
  expect(sb.state).toBe('ESTABLISHED');
  expect(sa.children.map((c) => c.state)).toEqual(['INSTALLED']);
  expect(sb.children.map((c) => c.state)).toEqual(['INSTALLED']);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const a = p.installs('a').find((x) => hex(x.spiIn) === sa.children[0]!.spiIn)!;
  const b = p.installs('b').find((x) => hex(x.spiIn) === sb.children[0]!.spiIn)!;
  expect(a.spiIn).toBe(b.spiOut);
  expect(a.spiOut).toBe(b.spiIn);
  expect(a.encrKeyOut.equals(b.encrKeyIn)).toBe(true);
  expect(a.encrKeyIn.equals(b.encrKeyOut)).toBe(true);
  expect(a.spiIn).not.toBe(old.spiIn);
  // the surviving child carries each side's traffic: activated at install or by the old child's DELETE
  for (const [side, x] of [['a', a], ['b', b]] as const) {
    const acts = side === 'a' ? p.actionsA : p.actionsB;
    const routed = x.activateOutbound || acts.some((y) => y.kind === 'activateChildSa' && y.spiOut === x.spiOut);
    expect(routed).toBe(true);
  }
  // every other child is gone from the data plane on both sides
  for (const side of ['a', 'b'] as const) {
    const live = side === 'a' ? a : b;
    const removed = new Set(p.deletes(side).map((d) => (d as { spiIn: number }).spiIn));
    for (const x of p.installs(side)) if (x.spiIn !== live.spiIn) expect(removed.has(x.spiIn)).toBe(true);
  }
  return { a, b };
}

describe('simultaneous CHILD_SA rekey (RFC 7296 §2.8.1)', () => {
  it('lowerNonce compares bytes as unsigned (memcmp order)', () => {
    const x = Buffer.from('00ff', 'hex');
    const y = Buffer.from('0100', 'hex');
    expect(lowerNonce(x, y)).toBe(x);
    expect(lowerNonce(y, x)).toBe(x);
  });

  for (const low of ['a', 'b'] as const) {
    const high = low === 'a' ? 'b' : 'a';
    it(`requests cross: both exchanges complete, ${low.toUpperCase()} (lowest nonce) deletes its redundant child, ${high.toUpperCase()} the old one`, () => {
      const { p, old } = pair(low);
      const { reqA, reqB } = bothRekey(p);
      // /* CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr } --> */ both ways before either answer
      const respFromB = p.b.receive(reqA[0]!.datagram, reqA[0]!.from, reqA[0]!.to, p.now);
      const respFromA = p.a.receive(reqB[0]!.datagram, reqB[0]!.from, reqB[0]!.to, p.now);
      expect(sends(respFromB)).toHaveLength(1);
      expect(sends(respFromA)).toHaveLength(1);
      expect(p.logText('a')).toMatch(/CHILD_SA rekey collision: the peer rekeyed a2b-child/);
      expect(p.logText('b')).toMatch(/CHILD_SA rekey collision: the peer rekeyed b2a-child/);
      // /* <-- { SA, Nr, TSi, TSr } */ both answers, then the DELETEs
      p.run(respFromB, 'b');
      p.run(respFromA, 'a');
      expect(p.logText(high)).toMatch(/CHILD_SA rekey collision won/);
      expect(p.logText(low)).toMatch(/CHILD_SA rekey collision lost: deleting our redundant/);
      expect(p.logText(high)).not.toMatch(/collision lost/);
      expect(p.logText(low)).not.toMatch(/collision won/);
      const { a, b } = expectOnePair(p, old);
      // the survivor is the child the winner's exchange created: the winner activated it at once
      expect((high === 'a' ? a : b).activateOutbound).toBe(true);
      // the old child was deleted once (by the winner), on both sides
      const oldIn = { a: old.spiIn, b: old.spiOut };
      expect(p.deletes('a').filter((d) => (d as { spiIn: number }).spiIn === oldIn.a)).toHaveLength(1);
      expect(p.deletes('b').filter((d) => (d as { spiIn: number }).spiIn === oldIn.b)).toHaveLength(1);
      // one rekey counted per side, no retry pending: nothing more happens later
      expect(p.a.connectionCounters('a2b').childRekeys).toBe(1);
      expect(p.b.connectionCounters('b2a').childRekeys).toBe(1);
      const before = p.installs('a').length;
      p.tick(15_000);
      expect(p.installs('a')).toHaveLength(before);
      expectOnePair(p, old);
    });
  }

  it("the winner's DELETE of the old child reaches the loser before the loser's answer", () => {
    const { p, old } = pair('b');
    const { reqA, reqB } = bothRekey(p);
    const respFromB = sends(deliver(p, 'b', reqA));
    const respFromA = sends(deliver(p, 'a', reqB));
    // A (winner) reads B's answer and deletes the old child; A's answer to B is held back
    const delFromA = sends(deliver(p, 'a', respFromB));
    expect(p.logText('a')).toMatch(/collision won/);
    expect(delFromA).toHaveLength(1);
    // /* INFORMATIONAL { D(ESP, old) } --> B */: B moves its traffic to A's child at once
    const delRespFromB = sends(deliver(p, 'b', delFromA));
    deliver(p, 'a', delRespFromB);
    const aNew = p.installs('a')[p.installs('a').length - 1]!;
    expect(p.actionsB.some((x) => x.kind === 'activateChildSa' && x.spiOut === aNew.spiIn)).toBe(true);
    // now B reads its own answer: it lost and deletes its redundant child
    p.run(deliver(p, 'b', respFromA), 'b');
    expect(p.logText('b')).toMatch(/collision lost/);
    expectOnePair(p, old);
  });

  it("one side reads its answer before the peer's request arrives: that request gets TEMPORARY_FAILURE, the first rekey stands", () => {
    const { p, old } = pair('b');
    const { reqA, reqB } = bothRekey(p);
    // B answers A's request while its own is on the wire (a collision at B); A reads that answer first
    const respFromB = sends(deliver(p, 'b', reqA));
    const delFromA = sends(deliver(p, 'a', respFromB)); // A: plain rekey done, D(old) sent
    expect(p.logText('a')).not.toMatch(/collision/);
    // B's request arrives late at A: the child it names is already replaced
    const late = sends(deliver(p, 'a', reqB));
    expect(p.logText('a')).toMatch(/is being replaced already \(collision\)/);
    p.run(deliver(p, 'b', late), 'b');
    expect(p.logText('b')).toMatch(/TEMPORARY_FAILURE.*the peer's collided rekey of it stands/);
    p.run(delFromA, 'a');
    expectOnePair(p, old);
    // B does not retry a rekey of the deleted child
    const n = p.installs('b').length;
    p.tick(15_000);
    expect(p.installs('b')).toHaveLength(n);
  });

  it('random nonces, many rounds: always one pair of CHILD_SAs and traffic keys that match', () => {
    for (let i = 0; i < 20; i++) {
      const { p, old } = pair(i % 2 === 0 ? 'a' : 'b');
      (p.a as unknown as { random: (n: number) => Buffer }).random = (n) => randomBytes(n);
      (p.b as unknown as { random: (n: number) => Buffer }).random = (n) => randomBytes(n);
      const { reqA, reqB } = bothRekey(p);
      const respFromB = p.b.receive(reqA[0]!.datagram, reqA[0]!.from, reqA[0]!.to, p.now);
      const respFromA = p.a.receive(reqB[0]!.datagram, reqB[0]!.from, reqB[0]!.to, p.now);
      p.run(respFromB, 'b');
      p.run(respFromA, 'a');
      expectOnePair(p, old);
      expect([p.logText('a'), p.logText('b')].filter((t) => /collision won/.test(t))).toHaveLength(1);
    }
  });
});
