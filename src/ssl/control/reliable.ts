/**
 * The control channel's reliability layer, one instance per key state (OpenVPN 2.6
 * `reliable.c`). Pure: the caller passes `nowMs`.
 *
 * Sending
 *   1. `enqueue` gives each reliable message the next message packet-id (0 = the reset).
 *   2. `collectSends(now)` returns what must go out now: new messages while fewer than
 *      SEND_WINDOW are unacknowledged (and never more than SEND_WINDOW ahead of the oldest
 *      unacknowledged id), plus retransmissions whose deadline passed (2 s, doubling, capped),
 *      or that were overtaken by RETRANSMIT_AFTER_LATER_ACKS later ACKs.
 *   3. `onAcks` frees slots.
 * Receiving
 *   1. `onReceive` accepts ids in [nextExpected, nextExpected + RECV_WINDOW); everything at or
 *      below nextExpected - 1 is a duplicate. Both are acknowledged; ids beyond the window are
 *      dropped without an ACK, as OpenVPN does.
 *   2. `takeDeliverable` returns buffered messages strictly in id order.
 *   3. `takeAcks(max)` returns the ids to acknowledge: the pending ones first, then (to make a
 *      lost ACK cheap to recover) recently acknowledged ones again.
 */

// ---- spec / OpenVPN defaults ------------------------------------------------------------------
/** OpenVPN's send buffer count (reliable window for outgoing packets). */
export const SEND_WINDOW = 6;
/** The receive window of the 2.6 client and of this implementation. */
export const RECV_WINDOW = 12;
/** --tls-timeout default: first retransmission after 2 s. */
export const INITIAL_RETRANSMIT_MS = 2_000;
// ---- implementation choices -------------------------------------------------------------------
export const MAX_RETRANSMIT_MS = 32_000;
export const RETRANSMIT_AFTER_LATER_ACKS = 3;
/** How many recently acknowledged ids we remember to re-send in later packets. */
export const ACK_HISTORY_SIZE = 8;
/** ACKs waiting to be sent: a receive window's worth plus the history; older ones are dropped. */
export const MAX_PENDING_ACKS = RECV_WINDOW + ACK_HISTORY_SIZE;

export interface ReliableMessage {
  messageId: number;
  opcode: number;
  payload: Buffer;
}

interface InFlight extends ReliableMessage {
  /** 0 until first sent */
  sends: number;
  nextSendMs: number;
  timeoutMs: number;
  laterAcks: number;
}

export type ReceiveResult = 'new' | 'duplicate' | 'outOfWindow';

export class ReliableChannel {
  private nextSendId = 0;
  /** all messages not yet acknowledged, in id order (sent ones first) */
  private unacked: InFlight[] = [];
  private nextExpected = 0;
  private readonly rxBuf = new Map<number, ReliableMessage>();
  private pendingAcks: number[] = [];
  private ackHistory: number[] = [];
  /** counters for status and tests */
  retransmits = 0;
  duplicates = 0;
  droppedOutOfWindow = 0;

  constructor(private readonly initialTimeoutMs = INITIAL_RETRANSMIT_MS) {}

  // ---- sending ----

  /** Queues a reliable message; returns its message packet-id. The payload is kept (not copied). */
  enqueue(opcode: number, payload: Buffer): number {
    const messageId = this.nextSendId++;
    this.unacked.push({ messageId, opcode, payload, sends: 0, nextSendMs: 0, timeoutMs: this.initialTimeoutMs, laterAcks: 0 });
    return messageId;
  }

  /**
   * Takes the next message packet-id for a message that went out outside this channel and needs no
   * retransmission (the server's stateless hard reset, src/ssl/server/stateless-reset.ts).
   */
  skipSendId(): number {
    return this.nextSendId++;
  }

  /** Processes acknowledged ids; returns how many in-flight messages were freed. */
  onAcks(ids: readonly number[]): number {
    let freed = 0;
    for (const id of ids) {
      const i = this.unacked.findIndex((m) => m.messageId === id && m.sends > 0);
      if (i < 0) continue;
      this.unacked.splice(i, 1);
      freed++;
      for (const m of this.unacked) if (m.sends > 0 && m.messageId < id) m.laterAcks++;
    }
    return freed;
  }

