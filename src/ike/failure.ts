// Why a negotiation failed, in words a network engineer reads, with a suggested fix. The tasks
// build one of these where they fail (as initiator from the peer's error Notify, as responder from
// what the peer sent); the SA reports it as a `negotiationFailed` action and the gateway keeps the
// last one per connection (`vpcgw status`, `vpcgw diagnose`). Pure data: no clock, no I/O.
//
// Proposals print in strongSwan's swanctl keyword syntax ("aes256-sha1-modp1024"), the syntax of
// `ike.proposals` / `esp.proposals` and of swanctl.conf, so a proposal can be copied into either.
import { DhId, EncrId, EsnId, IdType, IntegId, PrfId, ProtocolId, TransformType } from './wire/constants.js';
import type { Identity } from './config/identity.js';
import type { Proposal, Transform } from './wire/types.js';

/**
 * Stable codes (status --json `lastError.code`, the API's `last_error.code`): messages may change,
 * codes may not.
 */
export type IkeFailureCode =
  /** no common IKE proposal: the peer's offer fits none of ours, or the peer refused ours */
  | 'IKE_PROPOSAL_MISMATCH'
  /** no common ESP proposal for the CHILD_SA */
  | 'ESP_PROPOSAL_MISMATCH'
  /** the peer refused our AUTH (AUTHENTICATION_FAILED from the peer) */
  | 'AUTH_REJECTED_BY_PEER'
  /** the peer's AUTH (PSK or signature, certificate) did not verify */
  | 'PEER_AUTH_FAILED'
  /** no traffic selector overlap (TS_UNACCEPTABLE, sent or received) */
  | 'TS_UNACCEPTABLE'
  /** the peer's identity is not the one configured for it */
  | 'PEER_ID_MISMATCH'
  /** the peer did not answer a request of ours */
  | 'NO_ANSWER'
  /** the peer answered with another error Notify, or something we cannot use */
  | 'PEER_ERROR';

export interface IkeFailure {
  readonly code: IkeFailureCode;
  /** what went wrong, e.g. "peer offered aes256-sha1-modp1024, we accept aes128gcm16-prfsha256-x25519" */
  readonly message: string;
  /** the suggested fix, e.g. "set ike.proposals to include aes256-sha1-modp1024 or ask the peer for ..." */
  readonly hint: string;
}

// ---- proposals as swanctl keywords ---------------------------------------------------------

const DH_KEYWORDS: Record<number, string> = {
  1: 'modp768', 2: 'modp1024', 5: 'modp1536', 14: 'modp2048', 15: 'modp3072', 16: 'modp4096', 17: 'modp6144',
  18: 'modp8192', 19: 'ecp256', 20: 'ecp384', 21: 'ecp521', 22: 'modp1024s160', 23: 'modp2048s224',
  24: 'modp2048s256', 25: 'ecp192', 26: 'ecp224', 27: 'ecp224bp', 28: 'ecp256bp', 29: 'ecp384bp',
  30: 'ecp512bp', 31: 'x25519', 32: 'x448',
};
/** integrity algorithm → its keyword and the PRF it implies in an IKE proposal (see proposal.ts) */
const INTEG_KEYWORDS: Record<number, { kw: string; prf?: number }> = {
  1: { kw: 'md5' },
  [IntegId.AUTH_HMAC_SHA1_96]: { kw: 'sha1', prf: PrfId.PRF_HMAC_SHA1 },
  5: { kw: 'aesxcbc' },
  [IntegId.AUTH_HMAC_SHA2_256_128]: { kw: 'sha256', prf: PrfId.PRF_HMAC_SHA2_256 },
  [IntegId.AUTH_HMAC_SHA2_384_192]: { kw: 'sha384', prf: PrfId.PRF_HMAC_SHA2_384 },
  [IntegId.AUTH_HMAC_SHA2_512_256]: { kw: 'sha512', prf: PrfId.PRF_HMAC_SHA2_512 },
};
const PRF_KEYWORDS: Record<number, string> = {
  1: 'prfmd5',
  [PrfId.PRF_HMAC_SHA1]: 'prfsha1',
  4: 'prfaesxcbc',
  [PrfId.PRF_HMAC_SHA2_256]: 'prfsha256',
  [PrfId.PRF_HMAC_SHA2_384]: 'prfsha384',
  [PrfId.PRF_HMAC_SHA2_512]: 'prfsha512',
};

