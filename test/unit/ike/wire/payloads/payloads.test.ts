// Per-payload codecs on byte layouts captured from strongSwan 5.9.8 (marked [lab]): decode, check fields, encode, compare bytes; plus truncation
// and bad-length cases that must give a ParseError with the byte offset.
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../../../src/common/errors.js';
import * as sa from '../../../../../src/ike/wire/payloads/sa.js';
import * as ke from '../../../../../src/ike/wire/payloads/ke.js';
import * as nonce from '../../../../../src/ike/wire/payloads/nonce.js';
import * as id from '../../../../../src/ike/wire/payloads/id.js';
import * as auth from '../../../../../src/ike/wire/payloads/auth.js';
import * as cert from '../../../../../src/ike/wire/payloads/cert.js';
import * as certreq from '../../../../../src/ike/wire/payloads/certreq.js';
import * as notify from '../../../../../src/ike/wire/payloads/notify.js';
import * as del from '../../../../../src/ike/wire/payloads/delete.js';
import * as vendor from '../../../../../src/ike/wire/payloads/vendor.js';
import * as ts from '../../../../../src/ike/wire/payloads/ts.js';
import * as cp from '../../../../../src/ike/wire/payloads/cp.js';
import { proposalToString } from '../../../../../src/ike/config/proposal.js';
import { PayloadType, TsType } from '../../../../../src/ike/wire/constants.js';

const hx = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** decode → encode must give the same bytes back */
function roundTrip<P>(codec: { encodedLength(p: P): number; encode(p: P, b: Buffer, o: number): number }, p: P, bytes: Buffer): void {
  expect(codec.encodedLength(p)).toBe(bytes.length);
  const out = Buffer.alloc(bytes.length + 3);
  expect(codec.encode(p, out, 3)).toBe(bytes.length + 3);
  expect(out.subarray(3).toString('hex')).toBe(bytes.toString('hex'));
}

function parseErrorAt(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ParseError);
    return (e as ParseError).offset;
  }
  throw new Error('expected a ParseError');
}

describe('SA (RFC 7296 §3.3)', () => {
  // [lab] IKE aes128-sha256-ecp256, body after the generic header "22 00 0030"
  const ike = hx(`00 00 002c 01 01 00 04
    03 00 000c 01 00 000c 800e0080
    03 00 0008 03 00 000c
    03 00 0008 02 00 0005
    00 00 0008 04 00 0013`);
  // [lab] ESP in IKE_AUTH: SPI 4 bytes, ENCR 12/128, INTEG 12, ESN 0
  const esp = hx(`00 00 0028 01 03 04 03 c1a2b3d4
    03 00 000c 01 00 000c 800e0080
    03 00 0008 03 00 000c
    00 00 0008 05 00 0000`);

  it('decodes and re-encodes the lab IKE proposal', () => {
    const p = sa.decode(ike, 4);
    expect(p.proposals).toHaveLength(1);
    const pr = p.proposals[0]!;
    expect([pr.num, pr.protocol, pr.spi.length]).toEqual([1, 1, 0]);
    expect(proposalToString(pr)).toBe('AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256');
    roundTrip(sa, p, ike);
  });

  it('decodes and re-encodes the lab ESP proposal with its SPI', () => {
    const p = sa.decode(esp, 4);
    expect(p.proposals[0]!.spi.toString('hex')).toBe('c1a2b3d4');
    expect(proposalToString(p.proposals[0]!)).toBe('AES_CBC_128/HMAC_SHA2_256_128/NO_EXT_SEQ');
    roundTrip(sa, p, esp);
  });

  it('two proposals: Last Substruc 2 then 0', () => {
    const two = Buffer.concat([Buffer.from(ike), esp]);
    two[0] = 2;
    const p = sa.decode(two, 0);
    expect(p.proposals.map((x) => x.protocol)).toEqual([1, 3]);
    roundTrip(sa, p, two);
  });

  it('rejects truncation, a bad proposal length, a wrong transform count and trailing bytes', () => {
    for (let n = 0; n < ike.length; n++) expect(() => sa.decode(ike.subarray(0, n), 0)).toThrow(ParseError);
    const badLen = Buffer.from(ike);
    badLen.writeUInt16BE(0x2d, 2);
    expect(parseErrorAt(() => sa.decode(badLen, 100))).toBeGreaterThanOrEqual(100);
    const badCount = Buffer.from(ike);
    badCount[7] = 5;
    expect(() => sa.decode(badCount, 0)).toThrow(ParseError);
    const badLast = Buffer.from(ike);
    badLast[8] = 0; // first transform claims to be last
    expect(() => sa.decode(badLast, 0)).toThrow(ParseError);
    expect(() => sa.decode(Buffer.concat([ike, Buffer.alloc(1)]), 0)).toThrow(ParseError);
    expect(() => sa.decode(Buffer.alloc(0), 0)).toThrow(ParseError);
  });

  it('marks transforms with unknown attributes', () => {
    const t = hx('00 00 0014 01 01 00 01  00 00 000c 01 00 000c 800f0001');
    const p = sa.decode(t, 0);
    expect((p.proposals[0]!.transforms[0] as sa.DecodedTransform).unknownAttributes).toBe(true);
  });
});

