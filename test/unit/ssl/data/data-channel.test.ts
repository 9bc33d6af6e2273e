import { describe, expect, it } from 'vitest';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  DataChannel,
  DATA_IP,
  DATA_OCC_EXIT,
  DATA_PING,
  DATA_MAX_OVERHEAD,
  DROP_BAD_TAG,
  DROP_COMPRESSED,
  DROP_NO_KEY,
  DROP_PACKET_ID_EXHAUSTED,
  DROP_REPLAY,
  DROP_SHORT,
  type DataKeyMaterial,
} from '../../../../src/ssl/data/data-channel.js';
import { COMP_LZO_STUB, COMP_NONE, COMP_STUB_V2 } from '../../../../src/ssl/data/compression.js';
import { OCC_EXIT_PAYLOAD, PING_MAGIC } from '../../../../src/ssl/data/special.js';

// Reference computations written from OpenVPN's packet layout (crypto.c: key2 slots, AEAD header, AAD), independent of the code under test.
const ALG: Record<string, { alg: string; keyLen: number }> = {
  'AES-128-GCM': { alg: 'aes-128-gcm', keyLen: 16 },
  'AES-256-GCM': { alg: 'aes-256-gcm', keyLen: 32 },
  'CHACHA20-POLY1305': { alg: 'chacha20-poly1305', keyLen: 32 },
};

/** a 256-byte key block as the control channel would export it */
function keyBlock(): Buffer {
  return randomBytes(256);
}

/** the server's view: decrypt with bytes 0..127, encrypt with 128..255 */
function serverKeys(kb: Buffer, cipher: string, keyId = 0): DataKeyMaterial {
  return {
    keyId,
    cipher,
    decKey: kb.subarray(0, 64),
    decImplicitIv: kb.subarray(64, 72),
    encKey: kb.subarray(128, 192),
    encImplicitIv: kb.subarray(192, 200),
  };
}

/** client → server P_DATA_V2 built from the spec */
function clientSealV2(kb: Buffer, cipher: string, keyId: number, peerId: number, pid: number, payload: Buffer): Buffer {
  const { alg, keyLen } = ALG[cipher]!;
  const hdr = Buffer.alloc(8);
  hdr[0] = (9 << 3) | keyId;
  hdr.writeUIntBE(peerId, 1, 3);
  hdr.writeUInt32BE(pid, 4);
  const nonce = Buffer.concat([hdr.subarray(4, 8), kb.subarray(64, 72)]);
  const c = createCipheriv(alg as 'aes-256-gcm', kb.subarray(0, keyLen), nonce, { authTagLength: 16 });
  c.setAAD(hdr);
  const ct = Buffer.concat([c.update(payload), c.final()]);
  return Buffer.concat([hdr, c.getAuthTag(), ct]);
}

/** client → server P_DATA_V1: AAD is the packet-id only */
function clientSealV1(kb: Buffer, cipher: string, keyId: number, pid: number, payload: Buffer): Buffer {
  const { alg, keyLen } = ALG[cipher]!;
  const pidB = Buffer.alloc(4);
  pidB.writeUInt32BE(pid);
  const nonce = Buffer.concat([pidB, kb.subarray(64, 72)]);
  const c = createCipheriv(alg as 'aes-256-gcm', kb.subarray(0, keyLen), nonce, { authTagLength: 16 });
  c.setAAD(pidB);
  const ct = Buffer.concat([c.update(payload), c.final()]);
  return Buffer.concat([Buffer.from([(6 << 3) | keyId]), pidB, c.getAuthTag(), ct]);
}

/** what the client does with a server → client packet: returns the header fields and plaintext */
function clientOpen(kb: Buffer, cipher: string, pkt: Buffer): { op: number; keyId: number; peerId: number; pid: number; plain: Buffer } {
  const { alg, keyLen } = ALG[cipher]!;
  const nonce = Buffer.concat([pkt.subarray(4, 8), kb.subarray(192, 200)]);
  const d = createDecipheriv(alg as 'aes-256-gcm', kb.subarray(128, 128 + keyLen), nonce, { authTagLength: 16 });
  d.setAAD(pkt.subarray(0, 8));
  d.setAuthTag(pkt.subarray(8, 24));
  const plain = Buffer.concat([d.update(pkt.subarray(24)), d.final()]);
  return { op: pkt[0]! >> 3, keyId: pkt[0]! & 7, peerId: pkt.readUIntBE(1, 3), pid: pkt.readUInt32BE(4), plain };
}

function ipPacket(n = 60): Buffer {
  const p = randomBytes(n);
  p[0] = 0x45;
  return p;
}

