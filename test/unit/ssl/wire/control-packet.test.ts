import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ParseError } from '../../../../src/common/errors.js';
import { decodeAck, encodeAck, ackEncodedLength } from '../../../../src/ssl/wire/ack.js';
import { type ControlPacket, decodeControlPacket, encodeControlPacket, controlEncodedLength } from '../../../../src/ssl/wire/control-packet.js';
import { Opcode, keyIdOf, nextKeyId, opcodeOf, opKeyByte } from '../../../../src/ssl/wire/opcodes.js';

// Captured between a 2.6.14 client and server.
const CLIENT_HARD_RESET = Buffer.from('38cb3a27b28d7562fb0000000000', 'hex');
const SERVER_HARD_RESET = Buffer.from('408aee6b2708a3aca50100000000cb3a27b28d7562fb00000000', 'hex');
const CLIENT_SID = Buffer.from('cb3a27b28d7562fb', 'hex');
const SERVER_SID = Buffer.from('8aee6b2708a3aca5', 'hex');

function dec(b: Buffer): ControlPacket {
  const p = decodeControlPacket(b);
  if (p instanceof ParseError) throw p;
  return p;
}

describe('opcodes', () => {
  it('splits and builds the op|key-id byte', () => {
    expect(opcodeOf(0x38)).toBe(Opcode.P_CONTROL_HARD_RESET_CLIENT_V2);
    expect(opcodeOf(0x4a)).toBe(Opcode.P_DATA_V2);
    expect(keyIdOf(0x4a)).toBe(2);
    expect(opKeyByte(Opcode.P_CONTROL_V1, 3)).toBe(0x23);
    expect(opKeyByte(Opcode.P_ACK_V1, 0)).toBe(0x28);
  });
  it('renegotiation key ids run 1..7 and wrap to 1, never 0', () => {
    const seq = [0];
    for (let i = 0; i < 9; i++) seq.push(nextKeyId(seq[seq.length - 1]!));
    expect(seq).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 1, 2]);
  });
});

