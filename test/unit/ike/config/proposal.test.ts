// strongSwan proposal syntax (as swanctl.conf reads it: "sha256" also selects the PRF in IKE proposals,
// AEAD IKE proposals need prf*, ESP gets NO_EXT_SEQ) and responder selection (RFC 7296 §3.3.6).
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../src/common/errors.js';
import {
  dhGroupOf,
  isValidResponseProposal,
  parseProposals,
  proposalToString,
  selectProposal,
  stripDh,
} from '../../../../src/ike/config/proposal.js';
import { ProtocolId, TransformType } from '../../../../src/ike/wire/constants.js';
import type { Proposal } from '../../../../src/ike/wire/types.js';

describe('parseProposals', () => {
  it('aes128gcm16-prfsha256-x25519 (IKE)', () => {
    const [p, ...rest] = parseProposals('aes128gcm16-prfsha256-x25519', 'ike');
    expect(rest).toHaveLength(0);
    expect(p!.num).toBe(1);
    expect(p!.protocol).toBe(ProtocolId.IKE);
    expect(p!.spi.length).toBe(0);
    expect(p!.transforms).toEqual([
      { type: TransformType.ENCR, id: 20, keyLength: 128 },
      { type: TransformType.PRF, id: 5 },
      { type: TransformType.DH, id: 31 },
    ]);
    expect(proposalToString(p!)).toBe('AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519');
  });

  it('aes256-sha256-modp2048: sha256 sets INTEG and PRF in IKE', () => {
    const [p] = parseProposals('aes256-sha256-modp2048', 'ike');
    expect(proposalToString(p!)).toBe('AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048');
    expect(dhGroupOf(p!)).toBe(14);
  });

  it('aes128-sha256-ecp256 gives the lab wire transforms ENCR 12/128, INTEG 12, PRF 5, DH 19', () => {
    const [p] = parseProposals('aes128-sha256-ecp256', 'ike');
    expect(p!.transforms.map((t) => [t.type, t.id, t.keyLength])).toEqual([
      [1, 12, 128],
      [3, 12, undefined],
      [2, 5, undefined],
      [4, 19, undefined],
    ]);
  });

  it('comma-separated list numbers proposals 1..n; alternatives of one type stay in one proposal', () => {
    const ps = parseProposals('aes256gcm16-prfsha384-ecp384, aes128-aes256-sha256-sha512-x25519-modp2048', 'ike');
    expect(ps.map((p) => p.num)).toEqual([1, 2]);
    expect(proposalToString(ps[1]!)).toBe(
      'AES_CBC_128/AES_CBC_256/HMAC_SHA2_256_128/HMAC_SHA2_512_256/PRF_HMAC_SHA2_256/PRF_HMAC_SHA2_512/CURVE_25519/MODP_2048',
    );
  });

  it('ESP: NO_EXT_SEQ added, DH kept for PFS, stripDh removes it', () => {
    const [p] = parseProposals('aes128gcm16-ecp256', 'esp');
    expect(proposalToString(p!)).toBe('AES_GCM_16_128/ECP_256/NO_EXT_SEQ');
    expect(p!.protocol).toBe(ProtocolId.ESP);
    expect(proposalToString(stripDh([p!])[0]!)).toBe('AES_GCM_16_128/NO_EXT_SEQ');
    expect(dhGroupOf(stripDh([p!])[0]!)).toBe(0);
    expect(proposalToString(parseProposals('aes128-sha256', 'esp')[0]!)).toBe('AES_CBC_128/HMAC_SHA2_256_128/NO_EXT_SEQ');
    expect(proposalToString(parseProposals('chacha20poly1305-esn', 'esp')[0]!)).toBe('CHACHA20_POLY1305/EXT_SEQ');
  });

  it('ChaCha20-Poly1305 never carries a key length', () => {
    const [p] = parseProposals('chacha20poly1305-prfsha512-x25519', 'ike');
    expect(p!.transforms[0]).toEqual({ type: TransformType.ENCR, id: 28 });
  });

  it('x448 (DH group 32, RFC 8031) for IKE and for ESP PFS', () => {
    const [ike] = parseProposals('chacha20poly1305-prfsha256-x448', 'ike');
    expect(dhGroupOf(ike!)).toBe(32);
    expect(dhGroupOf(parseProposals('aes256gcm16-prfsha384-curve448', 'ike')[0]!)).toBe(32);
    const [esp] = parseProposals('chacha20poly1305-x448', 'esp');
    expect(dhGroupOf(esp!)).toBe(32);
    expect(dhGroupOf(stripDh([esp!])[0]!)).toBe(0);
  });

  it('AES-GCM with 64/96-bit ICVs (RFC 4106 §8, RFC 5282 §7) is supported for IKE and ESP alike', () => {
    for (const kind of ['ike', 'esp'] as const) {
      const suffix = kind === 'ike' ? '-prfsha256-x25519' : '';
      const ids = (text: string) => parseProposals(text + suffix, kind)[0]!.transforms.filter((t) => t.type === TransformType.ENCR);
      expect(ids('aes256gcm8')).toEqual([{ type: TransformType.ENCR, id: 18, keyLength: 256 }]);
      expect(ids('aes128gcm64')).toEqual([{ type: TransformType.ENCR, id: 18, keyLength: 128 }]);
      expect(ids('aes128gcm12')).toEqual([{ type: TransformType.ENCR, id: 19, keyLength: 128 }]);
      expect(ids('aes192gcm96')).toEqual([{ type: TransformType.ENCR, id: 19, keyLength: 192 }]);
    }
  });

  it('"default" expands to strongSwan-like defaults we can run', () => {
    const ike = parseProposals('default', 'ike');
    expect(ike).toHaveLength(2);
    expect(dhGroupOf(ike[0]!)).toBe(31);
    expect(proposalToString(ike[0]!)).toMatch(/^AES_CBC_128\/AES_CBC_192\/AES_CBC_256\/HMAC_SHA2_256_128/);
    const esp = parseProposals('default', 'esp');
    expect(proposalToString(esp[0]!)).toBe('AES_GCM_16_128/AES_GCM_16_192/AES_GCM_16_256/NO_EXT_SEQ');
    expect(esp[1]!.transforms.some((t) => t.type === TransformType.DH)).toBe(false);
  });

  it.each([
    ['aes128-sha256-modp1024', 'ike', /unknown algorithm "modp1024".*known algorithms/],
    ['aes128gcm4-prfsha256-x25519', 'ike', /unknown algorithm "aes128gcm4".*x448/],
    ['chacha20poly1305-sha256', 'esp', /AEAD/],
    ['aes128gcm16-x25519', 'ike', /needs a PRF/],
    ['aes128-sha256', 'ike', /needs a DH group/],
    ['aes128-x25519', 'ike', /integrity/],
    ['aes128gcm16-sha256', 'esp', /AEAD/],
    ['aes128gcm16-aes128-sha256', 'esp', /mixes AEAD/],
    ['aes128-sha256-prfsha256', 'esp', /IKE proposals only/],
    ['aes128-prf-sha384-ecp384', 'ike', /unknown algorithm "prf"/],
    ['', 'esp', /non-empty/],
  ] as const)('%s (%s) is a ConfigError', (text, kind, re) => {
    let err: unknown;
    try {
      parseProposals(text, kind, 'connections.gw.proposals');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).path).toBe('connections.gw.proposals');
    expect((err as Error).message).toMatch(re);
  });
});

