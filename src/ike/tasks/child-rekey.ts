import { formatChildSpi } from '../../common/spi.js';
import { ExchangeType, NotifyType, PayloadType, ProtocolId, TransformType } from '../wire/constants.js';
import type { IkeMessage, KePayload, NoncePayload, Payload, Proposal, SaPayload, TsPayload } from '../wire/types.js';
import { createKeyExchange, type KeyExchange } from '../../crypto/dh.js';
import { deriveChildKeys, type ChildKeys } from '../sa/keymat.js';
import { dhGroupOf, isValidResponseProposal, proposalToString, selectProposal } from '../config/proposal.js';
import { narrow, prefixToTs, tsToString, tsWithin } from '../config/traffic-selector.js';
import { ChildSa, spiHex, spiToBuffer, type RekeyCollision } from '../sa/child-sa.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findNotify, findPayload, firstErrorNotify } from './task.js';
import { copyProposal, copyTs, installChildSa } from './child-create.js';
import { ChildDeleteTask } from './child-delete.js';
import { ChildRecreateTask } from './child-recreate.js';
import { ChildResponse } from './child-response.js';
import { MAX_KE_RETRIES, REKEY_FAILED_RETRY_MS, isDhOffered, temporaryRetryMs } from './rekey-retry.js';

// Rekeying a CHILD_SA (RFC 7296 §1.3.3, §2.8, §2.17), both roles, as strongSwan's child_rekey.c:
//   CREATE_CHILD_SA SK { N(REKEY_SA, ESP, old SPI), SA(ESP, new inbound SPI), Ni, [KEi], TSi, TSr } -->
//                   <-- SK { SA, Nr, [KEr], TSi, TSr }
//   then the initiator deletes the old child: INFORMATIONAL SK { D(ESP, old inbound SPI) } -->
//
// Initiator (buildRequest/processResponse): the SPI in N(REKEY_SA) is our old inbound SPI. Once the
// answer comes the new child is installed in and out at once (our traffic moves now) and the old one
// is deleted by a follow-up INFORMATIONAL; its inbound SA lingers a moment for packets in flight.
// TEMPORARY_FAILURE and refusals keep the old child and retry later (rekey-retry.ts);
// INVALID_KE_PAYLOAD (§1.3) retries at once with the group the peer asks for.
//
// Responder (processRequest/buildResponse): the SPI in N(REKEY_SA) is the peer's inbound SPI, our
// old spiOut. Make-before-break: the new inbound SA is live before the peer reads our answer, while
// our traffic moves to the new outbound SA only when the peer deletes the old child (strongSwan
// behaves the same way as responder). A request while the IKE SA is being rekeyed is answered
// TEMPORARY_FAILURE (§2.25), as is one for a child our own completed rekey already replaced (our
// DELETE of it is on the way).
//
// Simultaneous rekeys of one child (RFC 7296 §2.8.1), as strongSwan's child_rekey.c: when the
// peer's request comes while ours is on the wire, both exchanges complete. The responder half
// installs the peer's new child (inbound only, like any child the peer rekeys) and notes it on the
// old child (ChildSa.collision). When our answer comes, the exchange holding the lowest of the four
// nonces made the redundant child, and the node that started that exchange deletes it:
//   - the peer's exchange has the lowest nonce (we won): our new child replaces the old one, which
//     we delete; the peer deletes its child;
//   - ours has it (we lost): we delete our new child; the peer deletes the old one, and that DELETE
//     moves our traffic to the peer's child.
// So each side ends with one new child and the old one is deleted once. A request that comes while
// ours is still queued (not sent) is a plain rekey by the peer: our queued rekey is then dropped.

export type EspChoice =
  | { kind: 'ok'; proposal: Proposal }
  | { kind: 'invalid-ke'; group: number }
  | { kind: 'none' };

/**
 * ESP proposal choice for CREATE_CHILD_SA: with a KE (PFS) the chosen proposal must carry the KE's
 * group, else INVALID_KE_PAYLOAD names the group we would pick; without a KE a proposal that needs a
 * DH group asks for one the same way (RFC 7296 §1.3).
 */