function encrKeyword(t: Transform): string {
  const bits = t.keyLength ?? 128;
  switch (t.id) {
    case EncrId.ENCR_AES_CBC: return `aes${bits}`;
    case EncrId.ENCR_AES_CTR: return `aes${bits}ctr`;
    case EncrId.ENCR_AES_GCM_8: return `aes${bits}gcm8`;
    case EncrId.ENCR_AES_GCM_12: return `aes${bits}gcm12`;
    case EncrId.ENCR_AES_GCM_16: return `aes${bits}gcm16`;
    case EncrId.ENCR_3DES: return '3des';
    case EncrId.ENCR_NULL: return 'null';
    case EncrId.ENCR_CHACHA20_POLY1305: return 'chacha20poly1305';
    case 14: return `aes${bits}ccm8`;
    case 15: return `aes${bits}ccm12`;
    case 16: return `aes${bits}ccm16`;
    case 23: return `camellia${bits}`;
    default: return `encr${t.id}${t.keyLength !== undefined ? `_${t.keyLength}` : ''}`;
  }
}

/**
 * One proposal in swanctl syntax: "aes256-sha1-modp1024", "aes128gcm16-prfsha256-x25519". In an
 * IKE proposal a PRF on the hash of an offered integrity algorithm is implied by it and left out,
 * as swanctl's parser adds it; NO_EXT_SEQ (the default) is left out, ESN prints as "esn".
 */
export function proposalKeywords(p: Proposal): string {
  const ike = p.protocol === ProtocolId.IKE;
  const of = (type: TransformType) => p.transforms.filter((t) => t.type === type);
  const integ = of(TransformType.INTEG).filter((t) => t.id !== IntegId.NONE);
  const implied = new Set(integ.map((t) => INTEG_KEYWORDS[t.id]?.prf).filter((x) => x !== undefined));
  const words: string[] = [];
  for (const t of of(TransformType.ENCR)) words.push(encrKeyword(t));
  for (const t of integ) words.push(INTEG_KEYWORDS[t.id]?.kw ?? `integ${t.id}`);
  if (ike) for (const t of of(TransformType.PRF)) if (!implied.has(t.id)) words.push(PRF_KEYWORDS[t.id] ?? `prf${t.id}`);
  for (const t of of(TransformType.DH)) if (t.id !== DhId.NONE) words.push(DH_KEYWORDS[t.id] ?? `dh${t.id}`);
  if (of(TransformType.ESN).some((t) => t.id === EsnId.ESN)) words.push(of(TransformType.ESN).some((t) => t.id === EsnId.NO_ESN) ? 'esn-noesn' : 'esn');
  return words.join('-');
}

/** Several proposals, comma-separated as in `ike.proposals` (duplicates once). */
export function proposalsKeywords(ps: readonly Proposal[]): string {
  return [...new Set(ps.map(proposalKeywords))].join(', ');
}

/**
 * An identity as the config would write it: "fqdn:" and "email:" prefixes kept, so the peer's ID
 * can be copied into a customer gateway's `id` (or swanctl's `id`) as it is.
 */
export function typedId(id: Identity): string {
  if (id.any || id.text.includes(':') || id.text.includes('=')) return id.text;
  if (id.type === IdType.ID_FQDN) return `fqdn:${id.text}`;
  if (id.type === IdType.ID_RFC822_ADDR) return `email:${id.text}`;
  return id.text;
}

// ---- the failures, one builder per kind ----------------------------------------------------

type Kind = 'ike' | 'esp';
const CODE: Record<Kind, IkeFailureCode> = { ike: 'IKE_PROPOSAL_MISMATCH', esp: 'ESP_PROPOSAL_MISMATCH' };

/** Responder: the peer's offer fits none of our proposals. */
export function peerOfferRefused(kind: Kind, offered: readonly Proposal[], ours: readonly Proposal[]): IkeFailure {
  const theirs = proposalsKeywords(offered);
  const accept = proposalsKeywords(ours);
  return {
    code: CODE[kind],
    message: `no acceptable ${kind.toUpperCase()} proposal: peer offered ${theirs}, we accept ${accept}`,
    hint: `set ${kind}.proposals to include ${proposalKeywords(offered[0] ?? ours[0]!) || theirs} or ask the peer for ${proposalKeywords(ours[0]!) || accept}`,
  };
}

/** Initiator: the peer answered NO_PROPOSAL_CHOSEN to our offer. */
export function ourOfferRefused(kind: Kind, ours: readonly Proposal[]): IkeFailure {
  const offer = proposalsKeywords(ours);
  return {
    code: CODE[kind],
    message: `peer accepts none of our ${kind.toUpperCase()} proposals (NO_PROPOSAL_CHOSEN from the peer); we offered ${offer}`,
    hint: `ask the peer which ${kind.toUpperCase()} proposals it accepts (swanctl --list-conns on strongSwan) and set ${kind}.proposals to include one of them, or have the peer accept ${proposalKeywords(ours[0]!)}`,
  };
}

