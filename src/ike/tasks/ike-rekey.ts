import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, KePayload, NoncePayload, Payload, Proposal, SaPayload } from '../wire/types.js';
import { createKeyExchange, isSupportedDhGroup, type KeyExchange } from '../../crypto/dh.js';
import { createPrf } from '../../crypto/prf.js';
import { deriveRekeyedIkeKeys, ikeKeyLengths, skCryptoFor } from '../sa/keymat.js';
import { dhGroupOf, isValidResponseProposal, proposalToString } from '../config/proposal.js';
import { IkeSa, notify, type IkeRekeyCollision } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findNotify, findPayload, firstErrorNotify } from './task.js';
import { chooseIkeProposal } from './ike-init.js';
import { copyProposal } from './child-create.js';
import { IkeDeleteTask } from './ike-delete.js';
import { MAX_KE_RETRIES, REKEY_FAILED_RETRY_MS, isDhOffered, temporaryRetryMs } from './rekey-retry.js';
import { lowerNonce } from './child-rekey.js';

// Rekeying the IKE SA (RFC 7296 §1.3.2, §2.18), both roles, as strongSwan's ike_rekey.c:
//   CREATE_CHILD_SA SK { SA(IKE, SPI = initiator's new SPI), Ni, KEi } -->
//                   <-- SK { SA(IKE, SPI = responder's new SPI), Nr, KEr }   (old SA's keys and message IDs)
//   then the initiator deletes the old SA: INFORMATIONAL SK { D(IKE) } -->
// Whoever sends the request becomes the ORIGINAL INITIATOR of the new SA (its SPI is SPIi'), whatever
// its role in the old one. Every CHILD_SA moves to the new SA (handOverToRekeyedSa); the old one
// waits (REKEYED, no children) for the DELETE.
//
// Initiator (buildRequest/processResponse): TEMPORARY_FAILURE (a collision, §2.25) and refusals keep
// the IKE SA and retry later (rekey-retry.ts); INVALID_KE_PAYLOAD (§1.3) retries at once.
// Responder (processRequest/buildResponse): a request while we rekey one of its children ourselves,
// while our own IKE rekey is queued but not sent yet, or a second one while a collision is pending,
// is answered TEMPORARY_FAILURE (§2.25), as is one on an SA that is no longer ESTABLISHED (our own
// rekey of it completed first, or it is being deleted).
//
// Simultaneous IKE SA rekeys (RFC 7296 §2.8.1, last part), as strongSwan's ike_rekey.c: when the
// peer's request comes while ours is on the wire, both exchanges complete. The responder half
// builds the peer's new SA and keeps it aside (REKEYED, no children) with its nonces on the old SA
// (IkeSa.ikeCollision). When our answer comes, the exchange holding the lowest of the four nonces
// made the redundant SA, and the node that started that exchange deletes it:
//   - the peer's exchange has the lowest nonce (we won): our new SA inherits the CHILD_SAs and we
//     delete the old SA; the peer deletes its redundant SA (kept REKEYED here until then);
//   - ours has it (we lost): the peer's SA inherits the CHILD_SAs, we delete our new SA, and the
//     old one waits (REKEYED) for the peer's DELETE.
// A peer that settled first sends its DELETE of the old SA before our answer is in: the old SA
// takes it only from a retransmission after our answer (ike-sa.ts receive), so our redundant SA
// can still be deleted on the wire rather than left to time out at the peer.

/** What the manager lends the task: a fresh unique IKE SPI, and registering the new SA. */
export interface IkeRekeyHost {
  newIkeSpi(): Buffer;
  /**
   * Indexes `sa` by its SPI and gives it the responder tasks (calling it again for the same SA is
   * harmless); `countAsRekey` false for an SA that may turn out redundant in a collision.
   */
  adopt(sa: IkeSa, countAsRekey?: boolean): void;
}

export class IkeRekeyTask extends TaskBase implements IkeTask {
  readonly type = 'IKE_REKEY';

  // initiator state
  /** our SPI for the new SA, allocated once and kept across INVALID_KE retries */
  private newSpi: Buffer | null = null;
  private group = 0;
  private keRetries = 0;
  private nonceI: Buffer = Buffer.alloc(0);
  private ke: KeyExchange | null = null;
  private offered: Proposal[] = [];

