// Peers that restart or vanish (src/ike/ike-manager.ts, src/ike/sa/ike-sa.ts, src/ike/tasks/child-recreate.ts):
// DPD actions restart / none with a DPD timeout, INITIAL_CONTACT from a rebooted peer, a fresh
// CHILD_SA after CHILD_SA_NOT_FOUND, and the rate-limited acquire of a trapped connection.
import { describe, expect, it } from 'vitest';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from '../../exchange/helpers.js';
import { ExchangeType } from '../../../src/ike/wire/constants.js';
import { IkeManager, RESTART_BACKOFF_MIN_MS, TRAP_ACQUIRE_INTERVAL_MS } from '../../../src/ike/ike-manager.js';
import type { IkeSa } from '../../../src/ike/sa/ike-sa.js';
import type { PeerConfig } from '../../../src/ike/config/peer-config.js';
import type { IkeAction } from '../../../src/ike/sa/types.js';

function sasOf(m: IkeManager): IkeSa[] {
  return [...(m as unknown as { sas: Map<string, IkeSa> }).sas.values()];
}

function configs(a: Partial<PeerConfig> = {}) {
  const ca = { ...peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }), ...a };
  const cb = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
  return { ca, cb };
}

/** Replaces B by a fresh manager with no state: the peer rebooted. */
function rebootB(p: TwoPeers, cb: PeerConfig): IkeManager {
  const b = new IkeManager({ log: p.logB, retransmit: { timeoutMs: 4000, base: 1.8, tries: 5 }, now: p.now });
  b.setConfigs([cb]);
  (p as unknown as { b: IkeManager }).b = b;
  return b;
}

function requests(p: TwoPeers, exchange: ExchangeType, from = A_ADDR): number {
  return p.wire.filter((w) => w.from.address === from && w.datagram[18] === exchange && (w.datagram[19]! & 0x20) === 0).length;
}