describe('KE, Nonce, ID, AUTH, CERT, CERTREQ, V', () => {
  it('KE: [lab] group 19 with 64 bytes x|y', () => {
    const b = Buffer.concat([hx('0013 0000'), Buffer.alloc(64, 0xab)]);
    const p = ke.decode(b, 0);
    expect(p.group).toBe(19);
    expect(p.data.length).toBe(64);
    roundTrip(ke, p, b);
    expect(parseErrorAt(() => ke.decode(hx('0013 00'), 40))).toBe(40);
  });

  it('Nonce: 16..256 bytes', () => {
    const b = Buffer.alloc(32, 7);
    roundTrip(nonce, nonce.decode(b, 0), b);
    expect(() => nonce.decode(Buffer.alloc(15), 0)).toThrow(ParseError);
    expect(() => nonce.decode(Buffer.alloc(257), 0)).toThrow(ParseError);
    expect(nonce.decode(Buffer.alloc(16), 0).nonce.length).toBe(16);
    expect(nonce.decode(Buffer.alloc(256), 0).nonce.length).toBe(256);
  });

  it("ID: [lab] a@example.org as ID_RFC822_ADDR; the body is IDx'", () => {
    const b = hx('03000000 61406578616d706c652e6f7267');
    const p = id.decode(b, 0, PayloadType.IDi);
    expect([p.type, p.idType, p.data.toString()]).toEqual([PayloadType.IDi, 3, 'a@example.org']);
    roundTrip(id, p, b);
    expect(() => id.decode(hx('030000'), 0, PayloadType.IDr)).toThrow(ParseError);
  });

  it('AUTH: method 2 with 32 bytes', () => {
    const b = Buffer.concat([hx('02000000'), Buffer.alloc(32, 1)]);
    const p = auth.decode(b, 0);
    expect(p.method).toBe(2);
    roundTrip(auth, p, b);
    expect(() => auth.decode(hx('02'), 0)).toThrow(ParseError);
  });

  it('CERT / CERTREQ: encoding 4; CERTREQ hashes are 20-byte SPKI SHA-1s', () => {
    const c = Buffer.concat([hx('04'), Buffer.alloc(100, 0x30)]);
    roundTrip(cert, cert.decode(c, 0), c);
    const r = Buffer.concat([hx('04'), Buffer.alloc(20, 1), Buffer.alloc(20, 2)]);
    const p = certreq.decode(r, 0);
    expect(certreq.caHashes(p).map((h) => h[0])).toEqual([1, 2]);
    roundTrip(certreq, p, r);
    expect(() => cert.decode(Buffer.alloc(0), 0)).toThrow(ParseError);
    expect(() => certreq.decode(Buffer.alloc(0), 0)).toThrow(ParseError);
  });

  it('V: opaque', () => {
    const b = Buffer.from('strongSwan');
    roundTrip(vendor, vendor.decode(b, 0), b);
  });
});

describe('Notify (RFC 7296 §3.10)', () => {
  it('[lab] INVALID_KE_PAYLOAD with group 0013', () => {
    const b = hx('00 00 0011 0013');
    const p = notify.decode(b, 0);
    expect([p.protocol, p.spi.length, p.notifyType, p.data.toString('hex')]).toEqual([0, 0, 17, '0013']);
    expect(notify.isErrorNotify(p.notifyType)).toBe(true);
    roundTrip(notify, p, b);
  });

  it('REKEY_SA with protocol 3 and a 4-byte SPI', () => {
    const b = hx('03 04 4009 2d4f6b69');
    const p = notify.decode(b, 0);
    expect([p.protocol, p.spi.toString('hex'), p.notifyType, p.data.length]).toEqual([3, '2d4f6b69', 16393, 0]);
    expect(notify.isErrorNotify(p.notifyType)).toBe(false);
    roundTrip(notify, p, b);
  });

  it('rejects an SPI size beyond the body', () => {
    expect(parseErrorAt(() => notify.decode(hx('03 08 4009 2d4f6b69'), 50))).toBe(54);
    expect(() => notify.decode(hx('00 00 40'), 0)).toThrow(ParseError);
  });

  it('notify() builds an IKE-wide notify', () => {
    expect(notify.notify(16430)).toEqual({ type: PayloadType.N, protocol: 0, spi: Buffer.alloc(0), notifyType: 16430, data: Buffer.alloc(0) });
  });
});

