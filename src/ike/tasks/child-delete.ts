import { formatChildSpi } from '../../common/spi.js';
import { PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, Payload } from '../wire/types.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { deletePayload } from '../sa/ike-sa.js';
import type { ChildSa } from '../sa/child-sa.js';
import type { IkeTask, TaskStatus } from './task.js';

// Deleting CHILD_SAs (RFC 7296 §1.4.1), both roles, as strongSwan's child_delete.c:
//   initiator:  INFORMATIONAL SK { D(ESP, our inbound SPIs) }  -->
//               <--  SK { D(ESP, the peer's inbound SPIs) }
//   responder:  --> SK { D(ESP, the peer's inbound SPIs), ... }
//               <-- SK { D(ESP, our inbound SPIs of the children removed) }
// A request that also deletes the IKE SA gets an empty answer: the children go with it (§1.4.1).

/** One CHILD_SA deletion: ours (built with the child's inbound SPI) or the peer's (answered). */
export class ChildDeleteTask implements IkeTask {
  readonly type = 'CHILD_DELETE';
  /** responder: our inbound SPIs of the children the peer deleted, for the answer */
  private readonly ourSpis: number[] = [];
  private ikeDeleted = false;
  /** initiator after a rekey we started: the REKEYED child whose successor is installed */
  private rekeyed: ChildSa | null = null;

  /**
   * @param spiIn initiator: our inbound SPI of the child to delete; 0 when answering the peer's DELETE
   */
  constructor(private readonly sa: IkeSa, private readonly spiIn = 0) {}

  /** D(ESP, old inbound SPI) for a child we rekeyed; on the answer it goes, its inbound SA lingering a moment. */
  static afterRekey(sa: IkeSa, old: ChildSa): ChildDeleteTask {
    const t = new ChildDeleteTask(sa, old.spiIn);
    t.rekeyed = old;
    return t;
  }

  /* INFORMATIONAL request: SK { D(ESP, spiIn) } --> */
  buildRequest(out: Payload[]): TaskStatus {
    if (this.rekeyed) {
      out.push(deletePayload(ProtocolId.ESP, [this.rekeyed.spiIn]));
      return 'done';
    }
    const child = this.sa.children.find((c) => c.spiIn === this.spiIn);
    if (!child) return 'done';
    child.state = 'DELETING';
    out.push(deletePayload(ProtocolId.ESP, [this.spiIn]));
    return 'done';
  }

  /* <-- INFORMATIONAL response: SK { D(ESP, the peer's SPIs) } */
  processResponse(_msg: IkeMessage): TaskStatus {
    if (this.rekeyed) {
      const i = this.sa.children.indexOf(this.rekeyed);
      if (i >= 0) {
        // REKEYED with an installed successor: removeChild keeps the old inbound SA for a grace period
        this.sa.removeChild(this.rekeyed);
        this.sa.children.splice(i, 1);
      }
      return 'done';
    }
    const child = this.sa.children.find((c) => c.spiIn === this.spiIn);
    if (child) {
      this.sa.removeChild(child);
      this.sa.children.splice(this.sa.children.indexOf(child), 1);
    }
    return 'done';
  }

  /* --> INFORMATIONAL request: SK { D(ESP, spis), ... } */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    for (const p of msg.payloads) {
      if (p.type !== PayloadType.D) continue;
      if (p.protocol === ProtocolId.IKE) {
        this.ikeDeleted = true;
      } else if (p.protocol === ProtocolId.ESP || p.protocol === ProtocolId.AH) {
        for (const spiBuf of p.spis) {
          if (spiBuf.length !== 4) continue;
          const theirInbound = spiBuf.readUInt32BE(0);
          const child = sa.children.find((c) => c.spiOut === theirInbound && (c.state === 'INSTALLED' || c.state === 'REKEYED'));
          if (!child) {
            sa.log.debug({}, `DELETE for unknown CHILD_SA ${formatChildSpi(theirInbound)} ignored`);
            continue;
          }
          this.ourSpis.push(child.spiIn);
          sa.removeChild(child);
          sa.children.splice(sa.children.indexOf(child), 1);
        }
      }
    }
    return 'done';
  }

  /* <-- INFORMATIONAL response: SK { [D(ESP, our inbound SPIs)] } */
  buildResponse(out: Payload[]): TaskStatus {
    if (!this.ikeDeleted && this.ourSpis.length > 0) out.push(deletePayload(ProtocolId.ESP, this.ourSpis));
    return 'done';
  }
}