export function chooseEspProposal(offered: readonly Proposal[], configured: readonly Proposal[], keGroup: number): EspChoice {
  const esp = offered.filter((p) => p.protocol === ProtocolId.ESP && p.spi.length === 4);
  if (keGroup !== 0) {
    const onlyKe = esp.map((p) => ({ ...p, transforms: p.transforms.filter((t) => t.type !== TransformType.DH || t.id === keGroup) }));
    const withKe = selectProposal(onlyKe, configured);
    if (withKe && dhGroupOf(withKe) === keGroup) return { kind: 'ok', proposal: withKe };
  }
  const any = selectProposal(esp, configured);
  if (!any) return { kind: 'none' };
  const g = dhGroupOf(any);
  if (g !== keGroup) return g === 0 ? { kind: 'none' } : { kind: 'invalid-ke', group: g };
  return { kind: 'ok', proposal: any };
}

export class ChildRekeyTask extends TaskBase implements IkeTask {
  readonly type = 'CHILD_REKEY';
  /** the child being replaced: given to the initiator, found from N(REKEY_SA) by the responder */
  private old: ChildSa | null;
  private nonceI: Buffer = Buffer.alloc(0);

  // initiator state
  /** our new inbound SPI, allocated once and kept across INVALID_KE retries */
  private spiIn = 0;
  private group = 0;
  private keRetries = 0;
  private ke: KeyExchange | null = null;
  private offered: Proposal[] = [];

  // responder state
  private response: ChildResponse | null = null;
  private failData: Buffer = Buffer.alloc(0);
  private failSpi: Buffer = Buffer.alloc(0);
  /** the peer's request came while our rekey of the same child is on the wire (§2.8.1) */
  private collided = false;

  /**
   * @param old initiator: the installed child to rekey (its DH group comes from the first ESP
   *   proposal: PFS when it has one); omitted when answering the peer's rekey
   */
  constructor(private readonly sa: IkeSa, private readonly now: () => number, old?: ChildSa) {
    super();
    this.old = old ?? null;
    if (old) this.group = dhGroupOf(old.cfg.espProposals[0]!);
  }

  /* CREATE_CHILD_SA request: SK { N(REKEY_SA), SA, Ni, [KEi], TSi, TSr } --> */
  buildRequest(out: Payload[]): TaskStatus {
    const sa = this.sa;
    const old = this.old!;
    if (sa.state !== 'ESTABLISHED' || old.state !== 'INSTALLED' || !sa.children.includes(old)) {
      old.rekeying = false;
      return this.fail(`CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i} is no longer installed here: rekey dropped`);
    }
    if (this.spiIn === 0) this.spiIn = sa.ctx.allocChildSpi();
    old.rekeyInFlight = true;
    this.nonceI = sa.randomNonce();
    this.ke = this.group !== 0 ? createKeyExchange(this.group) : null;
    const spi = spiToBuffer(this.spiIn);
    this.offered = old.cfg.espProposals.map((p) => ({ ...copyProposal(p as Proposal), spi }));
    out.push(notify(NotifyType.REKEY_SA, Buffer.alloc(0), ProtocolId.ESP, spiToBuffer(old.spiIn)));
    out.push({ type: PayloadType.SA, proposals: this.offered } as SaPayload);
    out.push({ type: PayloadType.NONCE, nonce: this.nonceI } as NoncePayload);
    if (this.ke) out.push({ type: PayloadType.KE, group: this.group, data: this.ke.publicKey } as KePayload);
    out.push({ type: PayloadType.TSi, selectors: old.localTs.map(copyTs) } as TsPayload);
    out.push({ type: PayloadType.TSr, selectors: old.remoteTs.map(copyTs) } as TsPayload);
    sa.log.info({ child: old.id }, `rekeying CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i ${spiHex(old.spiOut)}_o}${this.ke ? ` with PFS (DH group ${this.group})` : ''}`);
    return 'done';
  }

