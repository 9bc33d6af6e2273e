import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ParseError } from '../../../../src/common/errors.js';
import {
  decodeDataHeader,
  isDataOpcode,
  writeDataV1Header,
  writeDataV2Header,
  type DataPacketHeader,
} from '../../../../src/ssl/wire/data-packet.js';

// Captured server → client first data packet (kid 0, peer-id 0, pid 1, tag, ciphertext).
const RECORDED = Buffer.from('4800000000000001c6e92a644d43fe3f303a764cce17925598ccb8', 'hex');

describe('data-packet header codec', () => {
  it('decodes the recorded P_DATA_V2 packet and re-encodes its header byte for byte', () => {
    const h = decodeDataHeader(RECORDED) as DataPacketHeader;
    expect(h).toMatchObject({ opcode: 9, keyId: 0, peerId: 0, packetId: 1, tagOff: 8, dataOff: 24, dataLen: 3 });
    const out = Buffer.alloc(8);
    expect(writeDataV2Header(out, 0, h.keyId, h.peerId, h.packetId)).toBe(8);
    expect(out.equals(RECORDED.subarray(0, 8))).toBe(true);
  });

  it('P_DATA_V1: op/key-id then packet-id, no peer-id', () => {
    const pkt = Buffer.alloc(5 + 16 + 10);
    writeDataV1Header(pkt, 0, 5, 0xdeadbeef);
    expect(pkt[0]).toBe(0x35);
    const h = decodeDataHeader(pkt) as DataPacketHeader;
    expect(h).toMatchObject({ opcode: 6, keyId: 5, peerId: 0xffffff, packetId: 0xdeadbeef, tagOff: 5, dataOff: 21, dataLen: 10 });
  });

  it('control opcodes and truncated packets are ParseErrors with an offset', () => {
    const ctl = Buffer.from('38cb3a27b28d7562fb0000000000', 'hex'); // hard reset client v2
    expect(isDataOpcode(ctl[0]!)).toBe(false);
    const e = decodeDataHeader(ctl);
    expect(e).toBeInstanceOf(ParseError);
    for (let n = 0; n < 25; n++) {
      const r = decodeDataHeader(RECORDED.subarray(0, n));
      expect(r, `len ${n}`).toBeInstanceOf(ParseError);
    }
    expect(decodeDataHeader(RECORDED.subarray(0, 25))).not.toBeInstanceOf(ParseError);
  });

  it('round-trips any V2 header; random bytes only ever give a header or a ParseError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0xffffff }), fc.integer({ min: 0, max: 0xffffffff }), (kid, peer, pid) => {
        const b = Buffer.alloc(8 + 16 + 1);
        writeDataV2Header(b, 0, kid, peer, pid);
        const h = decodeDataHeader(b) as DataPacketHeader;
        return h.keyId === kid && h.peerId === peer && h.packetId === pid && h.opcode === 9;
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const r = decodeDataHeader(Buffer.from(bytes));
        return r instanceof ParseError || r.dataLen >= 1;
      }),
    );
  });
});
