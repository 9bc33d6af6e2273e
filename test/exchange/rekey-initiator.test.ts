import { describe, expect, it } from 'vitest';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import type { PeerConfig } from '../../src/ike/config/peer-config.js';
import type { IkeSa } from '../../src/ike/sa/ike-sa.js';
import type { IkeAction } from '../../src/ike/sa/types.js';
import type { IkeManager } from '../../src/ike/ike-manager.js';
import { parseProposals } from '../../src/ike/config/proposal.js';
import { ExchangeType } from '../../src/ike/wire/constants.js';
import { IkeRekeyTask as IkeRekeyInitiator, type IkeRekeyHost } from '../../src/ike/tasks/ike-rekey.js';

// vpcgw on both sides; A's lifetimes are the short ones, so A starts the rekeys.

function sasOf(m: IkeManager): IkeSa[] {
  return [...(m as unknown as { sas: Map<string, IkeSa> }).sas.values()];
}

function withLifetimes(c: PeerConfig, o: { esp?: number; ike?: number }): PeerConfig {
  return { ...c, ikeLifetimeSec: o.ike ?? c.ikeLifetimeSec, children: c.children.map((ch) => ({ ...ch, lifetimeSec: o.esp ?? ch.lifetimeSec })) };
}

function pair(o: { espLifeA?: number; espLifeB?: number; ikeLifeA?: number; espA?: string; espB?: string; initiator?: 'a' | 'b' } = {}) {
  const a = withLifetimes(peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], esp: o.espA }), { esp: o.espLifeA ?? 600, ike: o.ikeLifeA });
  const b = withLifetimes(peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'], esp: o.espB }), { esp: o.espLifeB ?? 3600 });
  const p = new TwoPeers([a], [b]);
  if ((o.initiator ?? 'a') === 'a') p.run(p.a.initiate('a2b', p.now), 'a');
  else p.run(p.b.initiate('b2a', p.now), 'b');
  expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
  return { p, a, b, start: p.now };
}

type Install = Extract<IkeAction, { kind: 'installChildSa' }>['params'];

/** The two halves of one child must mirror each other: SPIs and keys crossed. */
function expectMatching(x: Install, y: Install): void {
  expect(x.spiOut).toBe(y.spiIn);
  expect(x.spiIn).toBe(y.spiOut);
  expect(x.encrKeyOut.equals(y.encrKeyIn)).toBe(true);
  expect(x.encrKeyIn.equals(y.encrKeyOut)).toBe(true);
}

function advance(p: TwoPeers, untilMs: number, stepMs = 1000): void {
  for (let i = 0; i < 100_000 && p.now < untilMs; i++) p.tick(Math.min(stepMs, untilMs - p.now));
}

function activations(actions: IkeAction[]) {
  return actions.filter((x) => x.kind === 'activateChildSa');
}

