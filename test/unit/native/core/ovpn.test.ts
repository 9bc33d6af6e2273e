// Differential tests: the native OpenVPN data channel (src/native/core/ovpn.cc through the test addon's OvpnCore)
// against the TypeScript core (src/ssl/data/data-channel.ts), both ways, for all three ciphers and
// every compression stub mode, plus replay, tamper, truncation and key-slot behaviour.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createCipheriv, randomBytes } from 'node:crypto';
import {
  OVPN_CIPHER_IDS,
  OVPN_IP,
  OVPN_OCC,
  OVPN_PING,
  OVPN_RESULT_COUNT,
  OVPN_RESULT_NAMES,
} from '../../../../src/dataplane/native-data-plane.js';
import { createNativeOvpnCore } from '../../../../src/native/test-cores.js';
import type { NativeOvpnCore } from '../../../../src/native/test-cores.js';
import {
  DataChannel,
  DATA_IP,
  DATA_OCC_EXIT,
  DATA_PING,
  DROP_BAD_TAG,
  DROP_NO_KEY,
  DROP_REPLAY,
  DROP_SHORT,
  DROP_NAMES,
  type DataKeyMaterial,
} from '../../../../src/ssl/data/data-channel.js';
import { COMP_LZO_STUB, COMP_NONE, COMP_STUB_V2, COMP_SWAP_STUB, type CompressionMode } from '../../../../src/ssl/data/compression.js';
import { OCC_EXIT_PAYLOAD, PING_MAGIC } from '../../../../src/ssl/data/special.js';
import { writeDataV1Header } from '../../../../src/ssl/wire/data-packet.js';

const CIPHERS = ['AES-128-GCM', 'AES-256-GCM', 'CHACHA20-POLY1305'] as const;
const MODES: CompressionMode[] = [COMP_NONE, COMP_STUB_V2, COMP_LZO_STUB, COMP_SWAP_STUB];
const PEER_ID = 0x012345;
const HEADROOM = 64;
const SLOT = 2048;
const NOW = 1_000_000;

/** The key material of one key state; `side` 'server' is the TS/native sender's view. */
function keyMaterial(cipher: string, keyId: number, seed: Buffer, side: 'server' | 'client'): DataKeyMaterial {
  const a = seed.subarray(0, 64);
  const b = seed.subarray(64, 128);
  const ivA = seed.subarray(128, 136);
  const ivB = seed.subarray(136, 144);
  return side === 'server'
    ? { keyId, cipher, encKey: a, encImplicitIv: ivA, decKey: b, decImplicitIv: ivB }
    : { keyId, cipher, encKey: b, encImplicitIv: ivB, decKey: a, decImplicitIv: ivA };
}

function nativeWith(k: DataKeyMaterial, backtrackMs = 15_000): NativeOvpnCore {
  const n = createNativeOvpnCore(PEER_ID, backtrackMs);
  n.setKey(k.keyId, OVPN_CIPHER_IDS[k.cipher]!, k.encKey, k.encImplicitIv, k.decKey, k.decImplicitIv, k.initialSendPacketId ?? 0);
  return n;
}

function ipv4(len: number, fill: Buffer): Buffer {
  const b = Buffer.alloc(Math.max(len, 20));
  fill.copy(b);
  b[0] = 0x45;
  return b;
}

const span = new Uint32Array(2);

/** Native encrypt of `payload`; returns a copy of the wire packet (or the drop code). */
function nativeSeal(n: NativeOvpnCore, payload: Buffer, ping = false): Buffer | number {
  const slot = Buffer.alloc(SLOT);
  payload.copy(slot, HEADROOM);
  const r = n.encrypt(slot, HEADROOM, payload.length, SLOT, NOW, ping, span);
  if (r !== OVPN_IP) return r;
  return Buffer.from(slot.subarray(span[0]!, span[0]! + span[1]!));
}

/** Native decrypt of a copy of `wire` in a slot: [result, payload copy]. */
function nativeOpen(n: NativeOvpnCore, wire: Buffer, now = NOW): [number, Buffer] {
  const slot = Buffer.alloc(SLOT);
  wire.copy(slot, HEADROOM);
  const r = n.decrypt(slot, HEADROOM, wire.length, now, span);
  return [r, r === OVPN_IP || r === OVPN_OCC ? Buffer.from(slot.subarray(span[0]!, span[0]! + span[1]!)) : Buffer.alloc(0)];
}

