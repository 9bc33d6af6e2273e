// Test helpers: minimal inner IP packets and SA builders for the ESP and data-plane tests.
import { parseIp, parsePrefix } from '../../../src/common/ip.js';
import type { Prefix } from '../../../src/common/ip.js';
import { createEncTransform } from '../../../src/crypto/aead.js';
import { EspSa, EspSpan } from '../../../src/esp/esp-sa.js';
import { DropReason } from '../../../src/esp/drop-reason.js';
import { espEncap } from '../../../src/esp/encap.js';
import { espDecap } from '../../../src/esp/decap.js';
import type { EspSaConfig } from '../../../src/esp/esp-sa.js';

/** An IPv4 UDP-ish packet of `total` bytes (≥ 28) from src to dst; payload bytes = seed + i. */
export function ipv4Packet(src: string, dst: string, total = 84, seed = 0): Buffer {
  const b = Buffer.alloc(total);
  b[0] = 0x45;
  b.writeUInt16BE(total, 2);
  b[8] = 64;
  b[9] = 17;
  parseIp(src)!.bytes.copy(b, 12);
  parseIp(dst)!.bytes.copy(b, 16);
  for (let i = 20; i < total; i++) b[i] = (seed + i) & 0xff;
  return b;
}

/** An IPv6 packet of `total` bytes (≥ 48). */
export function ipv6Packet(src: string, dst: string, total = 104, seed = 0): Buffer {
  const b = Buffer.alloc(total);
  b[0] = 0x60;
  b.writeUInt16BE(total - 40, 4);
  b[6] = 17;
  b[7] = 64;
  parseIp(src)!.bytes.copy(b, 8);
  parseIp(dst)!.bytes.copy(b, 24);
  for (let i = 40; i < total; i++) b[i] = (seed + i) & 0xff;
  return b;
}

export const P = (s: string): Prefix => {
  const p = parsePrefix(s);
  if (!p) throw new Error(`bad prefix ${s}`);
  return p;
};

export interface Suite {
  name: string;
  encr: number;
  encrKeyBits: number;
  integ: number;
  encrKeyLen: number;
  integKeyLen: number;
}

export const SUITES: Suite[] = [
  { name: 'aes128gcm16', encr: 20, encrKeyBits: 128, integ: 0, encrKeyLen: 20, integKeyLen: 0 },
  { name: 'aes256gcm16', encr: 20, encrKeyBits: 256, integ: 0, encrKeyLen: 36, integKeyLen: 0 },
  { name: 'chacha20poly1305', encr: 28, encrKeyBits: 256, integ: 0, encrKeyLen: 36, integKeyLen: 0 },
  { name: 'aes128-sha256', encr: 12, encrKeyBits: 128, integ: 12, encrKeyLen: 16, integKeyLen: 32 },
  { name: 'aes256-sha1', encr: 12, encrKeyBits: 256, integ: 2, encrKeyLen: 32, integKeyLen: 20 },
  { name: 'aes192-sha384', encr: 12, encrKeyBits: 192, integ: 13, encrKeyLen: 24, integKeyLen: 48 },
  { name: 'aes256-sha512', encr: 12, encrKeyBits: 256, integ: 14, encrKeyLen: 32, integKeyLen: 64 },
];

export function keys(s: Suite, seed: number): { encrKey: Buffer; integKey: Buffer } {
  const encrKey = Buffer.alloc(s.encrKeyLen);
  const integKey = Buffer.alloc(s.integKeyLen);
  for (let i = 0; i < encrKey.length; i++) encrKey[i] = (seed * 31 + i * 7) & 0xff;
  for (let i = 0; i < integKey.length; i++) integKey[i] = (seed * 17 + i * 13 + 1) & 0xff;
  return { encrKey, integKey };
}

/** A matching outbound/inbound SA pair (site A 10.1.0.0/16 + fd01::/64 → site B 10.2.0.0/16 + fd02::/64). */
export function saPair(s: Suite, over: Partial<EspSaConfig> = {}): { out: EspSa; inb: EspSa } {
  const k = keys(s, 1);
  const spec = { encr: s.encr, encrKeyBits: s.encrKeyBits, integ: s.integ };
  const common = {
    spi: 0xc0ffee01,
    localTs: [P('10.1.0.0/16'), P('fd01::/64')],
    remoteTs: [P('10.2.0.0/16'), P('fd02::/64')],
    localAddr: '192.0.2.1',
    localPort: 4500,
    remoteAddr: '192.0.2.2',
    remotePort: 4500,
  };
  const out = new EspSa({ ...common, direction: 'out', transform: createEncTransform(spec, k.encrKey, k.integKey), ...over });
  // the receiver's view: selectors swapped
  const inb = new EspSa({
    ...common,
    localTs: common.remoteTs,
    remoteTs: common.localTs,
    localAddr: common.remoteAddr,
    remoteAddr: common.localAddr,
    direction: 'in',
    transform: createEncTransform(spec, k.encrKey, k.integKey),
    ...over,
  });
  return { out, inb };
}

export const HEADROOM = 64;
export const SLOT = 2048;

/** Places `inner` in a fresh slot with headroom and encapsulates it; returns the ESP packet (a copy). */
export function seal(sa: EspSa, inner: Buffer, span = new EspSpan()): { r: DropReason; pkt: Buffer } {
  const buf = Buffer.alloc(SLOT);
  inner.copy(buf, HEADROOM);
  const r = espEncap(sa, buf, HEADROOM, inner.length, SLOT, span);
  return { r, pkt: r === DropReason.NONE ? Buffer.from(buf.subarray(span.off, span.off + span.len)) : Buffer.alloc(0) };
}

/** Decapsulates a copy of `pkt`; returns the inner packet (a copy) on success. */
export function open(sa: EspSa, pkt: Buffer, span = new EspSpan()): { r: DropReason; inner: Buffer } {
  const buf = Buffer.from(pkt);
  const r = espDecap(sa, buf, 0, buf.length, span);
  return { r, inner: r === DropReason.NONE ? Buffer.from(buf.subarray(span.off, span.off + span.len)) : Buffer.alloc(0) };
}
