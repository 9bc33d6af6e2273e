import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TcpDeframer, frameForTcp } from '../../../../src/ssl/wire/tcp-framing.js';

function collect() {
  const frames: Buffer[] = [];
  const d = new TcpDeframer((buf, off, len) => frames.push(Buffer.from(buf.subarray(off, off + len))));
  return { d, frames };
}

describe('TcpDeframer', () => {
  it('parses the recorded client hard reset frame', () => {
    const { d, frames } = collect();
    const pkt = Buffer.from('38cb3a27b28d7562fb0000000000', 'hex');
    d.push(frameForTcp(pkt));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.equals(pkt)).toBe(true);
    expect(d.pendingBytes).toBe(0);
  });

  it('delivers frames inside one chunk as views without copying; copies only a frame that crosses chunks', () => {
    const views: Buffer[] = [];
    const d = new TcpDeframer((buf) => views.push(buf));
    const a = frameForTcp(Buffer.alloc(10, 1));
    const b = frameForTcp(Buffer.alloc(20, 2));
    const chunk = Buffer.concat([a, b]);
    d.push(chunk);
    expect(views.every((v) => v === chunk)).toBe(true);
    expect(d.copiedFrames).toBe(0);
    d.push(b.subarray(0, 5));
    d.push(b.subarray(5));
    expect(d.copiedFrames).toBe(1);
    expect(d.framesIn).toBe(3);
  });

  it('a length split across chunks, one byte at a time', () => {
    const { d, frames } = collect();
    const f = frameForTcp(Buffer.from('hello world'));
    for (const byte of f) d.push(Buffer.from([byte]));
    expect(frames.map((x) => x.toString())).toEqual(['hello world']);
  });

  it('a zero length breaks the stream (the caller closes the connection)', () => {
    const { d, frames } = collect();
    expect(d.push(Buffer.from([0, 0, 1, 2]))).toBe(false);
    expect(d.failed).toMatch(/bad frame length 0/);
    expect(d.push(frameForTcp(Buffer.from('x')))).toBe(false);
    expect(frames).toHaveLength(0);
  });

  it('property: any split of any frame sequence yields the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 3000 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1, maxLength: 40 }),
        (packets, cuts) => {
          const stream = Buffer.concat(packets.map((p) => frameForTcp(Buffer.from(p))));
          const { d, frames } = collect();
          let i = 0;
          let c = 0;
          while (i < stream.length) {
            const n = cuts[c++ % cuts.length]!;
            d.push(stream.subarray(i, i + n));
            i += n;
          }
          if (frames.length !== packets.length) return false;
          return frames.every((f, k) => f.equals(Buffer.from(packets[k]!))) && d.pendingBytes === 0;
        },
      ),
      { numRuns: 200 },
    );
  });
});
