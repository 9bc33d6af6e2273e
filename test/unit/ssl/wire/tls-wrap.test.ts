// tls-auth and tls-crypt (v1) with keys made by `openvpn --genkey` and hard resets recorded from the
// real openvpn 2.6.14 client (test/vectors/ssl/README.md says how).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError, ParseError } from '../../../../src/common/errors.js';
import { decodeControlPacket, encodeControlPacket } from '../../../../src/ssl/wire/control-packet.js';
import { Opcode } from '../../../../src/ssl/wire/opcodes.js';
import {
  TLS_CRYPT_METADATA_TYPE_TIMESTAMP,
  TlsAuthWrap,
  TlsCryptV2Wrap,
  TlsCryptWrap,
  WrapReplay,
  formatStaticKey,
  formatTlsCryptV2ClientKey,
  formatTlsCryptV2ServerKey,
  parseStaticKey,
  parseTlsCryptV2ClientKey,
  parseTlsCryptV2ServerKey,
  unwrapClientKey,
  wrapClientKey,
} from '../../../../src/ssl/wire/tls-wrap.js';

const vec = (f: string): string => readFileSync(new URL(`../../../vectors/ssl/${f}`, import.meta.url), 'utf8');
const tcKey = parseStaticKey(vec('tls-crypt.key'), 'tlsCrypt');
const taKey = parseStaticKey(vec('tls-auth.key'), 'tlsAuth.key');
const tcReset = Buffer.from(vec('tls-crypt-reset.hex').trim(), 'hex');
const taReset = Buffer.from(vec('tls-auth-reset.hex').trim(), 'hex');
const NOW = 1_700_000_000_000;

function expectClientReset(clear: Buffer | ParseError, wire: Buffer): void {
  if (clear instanceof ParseError) throw clear;
  const p = decodeControlPacket(clear);
  if (p instanceof ParseError) throw p;
  expect(p).toMatchObject({ opcode: Opcode.P_CONTROL_HARD_RESET_CLIENT_V2, keyId: 0, messageId: 0, ack: { ids: [] } });
  expect(p.sessionId).toEqual(wire.subarray(1, 9));
}

describe('static key files', () => {
  it('reads the 2048-bit key openvpn --genkey writes, and writes the same format back', () => {
    expect(tcKey).toHaveLength(256);
    expect(parseStaticKey(formatStaticKey(tcKey), 'k')).toEqual(tcKey);
    expect(formatStaticKey(tcKey)).toContain('-----BEGIN OpenVPN Static key V1-----');
  });
  it('refuses other files with a ConfigError naming the field', () => {
    expect(() => parseStaticKey('hello', 'vpnServers.p2c.tlsCrypt')).toThrow(ConfigError);
    expect(() => parseStaticKey(vec('tls-crypt.key').replace(/[0-9a-f]{32}\n-----END/, '-----END'), 'x')).toThrow(/2048-bit/);
  });
});

describe('tls-crypt', () => {
  it("unwraps the real client's hard reset with the server's key direction", () => {
    expect(tcReset).toHaveLength(14 + 40);
    expectClientReset(new TlsCryptWrap(tcKey).unwrap(tcReset, NOW), tcReset);
  });
  it('server wrap -> client unwrap and back; every flipped byte, a replay and another key are rejected', () => {
    const server = new TlsCryptWrap(tcKey);
    const client = new TlsCryptWrap(tcKey, true, 1);
    const clear = encodeControlPacket({ opcode: Opcode.P_CONTROL_V1, keyId: 0, sessionId: Buffer.alloc(8, 7), ack: { ids: [0], remoteSessionId: Buffer.alloc(8, 9) }, messageId: 1, payload: Buffer.from('tls bytes') });
    const wire = server.wrap(clear, NOW);
    expect(wire).toHaveLength(clear.length + 40);
    expect(wire.includes(Buffer.from('tls bytes'))).toBe(false);
    expect(client.unwrap(wire, NOW)).toEqual(clear);
    expect(client.unwrap(wire, NOW)).toBeInstanceOf(ParseError); // replay
    const back = client.wrap(clear, NOW);
    for (let i = 0; i < back.length; i++) {
      const t = Buffer.from(back);
      t[i] ^= 0x01;
      expect(new TlsCryptWrap(tcKey, false).unwrap(t, NOW), `byte ${i}`).toBeInstanceOf(ParseError);
    }
    expect(server.unwrap(back, NOW)).toEqual(clear);
    expect(new TlsCryptWrap(taKey).unwrap(back, NOW)).toBeInstanceOf(ParseError);
    expect(new TlsCryptWrap(tcKey).unwrap(back.subarray(0, 40), NOW)).toBeInstanceOf(ParseError);
  });
});