function enc(dc: DataChannel, payload: Buffer, now = 0): Buffer {
  const out = Buffer.alloc(payload.length + DATA_MAX_OVERHEAD + 8);
  const n = dc.encrypt(payload, 0, payload.length, out, 3, now);
  return out.subarray(3, 3 + n);
}

describe('DataChannel: AEAD known-answer against an independent computation', () => {
  for (const cipher of Object.keys(ALG)) {
    it(`${cipher}: server → client packets decrypt with the spec's nonce/AAD, ids count from 1`, () => {
      const kb = keyBlock();
      const dc = new DataChannel({ peerId: 0x0a0b0c }, 0);
      dc.installKey(serverKeys(kb, cipher, 0), 0);
      const p1 = ipPacket(100);
      const p2 = ipPacket(1400);
      const w1 = enc(dc, p1);
      const w2 = enc(dc, p2);
      expect(w1.length).toBe(100 + 24);
      expect(w1[0]).toBe(0x48);
      const r1 = clientOpen(kb, cipher, w1);
      const r2 = clientOpen(kb, cipher, w2);
      expect(r1).toMatchObject({ op: 9, keyId: 0, peerId: 0x0a0b0c, pid: 1 });
      expect(r2.pid).toBe(2);
      expect(r1.plain.equals(p1)).toBe(true);
      expect(r2.plain.equals(p2)).toBe(true);
      expect(dc.stats.txPackets).toBe(2);
      expect(dc.stats.txBytes).toBe(1500);
    });

    it(`${cipher}: client → server V2 and V1 packets are accepted and yield the IP packet`, () => {
      const kb = keyBlock();
      const dc = new DataChannel({ peerId: 3 }, 0);
      dc.installKey(serverKeys(kb, cipher, 0), 0);
      const ip = ipPacket(77);
      const w = clientSealV2(kb, cipher, 0, 3, 1, ip);
      expect(dc.decrypt(w, 0, w.length, 0)).toBe(DATA_IP);
      expect(w.subarray(dc.outOff, dc.outOff + dc.outLen).equals(ip)).toBe(true);
      const ip2 = ipPacket(40);
      const v1 = clientSealV1(kb, cipher, 0, 2, ip2);
      expect(dc.decrypt(v1, 0, v1.length, 0)).toBe(DATA_IP);
      expect(v1.subarray(dc.outOff, dc.outOff + dc.outLen).equals(ip2)).toBe(true);
      expect(dc.stats.rxPackets).toBe(2);
      expect(dc.stats.rxBytes).toBe(117);
    });
  }

  it('uses only the leading bytes of the key slot and of the implicit-IV slot (wrong slot → bad tag)', () => {
    const kb = keyBlock();
    const dc = new DataChannel({ peerId: 0 }, 0);
    // swap directions: the server would then decrypt with the server→client key
    dc.installKey({ ...serverKeys(kb, 'AES-256-GCM'), decKey: kb.subarray(128, 192) }, 0);
    const w = clientSealV2(kb, 'AES-256-GCM', 0, 0, 1, ipPacket());
    expect(dc.decrypt(w, 0, w.length, 0)).toBe(DROP_BAD_TAG);
  });
});

