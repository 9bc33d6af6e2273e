/**
 * Special data-channel payloads (after decryption and compression unframing);
 * OpenVPN ping.c / occ.h.
 *
 *   keepalive ping : exactly the 16-byte PING_MAGIC
 *   OCC message    : the 16-byte OCC_MAGIC, then one opcode byte (OCC_EXIT = 6), then opcode data
 *   anything else  : an IP packet
 */
export const PING_MAGIC = Buffer.from('2a187bf3641eb4cb07ed2d0a981fc748', 'hex');
export const OCC_MAGIC = Buffer.from('287f346bd4ef7a812d56b8d3afc5459c', 'hex');
export const MAGIC_SIZE = 16;

// OCC opcodes (occ.h)
export const OCC_REQUEST = 0;
export const OCC_REPLY = 1;
export const OCC_MTU_LOAD_REQUEST = 2;
export const OCC_MTU_LOAD = 3;
export const OCC_MTU_REQUEST = 4;
export const OCC_MTU_REPLY = 5;
export const OCC_EXIT = 6;

/** An OCC_EXIT payload (17 bytes), as a client with explicit-exit-notify sends it without cc-exit. */
export const OCC_EXIT_PAYLOAD = Buffer.concat([OCC_MAGIC, Buffer.from([OCC_EXIT])]);

function magicAt(buf: Buffer, off: number, magic: Buffer): boolean {
  for (let i = 0; i < MAGIC_SIZE; i++) if (buf[off + i] !== magic[i]) return false;
  return true;
}

export function isPing(buf: Buffer, off: number, len: number): boolean {
  return len === MAGIC_SIZE && buf[off] === 0x2a && magicAt(buf, off, PING_MAGIC);
}

/** Returns the OCC opcode if buf[off, off+len) is an OCC message, else -1. */
export function occOpcode(buf: Buffer, off: number, len: number): number {
  if (len < MAGIC_SIZE + 1 || buf[off] !== 0x28 || !magicAt(buf, off, OCC_MAGIC)) return -1;
  return buf[off + MAGIC_SIZE]!;
}
