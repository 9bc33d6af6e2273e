// RFC 7296 §3.13 Traffic Selector Payload (TSi 44, TSr 45)
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Number of TSs |                 RESERVED                      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       <Traffic Selectors>                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// §3.13.1 Traffic Selector
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   TS Type     |IP Protocol ID*|       Selector Length         |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |           Start Port*         |           End Port*           |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                         Starting Address*                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                         Ending Address*                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// TS_IPV4_ADDR_RANGE (7): length 16; TS_IPV6_ADDR_RANGE (8): length 40. Other types are rejected.
import { TsType, type PayloadType } from '../constants.js';
import type { TrafficSelector, TsPayload } from '../types.js';
import { fail, need } from '../check.js';

const TS_HEADER_SIZE = 8;

function addrLen(tsType: number): number {
  return tsType === TsType.TS_IPV4_ADDR_RANGE ? 4 : tsType === TsType.TS_IPV6_ADDR_RANGE ? 16 : 0;
}

export function decode(body: Buffer, at: number, type: PayloadType.TSi | PayloadType.TSr): TsPayload {
  need('TS', body, at, 0, 4);
  const count = body[0]!;
  const selectors: TrafficSelector[] = [];
  let o = 4;
  for (let i = 0; i < count; i++) {
    need('TS', body, at, o, TS_HEADER_SIZE);
    const tsType = body[o]!;
    const len = body.readUInt16BE(o + 2);
    const a = addrLen(tsType);
    if (a === 0) fail('TS', at + o, `unsupported TS type ${tsType}`);
    if (len !== TS_HEADER_SIZE + 2 * a) fail('TS', at + o + 2, `selector length ${len} for TS type ${tsType}`);
    need('TS', body, at, o, len);
    selectors.push({
      tsType: tsType as TsType,
      ipProtocol: body[o + 1]!,
      startPort: body.readUInt16BE(o + 4),
      endPort: body.readUInt16BE(o + 6),
      startAddr: body.subarray(o + 8, o + 8 + a),
      endAddr: body.subarray(o + 8 + a, o + 8 + 2 * a),
    });
    o += len;
  }
  if (o !== body.length) fail('TS', at + o, `${body.length - o} bytes after ${count} selectors`);
  return { type, selectors };
}

export function encodedLength(p: TsPayload): number {
  let n = 4;
  for (const s of p.selectors) n += TS_HEADER_SIZE + 2 * s.startAddr.length;
  return n;
}

export function encode(p: TsPayload, buf: Buffer, off: number): number {
  buf[off] = p.selectors.length;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  let o = off + 4;
  for (const s of p.selectors) {
    const a = addrLen(s.tsType);
    if (a === 0 || s.startAddr.length !== a || s.endAddr.length !== a) {
      throw new RangeError(`traffic selector type ${s.tsType} with ${s.startAddr.length}/${s.endAddr.length}-byte addresses`);
    }
    buf[o] = s.tsType;
    buf[o + 1] = s.ipProtocol;
    buf.writeUInt16BE(TS_HEADER_SIZE + 2 * a, o + 2);
    buf.writeUInt16BE(s.startPort, o + 4);
    buf.writeUInt16BE(s.endPort, o + 6);
    s.startAddr.copy(buf, o + 8);
    s.endAddr.copy(buf, o + 8 + a);
    o += TS_HEADER_SIZE + 2 * a;
  }
  return o;
}
