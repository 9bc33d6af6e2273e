// RFC 7383 §2.5 Encrypted Fragment Payload (SKF, type 53)
//
//                      1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |        Fragment Number        |        Total Fragments        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                     Initialization Vector                     |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Encrypted content                        ~
// +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |               |             Padding (0-255 octets)            |
// +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
// |                                               |  Pad Length   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                    Integrity Checksum Data                    ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Next Payload: the first inner payload's type in fragment 1, 0 in the others. Each fragment is
// protected on its own; for AEAD the AAD is the IKE header + these 8 bytes (36 bytes).
import { need, fail } from '../check.js';

export const SKF_HEADER_SIZE = 8; // generic header + fragment number + total

export interface SkfFields {
  fragmentNumber: number;
  totalFragments: number;
}

/** Reads the fragment number/total from an SKF payload starting at `off` (its generic header). */
export function decodeFields(buf: Buffer, off: number): SkfFields {
  need('SKF', buf, 0, off, SKF_HEADER_SIZE);
  const fragmentNumber = buf.readUInt16BE(off + 4);
  const totalFragments = buf.readUInt16BE(off + 6);
  if (fragmentNumber < 1 || totalFragments < 1 || fragmentNumber > totalFragments) {
    fail('SKF', off + 4, `fragment ${fragmentNumber} of ${totalFragments}`);
  }
  return { fragmentNumber, totalFragments };
}

export function encodeFields(f: SkfFields, buf: Buffer, off: number): void {
  buf.writeUInt16BE(f.fragmentNumber, off + 4);
  buf.writeUInt16BE(f.totalFragments, off + 6);
}
