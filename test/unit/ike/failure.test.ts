import { describe, expect, it } from 'vitest';
import { parseProposals } from '../../../src/ike/config/proposal.js';
import { DhId, EncrId, IntegId, PrfId, ProtocolId, TransformType } from '../../../src/ike/wire/constants.js';
import type { Proposal } from '../../../src/ike/wire/types.js';
import { peerAuthFailed, peerOfferRefused, proposalKeywords, proposalsKeywords } from '../../../src/ike/failure.js';

describe('proposals in swanctl keyword syntax', () => {
  it('prints parsed proposals as they were written', () => {
    for (const text of ['aes128gcm16-prfsha256-x25519', 'aes256-sha256-modp2048', 'aes128-aes256-sha256-ecp256']) {
      expect(proposalKeywords(parseProposals(text, 'ike')[0]!)).toBe(text);
    }
    expect(proposalKeywords(parseProposals('aes256-sha1', 'esp')[0]!)).toBe('aes256-sha1');
    expect(proposalKeywords(parseProposals('aes128gcm16-esn', 'esp')[0]!)).toBe('aes128gcm16-esn');
    expect(proposalsKeywords(parseProposals('aes128gcm16-prfsha256-x25519,aes256-sha256-modp2048', 'ike'))).toBe(
      'aes128gcm16-prfsha256-x25519, aes256-sha256-modp2048',
    );
  });

  it('names algorithms we do not implement, as a peer may offer them (strongSwan aes256-sha1-modp1024)', () => {
    const offer: Proposal = {
      num: 1, protocol: ProtocolId.IKE, spi: Buffer.alloc(0), transforms: [
        { type: TransformType.ENCR, id: EncrId.ENCR_AES_CBC, keyLength: 256 },
        { type: TransformType.INTEG, id: IntegId.AUTH_HMAC_SHA1_96 },
        { type: TransformType.PRF, id: PrfId.PRF_HMAC_SHA1 },
        { type: TransformType.DH, id: 2 as DhId },
      ],
    };
    expect(proposalKeywords(offer)).toBe('aes256-sha1-modp1024');
    const f = peerOfferRefused('ike', [offer], parseProposals('aes128gcm16-prfsha256-x25519', 'ike'));
    expect(f.message).toBe('no acceptable IKE proposal: peer offered aes256-sha1-modp1024, we accept aes128gcm16-prfsha256-x25519');
    expect(f.hint).toBe('set ike.proposals to include aes256-sha1-modp1024 or ask the peer for aes128gcm16-prfsha256-x25519');
  });
});

describe('a refused peer certificate: the hint fits the reason', () => {
  it.each([
    ['certificate "CN=dc1" is not valid yet (not before 2030-01-01T00:00:00.000Z)', /check the clocks of both gateways/],
    ['certificate "CN=dc1" expired on 2020-01-01T00:00:00.000Z', /check the clocks of both gateways/],
    ['certificate "CN=dc1" (serial 1A) is revoked by the CRL of "CN=CA"', /crl revokes this certificate/],
    ['certificate "CN=dc1" is not issued by a configured CA', /valid certificate from the customer gateway's ca/],
  ])('%s', (problem, hint) => {
    const f = peerAuthFailed('fqdn:dc1.example', problem, false);
    expect(f.code).toBe('PEER_AUTH_FAILED');
    expect(f.message).toBe(`authentication of peer fqdn:dc1.example failed: ${problem}`);
    expect(f.hint).toMatch(hint);
  });
});