/** Initiator: the peer answered AUTHENTICATION_FAILED to our IKE_AUTH. */
export function authRejectedByPeer(withCert: boolean, localId: string): IkeFailure {
  return withCert
    ? {
      code: 'AUTH_REJECTED_BY_PEER',
      message: 'peer rejected our certificate authentication (AUTHENTICATION_FAILED from the peer)',
      hint: `check that the peer trusts the CA of our certificate and expects our ID ${localId}`,
    }
    : {
      code: 'AUTH_REJECTED_BY_PEER',
      message: 'PSK mismatch (AUTHENTICATION_FAILED from the peer)',
      hint: `set the same psk on both sides; if it is the same, check that the peer expects our ID ${localId} (ike.localId)`,
    };
}

/** Responder or initiator: the peer's AUTH did not verify (`problem` says how). */
export function peerAuthFailed(peerId: string, problem: string, psk: boolean): IkeFailure {
  return psk && problem === 'pre-shared keys differ'
    ? {
      code: 'PEER_AUTH_FAILED',
      message: `PSK mismatch: the AUTH of peer ${peerId} did not verify with our PSK`,
      hint: 'set the same psk on both sides (the connection\'s psk and the peer\'s secret for our ID)',
    }
    : {
      code: 'PEER_AUTH_FAILED',
      message: `authentication of peer ${peerId} failed: ${problem}`,
      hint: psk ? 'configure the peer for pre-shared key authentication with the same psk' : certHint(problem),
    };
}

/** What to do about a refused peer certificate: a validity problem is often a clock that is off. */
function certHint(problem: string): string {
  if (/ is not valid yet | expired on /.test(problem)) {
    return 'check the clocks of both gateways (NTP) and the certificate\'s validity dates; issue the peer a certificate valid now';
  }
  if (/ is revoked by the CRL /.test(problem)) return 'the customer gateway\'s crl revokes this certificate: issue the peer a new one';
  return 'give the peer a valid certificate from the customer gateway\'s ca holding its ID';
}

/** Either side: the peer's identity is not the configured one. */
export function peerIdMismatch(peerId: string, configured: string): IkeFailure {
  return {
    code: 'PEER_ID_MISMATCH',
    message: `peer ID ${peerId} does not match configured ${configured}`,
    hint: `set the customer gateway's id to ${peerId}, or have the peer use ${configured} as its local ID (local id / leftid)`,
  };
}

/** Responder: nothing the peer proposed fits our subnets (we answered TS_UNACCEPTABLE). */
export function tsRefused(peerTsi: string, peerTsr: string, ourRemote: string, ourLocal: string): IkeFailure {
  return {
    code: 'TS_UNACCEPTABLE',
    message: `no traffic selector overlap: peer proposed ${peerTsi} (its side) === ${peerTsr} (our side); we allow ${ourRemote} === ${ourLocal}`,
    hint: `set remoteSubnets to include ${peerTsi} and localSubnets to include ${peerTsr}, or have the peer use local_ts ${ourRemote} and remote_ts ${ourLocal}`,
  };
}

/** Initiator: the peer answered TS_UNACCEPTABLE to our traffic selectors. */
export function tsRefusedByPeer(ourLocal: string, ourRemote: string): IkeFailure {
  return {
    code: 'TS_UNACCEPTABLE',
    message: `no traffic selector overlap: peer refused our ${ourLocal} === ${ourRemote} (TS_UNACCEPTABLE from the peer)`,
    hint: `have the peer use local_ts ${ourRemote} and remote_ts ${ourLocal}, or set localSubnets/remoteSubnets to the subnets the peer has configured`,
  };
}

/** Our request went unanswered through the whole retransmission schedule. */
export function noAnswer(peer: string, retransmits: number, exchange: string): IkeFailure {
  return {
    code: 'NO_ANSWER',
    message: `no answer from ${peer} after ${retransmits} retransmits (${exchange})`,
    hint: exchange === 'IKE_SA_INIT'
      ? `check that the peer's IKE daemon runs and that UDP 500 and 4500 reach ${peer.replace(/:\d+$/, '')} both ways (firewall, NAT, the customer gateway's address)`
      : 'the peer stopped answering: check its IKE daemon and the path (UDP 4500) between us',
  };
}

/** The peer answered with another error, or with something we cannot use. */
export function peerError(message: string, hint = 'look at the peer\'s log for why it refused'): IkeFailure {
  return { code: 'PEER_ERROR', message, hint };
}
