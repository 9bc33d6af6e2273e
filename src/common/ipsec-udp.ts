/**
 * IKE and ESP over UDP: the ports, and how a datagram on the NAT-T port is told apart.
 *
 * RFC 3948 §2.2: on port 4500 an IKE message is preceded by a 4-byte zero non-ESP marker (the
 * place of an ESP SPI, which is never 0); anything else is ESP (the first 4 bytes are its SPI).
 * RFC 3948 §2.3: a single 0xFF byte is a NAT-keepalive, to be dropped.
 *
 * The TypeScript data plane and the daemon's own 4500 path use these; the native data plane does
 * the same in C++ (src/native/engine/engine.cc).
 */

// ---- spec constants ----
/** RFC 7296 §2: IKE listens on UDP 500. */
export const IKE_PORT = 500;
/** RFC 7296 §2.23, RFC 3948: IKE after NAT detection, and ESP in UDP, on UDP 4500. */
export const IKE_NATT_PORT = 4500;
/** RFC 3948 §2.2: the zero non-ESP marker before an IKE message on port 4500. */
export const NON_ESP_MARKER_SIZE = 4;
/** RFC 3948 §2.3: a NAT-keepalive is one 0xFF byte. */
export const NAT_KEEPALIVE_BYTE = 0xff;

// ---- what a datagram on port 4500 is (classifyNattDatagram) ----
export const NATT_ESP = 0;
export const NATT_IKE = 1;
export const NATT_KEEPALIVE = 2;

/**
 * NATT_KEEPALIVE, NATT_IKE (the message starts NON_ESP_MARKER_SIZE bytes in) or NATT_ESP (which may
 * still be too short to be ESP). Per packet: no allocation.
 */
export function classifyNattDatagram(buf: Buffer, off: number, len: number): number {
  if (len === 1 && buf[off] === NAT_KEEPALIVE_BYTE) return NATT_KEEPALIVE;
  if (len >= NON_ESP_MARKER_SIZE && buf.readUInt32BE(off) === 0) return NATT_IKE;
  return NATT_ESP;
}

/** Writes the non-ESP marker at `off`; returns where the IKE message goes. */
export function writeNonEspMarker(buf: Buffer, off: number): number {
  buf.writeUInt32BE(0, off);
  return off + NON_ESP_MARKER_SIZE;
}

/** A new buffer: the non-ESP marker, then `message` (control path: one IKE message). */
export function withNonEspMarker(message: Uint8Array): Buffer {
  const framed = Buffer.alloc(NON_ESP_MARKER_SIZE + message.length);
  framed.set(message, NON_ESP_MARKER_SIZE);
  return framed;
}
