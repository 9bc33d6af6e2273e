import { timingSafeEqual } from 'node:crypto';
import { AuthMethod, NotifyType, PayloadType } from '../wire/constants.js';
import type { AuthPayload, IdPayload, IkeMessage, Payload } from '../wire/types.js';
import { encodeIdBody, pskAuthData } from '../sa/keymat.js';
import { identityFromWire, identityMatches } from '../config/identity.js';
import type { PeerConfig } from '../config/peer-config.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findNotify, findPayload, firstErrorNotify } from './task.js';

// RFC 7296 §2.15: authentication of the IKE SA with a pre-shared key (method 2, Shared Key MIC).
// Certificates (RFC 7427) come next: they plug in here as another AUTH method.

export class IkeAuthTask extends TaskBase implements IkeTask {
  readonly type = 'IKE_AUTH';

  constructor(private readonly sa: IkeSa, private readonly now: () => number) {
    super();
  }

  /* IKE_AUTH request: SK { IDi [N(INITIAL_CONTACT)] [IDr] AUTH (+ SA TSi TSr from CHILD_CREATE) } --> */
  buildRequest(out: Payload[]): TaskStatus {
    const sa = this.sa;
    const cfg = sa.cfg!;
    const idBody = encodeIdBody(cfg.localId.type, cfg.localId.data);
    out.push({ type: PayloadType.IDi, idType: cfg.localId.type, data: cfg.localId.data } as IdPayload);
    if (!sa.ctx.hasOtherIkeSa(cfg, sa)) out.push(notify(NotifyType.INITIAL_CONTACT));
    if (!cfg.remoteId.any) out.push({ type: PayloadType.IDr, idType: cfg.remoteId.type, data: cfg.remoteId.data } as IdPayload);
    const auth = pskAuthData(sa.prf!, cfg.psk, sa.initRequest, sa.nonceR, sa.keys!.skPi, idBody);
    out.push({ type: PayloadType.AUTH, method: AuthMethod.SHARED_KEY_MIC, data: auth } as AuthPayload);
    sa.state = 'AUTH_SENT';
    return 'done';
  }

  /* <-- IKE_AUTH response: SK { IDr AUTH SA TSi TSr } | SK { N(AUTHENTICATION_FAILED) } */
  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const cfg = sa.cfg!;
    if (findNotify(msg, NotifyType.AUTHENTICATION_FAILED)) {
      return this.fail('peer rejected our authentication (AUTHENTICATION_FAILED): check that both sides use the same PSK and that the peer expects our ID ' + JSON.stringify(cfg.localId.text));
    }
    const idr = findPayload(msg, PayloadType.IDr);
    const auth = findPayload(msg, PayloadType.AUTH);
    if (!idr || !auth) {
      const err = firstErrorNotify(msg);
      return this.fail(`IKE_AUTH failed: peer answered ${err !== undefined ? NotifyType[err] ?? err : 'without IDr/AUTH'}`);
    }
    if (!identityMatches(cfg.remoteId, idr)) {
      return this.fail(`peer identity ${identityFromWire(idr.idType, idr.data).text} does not match the configured ${cfg.remoteId.text}`);
    }
    if (!this.verifyPsk(cfg, auth, sa.initResponse, sa.nonceI, sa.keys!.skPr, idr)) {
      return this.fail('peer AUTH payload does not verify: pre-shared keys differ');
    }
    sa.peerId = identityFromWire(idr.idType, idr.data);
    sa.established(this.now());
    return 'done';
  }

  /* --> IKE_AUTH request: SK { IDi [IDr] AUTH SA TSi TSr } */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const idi = findPayload(msg, PayloadType.IDi);
    const auth = findPayload(msg, PayloadType.AUTH);
    if (!idi || !auth) return this.failWith(NotifyType.AUTHENTICATION_FAILED, 'IKE_AUTH request without IDi/AUTH (EAP is not supported)');
    const idr = findPayload(msg, PayloadType.IDr);
    const peerId = identityFromWire(idi.idType, idi.data);
    // pick the config by the peer's identity among those that matched its address (and our ID if it named one)
    const matching = sa.candidates.filter((c) => identityMatches(c.remoteId, idi) && (!idr || identityMatches(c.localId, idr)));
    const cfg = matching.find((c) => !c.remoteId.any) ?? matching[0];
    if (!cfg) {
      return this.failWith(NotifyType.AUTHENTICATION_FAILED, `no connection for peer identity ${peerId.text}${idr ? ` asking for ${identityFromWire(idr.idType, idr.data).text}` : ''}`);
    }
    sa.chooseConfig(cfg);
    if (!this.verifyPsk(cfg, auth, sa.initRequest, sa.nonceR, sa.keys!.skPi, idi)) {
      return this.failWith(NotifyType.AUTHENTICATION_FAILED, `authentication of ${peerId.text} failed: pre-shared keys differ`);
    }
    sa.peerId = peerId;
    if (findNotify(msg, NotifyType.INITIAL_CONTACT)) sa.initialContact = true;
    return 'done';
  }

  /* <-- IKE_AUTH response: SK { IDr AUTH (+ SA TSi TSr from CHILD_CREATE) } */
  buildResponse(out: Payload[]): TaskStatus {
    const sa = this.sa;
    const cfg = sa.cfg!;
    const idBody = encodeIdBody(cfg.localId.type, cfg.localId.data);
    out.push({ type: PayloadType.IDr, idType: cfg.localId.type, data: cfg.localId.data } as IdPayload);
    const auth = pskAuthData(sa.prf!, cfg.psk, sa.initResponse, sa.nonceI, sa.keys!.skPr, idBody);
    out.push({ type: PayloadType.AUTH, method: AuthMethod.SHARED_KEY_MIC, data: auth } as AuthPayload);
    sa.established(this.now());
    return 'done';
  }

  private verifyPsk(cfg: PeerConfig, auth: AuthPayload, realMessage: Buffer, nonce: Buffer, skP: Buffer, id: IdPayload): boolean {
    if (auth.method !== AuthMethod.SHARED_KEY_MIC) return false;
    const expected = pskAuthData(this.sa.prf!, cfg.psk, realMessage, nonce, skP, encodeIdBody(id.idType, id.data));
    return expected.length === auth.data.length && timingSafeEqual(expected, auth.data);
  }


}