describe('CHILD_SA rekey started by vpcgw at the configured lifetime', () => {
  it('rekeys within the jitter window: matching new keys, traffic moves at once, the old child is deleted on both sides', () => {
    const { p, start } = pair();
    const oldA = p.installs('a')[0]!;
    // nothing before lifetime - 10 %
    advance(p, start + 539_000, 10_000);
    expect(p.installs('a')).toHaveLength(1);
    expect(p.deletes('a')).toHaveLength(0);
    advance(p, start + 601_000);
    const ia = p.installs('a');
    const ib = p.installs('b');
    expect(ia).toHaveLength(2);
    expect(ib).toHaveLength(2);
    const na = ia[1]!;
    const nb = ib[1]!;
    expectMatching(na, nb);
    expect(na.spiIn).not.toBe(oldA.spiIn);
    expect(na.encrKeyOut.equals(oldA.encrKeyOut)).toBe(false);
    // the rekeying side routes to its new outbound SA at once; the responder once our DELETE arrived
    expect(na.activateOutbound).toBe(true);
    expect(nb.activateOutbound).toBe(false);
    expect(activations(p.actionsB)).toEqual([{ kind: 'activateChildSa', connection: 'b2a', spiOut: nb.spiOut }]);
    // old child gone on both sides, its inbound SA lingering ~5 s
    expect(p.deletes('a')).toEqual([{ kind: 'deleteChildSa', connection: 'a2b', spiIn: oldA.spiIn, spiOut: oldA.spiOut, inboundGraceMs: 5000 }]);
    expect(p.deletes('b')).toEqual([{ kind: 'deleteChildSa', connection: 'b2a', spiIn: oldA.spiOut, spiOut: oldA.spiIn, inboundGraceMs: 5000 }]);
    for (const m of [p.a, p.b]) {
      const children = m.status()[0]!.children;
      expect(children.map((c) => c.state)).toEqual(['INSTALLED']);
    }
    expect(p.a.status()[0]!.children[0]!.spiIn).toBe(na.spiIn.toString(16).padStart(8, '0'));
    expect(p.logText('a')).toMatch(/rekeying CHILD_SA a2b-child/);
    expect(p.a.connectionCounters('a2b').childRekeys).toBe(1);
    expect(p.b.connectionCounters('b2a').childRekeys).toBe(1);
    // the new child is rekeyed again one lifetime later
    advance(p, p.now + 601_000, 10_000);
    expect(p.installs('a')).toHaveLength(3);
    expect(p.a.status()[0]!.children).toHaveLength(1);
    expect(p.b.status()[0]!.children).toHaveLength(1);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  });

  it('with PFS: KEi in the configured group, both sides derive the same keys', () => {
    const { p, start } = pair({ espA: 'aes128gcm16-x25519', espB: 'aes128gcm16-x25519' });
    advance(p, start + 601_000);
    const ia = p.installs('a');
    const ib = p.installs('b');
    expect(ia).toHaveLength(2);
    expectMatching(ia[1]!, ib[1]!);
    expect(p.logText('a')).toMatch(/with PFS \(DH group 31\)/);
    expect(p.a.status()[0]!.children).toHaveLength(1);
  });

  it('INVALID_KE_PAYLOAD: retries in the group the peer asks for', () => {
    const { p, start } = pair({ espA: 'aes128gcm16-x25519-modp2048', espB: 'aes128gcm16-modp2048' });
    advance(p, start + 601_000);
    const ia = p.installs('a');
    expect(ia).toHaveLength(2);
    expectMatching(ia[1]!, p.installs('b')[1]!);
    expect(p.logText('a')).toMatch(/peer requested DH group 14/);
    expect(p.a.status()[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
  });

  // simultaneous rekeys of one child (RFC 7296 §2.8.1): rekey-collision.test.ts

  it('hard expiry: a rekey the peer keeps refusing ends with the child deleted at lifetime + 10 %, the IKE SA kept', () => {
    const { p, b, start } = pair();
    const old = p.installs('a')[0]!;
    // the peer stops accepting our ESP proposal (e.g. reconfigured)
    (b.children[0] as { espProposals: unknown }).espProposals = parseProposals('aes256gcm16', 'esp');
    advance(p, start + 601_000);
    expect(p.logText('a')).toMatch(/rekey of CHILD_SA a2b-child\{[0-9a-f]+_i\} failed, keeping it: peer accepts none of our ESP proposals \(NO_PROPOSAL_CHOSEN\)/);
    expect(p.a.status()[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
    expect(p.deletes('a')).toHaveLength(0);
    advance(p, start + 659_000);
    expect(p.deletes('a')).toHaveLength(0);
    advance(p, start + 661_000);
    expect(p.logText('a')).toMatch(/reached its hard lifetime without a rekey: deleting it/);
    expect(p.deletes('a')).toEqual([{ kind: 'deleteChildSa', connection: 'a2b', spiIn: old.spiIn, spiOut: old.spiOut, inboundGraceMs: 0 }]);
    expect(p.deletes('b')).toEqual([{ kind: 'deleteChildSa', connection: 'b2a', spiIn: old.spiOut, spiOut: old.spiIn, inboundGraceMs: 0 }]);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.a.status()[0]!.children).toHaveLength(0);
    expect(p.installs('a')).toHaveLength(1);
  });
});

describe('IKE SA rekey started by vpcgw at the configured IKE lifetime', () => {
  it('replaces the IKE SA: we become the original initiator, children move untouched, the old SA is deleted on both sides', () => {
    const { p, start } = pair({ initiator: 'b', espLifeA: 3600, ikeLifeA: 900 });
    const before = { a: p.a.status()[0]!, b: p.b.status()[0]! };
    expect(before.a.initiator).toBe(false);
    advance(p, start + 809_000, 10_000);
    expect(p.a.status()[0]!.ikeId).toBe(before.a.ikeId);
    advance(p, start + 901_000);
    const sa = p.a.status();
    const sb = p.b.status();
    expect(sa).toHaveLength(1);
    expect(sb).toHaveLength(1);
    expect(sa[0]!.ikeId).not.toBe(before.a.ikeId);
    expect(sa[0]!.ikeId).toBe(sb[0]!.ikeId);
    expect(sa[0]!.state).toBe('ESTABLISHED');
    expect(sb[0]!.state).toBe('ESTABLISHED');
    // role flip: the side that rekeyed is the new original initiator
    expect(sa[0]!.initiator).toBe(true);
    expect(sb[0]!.initiator).toBe(false);
    // the children moved, the data plane untouched
    expect(sa[0]!.children.map((c) => [c.spiIn, c.spiOut])).toEqual(before.a.children.map((c) => [c.spiIn, c.spiOut]));
    expect(sb[0]!.children.map((c) => [c.spiIn, c.spiOut])).toEqual(before.b.children.map((c) => [c.spiIn, c.spiOut]));
    expect(p.deletes('a')).toHaveLength(0);
    expect(p.deletes('b')).toHaveLength(0);
    expect(p.installs('a')).toHaveLength(1);
    expect(p.logText('a')).toMatch(/rekeyed: replaced by \[[0-9a-f]+\/[0-9a-f]+\].*1 CHILD_SA\(s\) moved/);
    expect(p.a.connectionCounters('a2b')).toMatchObject({ ikeRekeys: 1, childRekeys: 0 });
    expect(p.b.connectionCounters('b2a')).toMatchObject({ ikeRekeys: 1, childRekeys: 0 });
    // the new SA carries traffic (message IDs from 0, keys by role): a liveness check is answered
    p.run(p.a.dpd('a2b', p.now), 'a');
    const newA = sasOf(p.a)[0]!;
    expect(newA.busy).toBe(false);
    expect(newA.initiator).toBe(true);
    // and the new SA is rekeyed again one IKE lifetime later
    advance(p, p.now + 901_000, 10_000);
    expect(p.a.status()).toHaveLength(1);
    expect(p.a.status()[0]!.ikeId).not.toBe(sa[0]!.ikeId);
    expect(p.a.status()[0]!.children).toHaveLength(1);
  });

  it('collision: the peer rekeys the IKE SA while ours is in flight; both complete and the nonces decide (RFC 7296 §2.8.1)', () => {
    const { p, start } = pair({ espLifeA: 3600, ikeLifeA: 900 });
    p.now = start + 900_000;
    const actsA = p.a.tick(p.now);
    const req = actsA.find((x) => x.kind === 'send')!;
    expect(req).toBeDefined();
    // the peer's own IKE rekey crosses ours: drive B's SA with the same initiator task
    const saB = sasOf(p.b)[0]!;
    const host = (p.b as unknown as { rekeyHost(): IkeRekeyHost }).rekeyHost();
    saB.rekeying = true;
    const actsB = saB.queueExchange(ExchangeType.CREATE_CHILD_SA, [new IkeRekeyInitiator(saB, host, () => p.now)], p.now);
    const sendB = actsB.filter((x) => x.kind === 'send');
    expect(sendB).toHaveLength(1);
    const respA = sendB.flatMap((s) => (s.kind === 'send' ? p.a.receive(s.datagram, s.from, s.to, p.now) : []));
    const respB = req.kind === 'send' ? p.b.receive(req.datagram, req.from, req.to, p.now) : [];
    p.run(respA, 'a');
    p.run(respB, 'b');
    expect(p.logText('a')).toMatch(/IKE_SA rekey collision: the peer rekeyed/);
    expect(p.logText('a')).toMatch(/IKE_SA rekey collision (won|lost)/);
    expect(p.logText('b')).toMatch(/IKE_SA rekey collision (won|lost)/);
    // the DELETEs (one of them retransmitted after the other side's answer) settle: one IKE SA on
    // both sides, the same one, with the child
    advance(p, p.now + 11_000);
    expect(p.a.status()).toHaveLength(1);
    expect(p.b.status()).toHaveLength(1);
    expect(p.a.status()[0]!.ikeId).toBe(p.b.status()[0]!.ikeId);
    expect(p.a.status()[0]!.children).toHaveLength(1);
  });

  it('hard expiry: when the IKE rekey is refused the IKE SA is deleted at lifetime + 10 %', () => {
    const { p, b, start } = pair({ espLifeA: 3600, ikeLifeA: 900 });
    (b as { ikeProposals: unknown }).ikeProposals = parseProposals('aes256gcm16-prfsha384-ecp384', 'ike');
    advance(p, start + 901_000);
    expect(p.logText('a')).toMatch(/IKE rekey failed, keeping the IKE SA: peer accepts none of our IKE proposals/);
    expect(p.a.status()).toHaveLength(1);
    advance(p, start + 991_000);
    expect(p.logText('a')).toMatch(/reached its hard lifetime without a rekey: deleting it/);
    expect(p.a.status()).toHaveLength(0);
    expect(p.b.status()).toHaveLength(0);
    expect(p.actionsA.filter((x) => x.kind === 'ikeDown')).toHaveLength(1);
  });
});
