// Fuzz target: one OpenVPN control-channel packet as it arrives on UDP (or one TCP frame), through
// decodeControlPacket (src/ssl/wire/control-packet.ts), which also reads the ACK block. Bad packets
// are returned as ParseError, never thrown. A packet that decodes must encode again to the bytes
// it came from (the format has no slack: every byte is a field).
import { ParseError } from '../../../src/common/errors.js';
import { decodeControlPacket, encodeControlPacket } from '../../../src/ssl/wire/control-packet.js';
import { allowParseError, invariant } from './check.js';

export const maxLen = 2048;
export const dictionary = [Buffer.from([0x38]), Buffer.from([0x40]), Buffer.from([0x20]), Buffer.from([0x28]), Buffer.from([0x50])];

export function fuzz(data: Buffer): void {
  const p = allowParseError(() => decodeControlPacket(data));
  if (p instanceof ParseError) return;
  const again = encodeControlPacket(p);
  invariant(again.equals(data), `control packet re-encodes to ${again.toString('hex')}`);
}