  // responder state
  private next: IkeSa | null = null;
  private keData: Buffer = Buffer.alloc(0);
  private keGroup = 0;
  private failData: Buffer = Buffer.alloc(0);
  /** the peer's request came while our rekey of this IKE SA is on the wire (§2.8.1) */
  private collided = false;

  /** The same task object serves either role: the IKE SA calls the initiator's or the responder's pair. */
  constructor(private readonly sa: IkeSa, private readonly host: IkeRekeyHost, private readonly now: () => number) {
    super();
  }

  /* CREATE_CHILD_SA request: SK { SA(IKE), Ni, KEi } --> */
  buildRequest(out: Payload[]): TaskStatus {
    const sa = this.sa;
    if (sa.state !== 'ESTABLISHED') {
      sa.rekeying = false;
      return this.fail(`IKE SA is ${sa.state}: rekey dropped`);
    }
    if (this.group === 0) {
      // the group of the current IKE SA, else of our first proposal
      this.group = sa.proposal ? dhGroupOf(sa.proposal) : 0;
      if (this.group === 0) this.group = dhGroupOf(sa.cfg!.ikeProposals[0]!);
    }
    if (!this.newSpi) this.newSpi = this.host.newIkeSpi();
    this.nonceI = sa.randomNonce();
    this.ke = createKeyExchange(this.group);
    const spi = this.newSpi;
    this.offered = sa.cfg!.ikeProposals.map((p) => ({ ...copyProposal(p as Proposal), spi }));
    out.push({ type: PayloadType.SA, proposals: this.offered } as SaPayload);
    out.push({ type: PayloadType.NONCE, nonce: this.nonceI } as NoncePayload);
    out.push({ type: PayloadType.KE, group: this.group, data: this.ke.publicKey } as KePayload);
    sa.rekeyInFlight = true;
    sa.log.info({}, `rekeying IKE_SA ${sa.cfg?.name ?? ''}[${sa.id}]`);
    return 'done';
  }

