import { NotifyType, PayloadType, ProtocolId, TransformType, ExchangeType } from '../wire/constants.js';
import type { IkeMessage, Payload, Proposal, SaPayload, KePayload, NoncePayload } from '../wire/types.js';
import { createKeyExchange, isSupportedDhGroup } from '../../crypto/dh.js';
import { createPrf } from '../../crypto/prf.js';
import { deriveIkeKeys, ikeKeyLengths, skCryptoFor } from '../sa/keymat.js';
import { selectProposal, dhGroupOf, proposalToString } from '../config/proposal.js';
import { announcesFragmentation, sendsFragments, type PeerConfig } from '../config/peer-config.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findNotify, findPayload, firstErrorNotify } from './task.js';
import { SIGNATURE_HASHES, decodeSignatureHashes, encodeSignatureHashes } from '../sa/pubkey-auth.js';
import { caCertReq } from './ike-auth.js';
import { ourOfferRefused, peerError } from '../failure.js';

// RFC 7296 §1.2, §2.6, §3.3: IKE_SA_INIT — proposal selection, KE, nonces, INVALID_KE_PAYLOAD retry, COOKIE.

const MAX_INIT_RETRIES = 3;

export type IkeProposalChoice =
  | { kind: 'ok'; proposal: Proposal; cfg: PeerConfig }
  | { kind: 'invalid-ke'; group: number }
  | { kind: 'none' };

/**
 * Responder choice over all candidate configs (stateless: the manager calls it before creating
 * state so INVALID_KE_PAYLOAD and NO_PROPOSAL_CHOSEN keep no state, RFC 7296 §2.6/§2.7).
 * The KE group the initiator already sent is preferred when it is acceptable (saves a round trip).
 */
export function chooseIkeProposal(offered: Proposal[], keGroup: number, candidates: readonly PeerConfig[]): IkeProposalChoice {
  const ikeOffers = offered.filter((p) => p.protocol === ProtocolId.IKE);
  let fallback: { proposal: Proposal; cfg: PeerConfig } | null = null;
  for (const cfg of candidates) {
    // first try with only the KE group the initiator used
    const onlyKe = ikeOffers.map((p) => ({ ...p, transforms: p.transforms.filter((t) => t.type !== TransformType.DH || t.id === keGroup) }));
    const withKe = selectProposal(onlyKe, cfg.ikeProposals as Proposal[]);
    if (withKe && dhGroupOf(withKe) === keGroup) return { kind: 'ok', proposal: withKe, cfg };
    const any = selectProposal(ikeOffers, cfg.ikeProposals as Proposal[]);
    if (any && !fallback) fallback = { proposal: any, cfg };
  }
  if (fallback) return { kind: 'invalid-ke', group: dhGroupOf(fallback.proposal) };
  return { kind: 'none' };
}

export class IkeInitTask extends TaskBase implements IkeTask {
  readonly type = 'IKE_INIT';
  private group = 0;
  private cookie: Buffer | null = null;
  private retries = 0;
  private peerFragmentation = false;

  constructor(private readonly sa: IkeSa) {
    super();
  }

