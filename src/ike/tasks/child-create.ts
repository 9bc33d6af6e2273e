import { EsnId, NotifyType, PayloadType, ProtocolId, TransformType } from '../wire/constants.js';
import type { IkeMessage, Payload, Proposal, SaPayload, TsPayload, TrafficSelector } from '../wire/types.js';
import { deriveChildKeys, type ChildKeys } from '../sa/keymat.js';
import { selectProposal, stripDh, proposalToString } from '../config/proposal.js';
import { narrow, prefixToTs, tsToPrefixes, tsToString, tsWithin } from '../config/traffic-selector.js';
import type { ChildConfig } from '../config/peer-config.js';
import type { Prefix } from '../../common/ip.js';
import { ChildSa, spiHex, spiToBuffer } from '../sa/child-sa.js';
import { childVolumeLimits } from '../sa/child-limits.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, findPayload, firstErrorNotify } from './task.js';
import { ourOfferRefused, peerError, peerOfferRefused, tsRefused, tsRefusedByPeer, type IkeFailure } from '../failure.js';

// RFC 7296 §1.3 / §2.9 / §2.17: a CHILD_SA created inside IKE_AUTH, with traffic-selector narrowing.
// The same task will serve CREATE_CHILD_SA (new child, rekey) with a KE for PFS.

export class ChildCreateTask implements IkeTask {
  readonly type = 'CHILD_CREATE';
  failReason?: string;
  failNotify?: number;
  /** why we refuse the peer's CHILD_SA (responder), reported with the response */
  private failure: IkeFailure | null = null;
  private child: ChildSa | null = null;

  constructor(private readonly sa: IkeSa, private readonly now: () => number, private readonly cfgName?: string) {}

  private childCfg(): ChildConfig | undefined {
    const children = this.sa.cfg!.children;
    // the first child we start ourselves comes up in IKE_AUTH, the others follow with CREATE_CHILD_SA
    return this.cfgName ? children.find((c) => c.name === this.cfgName) : children.find((c) => c.startAction !== 'none');
  }

  /* ... SA(ESP, SPI=our inbound) TSi TSr --> */
  buildRequest(out: Payload[]): TaskStatus {
    const cfg = this.childCfg();
    if (!cfg) return 'done';
    const child = new ChildSa(cfg, this.sa.ctx.allocChildSpi());
    this.child = child;
    const spi = spiToBuffer(child.spiIn);
    const proposals = stripDh(cfg.espProposals as Proposal[]).map((p) => ({ ...p, spi }));
    out.push({ type: PayloadType.SA, proposals } as SaPayload);
    child.localTs = cfg.localTs.map((p) => prefixToTs(p));
    child.remoteTs = cfg.remoteTs.map((p) => prefixToTs(p));
    out.push({ type: PayloadType.TSi, selectors: child.localTs } as TsPayload);
    out.push({ type: PayloadType.TSr, selectors: child.remoteTs } as TsPayload);
    return 'done';
  }