describe('DPD action restart', () => {
  it('clears the SAs of a peer that stopped answering and initiates again at once; the rebooted peer answers', () => {
    const { ca, cb } = configs({ dpdIntervalSec: 10, dpdAction: 'restart', dpdTimeoutSec: 5 });
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    const oldChild = p.installs('a')[0]!;
    p.filter = (d) => d.to.address !== B_ADDR; // the peer is gone
    p.now += 10_000;
    /* INFORMATIONAL SK{ } --> (unanswered) */
    p.run(p.a.livenessCheck(p.now, () => 0), 'a');
    expect(p.a.nextDeadline()).toBe(p.now + 4000); // the first retransmit comes before the DPD timeout
    p.tick(4000);
    p.tick(1000); // 5 s: the DPD timeout, well before the retransmit budget (~165 s)
    expect(p.a.status()).toHaveLength(0);
    expect(p.deletes('a').map((d) => (d as { spiIn: number }).spiIn)).toEqual([oldChild.spiIn]);
    expect(p.a.connectionCounters('a2b').dpdFailures).toBe(1);
    expect(p.a.pendingRestarts()).toEqual([{ name: 'a2b', atMs: p.now, attempt: 1 }]);
    expect(p.logText('a')).toMatch(/initiating a2b again \(dpd action restart\)/);
    // the peer comes back without any state; the next tick re-initiates
    rebootB(p, cb);
    p.filter = () => true;
    p.tick(250);
    /* IKE_SA_INIT --> <-- ; IKE_AUTH { IDi N(INITIAL_CONTACT) IDr AUTH SA TSi TSr } --> <-- */
    expect(p.a.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(p.b.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(p.installs('a')).toHaveLength(2);
    expect(p.a.pendingRestarts()).toEqual([]);
    expect(p.a.nextDeadline()).toBeGreaterThan(p.now);
  });

  it('backs off between attempts while the peer stays away', () => {
    const { ca, cb } = configs({ dpdIntervalSec: 10, dpdAction: 'restart', dpdTimeoutSec: 2 });
    const p = new TwoPeers([ca], [cb], { timeoutMs: 1000, base: 1, tries: 1 });
    p.run(p.a.initiate('a2b', p.now), 'a');
    p.filter = (d) => d.to.address !== B_ADDR;
    p.now += 10_000;
    p.run(p.a.livenessCheck(p.now, () => 0), 'a');
    p.tick(1000);
    p.tick(1000); // the liveness check ran out of retransmits: SA cleared, restart due now
    expect(p.a.pendingRestarts()[0]).toMatchObject({ attempt: 1, atMs: p.now });
    const inits = requests(p, ExchangeType.IKE_SA_INIT);
    p.tick(0); // attempt 1
    expect(requests(p, ExchangeType.IKE_SA_INIT)).toBe(inits + 1);
    p.tick(1000);
    p.tick(1000); // its IKE_SA_INIT went unanswered: next attempt after the back-off
    expect(p.a.status()).toHaveLength(0);
    expect(p.a.pendingRestarts()[0]).toMatchObject({ attempt: 2, atMs: p.now + RESTART_BACKOFF_MIN_MS });
    p.tick(RESTART_BACKOFF_MIN_MS);
    p.tick(1000);
    p.tick(1000);
    expect(p.a.pendingRestarts()[0]).toMatchObject({ attempt: 3, atMs: p.now + 2 * RESTART_BACKOFF_MIN_MS });
    // the operator's terminate ends the restarts
    p.run(p.a.terminate('a2b', p.now), 'a');
    expect(p.a.pendingRestarts()).toEqual([]);
  });

  it('dpd action clear (the default) does not initiate again', () => {
    const { ca, cb } = configs({ dpdIntervalSec: 10, dpdTimeoutSec: 3 });
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    p.filter = (d) => d.to.address !== B_ADDR;
    p.now += 10_000;
    p.run(p.a.livenessCheck(p.now, () => 0), 'a');
    p.tick(3000);
    expect(p.a.status()).toHaveLength(0);
    expect(p.a.pendingRestarts()).toEqual([]);
    expect(p.a.nextDeadline()).toBe(Infinity);
  });
});

describe('DPD action none', () => {
  it('counts and logs an unanswered liveness check but keeps the SAs; a peer that answers later carries on', () => {
    const { ca, cb } = configs({ dpdIntervalSec: 10, dpdAction: 'none', dpdTimeoutSec: 3 });
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    p.filter = (d) => d.to.address !== B_ADDR;
    p.now += 10_000;
    p.run(p.a.livenessCheck(p.now, () => 0), 'a');
    p.tick(3000);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.deletes('a')).toHaveLength(0);
    expect(p.a.connectionCounters('a2b').dpdFailures).toBe(1);
    expect(p.logText('a')).toMatch(/keeping the SAs \(dpd action none\)/);
    for (const d of [4000, 7200, 12960, 23328, 41991, 75583, 200_000, 200_000]) p.tick(d);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.a.connectionCounters('a2b').dpdFailures).toBe(1); // counted once per check
    // the peer is reachable again: the check (same message ID) is answered and DPD goes on normally
    p.filter = () => true;
    p.tick(200_000);
    expect(sasOf(p.a)[0]!.busy).toBe(false);
    p.now += 10_000;
    p.run(p.a.livenessCheck(p.now, () => 0), 'a');
    expect(sasOf(p.a)[0]!.busy).toBe(false);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  });
});

