import type { IkeMessage, Payload } from '../wire/types.js';
import type { IkeTask, TaskStatus } from './task.js';

// Liveness check (RFC 7296 §2.4), both roles, as strongSwan's ike_dpd.c: an INFORMATIONAL request
// with no payloads, answered by an empty response. The task itself carries nothing; the IKE SA's
// retransmission schedule does the work: no answer after the last retransmit and the SA is cleared.
//   --> SK { }   <-- SK { }

export class IkeDpdTask implements IkeTask {
  readonly type = 'IKE_DPD';

  buildRequest(_out: Payload[]): TaskStatus {
    return 'done';
  }

  processResponse(_msg: IkeMessage): TaskStatus {
    return 'done';
  }

  processRequest(_msg: IkeMessage): TaskStatus {
    return 'done';
  }

  buildResponse(_out: Payload[]): TaskStatus {
    return 'done';
  }
}
