// Fuzz target: the OpenVPN-over-TCP stream framing (2-byte big-endian length, src/ssl/wire/
// tcp-framing.ts TcpDeframer) fed in chunks. Byte 0 is the maximum frame size used here (in units of
// 64 bytes, 0 = the default), byte 1 seeds the chunk split, the rest is the stream. Whatever the
// split, the frames delivered must be the same as when the whole stream arrives at once, each must
// lie inside the buffer handed over, and the parser must fail at the same point.
import { TCP_MAX_FRAME, TcpDeframer } from '../../../src/ssl/wire/tcp-framing.js';
import { invariant } from './check.js';

export const maxLen = 8192;

function frames(stream: Buffer, maxFrame: number, split: number): { out: string[]; failed: string | null } {
  const out: string[] = [];
  const d = new TcpDeframer((buf, off, len) => {
    invariant(off >= 0 && len > 0 && off + len <= buf.length, `frame [${off}, ${off + len}) outside a ${buf.length}-byte buffer`);
    out.push(buf.toString('hex', off, off + len));
  }, maxFrame);
  let s = split || 1;
  let i = 0;
  while (i < stream.length) {
    s = (s * 1103515245 + 12345) >>> 0;
    // one byte at a time now and then (a length split across chunks), else up to 300 bytes
    const n = split === 0 ? stream.length : (s >>> 16) % 7 === 0 ? 1 : 1 + ((s >>> 8) % 300);
    const ok = d.push(stream.subarray(i, i + n));
    invariant(ok === (d.failed === null), 'push() result disagrees with failed');
    i += n;
  }
  invariant(d.pendingBytes <= stream.length, `pendingBytes ${d.pendingBytes} > stream length`);
  return { out, failed: d.failed };
}

export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const maxFrame = data[0] === 0 ? TCP_MAX_FRAME : data[0]! * 64;
  const stream = data.subarray(2);
  const whole = frames(stream, maxFrame, 0);
  const split = frames(stream, maxFrame, data[1]! + 1);
  invariant(whole.out.join() === split.out.join(), 'chunk split changed the frames delivered');
  invariant(whole.failed === split.failed, `chunk split changed the failure: ${whole.failed} vs ${split.failed}`);
}