describe('DataChannel: drops are counted, never thrown', () => {
  const kb = keyBlock();
  const mk = () => {
    const dc = new DataChannel({ peerId: 0 }, 0);
    dc.installKey(serverKeys(kb, 'AES-128-GCM'), 0);
    return dc;
  };

  it('flipping any byte of a packet makes it a drop (header bytes are authenticated)', () => {
    const dc = mk();
    const good = clientSealV2(kb, 'AES-128-GCM', 0, 0, 1, ipPacket(30));
    for (let i = 0; i < good.length; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x01;
      const r = dc.decrypt(bad, 0, bad.length, 0);
      expect(r, `byte ${i}`).not.toBe(DATA_IP);
    }
    // the window did not move: the genuine packet still goes through
    expect(dc.decrypt(Buffer.from(good), 0, good.length, 0)).toBe(DATA_IP);
    expect(dc.stats.drops[DROP_BAD_TAG]).toBeGreaterThan(20);
  });

  it('a replayed packet is dropped; out-of-order within the window is accepted once', () => {
    const dc = mk();
    const pk = (pid: number) => clientSealV2(kb, 'AES-128-GCM', 0, 0, pid, ipPacket(20));
    const p5 = pk(5);
    expect(dc.decrypt(Buffer.from(p5), 0, p5.length, 0)).toBe(DATA_IP);
    expect(dc.decrypt(Buffer.from(p5), 0, p5.length, 0)).toBe(DROP_REPLAY);
    const p3 = pk(3);
    expect(dc.decrypt(Buffer.from(p3), 0, p3.length, 1000)).toBe(DATA_IP);
    expect(dc.decrypt(Buffer.from(p3), 0, p3.length, 1000)).toBe(DROP_REPLAY);
    const zero = pk(0);
    expect(dc.decrypt(zero, 0, zero.length, 0)).toBe(DROP_REPLAY);
    expect(dc.stats.drops[DROP_REPLAY]).toBe(3);
  });

  it('truncated packets and unknown key-ids are dropped', () => {
    const dc = mk();
    const good = clientSealV2(kb, 'AES-128-GCM', 0, 0, 1, ipPacket(30));
    for (const n of [0, 1, 7, 8, 23, 24]) expect(dc.decrypt(good, 0, n, 0)).toBe(DROP_SHORT);
    expect(dc.decrypt(good, 0, 40, 0)).toBe(DROP_BAD_TAG);
    const other = clientSealV2(kb, 'AES-128-GCM', 2, 0, 1, ipPacket(30));
    expect(dc.decrypt(other, 0, other.length, 0)).toBe(DROP_NO_KEY);
  });

  it('the send packet-id never wraps: renegotiation is asked for from 0xFF000000, sending stops at 0xFFFFFFFF', () => {
    const dc = new DataChannel({ peerId: 0 }, 0);
    dc.installKey({ ...serverKeys(kb, 'AES-128-GCM'), initialSendPacketId: 0xfeffffff }, 0);
    expect(dc.needsRenegotiation).toBe(false);
    expect(enc(dc, ipPacket()).readUInt32BE(4)).toBe(0xff000000);
    expect(dc.needsRenegotiation).toBe(true);
    dc.installKey({ ...serverKeys(kb, 'AES-128-GCM'), initialSendPacketId: 0xfffffffe }, 0);
    expect(enc(dc, ipPacket()).readUInt32BE(4)).toBe(0xffffffff);
    expect(enc(dc, ipPacket()).length).toBe(0);
    expect(dc.stats.drops[DROP_PACKET_ID_EXHAUSTED]).toBe(1);
  });

  it('without keys nothing is sent', () => {
    const dc = new DataChannel({ peerId: 0 }, 0);
    expect(enc(dc, ipPacket()).length).toBe(0);
    expect(dc.stats.drops[DROP_NO_KEY]).toBe(1);
  });
});

describe('DataChannel: renegotiation (key-ids)', () => {
  it('sends with the newest key at once, keeps the old one for receiving until retired', () => {
    const kb0 = keyBlock();
    const kb1 = keyBlock();
    const dc = new DataChannel({ peerId: 0 }, 0);
    dc.installKey(serverKeys(kb0, 'AES-256-GCM', 0), 0);
    enc(dc, ipPacket());
    dc.installKey(serverKeys(kb1, 'AES-256-GCM', 1), 10);
    const w = enc(dc, ipPacket());
    const r = clientOpen(kb1, 'AES-256-GCM', w);
    expect(r.keyId).toBe(1);
    expect(r.pid).toBe(1); // packet-ids start again at 1 for the new key
    const late = clientSealV2(kb0, 'AES-256-GCM', 0, 0, 9, ipPacket());
    expect(dc.decrypt(Buffer.from(late), 0, late.length, 20)).toBe(DATA_IP);
    dc.retireKey(0);
    expect(dc.decrypt(Buffer.from(late), 0, late.length, 20)).toBe(DROP_NO_KEY);
    expect(dc.sendKeyId).toBe(1);
  });
});