  /* <-- SA TSi TSr | N(NO_PROPOSAL_CHOSEN) | N(TS_UNACCEPTABLE) */
  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const child = this.child;
    if (!child) return 'done';
    if (sa.state !== 'ESTABLISHED') return this.abandon('IKE SA not established');
    const err = firstErrorNotify(msg);
    const saP = findPayload(msg, PayloadType.SA);
    const tsi = findPayload(msg, PayloadType.TSi);
    const tsr = findPayload(msg, PayloadType.TSr);
    if (err !== undefined || !saP || !tsi || !tsr) {
      const why = err === NotifyType.TS_UNACCEPTABLE
        ? `peer refused our traffic selectors (TS_UNACCEPTABLE): we proposed ${child.localTs.map(tsToString).join(',')} === ${child.remoteTs.map(tsToString).join(',')}`
        : err === NotifyType.NO_PROPOSAL_CHOSEN
          ? `peer accepts none of our ESP proposals (NO_PROPOSAL_CHOSEN); we offered ${child.cfg.espProposals.map(proposalToString).join(', ')}`
          : `peer answered ${err !== undefined ? NotifyType[err] ?? err : 'without SA/TS'}`;
      const ourLocal = child.localTs.map(tsToString).join(',');
      const ourRemote = child.remoteTs.map(tsToString).join(',');
      sa.reportFailure(err === NotifyType.TS_UNACCEPTABLE
        ? tsRefusedByPeer(ourLocal, ourRemote)
        : err === NotifyType.NO_PROPOSAL_CHOSEN
          ? ourOfferRefused('esp', stripDh(child.cfg.espProposals as Proposal[]))
          : peerError(`CHILD_SA ${child.cfg.name} not established: peer answered ${err !== undefined ? NotifyType[err] ?? err : 'without SA/TS'}`));
      return this.abandon(`failed to establish CHILD_SA ${child.cfg.name}, keeping IKE_SA: ${why}`);
    }
    const chosen = saP.proposals[0];
    if (saP.proposals.length !== 1 || !chosen || chosen.spi.length !== 4 || !selectProposal([chosen], stripDh(child.cfg.espProposals as Proposal[]))) {
      return this.abandon(`peer chose an ESP proposal we did not offer`);
    }
    // the initiator accepts narrowing but never widening (RFC 7296 §2.9)
    const localTs = tsi.selectors.map(copyTs);
    const remoteTs = tsr.selectors.map(copyTs);
    if (!localTs.every((t) => tsWithin(t, child.localTs)) || !remoteTs.every((t) => tsWithin(t, child.remoteTs))) {
      return this.abandon('peer answered with traffic selectors wider than we proposed');
    }
    child.localTs = localTs;
    child.remoteTs = remoteTs;
    child.spiOut = chosen.spi.readUInt32BE(0);
    this.install(child, copyProposal(chosen), true);
    return 'done';
  }

  /* --> SA TSi TSr (initiator's TSi is the peer's side: our remote) */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const saP = findPayload(msg, PayloadType.SA);
    const tsi = findPayload(msg, PayloadType.TSi);
    const tsr = findPayload(msg, PayloadType.TSr);
    if (!saP || !tsi || !tsr) return 'done'; // childless IKE_AUTH (RFC 6023): nothing to do
    let sawProposal = false;
    for (const cfg of sa.cfg!.children) {
      const chosen = selectProposal(saP.proposals.filter((p) => p.protocol === ProtocolId.ESP && p.spi.length === 4), stripDh(cfg.espProposals as Proposal[]));
      if (!chosen) continue;
      sawProposal = true;
      const remoteTs = narrow(tsi.selectors, cfg.remoteTs.map((p) => prefixToTs(p)));
      const localTs = narrow(tsr.selectors, cfg.localTs.map((p) => prefixToTs(p)));
      if (remoteTs.length === 0 || localTs.length === 0) continue;
      const child = new ChildSa(cfg, sa.ctx.allocChildSpi());
      child.spiOut = chosen.spi.readUInt32BE(0);
      child.localTs = localTs;
      child.remoteTs = remoteTs;
      child.proposal = copyProposal(chosen);
      this.child = child;
      return 'done';
    }
    if (!sawProposal) {
      const esp = saP.proposals.filter((p) => p.protocol === ProtocolId.ESP);
      this.failure = peerOfferRefused('esp', esp.length ? esp : saP.proposals, sa.cfg!.children.flatMap((c) => stripDh(c.espProposals as Proposal[])));
      this.failNotify = NotifyType.NO_PROPOSAL_CHOSEN;
      this.failReason = `no acceptable ESP proposal: peer offered ${saP.proposals.map(proposalToString).join(', ')}; we accept ${sa.cfg!.children.flatMap((c) => c.espProposals.map(proposalToString)).join(', ')}`;
    } else {
      this.failNotify = NotifyType.TS_UNACCEPTABLE;
      const prefixes = (list: readonly Prefix[]) => (list.length ? list.map((p) => tsToString(prefixToTs(p))).join(',') : '-');
      const children = sa.cfg!.children;
      this.failure = tsRefused(
        tsi.selectors.map(tsToString).join(','), tsr.selectors.map(tsToString).join(','),
        children.map((c) => prefixes(c.remoteTs)).join('; '), children.map((c) => prefixes(c.localTs)).join('; '),
      );
      this.failReason = `traffic selectors unacceptable: peer proposed ${tsi.selectors.map(tsToString).join(',')} === ${tsr.selectors.map(tsToString).join(',')}; we allow ${sa.cfg!.children.map((c) => `${c.remoteTs.length ? c.remoteTs.map((p) => tsToString(prefixToTs(p))).join(',') : '-'} === ${c.localTs.map((p) => tsToString(prefixToTs(p))).join(',')}`).join('; ')}`;
    }
    sa.log.warn({}, `failed to establish CHILD_SA, keeping IKE_SA: ${this.failReason}`);
    return 'fail';
  }

  /* <-- SA(ESP, SPI=our inbound) TSi TSr | N(error) */
  buildResponse(out: Payload[]): TaskStatus {
    if (this.failNotify) {
      out.push(notify(this.failNotify));
      // reported here, not in processRequest: in IKE_AUTH the IKE SA comes up in the auth task's
      // buildResponse, before this one, and its ikeUp clears the connection's last error
      if (this.failure) this.sa.reportFailure(this.failure);
      return 'fail';
    }
    const child = this.child;
    if (!child) return 'done';
    if (this.sa.state !== 'ESTABLISHED') return this.abandon('IKE SA not established');
    const p = child.proposal!;
    out.push({ type: PayloadType.SA, proposals: [{ ...p, spi: spiToBuffer(child.spiIn) }] } as SaPayload);
    out.push({ type: PayloadType.TSi, selectors: child.remoteTs } as TsPayload);
    out.push({ type: PayloadType.TSr, selectors: child.localTs } as TsPayload);
    this.install(child, p, false);
    return 'done';
  }

  private install(child: ChildSa, proposal: Proposal, weInitiatedExchange: boolean): void {
    const sa = this.sa;
    const keys = deriveChildKeys(sa.prf!, sa.keys!.skD, sa.nonceI, sa.nonceR, null, proposal);
    installChildSa(sa, child, proposal, keys, weInitiatedExchange, this.now());
  }

  private abandon(reason: string): TaskStatus {
    if (this.child) this.sa.ctx.releaseChildSpi(this.child.spiIn);
    this.child = null;
    this.failReason = reason;
    return 'fail';
  }
}

