/**
 * The ACK block of an OpenVPN control packet (OpenVPN 2.6 `reliable.c`, `reliable_ack_read` /
 * `reliable_ack_write`; wire-protocol draft "Control channel").
 *
 *   +--------+----------------------------+---------------------------+
 *   | n (u8) | n x message packet-id (u32)| remote session id (8 B)   |
 *   +--------+----------------------------+---------------------------+
 *                                           ^ present only when n > 0
 *
 * The session id after the list is the one of the side whose packets are acknowledged (the
 * receiver of this ACK): it must match its own session id.
 */
import { ParseError, VpnError } from '../../common/errors.js';
import { SESSION_ID_SIZE } from './opcodes.js';

/** A P_ACK_V1 carries up to 8 ids; the 2.6 client rejects more as malformed. */
export const ACK_MAX_IDS = 8;
/** OpenVPN piggy-backs at most 4 ids on P_CONTROL_* and reset packets. */
export const ACK_PIGGYBACK_MAX_IDS = 4;

export interface AckBlock {
  /** acknowledged message packet-ids, in wire order (newest first by OpenVPN's habit) */
  ids: number[];
  /** the acknowledged side's session id (8 bytes); null iff ids is empty */
  remoteSessionId: Buffer | null;
}

export const EMPTY_ACK: AckBlock = Object.freeze({ ids: [], remoteSessionId: null }) as AckBlock;

export function ackEncodedLength(ack: AckBlock): number {
  return ack.ids.length === 0 ? 1 : 1 + 4 * ack.ids.length + SESSION_ID_SIZE;
}

/** Writes the block at `off`, returns the new offset. */
export function encodeAck(ack: AckBlock, buf: Buffer, off: number): number {
  const n = ack.ids.length;
  if (n > ACK_MAX_IDS) throw new VpnError('ERR_INVALID_ARG', `ACK block with ${n} ids (max ${ACK_MAX_IDS})`);
  buf[off++] = n;
  if (n === 0) return off;
  for (const id of ack.ids) {
    buf.writeUInt32BE(id >>> 0, off);
    off += 4;
  }
  const sid = ack.remoteSessionId;
  if (!sid || sid.length !== SESSION_ID_SIZE) throw new VpnError('ERR_INVALID_ARG', 'ACK block needs the 8-byte remote session id');
  sid.copy(buf, off);
  return off + SESSION_ID_SIZE;
}

/**
 * Decodes the block at `off`. The returned session id is a view into `buf` (copy to keep it).
 * Returns the block and the offset after it, or a ParseError.
 */
export function decodeAck(buf: Buffer, off: number): { ack: AckBlock; next: number } | ParseError {
  if (off + 1 > buf.length) return new ParseError('ack', off, 'missing ack count');
  const n = buf[off]!;
  if (n > ACK_MAX_IDS) return new ParseError('ack', off, `ack count ${n} > ${ACK_MAX_IDS}`);
  let p = off + 1;
  if (n === 0) return { ack: { ids: [], remoteSessionId: null }, next: p };
  if (p + 4 * n + SESSION_ID_SIZE > buf.length) return new ParseError('ack', p, `truncated ack block (${n} ids)`);
  const ids: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    ids[i] = buf.readUInt32BE(p);
    p += 4;
  }
  const remoteSessionId = buf.subarray(p, p + SESSION_ID_SIZE);
  return { ack: { ids, remoteSessionId }, next: p + SESSION_ID_SIZE };
}
