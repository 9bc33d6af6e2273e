import { describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { TCP_MAX_QUEUED_BYTES, TCP_STAGING_BYTES, TcpTransport, tcpBatchWriter } from '../../../src/gateway/ssl-transports.js';
import type { SslServerCounters } from '../../../src/ssl/server/session-manager.js';

/** A socket stand-in that records each write (as a copy) and how much it still holds. */
class FakeSocket {
  writes: Buffer[] = [];
  writableLength = 0;
  destroyed = false;
  write(b: Buffer): boolean {
    this.writes.push(Buffer.from(b));
    return true;
  }
}

function setup() {
  const sock = new FakeSocket();
  const counters = { tcpBackpressureDrops: 0 } as SslServerCounters;
  const t = new TcpTransport(sock as unknown as Socket, counters, () => 0);
  /** what JsDataPath.send does: reserve room, write the packet at slotOff, commit its length */
  const send = (payload: Buffer): void => {
    const buf = t.reserve(payload.length);
    payload.copy(buf, t.slotOff);
    t.commit(payload.length);
  };
  return { sock, counters, t, send };
}

const tick = (): Promise<void> => new Promise((r) => process.nextTick(r));

describe('TcpTransport', () => {
  it('the frames of one batch reach the socket as one write at flush: 2-byte length, then the packet, each', () => {
    const { sock, t, send } = setup();
    send(Buffer.from([1, 2, 3]));
    send(Buffer.from([4]));
    send(Buffer.alloc(300, 7));
    expect(sock.writes).toHaveLength(0);
    t.flush();
    expect(sock.writes).toHaveLength(1);
    const w = sock.writes[0]!;
    expect(w.subarray(0, 9)).toEqual(Buffer.from([0, 3, 1, 2, 3, 0, 1, 4, 0x01]));
    expect(w.readUInt16BE(8)).toBe(300);
    expect(w.length).toBe(2 + 3 + 2 + 1 + 2 + 300);
    t.flush(); // nothing new: no empty write
    expect(sock.writes).toHaveLength(1);
  });

  it('a packet sent outside a batch (a keepalive ping) is written on the next tick without a flush', async () => {
    const { sock, send } = setup();
    send(Buffer.from([9, 9]));
    await tick();
    expect(sock.writes).toEqual([Buffer.from([0, 2, 9, 9])]);
  });

  it('a full staging buffer is written and replaced, never overwritten while the socket holds it', () => {
    const { sock, t, send } = setup();
    const big = Buffer.alloc(1400, 0xab);
    const n = Math.ceil((TCP_STAGING_BYTES * 2) / 1402) + 1;
    for (let i = 0; i < n; i++) {
      big[0] = i & 0xff;
      send(big);
    }
    t.flush();
    const all = Buffer.concat(sock.writes);
    expect(all.length).toBe(n * 1402);
    expect(sock.writes.length).toBeGreaterThanOrEqual(3);
    for (let i = 0; i < n; i++) {
      expect(all.readUInt16BE(i * 1402)).toBe(1400);
      expect(all[i * 1402 + 2]).toBe(i & 0xff);
    }
  });

  it('drops (and counts) data beyond TCP_MAX_QUEUED_BYTES queued on the socket', () => {
    const { sock, counters, t, send } = setup();
    sock.writableLength = TCP_MAX_QUEUED_BYTES + 1;
    send(Buffer.from([1]));
    t.flush();
    expect(sock.writes).toHaveLength(0);
    expect(counters.tcpBackpressureDrops).toBe(1);
  });

  it('writes nothing to a destroyed socket', () => {
    const { sock, t, send } = setup();
    sock.destroyed = true;
    send(Buffer.from([1]));
    t.flush();
    expect(sock.writes).toHaveLength(0);
  });
});

describe('tcpBatchWriter (frames the native data plane encrypted)', () => {
  it('one batch is one socket write of the Buffer as given', () => {
    const sock = new FakeSocket();
    const counters = { tcpBackpressureDrops: 0 } as SslServerCounters;
    const w = tcpBatchWriter(sock as unknown as Socket, counters);
    const batch = Buffer.from([0, 2, 9, 9, 0, 1, 7]);
    w(batch, 2);
    expect(sock.writes).toEqual([batch]);
    expect(counters.tcpBackpressureDrops).toBe(0);
  });

  it('over TCP_MAX_QUEUED_BYTES queued on the socket the batch is dropped and its frames counted; a destroyed socket gets nothing', () => {
    const sock = new FakeSocket();
    const counters = { tcpBackpressureDrops: 0 } as SslServerCounters;
    const w = tcpBatchWriter(sock as unknown as Socket, counters);
    sock.writableLength = TCP_MAX_QUEUED_BYTES - 3;
    w(Buffer.alloc(4), 2);
    expect(sock.writes).toHaveLength(0);
    expect(counters.tcpBackpressureDrops).toBe(2);
    sock.writableLength = 0;
    sock.destroyed = true;
    w(Buffer.alloc(4), 1);
    expect(sock.writes).toHaveLength(0);
    expect(counters.tcpBackpressureDrops).toBe(2);
  });
});
