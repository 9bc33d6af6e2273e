import { ExchangeType, NotifyType, PayloadType, ProtocolId, TransformType } from '../wire/constants.js';
import type { IkeMessage, KePayload, NoncePayload, Payload, Proposal, SaPayload, TsPayload } from '../wire/types.js';
import { createKeyExchange, type KeyExchange } from '../../crypto/dh.js';
import { createPrf } from '../../crypto/prf.js';
import { deriveChildKeys, deriveRekeyedIkeKeys, ikeKeyLengths, skCryptoFor } from '../sa/keymat.js';
import { dhGroupOf, isValidResponseProposal, proposalToString } from '../config/proposal.js';
import { tsToString, tsWithin } from '../config/traffic-selector.js';
import { ChildSa, spiHex, spiToBuffer } from '../sa/child-sa.js';
import { IkeSa, deletePayload, notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findNotify, findPayload, firstErrorNotify } from './task.js';
import { copyProposal, copyTs, installChildSa } from './child-create.js';
import { IkeDeleteTask } from './informational.js';
import { handOverToRekeyedSa, type IkeRekeyHost } from './ike-rekey.js';

// Rekeys WE start (RFC 7296 §1.3.2, §1.3.3, §2.8, §2.17, §2.18; reference §5.9):
//   CHILD: --> SK { N(REKEY_SA, ESP, our old inbound SPI), SA(ESP, new inbound SPI), Ni, [KEi], TSi, TSr }
//          <-- SK { SA, Nr, [KEr], TSi, TSr }  then  --> SK { D(ESP, old inbound SPI) }
//   IKE:   --> SK { SA(IKE, our new SPI), Ni, KEi }  <-- SK { SA(IKE, peer's new SPI), Nr, KEr }
//          then D(IKE) on the old SA; we are the ORIGINAL INITIATOR of the new SA.

/** After TEMPORARY_FAILURE (a collision, §2.25) retry after a random 2–10 s. */
export const REKEY_RETRY_MIN_MS = 2000;
export const REKEY_RETRY_SPAN_MS = 8000;
/** After a refusal (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE, ...) try again this much later (hard expiry may come first). */
export const REKEY_FAILED_RETRY_MS = 30_000;
const MAX_KE_RETRIES = 2;

function randomFraction(sa: IkeSa): number {
  return sa.ctx.random(4).readUInt32BE(0) / 0x1_0000_0000;
}

export function temporaryRetryMs(sa: IkeSa): number {
  return REKEY_RETRY_MIN_MS + Math.floor(randomFraction(sa) * REKEY_RETRY_SPAN_MS);
}

function isDhOffered(proposals: readonly Proposal[], group: number): boolean {
  return proposals.some((p) => p.transforms.some((t) => t.type === TransformType.DH && t.id === group));
}

/** Rekeys one of our CHILD_SAs; on success the old one is deleted with a follow-up INFORMATIONAL. */
export class ChildRekeyInitiator extends TaskBase implements IkeTask {
  readonly type = 'CHILD_REKEY';
  private spiIn = 0;
  private group: number;
  private keRetries = 0;
  private nonceI: Buffer = Buffer.alloc(0);
  private ke: KeyExchange | null = null;
  private offered: Proposal[] = [];

  constructor(private readonly sa: IkeSa, private readonly old: ChildSa, private readonly now: () => number) {
    super();
    this.group = dhGroupOf(old.cfg.espProposals[0]!);
  }

  buildRequest(out: Payload[]): TaskStatus {
    const sa = this.sa;
    const old = this.old;
    if (sa.state !== 'ESTABLISHED' || old.state !== 'INSTALLED' || !sa.children.includes(old)) {
      old.rekeying = false;
      return this.fail(`CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i} is no longer installed here: rekey dropped`);
    }
    if (this.spiIn === 0) this.spiIn = sa.ctx.allocChildSpi();
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

  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const old = this.old;
    const now = this.now();
    const name = `CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i}`;
    const invalidKe = findNotify(msg, NotifyType.INVALID_KE_PAYLOAD);
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
      this.releaseSpi();
      old.rekeying = false;
      sa.log.warn({ child: old.id }, `peer does not know ${name} (CHILD_SA_NOT_FOUND): removing it here`);
      if (sa.children.includes(old)) {
        sa.removeChild(old);
        sa.children.splice(sa.children.indexOf(old), 1);
      }
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
    old.rekeying = false;
    old.retryAtMs = 0;
    old.state = 'REKEYED';
    old.successor = child;
    // reference §5.9 "when we start the rekey": new in+out now, traffic moves at once
    installChildSa(sa, child, proposal, keys, true, now, true);
    sa.log.info({ child: child.id }, `CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i ${spiHex(old.spiOut)}_o} rekeyed: replaced by {${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o}`);
    sa.queueLater(ExchangeType.INFORMATIONAL, [new RekeyedChildDeleteTask(sa, old)]);
    return 'done';
  }

