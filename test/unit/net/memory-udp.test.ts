import { describe, expect, it } from 'vitest';
import { PacketBatch } from '../../../src/common/batch.js';
import { bytesToIp } from '../../../src/common/ip.js';
import { MemoryUdp, MemoryUdpNetwork } from '../../../src/net/memory-udp.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('MemoryUdp', () => {
  it('a linked pair exchanges batches asynchronously, with the sender endpoint per slot', async () => {
    const [a, b] = MemoryUdp.pair(4500);
    const got: string[] = [];
    let batches = 0;
    b.start((batch) => {
      batches++;
      for (let i = 0; i < batch.count; i++) {
        got.push(`${batch.packet(i)}|${batch.family[i]}|${bytesToIp(batch.addr.subarray(i * 16, i * 16 + 4))}|${batch.port[i]}`);
      }
    });
    const out = new PacketBatch(3, 256, 16);
    for (const s of ['x', 'y', 'z']) out.push(Buffer.from(s), 4, Buffer.from([192, 0, 2, 2]), 4500);
    expect(a.send(out)).toBe(3);
    expect(a.sendTo(Buffer.from('w'), 4, '192.0.2.2', 4500)).toBe(true);
    expect(got).toEqual([]);
    await tick();
    expect(got).toEqual(['x|4|192.0.2.1|4500', 'y|4|192.0.2.1|4500', 'z|4|192.0.2.1|4500', 'w|4|192.0.2.1|4500']);
    expect(batches).toBe(1);
    expect(a.stats()).toMatchObject({ txPackets: 4, txBytes: 4 });
    expect(b.stats()).toMatchObject({ rxPackets: 4 });
  });

  it('the copy sent is independent of the sender batch (it may be reused on return)', async () => {
    const [a, b] = MemoryUdp.pair();
    const got: string[] = [];
    b.start((batch) => got.push(batch.packet(0).toString()));
    const out = new PacketBatch(1, 64, 0);
    out.push(Buffer.from('one'), 4, Buffer.from([192, 0, 2, 2]), b.port);
    a.send(out);
    out.buf.fill(0x21);
    await tick();
    expect(got).toEqual(['one']);
  });

  it('filters, undeliverable datagrams, ephemeral ports and IPv6', async () => {
    const net = new MemoryUdpNetwork();
    const a = net.bind('2001:db8::1', 0);
    const b = net.bind('2001:db8::2', 500);
    expect(a.port).toBeGreaterThan(0);
    expect(() => net.bind('2001:db8::2', 500)).toThrow(/in use/);
    const got: string[] = [];
    b.start((batch) => {
      for (let i = 0; i < batch.count; i++) got.push(`${batch.packet(i)}|${batch.family[i]}|${bytesToIp(batch.addr.subarray(i * 16, i * 16 + 16))}`);
    });
    net.filter = (d) => d.data.toString() !== 'drop';
    a.sendTo(Buffer.from('keep'), 6, '2001:db8::2', 500);
    a.sendTo(Buffer.from('drop'), 6, '2001:db8::2', 500);
    a.sendTo(Buffer.from('nobody'), 6, '2001:db8::3', 500);
    await tick();
    expect(got).toEqual(['keep|6|2001:db8::1']);
    expect(net.undeliverable).toBe(1);
    b.close();
    a.sendTo(Buffer.from('late'), 6, '2001:db8::2', 500);
    await tick();
    expect(got).toHaveLength(1);
    expect(net.undeliverable).toBe(2);
  });
});
