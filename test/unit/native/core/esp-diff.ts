// Shared by the native-vs-TypeScript ESP differential tests (esp.test.ts, esp-esn.test.ts): the suites,
// SA parameters for one direction, and encap/decap through each implementation into fresh slots.
import type { SaParams } from '../../../../src/dataplane/data-plane.js';
import type { NativeEspCore } from '../../../../src/native/test-cores.js';
import { createEncTransform } from '../../../../src/crypto/aead.js';
import { espDecap } from '../../../../src/esp/decap.js';
import { espEncap } from '../../../../src/esp/encap.js';
import { EspSa, EspSpan } from '../../../../src/esp/esp-sa.js';
import { keys, P, SUITES } from '../../esp/packets.js';
import type { Suite } from '../../esp/packets.js';

/** SUITES plus the AES-GCM ICV sizes and key lengths only the native core is compared on. */
export const ALL_SUITES: Suite[] = [
  ...SUITES,
  { name: 'aes128gcm8', encr: 18, encrKeyBits: 128, integ: 0, encrKeyLen: 20, integKeyLen: 0 },
  { name: 'aes256gcm12', encr: 19, encrKeyBits: 256, integ: 0, encrKeyLen: 36, integKeyLen: 0 },
  { name: 'aes192gcm16', encr: 20, encrKeyBits: 192, integ: 0, encrKeyLen: 28, integKeyLen: 0 },
];

export const SITE_A = [P('10.1.0.0/16'), P('fd01::/64')];
export const SITE_B = [P('10.2.0.0/16'), P('fd02::/64')];
export const HEADROOM = 64;
export const SLOT = 2048;

export type ParamsFn = (s: Suite, dir: 'in' | 'out', over?: Partial<SaParams>) => SaParams;

/**
 * SaParams for the A → B direction of SA `spi` (keys from `keySeed`); `dir` 'in' gives the receiver's
 * view (selectors swapped). `base` adds fields to every SA (e.g. `esn: true`).
 */
export function paramsFor(spi: number, keySeed: number, base: Partial<SaParams> = {}): ParamsFn {
  return (s, dir, over = {}) => {
    const k = keys(s, keySeed);
    return {
      direction: dir,
      spi,
      encr: s.encr,
      encrKeyBits: s.encrKeyBits,
      integ: s.integ,
      encrKey: k.encrKey,
      integKey: k.integKey,
      ...base,
      localAddr: dir === 'out' ? '192.0.2.1' : '192.0.2.2',
      localPort: 4500,
      remoteAddr: dir === 'out' ? '192.0.2.2' : '192.0.2.1',
      remotePort: 4500,
      localTs: dir === 'out' ? SITE_A : SITE_B,
      remoteTs: dir === 'out' ? SITE_B : SITE_A,
      ...over,
    };
  };
}

export function tsSa(p: SaParams): EspSa {
  return new EspSa({
    ...p,
    transform: createEncTransform({ encr: p.encr, encrKeyBits: p.encrKeyBits, integ: p.integ }, p.encrKey, p.integKey),
  });
}

/** Puts `inner` in a fresh slot at HEADROOM. */
export function slotWith(inner: Buffer): Buffer {
  const b = Buffer.alloc(SLOT);
  inner.copy(b, HEADROOM);
  return b;
}

export function nativeEncap(core: NativeEspCore, inner: Buffer): { r: number; esp: Buffer; event: number } {
  const b = slotWith(inner);
  const span = new Uint32Array(3);
  const r = core.encap(b, HEADROOM, inner.length, SLOT, span);
  return { r, esp: Buffer.from(b.subarray(span[0]!, span[0]! + span[1]!)), event: span[2]! };
}

export function nativeDecap(core: NativeEspCore, esp: Buffer): { r: number; inner: Buffer; event: number } {
  const b = Buffer.from(esp);
  const span = new Uint32Array(3);
  const r = core.decap(b, 0, b.length, span);
  return { r, inner: r === 0 ? Buffer.from(b.subarray(span[0]!, span[0]! + span[1]!)) : Buffer.alloc(0), event: span[2]! };
}

export function tsEncap(sa: EspSa, inner: Buffer): { r: number; esp: Buffer; event: number } {
  const b = slotWith(inner);
  const span = new EspSpan();
  const r = espEncap(sa, b, HEADROOM, inner.length, SLOT, span);
  return { r, esp: Buffer.from(b.subarray(span.off, span.off + span.len)), event: span.event };
}

export function tsDecap(sa: EspSa, esp: Buffer): { r: number; inner: Buffer } {
  const b = Buffer.from(esp);
  const span = new EspSpan();
  const r = espDecap(sa, b, 0, b.length, span);
  return { r, inner: r === 0 ? Buffer.from(b.subarray(span.off, span.off + span.len)) : Buffer.alloc(0) };
}