  // --- initiator ---------------------------------------------------------------------------
  /* IKE_SA_INIT request: [N(COOKIE)] SA KE Ni (+ NATD from the natd task) --> */
  buildRequest(out: Payload[]): TaskStatus {
    const sa = this.sa;
    const cfg = sa.cfg!;
    if (this.group === 0) this.group = dhGroupOf(cfg.ikeProposals[0]!);
    if (!isSupportedDhGroup(this.group)) {
      this.failReason = `DH group ${this.group} not supported`;
      return 'fail';
    }
    if (!sa.ke || sa.ke.group !== this.group) sa.ke = createKeyExchange(this.group);
    if (sa.nonceI.length === 0) sa.nonceI = sa.randomNonce();
    if (this.cookie) out.push(notify(NotifyType.COOKIE, this.cookie));
    out.push({ type: PayloadType.SA, proposals: cfg.ikeProposals.map((p) => ({ ...p, spi: Buffer.alloc(0) })) } as SaPayload);
    out.push({ type: PayloadType.KE, group: this.group, data: sa.ke.publicKey } as KePayload);
    out.push({ type: PayloadType.NONCE, nonce: sa.nonceI } as NoncePayload);
    // RFC 7427 §4: announce the hashes we sign and verify with (only for certificate auth, so PSK
    // connections keep the IKE_SA_INIT they always had)
    if (cfg.cert?.signatureAuth) {
      out.push(notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, encodeSignatureHashes(SIGNATURE_HASHES)));
      sa.offeredSignatureHashes = true;
    }
    // RFC 7383 §2.3: announced whatever the authentication, as strongSwan's default fragmentation=yes
    // does (certificate chains, many traffic selectors or a large KE can exceed the path's MTU)
    if (announcesFragmentation(cfg)) out.push(notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED));
    sa.state = 'INIT_SENT';
    return 'done';
  }

  /* <-- IKE_SA_INIT response: SA KE Nr | N(COOKIE) | N(INVALID_KE_PAYLOAD) | N(error) */
  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const cfg = sa.cfg!;
    const cookie = findNotify(msg, NotifyType.COOKIE);
    if (cookie) {
      if (++this.retries > MAX_INIT_RETRIES) return this.fail('too many COOKIE round trips');
      this.cookie = Buffer.from(cookie.data);
      sa.log.debug({}, 'peer requested a COOKIE, retrying');
      return 'more';
    }
    const invalidKe = findNotify(msg, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe) {
      const g = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      const offered = cfg.ikeProposals.some((p) => p.transforms.some((t) => t.type === TransformType.DH && t.id === g));
      if (!offered || g === this.group || ++this.retries > MAX_INIT_RETRIES) {
        sa.reportFailure({
          code: 'IKE_PROPOSAL_MISMATCH',
          message: `peer wants DH group ${g} (INVALID_KE_PAYLOAD from the peer), which none of our IKE proposals has`,
          hint: 'set ike.proposals to include a DH group the peer accepts, or ask the peer to accept one of ours',
        });
        return this.fail(`peer wants DH group ${g}, which we did not offer (our proposals: ${cfg.ikeProposals.map(proposalToString).join(', ')})`);
      }
      sa.log.info({ group: g }, `peer requested DH group ${g} (INVALID_KE_PAYLOAD), retrying`);
      this.group = g;
      return 'more';
    }
    const err = firstErrorNotify(msg);
    if (err !== undefined) {
      if (err === NotifyType.NO_PROPOSAL_CHOSEN) {
        sa.reportFailure(ourOfferRefused('ike', cfg.ikeProposals));
        return this.fail(`peer accepts none of our IKE proposals (NO_PROPOSAL_CHOSEN); we offered ${cfg.ikeProposals.map(proposalToString).join(', ')}`);
      }
      sa.reportFailure(peerError(`peer answered IKE_SA_INIT with ${NotifyType[err] ?? err}`));
      return this.fail(`peer answered IKE_SA_INIT with ${NotifyType[err] ?? err}`);
    }
    const saP = findPayload(msg, PayloadType.SA);
    const ke = findPayload(msg, PayloadType.KE);
    const nonce = findPayload(msg, PayloadType.NONCE);
    if (!saP || !ke || !nonce || saP.proposals.length !== 1) return this.fail('IKE_SA_INIT response lacks SA, KE or Nr');
    const chosen = saP.proposals[0]!;
    // the answer must be one of ours, closed over our offer (RFC 7296 §3.3.6)
    if (!selectProposal([chosen], cfg.ikeProposals as Proposal[])) return this.fail(`peer chose a proposal we did not offer: ${proposalToString(chosen)}`);
    if (dhGroupOf(chosen) !== ke.group || ke.group !== this.group) return this.fail(`peer's KE group ${ke.group} does not match the chosen proposal`);
    if (nonce.nonce.length < 16 || nonce.nonce.length > 256) return this.fail('bad nonce length');
    const secret = sa.ke!.computeSecret(ke.data);
    if (!secret) return this.fail('invalid KE data from peer');
    sa.setResponderSpi(msg.header.spiR);
    sa.peerSignatureHashes = signatureHashesOf(msg);
    sa.fragmentation = sendsFragments(cfg) && !!findNotify(msg, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED);
    sa.nonceR = Buffer.from(nonce.nonce);
    sa.initResponse = Buffer.from(sa.currentRaw);
    this.deriveKeys(copyProposal(chosen), secret);
    return 'done';
  }

  // --- responder ---------------------------------------------------------------------------
  /* --> IKE_SA_INIT request: SA KE Ni */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const saP = findPayload(msg, PayloadType.SA);
    const ke = findPayload(msg, PayloadType.KE);
    const nonce = findPayload(msg, PayloadType.NONCE);
    if (!saP || !ke || !nonce) return this.failWith(NotifyType.INVALID_SYNTAX, 'IKE_SA_INIT request lacks SA, KE or Ni');
    if (nonce.nonce.length < 16 || nonce.nonce.length > 256) return this.failWith(NotifyType.INVALID_SYNTAX, 'bad nonce length');
    const choice = chooseIkeProposal(saP.proposals, ke.group, sa.candidates);
    if (choice.kind !== 'ok') return this.failWith(NotifyType.NO_PROPOSAL_CHOSEN, 'no acceptable IKE proposal');
    sa.chooseConfig(choice.cfg);
    sa.ke = createKeyExchange(ke.group);
    const secret = sa.ke.computeSecret(ke.data);
    if (!secret) return this.failWith(NotifyType.INVALID_SYNTAX, 'invalid KE data from peer');
    sa.nonceI = Buffer.from(nonce.nonce);
    sa.peerSignatureHashes = signatureHashesOf(msg);
    this.peerFragmentation = !!findNotify(msg, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED);
    sa.nonceR = sa.randomNonce();
    sa.initRequest = Buffer.from(sa.currentRaw);
    this.deriveKeys(copyProposal(choice.proposal), secret);
    sa.state = 'INIT_RECEIVED';
    return 'done';
  }

  /* <-- IKE_SA_INIT response: SA KE Nr (+ NATD) */
  buildResponse(out: Payload[]): TaskStatus {
    const sa = this.sa;
    if (this.failReason) {
      out.push(notify(this.failNotify ?? NotifyType.NO_PROPOSAL_CHOSEN));
      return 'fail';
    }
    out.push({ type: PayloadType.SA, proposals: [sa.proposal!] } as SaPayload);
    out.push({ type: PayloadType.KE, group: sa.ke!.group, data: sa.ke!.publicKey } as KePayload);
    out.push({ type: PayloadType.NONCE, nonce: sa.nonceR } as NoncePayload);
    // IKE_AUTH picks the connection among the candidates later: offer RFC 7427 and ask for
    // certificates from our CAs (RFC 7296 §3.7) when any of them authenticates with a certificate
    if (sa.candidates.some((c) => c.cert?.signatureAuth)) {
      out.push(notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, encodeSignatureHashes(SIGNATURE_HASHES)));
      sa.offeredSignatureHashes = true;
    }
    const certReq = caCertReq(sa.candidates);
    if (certReq) out.push(certReq);
    // RFC 7383 §2.3: answer the peer's N(IKEV2_FRAGMENTATION_SUPPORTED) unless every candidate
    // connection says fragmentation: no (IKE_AUTH picks the connection only later)
    if (this.peerFragmentation && sa.candidates.some(announcesFragmentation)) {
      out.push(notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED));
      sa.fragmentation = sa.candidates.some(sendsFragments);
    }
    return 'done';
  }

  private deriveKeys(proposal: Proposal, secret: Buffer): void {
    const sa = this.sa;
    const lens = ikeKeyLengths(proposal);
    sa.proposal = proposal;
    sa.prf = createPrf(lens.prfId);
    sa.keys = deriveIkeKeys(sa.prf, secret, sa.nonceI, sa.nonceR, sa.spiI, sa.spiR, lens.encrKeyLen, lens.integKeyLen);
    sa.sk = skCryptoFor(proposal, sa.keys, sa.initiator);
    secret.fill(0);
    sa.log.debug({ proposal: proposalToString(proposal) }, `selected proposal: ${proposalToString(proposal)}`);
  }


}

function signatureHashesOf(msg: IkeMessage): number[] | null {
  const n = findNotify(msg, NotifyType.SIGNATURE_HASH_ALGORITHMS);
  return n ? decodeSignatureHashes(n.data) : null;
}

function copyProposal(p: Proposal): Proposal {
  return { num: p.num, protocol: p.protocol, spi: Buffer.from(p.spi), transforms: p.transforms.map((t) => ({ ...t })) };
}

export const IKE_SA_INIT = ExchangeType.IKE_SA_INIT;
