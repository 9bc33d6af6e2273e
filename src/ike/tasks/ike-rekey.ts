import { NotifyType, PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, KePayload, NoncePayload, Payload, Proposal, SaPayload } from '../wire/types.js';
import { createKeyExchange, isSupportedDhGroup } from '../../crypto/dh.js';
import { createPrf } from '../../crypto/prf.js';
import { deriveRekeyedIkeKeys, ikeKeyLengths, skCryptoFor } from '../sa/keymat.js';
import { proposalToString } from '../config/proposal.js';
import { IkeSa, notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findPayload } from './task.js';
import { chooseIkeProposal } from './ike-init.js';
import { copyProposal } from './child-create.js';

// RFC 7296 §1.3.2, §2.18: the responder side of an IKE SA rekey.
//   --> SK { SA(IKE, SPI = the peer's new SPI), Ni, KEi }
//   <-- SK { SA(IKE, SPI = our new SPI), Nr, KEr }        (old SA's keys and message IDs)
// The peer, having started the rekey, is the ORIGINAL INITIATOR of the new SA (its SPI is SPIi').
// Every child moves to the new SA; the old one waits (REKEYED, no children) for the peer's D(IKE).

/** What the manager lends the task: a fresh unique IKE SPI, and registering the new SA. */
export interface IkeRekeyHost {
  newIkeSpi(): Buffer;
  adopt(sa: IkeSa): void;
}

export class IkeRekeyResponder extends TaskBase implements IkeTask {
  readonly type = 'IKE_REKEY';
  private next: IkeSa | null = null;
  private keData: Buffer = Buffer.alloc(0);
  private keGroup = 0;
  private failData: Buffer = Buffer.alloc(0);

  constructor(private readonly sa: IkeSa, private readonly host: IkeRekeyHost, private readonly now: () => number) {
    super();
  }

  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const saP = findPayload(msg, PayloadType.SA)!;
    const nonce = findPayload(msg, PayloadType.NONCE);
    const ke = findPayload(msg, PayloadType.KE);
    if (sa.state !== 'ESTABLISHED') {
      // being deleted or already rekeyed: the peer retries later (§2.25)
      return this.refuse(NotifyType.TEMPORARY_FAILURE, `IKE SA is ${sa.state}`);
    }
    if (sa.rekeying || sa.children.some((c) => c.rekeying)) {
      // our own rekey (of the IKE SA or of a child) is under way: the peer retries later (§2.25)
      return this.refuse(NotifyType.TEMPORARY_FAILURE, `we are rekeying ${sa.rekeying ? 'the IKE SA' : 'a CHILD_SA'} ourselves (collision)`);
    }
    if (!nonce || !ke) return this.refuse(NotifyType.INVALID_SYNTAX, 'IKE rekey request lacks Ni or KEi');
    if (nonce.nonce.length < 16 || nonce.nonce.length > 256) return this.refuse(NotifyType.INVALID_SYNTAX, 'bad nonce length');
    const offers = saP.proposals.filter((p) => p.protocol === ProtocolId.IKE && p.spi.length === 8);
    const choice = chooseIkeProposal(offers, ke.group, [sa.cfg!]);
    if (choice.kind === 'none') {
      return this.refuse(NotifyType.NO_PROPOSAL_CHOSEN,
        `no acceptable IKE proposal for the rekey: peer offered ${saP.proposals.map(proposalToString).join(', ')}; we accept ${sa.cfg!.ikeProposals.map(proposalToString).join(', ')}`);
    }
    if (choice.kind === 'invalid-ke') {
      this.failData = Buffer.alloc(2);
      this.failData.writeUInt16BE(choice.group, 0);
      return this.refuse(NotifyType.INVALID_KE_PAYLOAD, `peer sent KE for group ${ke.group} in an IKE rekey, requesting group ${choice.group}`);
    }
    if (!isSupportedDhGroup(ke.group)) return this.refuse(NotifyType.INVALID_SYNTAX, `unsupported DH group ${ke.group}`);
    const kex = createKeyExchange(ke.group);
    const secret = kex.computeSecret(ke.data);
    if (!secret) return this.refuse(NotifyType.INVALID_SYNTAX, 'invalid KE data from peer');
    const proposal = copyProposal(choice.proposal);
    const spiI = Buffer.from(proposal.spi); // the peer's new SPI: it is the new SA's original initiator
    const spiR = this.host.newIkeSpi();
    const nonceI = Buffer.from(nonce.nonce);
    const nonceR = sa.randomNonce();
    const lens = ikeKeyLengths(proposal);
    const prf = createPrf(lens.prfId);
    const keys = deriveRekeyedIkeKeys(prf, sa.keys!.skD, secret, nonceI, nonceR, spiI, spiR, lens.encrKeyLen, lens.integKeyLen);
    secret.fill(0);
    const now = this.now();
    const next = new IkeSa(sa.ctx, { initiator: false, spiI, spiR, cfg: sa.cfg, local: sa.local, remote: sa.remote, now });
    next.proposal = { ...proposal, spi: Buffer.alloc(0) };
    next.prf = prf;
    next.keys = keys;
    next.sk = skCryptoFor(proposal, keys, false);
    next.nonceI = nonceI;
    next.nonceR = nonceR;
    next.peerId = sa.peerId;
    next.natDetected = sa.natDetected;
    this.next = next;
    this.keData = kex.publicKey;
    this.keGroup = ke.group;
    return 'done';
  }

  buildResponse(out: Payload[]): TaskStatus {
    const sa = this.sa;
    if (this.failNotify !== undefined) {
      out.push(notify(this.failNotify, this.failData));
      return 'done';
    }
    const next = this.next!;
    out.push({ type: PayloadType.SA, proposals: [{ ...next.proposal!, spi: Buffer.from(next.spiR) } as Proposal] } as SaPayload);
    out.push({ type: PayloadType.NONCE, nonce: next.nonceR } as NoncePayload);
    out.push({ type: PayloadType.KE, group: this.keGroup, data: this.keData } as KePayload);
    handOverToRekeyedSa(sa, next, this.host, this.now(), 'rekeyed by the peer');
    return 'done';
  }

  private refuse(notifyType: number, reason: string): TaskStatus {
    this.failWith(notifyType, reason);
    this.sa.log.warn({}, `IKE_SA rekey refused: ${reason}`);
    return 'done';
  }
}

/**
 * The last step of an IKE SA rekey, whoever started it: the CHILD_SAs move to the new SA without
 * touching the data plane (their keys come from their own exchanges, not from SK_d), the new SA is
 * established and indexed, and the old one waits (REKEYED) for its DELETE.
 */
export function handOverToRekeyedSa(old: IkeSa, next: IkeSa, host: IkeRekeyHost, now: number, how: string): void {
  next.children.push(...old.children.splice(0, old.children.length));
  next.state = 'ESTABLISHED';
  next.establishedAtMs = now;
  next.activityMs = now;
  next.lastInboundMs = now;
  old.state = 'REKEYED';
  old.rekeyedAtMs = now;
  host.adopt(next);
  old.log.info(
    { newIke: next.id },
    `IKE_SA ${old.cfg?.name ?? ''}[${old.id}] ${how}: replaced by [${next.id}] with ${proposalToString(next.proposal!)}, ${next.children.length} CHILD_SA(s) moved`,
  );
}
