import { PayloadType } from '../wire/constants.js';
import type { KePayload, NoncePayload, Payload, Proposal, SaPayload, TrafficSelector, TsPayload } from '../wire/types.js';
import { createKeyExchange, isSupportedDhGroup } from '../../crypto/dh.js';
import { deriveChildKeys, type ChildKeys } from '../sa/keymat.js';
import type { ChildConfig } from '../config/peer-config.js';
import { ChildSa, spiToBuffer } from '../sa/child-sa.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { copyProposal } from './child-create.js';

/**
 * The responder's half of a CREATE_CHILD_SA exchange that makes a CHILD_SA, shared by a new child
 * (RFC 7296 §1.3.1) and a rekey (§1.3.3): the optional KE answered with our share, the new ChildSa
 * with an inbound SPI of ours, the response's SA, Nr, [KEr], TSi, TSr, and the child's keys.
 */
export class ChildResponse {
  private constructor(
    readonly child: ChildSa,
    /** the peer's nonce: the peer initiated, so it is Ni for KEYMAT */
    readonly nonceI: Buffer,
    readonly nonceR: Buffer,
    private readonly ke: { group: number; publicKey: Buffer; secret: Buffer } | null,
  ) {}

  /**
   * The child for `cfg` with the chosen proposal and narrowed selectors, or why the request's KE is
   * unusable (the caller answers INVALID_SYNTAX with it).
   */
  static accept(
    sa: IkeSa, cfg: ChildConfig, proposal: Proposal, localTs: TrafficSelector[], remoteTs: TrafficSelector[], nonceI: Buffer, ke: KePayload | undefined,
  ): ChildResponse | string {
    let dh: { group: number; publicKey: Buffer; secret: Buffer } | null = null;
    if (ke) {
      if (!isSupportedDhGroup(ke.group)) return `unsupported DH group ${ke.group}`;
      const kex = createKeyExchange(ke.group);
      const secret = kex.computeSecret(ke.data);
      if (!secret) return 'invalid KE data from peer';
      dh = { group: ke.group, publicKey: kex.publicKey, secret };
    }
    const chosen = copyProposal(proposal);
    const child = new ChildSa(cfg, sa.ctx.allocChildSpi());
    child.spiOut = chosen.spi.readUInt32BE(0);
    child.localTs = localTs;
    child.remoteTs = remoteTs;
    child.proposal = chosen;
    return new ChildResponse(child, Buffer.from(nonceI), sa.randomNonce(), dh);
  }

  /* <-- CREATE_CHILD_SA response: SK { SA, Nr, [KEr], TSi, TSr } */
  build(out: Payload[]): void {
    const child = this.child;
    out.push({ type: PayloadType.SA, proposals: [{ ...child.proposal!, spi: spiToBuffer(child.spiIn) }] } as SaPayload);
    out.push({ type: PayloadType.NONCE, nonce: this.nonceR } as NoncePayload);
    if (this.ke) out.push({ type: PayloadType.KE, group: this.ke.group, data: this.ke.publicKey } as KePayload);
    out.push({ type: PayloadType.TSi, selectors: child.remoteTs } as TsPayload);
    out.push({ type: PayloadType.TSr, selectors: child.localTs } as TsPayload);
  }

  /** The child's keys (our outbound keys are KEYMAT's second slice); the DH secret is wiped. */
  keys(sa: IkeSa): ChildKeys {
    const keys = deriveChildKeys(sa.prf!, sa.keys!.skD, this.nonceI, this.nonceR, this.ke?.secret ?? null, this.child.proposal!);
    this.ke?.secret.fill(0);
    return keys;
  }
}
