import { describe, expect, it } from 'vitest';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import type { PeerConfig } from '../../src/ike/config/peer-config.js';
import type { IkeAction } from '../../src/ike/sa/types.js';
import { SOFT_VOLUME_FRACTION, VOLUME_JITTER, childVolumeLimits } from '../../src/ike/sa/child-limits.js';

// Byte/packet lifetimes of CHILD_SAs: the limits go to the data plane with each SA
// (ChildSaParams.limits); the data plane's soft crossing starts a rekey, the hard one a DELETE.

const MB = 1 << 20;

function pair(o: { bytesA?: number; packetsA?: number; bytesB?: number } = {}) {
  const vol = (c: PeerConfig, bytes?: number, packets?: number): PeerConfig =>
    ({ ...c, children: c.children.map((ch) => ({ ...ch, lifetimeBytes: bytes, lifetimePackets: packets })) });
  const a = vol(peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }), o.bytesA, o.packetsA);
  const b = vol(peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] }), o.bytesB);
  const p = new TwoPeers([a], [b]);
  p.run(p.a.initiate('a2b', p.now), 'a');
  expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  return { p, old: p.installs('a')[0]!, oldB: p.installs('b')[0]! };
}

function event(p: TwoPeers, side: 'a' | 'b', spi: number, direction: 'in' | 'out', kind: 'soft' | 'hard' | 'seq-exhausted'): IkeAction[] {
  const acts = (side === 'a' ? p.a : p.b).childLifetimeEvent(spi, direction, kind, p.now);
  p.run(acts, side);
  return acts;
}

describe('CHILD_SA byte and packet lifetimes', () => {
  it('childVolumeLimits: hard as configured, soft at 81-90 % of it, none when unset', () => {
    const cfg = { name: 'c', localTs: [], remoteTs: [], espProposals: [], lifetimeSec: 60, replayWindow: 0 };
    expect(childVolumeLimits(cfg, () => Buffer.alloc(4))).toEqual({ softBytes: 0, hardBytes: 0, softPackets: 0, hardPackets: 0 });
    const lo = childVolumeLimits({ ...cfg, lifetimeBytes: 10 * MB, lifetimePackets: 5000 }, () => Buffer.alloc(4, 0xff));
    const hi = childVolumeLimits({ ...cfg, lifetimeBytes: 10 * MB, lifetimePackets: 5000 }, () => Buffer.alloc(4, 0));
    expect(hi).toEqual({ softBytes: Math.floor(10 * MB * SOFT_VOLUME_FRACTION), hardBytes: 10 * MB, softPackets: 4500, hardPackets: 5000 });
    expect(lo.softBytes).toBeGreaterThanOrEqual(Math.floor(10 * MB * SOFT_VOLUME_FRACTION * (1 - VOLUME_JITTER)));
    expect(lo.softBytes).toBeLessThan(hi.softBytes);
    expect(lo.softPackets).toBe(4050);
  });

  it('the limits travel with each new child, both sides configured independently', () => {
    const { old, oldB } = pair({ bytesA: 8 * MB, packetsA: 2000 });
    expect(old.limits.hardBytes).toBe(8 * MB);
    expect(old.limits.hardPackets).toBe(2000);
    expect(old.limits.softBytes).toBeGreaterThan(0.8 * 8 * MB);
    expect(old.limits.softBytes).toBeLessThanOrEqual(0.9 * 8 * MB);
    expect(oldB.limits).toEqual({ softBytes: 0, hardBytes: 0, softPackets: 0, hardPackets: 0 });
  });

  it('soft limit on the inbound SA: the child is rekeyed at once, one rekey for repeated reports', () => {
    const { p, old } = pair({ bytesA: 8 * MB });
    event(p, 'a', old.spiIn, 'in', 'soft');
    event(p, 'a', old.spiOut, 'out', 'soft'); // the other direction crosses too: already replaced
    expect(p.logText('a')).toMatch(/CHILD_SA a2b-child\{[0-9a-f]+_i [0-9a-f]+_o\} reached its soft byte\/packet limit: rekeying/);
    expect(p.installs('a')).toHaveLength(2);
    expect(p.installs('b')).toHaveLength(2);
    const na = p.installs('a')[1]!;
    expect(na.spiOut).toBe(p.installs('b')[1]!.spiIn);
    expect(na.limits.hardBytes).toBe(8 * MB);
    expect(p.a.status()[0]!.children).toHaveLength(1);
    expect(p.b.status()[0]!.children).toHaveLength(1);
    expect(p.deletes('a').map((d) => (d as { spiIn: number }).spiIn)).toEqual([old.spiIn]);
    expect(p.a.connectionCounters('a2b').childRekeys).toBe(1);
  });

  it('the responder side rekeys on its own limit (outbound SA) and on used-up sequence numbers', () => {
    const { p, oldB } = pair({ bytesB: 4 * MB });
    event(p, 'b', oldB.spiOut, 'out', 'soft');
    expect(p.installs('b')).toHaveLength(2);
    expect(p.b.status()[0]!.children).toHaveLength(1);
    const nb = p.installs('b')[1]!;
    event(p, 'b', nb.spiOut, 'out', 'seq-exhausted');
    expect(p.logText('b')).toMatch(/used up its sequence numbers: rekeying/);
    expect(p.installs('b')).toHaveLength(3);
    expect(p.a.status()[0]!.children).toHaveLength(1);
  });

  it('hard limit without a rekey: the child is deleted, the IKE SA stays', () => {
    const { p, old } = pair({ bytesA: 8 * MB });
    event(p, 'a', old.spiIn, 'in', 'hard');
    expect(p.logText('a')).toMatch(/reached its hard byte\/packet limit/);
    expect(p.installs('a')).toHaveLength(1);
    expect(p.deletes('a')).toEqual([{ kind: 'deleteChildSa', connection: 'a2b', spiIn: old.spiIn, spiOut: old.spiOut, inboundGraceMs: 0 }]);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.a.status()[0]!.children).toHaveLength(0);
    expect(p.b.status()[0]!.children).toHaveLength(0);
  });

  it('hard limit while the rekey is in flight: the rekey replaces the child, no second DELETE', () => {
    const { p, old } = pair({ bytesA: 8 * MB });
    // soft: our CREATE_CHILD_SA goes out; hold it back and report the hard limit meanwhile
    const acts = p.a.childLifetimeEvent(old.spiIn, 'in', 'soft', p.now);
    expect(acts.filter((x) => x.kind === 'send')).toHaveLength(1);
    expect(p.a.childLifetimeEvent(old.spiIn, 'in', 'hard', p.now).filter((x) => x.kind === 'send')).toHaveLength(0);
    p.run(acts, 'a');
    expect(p.installs('a')).toHaveLength(2);
    p.tick(1000);
    expect(p.deletes('a').map((d) => (d as { spiIn: number }).spiIn)).toEqual([old.spiIn]);
    expect(p.a.status()[0]!.children).toHaveLength(1);
  });

  it('reports for SAs no longer known are ignored', () => {
    const { p } = pair({ bytesA: 8 * MB });
    expect(p.a.childLifetimeEvent(0x12345678, 'in', 'soft', p.now)).toEqual([]);
  });
});
