import { PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, Payload } from '../wire/types.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { deletePayload } from '../sa/ike-sa.js';
import { spiHex } from '../sa/child-sa.js';
import type { IkeTask, TaskStatus } from './task.js';

// RFC 7296 §1.4: INFORMATIONAL exchanges — DELETE (IKE and CHILD) and liveness checks (empty).

/** Responder side of any INFORMATIONAL request. */
export class InformationalResponder implements IkeTask {
  readonly type = 'INFORMATIONAL';
  private deleteIke = false;
  private readonly ourSpis: number[] = [];

  constructor(private readonly sa: IkeSa) {}

  /* --> INFORMATIONAL request: [ ] (liveness) | [ D(IKE) ] | [ D(ESP, spis) ] | [ N ... ] */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    for (const p of msg.payloads) {
      if (p.type !== PayloadType.D) continue;
      if (p.protocol === ProtocolId.IKE) {
        this.deleteIke = true;
      } else if (p.protocol === ProtocolId.ESP || p.protocol === ProtocolId.AH) {
        for (const spiBuf of p.spis) {
          if (spiBuf.length !== 4) continue;
          const theirInbound = spiBuf.readUInt32BE(0);
          const child = sa.children.find((c) => c.spiOut === theirInbound && (c.state === 'INSTALLED' || c.state === 'REKEYED'));
          if (!child) {
            sa.log.debug({}, `DELETE for unknown CHILD_SA 0x${spiHex(theirInbound)} ignored`);
            continue;
          }
          this.ourSpis.push(child.spiIn);
          sa.removeChild(child);
          sa.children.splice(sa.children.indexOf(child), 1);
        }
      }
    }
    if (this.deleteIke) sa.pendingDestroy = sa.state === 'REKEYED' ? 'rekeyed, old IKE SA deleted by peer' : 'deleted by peer';
    return 'done';
  }

  /* <-- INFORMATIONAL response: [ ] | [ D(ESP, our inbound spis) ] */
  buildResponse(out: Payload[]): TaskStatus {
    if (!this.deleteIke && this.ourSpis.length > 0) out.push(deletePayload(ProtocolId.ESP, this.ourSpis));
    return 'done';
  }
}

/** We delete the IKE SA (terminate, shutdown): D(IKE), then the SA is gone whatever the answer. */
export class IkeDeleteTask implements IkeTask {
  readonly type = 'IKE_DELETE';
  constructor(private readonly sa: IkeSa, private readonly now: () => number, private readonly reason: string) {}

  /* INFORMATIONAL request: SK { D(IKE) } --> */
  buildRequest(out: Payload[]): TaskStatus {
    out.push(deletePayload(ProtocolId.IKE, []));
    this.sa.state = 'DELETING';
    return 'done';
  }

  /* <-- INFORMATIONAL response: SK { } */
  processResponse(_msg: IkeMessage): TaskStatus {
    this.sa.destroy(this.reason, this.now());
    return 'done';
  }
}

/** We delete one CHILD_SA: D(ESP, our inbound SPI); the peer answers with its own inbound SPI. */
export class ChildDeleteTask implements IkeTask {
  readonly type = 'CHILD_DELETE';
  constructor(private readonly sa: IkeSa, private readonly spiIn: number) {}

  buildRequest(out: Payload[]): TaskStatus {
    const child = this.sa.children.find((c) => c.spiIn === this.spiIn);
    if (!child) return 'done';
    child.state = 'DELETING';
    out.push(deletePayload(ProtocolId.ESP, [this.spiIn]));
    return 'done';
  }

  processResponse(_msg: IkeMessage): TaskStatus {
    const child = this.sa.children.find((c) => c.spiIn === this.spiIn);
    if (child) {
      this.sa.removeChild(child);
      this.sa.children.splice(this.sa.children.indexOf(child), 1);
    }
    return 'done';
  }
}

/** Liveness check (DPD): an empty INFORMATIONAL; no answer after the retransmit budget kills the SA. */
export class IkeDpdTask implements IkeTask {
  readonly type = 'IKE_DPD';
  buildRequest(_out: Payload[]): TaskStatus {
    return 'done';
  }
  processResponse(_msg: IkeMessage): TaskStatus {
    return 'done';
  }
}