describe('Delete (RFC 7296 §3.11)', () => {
  it('[lab] D(IKE) 01000000 and D(ESP) 03040001 2d4f6b69', () => {
    const ikeD = hx('01000000');
    const p1 = del.decode(ikeD, 0);
    expect([p1.protocol, p1.spiSize, p1.spis.length]).toEqual([1, 0, 0]);
    roundTrip(del, p1, ikeD);
    const espD = hx('03040002 2d4f6b69 f9ddbfd8');
    const p2 = del.decode(espD, 0);
    expect(p2.spis.map((s) => s.toString('hex'))).toEqual(['2d4f6b69', 'f9ddbfd8']);
    roundTrip(del, p2, espD);
  });

  it('rejects a count that does not match the length', () => {
    expect(() => del.decode(hx('03040002 2d4f6b69'), 0)).toThrow(ParseError);
    expect(() => del.decode(hx('03040001 2d4f6b69 00'), 0)).toThrow(ParseError);
    expect(() => del.decode(hx('030400'), 0)).toThrow(ParseError);
  });
});

describe('TS (RFC 7296 §3.13)', () => {
  it('[lab] 10.1.0.0/16 any protocol/port', () => {
    const b = hx('01000000 07 00 0010 0000 ffff 0a010000 0a01ffff');
    const p = ts.decode(b, 0, PayloadType.TSi);
    expect(p.type).toBe(PayloadType.TSi);
    const s = p.selectors[0]!;
    expect([s.tsType, s.ipProtocol, s.startPort, s.endPort, s.startAddr.join('.'), s.endAddr.join('.')]).toEqual([
      TsType.TS_IPV4_ADDR_RANGE, 0, 0, 65535, '10.1.0.0', '10.1.255.255',
    ]);
    roundTrip(ts, p, b);
  });

  it('IPv6 selector of 40 bytes, and two selectors', () => {
    const v6 = hx('08 11 0028 0035 0035') ;
    const b = Buffer.concat([hx('02000000'), hx('07 00 0010 0000 ffff 0a010000 0a0100ff'), v6, Buffer.alloc(16, 0x20), Buffer.alloc(16, 0x20)]);
    const p = ts.decode(b, 0, PayloadType.TSr);
    expect(p.selectors.map((x) => x.startAddr.length)).toEqual([4, 16]);
    expect(p.selectors[1]!.ipProtocol).toBe(17);
    roundTrip(ts, p, b);
  });

  it('rejects a wrong selector length, unknown TS type, a short body and trailing bytes', () => {
    expect(() => ts.decode(hx('01000000 07 00 0011 0000 ffff 0a010000 0a01ffff00'), 0, PayloadType.TSi)).toThrow(ParseError);
    expect(() => ts.decode(hx('01000000 09 00 0010 0000 ffff 0a010000 0a01ffff'), 0, PayloadType.TSi)).toThrow(ParseError);
    expect(() => ts.decode(hx('02000000 07 00 0010 0000 ffff 0a010000 0a01ffff'), 0, PayloadType.TSi)).toThrow(ParseError);
    expect(() => ts.decode(hx('01000000 07 00 0010 0000 ffff 0a010000 0a01ffff 00'), 0, PayloadType.TSi)).toThrow(ParseError);
    expect(() => ts.decode(hx('010000'), 0, PayloadType.TSi)).toThrow(ParseError);
  });
});

describe('CP (RFC 7296 §3.15)', () => {
  it('[lab] CFG_REQUEST for an address and DNS, and the CFG_REPLY', () => {
    const req = hx('01000000 0001 0000 0003 0000');
    const p = cp.decode(req, 0);
    expect(p.cfgType).toBe(cp.CfgType.CFG_REQUEST);
    expect(p.attributes.map((a) => [a.type, a.value.length])).toEqual([[1, 0], [3, 0]]);
    roundTrip(cp, p, req);
    const reply = hx('02000000 0001 0004 0a030001 0003 0004 0a020035');
    const r = cp.decode(reply, 0);
    expect(r.attributes.map((a) => a.value.join('.'))).toEqual(['10.3.0.1', '10.2.0.53']);
    roundTrip(cp, r, reply);
  });

  it('masks the reserved R bit and rejects an attribute running past the end', () => {
    const p = cp.decode(hx('01000000 8001 0000'), 0);
    expect(p.attributes[0]!.type).toBe(1);
    expect(() => cp.decode(hx('02000000 0001 0004 0a03'), 0)).toThrow(ParseError);
    expect(() => cp.decode(hx('02000000 0001'), 0)).toThrow(ParseError);
  });
});
