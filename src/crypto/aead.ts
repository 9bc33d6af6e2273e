/**
 * One interface for the "encrypt + authenticate" transforms shared by IKE's SK payload
 * (RFC 7296 §3.14, RFC 5282) and ESP (RFC 4303, RFC 4106, RFC 4868, RFC 7634).
 *
 * Both protect one contiguous region of a buffer:
 *
 *   authStart          ivOff        dataOff            dataOff+dataLen
 *   | header(s) ...     | IV (ivLen) | plaintext/cipher  | ICV (icvLen) |
 *
 * - AEAD (AES-GCM, ChaCha20-Poly1305): nonce = salt(4) | IV(8); AAD = buf[authStart, ivOff)
 *   (ESP: SPI|seq; IKE: IKE header + SK generic header).
 * - CBC + HMAC: ciphertext = AES-CBC(IV, plaintext); ICV = truncated HMAC over buf[authStart, dataOff+dataLen).
 *
 * The caller writes the IV bytes at ivOff before `seal` (a counter or random, see `ivLen`),
 * pads the plaintext itself (multiple of `blockLen`), and reserves icvLen bytes after the data.
 * `seal` and `open` work in place. `open` returns false on a bad ICV and leaves no partial state.
 * A native implementation with reused EVP contexts can replace the node:crypto one behind this.
 */
export interface EncTransform {
  readonly name: string; // strongSwan-style, e.g. "aes128gcm16", "aes256-sha256"
  readonly ivLen: number;
  readonly icvLen: number;
  /** padding alignment of the plaintext: 16 for AES-CBC, 4 (ESP minimum) for stream/AEAD ciphers */
  readonly blockLen: number;
  seal(buf: Buffer, authStart: number, ivOff: number, dataOff: number, dataLen: number): void;
  open(buf: Buffer, authStart: number, ivOff: number, dataOff: number, dataLen: number): boolean;
}

/** What a transform is built from (key material comes from IKE keymat). */
export interface EncTransformSpec {
  encr: number; // EncrId
  encrKeyBits: number; // 128/192/256 (256 for ChaCha20)
  integ: number; // IntegId (0 for AEAD)
}