describe('DataChannel: ping, OCC exit, compression stubs', () => {
  const kb = keyBlock();
  it('the ping magic is recognised and not delivered; pings are sent after `ping` seconds of silence', () => {
    const dc = new DataChannel({ peerId: 0 }, 0);
    dc.installKey(serverKeys(kb, 'AES-256-GCM'), 0);
    const w = clientSealV2(kb, 'AES-256-GCM', 0, 0, 1, PING_MAGIC);
    expect(dc.decrypt(w, 0, w.length, 500)).toBe(DATA_PING);
    expect(dc.lastRxMs).toBe(500);
    expect(dc.pingDue(9_999, 10)).toBe(false);
    expect(dc.pingDue(10_000, 10)).toBe(true);
    const out = Buffer.alloc(64);
    const n = dc.encryptPing(out, 0, 10_000);
    expect(n).toBe(40); // a keepalive ping is a 40-byte packet: 8 header, 16 tag, 16 magic
    expect(clientOpen(kb, 'AES-256-GCM', out.subarray(0, n)).plain.equals(PING_MAGIC)).toBe(true);
    expect(dc.pingDue(15_000, 10)).toBe(false);
    expect(dc.stats.pingsIn).toBe(1);
    expect(dc.stats.pingsOut).toBe(1);
    expect(dc.stats.txPackets).toBe(0);
  });

  it('OCC_EXIT is reported', () => {
    const dc = new DataChannel({ peerId: 0 }, 0);
    dc.installKey(serverKeys(kb, 'AES-256-GCM'), 0);
    const w = clientSealV2(kb, 'AES-256-GCM', 0, 0, 1, OCC_EXIT_PAYLOAD);
    expect(dc.decrypt(w, 0, w.length, 0)).toBe(DATA_OCC_EXIT);
  });

  it('comp-lzo stub: 0xFA uplink is stripped, learned, and the downlink is framed the same way', () => {
    const dc = new DataChannel({ peerId: 0 }, 0);
    dc.installKey(serverKeys(kb, 'AES-256-GCM'), 0);
    const ip = ipPacket(50);
    const w = clientSealV2(kb, 'AES-256-GCM', 0, 0, 1, Buffer.concat([Buffer.from([0xfa]), ip]));
    expect(dc.decrypt(w, 0, w.length, 0)).toBe(DATA_IP);
    expect(w.subarray(dc.outOff, dc.outOff + dc.outLen).equals(ip)).toBe(true);
    expect(dc.compression).toBe(COMP_LZO_STUB);
    const down = clientOpen(kb, 'AES-256-GCM', enc(dc, ip)).plain;
    expect(down[0]).toBe(0xfa);
    expect(down.subarray(1).equals(ip)).toBe(true);
    // framed ping is still a ping
    const pw = clientSealV2(kb, 'AES-256-GCM', 0, 0, 2, Buffer.concat([Buffer.from([0xfa]), PING_MAGIC]));
    expect(dc.decrypt(pw, 0, pw.length, 0)).toBe(DATA_PING);
    // LZO-compressed payloads are refused
    const cw = clientSealV2(kb, 'AES-256-GCM', 0, 0, 3, Buffer.from([0x66, 1, 2, 3]));
    expect(dc.decrypt(cw, 0, cw.length, 0)).toBe(DROP_COMPRESSED);
  });

  it('compress stub (swap form) round-trips', () => {
    const dc = new DataChannel({ peerId: 0 }, 0);
    dc.installKey(serverKeys(kb, 'AES-256-GCM'), 0);
    const ip = ipPacket(30);
    const swapped = Buffer.concat([Buffer.from([0xfb]), ip.subarray(1), ip.subarray(0, 1)]);
    const w = clientSealV2(kb, 'AES-256-GCM', 0, 0, 1, swapped);
    expect(dc.decrypt(w, 0, w.length, 0)).toBe(DATA_IP);
    expect(w.subarray(dc.outOff, dc.outOff + dc.outLen).equals(ip)).toBe(true);
    expect(clientOpen(kb, 'AES-256-GCM', enc(dc, ip)).plain.equals(swapped)).toBe(true);
  });

  it('stub-v2 / none: IP packets carry no prefix; 0x50 0x00 is stripped; an IPv6 0x66 first byte is IP in mode none', () => {
    const dc = new DataChannel({ peerId: 0, compression: COMP_STUB_V2 }, 0);
    dc.installKey(serverKeys(kb, 'AES-256-GCM'), 0);
    const ip = ipPacket(30);
    expect(clientOpen(kb, 'AES-256-GCM', enc(dc, ip)).plain.equals(ip)).toBe(true);
    const w = clientSealV2(kb, 'AES-256-GCM', 0, 0, 1, Buffer.concat([Buffer.from([0x50, 0x00]), ip]));
    expect(dc.decrypt(w, 0, w.length, 0)).toBe(DATA_IP);
    expect(dc.outLen).toBe(30);
    const c = clientSealV2(kb, 'AES-256-GCM', 0, 0, 2, Buffer.from([0x50, 0x01, 9, 9]));
    expect(dc.decrypt(c, 0, c.length, 0)).toBe(DROP_COMPRESSED);

    const plain = new DataChannel({ peerId: 0 }, 0);
    plain.installKey(serverKeys(kb, 'AES-256-GCM'), 0);
    const v6 = randomBytes(48);
    v6[0] = 0x66; // IPv6, traffic class 0x6x
    const w6 = clientSealV2(kb, 'AES-256-GCM', 0, 0, 1, v6);
    expect(plain.decrypt(w6, 0, w6.length, 0)).toBe(DATA_IP);
    expect(plain.compression).toBe(COMP_NONE);
  });
});
