import { VpnError } from '../../common/errors.js';
import { DhId, EncrId, EsnId, IntegId, PrfId, TransformType } from '../../ike/wire/constants.js';
import type { Proposal, Transform } from '../../ike/wire/types.js';
import { proposalToString } from '../../ike/config/proposal.js';

/**
 * Our proposals (parsed from strongSwan syntax by src/ike/config/proposal.ts) in Libreswan's
 * ike=/esp= syntax. Libreswan's ipsec.conf(5) (configs/d.ipsec.conf/conn/ike.xml and esp.xml in
 * its source) reads one proposal as
 *   IKE: ENCRYPT_ALGS-PRF_ALGS-DH_ALGS       (non-AEAD: the hash names both integrity and PRF)
 *   ESP: ENCRYPT_ALGS[-INTEG_ALGS][-DH_ALGS]
 * with "+" between alternatives of one kind (IKEv2) and "," between proposals; a key length is
 * appended to the cipher name ("aes_gcm128"). Libreswan has no way to give an IKE PRF that differs
 * from the integrity algorithm, so such a proposal is refused.
 */

const HASH_NAMES: Record<number, string> = {
  [PrfId.PRF_HMAC_SHA1]: 'sha1',
  [PrfId.PRF_HMAC_SHA2_256]: 'sha2_256',
  [PrfId.PRF_HMAC_SHA2_384]: 'sha2_384',
  [PrfId.PRF_HMAC_SHA2_512]: 'sha2_512',
};

/** Integrity algorithm → the PRF on the same hash, which is what Libreswan pairs it with. */
const INTEG_PRF: Record<number, number> = {
  [IntegId.AUTH_HMAC_SHA1_96]: PrfId.PRF_HMAC_SHA1,
  [IntegId.AUTH_HMAC_SHA2_256_128]: PrfId.PRF_HMAC_SHA2_256,
  [IntegId.AUTH_HMAC_SHA2_384_192]: PrfId.PRF_HMAC_SHA2_384,
  [IntegId.AUTH_HMAC_SHA2_512_256]: PrfId.PRF_HMAC_SHA2_512,
};

/** Libreswan's "dhN" names (RFC 3526 MODP, RFC 5903 ECP, RFC 8031 Curve25519). */
const DH_NAMES: Record<number, string> = {
  [DhId.MODP_2048]: 'dh14',
  [DhId.MODP_3072]: 'dh15',
  [DhId.MODP_4096]: 'dh16',
  [DhId.ECP_256]: 'dh19',
  [DhId.ECP_384]: 'dh20',
  [DhId.ECP_521]: 'dh21',
  [DhId.CURVE25519]: 'dh31',
};

/** Cipher names: "aes" is CBC; aes_gcm_a/_b/aes_gcm are the 8/12/16-byte ICV variants of RFC 4106. */
function encrName(t: Transform, p: Proposal): string {
  const bits = t.keyLength ?? 128;
  switch (t.id) {
    case EncrId.ENCR_AES_CBC: return `aes${bits}`;
    case EncrId.ENCR_AES_GCM_8: return `aes_gcm_a${bits}`;
    case EncrId.ENCR_AES_GCM_12: return `aes_gcm_b${bits}`;
    case EncrId.ENCR_AES_GCM_16: return `aes_gcm${bits}`;
    case EncrId.ENCR_CHACHA20_POLY1305: return 'chacha20_poly1305';
    default: throw unsupported(p, `encryption algorithm ${t.id}`);
  }
}

function unsupported(p: Proposal, what: string): VpnError {
  return new VpnError('ERR_CRYPTO_UNSUPPORTED', `Libreswan cannot express the proposal ${proposalToString(p)}: ${what}`);
}

function ofType(p: Proposal, type: TransformType): Transform[] {
  return p.transforms.filter((t) => t.type === type && !((type === TransformType.INTEG || type === TransformType.DH) && t.id === 0));
}

function names(p: Proposal, ts: Transform[], table: Record<number, string>, what: string): string {
  return ts.map((t) => {
    const n = table[t.id];
    if (!n) throw unsupported(p, `${what} ${t.id}`);
    return n;
  }).join('+');
}

/** One IKE proposal: ENCR-HASH-DH. */
export function libreswanIkeProposal(p: Proposal): string {
  const encr = ofType(p, TransformType.ENCR).map((t) => encrName(t, p)).join('+');
  const integ = ofType(p, TransformType.INTEG);
  const prf = ofType(p, TransformType.PRF);
  if (integ.length) {
    // the hash list gives both, so our PRFs must be the integrity algorithms' hashes (the same set;
    // Libreswan then prefers PRFs in the integrity order, and either side may choose among them)
    const implied = new Set(integ.map((t) => INTEG_PRF[t.id]));
    const prfs = new Set(prf.map((t) => t.id));
    if (implied.size !== prfs.size || [...implied].some((id) => id === undefined || !prfs.has(id))) {
      throw unsupported(p, 'its PRF differs from its integrity algorithm (Libreswan derives the PRF from the integrity hash)');
    }
  }
  // non-AEAD: the hash list in integrity order (it names the integrity algorithms); AEAD: the PRFs
  const hashes = integ.length ? integ.map((t) => ({ type: TransformType.PRF, id: INTEG_PRF[t.id] ?? -1 })) : prf;
  const hash = names(p, hashes, HASH_NAMES, 'PRF');
  const dh = names(p, ofType(p, TransformType.DH), DH_NAMES, 'DH group');
  return `${encr}-${hash}-${dh}`;
}

/** One ESP proposal: ENCR[-INTEG][-DH]. */
export function libreswanEspProposal(p: Proposal): string {
  const parts = [ofType(p, TransformType.ENCR).map((t) => encrName(t, p)).join('+')];
  const integ = ofType(p, TransformType.INTEG);
  if (integ.length) parts.push(names(p, integ.map((t) => ({ type: t.type, id: INTEG_PRF[t.id] ?? -1 })), HASH_NAMES, 'integrity algorithm'));
  const dh = ofType(p, TransformType.DH);
  if (dh.length) parts.push(names(p, dh, DH_NAMES, 'DH group'));
  return parts.join('-');
}

export interface LibreswanEsp {
  /** the esp= value */
  readonly esp: string;
  /** pfs=: a DH group in every ESP proposal (PFS on rekeys) or in none */
  readonly pfs: boolean;
  /** esn=: yes, no or either */
  readonly esn: 'yes' | 'no' | 'either';
}

export function libreswanIke(proposals: readonly Proposal[]): string {
  return proposals.map(libreswanIkeProposal).join(',');
}

/**
 * esp=, pfs= and esn= for our ESP proposals. Libreswan sets PFS and ESN per connection, so a list
 * that mixes proposals with and without a DH group is refused.
 */
export function libreswanEsp(proposals: readonly Proposal[]): LibreswanEsp {
  const withDh = proposals.filter((p) => ofType(p, TransformType.DH).length > 0);
  if (withDh.length !== 0 && withDh.length !== proposals.length) {
    const p = proposals.find((q) => !withDh.includes(q))!;
    throw unsupported(p, 'Libreswan sets PFS per connection, and the ESP proposals mix ones with and without a DH group');
  }
  const esn = new Set(proposals.flatMap((p) => ofType(p, TransformType.ESN).map((t) => t.id)));
  return {
    esp: proposals.map(libreswanEspProposal).join(','),
    pfs: withDh.length > 0,
    esn: esn.has(EsnId.ESN) ? (esn.has(EsnId.NO_ESN) ? 'either' : 'yes') : 'no',
  };
}