describe('INITIAL_CONTACT (RFC 7296 §2.4)', () => {
  it('a peer that rebooted and initiates again gets our old IKE SA and its CHILD_SA deleted at once', () => {
    const { ca, cb } = configs();
    const p = new TwoPeers([ca], [cb]);
    p.run(p.b.initiate('b2a', p.now), 'b');
    const old = p.installs('a')[0]!;
    expect(p.a.status()).toHaveLength(1);
    const b = rebootB(p, cb);
    p.now += 1000;
    p.run(b.initiate('b2a', p.now), 'b');
    /* IKE_AUTH SK{ IDi N(INITIAL_CONTACT) IDr AUTH SA TSi TSr } --> : the old SA goes with its child */
    expect(p.a.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(p.a.status()[0]!.children.map((c) => parseInt(c.spiIn, 16))).toEqual([p.installs('a')[1]!.spiIn]);
    expect(p.deletes('a')).toEqual([expect.objectContaining({ spiIn: old.spiIn, spiOut: old.spiOut, inboundGraceMs: 0 })]);
    expect(p.logText('a')).toMatch(/replaced \(INITIAL_CONTACT from peer\)/);
    // the new child was installed before the old one left: the routes went to it (src/gateway/ipsec.ts routeTo)
    const kinds = p.actionsA.map((x: IkeAction) => x.kind);
    expect(kinds.lastIndexOf('installChildSa')).toBeLessThan(kinds.lastIndexOf('deleteChildSa'));
  });

  it('a restarted gateway that initiates (startAction start) replaces the peer\'s old SA the same way', () => {
    const { ca, cb } = configs();
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    const fresh = new IkeManager({ log: p.logA, retransmit: { timeoutMs: 4000, base: 1.8, tries: 5 } });
    fresh.setConfigs([ca]);
    (p as unknown as { a: IkeManager }).a = fresh;
    p.run(fresh.initiate('a2b', p.now), 'a');
    expect(p.b.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(p.deletes('b')).toHaveLength(1);
  });
});

describe('CHILD_SA_NOT_FOUND answer to a rekey', () => {
  it.each([['aes128gcm16'], ['aes128gcm16-x25519']])('creates the child anew with CREATE_CHILD_SA (%s)', (esp) => {
    const ca = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], esp });
    const cb = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'], esp });
    const p = new TwoPeers([ca], [cb]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    const old = p.installs('a')[0]!;
    // B loses its child but keeps the IKE SA
    const saB = sasOf(p.b)[0]!;
    saB.children.length = 0;
    p.run(p.a.rekey('a2b', 'child', p.now), 'a');
    /* CREATE_CHILD_SA { N(REKEY_SA) SA Ni [KEi] TSi TSr } --> <-- { N(CHILD_SA_NOT_FOUND) }
       CREATE_CHILD_SA { SA Ni [KEi] TSi TSr } --> <-- { SA Nr [KEr] TSi TSr } */
    expect(requests(p, ExchangeType.CREATE_CHILD_SA)).toBe(2);
    expect(p.logText('a')).toMatch(/CHILD_SA_NOT_FOUND/);
    expect(p.deletes('a')).toEqual([expect.objectContaining({ spiIn: old.spiIn })]);
    const ia = p.installs('a');
    const ib = p.installs('b');
    expect(ia).toHaveLength(2);
    expect(ib).toHaveLength(2);
    expect(ia[1]!.spiOut).toBe(ib[1]!.spiIn);
    expect(ia[1]!.spiIn).toBe(ib[1]!.spiOut);
    expect(ia[1]!.encrKeyOut.equals(ib[1]!.encrKeyIn)).toBe(true);
    expect(ia[1]!.encrKeyIn.equals(ib[1]!.encrKeyOut)).toBe(true);
    expect(ia[1]!.encrKeyOut.equals(old.encrKeyOut)).toBe(false);
    expect(p.a.status()[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
    expect(p.b.status()[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  });
});

describe('trapped connection: acquire', () => {
  it('initiates on the first packet, ignores packets while the SA is up or being set up, and rate-limits after a failure', () => {
    const { ca, cb } = configs({ startAction: 'trap' });
    const p = new TwoPeers([ca], [cb], { timeoutMs: 500, base: 1, tries: 1 });
    p.filter = () => false; // the peer does not answer yet
    const first = p.a.acquire('a2b', p.now);
    p.run(first, 'a');
    expect(requests(p, ExchangeType.IKE_SA_INIT)).toBe(1);
    expect(p.a.acquire('a2b', p.now + 100)).toEqual([]); // being set up
    p.tick(500);
    p.tick(500); // the attempt failed
    expect(p.a.status()).toHaveLength(0);
    expect(p.a.acquire('a2b', p.now)).toEqual([]); // within TRAP_ACQUIRE_INTERVAL_MS of the first
    p.filter = () => true;
    p.now += TRAP_ACQUIRE_INTERVAL_MS;
    p.run(p.a.acquire('a2b', p.now), 'a');
    expect(p.a.status().map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(p.a.acquire('a2b', p.now + 10 * TRAP_ACQUIRE_INTERVAL_MS)).toEqual([]); // up
  });
});
