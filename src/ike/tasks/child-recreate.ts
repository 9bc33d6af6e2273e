import { NotifyType, PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, KePayload, NoncePayload, Payload, Proposal, SaPayload, TrafficSelector, TsPayload } from '../wire/types.js';
import { createKeyExchange, type KeyExchange } from '../../crypto/dh.js';
import { deriveChildKeys } from '../sa/keymat.js';
import { dhGroupOf, isValidResponseProposal, proposalToString } from '../config/proposal.js';
import { narrow, prefixToTs, tsToString, tsWithin } from '../config/traffic-selector.js';
import type { ChildConfig } from '../config/peer-config.js';
import { ChildSa, spiToBuffer } from '../sa/child-sa.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findNotify, findPayload, firstErrorNotify } from './task.js';
import { copyProposal, copyTs, installChildSa } from './child-create.js';
import { chooseEspProposal } from './child-rekey.js';
import { ChildResponse } from './child-response.js';
import { MAX_KE_RETRIES, isDhOffered } from './rekey-retry.js';

// A fresh CHILD_SA on an established IKE SA (RFC 7296 §1.3.1), both roles: a connection's second and
// later children, or one whose child is gone while the IKE SA lives (the peer answered our rekey
// with CHILD_SA_NOT_FOUND: it lost the child, §2.25 / §3.10.1), built as strongSwan's child_create.c would:
//   CREATE_CHILD_SA SK { SA(ESP, our inbound SPI), Ni, [KEi], TSi, TSr } -->
//                   <-- SK { SA, Nr, [KEr], TSi, TSr }
// KEYMAT comes from SK_d and the exchange's own nonces (§2.17), with the DH secret when the ESP
// proposal carries a group (PFS). The initiator also uses it for a connection's further children
// right after IKE_AUTH (§1.3.1). As responder we pick the child config by traffic selectors (§2.9)
// and accept a request only for one that has no installed CHILD_SA here (a further child, or the
// peer replacing one it lost); TS that fit no child config are answered TS_UNACCEPTABLE, an
// additional child beside an installed one NO_ADDITIONAL_SAS (§1.3); the IKE SA stays either way.

export class ChildRecreateTask extends TaskBase implements IkeTask {
  readonly type = 'CHILD_CREATE';
  private nonceI: Buffer = Buffer.alloc(0);
  // initiator state
  private spiIn = 0;
  private group = 0;
  private keRetries = 0;
  private ke: KeyExchange | null = null;
  private offered: Proposal[] = [];
  // responder state
  private response: ChildResponse | null = null;
  private failData: Buffer = Buffer.alloc(0);

  /**
   * `cfg`: the child config to create (initiator); absent for the responder. `additional`: a further
   * child of a new IKE SA rather than one created anew (only the log line differs).
   */
  constructor(private readonly sa: IkeSa, private readonly now: () => number, private readonly cfg?: ChildConfig, private readonly additional = false) {
    super();
    if (cfg) this.group = dhGroupOf(cfg.espProposals[0]!);
  }

  /* CREATE_CHILD_SA request: SK { SA, Ni, [KEi], TSi, TSr } --> */
  buildRequest(out: Payload[]): TaskStatus {
    const sa = this.sa;
    const cfg = this.cfg!;
    if (sa.state !== 'ESTABLISHED') return this.fail(`IKE SA not established: CHILD_SA ${cfg.name} not created`);
    if (sa.children.some((c) => c.cfg === cfg && c.state === 'INSTALLED')) return this.fail(`CHILD_SA ${cfg.name} exists again: nothing to create`);
    if (this.spiIn === 0) this.spiIn = sa.ctx.allocChildSpi();
    this.nonceI = sa.randomNonce();
    this.ke = this.group !== 0 ? createKeyExchange(this.group) : null;
    const spi = spiToBuffer(this.spiIn);
    this.offered = cfg.espProposals.map((p) => ({ ...copyProposal(p as Proposal), spi }));
    out.push({ type: PayloadType.SA, proposals: this.offered } as SaPayload);
    out.push({ type: PayloadType.NONCE, nonce: this.nonceI } as NoncePayload);
    if (this.ke) out.push({ type: PayloadType.KE, group: this.group, data: this.ke.publicKey } as KePayload);
    out.push({ type: PayloadType.TSi, selectors: cfg.localTs.map((p) => prefixToTs(p)) } as TsPayload);
    out.push({ type: PayloadType.TSr, selectors: cfg.remoteTs.map((p) => prefixToTs(p)) } as TsPayload);
    sa.log.info({}, `creating CHILD_SA ${cfg.name}${this.additional ? '' : ' anew'}${this.ke ? ` with PFS (DH group ${this.group})` : ''}`);
    return 'done';
  }

