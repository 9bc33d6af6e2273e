/**
 * The stateless three-way start of a UDP control session, as the OpenVPN 2.6 server does it
 * (`mudp.c` do_pre_decrypt_check, `ssl_pkt.c` tls_reset_standalone / check_session_hmac_and_pkt_id).
 *
 *   client                                         server
 *   HARD_RESET_CLIENT_V2 { sid C, mid 0 }   -->    no state: sid S = HMAC(secret, slot, addr, port, C)
 *                                           <--    HARD_RESET_SERVER_V2 { sid S, [ACK 0 for C], mid 0 }
 *   P_ACK_V1 / P_CONTROL_V1 { sid C, ACK .. S } -> S recomputed for this or the previous slot:
 *                                                  the address is proven, the session is created
 *
 * A spoofed source never sees S, so it cannot complete the exchange: a flood of hard resets costs
 * one HMAC and one reply each and leaves nothing behind. The reply is sent once (the client
 * retransmits its reset if the reply is lost, and gets the same S while the slot lasts).
 *
 * Reflection: OpenVPN always acknowledges the client's reset in the reply (26 bytes for a 14-byte
 * reset). Here the ACK is only included when the reply is then no larger than the request; a
 * plain 14-byte reset gets a 14-byte reply without it, and the session acknowledges the reset as
 * soon as the client's echo created it (the client starts TLS only once its reset is acknowledged,
 * OpenVPN `ssl.c` S_PRE_START -> S_START, so this costs one round trip, not a retransmission).
 *
 * Early negotiation (OpenVPN 2.6 `ssl.c` parse_early_negotiation_tlvs): the payload of the client's
 * reset may carry TLVs (type u16, length u16, value). EARLY_NEG_FLAGS with RESEND_WKC only matters
 * for tls-crypt-v2 clients; other types are skipped. A 2.6 tls-crypt-v2 client announces early
 * negotiation in the packet-id of its V3 reset (0x0f000000 | n, see src/ssl/wire/tls-wrap.ts); its
 * reply carries EARLY_NEG_FLAGS RESEND_WKC so that its next packet (P_CONTROL_WKC_V1) brings the
 * wrapped client key again and the server needs no state. V3 resets without it are not answered. Clients before 2.6 send no payload. A reset
 * whose TLVs do not parse is not answered.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseIp } from '../../common/ip.js';
import { ParseError } from '../../common/errors.js';
import { ACK_MAX_IDS } from '../wire/ack.js';
import { type ControlPacket, type ControlWrap, decodeControlPacket, encodeControlPacket } from '../wire/control-packet.js';
import { Opcode, SESSION_ID_SIZE } from '../wire/opcodes.js';

// ---- spec constants (OpenVPN 2.6 ssl_pkt.h) ----
export const TLV_TYPE_EARLY_NEG_FLAGS = 0x0001;
export const EARLY_NEG_FLAG_RESEND_WKC = 0x0001;

// ---- implementation choices ----
/** the HMAC's time slot: half the handshake window, as OpenVPN (`handwindow / 2`) */
export const SID_SLOT_MS = 30_000;

/** A client hard reset worth answering: its session id (a copy) and early-negotiation flags. */
export interface InitialReset {
  clientSid: Buffer;
  earlyNegFlags: number;
}

/** A verified echo: the client proved it receives packets at its address. */
export interface VerifiedEcho {
  clientSid: Buffer;
  serverSid: Buffer;
}

export class SessionIdCookie {
  private readonly secret: Buffer;
  private readonly input = Buffer.alloc(4 + 1 + 16 + 2 + SESSION_ID_SIZE);

  constructor(secret?: Buffer) {
    this.secret = secret ? Buffer.from(secret) : randomBytes(32);
  }

  /** The server session id for this client session id and source in time slot `slot`. */
  sessionId(address: string, port: number, clientSid: Buffer, slot: number): Buffer {
    const b = this.input;
    b.fill(0);
    b.writeUInt32BE(slot >>> 0, 0);
    const ip = parseIp(address);
    if (ip) {
      b[4] = ip.family;
      ip.bytes.copy(b, 5);
    }
    b.writeUInt16BE(port & 0xffff, 21);
    clientSid.copy(b, 23, 0, SESSION_ID_SIZE);
    const sid = createHmac('sha256', this.secret).update(b).digest().subarray(0, SESSION_ID_SIZE);
    if (sid.every((x) => x === 0)) sid[0] = 1; // a zero session id is invalid on the wire
    return Buffer.from(sid);
  }