/**
 * Marks a negotiated child INSTALLED, adds it to the SA and emits `installChildSa`. `keys` come from
 * deriveChildKeys over the nonces of the exchange that created the child; KEYMAT's first slice
 * protects traffic FROM that exchange's initiator (RFC 7296 §2.17), whoever the IKE SA's initiator is.
 */
export function installChildSa(
  sa: IkeSa, child: ChildSa, proposal: Proposal, keys: ChildKeys, weInitiatedExchange: boolean, now: number, activateOutbound = true,
): void {
  const encrOut = weInitiatedExchange ? keys.encrKeyI : keys.encrKeyR;
  const integOut = weInitiatedExchange ? keys.integKeyI : keys.integKeyR;
  const encrIn = weInitiatedExchange ? keys.encrKeyR : keys.encrKeyI;
  const integIn = weInitiatedExchange ? keys.integKeyR : keys.integKeyI;
  const encr = proposal.transforms.find((t) => t.type === 1)!;
  const integ = proposal.transforms.find((t) => t.type === 3);
  child.proposal = proposal;
  child.state = 'INSTALLED';
  child.installedAtMs = now;
  sa.children.push(child);
  sa.emit({
    kind: 'installChildSa',
    params: {
      connection: sa.cfg!.name,
      child: child.cfg.name,
      spiIn: child.spiIn,
      spiOut: child.spiOut,
      encr: encr.id,
      encrKeyBits: encr.keyLength ?? 256,
      integ: integ?.id ?? 0,
      esn: proposal.transforms.some((t) => t.type === TransformType.ESN && t.id === EsnId.ESN),
      encrKeyIn: encrIn,
      integKeyIn: integIn,
      encrKeyOut: encrOut,
      integKeyOut: integOut,
      localTs: child.localTs.flatMap(tsToPrefixes),
      remoteTs: child.remoteTs.flatMap(tsToPrefixes),
      local: sa.local,
      remote: sa.remote,
      replayWindow: child.cfg.replayWindow,
      lifetimeSec: child.cfg.lifetimeSec,
      limits: childVolumeLimits(child.cfg, (n) => sa.ctx.random(n)),
      activateOutbound,
    },
  });
  sa.log.info(
    { child: child.id },
    `CHILD_SA ${child.cfg.name}{${spiHex(child.spiIn)}_i ${spiHex(child.spiOut)}_o} established with ${proposalToString(proposal)}, ` +
      `TS ${child.localTs.map(tsToString).join(',')} === ${child.remoteTs.map(tsToString).join(',')}`,
  );
}

export function copyTs(t: TrafficSelector): TrafficSelector {
  return { ...t, startAddr: Buffer.from(t.startAddr), endAddr: Buffer.from(t.endAddr) };
}

export function copyProposal(p: Proposal): Proposal {
  return { num: p.num, protocol: p.protocol, spi: Buffer.from(p.spi), transforms: p.transforms.map((t) => ({ ...t })) };
}