  /* <-- CREATE_CHILD_SA response: SK { SA, Nr, [KEr], TSi, TSr } | SK { N(error) } */
  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const old = this.old!;
    const now = this.now();
    const name = `CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i}`;
    old.rekeyInFlight = false;
    const invalidKe = findNotify(msg, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe && old.collision) {
      // the peer's rekey of this child went through meanwhile: it stands, ours is not retried
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, `peer answered INVALID_KE_PAYLOAD to the rekey of ${name}; its own rekey of it stands`, 'info');
    }
    if (invalidKe) {
      const g = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      if (g !== this.group && isDhOffered(old.cfg.espProposals as Proposal[], g) && ++this.keRetries <= MAX_KE_RETRIES) {
        sa.log.info({ group: g }, `peer requested DH group ${g} for the rekey of ${name} (INVALID_KE_PAYLOAD), retrying`);
        this.group = g;
        return 'more';
      }
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, `peer wants DH group ${g} for the rekey of ${name}, which we do not offer`);
    }
    const err = firstErrorNotify(msg);
    if (err === NotifyType.TEMPORARY_FAILURE) {
      const wait = temporaryRetryMs(sa);
      return this.giveUp(now, wait, `peer answered TEMPORARY_FAILURE to the rekey of ${name} (rekey collision?): retrying in ${(wait / 1000).toFixed(1)} s`, 'info');
    }
    if (err === NotifyType.CHILD_SA_NOT_FOUND) {
      // the peer lost the child (e.g. it restarted its IPsec stack but kept the IKE SA): drop ours
      // and create the child anew on the same IKE SA (child-recreate.ts), as strongSwan does
      this.releaseSpi();
      old.rekeying = false;
      // a collided rekey of the peer's already replaced the child: removing it moves our traffic to
      // that successor, and nothing needs creating
      if (this.settleCollision()) {
        sa.log.info({ child: old.id }, `peer does not know ${name} (CHILD_SA_NOT_FOUND): its collided rekey replaced it`);
        if (sa.children.includes(old)) {
          sa.removeChild(old);
          sa.children.splice(sa.children.indexOf(old), 1);
        }
        return 'done';
      }
      sa.log.warn({ child: old.id }, `peer does not know ${name} (CHILD_SA_NOT_FOUND): removing it here and creating it anew`);
      if (sa.children.includes(old)) {
        sa.removeChild(old);
        sa.children.splice(sa.children.indexOf(old), 1);
      }
      sa.queueLater(ExchangeType.CREATE_CHILD_SA, [new ChildRecreateTask(sa, this.now, old.cfg)]);
      return 'done';
    }
    if (err !== undefined) {
      const why = err === NotifyType.NO_PROPOSAL_CHOSEN
        ? `peer accepts none of our ESP proposals (NO_PROPOSAL_CHOSEN); we offered ${old.cfg.espProposals.map(proposalToString).join(', ')}`
        : err === NotifyType.TS_UNACCEPTABLE
          ? `peer refuses our traffic selectors (TS_UNACCEPTABLE) ${old.localTs.map(tsToString).join(',')} === ${old.remoteTs.map(tsToString).join(',')}`
          : `peer answered ${NotifyType[err] ?? err}`;
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, `rekey of ${name} failed, keeping it: ${why}`);
    }
    const saP = findPayload(msg, PayloadType.SA);
    const nonce = findPayload(msg, PayloadType.NONCE);
    const ke = findPayload(msg, PayloadType.KE);
    const tsi = findPayload(msg, PayloadType.TSi);
    const tsr = findPayload(msg, PayloadType.TSr);
    if (!saP || !nonce || !tsi || !tsr) return this.giveUp(now, REKEY_FAILED_RETRY_MS, `rekey of ${name} failed: response lacks SA, Nr or TS`);
    const chosen = saP.proposals[0];
    if (saP.proposals.length !== 1 || !chosen || chosen.spi.length !== 4 || chosen.protocol !== ProtocolId.ESP || !isValidResponseProposal(chosen, this.offered)) {
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, `rekey of ${name} failed: peer chose an ESP proposal we did not offer`);
    }
    if (nonce.nonce.length < 16 || nonce.nonce.length > 256) return this.giveUp(now, REKEY_FAILED_RETRY_MS, `rekey of ${name} failed: bad nonce length`);
    let secret: Buffer | null = null;
    if (this.ke) {
      if (!ke || ke.group !== this.group || dhGroupOf(chosen) !== this.group) {
        return this.giveUp(now, REKEY_FAILED_RETRY_MS, `rekey of ${name} failed: peer's KE does not match DH group ${this.group}`);
      }
      secret = this.ke.computeSecret(ke.data);
      if (!secret) return this.giveUp(now, REKEY_FAILED_RETRY_MS, `rekey of ${name} failed: invalid KE data from peer`);
    } else if (ke || dhGroupOf(chosen) !== 0) {
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, `rekey of ${name} failed: peer answered with a KE we did not send`);
    }
    const localTs = tsi.selectors.map(copyTs);
    const remoteTs = tsr.selectors.map(copyTs);
    if (!localTs.every((t) => tsWithin(t, old.localTs)) || !remoteTs.every((t) => tsWithin(t, old.remoteTs))) {
      secret?.fill(0);
      return this.giveUp(now, REKEY_FAILED_RETRY_MS, `rekey of ${name} failed: peer answered with wider traffic selectors`);
    }
    const proposal = copyProposal(chosen);
    // we sent the request: we are "I", our outbound keys are KEYMAT's first slice (§2.17)
    const keys = deriveChildKeys(sa.prf!, sa.keys!.skD, this.nonceI, nonce.nonce, secret, proposal);
    secret?.fill(0);
    const child = new ChildSa(old.cfg, this.spiIn);
    child.spiOut = chosen.spi.readUInt32BE(0);
    child.localTs = localTs;
    child.remoteTs = remoteTs;
    this.spiIn = 0; // owned by the new child now
    const collision = old.collision;
    if (collision) return this.resolveCollision(old, collision, child, proposal, keys, nonce.nonce, now);
    old.rekeying = false;
    old.retryAtMs = 0;
    old.state = 'REKEYED';
    old.successor = child;
    // we started the rekey: new inbound and outbound SAs now, our traffic moves at once
    installChildSa(sa, child, proposal, keys, true, now, true);
    sa.ctx.onChildRekeyed?.(sa);
    sa.log.info({ child: child.id }, `CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i ${spiHex(old.spiOut)}_o} rekeyed: replaced by {${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o}`);
    sa.queueLater(ExchangeType.INFORMATIONAL, [ChildDeleteTask.afterRekey(sa, old)]);
    return 'done';
  }

  /* --> CREATE_CHILD_SA request: SK { N(REKEY_SA), SA, Ni, [KEi], TSi, TSr } */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const rekey = findNotify(msg, NotifyType.REKEY_SA)!;
    const saP = findPayload(msg, PayloadType.SA);
    const nonce = findPayload(msg, PayloadType.NONCE);
    const ke = findPayload(msg, PayloadType.KE);
    const tsi = findPayload(msg, PayloadType.TSi);
    const tsr = findPayload(msg, PayloadType.TSr);
    if (rekey.spi.length !== 4 || (rekey.protocol !== ProtocolId.ESP && rekey.protocol !== ProtocolId.AH)) {
      return this.refuse(NotifyType.INVALID_SYNTAX, 'REKEY_SA without a 4-byte ESP SPI');
    }
    const theirInbound = rekey.spi.readUInt32BE(0);
    const old = sa.children.find((c) => c.spiOut === theirInbound && c.state === 'INSTALLED')
      ?? sa.children.find((c) => c.spiOut === theirInbound && c.state === 'REKEYED' && c.successor !== null);
    if (!old) {
      this.failSpi = Buffer.from(rekey.spi);
      return this.refuse(NotifyType.CHILD_SA_NOT_FOUND, `peer rekeys unknown CHILD_SA ${formatChildSpi(theirInbound)}`);
    }
    if (sa.rekeying) {
      // our rekey of the IKE SA is under way: the peer retries later (§2.25)
      return this.refuse(NotifyType.TEMPORARY_FAILURE, 'we are rekeying the IKE SA (collision)');
    }
    if (old.state === 'REKEYED' || old.collision) {
      // our rekey of it completed before the peer's request arrived (our DELETE of it follows), or
      // the peer rekeys it a second time while ours is in flight
      return this.refuse(NotifyType.TEMPORARY_FAILURE, `CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i} is being replaced already (collision)`);
    }
    this.collided = old.rekeyInFlight;
    if (!saP || !nonce || !tsi || !tsr) return this.refuse(NotifyType.INVALID_SYNTAX, 'CHILD_SA rekey request lacks SA, Ni or TS');
    if (nonce.nonce.length < 16 || nonce.nonce.length > 256) return this.refuse(NotifyType.INVALID_SYNTAX, 'bad nonce length');
    const cfg = old.cfg;
    const choice = chooseEspProposal(saP.proposals, cfg.espProposals as Proposal[], ke?.group ?? 0);
    if (choice.kind === 'none') {
      return this.refuse(NotifyType.NO_PROPOSAL_CHOSEN,
        `no acceptable ESP proposal for rekeying CHILD_SA ${cfg.name}: peer offered ${saP.proposals.map(proposalToString).join(', ')}; we accept ${cfg.espProposals.map(proposalToString).join(', ')}`);
    }
    if (choice.kind === 'invalid-ke') {
      this.failData = Buffer.alloc(2);
      this.failData.writeUInt16BE(choice.group, 0);
      return this.refuse(NotifyType.INVALID_KE_PAYLOAD, `peer sent KE for group ${ke?.group ?? 'none'} in a CHILD_SA rekey, requesting group ${choice.group}`);
    }
    const remoteTs = narrow(tsi.selectors, cfg.remoteTs.map((p) => prefixToTs(p)));
    const localTs = narrow(tsr.selectors, cfg.localTs.map((p) => prefixToTs(p)));
    if (remoteTs.length === 0 || localTs.length === 0) {
      return this.refuse(NotifyType.TS_UNACCEPTABLE, `traffic selectors unacceptable in CHILD_SA rekey: peer proposed ${tsi.selectors.map(tsToString).join(',')} === ${tsr.selectors.map(tsToString).join(',')}`);
    }
    const r = ChildResponse.accept(sa, cfg, choice.proposal, localTs, remoteTs, nonce.nonce, ke);
    if (typeof r === 'string') return this.refuse(NotifyType.INVALID_SYNTAX, r);
    this.response = r;
    this.old = old;
    return 'done';
  }

  /* <-- CREATE_CHILD_SA response: SK { SA, Nr, [KEr], TSi, TSr } | SK { N(error) } */
  buildResponse(out: Payload[]): TaskStatus {
    const sa = this.sa;
    if (this.failNotify !== undefined) {
      out.push(notify(this.failNotify, this.failData, this.failSpi.length ? ProtocolId.ESP : 0, this.failSpi));
      return 'done';
    }
    const r = this.response!;
    const child = r.child;
    const old = this.old!;
    const p = child.proposal!;
    r.build(out);
    const keys = r.keys(sa);
    if (this.collided) {
      // RFC 7296 §2.8.1: our own rekey of this child is on the wire; our answer decides (resolveCollision)
      old.collision = { child, nonceI: r.nonceI, nonceR: r.nonceR };
      old.successor = child;
      installChildSa(sa, child, p, keys, false, this.now(), false);
      sa.ctx.onChildRekeyed?.(sa);
      sa.log.info({ child: child.id }, `CHILD_SA rekey collision: the peer rekeyed ${old.cfg.name}{${spiHex(old.spiIn)}_i ${spiHex(old.spiOut)}_o} `
        + `while our rekey of it is in flight: installed its {${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o}, the nonces decide which stays`);
      return 'done';
    }
    old.state = 'REKEYED';
    old.successor = child;
    // make-before-break: the new inbound SA is live before the peer reads our response; our traffic
    // moves to the new outbound SA only when the peer deletes the old one
    installChildSa(sa, child, p, keys, false, this.now(), false);
    sa.ctx.onChildRekeyed?.(sa);
    sa.log.info({ child: child.id }, `CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i ${spiHex(old.spiOut)}_o} rekeyed by the peer: replaced by {${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o}`);
    return 'done';
  }

  /**
   * Initiator, our answer came and the peer rekeyed the same child meanwhile (RFC 7296 §2.8.1):
   * the exchange with the lowest of the four nonces created the redundant child, and whoever
   * started that exchange deletes it; the other side deletes the old child.
   */
  private resolveCollision(
    old: ChildSa, collision: RekeyCollision, child: ChildSa, proposal: Proposal, keys: ChildKeys, nonceR: Buffer, now: number,
  ): TaskStatus {
    const sa = this.sa;
    old.rekeying = false;
    old.retryAtMs = 0;
    old.collision = null;
    const oldHere = old.state === 'INSTALLED' && sa.children.includes(old);
    const ours = lowerNonce(this.nonceI, nonceR);
    const theirs = lowerNonce(collision.nonceI, collision.nonceR);
    const peerChild = collision.child;
    const ids = (c: ChildSa) => `{${spiHex(c.spiIn)}_i ${spiHex(c.spiOut)}_o}`;
    if (Buffer.compare(ours, theirs) > 0) {
      // won: the peer's child is redundant and the peer deletes it; ours replaces the old child
      installChildSa(sa, child, proposal, keys, true, now, true);
      sa.log.info({ child: child.id }, `CHILD_SA rekey collision won: ${old.cfg.name}${ids(child)} replaces ${ids(old)}, `
        + `the peer deletes its redundant ${ids(peerChild)}`);
      if (oldHere) {
        old.state = 'REKEYED';
        old.successor = child;
        sa.queueLater(ExchangeType.INFORMATIONAL, [ChildDeleteTask.afterRekey(sa, old)]);
      }
      return 'done';
    }
    // lost: our child is redundant; the peer deletes the old child, which moves our traffic to its child
    installChildSa(sa, child, proposal, keys, true, now, false);
    if (oldHere) {
      old.state = 'REKEYED';
      old.successor = peerChild;
    }
    sa.log.info({ child: child.id }, `CHILD_SA rekey collision lost: deleting our redundant ${old.cfg.name}${ids(child)}; `
      + `the peer's ${ids(peerChild)} replaces ${ids(old)}`);
    sa.queueLater(ExchangeType.INFORMATIONAL, [new ChildDeleteTask(sa, child.spiIn)]);
    return 'done';
  }

  /**
   * Our rekey failed after the peer's collided rekey of the same child went through: the peer's
   * child is the successor, the old one waits for the peer's DELETE. False when there was none.
   */
  private settleCollision(): boolean {
    const old = this.old!;
    const collision = old.collision;
    if (!collision) return false;
    old.collision = null;
    old.successor = collision.child;
    if (old.state === 'INSTALLED') old.state = 'REKEYED';
    return true;
  }

  private releaseSpi(): void {
    if (this.spiIn !== 0) this.sa.ctx.releaseChildSpi(this.spiIn);
    this.spiIn = 0;
  }

  /** Initiator: the rekey failed, the old child and the IKE SA stay; try again after `waitMs`. */
  private giveUp(now: number, waitMs: number, reason: string, level: 'info' | 'warn' = 'warn'): TaskStatus {
    const old = this.old!;
    this.releaseSpi();
    old.rekeying = false;
    if (this.settleCollision()) {
      this.sa.log.info({ child: old.id }, `${reason}; the peer's collided rekey of it stands`);
      return 'done';
    }
    old.retryAtMs = now + waitMs;
    this.sa.log[level]({ child: old.id }, reason);
    return 'done';
  }

  /** Responder: a refused rekey keeps the IKE SA and the old child: answer with the notify, nothing else. */
  private refuse(notifyType: number, reason: string): TaskStatus {
    this.failWith(notifyType, reason);
    this.sa.log.warn({}, `CHILD_SA rekey refused: ${reason}`);
    return 'done';
  }
}

/** The lower of an exchange's two nonces (RFC 7296 §2.8.1 compares the lowest of the four). */
export function lowerNonce(a: Buffer, b: Buffer): Buffer {
  return Buffer.compare(a, b) <= 0 ? a : b;
}