  private releaseSpi(): void {
    if (this.spiIn !== 0) this.sa.ctx.releaseChildSpi(this.spiIn);
    this.spiIn = 0;
  }

  /** The rekey failed, the old child and the IKE SA stay; try again after `waitMs`. */
  private giveUp(now: number, waitMs: number, reason: string, level: 'info' | 'warn' = 'warn'): TaskStatus {
    this.releaseSpi();
    this.old.rekeying = false;
    this.old.retryAtMs = now + waitMs;
    this.sa.log[level]({ child: this.old.id }, reason);
    return 'done';
  }
}

/** D(ESP, old inbound SPI) for a child we rekeyed; on the answer it goes, its inbound lingering (§5.9). */
export class RekeyedChildDeleteTask implements IkeTask {
  readonly type = 'CHILD_DELETE';
  constructor(private readonly sa: IkeSa, private readonly old: ChildSa) {}

  buildRequest(out: Payload[]): TaskStatus {
    out.push(deletePayload(ProtocolId.ESP, [this.old.spiIn]));
    return 'done';
  }

  processResponse(_msg: IkeMessage): TaskStatus {
    const i = this.sa.children.indexOf(this.old);
    if (i >= 0) {
      // REKEYED with an installed successor: removeChild keeps the old inbound SA for a grace period
      this.sa.removeChild(this.old);
      this.sa.children.splice(i, 1);
    }
    return 'done';
  }
}

/** Rekeys the IKE SA: a new IkeSa where we are the original initiator takes the children. */
export class IkeRekeyInitiator extends TaskBase implements IkeTask {
  readonly type = 'IKE_REKEY';
  private newSpi: Buffer | null = null;
  private group: number;
  private keRetries = 0;
  private nonceI: Buffer = Buffer.alloc(0);
  private ke: KeyExchange | null = null;
  private offered: Proposal[] = [];

  constructor(private readonly sa: IkeSa, private readonly host: IkeRekeyHost, private readonly now: () => number) {
    super();
    this.group = sa.proposal ? dhGroupOf(sa.proposal) : 0;
    if (this.group === 0) this.group = dhGroupOf(sa.cfg!.ikeProposals[0]!);
  }

  buildRequest(out: Payload[]): TaskStatus {
    const sa = this.sa;
    if (sa.state !== 'ESTABLISHED') {
      sa.rekeying = false;
      return this.fail(`IKE SA is ${sa.state}: rekey dropped`);
    }
    if (!this.newSpi) this.newSpi = this.host.newIkeSpi();
    this.nonceI = sa.randomNonce();
    this.ke = createKeyExchange(this.group);
    const spi = this.newSpi;
    this.offered = sa.cfg!.ikeProposals.map((p) => ({ ...copyProposal(p as Proposal), spi }));
    out.push({ type: PayloadType.SA, proposals: this.offered } as SaPayload);
    out.push({ type: PayloadType.NONCE, nonce: this.nonceI } as NoncePayload);
    out.push({ type: PayloadType.KE, group: this.group, data: this.ke.publicKey } as KePayload);
    sa.log.info({}, `rekeying IKE_SA ${sa.cfg?.name ?? ''}[${sa.id}]`);
    return 'done';
  }

  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const now = this.now();
    const invalidKe = findNotify(msg, NotifyType.INVALID_KE_PAYLOAD);
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
    sa.rekeying = false;
    handOverToRekeyedSa(sa, next, this.host, now, 'rekeyed');
    sa.queueLater(ExchangeType.INFORMATIONAL, [new IkeDeleteTask(sa, this.now, 'rekeyed, old IKE SA deleted')]);
    return 'done';
  }

  private giveUp(now: number, waitMs: number, reason: string, level: 'info' | 'warn' = 'warn'): TaskStatus {
    this.sa.rekeying = false;
    this.sa.rekeyRetryAtMs = now + waitMs;
    this.sa.log[level]({}, reason);
    return 'done';
  }
}
