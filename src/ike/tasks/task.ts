import type { IkeMessage, Payload } from '../wire/types.js';

/**
 * One job within an exchange, in the shape of strongSwan's task_t (src/libcharon/sa/task.h). The initiator calls
 * buildRequest then processResponse; the responder processRequest then buildResponse.
 * A failing task records the Notify to send in `failNotify`; it does not throw.
 */
export type TaskStatus = 'done' | 'more' | 'fail';

export interface IkeTask {
  readonly type: string;
  buildRequest?(out: Payload[]): TaskStatus;
  processResponse?(msg: IkeMessage): TaskStatus;
  processRequest?(msg: IkeMessage): TaskStatus;
  buildResponse?(out: Payload[]): TaskStatus;
  /** why the task failed (for logs and status) */
  failReason?: string;
}

/** The payload variant whose `type` admits T (ID and TS payloads share one shape for two types). */
export type PayloadOf<T> = Payload extends infer P ? (P extends { type: infer U } ? (T extends U ? P : never) : never) : never;

/** Failure bookkeeping shared by tasks: the reason (logs, status) and the Notify to send. */
export abstract class TaskBase {
  failReason?: string;
  failNotify?: number;

  protected fail(reason: string): TaskStatus {
    this.failReason = reason;
    return 'fail';
  }

  protected failWith(notifyType: number, reason: string): TaskStatus {
    this.failNotify = notifyType;
    this.failReason = reason;
    return 'fail';
  }
}

export function findPayload<T extends Payload['type']>(msg: IkeMessage, type: T): PayloadOf<T> | undefined {
  return msg.payloads.find((p) => p.type === type) as PayloadOf<T> | undefined;
}

export function findNotify(msg: IkeMessage, notifyType: number) {
  for (const p of msg.payloads) if (p.type === 41 && (p as { notifyType: number }).notifyType === notifyType) return p as PayloadOf<41>;
  return undefined;
}

/** The first error notify (type < 16384) in a message, if any. */
export function firstErrorNotify(msg: IkeMessage): number | undefined {
  for (const p of msg.payloads) {
    if (p.type === 41) {
      const t = (p as { notifyType: number }).notifyType;
      if (t < 16384) return t;
    }
  }
  return undefined;
}
