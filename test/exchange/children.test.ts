// Several CHILD_SAs per IKE SA (src/ike/ike-manager.ts queueFurtherChildren, src/ike/tasks/child-create.ts,
// src/ike/tasks/child-recreate.ts): the first child in IKE_AUTH, the others by CREATE_CHILD_SA
// (RFC 7296 §1.3.1); the responder picks the child config by traffic selectors (§2.9) and answers
// TS that fit none with TS_UNACCEPTABLE.
import { describe, expect, it } from 'vitest';
import { TwoPeers, peerConfig, prefixes, A_ADDR, B_ADDR } from './helpers.js';
import { ExchangeType } from '../../src/ike/wire/constants.js';
import type { ChildConfig, PeerConfig } from '../../src/ike/config/peer-config.js';
import { parseProposals } from '../../src/ike/config/proposal.js';
import { formatPrefix } from '../../src/common/ip.js';

function child(name: string, localTs: string[], remoteTs: string[], o: { esp?: string; startAction?: 'start' | 'none' } = {}): ChildConfig {
  return {
    name, localTs: prefixes(localTs), remoteTs: prefixes(remoteTs), espProposals: parseProposals(o.esp ?? 'aes128gcm16', 'esp'),
    lifetimeSec: 3600, replayWindow: 1024, ...(o.startAction ? { startAction: o.startAction } : {}),
  };
}

// A is the customer side (10.1.x), B the cloud side (10.2.x)
const A_APP = child('app', ['10.1.0.0/24'], ['10.2.0.0/24']);
const A_DB = child('db', ['10.1.1.0/24', '10.1.2.0/24'], ['10.2.1.0/24', '10.2.2.0/24'], { esp: 'aes256gcm16' });
const A_OTHER = child('other', ['10.1.9.0/24'], ['10.2.9.0/24']);
const B_APP = child('app', ['10.2.0.0/24'], ['10.1.0.0/24']);
const B_DB = child('db', ['10.2.1.0/24', '10.2.2.0/24'], ['10.1.1.0/24', '10.1.2.0/24'], { esp: 'aes256gcm16' });

function configs(aChildren: ChildConfig[], bChildren: ChildConfig[]): { ca: PeerConfig; cb: PeerConfig } {
  const ca = { ...peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: [], remoteTs: [] }), children: aChildren };
  const cb = { ...peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: [], remoteTs: [] }), children: bChildren };
  return { ca, cb };
}

function requests(p: TwoPeers, exchange: ExchangeType, from: string): number {
  return p.wire.filter((w) => w.from.address === from && w.datagram[18] === exchange && (w.datagram[19]! & 0x20) === 0).length;
}

/** Child name -> [spiIn, spiOut, local TS, remote TS] of a side's installed children. */
function children(p: TwoPeers, side: 'a' | 'b') {
  const st = (side === 'a' ? p.a : p.b).status().find((x) => x.state === 'ESTABLISHED');
  return new Map((st?.children ?? []).filter((c) => c.state === 'INSTALLED').map((c) => [c.name, c]));
}

