// RFC 7296 §3.15 Configuration Payload
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C| RESERVED    |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   CFG Type    |                    RESERVED                   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                   Configuration Attributes                    ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// §3.15.1 Configuration Attribute
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |R|         Attribute Type      |            Length             |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                             Value                             ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The R bit is reserved: sent 0, ignored (masked off) on receipt.
import { PayloadType } from '../constants.js';
import type { CpAttribute, CpPayload } from '../types.js';
import { need } from '../check.js';

export enum CfgType {
  CFG_REQUEST = 1,
  CFG_REPLY = 2,
  CFG_SET = 3,
  CFG_ACK = 4,
}

export enum CfgAttr {
  INTERNAL_IP4_ADDRESS = 1,
  INTERNAL_IP4_NETMASK = 2,
  INTERNAL_IP4_DNS = 3,
  INTERNAL_IP4_NBNS = 4,
  INTERNAL_IP4_DHCP = 6,
  APPLICATION_VERSION = 7,
  INTERNAL_IP6_ADDRESS = 8,
  INTERNAL_IP6_DNS = 10,
  INTERNAL_IP4_SUBNET = 13,
  SUPPORTED_ATTRIBUTES = 14,
  INTERNAL_IP6_SUBNET = 15,
  INTERNAL_DNS_DOMAIN = 25,
}

export function decode(body: Buffer, at: number): CpPayload {
  need('CP', body, at, 0, 4);
  const attributes: CpAttribute[] = [];
  let o = 4;
  while (o < body.length) {
    need('CP', body, at, o, 4);
    const type = body.readUInt16BE(o) & 0x7fff;
    const len = body.readUInt16BE(o + 2);
    need('CP', body, at, o + 4, len);
    attributes.push({ type, value: body.subarray(o + 4, o + 4 + len) });
    o += 4 + len;
  }
  return { type: PayloadType.CP, cfgType: body[0]!, attributes };
}

export function encodedLength(p: CpPayload): number {
  let n = 4;
  for (const a of p.attributes) n += 4 + a.value.length;
  return n;
}

export function encode(p: CpPayload, buf: Buffer, off: number): number {
  buf[off] = p.cfgType;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  let o = off + 4;
  for (const a of p.attributes) {
    buf.writeUInt16BE(a.type & 0x7fff, o);
    buf.writeUInt16BE(a.value.length, o + 2);
    a.value.copy(buf, o + 4);
    o += 4 + a.value.length;
  }
  return o;
}
