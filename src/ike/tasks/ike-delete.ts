import type { IkeMessage, Payload } from '../wire/types.js';
import { ProtocolId } from '../wire/constants.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { deletePayload } from '../sa/ike-sa.js';
import type { IkeTask, TaskStatus } from './task.js';

// Deleting the IKE SA (RFC 7296 §1.4.1), both roles, as strongSwan's ike_delete.c:
//   initiator:  INFORMATIONAL SK { D(IKE) } -->   <-- SK { }   then the SA is gone, whatever the answer
//   responder:  --> SK { D(IKE) }   <-- SK { }   the SA goes once the answer is sent; an SA replaced by
//               a rekey (REKEYED) ends here when the peer deletes it after the hand-over (§2.18)

export class IkeDeleteTask implements IkeTask {
  readonly type = 'IKE_DELETE';
  /**
   * @param reason initiator: why we delete the SA (logs, status); the responder logs why the peer did
   */
  constructor(private readonly sa: IkeSa, private readonly now: () => number, private readonly reason = 'deleted by peer') {}

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

  /* --> INFORMATIONAL request: SK { D(IKE), ... } */
  processRequest(_msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    // the IKE SA ends after the (empty) response has gone out
    sa.pendingDestroy = sa.state === 'REKEYED' ? 'rekeyed, old IKE SA deleted by peer' : 'deleted by peer';
    return 'done';
  }

  /* <-- INFORMATIONAL response: SK { } */
  buildResponse(_out: Payload[]): TaskStatus {
    return 'done';
  }
}