describe('tls-auth', () => {
  it("unwraps the real client's hard reset (client key direction 1, SHA1) with server direction 0", () => {
    expect(taReset).toHaveLength(14 + 28);
    expectClientReset(new TlsAuthWrap(taKey, 0, 'SHA1').unwrap(taReset, NOW), taReset);
    expect(new TlsAuthWrap(taKey, 1, 'SHA1').unwrap(taReset, NOW)).toBeInstanceOf(ParseError); // wrong direction
    expect(new TlsAuthWrap(taKey, 0, 'SHA256').unwrap(taReset, NOW)).toBeInstanceOf(ParseError);
  });
  it('round trip for each digest and direction; tampering and replays are rejected', () => {
    for (const digest of ['SHA1', 'SHA256', 'SHA512'] as const) {
      for (const [sd, cd] of [[0, 1], [1, 0], [-1, -1]] as const) {
        const server = new TlsAuthWrap(taKey, sd, digest);
        const client = new TlsAuthWrap(taKey, cd, digest);
        const clear = encodeControlPacket({ opcode: Opcode.P_ACK_V1, keyId: 0, sessionId: Buffer.alloc(8, 3), ack: { ids: [0], remoteSessionId: Buffer.alloc(8, 4) }, messageId: null, payload: Buffer.alloc(0) });
        const wire = client.wrap(clear, NOW);
        expect(server.unwrap(wire, NOW)).toEqual(clear);
        expect(server.unwrap(wire, NOW)).toBeInstanceOf(ParseError);
        const t = client.wrap(clear, NOW);
        t[t.length - 1] ^= 0x80;
        expect(server.unwrap(t, NOW)).toBeInstanceOf(ParseError);
      }
    }
  });
});

describe('WrapReplay', () => {
  it('accepts each (time, packet-id) once, out of order within the window, and a newer time resets it', () => {
    const r = new WrapReplay();
    const take = (t: number, p: number): boolean => (r.check(t, p) ? (r.record(t, p), true) : false);
    expect(take(100, 5)).toBe(true);
    expect(take(100, 3)).toBe(true);
    expect(take(100, 3)).toBe(false);
    expect(take(100, 70)).toBe(true);
    expect(take(100, 5)).toBe(false); // 65 below the highest: outside the window
    expect(take(100, 69)).toBe(true);
    expect(take(99, 500)).toBe(false);
    expect(take(101, 1)).toBe(true);
  });
});