  /* <-- CREATE_CHILD_SA response: SK { SA(IKE), Nr, KEr } | SK { N(error) } */
  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const now = this.now();
    sa.rekeyInFlight = false;
    const invalidKe = findNotify(msg, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe && sa.ikeCollision) {
      // the peer's rekey of this IKE SA went through meanwhile: it stands, ours is not retried
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, 'peer answered INVALID_KE_PAYLOAD to our IKE rekey', 'info');
    }
    if (invalidKe) {
      const g = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      if (g !== this.group && isDhOffered(sa.cfg!.ikeProposals as Proposal[], g) && ++this.keRetries <= MAX_KE_RETRIES) {
        sa.log.info({ group: g }, `peer requested DH group ${g} for the IKE rekey (INVALID_KE_PAYLOAD), retrying`);
        this.group = g;
        return 'more';
      }
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, `peer wants DH group ${g} for the IKE rekey, which we do not offer`);
    }
    const err = firstErrorNotify(msg);
    if (err === NotifyType.TEMPORARY_FAILURE) {
      const wait = temporaryRetryMs(sa);
      return this.giveUp(now, wait, `peer answered TEMPORARY_FAILURE to our IKE rekey (rekey collision?): retrying in ${(wait / 1000).toFixed(1)} s`, 'info');
    }
    if (err !== undefined) {
      const why = err === NotifyType.NO_PROPOSAL_CHOSEN
        ? `peer accepts none of our IKE proposals (NO_PROPOSAL_CHOSEN); we offered ${sa.cfg!.ikeProposals.map(proposalToString).join(', ')}`
        : `peer answered ${NotifyType[err] ?? err}`;
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, `IKE rekey failed, keeping the IKE SA: ${why}`);
    }
    const saP = findPayload(msg, PayloadType.SA);
    const nonce = findPayload(msg, PayloadType.NONCE);
    const ke = findPayload(msg, PayloadType.KE);
    if (!saP || !nonce || !ke) return this.giveUp(now, REKEY_FAILED_RETRY_MS, 'IKE rekey failed: response lacks SA, Nr or KEr');
    const chosen = saP.proposals[0];
    if (saP.proposals.length !== 1 || !chosen || chosen.protocol !== ProtocolId.IKE || chosen.spi.length !== 8 || !isValidResponseProposal(chosen, this.offered)) {
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, 'IKE rekey failed: peer chose a proposal we did not offer');
    }
    if (ke.group !== this.group || dhGroupOf(chosen) !== this.group) return this.giveUp(now, REKEY_FAILED_RETRY_MS, `IKE rekey failed: peer's KE group ${ke.group} does not match`);
    if (nonce.nonce.length < 16 || nonce.nonce.length > 256) return this.giveUp(now, REKEY_FAILED_RETRY_MS, 'IKE rekey failed: bad nonce length');
    const secret = this.ke!.computeSecret(ke.data);
    if (!secret) return this.giveUp(now, REKEY_FAILED_RETRY_MS, 'IKE rekey failed: invalid KE data from peer');
    const proposal = copyProposal(chosen);
    const spiI = this.newSpi!; // ours: we started the rekey, so we are the new SA's original initiator (§2.18)
    const spiR = Buffer.from(chosen.spi);
    const nonceR = Buffer.from(nonce.nonce);
    const lens = ikeKeyLengths(proposal);
    const prf = createPrf(lens.prfId);
    const keys = deriveRekeyedIkeKeys(prf, sa.keys!.skD, secret, this.nonceI, nonceR, spiI, spiR, lens.encrKeyLen, lens.integKeyLen);
    secret.fill(0);
    const next = new IkeSa(sa.ctx, { initiator: true, spiI, spiR, cfg: sa.cfg, local: sa.local, remote: sa.remote, now });
    next.proposal = { ...proposal, spi: Buffer.alloc(0) };
    next.prf = prf;
    next.keys = keys;
    next.sk = skCryptoFor(proposal, keys, true);
    next.nonceI = this.nonceI;
    next.nonceR = nonceR;
    next.peerId = sa.peerId;
    next.natDetected = sa.natDetected;
    next.natFaked = sa.natFaked;
    next.peerBehindNat = sa.peerBehindNat;
    next.weBehindNat = sa.weBehindNat;
    next.fragmentation = sa.fragmentation; // RFC 7383 §2.3: negotiated once, kept by the rekeyed SA
    sa.rekeying = false;
    const collision = sa.ikeCollision;
    if (collision) return this.resolveCollision(next, collision, nonceR, now);
    handOverToRekeyedSa(sa, next, this.host, now, 'rekeyed');
    sa.queueLater(ExchangeType.INFORMATIONAL, [new IkeDeleteTask(sa, this.now, 'rekeyed, old IKE SA deleted')]);
    return 'done';
  }

  /**
   * Initiator, our answer came and the peer rekeyed this IKE SA meanwhile (RFC 7296 §2.8.1): the
   * exchange with the lowest of the four nonces created the redundant SA, and whoever started that
   * exchange deletes it; the other side deletes the old SA.
   */
  private resolveCollision(ours: IkeSa, collision: IkeRekeyCollision, nonceR: Buffer, now: number): TaskStatus {
    const sa = this.sa;
    sa.ikeCollision = null;
    const theirs = collision.next;
    const name = sa.cfg?.name ?? '';
    // a peer that lost has deleted its SA already: ours is the only one left
    const won = theirs.state === 'DEAD'
      || Buffer.compare(lowerNonce(this.nonceI, nonceR), lowerNonce(collision.nonceI, collision.nonceR)) > 0;
    if (won) {
      sa.log.info({ newIke: ours.id, redundant: theirs.id },
        `IKE_SA rekey collision won: ${name}[${ours.id}] replaces [${sa.id}], the peer deletes its redundant [${theirs.id}]`);
      if (theirs.state !== 'DEAD') theirs.rekeyedAtMs = now; // dropped after REKEYED_IKE_SA_TIMEOUT_MS if no DELETE comes
      handOverToRekeyedSa(sa, ours, this.host, now, 'rekeyed');
      sa.queueLater(ExchangeType.INFORMATIONAL, [new IkeDeleteTask(sa, this.now, 'rekeyed, old IKE SA deleted')]);
      return 'done';
    }
    // lost: our SA is redundant and deleted on the wire; the peer's inherits the children and the
    // peer deletes the old one
    sa.log.info({ newIke: theirs.id, redundant: ours.id },
      `IKE_SA rekey collision lost: deleting our redundant ${name}[${ours.id}]; the peer's [${theirs.id}] replaces [${sa.id}]`);
    ours.state = 'REKEYED';
    ours.rekeyedAtMs = now;
    this.host.adopt(ours, false);
    for (const a of ours.queueExchange(ExchangeType.INFORMATIONAL, [new IkeDeleteTask(ours, this.now, 'redundant IKE SA of a rekey collision deleted')], now)) sa.emit(a);
    handOverToRekeyedSa(sa, theirs, this.host, now, 'rekeyed by the peer (collision)');
    return 'done';
  }

  /** Initiator: the rekey failed, the IKE SA stays; try again after `waitMs`. */
  private giveUp(now: number, waitMs: number, reason: string, level: 'info' | 'warn' = 'warn'): TaskStatus {
    const sa = this.sa;
    sa.rekeying = false;
    const collision = sa.ikeCollision;
    if (collision) {
      // the peer's collided rekey completed: its SA replaces this one, whose DELETE the peer sends
      sa.ikeCollision = null;
      sa.log.info({}, `${reason}; the peer's collided rekey of it stands`);
      if (collision.next.state !== 'DEAD' && sa.state === 'ESTABLISHED') handOverToRekeyedSa(sa, collision.next, this.host, now, 'rekeyed by the peer (collision)');
      return 'done';
    }
    sa.rekeyRetryAtMs = now + waitMs;
    sa.log[level]({}, reason);
    return 'done';
  }

  /* --> CREATE_CHILD_SA request: SK { SA(IKE), Ni, KEi } */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const saP = findPayload(msg, PayloadType.SA)!;
    const nonce = findPayload(msg, PayloadType.NONCE);
    const ke = findPayload(msg, PayloadType.KE);
    if (sa.state !== 'ESTABLISHED') {
      // being deleted or already rekeyed: the peer retries later (§2.25)
      return this.refuse(NotifyType.TEMPORARY_FAILURE, `IKE SA is ${sa.state}`);
    }
    // our own IKE rekey on the wire: both complete and the nonces decide (§2.8.1, resolveCollision)
    this.collided = sa.rekeyInFlight && sa.ikeCollision === null;
    if ((sa.rekeying && !this.collided) || sa.children.some((c) => c.rekeying)) {
      // our own rekey (of a child, or of the IKE SA not sent yet, or the peer rekeys a second time
      // while ours is in flight) is under way: the peer retries later (§2.25)
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
    next.natFaked = sa.natFaked;
    next.peerBehindNat = sa.peerBehindNat;
    next.weBehindNat = sa.weBehindNat;
    next.fragmentation = sa.fragmentation; // RFC 7383 §2.3: negotiated once, kept by the rekeyed SA
    this.next = next;
    this.keData = kex.publicKey;
    this.keGroup = ke.group;
    return 'done';
  }

  /* <-- CREATE_CHILD_SA response: SK { SA(IKE), Nr, KEr } | SK { N(error) } */
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
    if (this.collided) {
      // RFC 7296 §2.8.1: our own rekey of this IKE SA is on the wire; our answer decides which new
      // SA stays (resolveCollision). Until then the peer's is indexed (its DELETE may come) but idle.
      const now = this.now();
      next.state = 'REKEYED';
      next.rekeyedAtMs = now;
      sa.ikeCollision = { next, nonceI: next.nonceI, nonceR: next.nonceR };
      this.host.adopt(next, false);
      sa.log.info({ newIke: next.id }, `IKE_SA rekey collision: the peer rekeyed ${sa.cfg?.name ?? ''}[${sa.id}] while our rekey of it is in flight: `
        + `answered with [${next.id}], the nonces decide which stays`);
      return 'done';
    }
    handOverToRekeyedSa(sa, next, this.host, this.now(), 'rekeyed by the peer');
    return 'done';
  }

  /** Responder: a refused rekey keeps the IKE SA: answer with the notify, nothing else. */
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
