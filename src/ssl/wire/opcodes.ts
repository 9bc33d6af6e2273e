/**
 * OpenVPN packet opcodes (OpenVPN 2.6 `ssl_pkt.h`; wire-protocol draft "Packet opcodes").
 *
 * Byte 0 of every packet:
 *
 *    7 6 5 4 3 2 1 0
 *   +-+-+-+-+-+-+-+-+
 *   |  opcode |keyid|
 *   +-+-+-+-+-+-+-+-+
 */

// ---- spec constants -------------------------------------------------------------------------
export const Opcode = {
  P_CONTROL_HARD_RESET_CLIENT_V1: 1,
  P_CONTROL_HARD_RESET_SERVER_V1: 2,
  P_CONTROL_SOFT_RESET_V1: 3,
  P_CONTROL_V1: 4,
  P_ACK_V1: 5,
  P_DATA_V1: 6,
  P_CONTROL_HARD_RESET_CLIENT_V2: 7,
  P_CONTROL_HARD_RESET_SERVER_V2: 8,
  P_DATA_V2: 9,
  P_CONTROL_HARD_RESET_CLIENT_V3: 10,
  P_CONTROL_WKC_V1: 11,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

export const OPCODE_SHIFT = 3;
export const KEY_ID_MASK = 0x07;
/** key ids run 0, 1..7, 1..7, ... (0 is never reused after the first key state) */
export const KEY_ID_MAX = 7;
export const SESSION_ID_SIZE = 8;
export const MESSAGE_ID_SIZE = 4;

export function opcodeOf(byte0: number): number {
  return byte0 >>> OPCODE_SHIFT;
}

export function keyIdOf(byte0: number): number {
  return byte0 & KEY_ID_MASK;
}

export function opKeyByte(opcode: number, keyId: number): number {
  return ((opcode << OPCODE_SHIFT) | (keyId & KEY_ID_MASK)) & 0xff;
}

/** Control-channel opcodes we parse with the control-packet codec (2.6 legal: 3..11 minus data). */
export function isControlOpcode(op: number): boolean {
  return (
    op === Opcode.P_CONTROL_SOFT_RESET_V1 ||
    op === Opcode.P_CONTROL_V1 ||
    op === Opcode.P_ACK_V1 ||
    op === Opcode.P_CONTROL_HARD_RESET_CLIENT_V2 ||
    op === Opcode.P_CONTROL_HARD_RESET_SERVER_V2 ||
    op === Opcode.P_CONTROL_HARD_RESET_CLIENT_V3 ||
    op === Opcode.P_CONTROL_WKC_V1
  );
}

export function isDataOpcode(op: number): boolean {
  return op === Opcode.P_DATA_V1 || op === Opcode.P_DATA_V2;
}

/** Reliable opcodes carry a message packet-id and are acknowledged (everything but P_ACK_V1). */
export function isReliableOpcode(op: number): boolean {
  return isControlOpcode(op) && op !== Opcode.P_ACK_V1;
}

export function isHardResetOpcode(op: number): boolean {
  return (
    op === Opcode.P_CONTROL_HARD_RESET_CLIENT_V2 ||
    op === Opcode.P_CONTROL_HARD_RESET_SERVER_V2 ||
    op === Opcode.P_CONTROL_HARD_RESET_CLIENT_V3
  );
}

/** Next key id after `keyId` for a renegotiation: 1..7, wrapping to 1. */
export function nextKeyId(keyId: number): number {
  return keyId >= KEY_ID_MAX ? 1 : keyId + 1;
}

export function opcodeName(op: number): string {
  for (const [name, v] of Object.entries(Opcode)) if (v === op) return name;
  return `OPCODE_${op}`;
}
