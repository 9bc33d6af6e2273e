import { describe, expect, it } from 'vitest';
import { PacketBatch } from '../../../src/common/batch.js';
import { MemoryTun } from '../../../src/tun/memory-tun.js';

const ipv4 = (tag: number): Buffer => Buffer.from([0x45, 0, 0, 20, tag, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);

describe('MemoryTun', () => {
  it('delivers injected packets asynchronously, in batches of at most the capacity', async () => {
    const tun = new MemoryTun({ batchSize: 4 });
    const batches: number[][] = [];
    tun.start((b) => batches.push(Array.from({ length: b.count }, (_, i) => b.packet(i)[4]!)));
    tun.inject(...Array.from({ length: 10 }, (_, i) => ipv4(i)));
    expect(batches).toEqual([]); // never synchronous
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(tun.stats()).toMatchObject({ rxPackets: 10, readBatches: 3 });
    // packets sit in headroom-aligned slots like the native device
    expect(tun.batch.off[0]).toBe(tun.batch.headroom);
  });

  it('holds packets injected before start until start', async () => {
    const tun = new MemoryTun();
    tun.inject(ipv4(7));
    await new Promise((r) => setImmediate(r));
    expect(tun.pending).toBe(1);
    const seen: number[] = [];
    tun.start((b) => seen.push(b.count));
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual([1]);
  });

  it('records written packets and refuses what the kernel would refuse', () => {
    const tun = new MemoryTun();
    const b = new PacketBatch(3, 256, 32);
    b.push(ipv4(1));
    b.push(Buffer.from([0x00, 1, 2]));
    b.push(ipv4(2));
    expect(tun.write(b)).toBe(2);
    expect(tun.written.map((p) => p[4])).toEqual([1, 2]);
    expect(tun.stats()).toMatchObject({ txPackets: 2, txBytes: 40, writeErrors: 1 });
    expect(() => tun.inject(Buffer.alloc(tun.mtu + 1, 0x45))).toThrow(RangeError);
  });

  it('after close(), nothing is delivered and writes return 0', async () => {
    const tun = new MemoryTun();
    let calls = 0;
    tun.start(() => calls++);
    tun.inject(ipv4(1));
    tun.close();
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(0);
    const b = new PacketBatch(1, 256, 0);
    b.push(ipv4(1));
    expect(tun.write(b)).toBe(0);
  });
});