function tsSeal(dc: DataChannel, payload: Buffer): Buffer {
  const out = Buffer.alloc(SLOT);
  const n = dc.encrypt(payload, 0, payload.length, out, 0, NOW);
  expect(n).toBeGreaterThan(0);
  return Buffer.from(out.subarray(0, n));
}

function counters(n: NativeOvpnCore): { head: number[]; drops: Record<string, number> } {
  const o = new Float64Array(6 + OVPN_RESULT_COUNT);
  n.counters(o);
  const drops: Record<string, number> = {};
  for (let i = 3; i < OVPN_RESULT_COUNT; i++) if (o[6 + i]) drops[OVPN_RESULT_NAMES[i]!] = o[6 + i]!;
  return { head: [...o.subarray(0, 6)], drops };
}

describe('native OpenVPN data channel vs DataChannel (differential)', () => {
  it('result codes 3..11 carry the TS drop names', () => {
    for (let i = 3; i < 12; i++) if (i !== 9) expect(OVPN_RESULT_NAMES[i]).toBe(DROP_NAMES[i]);
  });

  for (const cipher of CIPHERS) {
    describe(cipher, () => {
      it('native encrypt → TS decrypt, random IP packets, every stub mode: same bytes out, same wire as TS would send', () => {
        fc.assert(
          fc.property(fc.uint8Array({ minLength: 144, maxLength: 144 }), fc.array(fc.integer({ min: 20, max: 1500 }), { minLength: 1, maxLength: 6 }), fc.constantFrom(...MODES), (seed, lens, mode) => {
            const s = Buffer.from(seed);
            const native = nativeWith(keyMaterial(cipher, 3, s, 'server'));
            native.setCompression(mode);
            const tsTx = new DataChannel({ peerId: PEER_ID, compression: mode }, NOW);
            tsTx.installKey(keyMaterial(cipher, 3, s, 'server'), NOW);
            const client = new DataChannel({ peerId: PEER_ID, compression: mode }, NOW);
            client.installKey(keyMaterial(cipher, 3, s, 'client'), NOW);
            for (const len of lens) {
              const pkt = ipv4(len, randomBytes(len));
              if (mode === COMP_STUB_V2 && len % 3 === 0) pkt[0] = 0x50; // exercise the 0x50 0x00 prefix
              const wire = nativeSeal(native, pkt) as Buffer;
              expect(Buffer.isBuffer(wire)).toBe(true);
              expect(wire.equals(tsSeal(tsTx, pkt))).toBe(true); // bit-identical to the TS core
              const r = client.decrypt(wire, 0, wire.length, NOW);
              expect(r).toBe(DATA_IP);
              expect(wire.subarray(client.outOff, client.outOff + client.outLen).equals(pkt)).toBe(true);
            }
            expect(counters(native).head[2]).toBe(lens.length);
          }),
          { numRuns: 40 },
        );
      });

      it('TS encrypt → native decrypt, random packets (any bytes), every stub mode', () => {
        fc.assert(
          fc.property(fc.uint8Array({ minLength: 144, maxLength: 144 }), fc.array(fc.uint8Array({ minLength: 1, maxLength: 1400 }), { minLength: 1, maxLength: 6 }), fc.constantFrom(...MODES), (seed, payloads, mode) => {
            const s = Buffer.from(seed);
            const native = nativeWith(keyMaterial(cipher, 1, s, 'server'));
            native.setCompression(mode);
            const client = new DataChannel({ peerId: PEER_ID, compression: mode }, NOW);
            client.installKey(keyMaterial(cipher, 1, s, 'client'), NOW);
            const tsRx = new DataChannel({ peerId: PEER_ID, compression: mode }, NOW);
            tsRx.installKey(keyMaterial(cipher, 1, s, 'server'), NOW);
            for (const p of payloads) {
              const wire = tsSeal(client, Buffer.from(p));
              const [r, out] = nativeOpen(native, wire);
              const copy = Buffer.from(wire);
              const t = tsRx.decrypt(copy, 0, copy.length, NOW);
              // same verdict as the TS core, and the same payload
              if (t === DATA_IP) {
                expect(r).toBe(OVPN_IP);
                expect(out.equals(copy.subarray(tsRx.outOff, tsRx.outOff + tsRx.outLen))).toBe(true);
              } else if (t === DATA_PING) {
                expect(r).toBe(OVPN_PING);
              } else {
                expect(r).toBe(t);
              }
            }
            expect(native.compression()).toBe(tsRx.compression);
          }),
          { numRuns: 40 },
        );
      });

      it('pings and OCC: recognised both ways', () => {
        const s = randomBytes(144);
        const native = nativeWith(keyMaterial(cipher, 0, s, 'server'));
        const client = new DataChannel({ peerId: PEER_ID }, NOW);
        client.installKey(keyMaterial(cipher, 0, s, 'client'), NOW);
        const ping = nativeSeal(native, PING_MAGIC, true) as Buffer;
        expect(ping.length).toBe(40); // P_DATA_V2 opcode/peer-id (4) + packet-id (4) + GCM tag (16) + the 16-byte ping magic
        expect(client.decrypt(ping, 0, ping.length, NOW)).toBe(DATA_PING);
        const toNative = Buffer.alloc(SLOT);
        const n = client.encryptPing(toNative, 0, NOW);
        expect(nativeOpen(native, toNative.subarray(0, n))[0]).toBe(OVPN_PING);
        const occ = tsSeal(client, OCC_EXIT_PAYLOAD);
        const [r, payload] = nativeOpen(native, occ);
        expect(r).toBe(OVPN_OCC);
        expect(payload.equals(OCC_EXIT_PAYLOAD)).toBe(true);
        const c = counters(native).head;
        expect(c[4]).toBe(1); // pings in
        expect(c[5]).toBe(1); // pings out
        expect(c[2]).toBe(0); // pings are not traffic
        // DATA_OCC_EXIT on the TS side for the same payload
        const tsRx = new DataChannel({ peerId: PEER_ID }, NOW);
        tsRx.installKey(keyMaterial(cipher, 0, s, 'server'), NOW);
        const occ2 = tsSeal(client, OCC_EXIT_PAYLOAD);
        expect(tsRx.decrypt(occ2, 0, occ2.length, NOW)).toBe(DATA_OCC_EXIT);
      });
    });
  }

  it('accepts P_DATA_V1 (AAD = packet-id only)', () => {
    const s = randomBytes(144);
    const native = nativeWith(keyMaterial('AES-256-GCM', 2, s, 'server'));
    // build a V1 packet by hand with node:crypto: op|kid, pid, tag, ciphertext
    const k = keyMaterial('AES-256-GCM', 2, s, 'client');
    const pkt = ipv4(60, randomBytes(60));
    const wire = Buffer.alloc(5 + 16 + pkt.length);
    writeDataV1Header(wire, 0, 2, 7);
    const nonce = Buffer.concat([wire.subarray(1, 5), k.encImplicitIv]);
    const c = createCipheriv('aes-256-gcm', k.encKey.subarray(0, 32), nonce, { authTagLength: 16 });
    c.setAAD(wire.subarray(1, 5));
    c.update(pkt).copy(wire, 21);
    c.final();
    c.getAuthTag().copy(wire, 5);
    const [r, out] = nativeOpen(native, wire);
    expect(r).toBe(OVPN_IP);
    expect(out.equals(pkt)).toBe(true);
  });

  it('drops replays, tampered bytes, truncation and unknown key-ids like the TS core; a forged packet never moves the window', () => {
    const s = randomBytes(144);
    const native = nativeWith(keyMaterial('AES-128-GCM', 0, s, 'server'));
    const client = new DataChannel({ peerId: PEER_ID }, NOW);
    client.installKey(keyMaterial('AES-128-GCM', 0, s, 'client'), NOW);
    const pkts = Array.from({ length: 80 }, () => tsSeal(client, ipv4(100, randomBytes(100))));
    expect(nativeOpen(native, pkts[0]!)[0]).toBe(OVPN_IP);
    expect(nativeOpen(native, pkts[0]!)[0]).toBe(DROP_REPLAY); // duplicate
    expect(nativeOpen(native, pkts[79]!)[0]).toBe(OVPN_IP);
    expect(nativeOpen(native, pkts[5]!)[0]).toBe(DROP_REPLAY); // 74 below the top: outside the 64 window
    expect(nativeOpen(native, pkts[40]!)[0]).toBe(OVPN_IP); // inside the window, unseen
    expect(nativeOpen(native, pkts[40]!)[0]).toBe(DROP_REPLAY);
    // late for longer than the 15 s time backtrack
    expect(nativeOpen(native, pkts[41]!, NOW + 16_000)[0]).toBe(DROP_REPLAY);
    // every single-byte flip of a fresh packet is rejected (header bytes are AAD or select the key)
    const fresh = tsSeal(client, ipv4(64, randomBytes(64)));
    for (let i = 0; i < fresh.length; i++) {
      const t = Buffer.from(fresh);
      t[i]! ^= 0x01;
      const r = nativeOpen(native, t)[0];
      expect([DROP_BAD_TAG, DROP_NO_KEY, DROP_REPLAY, 4]).toContain(r);
    }
    expect(nativeOpen(native, fresh)[0]).toBe(OVPN_IP); // the forgeries did not burn its packet-id
    for (let len = 0; len <= 24; len++) expect(nativeOpen(native, fresh.subarray(0, len))[0]).toBe(DROP_SHORT);
    const d = counters(native).drops;
    expect(d.replay).toBeGreaterThanOrEqual(4);
    expect(d.badTag).toBeGreaterThan(0);
    expect(d.short).toBe(25);
  });

  it('key slots: the new key sends at once, the lame duck still decrypts until retired', () => {
    const s0 = randomBytes(144);
    const s1 = randomBytes(144);
    const native = nativeWith(keyMaterial('CHACHA20-POLY1305', 0, s0, 'server'));
    const client = new DataChannel({ peerId: PEER_ID }, NOW);
    client.installKey(keyMaterial('CHACHA20-POLY1305', 0, s0, 'client'), NOW);
    const old = tsSeal(client, ipv4(50, randomBytes(50)));
    const k1 = keyMaterial('AES-256-GCM', 1, s1, 'server');
    native.setKey(1, OVPN_CIPHER_IDS['AES-256-GCM']!, k1.encKey, k1.encImplicitIv, k1.decKey, k1.decImplicitIv);
    client.installKey(keyMaterial('AES-256-GCM', 1, s1, 'client'), NOW);
    const wire = nativeSeal(native, ipv4(30, randomBytes(30))) as Buffer;
    expect(wire[0]! & 7).toBe(1);
    expect(wire.readUInt32BE(4)).toBe(1); // packet-ids start at 1 per key
    expect(client.decrypt(wire, 0, wire.length, NOW)).toBe(DATA_IP);
    expect(nativeOpen(native, old)[0]).toBe(OVPN_IP); // key 0 is the lame duck
    native.retireKey(0);
    expect(nativeOpen(native, tsSeal(client, ipv4(50, randomBytes(50))))[0]).toBe(OVPN_IP); // client now sends on 1
    const c0 = new DataChannel({ peerId: PEER_ID }, NOW);
    c0.installKey(keyMaterial('CHACHA20-POLY1305', 0, s0, 'client'), NOW);
    expect(nativeOpen(native, tsSeal(c0, ipv4(50, randomBytes(50))))[0]).toBe(DROP_NO_KEY);
    // a third key evicts the lame duck, never the send key
    const k2 = keyMaterial('AES-128-GCM', 2, s0, 'server');
    native.setKey(2, OVPN_CIPHER_IDS['AES-128-GCM']!, k2.encKey, k2.encImplicitIv, k2.decKey, k2.decImplicitIv);
    expect(nativeOpen(native, tsSeal(client, ipv4(50, randomBytes(50))))[0]).toBe(OVPN_IP); // key 1 kept
    native.retireKey(2);
    expect(nativeSeal(native, ipv4(30, randomBytes(30)))).toBe(DROP_NO_KEY); // retiring the send key stops sending
  });

  it('refuses to wrap the packet-id', () => {
    const s = randomBytes(144);
    const k = keyMaterial('AES-256-GCM', 0, s, 'server');
    const native = createNativeOvpnCore(PEER_ID);
    native.setKey(0, OVPN_CIPHER_IDS['AES-256-GCM']!, k.encKey, k.encImplicitIv, k.decKey, k.decImplicitIv, 0xfffffffe);
    const w = nativeSeal(native, ipv4(30, randomBytes(30))) as Buffer;
    expect(w.readUInt32BE(4)).toBe(0xffffffff);
    expect(nativeSeal(native, ipv4(30, randomBytes(30)))).toBe(10); // packetIdExhausted
  });

  it('rejects bad keys and unknown ciphers', () => {
    const n = createNativeOvpnCore(1);
    const iv = Buffer.alloc(8);
    expect(() => n.setKey(0, 9, Buffer.alloc(32), iv, Buffer.alloc(32), iv)).toThrow(/cipher/);
    expect(() => n.setKey(0, OVPN_CIPHER_IDS['AES-256-GCM']!, Buffer.alloc(16), iv, Buffer.alloc(32), iv)).toThrow(/short/);
    expect(() => n.setKey(8, OVPN_CIPHER_IDS['AES-256-GCM']!, Buffer.alloc(32), iv, Buffer.alloc(32), iv)).toThrow(/key-id/);
  });
});