describe('selectProposal', () => {
  const offer = (text: string, kind: 'ike' | 'esp'): Proposal[] => parseProposals(text, kind);

  it('picks our first configured match and echoes one transform per offered type with the offer num/SPI', () => {
    const offered = offer('aes128-sha256-modp2048,aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp256-x25519', 'ike');
    const spi = Buffer.from('0102030405060708', 'hex');
    offered[1]!.spi = spi;
    const chosen = selectProposal(offered, offer('aes128gcm16-prfsha256-x25519,aes128-sha256-modp2048', 'ike'))!;
    expect(chosen.num).toBe(2);
    expect(chosen.spi.equals(spi)).toBe(true);
    spi[0] = 0xff; // a copy, not a view into the offer
    expect(chosen.spi[0]).toBe(1);
    expect(proposalToString(chosen)).toBe('AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519');
  });

  it('key length must match', () => {
    expect(selectProposal(offer('aes256-sha256-x25519', 'ike'), offer('aes128-sha256-x25519', 'ike'))).toBeNull();
    expect(selectProposal(offer('aes256gcm16', 'esp'), offer('aes128gcm16', 'esp'))).toBeNull();
  });

  it('no match for a different DH group, PRF, or protocol', () => {
    expect(selectProposal(offer('aes128-sha256-modp2048', 'ike'), offer('aes128-sha256-x25519', 'ike'))).toBeNull();
    expect(selectProposal(offer('aes128gcm16-prfsha384-x25519', 'ike'), offer('aes128gcm16-prfsha256-x25519', 'ike'))).toBeNull();
    expect(selectProposal(offer('aes128-sha256', 'esp'), offer('aes128-sha256-x25519', 'ike'))).toBeNull();
  });

  it('PFS mismatch: an offer without DH does not match a configured DH (use stripDh in IKE_AUTH)', () => {
    const cfg = offer('aes128gcm16-ecp256', 'esp');
    expect(selectProposal(offer('aes128gcm16', 'esp'), cfg)).toBeNull();
    expect(proposalToString(selectProposal(offer('aes128gcm16', 'esp'), stripDh(cfg))!)).toBe('AES_GCM_16_128/NO_EXT_SEQ');
  });

  it('ESN: offer esn-only does not match our noesn; INTEG NONE in an AEAD offer is ignored', () => {
    expect(selectProposal(offer('aes128gcm16-esn', 'esp'), offer('aes128gcm16', 'esp'))).toBeNull();
    const o = offer('aes128gcm16', 'esp');
    o[0]!.transforms.push({ type: TransformType.INTEG, id: 0 });
    expect(proposalToString(selectProposal(o, offer('aes128gcm16', 'esp'))!)).toBe('AES_GCM_16_128/NONE/NO_EXT_SEQ');
  });

  it('an explicit DH NONE in a child offer matches a non-PFS configuration and is echoed', () => {
    const o = offer('aes128-sha256', 'esp');
    o[0]!.transforms.push({ type: TransformType.DH, id: 0 });
    const chosen = selectProposal(o, offer('aes128-sha256', 'esp'))!;
    expect(proposalToString(chosen)).toBe('AES_CBC_128/HMAC_SHA2_256_128/NONE/NO_EXT_SEQ');
    expect(dhGroupOf(chosen)).toBe(0);
    expect(isValidResponseProposal(chosen, o)).toBe(true);
    expect(selectProposal(o, offer('aes128-sha256-ecp256', 'esp'))).toBeNull();
  });

  it('isValidResponseProposal rejects several transforms of one type, a wrong num, and a missing type', () => {
    const ours = offer('aes128-aes256-sha256-x25519-ecp256', 'ike');
    const good = selectProposal(ours, ours)!;
    expect(isValidResponseProposal(good, ours)).toBe(true);
    expect(isValidResponseProposal({ ...good, num: 2 }, ours)).toBe(false);
    expect(isValidResponseProposal(ours[0]!, ours)).toBe(false);
    expect(isValidResponseProposal({ ...good, transforms: good.transforms.filter((t) => t.type !== TransformType.DH) }, ours)).toBe(false);
  });
});
