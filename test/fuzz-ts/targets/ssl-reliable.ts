// Fuzz target: the OpenVPN reliability layer (src/ssl/control/reliable.ts ReliableChannel) driven
// by a peer-controlled sequence of events. Each 5-byte record is an operation byte and a u32:
// receive message id, ACK ids, send (enqueue), advance time, take acks. Invariants: the
// layer never holds more than its windows allow, never delivers a message twice or out of order,
// and its state stays bounded whatever ids the peer sends.
import { ACK_MAX_IDS } from '../../../src/ssl/wire/ack.js';
import { RECV_WINDOW, ReliableChannel, SEND_WINDOW } from '../../../src/ssl/control/reliable.js';
import { invariant } from './check.js';

export const maxLen = 4096;
const PAYLOAD = Buffer.from('x');

export function fuzz(data: Buffer): void {
  const ch = new ReliableChannel(100);
  let now = 0;
  let delivered = 0;
  let enqueued = 0;
  for (let off = 0; off + 5 <= data.length; off += 5) {
    const op = data[off]! % 6;
    const v = data.readUInt32BE(off + 1);
    switch (op) {
      case 0:
      case 1: {
        // receive: mostly ids near the next expected one, sometimes anything
        const id = op === 0 ? delivered + (v % (2 * RECV_WINDOW)) : v;
        ch.onReceive(id, 4, PAYLOAD);
        for (const m of ch.takeDeliverable()) {
          invariant(m.messageId === delivered, `delivered id ${m.messageId}, expected ${delivered}`);
          delivered++;
        }
        break;
      }
      case 2: {
        const ids: number[] = [];
        for (let k = 0; k < (v & 7); k++) ids.push((v >>> (3 + k)) % (enqueued + 2));
        ch.onAcks(ids);
        break;
      }
      case 3:
        if (enqueued < 64) {
          ch.enqueue(4, PAYLOAD);
          enqueued++;
        }
        break;
      case 4: {
        now += v % 70_000;
        const sends = ch.collectSends(now);
        invariant(sends.length <= SEND_WINDOW, `${sends.length} sends > window ${SEND_WINDOW}`);
        const d = ch.nextDeadline();
        invariant(d === Infinity || d > now, `deadline ${d} not after now ${now}`);
        break;
      }
      default: {
        const acks = ch.takeAcks(ACK_MAX_IDS, (v & 1) === 1);
        invariant(acks.length <= ACK_MAX_IDS, `${acks.length} acks > ${ACK_MAX_IDS}`);
      }
    }
    invariant(ch.outstanding <= enqueued, 'more outstanding messages than enqueued');
  }
}
