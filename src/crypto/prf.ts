// RFC 7296 §2.13: pseudorandom functions and prf+.
//
//   prf+ (K,S) = T1 | T2 | T3 | T4 | ...
//   T1 = prf (K, S | 0x01)
//   T2 = prf (K, T1 | S | 0x02)
//   ...
//
// Only the HMAC PRFs are offered (RFC 2104 / RFC 4868): node:crypto has no AES-XCBC/CMAC primitive.
import { createHmac } from 'node:crypto';

export interface Prf {
  /** IANA PRF transform ID (PrfId) */
  readonly id: number;
  /** preferred key length in bytes (= output length for HMAC PRFs, RFC 7296 §2.13) */
  readonly keyLen: number;
  /** output length in bytes */
  readonly outLen: number;
  /** prf(key, data); keys of any length are accepted (HMAC). */
  compute(key: Buffer, data: Buffer): Buffer;
}

// Spec: PRF transform IDs (IANA "Transform Type 2").
const PRF_HMAC_SHA1 = 2;
const PRF_HMAC_SHA2_256 = 5;
const PRF_HMAC_SHA2_384 = 6;
const PRF_HMAC_SHA2_512 = 7;

/** RFC 7296 §2.13: prf+ stops after 255 blocks (the counter is one octet). */
export const PRF_PLUS_MAX_BLOCKS = 255;

const HMAC_PRFS: ReadonlyMap<number, { hash: string; outLen: number }> = new Map([
  [PRF_HMAC_SHA1, { hash: 'sha1', outLen: 20 }],
  [PRF_HMAC_SHA2_256, { hash: 'sha256', outLen: 32 }],
  [PRF_HMAC_SHA2_384, { hash: 'sha384', outLen: 48 }],
  [PRF_HMAC_SHA2_512, { hash: 'sha512', outLen: 64 }],
]);

class HmacPrf implements Prf {
  readonly id: number;
  readonly keyLen: number;
  readonly outLen: number;
  private readonly hash: string;
  constructor(id: number, hash: string, outLen: number) {
    this.id = id;
    this.hash = hash;
    this.keyLen = outLen;
    this.outLen = outLen;
  }
  compute(key: Buffer, data: Buffer): Buffer {
    return createHmac(this.hash, key).update(data).digest();
  }
}

export function isSupportedPrf(prfId: number): boolean {
  return HMAC_PRFS.has(prfId);
}

/** Creates the PRF for an IKE PRF transform ID; throws for IDs we do not implement. */
export function createPrf(prfId: number): Prf {
  const p = HMAC_PRFS.get(prfId);
  if (!p) throw new RangeError(`unsupported PRF transform id ${prfId}`);
  return new HmacPrf(prfId, p.hash, p.outLen);
}

/**
 * RFC 7296 §2.13 prf+(key, seed), truncated to `length` bytes.
 * Throws RangeError if more than 255 blocks would be needed (a programming error: no negotiated
 * suite comes close).
 */
export function prfPlus(prf: Prf, key: Buffer, seed: Buffer, length: number): Buffer {
  const blocks = Math.ceil(length / prf.outLen);
  if (blocks > PRF_PLUS_MAX_BLOCKS) {
    throw new RangeError(`prf+ output of ${length} bytes needs ${blocks} blocks (max ${PRF_PLUS_MAX_BLOCKS})`);
  }
  const out = Buffer.alloc(blocks * prf.outLen);
  // input = T(n-1) | S | n; T0 is empty
  const input = Buffer.alloc(prf.outLen + seed.length + 1);
  seed.copy(input, prf.outLen);
  let prev = 0; // length of T(n-1) in `input`
  for (let n = 1; n <= blocks; n++) {
    input[prf.outLen + seed.length] = n;
    const t = prf.compute(key, input.subarray(prf.outLen - prev));
    t.copy(out, (n - 1) * prf.outLen);
    t.copy(input, 0);
    prev = prf.outLen;
  }
  return out.subarray(0, length);
}
