// RFC 7296 §3.3 Security Association Payload, with its Proposal (§3.3.1), Transform (§3.3.2)
// and Transform Attribute (§3.3.5) substructures.
//
// Proposal Substructure
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Last Substruc |   RESERVED    |         Proposal Length       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        SPI (variable)                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        <Transforms>                           ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Transform Substructure
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Last Substruc |   RESERVED    |        Transform Length       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |Transform Type |   RESERVED    |          Transform ID         |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Transform Attributes                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Data Attributes
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |A|       Attribute Type        |    AF=0  Attribute Length     |
// |F|                             |    AF=1  Attribute Value      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                   AF=0  Attribute Value                       |
// |                   AF=1  Not Transmitted                       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Last Substruc: 0 = last, 2 = more proposals follow, 3 = more transforms follow.
// The only attribute defined is Key Length (14, TV form). An unknown attribute makes the
// transform unusable (§3.3.6): it is recorded in `unknownAttributes` so selection can skip it.
import { ATTR_KEY_LENGTH, PayloadType } from '../constants.js';
import type { Proposal, SaPayload, Transform } from '../types.js';
import { fail, need } from '../check.js';

const LAST = 0;
const MORE_PROPOSALS = 2;
const MORE_TRANSFORMS = 3;
const PROPOSAL_HEADER_SIZE = 8;
const TRANSFORM_HEADER_SIZE = 8;
const ATTR_TV = 0x8000;

/** A decoded transform may carry this marker when it had attributes other than Key Length. */
export interface DecodedTransform extends Transform {
  unknownAttributes?: boolean;
}

export function decode(body: Buffer, at: number): SaPayload {
  const proposals: Proposal[] = [];
  let o = 0;
  for (;;) {
    need('SA', body, at, o, PROPOSAL_HEADER_SIZE);
    const last = body[o]!;
    const len = body.readUInt16BE(o + 2);
    if (last !== LAST && last !== MORE_PROPOSALS) fail('SA', at + o, `bad proposal Last Substruc ${last}`);
    if (len < PROPOSAL_HEADER_SIZE) fail('SA', at + o + 2, `proposal length ${len}`);
    need('SA', body, at, o, len);
    proposals.push(decodeProposal(body.subarray(o, o + len), at + o));
    o += len;
    if (last === LAST) break;
  }
  if (o !== body.length) fail('SA', at + o, `${body.length - o} bytes after the last proposal`);
  if (proposals.length === 0) fail('SA', at, 'no proposals');
  return { type: PayloadType.SA, proposals };
}

function decodeProposal(p: Buffer, at: number): Proposal {
  const num = p[4]!;
  const protocol = p[5]!;
  const spiSize = p[6]!;
  const numTransforms = p[7]!;
  need('Proposal', p, at, PROPOSAL_HEADER_SIZE, spiSize);
  const spi = p.subarray(PROPOSAL_HEADER_SIZE, PROPOSAL_HEADER_SIZE + spiSize);
  const transforms: Transform[] = [];
  let o = PROPOSAL_HEADER_SIZE + spiSize;
  for (let i = 0; i < numTransforms; i++) {
    need('Transform', p, at, o, TRANSFORM_HEADER_SIZE);
    const last = p[o]!;
    const len = p.readUInt16BE(o + 2);
    if (len < TRANSFORM_HEADER_SIZE) fail('Transform', at + o + 2, `transform length ${len}`);
    need('Transform', p, at, o, len);
    const isLast = i === numTransforms - 1;
    if (last !== (isLast ? LAST : MORE_TRANSFORMS)) {
      fail('Transform', at + o, `Last Substruc ${last} on transform ${i + 1} of ${numTransforms}`);
    }
    transforms.push(decodeTransform(p.subarray(o, o + len), at + o));
    o += len;
  }
  if (o !== p.length) fail('Proposal', at + o, `${p.length - o} bytes after ${numTransforms} transforms`);
  return { num, protocol, spi, transforms };
}

function decodeTransform(t: Buffer, at: number): DecodedTransform {
  const tr: DecodedTransform = { type: t[4]!, id: t.readUInt16BE(6) };
  let o = TRANSFORM_HEADER_SIZE;
  while (o < t.length) {
    need('Attribute', t, at, o, 4);
    const typeField = t.readUInt16BE(o);
    const attrType = typeField & 0x7fff;
    if (typeField & ATTR_TV) {
      if (attrType === ATTR_KEY_LENGTH) tr.keyLength = t.readUInt16BE(o + 2);
      else tr.unknownAttributes = true;
      o += 4;
    } else {
      const len = t.readUInt16BE(o + 2);
      need('Attribute', t, at, o + 4, len);
      tr.unknownAttributes = true;
      o += 4 + len;
    }
  }
  return tr;
}

function transformLength(t: Transform): number {
  return TRANSFORM_HEADER_SIZE + (t.keyLength !== undefined ? 4 : 0);
}

export function proposalLength(p: Proposal): number {
  let n = PROPOSAL_HEADER_SIZE + p.spi.length;
  for (const t of p.transforms) n += transformLength(t);
  return n;
}

export function encodedLength(p: SaPayload): number {
  let n = 0;
  for (const pr of p.proposals) n += proposalLength(pr);
  return n;
}

export function encode(p: SaPayload, buf: Buffer, off: number): number {
  let o = off;
  p.proposals.forEach((pr, i) => {
    const len = proposalLength(pr);
    buf[o] = i === p.proposals.length - 1 ? LAST : MORE_PROPOSALS;
    buf[o + 1] = 0;
    buf.writeUInt16BE(len, o + 2);
    buf[o + 4] = pr.num;
    buf[o + 5] = pr.protocol;
    buf[o + 6] = pr.spi.length;
    buf[o + 7] = pr.transforms.length;
    pr.spi.copy(buf, o + PROPOSAL_HEADER_SIZE);
    let t = o + PROPOSAL_HEADER_SIZE + pr.spi.length;
    pr.transforms.forEach((tr, j) => {
      const tl = transformLength(tr);
      buf[t] = j === pr.transforms.length - 1 ? LAST : MORE_TRANSFORMS;
      buf[t + 1] = 0;
      buf.writeUInt16BE(tl, t + 2);
      buf[t + 4] = tr.type;
      buf[t + 5] = 0;
      buf.writeUInt16BE(tr.id, t + 6);
      if (tr.keyLength !== undefined) {
        buf.writeUInt16BE(ATTR_TV | ATTR_KEY_LENGTH, t + 8);
        buf.writeUInt16BE(tr.keyLength, t + 10);
      }
      t += tl;
    });
    o += len;
  });
  return o;
}