  /** Messages to (re)send now, in id order. Marks them sent and schedules their next retransmission. */
  collectSends(nowMs: number): ReliableMessage[] {
    const out: ReliableMessage[] = [];
    const oldest = this.unacked.length > 0 ? this.unacked[0]!.messageId : this.nextSendId;
    let inFlight = 0;
    for (const m of this.unacked) {
      if (m.sends > 0) {
        inFlight++;
        const early = m.laterAcks >= RETRANSMIT_AFTER_LATER_ACKS;
        if (nowMs >= m.nextSendMs || early) {
          if (early) m.laterAcks = 0;
          else m.timeoutMs = Math.min(m.timeoutMs * 2, MAX_RETRANSMIT_MS);
          m.sends++;
          m.nextSendMs = nowMs + m.timeoutMs;
          this.retransmits++;
          out.push(m);
        }
      } else if (inFlight < SEND_WINDOW && m.messageId < oldest + SEND_WINDOW) {
        inFlight++;
        m.sends = 1;
        m.nextSendMs = nowMs + m.timeoutMs;
        out.push(m);
      }
    }
    return out;
  }

  /** The earliest retransmission deadline, or Infinity. */
  nextDeadline(): number {
    let d = Infinity;
    for (const m of this.unacked) if (m.sends > 0 && m.nextSendMs < d) d = m.nextSendMs;
    return d;
  }

  /** True when every message enqueued so far has been acknowledged. */
  allAcked(): boolean {
    return this.unacked.length === 0;
  }

  /** Number of messages waiting to be sent or acknowledged. */
  get outstanding(): number {
    return this.unacked.length;
  }

  // ---- receiving ----

  onReceive(messageId: number, opcode: number, payload: Buffer): ReceiveResult {
    if (messageId < this.nextExpected || this.rxBuf.has(messageId)) {
      this.duplicates++;
      this.queueAck(messageId);
      return 'duplicate';
    }
    if (messageId >= this.nextExpected + RECV_WINDOW) {
      this.droppedOutOfWindow++;
      return 'outOfWindow';
    }
    this.rxBuf.set(messageId, { messageId, opcode, payload: Buffer.from(payload) });
    this.queueAck(messageId);
    return 'new';
  }

  /** In-order messages ready for the upper layer. */
  takeDeliverable(): ReliableMessage[] {
    const out: ReliableMessage[] = [];
    for (;;) {
      const m = this.rxBuf.get(this.nextExpected);
      if (!m) return out;
      this.rxBuf.delete(this.nextExpected);
      this.nextExpected++;
      out.push(m);
    }
  }

  hasPendingAcks(): boolean {
    return this.pendingAcks.length > 0;
  }

  /**
   * Ids for the next outgoing ACK block, newest first: all pending ones (up to max), then, if
   * `withHistory`, recently acknowledged ones that fit.
   */
  takeAcks(max: number, withHistory: boolean): number[] {
    const ids = this.pendingAcks.splice(0, max);
    for (const id of ids) this.remember(id);
    if (withHistory) {
      for (const id of this.ackHistory) {
        if (ids.length >= max) break;
        if (!ids.includes(id)) ids.push(id);
      }
    }
    return ids;
  }

  private queueAck(id: number): void {
    const i = this.pendingAcks.indexOf(id);
    if (i >= 0) this.pendingAcks.splice(i, 1);
    this.pendingAcks.unshift(id);
    // duplicates of old ids could grow the list without bound; an ACK dropped here only makes the
    // peer retransmit (OpenVPN's reliable.c keeps a fixed-size ACK list, RELIABLE_ACK_SIZE)
    if (this.pendingAcks.length > MAX_PENDING_ACKS) this.pendingAcks.length = MAX_PENDING_ACKS;
  }

  /** history holds the most recent acknowledged ids, highest first */
  private remember(id: number): void {
    if (this.ackHistory.includes(id)) return;
    this.ackHistory.push(id);
    this.ackHistory.sort((a, b) => b - a);
    if (this.ackHistory.length > ACK_HISTORY_SIZE) this.ackHistory.length = ACK_HISTORY_SIZE;
  }
}