  /** True when `serverSid` is the id for this source in the current or the previous slot. */
  verify(address: string, port: number, clientSid: Buffer, serverSid: Buffer, nowMs: number): boolean {
    const slot = Math.floor(nowMs / SID_SLOT_MS);
    for (let s = slot; s >= slot - 1; s--) {
      if (timingSafeEqual(this.sessionId(address, port, clientSid, s), serverSid)) return true;
    }
    return false;
  }
}

/** The reply's TLVs asking a tls-crypt-v2 client to resend its wrapped key (OpenVPN tls_reset_standalone). */
export const RESEND_WKC_TLVS = Buffer.from([0, TLV_TYPE_EARLY_NEG_FLAGS, 0, 2, 0, EARLY_NEG_FLAG_RESEND_WKC]);

/**
 * A P_CONTROL_HARD_RESET_CLIENT_V2 or _V3 (already unwrapped): message id 0, no ACKs, key id 0, and
 * parseable early-negotiation TLVs. Returns null for anything else.
 */
export function parseInitialReset(clear: Buffer): InitialReset | null {
  if (clear.length < 14 || (clear[0] !== Opcode.P_CONTROL_HARD_RESET_CLIENT_V2 << 3 && clear[0] !== Opcode.P_CONTROL_HARD_RESET_CLIENT_V3 << 3)) return null;
  const p = decodeControlPacket(clear);
  if (p instanceof ParseError || p.messageId !== 0 || p.ack.ids.length !== 0) return null;
  const flags = parseEarlyNegotiation(p.payload);
  if (flags < 0) return null;
  return { clientSid: Buffer.from(p.sessionId), earlyNegFlags: flags };
}

/** The EARLY_NEG_FLAGS value of a reset's TLVs (0 without), or -1 when the TLVs are malformed. */
export function parseEarlyNegotiation(tlvs: Buffer): number {
  let flags = 0;
  let off = 0;
  while (off < tlvs.length) {
    if (tlvs.length - off < 4) return -1;
    const type = tlvs.readUInt16BE(off);
    const len = tlvs.readUInt16BE(off + 2);
    off += 4;
    if (tlvs.length - off < len) return -1;
    if (type === TLV_TYPE_EARLY_NEG_FLAGS) {
      if (len !== 2) return -1;
      flags = tlvs.readUInt16BE(off);
    }
    off += len;
  }
  return flags;
}

/**
 * The server's stateless HARD_RESET_SERVER_V2, wrapped. `requestLen` is the size of the client's
 * reset on the wire: the ACK of its message 0 is included only if the reply stays within it.
 */
export function buildResetReply(serverSid: Buffer, clientSid: Buffer, requestLen: number, wrap: ControlWrap, nowMs: number, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const withAck: ControlPacket = {
    opcode: Opcode.P_CONTROL_HARD_RESET_SERVER_V2,
    keyId: 0,
    sessionId: serverSid,
    ack: { ids: [0], remoteSessionId: clientSid },
    messageId: 0,
    payload: tlvs,
  };
  let clear = encodeControlPacket(withAck);
  if (clear.length + wrap.overhead > requestLen) clear = encodeControlPacket({ ...withAck, ack: { ids: [], remoteSessionId: null } });
  return wrap.wrap(clear, nowMs);
}

/**
 * The client's second packet (unwrapped), if it echoes a server session id: P_ACK_V1,
 * P_CONTROL_V1 or (when our reply did not acknowledge its reset, the client piggy-backs its ACK on
 * the reset's retransmission) HARD_RESET_CLIENT_V2, with key id 0, an ACK block naming our session id, only ids of the three-way start
 * acknowledged (<= 1) and, for P_CONTROL_V1, message id <= 1 (OpenVPN check_session_hmac_and_pkt_id).
 * The caller verifies the session id with SessionIdCookie.verify.
 */
export function parseEcho(clear: Buffer): VerifiedEcho | null {
  if (clear.length < 1) return null;
  const op = clear[0]! >> 3;
  const okOp = op === Opcode.P_ACK_V1 || op === Opcode.P_CONTROL_V1 || op === Opcode.P_CONTROL_HARD_RESET_CLIENT_V2 || op === Opcode.P_CONTROL_HARD_RESET_CLIENT_V3;
  if (!okOp || (clear[0]! & 7) !== 0) return null;
  const p = decodeControlPacket(clear);
  if (p instanceof ParseError || p.ack.remoteSessionId === null || p.ack.ids.length > ACK_MAX_IDS) return null;
  for (const id of p.ack.ids) if (id > 1) return null;
  if (p.messageId !== null && p.messageId > 1) return null;
  return { clientSid: Buffer.from(p.sessionId), serverSid: Buffer.from(p.ack.remoteSessionId) };
}
