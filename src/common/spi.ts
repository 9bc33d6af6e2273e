/**
 * How SPIs print, one way everywhere (logs, status, errors):
 *  - a child SA (ESP) SPI as `0x` and 8 hex digits, e.g. `0xc1a2b3d4`;
 *  - an IKE SA by its two 8-byte SPIs in hex, `spiI/spiR` (RFC 7296 §3.1 field names).
 */

/** `0x` + 8 lowercase hex digits of a 32-bit ESP SPI. */
export function formatChildSpi(spi: number): string {
  return `0x${(spi >>> 0).toString(16).padStart(8, '0')}`;
}

/** One IKE SPI (8 bytes) in hex. */
export function formatIkeSpi(spi: Uint8Array): string {
  return Buffer.from(spi.buffer, spi.byteOffset, spi.byteLength).toString('hex');
}

/** An IKE SA's id: `spiI/spiR` in hex (spiR all zeros until the responder has answered). */
export function formatIkeSaId(spiI: Uint8Array, spiR: Uint8Array): string {
  return `${formatIkeSpi(spiI)}/${formatIkeSpi(spiR)}`;
}