describe('several CHILD_SAs per IKE SA', () => {
  it('the initiator brings the first child up in IKE_AUTH and the next with CREATE_CHILD_SA; each pair has its own SPIs', () => {
    const { ca, cb } = configs([A_APP, A_DB], [B_DB, B_APP]);
    const p = new TwoPeers([ca], [cb]);
    /* IKE_SA_INIT, IKE_AUTH { IDi AUTH SA TSi(app) TSr(app) } -->
       CREATE_CHILD_SA { SA Ni TSi(db: 2 TS) TSr(db: 2 TS) } --> <-- { SA Nr TSi TSr } */
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(requests(p, ExchangeType.IKE_AUTH, A_ADDR)).toBe(1);
    expect(requests(p, ExchangeType.CREATE_CHILD_SA, A_ADDR)).toBe(1);
    const a = children(p, 'a');
    const b = children(p, 'b');
    expect([...a.keys()]).toEqual(['app', 'db']);
    expect([...b.keys()].sort()).toEqual(['app', 'db']);
    for (const n of ['app', 'db']) {
      expect(a.get(n)!.spiIn).toBe(b.get(n)!.spiOut);
      expect(a.get(n)!.spiOut).toBe(b.get(n)!.spiIn);
    }
    expect(a.get('app')!.spiIn).not.toBe(a.get('db')!.spiIn);
    // several TS per child (§2.9): both subnets on each side, in one SA
    expect(b.get('db')!.localTs).toEqual(['10.2.1.0/24', '10.2.2.0/24']);
    expect(b.get('db')!.remoteTs).toEqual(['10.1.1.0/24', '10.1.2.0/24']);
    expect(b.get('db')!.proposal).toMatch(/AES_GCM_16_256/);
    // the installs name their child, so the shell routes each child's remote TS to its own SA
    const installs = p.installs('b');
    expect(installs.map((i) => i.child).sort()).toEqual(['app', 'db']);
    expect(installs.find((i) => i.child === 'db')!.remoteTs.map(formatPrefix)).toEqual(['10.1.1.0/24', '10.1.2.0/24']);
  });

  it('a child whose TS fit no config of the responder is refused with TS_UNACCEPTABLE; the IKE SA and other children stay', () => {
    const { ca, cb } = configs([A_APP, A_OTHER, A_DB], [B_APP, B_DB]);
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(requests(p, ExchangeType.CREATE_CHILD_SA, A_ADDR)).toBe(2);
    expect(p.logText('b')).toMatch(/CREATE_CHILD_SA refused: traffic selectors unacceptable/);
    expect(p.logText('a')).toMatch(/failed to create CHILD_SA other, keeping IKE_SA: peer answered TS_UNACCEPTABLE/);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect([...children(p, 'a').keys()]).toEqual(['app', 'db']);
    expect([...children(p, 'b').keys()]).toEqual(['app', 'db']);
  });

  it('the responder picks each child config by TS, whichever order the initiator creates them in', () => {
    const { ca, cb } = configs([A_DB, A_APP], [B_APP, B_DB]);
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    const b = children(p, 'b');
    expect(b.get('db')!.remoteTs).toEqual(['10.1.1.0/24', '10.1.2.0/24']);
    expect(b.get('app')!.remoteTs).toEqual(['10.1.0.0/24']);
    expect(b.get('db')!.spiOut).toBe(children(p, 'a').get('db')!.spiIn);
  });

  it('a child with startAction none is not created by us, but accepted from the peer', () => {
    const { ca, cb } = configs([A_APP, { ...A_DB, startAction: 'none' }], [B_APP, B_DB]);
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(requests(p, ExchangeType.CREATE_CHILD_SA, A_ADDR)).toBe(0);
    expect([...children(p, 'a').keys()]).toEqual(['app']);
    // when the other side initiates, it creates db and we accept it
    const q = new TwoPeers([ca], [cb]);
    q.run(q.b.initiate('b2a', q.now), 'b');
    expect([...children(q, 'a').keys()].sort()).toEqual(['app', 'db']);
  });

  it('a second request for an installed child is refused with NO_ADDITIONAL_SAS', () => {
    const { ca, cb } = configs([A_APP, A_DB], [B_APP, B_DB]);
    // A lists app twice under two names: the second CREATE_CHILD_SA asks for TS B already has a child for
    const p = new TwoPeers([{ ...ca, children: [A_APP, A_DB, { ...A_APP, name: 'app-again' }] }], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(requests(p, ExchangeType.CREATE_CHILD_SA, A_ADDR)).toBe(2);
    expect(p.logText('b')).toMatch(/NO_ADDITIONAL_SAS|additional CHILD_SA beside the installed app/);
    expect([...children(p, 'b').keys()]).toEqual(['app', 'db']);
  });

  it('a new initiation after the IKE SA went (what DPD restart and startAction do) brings every child back', () => {
    const { ca, cb } = configs([A_APP, A_DB], [B_APP, B_DB]);
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    p.run(p.a.terminate('a2b', p.now), 'a');
    expect(children(p, 'a').size).toBe(0);
    p.tick(1000);
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect([...children(p, 'a').keys()]).toEqual(['app', 'db']);
  });
});
