import { describe, expect, it } from 'vitest';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import { ExchangeType } from '../../src/ike/wire/constants.js';

function pair(dpdSec: number) {
  const a = { ...peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }), dpdIntervalSec: dpdSec };
  const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
  const p = new TwoPeers([a], [b]);
  p.run(p.a.initiate('a2b', p.now), 'a');
  return p;
}

function informationalRequests(p: TwoPeers): number {
  return p.wire.filter((w) => w.datagram[18] === ExchangeType.INFORMATIONAL && (w.datagram[19]! & 0x20) === 0).length;
}

describe('dead peer detection (dpd interval)', () => {
  it('sends a liveness check after the interval without inbound traffic; an answer keeps the SA', () => {
    const p = pair(30);
    let espIn = 0;
    const check = () => p.run(p.a.livenessCheck(p.now, () => espIn), 'a');
    p.now += 29_000;
    check();
    expect(informationalRequests(p)).toBe(0);
    p.now += 1_000;
    check();
    /* INFORMATIONAL request #2 SK{ } --> <-- SK{ } */
    expect(informationalRequests(p)).toBe(1);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    // ESP arriving resets the timer: no check while packets come in
    for (let i = 0; i < 5; i++) {
      p.now += 20_000;
      espIn += 10;
      check();
    }
    expect(informationalRequests(p)).toBe(1);
    expect(p.a.nextLivenessCheck()).toBe(p.now + 30_000);
    expect(p.a.connectionCounters('a2b').dpdFailures).toBe(0);
  });

  it('tears the SA down when the peer stops answering (retransmit budget, dpd_action clear)', () => {
    const p = pair(10);
    p.filter = (d) => d.to.address !== B_ADDR; // the peer is gone
    p.now += 10_000;
    p.run(p.a.livenessCheck(p.now, () => 0), 'a');
    expect(informationalRequests(p)).toBe(1);
    for (const d of [4000, 7200, 12960, 23328, 41991, 75583]) p.tick(d);
    expect(p.a.status()).toHaveLength(0);
    expect(p.deletes('a')).toHaveLength(1); // the child left the data plane
    expect(p.logText('a')).toMatch(/giving up after 5 retransmits/);
    // the total outlives the SA (status counters, src/ike/ike-manager.ts IkeConnectionCounters)
    expect(p.a.connectionCounters('a2b')).toEqual({ ikeRekeys: 0, childRekeys: 0, dpdFailures: 1 });
  });

  it('does nothing for connections without DPD', () => {
    const p = pair(0);
    p.now += 3_600_000;
    p.run(p.a.livenessCheck(p.now, () => 0), 'a');
    expect(informationalRequests(p)).toBe(0);
    expect(p.a.nextLivenessCheck()).toBe(Infinity);
  });
});
