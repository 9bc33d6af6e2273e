// Extended sequence numbers in the child SA negotiation: the ESN transform (RFC 7296 §3.3.2,
// type 5) is chosen only when the offer leaves nothing else, and the choice reaches installChildSa.
import { describe, expect, it } from 'vitest';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import { parseProposals, proposalToString, selectProposal } from '../../src/ike/config/proposal.js';

function pair(espA: string, espB: string): TwoPeers {
  const a = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, esp: espA, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
  const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, esp: espB, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
  return new TwoPeers([a], [b]);
}

describe('ESN negotiation', () => {
  it.each([
    // [initiator offers, responder allows, ESN chosen]
    ['aes128gcm16-esn', 'aes128gcm16-esn-noesn', true],
    ['aes128gcm16-esn', 'aes128gcm16-esn', true],
    ['aes128gcm16-esn-noesn', 'aes128gcm16-esn-noesn', false],
    ['aes128gcm16-esn-noesn', 'aes128gcm16-noesn', false],
    ['aes128gcm16-esn-noesn', 'aes128gcm16-esn', true],
    ['aes128gcm16-noesn-esn', 'aes128gcm16-esn-noesn', false],
    ['aes128gcm16', 'aes128gcm16-esn-noesn', false],
    ['aes256-sha256-esn', 'aes256-sha256-esn-noesn', true],
  ] as const)('offer %s to %s: esn %s on both ends', (espA, espB, esn) => {
    const p = pair(espA, espB);
    /* IKE_SA_INIT --> <--; IKE_AUTH SK{ ... SA(ESP: ENCR [INTEG] ESN...) TSi TSr } --> <-- SK{ ... SA(one ESN) ... } */
    p.run(p.a.initiate('a2b', p.now), 'a');
    const ia = p.installs('a');
    const ib = p.installs('b');
    expect(ia).toHaveLength(1);
    expect(ib).toHaveLength(1);
    expect(ia[0]!.esn).toBe(esn);
    expect(ib[0]!.esn).toBe(esn);
  });

  it('no child when the initiator insists on ESN and the responder does not allow it (NO_PROPOSAL_CHOSEN)', () => {
    const p = pair('aes128gcm16-esn', 'aes128gcm16');
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.installs('a')).toHaveLength(0);
    expect(p.installs('b')).toHaveLength(0);
    expect(p.logText('a')).toMatch(/NO_PROPOSAL_CHOSEN/);
  });

  it('selectProposal prefers NO_EXT_SEQ whatever the configured order, and echoes one ESN transform', () => {
    const ours = parseProposals('aes128gcm16-esn-noesn', 'esp');
    expect(proposalToString(selectProposal(parseProposals('aes128gcm16-esn-noesn', 'esp'), ours)!)).toBe('AES_GCM_16_128/NO_EXT_SEQ');
    expect(proposalToString(selectProposal(parseProposals('aes128gcm16-esn', 'esp'), ours)!)).toBe('AES_GCM_16_128/EXT_SEQ');
    expect(proposalToString(selectProposal(parseProposals('aes128gcm16-noesn', 'esp'), ours)!)).toBe('AES_GCM_16_128/NO_EXT_SEQ');
    expect(selectProposal(parseProposals('aes128gcm16-esn', 'esp'), parseProposals('aes128gcm16', 'esp'))).toBeNull();
  });
});