describe('control packet codec on recorded bytes', () => {
  it('client hard reset: decode, check, re-encode', () => {
    const p = dec(CLIENT_HARD_RESET);
    expect(p.opcode).toBe(Opcode.P_CONTROL_HARD_RESET_CLIENT_V2);
    expect(p.keyId).toBe(0);
    expect(p.sessionId.equals(CLIENT_SID)).toBe(true);
    expect(p.ack.ids).toEqual([]);
    expect(p.messageId).toBe(0);
    expect(p.payload.length).toBe(0);
    expect(encodeControlPacket(p).equals(CLIENT_HARD_RESET)).toBe(true);
  });

  it('server hard reset with ACK [0] + client session id', () => {
    const p = dec(SERVER_HARD_RESET);
    expect(p.opcode).toBe(Opcode.P_CONTROL_HARD_RESET_SERVER_V2);
    expect(p.sessionId.equals(SERVER_SID)).toBe(true);
    expect(p.ack.ids).toEqual([0]);
    expect(p.ack.remoteSessionId!.equals(CLIENT_SID)).toBe(true);
    expect(p.messageId).toBe(0);
    expect(controlEncodedLength(p)).toBe(26);
    expect(encodeControlPacket(p).equals(SERVER_HARD_RESET)).toBe(true);
  });

  it('P_ACK_V1 has no message id: 1+8+1+4k+8 bytes', () => {
    const p: ControlPacket = { opcode: Opcode.P_ACK_V1, keyId: 1, sessionId: CLIENT_SID, ack: { ids: [5, 4, 3, 2], remoteSessionId: SERVER_SID }, messageId: null, payload: Buffer.alloc(0) };
    const b = encodeControlPacket(p);
    expect(b.length).toBe(1 + 8 + 1 + 16 + 8);
    expect(b[0]).toBe(0x29);
    const d = dec(b);
    expect(d.messageId).toBeNull();
    expect(d.ack.ids).toEqual([5, 4, 3, 2]);
  });

  it('P_CONTROL_V1 carries its payload after the message id', () => {
    const payload = Buffer.from('160301', 'hex');
    const p: ControlPacket = { opcode: Opcode.P_CONTROL_V1, keyId: 0, sessionId: CLIENT_SID, ack: { ids: [0], remoteSessionId: SERVER_SID }, messageId: 1, payload };
    const d = dec(encodeControlPacket(p));
    expect(d.messageId).toBe(1);
    expect(d.payload.equals(payload)).toBe(true);
  });

  it('rejects malformed packets with a ParseError', () => {
    const bad = [
      Buffer.alloc(0),
      Buffer.from('30cb3a27b28d7562fb0000000000', 'hex'), // P_DATA_V1 opcode
      Buffer.from('08cb3a27b28d7562fb0000000000', 'hex'), // key-method 1 hard reset
      Buffer.from('39cb3a27b28d7562fb0000000000', 'hex'), // hard reset with key id 1
      Buffer.from('380000000000000000' + '0000000000', 'hex'), // zero session id
      Buffer.from('38cb3a27b28d7562fb00000000', 'hex'), // message id truncated
      Buffer.from('28cb3a27b28d7562fb00', 'hex'), // ACK_V1 without acks
      Buffer.from('28cb3a27b28d7562fb0100000000' + '8aee6b2708a3aca5' + '00', 'hex'), // trailing byte after ACK_V1
      Buffer.from('20cb3a27b28d7562fb0900000000', 'hex'), // 9 acks
      Buffer.from('20cb3a27b28d7562fb020000000000000001' + '8aee6b27', 'hex'), // truncated ack sid
    ];
    for (const b of bad) expect(decodeControlPacket(b)).toBeInstanceOf(ParseError);
  });

  it('every single-byte flip of the recorded server reset is rejected or decodes to different fields', () => {
    for (let i = 0; i < SERVER_HARD_RESET.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const b = Buffer.from(SERVER_HARD_RESET);
        b[i]! ^= x;
        const d = decodeControlPacket(b);
        if (d instanceof ParseError) continue;
        // accepted: then it must not look like the original packet
        const same =
          d.opcode === Opcode.P_CONTROL_HARD_RESET_SERVER_V2 &&
          d.keyId === 0 &&
          d.sessionId.equals(SERVER_SID) &&
          d.ack.ids.length === 1 &&
          d.ack.ids[0] === 0 &&
          d.ack.remoteSessionId!.equals(CLIENT_SID) &&
          d.messageId === 0 &&
          d.payload.length === 0;
        expect(same, `flip 0x${x.toString(16)} at ${i}`).toBe(false);
      }
    }
  });

  it('property: decode(encode(x)) == x, and random bytes only ever give a value or a ParseError', () => {
    const sid = fc.uint8Array({ minLength: 8, maxLength: 8 }).filter((a) => a.some((v) => v !== 0)).map((a) => Buffer.from(a));
    const arb = fc.record({
      opcode: fc.constantFrom(Opcode.P_CONTROL_V1, Opcode.P_ACK_V1, Opcode.P_CONTROL_SOFT_RESET_V1),
      keyId: fc.integer({ min: 0, max: 7 }),
      sessionId: sid,
      ids: fc.array(fc.nat({ max: 0xffffffff }), { minLength: 0, maxLength: 8 }),
      ackSid: sid,
      messageId: fc.nat({ max: 0xffffffff }),
      payload: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
    });
    fc.assert(
      fc.property(arb, (r) => {
        const isAck = r.opcode === Opcode.P_ACK_V1;
        const ids = isAck && r.ids.length === 0 ? [1] : r.ids;
        const p: ControlPacket = {
          opcode: r.opcode,
          keyId: r.keyId,
          sessionId: r.sessionId,
          ack: { ids, remoteSessionId: ids.length ? r.ackSid : null },
          messageId: isAck ? null : r.messageId,
          payload: isAck ? Buffer.alloc(0) : r.payload,
        };
        const b = encodeControlPacket(p);
        const d = dec(b);
        expect(d.opcode).toBe(p.opcode);
        expect(d.keyId).toBe(p.keyId);
        expect(d.ack.ids).toEqual(ids);
        expect(d.messageId).toBe(p.messageId);
        expect(d.payload.equals(p.payload)).toBe(true);
        expect(encodeControlPacket(d).equals(b)).toBe(true);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (a) => {
        const r = decodeControlPacket(Buffer.from(a));
        expect(r instanceof ParseError || typeof r.opcode === 'number').toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe('ACK block', () => {
  it('round-trips and reports the session id only when ids are present', () => {
    const buf = Buffer.alloc(64);
    const end = encodeAck({ ids: [3, 2], remoteSessionId: SERVER_SID }, buf, 5);
    expect(end - 5).toBe(ackEncodedLength({ ids: [3, 2], remoteSessionId: SERVER_SID }));
    const d = decodeAck(buf, 5);
    if (d instanceof ParseError) throw d;
    expect(d.ack.ids).toEqual([3, 2]);
    expect(d.ack.remoteSessionId!.equals(SERVER_SID)).toBe(true);
    expect(d.next).toBe(end);
    const z = decodeAck(Buffer.from([0]), 0);
    if (z instanceof ParseError) throw z;
    expect(z.ack.remoteSessionId).toBeNull();
  });
  it('refuses to encode more than 8 ids (the client rejects such packets)', () => {
    expect(() => encodeAck({ ids: [1, 2, 3, 4, 5, 6, 7, 8, 9], remoteSessionId: SERVER_SID }, Buffer.alloc(64), 0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
  });
});

describe('recorded exchange with the openvpn 2.6.14 client (test/recorded/openvpn)', () => {
  const rec = JSON.parse(readFileSync(new URL('../../../recorded/openvpn/udp-control-2.6.14.json', import.meta.url), 'utf8')) as {
    clientSid: string;
    serverSid: string;
    packets: { t: number; dir: 'c2s' | 's2c'; hex: string }[];
  };

  it('every packet decodes, re-encodes byte for byte, and carries the right session ids', () => {
    expect(rec.packets.length).toBeGreaterThan(20);
    for (const r of rec.packets) {
      const b = Buffer.from(r.hex, 'hex');
      const p = dec(b);
      expect(encodeControlPacket(p).equals(b)).toBe(true);
      const [mine, theirs] = r.dir === 'c2s' ? [rec.clientSid, rec.serverSid] : [rec.serverSid, rec.clientSid];
      expect(p.sessionId.toString('hex')).toBe(mine);
      if (p.ack.ids.length > 0) expect(p.ack.remoteSessionId!.toString('hex')).toBe(theirs);
      expect(p.ack.ids.length).toBeLessThanOrEqual(8);
      expect(b.length).toBeLessThanOrEqual(1250);
    }
  });

  it('shows the opening sequence of a 2.6 session and a client SOFT_RESET with key id 1', () => {
    const ops = rec.packets.map((r) => dec(Buffer.from(r.hex, 'hex')));
    expect(ops[0]!.opcode).toBe(Opcode.P_CONTROL_HARD_RESET_CLIENT_V2);
    expect(ops[1]!.opcode).toBe(Opcode.P_CONTROL_HARD_RESET_SERVER_V2);
    expect(ops[1]!.ack.ids).toEqual([0]);
    expect(ops[2]!.opcode).toBe(Opcode.P_CONTROL_V1);
    expect(ops[2]!.messageId).toBe(1);
    expect(ops[2]!.payload[0]).toBe(0x16); // TLS handshake record: ClientHello
    const soft = ops.find((p) => p.opcode === Opcode.P_CONTROL_SOFT_RESET_V1)!;
    expect(soft.keyId).toBe(1);
    expect(soft.messageId).toBe(0);
    // the 2.6 client ACKs generously (up to 8 ids in one P_ACK_V1)
    expect(Math.max(...ops.filter((p) => p.opcode === Opcode.P_ACK_V1).map((p) => p.ack.ids.length))).toBeGreaterThanOrEqual(4);
  });
});