describe('tls-crypt-v2', () => {
  const serverKey = parseTlsCryptV2ServerKey(vec('tls-crypt-v2-server.key'), 'tlsCryptV2.serverKey');
  const client = parseTlsCryptV2ClientKey(vec('tls-crypt-v2-client.key'), 'client');
  const v3 = Buffer.from(vec('tls-crypt-v2-reset.hex').trim(), 'hex');

  it('unwraps the WKc of a key made by openvpn --genkey tls-crypt-v2-client to the same Kc, with timestamp metadata', () => {
    expect(serverKey).toHaveLength(128);
    const k = unwrapClientKey(serverKey, client.wkc)!;
    expect(k.kc).toEqual(client.kc);
    expect(k.metadata[0]).toBe(TLS_CRYPT_METADATA_TYPE_TIMESTAMP);
    expect(k.metadata).toHaveLength(9);
    // our wrap of the same Kc and metadata gives the same bytes (the construction is deterministic)
    expect(wrapClientKey(serverKey, client.kc, k.metadata)).toEqual(client.wkc);
    const other = Buffer.from(serverKey);
    other[70] ^= 1;
    expect(unwrapClientKey(other, client.wkc)).toBeNull();
    expect(parseTlsCryptV2ClientKey(formatTlsCryptV2ClientKey(client.kc, client.wkc), 'x')).toEqual(client);
    expect(parseTlsCryptV2ServerKey(formatTlsCryptV2ServerKey(serverKey), 'x')).toEqual(serverKey);
    expect(() => parseTlsCryptV2ServerKey(vec('tls-crypt.key'), 'vpnServers.p2c.tlsCryptV2.serverKey')).toThrow(/tlsCryptV2\.serverKey/);
  });

  it("unwraps the real client's V3 reset (early negotiation in its packet-id) and answers under its key", () => {
    expect(v3[0]! >> 3).toBe(Opcode.P_CONTROL_HARD_RESET_CLIENT_V3);
    const w = new TlsCryptV2Wrap(serverKey, false);
    const clear = w.unwrap(v3, NOW);
    if (clear instanceof ParseError) throw clear;
    expect(w.earlyNegotiation).toBe(true);
    const p = decodeControlPacket(clear);
    if (p instanceof ParseError) throw p;
    expect(p).toMatchObject({ opcode: Opcode.P_CONTROL_HARD_RESET_CLIENT_V3, messageId: 0 });
    // the reply is tls-crypt under Kc, which the client (direction 1) opens
    const reply = encodeControlPacket({ opcode: Opcode.P_CONTROL_HARD_RESET_SERVER_V2, keyId: 0, sessionId: Buffer.alloc(8, 5), ack: { ids: [0], remoteSessionId: p.sessionId }, messageId: 0, payload: Buffer.alloc(0) });
    expect(new TlsCryptWrap(client.kc, true, 1).unwrap(w.wrap(reply, NOW), NOW)).toEqual(reply);
    // a session wrap: WKC_V1 (P_CONTROL_V1 + WKc) becomes P_CONTROL_V1; later packets are plain tls-crypt under Kc
    const s = new TlsCryptV2Wrap(serverKey);
    const c = new TlsCryptWrap(client.kc, true, 1);
    const ctl = encodeControlPacket({ opcode: Opcode.P_CONTROL_V1, keyId: 0, sessionId: Buffer.alloc(8, 6), ack: { ids: [0], remoteSessionId: Buffer.alloc(8, 5) }, messageId: 1, payload: Buffer.from('hello') });
    const wkcPkt = Buffer.concat([c.wrap(ctl, NOW), client.wkc]);
    wkcPkt[0] = (Opcode.P_CONTROL_WKC_V1 << 3) | 0;
    // the opcode byte is authenticated: a WKC_V1 packet is wrapped with its own opcode
    const wkcClear = Buffer.from(ctl);
    wkcClear[0] = Opcode.P_CONTROL_WKC_V1 << 3;
    const wkcWire = Buffer.concat([c.wrap(wkcClear, NOW), client.wkc]);
    expect(s.unwrap(wkcPkt, NOW)).toBeInstanceOf(ParseError);
    expect(s.unwrap(wkcWire, NOW)).toEqual(ctl);
    expect(s.unwrap(c.wrap(ctl, NOW), NOW)).toEqual(ctl);
    // without a key, plain tls-crypt packets cannot be opened
    expect(new TlsCryptV2Wrap(serverKey).unwrap(c.wrap(ctl, NOW), NOW)).toBeInstanceOf(ParseError);
  });
});
