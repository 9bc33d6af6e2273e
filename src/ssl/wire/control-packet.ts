/**
 * OpenVPN control packets without tls-auth / tls-crypt (OpenVPN 2.6 `ssl_pkt.c`,
 * `reliable.c`; wire-protocol draft "Control channel").
 *
 *   0        1                9     10            10+4n      18+4n (if n>0)
 *   +--------+----------------+-----+-------------+----------+--------------+---------+
 *   |op|kid  | sender sid (8) |  n  | n x ack id  | ack sid  | message id   | payload |
 *   +--------+----------------+-----+-------------+----------+--------------+---------+
 *                                    \__ ACK block (ack.ts) _/ \ absent in P_ACK_V1 ___/
 *
 * tls-auth and tls-crypt insert their fields after the session id (or encrypt everything after
 * the 17-byte header). They are a separate `ControlWrap` layer: the session unwraps a datagram
 * into this clear layout before `decodeControlPacket`, and wraps the encoded bytes after
 * `encodeControlPacket` (at send time, so every retransmission is re-wrapped).
 */
import { ParseError, VpnError } from '../../common/errors.js';
import { type AckBlock, ackEncodedLength, decodeAck, encodeAck } from './ack.js';
import { Opcode, SESSION_ID_SIZE, MESSAGE_ID_SIZE, isControlOpcode, keyIdOf, opcodeOf, opKeyByte, isHardResetOpcode } from './opcodes.js';

export interface ControlPacket {
  opcode: number;
  keyId: number;
  /** the sender's session id (8 bytes) */
  sessionId: Buffer;
  ack: AckBlock;
  /** message packet-id; null for P_ACK_V1 */
  messageId: number | null;
  /** TLS bytes (P_CONTROL_V1), TLVs or nothing (resets); empty for P_ACK_V1 */
  payload: Buffer;
}

/** The smallest control packet: a hard reset with no ACKs and no payload. */
export const CONTROL_MIN_SIZE = 1 + SESSION_ID_SIZE + 1 + MESSAGE_ID_SIZE;

/** Seam for tls-auth / tls-crypt. `unwrap` returns the clear control packet bytes or a ParseError. */
export interface ControlWrap {
  readonly overhead: number;
  wrap(clear: Buffer, nowMs: number): Buffer;
  unwrap(wire: Buffer, nowMs: number): Buffer | ParseError;
}

/** No tls-auth / tls-crypt: the 2.6 client's default. */
export const plainWrap: ControlWrap = {
  overhead: 0,
  wrap: (clear) => clear,
  unwrap: (wire) => wire,
};

export function controlEncodedLength(p: ControlPacket): number {
  return 1 + SESSION_ID_SIZE + ackEncodedLength(p.ack) + (p.opcode === Opcode.P_ACK_V1 ? 0 : MESSAGE_ID_SIZE + p.payload.length);
}

/** Writes the packet into `buf` at `off` and returns the new offset. */
export function encodeControlPacketInto(p: ControlPacket, buf: Buffer, off: number): number {
  if (p.sessionId.length !== SESSION_ID_SIZE) throw new VpnError('ERR_INVALID_ARG', 'session id must be 8 bytes');
  buf[off++] = opKeyByte(p.opcode, p.keyId);
  p.sessionId.copy(buf, off);
  off += SESSION_ID_SIZE;
  off = encodeAck(p.ack, buf, off);
  if (p.opcode === Opcode.P_ACK_V1) return off;
  buf.writeUInt32BE((p.messageId ?? 0) >>> 0, off);
  off += MESSAGE_ID_SIZE;
  p.payload.copy(buf, off);
  return off + p.payload.length;
}

export function encodeControlPacket(p: ControlPacket): Buffer {
  const buf = Buffer.allocUnsafe(controlEncodedLength(p));
  encodeControlPacketInto(p, buf, 0);
  return buf;
}

/**
 * Decodes a clear control packet. Session ids and payload are views into `pkt` (copy to keep).
 * Rejects: non-control opcodes, a hard reset with key id != 0, an all-zero sender session id,
 * short packets, bad ACK blocks, payload on P_ACK_V1.
 */
export function decodeControlPacket(pkt: Buffer): ControlPacket | ParseError {
  if (pkt.length < 1) return new ParseError('control', 0, 'empty packet');
  const opcode = opcodeOf(pkt[0]!);
  const keyId = keyIdOf(pkt[0]!);
  if (!isControlOpcode(opcode)) return new ParseError('control', 0, `opcode ${opcode} is not a control opcode`);
  if (isHardResetOpcode(opcode) && keyId !== 0) return new ParseError('control', 0, `hard reset with key id ${keyId}`);
  if (pkt.length < 1 + SESSION_ID_SIZE + 1) return new ParseError('control', pkt.length, 'truncated header');
  const sessionId = pkt.subarray(1, 1 + SESSION_ID_SIZE);
  if (isZero(sessionId)) return new ParseError('control', 1, 'zero session id');
  const a = decodeAck(pkt, 1 + SESSION_ID_SIZE);
  if (a instanceof ParseError) return a;
  if (a.ack.remoteSessionId && isZero(a.ack.remoteSessionId)) return new ParseError('control', a.next - SESSION_ID_SIZE, 'zero ack session id');
  let off = a.next;
  if (opcode === Opcode.P_ACK_V1) {
    if (a.ack.ids.length === 0) return new ParseError('control', 9, 'P_ACK_V1 without acks');
    if (off !== pkt.length) return new ParseError('control', off, 'trailing bytes after P_ACK_V1');
    return { opcode, keyId, sessionId, ack: a.ack, messageId: null, payload: pkt.subarray(off, off) };
  }
  if (off + MESSAGE_ID_SIZE > pkt.length) return new ParseError('control', off, 'missing message id');
  const messageId = pkt.readUInt32BE(off);
  off += MESSAGE_ID_SIZE;
  const payload = pkt.subarray(off);
  return { opcode, keyId, sessionId, ack: a.ack, messageId, payload };
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
