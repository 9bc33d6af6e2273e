import { describe, expect, it } from 'vitest';
import { ReliableChannel, SEND_WINDOW, RECV_WINDOW, MAX_PENDING_ACKS } from '../../../../src/ssl/control/reliable.js';
import { Opcode } from '../../../../src/ssl/wire/opcodes.js';

const P = (s: string) => Buffer.from(s);
const ids = (ms: { messageId: number }[]) => ms.map((m) => m.messageId);

describe('ReliableChannel sending', () => {
  it('numbers messages from 0 and sends at most SEND_WINDOW unacknowledged', () => {
    const r = new ReliableChannel();
    for (let i = 0; i < 10; i++) r.enqueue(Opcode.P_CONTROL_V1, P(`m${i}`));
    expect(ids(r.collectSends(0))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(SEND_WINDOW).toBe(6);
    expect(r.collectSends(10)).toEqual([]);
    r.onAcks([1]); // acking a later one does not slide past the oldest unacked (0)
    expect(ids(r.collectSends(20))).toEqual([]);
    r.onAcks([0]);
    expect(ids(r.collectSends(30))).toEqual([6, 7]);
  });

  it('retransmits after 2 s, doubling each time, until acknowledged', () => {
    const r = new ReliableChannel();
    r.enqueue(Opcode.P_CONTROL_V1, P('x'));
    const t0 = 1000;
    expect(ids(r.collectSends(t0))).toEqual([0]);
    expect(r.nextDeadline()).toBe(t0 + 2000);
    expect(r.collectSends(t0 + 1999)).toEqual([]);
    expect(ids(r.collectSends(t0 + 2000))).toEqual([0]);
    expect(r.nextDeadline()).toBe(t0 + 2000 + 4000);
    expect(r.collectSends(t0 + 5999)).toEqual([]);
    expect(ids(r.collectSends(t0 + 6000))).toEqual([0]);
    expect(r.nextDeadline()).toBe(t0 + 6000 + 8000);
    r.onAcks([0]);
    expect(r.nextDeadline()).toBe(Infinity);
    expect(r.allAcked()).toBe(true);
    expect(r.collectSends(t0 + 100000)).toEqual([]);
    expect(r.retransmits).toBe(2);
  });

  it('retransmits early once three later ids are acknowledged', () => {
    const r = new ReliableChannel();
    for (let i = 0; i < 4; i++) r.enqueue(Opcode.P_CONTROL_V1, P(`${i}`));
    r.collectSends(0);
    r.onAcks([1, 2]);
    expect(r.collectSends(10)).toEqual([]);
    r.onAcks([3]);
    expect(ids(r.collectSends(20))).toEqual([0]);
  });

  it('ignores ACKs for ids never sent or already freed', () => {
    const r = new ReliableChannel();
    r.enqueue(Opcode.P_CONTROL_V1, P('a'));
    expect(r.onAcks([0])).toBe(0); // not sent yet
    r.collectSends(0);
    expect(r.onAcks([0, 0, 7])).toBe(1);
  });
});

describe('ReliableChannel receiving', () => {
  it('delivers in order, buffers reordering, suppresses and re-ACKs duplicates', () => {
    const r = new ReliableChannel();
    expect(r.onReceive(1, Opcode.P_CONTROL_V1, P('b'))).toBe('new');
    expect(r.takeDeliverable()).toEqual([]);
    expect(r.onReceive(0, Opcode.P_CONTROL_V1, P('a'))).toBe('new');
    expect(r.takeDeliverable().map((m) => m.payload.toString())).toEqual(['a', 'b']);
    expect(r.takeAcks(8, false)).toEqual([0, 1]);
    expect(r.onReceive(0, Opcode.P_CONTROL_V1, P('a'))).toBe('duplicate');
    expect(r.takeDeliverable()).toEqual([]);
    expect(r.takeAcks(8, false)).toEqual([0]); // a duplicate means our ACK was lost: ACK again
    expect(r.duplicates).toBe(1);
  });

  it('drops ids beyond the 12-packet window without acknowledging them', () => {
    const r = new ReliableChannel();
    expect(RECV_WINDOW).toBe(12);
    expect(r.onReceive(12, Opcode.P_CONTROL_V1, P('far'))).toBe('outOfWindow');
    expect(r.hasPendingAcks()).toBe(false);
    expect(r.onReceive(11, Opcode.P_CONTROL_V1, P('edge'))).toBe('new');
    expect(r.takeAcks(8, false)).toEqual([11]);
  });

  it('copies the payload (the caller may reuse its packet buffer)', () => {
    const r = new ReliableChannel();
    const pkt = Buffer.from('hello');
    r.onReceive(0, Opcode.P_CONTROL_V1, pkt);
    pkt.fill(0);
    expect(r.takeDeliverable()[0]!.payload.toString()).toBe('hello');
  });

  it('limits ACK ids per packet and re-sends recent ACKs from history', () => {
    const r = new ReliableChannel();
    for (let i = 0; i < 6; i++) r.onReceive(i, Opcode.P_CONTROL_V1, P(`${i}`));
    expect(r.takeAcks(4, false)).toEqual([5, 4, 3, 2]);
    expect(r.takeAcks(4, false)).toEqual([1, 0]);
    expect(r.hasPendingAcks()).toBe(false);
    // history fills later packets so a lost ACK is recovered cheaply
    expect(r.takeAcks(4, true)).toEqual([5, 4, 3, 2]);
    r.onReceive(6, Opcode.P_CONTROL_V1, P('6'));
    expect(r.takeAcks(4, true)).toEqual([6, 5, 4, 3]);
  });

  it('survives random loss, duplication and reordering between two channels (fixed clock)', () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const a = new ReliableChannel();
    const b = new ReliableChannel();
    const N = 40;
    for (let i = 0; i < N; i++) a.enqueue(Opcode.P_CONTROL_V1, P(`msg${i}`));
    const got: string[] = [];
    let now = 0;
    for (let step = 0; step < 400 && got.length < N; step++) {
      const flight = a.collectSends(now).map((m) => ({ ...m }));
      // shuffle, lose 30 %, duplicate 20 %
      flight.sort(() => rnd() - 0.5);
      for (const m of flight) {
        if (rnd() < 0.3) continue;
        const copies = rnd() < 0.2 ? 2 : 1;
        for (let c = 0; c < copies; c++) b.onReceive(m.messageId, m.opcode, m.payload);
      }
      for (const m of b.takeDeliverable()) got.push(m.payload.toString());
      const acks = b.takeAcks(8, true);
      if (rnd() > 0.3) a.onAcks(acks);
      now += 500;
    }
    expect(got).toEqual(Array.from({ length: N }, (_, i) => `msg${i}`));
  });
});

describe('ReliableChannel under duplicate floods', () => {
  it('keeps at most MAX_PENDING_ACKS ACKs queued, newest first, however many old ids are replayed', () => {
    const r = new ReliableChannel();
    const N = 1000;
    for (let i = 0; i < N; i++) {
      r.onReceive(i, Opcode.P_CONTROL_V1, Buffer.from('x'));
      r.takeDeliverable();
    }
    r.takeAcks(N, false);
    // replay every delivered id once: each is a duplicate that asks for an ACK
    for (let i = 0; i < N; i++) expect(r.onReceive(i, Opcode.P_CONTROL_V1, Buffer.from('x'))).toBe('duplicate');
    const acks = r.takeAcks(10_000, false);
    expect(acks.length).toBe(MAX_PENDING_ACKS);
    expect(acks[0]).toBe(N - 1);
    expect(r.hasPendingAcks()).toBe(false);
  });
});
