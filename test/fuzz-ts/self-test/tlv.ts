// A deliberately broken toy parser for the fuzzer's self-test (test/fuzz-ts/fuzz-ts.test.ts):
// records of [type u8][length u8][value]. It has the three classic bugs a length field invites,
// each behind a type byte and a length check:
//   type 0x17: reads a u32 value without checking that 4 bytes are there (RangeError),
//   type 0x2a: a zero length does not advance the cursor (endless loop),
//   type 0x33: allocates a 40 MiB scratch buffer for any value (a big allocation from 3 bytes).
// Like the real decoders it reports bad input with a ParseError, which is allowed.
import { ParseError } from '../../../src/common/errors.js';

export type Bug = 'crash' | 'hang' | 'alloc';

export function parseTlv(buf: Buffer, bugs: readonly Bug[]): number {
  let off = 0;
  let sum = 0;
  while (off < buf.length) {
    if (off + 2 > buf.length) throw new ParseError('tlv', off, 'truncated record header');
    const type = buf[off]!;
    const len = buf[off + 1]!;
    if (type === 0x2a && bugs.includes('hang')) {
      if (len === 0) continue; // BUG: never advances
    }
    if (off + 2 + len > buf.length) throw new ParseError('tlv', off + 1, `length ${len} exceeds input`);
    if (type === 0x17 && bugs.includes('crash') && len > 0) {
      sum += buf.readUInt32BE(off + 2); // BUG: len may be < 4
    } else if (type === 0x33 && bugs.includes('alloc') && len > 0) {
      sum += Buffer.alloc(40 * 1024 * 1024)[len]!; // BUG: allocation not bounded by the input
    } else {
      sum += len;
    }
    off += 2 + len;
  }
  return sum;
}
