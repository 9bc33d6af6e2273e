/**
 * Compression "stub" framing (OpenVPN comp.h, compstub.c, comp-lzo.h). We never compress;
 * we only speak the framing a client with a compression directive insists on.
 *
 *  mode       | uplink (client → us)                           | downlink (us → client)
 *  -----------+------------------------------------------------+-------------------------------
 *  none       | no framing                                     | no framing
 *  stub-v2    | none, or 0x50 0x00 before a payload starting 0x50| same rule (IP never starts 0x50)
 *  lzo-stub   | 0xFA (NO_COMPRESS) before every payload         | 0xFA before every payload
 *  swap-stub  | 0xFB replaces byte 0, which moves to the end    | same
 *
 * Real compressed payloads (0x66 LZO, 0x69 LZ4, 0x50 0x01/0x02 v2) are dropped: a 2.6 client sends them
 * only with `allow-compression yes`, and we never push compression.
 *
 * The mode can be set by the shell (from what was pushed) and is also learned from the uplink: 0xFA and
 * 0xFB can never start an IP packet (version nibble 15), so seeing one in mode `none` proves the client
 * frames and expects the same on the downlink (otherwise its downlink is silently dead: it drops every unframed packet).
 * 0x66/0x69 are only treated as "compressed" once the client is known to frame, because they are also
 * valid IPv6 first bytes (traffic class 0x6x/0x9x).
 */
export const COMP_NONE = 0;
export const COMP_STUB_V2 = 1;
export const COMP_LZO_STUB = 2;
export const COMP_SWAP_STUB = 3;

export type CompressionMode = typeof COMP_NONE | typeof COMP_STUB_V2 | typeof COMP_LZO_STUB | typeof COMP_SWAP_STUB;

export const NO_COMPRESS_BYTE = 0xfa; // comp-lzo stub: not compressed
export const NO_COMPRESS_BYTE_SWAP = 0xfb; // compress stub (swap form)
export const LZO_COMPRESS_BYTE = 0x66;
export const LZ4_COMPRESS_BYTE = 0x69;
export const COMP_ALGV2_INDICATOR_BYTE = 0x50;
export const COMP_ALGV2_UNCOMPRESSED = 0x00;

/** the largest number of bytes framing adds to a payload */
export const COMP_MAX_OVERHEAD = 2;

/** Result of `unframe`: negative = drop, otherwise the number of bytes removed from the front. */
export const UNFRAME_COMPRESSED = -1;
export const UNFRAME_EMPTY = -2;

/**
 * Undoes the stub framing of one decrypted payload, in place (the swap form moves the last byte back to
 * the front). The payload is then at this.off / this.len. Learns the client's mode (see above).
 */
export class Unframer {
  mode: CompressionMode = COMP_NONE;
  /** set when the mode was learned from the uplink rather than configured */
  learned = false;
  /** output of the last `unframe` call */
  off = 0;
  len = 0;

  /** Returns 0 on success (payload at this.off/this.len) or a negative UNFRAME_* code. */
  unframe(buf: Buffer, off: number, len: number): number {
    if (len === 0) return UNFRAME_EMPTY;
    const b0 = buf[off]!;
    if (b0 === NO_COMPRESS_BYTE) {
      if (this.mode === COMP_NONE) { this.mode = COMP_LZO_STUB; this.learned = true; }
      if (len < 2) return UNFRAME_EMPTY;
      this.off = off + 1;
      this.len = len - 1;
      return 0;
    }
    if (b0 === NO_COMPRESS_BYTE_SWAP) {
      if (this.mode === COMP_NONE) { this.mode = COMP_SWAP_STUB; this.learned = true; }
      if (len < 2) return UNFRAME_EMPTY;
      // the sender moved byte 0 to the end and wrote 0xFB in its place
      buf[off] = buf[off + len - 1]!;
      this.off = off;
      this.len = len - 1;
      return 0;
    }
    if (b0 === COMP_ALGV2_INDICATOR_BYTE) {
      if (len < 2 || buf[off + 1] !== COMP_ALGV2_UNCOMPRESSED) return UNFRAME_COMPRESSED;
      if (len < 3) return UNFRAME_EMPTY;
      this.off = off + 2;
      this.len = len - 2;
      return 0;
    }
    if ((b0 === LZO_COMPRESS_BYTE || b0 === LZ4_COMPRESS_BYTE) && (this.mode === COMP_LZO_STUB || this.mode === COMP_SWAP_STUB)) {
      return UNFRAME_COMPRESSED;
    }
    this.off = off;
    this.len = len;
    return 0;
  }
}

/** Bytes the downlink framing adds in front of a payload whose first byte is `b0`. */
export function framingSize(mode: CompressionMode, b0: number): number {
  if (mode === COMP_LZO_STUB || mode === COMP_SWAP_STUB) return 1;
  if (mode === COMP_STUB_V2 && b0 === COMP_ALGV2_INDICATOR_BYTE) return 2;
  return 0;
}

/**
 * Writes the framed form of src[srcOff, srcOff+len) at out[outOff]; returns the framed length.
 * (Also used for `none`, where it is a plain copy.)
 */
export function writeFramed(mode: CompressionMode, src: Buffer, srcOff: number, len: number, out: Buffer, outOff: number): number {
  const b0 = src[srcOff]!;
  if (mode === COMP_LZO_STUB) {
    out[outOff] = NO_COMPRESS_BYTE;
    src.copy(out, outOff + 1, srcOff, srcOff + len);
    return len + 1;
  }
  if (mode === COMP_SWAP_STUB) {
    out[outOff] = NO_COMPRESS_BYTE_SWAP;
    src.copy(out, outOff + 1, srcOff + 1, srcOff + len);
    out[outOff + len] = b0;
    return len + 1;
  }
  if (mode === COMP_STUB_V2 && b0 === COMP_ALGV2_INDICATOR_BYTE) {
    out[outOff] = COMP_ALGV2_INDICATOR_BYTE;
    out[outOff + 1] = COMP_ALGV2_UNCOMPRESSED;
    src.copy(out, outOff + 2, srcOff, srcOff + len);
    return len + 2;
  }
  src.copy(out, outOff, srcOff, srcOff + len);
  return len;
}
