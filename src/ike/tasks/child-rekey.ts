import { NotifyType, PayloadType, ProtocolId, TransformType } from '../wire/constants.js';
import type { IkeMessage, KePayload, NoncePayload, Payload, Proposal, SaPayload, TsPayload } from '../wire/types.js';
import { createKeyExchange, isSupportedDhGroup } from '../../crypto/dh.js';
import { deriveChildKeys } from '../sa/keymat.js';
import { dhGroupOf, proposalToString, selectProposal } from '../config/proposal.js';
import { narrow, prefixToTs, tsToString } from '../config/traffic-selector.js';
import { ChildSa, spiHex, spiToBuffer } from '../sa/child-sa.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findNotify, findPayload } from './task.js';
import { copyProposal, installChildSa } from './child-create.js';

// RFC 7296 §1.3.3, §2.8, §2.17: the responder side of a CHILD_SA rekey.
//   --> SK { N(REKEY_SA, ESP, SPI = old child's SPI at the peer's side = our old spiOut), SA, Ni, [KEi], TSi, TSr }
//   <-- SK { SA, Nr, [KEr], TSi, TSr }
// The new child is installed when we answer; the old one is marked REKEYED and stays installed
// until the peer (the rekey initiator) deletes it with INFORMATIONAL D(ESP, old).

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

export class ChildRekeyResponder extends TaskBase implements IkeTask {
  readonly type = 'CHILD_REKEY';
  private old: ChildSa | null = null;
  private child: ChildSa | null = null;
  private nonceR: Buffer = Buffer.alloc(0);
  private keData: Buffer | null = null;
  private keGroup = 0;
  private dhSecret: Buffer | null = null;
  private nonceI: Buffer = Buffer.alloc(0);
  private failData: Buffer = Buffer.alloc(0);
  private failSpi: Buffer = Buffer.alloc(0);

  constructor(private readonly sa: IkeSa, private readonly now: () => number) {
    super();
  }

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
    const old = sa.children.find((c) => c.spiOut === theirInbound && c.state === 'INSTALLED');
    if (!old) {
      this.failSpi = Buffer.from(rekey.spi);
      return this.refuse(NotifyType.CHILD_SA_NOT_FOUND, `peer rekeys unknown CHILD_SA 0x${spiHex(theirInbound)}`);
    }
    if (old.rekeying || sa.rekeying) {
      // our own rekey of this child (or of the IKE SA) is under way: the peer retries later (§2.25)
      return this.refuse(NotifyType.TEMPORARY_FAILURE, `we are rekeying ${old.rekeying ? `CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i} ourselves` : 'the IKE SA'} (collision)`);
    }
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
    if (ke) {
      if (!isSupportedDhGroup(ke.group)) return this.refuse(NotifyType.INVALID_SYNTAX, `unsupported DH group ${ke.group}`);
      const kex = createKeyExchange(ke.group);
      const secret = kex.computeSecret(ke.data);
      if (!secret) return this.refuse(NotifyType.INVALID_SYNTAX, 'invalid KE data from peer');
      this.dhSecret = secret;
      this.keData = kex.publicKey;
      this.keGroup = ke.group;
    }
    const chosen = copyProposal(choice.proposal);
    const child = new ChildSa(cfg, sa.ctx.allocChildSpi());
    child.spiOut = chosen.spi.readUInt32BE(0);
    child.localTs = localTs;
    child.remoteTs = remoteTs;
    child.proposal = chosen;
    this.child = child;
    this.old = old;
    this.nonceI = Buffer.from(nonce.nonce);
    this.nonceR = sa.randomNonce();
    return 'done';
  }

  buildResponse(out: Payload[]): TaskStatus {
    const sa = this.sa;
    if (this.failNotify !== undefined) {
      out.push(notify(this.failNotify, this.failData, this.failSpi.length ? ProtocolId.ESP : 0, this.failSpi));
      return 'done';
    }
    const child = this.child!;
    const old = this.old!;
    const p = child.proposal!;
    out.push({ type: PayloadType.SA, proposals: [{ ...p, spi: spiToBuffer(child.spiIn) }] } as SaPayload);
    out.push({ type: PayloadType.NONCE, nonce: this.nonceR } as NoncePayload);
    if (this.keData) out.push({ type: PayloadType.KE, group: this.keGroup, data: this.keData } as KePayload);
    out.push({ type: PayloadType.TSi, selectors: child.remoteTs } as TsPayload);
    out.push({ type: PayloadType.TSr, selectors: child.localTs } as TsPayload);
    // the peer sent the request: it is "I" for KEYMAT, our outbound keys are the second slice
    const keys = deriveChildKeys(sa.prf!, sa.keys!.skD, this.nonceI, this.nonceR, this.dhSecret, p);
    this.dhSecret?.fill(0);
    old.state = 'REKEYED';
    old.successor = child;
    // make-before-break (reference §5.9): the new inbound SA is live before the peer reads our response;
    // our traffic moves to the new outbound SA only when the peer deletes the old one
    installChildSa(sa, child, p, keys, false, this.now(), false);
    sa.log.info({ child: child.id }, `CHILD_SA ${old.cfg.name}{${spiHex(old.spiIn)}_i ${spiHex(old.spiOut)}_o} rekeyed by the peer: replaced by {${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o}`);
    return 'done';
  }

  /** A refused rekey keeps the IKE SA and the old child: answer with the notify, nothing else. */
  private refuse(notifyType: number, reason: string): TaskStatus {
    this.failWith(notifyType, reason);
    this.sa.log.warn({}, `CHILD_SA rekey refused: ${reason}`);
    return 'done';
  }
}