  /* <-- CREATE_CHILD_SA response: SK { SA, Nr, [KEr], TSi, TSr } | SK { N(error) } */
  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const cfg = this.cfg!;
    const invalidKe = findNotify(msg, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe) {
      const g = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      if (g !== this.group && isDhOffered(cfg.espProposals as Proposal[], g) && ++this.keRetries <= MAX_KE_RETRIES) {
        sa.log.info({ group: g }, `peer requested DH group ${g} for CHILD_SA ${cfg.name} (INVALID_KE_PAYLOAD), retrying`);
        this.group = g;
        return 'more';
      }
      return this.giveUp(`peer wants DH group ${g}, which we do not offer`);
    }
    const err = firstErrorNotify(msg);
    if (err !== undefined) return this.giveUp(`peer answered ${NotifyType[err] ?? err}`);
    const saP = findPayload(msg, PayloadType.SA);
    const nonce = findPayload(msg, PayloadType.NONCE);
    const ke = findPayload(msg, PayloadType.KE);
    const tsi = findPayload(msg, PayloadType.TSi);
    const tsr = findPayload(msg, PayloadType.TSr);
    if (!saP || !nonce || !tsi || !tsr) return this.giveUp('response lacks SA, Nr or TS');
    const chosen = saP.proposals[0];
    if (saP.proposals.length !== 1 || !chosen || chosen.spi.length !== 4 || chosen.protocol !== ProtocolId.ESP || !isValidResponseProposal(chosen, this.offered)) {
      return this.giveUp('peer chose an ESP proposal we did not offer');
    }
    if (nonce.nonce.length < 16 || nonce.nonce.length > 256) return this.giveUp('bad nonce length');
    let secret: Buffer | null = null;
    if (this.ke) {
      if (!ke || ke.group !== this.group || dhGroupOf(chosen) !== this.group) return this.giveUp(`peer's KE does not match DH group ${this.group}`);
      secret = this.ke.computeSecret(ke.data);
      if (!secret) return this.giveUp('invalid KE data from peer');
    } else if (ke || dhGroupOf(chosen) !== 0) {
      return this.giveUp('peer answered with a KE we did not send');
    }
    const proposedLocal = cfg.localTs.map((p) => prefixToTs(p));
    const proposedRemote = cfg.remoteTs.map((p) => prefixToTs(p));
    const localTs = tsi.selectors.map(copyTs);
    const remoteTs = tsr.selectors.map(copyTs);
    // the initiator accepts narrowing but never widening (RFC 7296 §2.9)
    if (!localTs.every((t) => tsWithin(t, proposedLocal)) || !remoteTs.every((t) => tsWithin(t, proposedRemote))) {
      secret?.fill(0);
      return this.giveUp('peer answered with wider traffic selectors');
    }
    const proposal = copyProposal(chosen);
    // we sent the request: we are "I", our outbound keys are KEYMAT's first slice (§2.17)
    const keys = deriveChildKeys(sa.prf!, sa.keys!.skD, this.nonceI, nonce.nonce, secret, proposal);
    secret?.fill(0);
    const child = new ChildSa(cfg, this.spiIn);
    this.spiIn = 0; // owned by the child now
    child.spiOut = chosen.spi.readUInt32BE(0);
    child.localTs = localTs;
    child.remoteTs = remoteTs;
    installChildSa(sa, child, proposal, keys, true, this.now(), true);
    return 'done';
  }

  /* --> CREATE_CHILD_SA request (no REKEY_SA): SK { SA, Ni, [KEi], TSi, TSr } */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const saP = findPayload(msg, PayloadType.SA);
    const nonce = findPayload(msg, PayloadType.NONCE);
    const ke = findPayload(msg, PayloadType.KE);
    const tsi = findPayload(msg, PayloadType.TSi);
    const tsr = findPayload(msg, PayloadType.TSr);
    if (!saP || !nonce || !tsi || !tsr) return this.refuse(NotifyType.INVALID_SYNTAX, 'CREATE_CHILD_SA request lacks SA, Ni or TS');
    if (nonce.nonce.length < 16 || nonce.nonce.length > 256) return this.refuse(NotifyType.INVALID_SYNTAX, 'bad nonce length');
    // pick the child config by traffic selectors (RFC 7296 §2.9): one whose TS the proposal narrows
    // to something non-empty; none fits: TS_UNACCEPTABLE
    const configs = sa.cfg?.children ?? [];
    const fits = configs.filter((c) => childFits(c, tsi.selectors, tsr.selectors));
    if (fits.length === 0) {
      return this.refuse(NotifyType.TS_UNACCEPTABLE,
        `traffic selectors unacceptable in CREATE_CHILD_SA: peer proposed ${tsi.selectors.map(tsToString).join(',')} === ${tsr.selectors.map(tsToString).join(',')}; `
          + `we allow ${configs.map((c) => `${c.name}: ${c.remoteTs.map((p) => tsToString(prefixToTs(p))).join(',')} === ${c.localTs.map((p) => tsToString(prefixToTs(p))).join(',')}`).join('; ')}`);
    }
    const missing = fits.filter((c) => !sa.children.some((x) => x.cfg === c && (x.state === 'INSTALLED' || x.state === 'REKEYED')));
    if (missing.length === 0) {
      return this.refuse(NotifyType.NO_ADDITIONAL_SAS, `the peer asks for an additional CHILD_SA beside the installed ${fits.map((c) => c.name).join(', ')}; one per child config is supported`);
    }
    if (sa.rekeying) return this.refuse(NotifyType.TEMPORARY_FAILURE, 'we are rekeying the IKE SA');
    let sawProposal = false;
    for (const cfg of missing) {
      const choice = chooseEspProposal(saP.proposals, cfg.espProposals as Proposal[], ke?.group ?? 0);
      if (choice.kind === 'none') continue;
      sawProposal = true;
      if (choice.kind === 'invalid-ke') {
        this.failData = Buffer.alloc(2);
        this.failData.writeUInt16BE(choice.group, 0);
        return this.refuse(NotifyType.INVALID_KE_PAYLOAD, `peer sent KE for group ${ke?.group ?? 'none'} in CREATE_CHILD_SA, requesting group ${choice.group}`);
      }
      const remoteTs = narrow(tsi.selectors, cfg.remoteTs.map((p) => prefixToTs(p)));
      const localTs = narrow(tsr.selectors, cfg.localTs.map((p) => prefixToTs(p)));
      if (remoteTs.length === 0 || localTs.length === 0) continue;
      const r = ChildResponse.accept(sa, cfg, choice.proposal, localTs, remoteTs, nonce.nonce, ke);
      if (typeof r === 'string') return this.refuse(NotifyType.INVALID_SYNTAX, r);
      this.response = r;
      return 'done';
    }
    if (!sawProposal) {
      return this.refuse(NotifyType.NO_PROPOSAL_CHOSEN,
        `no acceptable ESP proposal in CREATE_CHILD_SA: peer offered ${saP.proposals.map(proposalToString).join(', ')}; we accept ${missing.flatMap((c) => c.espProposals.map(proposalToString)).join(', ')}`);
    }
    return this.refuse(NotifyType.TS_UNACCEPTABLE,
      `traffic selectors unacceptable in CREATE_CHILD_SA: peer proposed ${tsi.selectors.map(tsToString).join(',')} === ${tsr.selectors.map(tsToString).join(',')}`);
  }

  /* <-- CREATE_CHILD_SA response: SK { SA, Nr, [KEr], TSi, TSr } | SK { N(error) } */
  buildResponse(out: Payload[]): TaskStatus {
    const sa = this.sa;
    if (this.failNotify !== undefined) {
      out.push(notify(this.failNotify, this.failData));
      return 'done';
    }
    const r = this.response!;
    r.build(out);
    installChildSa(sa, r.child, r.child.proposal!, r.keys(sa), false, this.now(), true);
    return 'done';
  }

  /** Initiator: the child could not be created; the IKE SA stays (a later rekey or DPD decides). */
  private giveUp(why: string): TaskStatus {
    if (this.spiIn !== 0) this.sa.ctx.releaseChildSpi(this.spiIn);
    this.spiIn = 0;
    this.sa.log.warn({}, `failed to create CHILD_SA ${this.cfg!.name}${this.additional ? '' : ' anew'}, keeping IKE_SA: ${why}`);
    return 'done';
  }

  /** Responder: answer with the notify only; the IKE SA and its children stay. */
  private refuse(notifyType: number, reason: string): TaskStatus {
    this.failWith(notifyType, reason);
    this.sa.log.warn({}, `CREATE_CHILD_SA refused: ${reason}`);
    return 'done';
  }
}

/**
 * True when the peer's proposed TSi/TSr (TSi is its side: our remote) narrow to something non-empty
 * against a child config's selectors on both sides (RFC 7296 §2.9): the request is for that child.
 */
export function childFits(cfg: ChildConfig, tsi: readonly TrafficSelector[], tsr: readonly TrafficSelector[]): boolean {
  return narrow(tsi as TrafficSelector[], cfg.remoteTs.map((p) => prefixToTs(p))).length > 0
    && narrow(tsr as TrafficSelector[], cfg.localTs.map((p) => prefixToTs(p))).length > 0;
}
