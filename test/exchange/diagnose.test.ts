import { describe, expect, it } from 'vitest';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import type { IkeAction } from '../../src/ike/sa/types.js';
import type { IkeFailure } from '../../src/ike/failure.js';

// Each way a negotiation fails yields one negotiationFailed action per side with a stable code,
// a message naming what the peer sent or refused, and a suggested fix (src/ike/failure.ts).
// A (192.0.2.1) initiates, B (192.0.2.2) responds.

function pair(o: {
  ikeA?: string; ikeB?: string; espA?: string; espB?: string; pskB?: string; localIdA?: string;
  tsA?: { local: string[]; remote: string[] };
} = {}) {
  const a = peerConfig({
    name: 'a2b', local: A_ADDR, remote: B_ADDR, ike: o.ikeA, esp: o.espA, localId: o.localIdA,
    localTs: o.tsA?.local ?? ['10.1.0.0/16'], remoteTs: o.tsA?.remote ?? ['10.2.0.0/16'],
  });
  const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, ike: o.ikeB, esp: o.espB, psk: o.pskB, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
  return new TwoPeers([a], [b]);
}

function failures(actions: IkeAction[]): (IkeFailure & { connection: string })[] {
  return actions.flatMap((a) => (a.kind === 'negotiationFailed' ? [{ ...a.failure, connection: a.connection }] : []));
}

describe('negotiation failures, reported for the operator', () => {
  it('IKE proposals: the responder names what the peer offered, the initiator what it offered', () => {
    const p = pair({ ikeA: 'aes256-sha256-modp2048', ikeB: 'aes128gcm16-prfsha256-x25519' });
    /* IKE_SA_INIT { SA KE Ni } --> <-- { N(NO_PROPOSAL_CHOSEN) } */
    p.run(p.a.initiate('a2b', p.now), 'a');
    const [b] = failures(p.actionsB);
    expect(b).toMatchObject({ connection: 'b2a', code: 'IKE_PROPOSAL_MISMATCH' });
    expect(b!.message).toContain('peer offered aes256-sha256-modp2048, we accept aes128gcm16-prfsha256-x25519');
    expect(b!.hint).toBe('set ike.proposals to include aes256-sha256-modp2048 or ask the peer for aes128gcm16-prfsha256-x25519');
    const [a] = failures(p.actionsA);
    expect(a).toMatchObject({ connection: 'a2b', code: 'IKE_PROPOSAL_MISMATCH' });
    expect(a!.message).toContain('NO_PROPOSAL_CHOSEN from the peer');
    expect(a!.message).toContain('we offered aes256-sha256-modp2048');
    // the log line says the same
    expect(p.logText('b')).toMatch(/negotiation failed: no acceptable IKE proposal: peer offered aes256-sha256-modp2048/);
  });

  it('ESP proposals: refused in IKE_AUTH, the IKE SA stays and both sides say why', () => {
    const p = pair({ espA: 'aes256-sha256', espB: 'aes128gcm16' });
    /* IKE_AUTH SK{ IDi AUTH SA(ESP) TSi TSr } --> <-- SK{ IDr AUTH N(NO_PROPOSAL_CHOSEN) } */
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.installs('a')).toHaveLength(0);
    const [b] = failures(p.actionsB);
    expect(b).toMatchObject({ code: 'ESP_PROPOSAL_MISMATCH', message: 'no acceptable ESP proposal: peer offered aes256-sha256, we accept aes128gcm16' });
    expect(b!.hint).toBe('set esp.proposals to include aes256-sha256 or ask the peer for aes128gcm16');
    const [a] = failures(p.actionsA);
    expect(a).toMatchObject({ code: 'ESP_PROPOSAL_MISMATCH' });
    expect(a!.message).toContain('we offered aes256-sha256');
    // the responder reports after its IKE SA came up, so the gateway's ikeUp does not clear it
    const kinds = p.actionsB.map((x) => x.kind).filter((k) => k === 'ikeUp' || k === 'negotiationFailed');
    expect(kinds).toEqual(['ikeUp', 'negotiationFailed']);
  });

  it('PSK mismatch: AUTHENTICATION_FAILED from the peer, and the peer\'s AUTH did not verify', () => {
    const p = pair({ pskB: 'another-test-fixture-psk' });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(failures(p.actionsA)).toEqual([expect.objectContaining({ code: 'AUTH_REJECTED_BY_PEER', message: 'PSK mismatch (AUTHENTICATION_FAILED from the peer)' })]);
    expect(failures(p.actionsB)).toEqual([expect.objectContaining({ code: 'PEER_AUTH_FAILED', message: `PSK mismatch: the AUTH of peer ${A_ADDR} did not verify with our PSK` })]);
    expect(p.logText('a') + p.logText('b')).not.toMatch(/test-fixture-psk/);
  });

  it('traffic selectors: the responder names what the peer proposed, the initiator what it proposed', () => {
    const p = pair({ tsA: { local: ['10.1.0.0/16'], remote: ['10.9.0.0/16'] } });
    p.run(p.a.initiate('a2b', p.now), 'a');
    const [b] = failures(p.actionsB);
    expect(b).toMatchObject({ code: 'TS_UNACCEPTABLE' });
    expect(b!.message).toMatch(/^no traffic selector overlap: peer proposed 10\.1\.0\.0\/16 \(its side\) === 10\.9\.0\.0\/16 \(our side\)/);
    expect(b!.hint).toContain('localSubnets to include 10.9.0.0/16');
    const [a] = failures(p.actionsA);
    expect(a).toMatchObject({ code: 'TS_UNACCEPTABLE', message: 'no traffic selector overlap: peer refused our 10.1.0.0/16 === 10.9.0.0/16 (TS_UNACCEPTABLE from the peer)' });
  });

  it('peer ID: the responder names the ID the peer used and the one configured', () => {
    const p = pair({ localIdA: 'fqdn:x.example' });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(failures(p.actionsB)).toEqual([expect.objectContaining({
      connection: 'b2a', code: 'PEER_ID_MISMATCH', message: `peer ID fqdn:x.example does not match configured ${A_ADDR}`,
    })]);
    expect(failures(p.actionsB)[0]!.hint).toContain("set the customer gateway's id to fqdn:x.example");
    expect(failures(p.actionsA)[0]!.code).toBe('AUTH_REJECTED_BY_PEER');
    expect(failures(p.actionsA)[0]!.hint).toContain('fqdn:x.example');
  });

  it('no answer: the peer address, port and the number of retransmits', () => {
    const p = pair();
    p.filter = (d) => d.to.address !== B_ADDR;
    p.run(p.a.initiate('a2b', p.now), 'a');
    for (const d of [4000, 7200, 12960, 23328, 41991, 75583]) p.tick(d);
    expect(p.a.status()).toHaveLength(0);
    const [a] = failures(p.actionsA);
    expect(a).toMatchObject({ code: 'NO_ANSWER', message: `no answer from ${B_ADDR}:500 after 5 retransmits (IKE_SA_INIT)` });
    expect(a!.hint).toContain('UDP 500 and 4500');
  });

  it('a tunnel that comes up reports no failure', () => {
    const p = pair();
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(failures(p.actionsA)).toEqual([]);
    expect(failures(p.actionsB)).toEqual([]);
  });
});
