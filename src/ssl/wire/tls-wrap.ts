/**
 * tls-auth and tls-crypt (v1): the layers OpenVPN puts around every control packet so that a
 * server drops packets without the pre-shared key before any state exists (OpenVPN 2.6
 * `ssl_pkt.c` tls_wrap_control / read_control_auth, `tls_crypt.c`, `crypto.c` openvpn_encrypt).
 *
 * tls-auth (`--tls-auth key 0|1`, HMAC with the `--auth` digest, SHA1 by default):
 *
 *   +--------+----------+-----------+-----------+----------+----------------------------------+
 *   | op|kid | sid (8)  | HMAC (n)  | pkt-id(4) | time (4) | ACK block, msg id, payload       |
 *   +--------+----------+-----------+-----------+----------+----------------------------------+
 *   HMAC over: pkt-id || time || op|kid || sid || ACK block, msg id, payload
 *
 * tls-crypt (`--tls-crypt key`, AES-256-CTR + HMAC-SHA256, SIV-like):
 *
 *   +--------+----------+-----------+----------+-----------+--------------------------------+
 *   | op|kid | sid (8)  | pkt-id(4) | time (4) | tag (32)  | AES-256-CTR(ACK, msg id, data) |
 *   +--------+----------+-----------+----------+-----------+--------------------------------+
 *   tag = HMAC-SHA256(op|kid || sid || pkt-id || time || clear);  CTR IV = tag[0..16)
 *
 * Keys: the 2048-bit OpenVPN static key file ("-----BEGIN OpenVPN Static key V1-----", 256 bytes
 * of hex) holds two keys, each 64 bytes of cipher key then 64 bytes of HMAC key. A side with key
 * direction 0 (the server's usual `--tls-auth key 0`; always the server for tls-crypt) sends with
 * key 0 and receives with key 1; direction 1 the reverse; no direction uses key 0 both ways.
 *
 * Replay (OpenVPN packet_id.c, the long form with time): a session's wrap accepts each
 * (time, packet-id) once, within a window below the highest id seen for the newest time. The
 * stateless pre-check (before a session exists) only authenticates.
 */
import { createCipheriv, createHmac, timingSafeEqual } from 'node:crypto';
import { ConfigError, ParseError } from '../../common/errors.js';
import type { ControlWrap } from './control-packet.js';
import { SESSION_ID_SIZE } from './opcodes.js';

// ---- spec constants ----
export const STATIC_KEY_BEGIN = '-----BEGIN OpenVPN Static key V1-----';
export const STATIC_KEY_END = '-----END OpenVPN Static key V1-----';
export const STATIC_KEY_SIZE = 256;
const KEY_SLOT_SIZE = 128;
const CIPHER_KEY_SIZE = 64;
const HEADER_SIZE = 1 + SESSION_ID_SIZE;
const PID_SIZE = 8; // packet-id (4) + time (4)
export const TLS_CRYPT_TAG_SIZE = 32;
export const TLS_CRYPT_OVERHEAD = PID_SIZE + TLS_CRYPT_TAG_SIZE;

// ---- implementation choices ----
/** replay window below the highest packet-id seen (OpenVPN --replay-window default is 64) */
export const WRAP_REPLAY_WINDOW = 64;

export type TlsAuthDigest = 'SHA1' | 'SHA256' | 'SHA384' | 'SHA512';
const DIGEST_SIZE: Record<TlsAuthDigest, number> = { SHA1: 20, SHA256: 32, SHA384: 48, SHA512: 64 };

/** Parses an OpenVPN static key file (2048 bits); `what` names the config field in errors. */
export function parseStaticKey(text: string, what: string): Buffer {
  const b = text.indexOf(STATIC_KEY_BEGIN);
  const e = text.indexOf(STATIC_KEY_END);
  if (b < 0 || e < b) throw new ConfigError(what, '(key file)', `an OpenVPN static key ("${STATIC_KEY_BEGIN}"), as made by openvpn --genkey tls-crypt`);
  const hex = text.slice(b + STATIC_KEY_BEGIN.length, e).replace(/\s+/g, '');
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== STATIC_KEY_SIZE * 2) throw new ConfigError(what, '(key file)', 'a 2048-bit OpenVPN static key (256 bytes of hex)');
  return Buffer.from(hex, 'hex');
}

/** Writes a static key in OpenVPN's file format (16 bytes of hex per line). */
export function formatStaticKey(key: Buffer): string {
  const lines = ['#', '# 2048 bit OpenVPN static key', '#', STATIC_KEY_BEGIN];
  for (let i = 0; i < key.length; i += 16) lines.push(key.subarray(i, i + 16).toString('hex'));
  lines.push(STATIC_KEY_END, '');
  return lines.join('\n');
}

interface Directional {
  sendCipher: Buffer;
  sendHmac: Buffer;
  recvCipher: Buffer;
  recvHmac: Buffer;
}

/** The send and receive halves of a static key for key direction 0, 1 or none (-1). */
export function directionalKeys(key: Buffer, direction: 0 | 1 | -1): Directional {
  const slot = (i: number) => key.subarray(i * KEY_SLOT_SIZE, (i + 1) * KEY_SLOT_SIZE);
  const send = slot(direction === 1 ? 1 : 0);
  const recv = slot(direction === 0 ? 1 : 0);
  return {
    sendCipher: send.subarray(0, CIPHER_KEY_SIZE),
    sendHmac: send.subarray(CIPHER_KEY_SIZE),
    recvCipher: recv.subarray(0, CIPHER_KEY_SIZE),
    recvHmac: recv.subarray(CIPHER_KEY_SIZE),
  };
}

/** Accept-once check of (time, packet-id); `check` does not record, `record` does (after authentication). */
export class WrapReplay {
  private time = -1;
  private high = -1;
  private bits = 0n;

  check(time: number, pid: number): boolean {
    if (this.time < 0 || time > this.time) return true;
    if (time < this.time) return false;
    if (pid > this.high) return true;
    const back = this.high - pid;
    if (back >= WRAP_REPLAY_WINDOW) return false;
    return ((this.bits >> BigInt(back)) & 1n) === 0n;
  }

  record(time: number, pid: number): void {
    if (this.time < 0 || time > this.time) {
      this.time = time;
      this.high = pid;
      this.bits = 1n;
      return;
    }
    if (pid > this.high) {
      const shift = pid - this.high;
      this.bits = shift >= WRAP_REPLAY_WINDOW ? 1n : ((this.bits << BigInt(shift)) | 1n) & ((1n << BigInt(WRAP_REPLAY_WINDOW)) - 1n);
      this.high = pid;
    } else {
      this.bits |= 1n << BigInt(this.high - pid);
    }
  }
}

/** The outgoing packet-id: OpenVPN's long form, a counter and the sender's start time (seconds). */
class WrapSender {
  private pid = 0;
  private time = 0;
  next(nowMs: number): { pid: number; time: number } {
    if (this.time === 0) this.time = Math.floor(nowMs / 1000) >>> 0;
    this.pid = (this.pid + 1) >>> 0;
    return { pid: this.pid, time: this.time };
  }
}

export class TlsCryptWrap implements ControlWrap {
  readonly overhead = TLS_CRYPT_OVERHEAD;
  private readonly k: Directional;
  private readonly tx = new WrapSender();
  private readonly replay: WrapReplay | null;

  /** `withReplay` false: the stateless pre-check (authenticate only); direction 1 is the client's side */
  constructor(key: Buffer, withReplay = true, direction: 0 | 1 = 0) {
    this.k = directionalKeys(key, direction);
    this.replay = withReplay ? new WrapReplay() : null;
  }

  wrap(clear: Buffer, nowMs: number): Buffer {
    const out = Buffer.allocUnsafe(clear.length + TLS_CRYPT_OVERHEAD);
    clear.copy(out, 0, 0, HEADER_SIZE);
    const { pid, time } = this.tx.next(nowMs);
    out.writeUInt32BE(pid, HEADER_SIZE);
    out.writeUInt32BE(time, HEADER_SIZE + 4);
    const body = clear.subarray(HEADER_SIZE);
    const tag = createHmac('sha256', this.k.sendHmac.subarray(0, 32)).update(out.subarray(0, HEADER_SIZE + PID_SIZE)).update(body).digest();
    tag.copy(out, HEADER_SIZE + PID_SIZE);
    const c = createCipheriv('aes-256-ctr', this.k.sendCipher.subarray(0, 32), tag.subarray(0, 16));
    const enc = c.update(body);
    enc.copy(out, HEADER_SIZE + TLS_CRYPT_OVERHEAD);
    c.final();
    return out;
  }

  unwrap(wire: Buffer, _nowMs: number): Buffer | ParseError {
    if (wire.length < HEADER_SIZE + TLS_CRYPT_OVERHEAD) return new ParseError('tls-crypt', wire.length, 'too short');
    const pid = wire.readUInt32BE(HEADER_SIZE);
    const time = wire.readUInt32BE(HEADER_SIZE + 4);
    if (this.replay && !this.replay.check(time, pid)) return new ParseError('tls-crypt', HEADER_SIZE, 'replayed packet-id');
    const tag = wire.subarray(HEADER_SIZE + PID_SIZE, HEADER_SIZE + TLS_CRYPT_OVERHEAD);
    const d = createCipheriv('aes-256-ctr', this.k.recvCipher.subarray(0, 32), tag.subarray(0, 16));
    const body = d.update(wire.subarray(HEADER_SIZE + TLS_CRYPT_OVERHEAD));
    d.final();
    const want = createHmac('sha256', this.k.recvHmac.subarray(0, 32)).update(wire.subarray(0, HEADER_SIZE + PID_SIZE)).update(body).digest();
    if (!timingSafeEqual(want, tag)) return new ParseError('tls-crypt', HEADER_SIZE + PID_SIZE, 'bad tag');
    this.replay?.record(time, pid);
    const clear = Buffer.allocUnsafe(HEADER_SIZE + body.length);
    wire.copy(clear, 0, 0, HEADER_SIZE);
    body.copy(clear, HEADER_SIZE);
    return clear;
  }
}

export class TlsAuthWrap implements ControlWrap {
  readonly overhead: number;
  private readonly hashSize: number;
  private readonly algo: string;
  private readonly sendKey: Buffer;
  private readonly recvKey: Buffer;
  private readonly tx = new WrapSender();
  private readonly replay: WrapReplay | null;

  constructor(key: Buffer, direction: 0 | 1 | -1, digest: TlsAuthDigest = 'SHA1', withReplay = true) {
    this.hashSize = DIGEST_SIZE[digest];
    this.algo = digest.toLowerCase();
    this.overhead = this.hashSize + PID_SIZE;
    const k = directionalKeys(key, direction);
    this.sendKey = k.sendHmac.subarray(0, this.hashSize);
    this.recvKey = k.recvHmac.subarray(0, this.hashSize);
    this.replay = withReplay ? new WrapReplay() : null;
  }

  wrap(clear: Buffer, nowMs: number): Buffer {
    const n = this.hashSize;
    const out = Buffer.allocUnsafe(clear.length + this.overhead);
    clear.copy(out, 0, 0, HEADER_SIZE);
    const { pid, time } = this.tx.next(nowMs);
    const pidAt = HEADER_SIZE + n;
    out.writeUInt32BE(pid, pidAt);
    out.writeUInt32BE(time, pidAt + 4);
    clear.copy(out, pidAt + PID_SIZE, HEADER_SIZE);
    this.hmac(this.sendKey, out).copy(out, HEADER_SIZE);
    return out;
  }

  unwrap(wire: Buffer, _nowMs: number): Buffer | ParseError {
    const n = this.hashSize;
    const pidAt = HEADER_SIZE + n;
    if (wire.length < pidAt + PID_SIZE) return new ParseError('tls-auth', wire.length, 'too short');
    const pid = wire.readUInt32BE(pidAt);
    const time = wire.readUInt32BE(pidAt + 4);
    if (this.replay && !this.replay.check(time, pid)) return new ParseError('tls-auth', pidAt, 'replayed packet-id');
    if (!timingSafeEqual(this.hmac(this.recvKey, wire), wire.subarray(HEADER_SIZE, pidAt))) return new ParseError('tls-auth', HEADER_SIZE, 'bad HMAC');
    this.replay?.record(time, pid);
    const clear = Buffer.allocUnsafe(wire.length - this.overhead);
    wire.copy(clear, 0, 0, HEADER_SIZE);
    wire.copy(clear, HEADER_SIZE, pidAt + PID_SIZE);
    return clear;
  }

  /** HMAC over pkt-id || time || op|kid || sid || rest (the wire layout with the hash left out) */
  private hmac(key: Buffer, wire: Buffer): Buffer {
    const pidAt = HEADER_SIZE + this.hashSize;
    return createHmac(this.algo, key)
      .update(wire.subarray(pidAt, pidAt + PID_SIZE))
      .update(wire.subarray(0, HEADER_SIZE))
      .update(wire.subarray(pidAt + PID_SIZE))
      .digest();
  }
}

/** How a server makes the wraps: one per session (own packet-ids and replay window), one stateless. */
export interface ControlWrapFactory {
  /** for a new session */
  session(): ControlWrap;
  /** the pre-check of packets without a session (no replay state) and the stateless reply */
  readonly stateless: ControlWrap;
}

export type TlsWrapConfig =
  | { readonly kind: 'tls-crypt'; readonly key: Buffer }
  | { readonly kind: 'tls-crypt-v2'; readonly serverKey: Buffer }
  | { readonly kind: 'tls-auth'; readonly key: Buffer; readonly direction: 0 | 1 | -1; readonly digest: TlsAuthDigest };

export function wrapFactoryOf(c: TlsWrapConfig): ControlWrapFactory {
  if (c.kind === 'tls-crypt') return { session: () => new TlsCryptWrap(c.key), stateless: new TlsCryptWrap(c.key, false) };
  if (c.kind === 'tls-crypt-v2') return { session: () => new TlsCryptV2Wrap(c.serverKey), stateless: new TlsCryptV2Wrap(c.serverKey, false) };
  return { session: () => new TlsAuthWrap(c.key, c.direction, c.digest), stateless: new TlsAuthWrap(c.key, c.direction, c.digest, false) };
}

// ---- tls-crypt-v2 (OpenVPN 2.6 tls_crypt.c, doc/tls-crypt-v2.txt) ----
//
// The server key (128 bytes: 64 cipher + 64 HMAC) wraps each client's tls-crypt key Kc (a 2048-bit
// static key) with its metadata into WKc, which the client appends to its first packets:
//
//   WKc = T (32) || AES-256-CTR(Ke, IV = T[0..16), Kc || metadata) || len (u16, all of WKc)
//   T   = HMAC-SHA256(Ka, len || Kc || metadata)
//
// A client's HARD_RESET_CLIENT_V3 and P_CONTROL_WKC_V1 are a tls-crypt packet under Kc followed by
// WKc; everything else is plain tls-crypt under Kc. A 2.6 client marks early-negotiation support
// with packet-id 0x0f000000 | n in its reset; the server then answers statelessly, asking it to
// resend WKc (EARLY_NEG_FLAGS RESEND_WKC) with its next packet (P_CONTROL_WKC_V1).

export const TLS_CRYPT_V2_SERVER_BEGIN = '-----BEGIN OpenVPN tls-crypt-v2 server key-----';
export const TLS_CRYPT_V2_CLIENT_BEGIN = '-----BEGIN OpenVPN tls-crypt-v2 client key-----';
const V2_SERVER_KEY_SIZE = 128;
/** OpenVPN TLS_CRYPT_V2_MAX_WKC_LEN */
export const TLS_CRYPT_V2_MAX_WKC_LEN = 1024;
/** metadata type of `openvpn --genkey tls-crypt-v2-client` without metadata: a 64-bit timestamp */
export const TLS_CRYPT_METADATA_TYPE_TIMESTAMP = 0x01;
export const EARLY_NEG_MASK = 0xff000000;
export const EARLY_NEG_START = 0x0f000000;
const OP_RESET_V3 = 10;
const OP_WKC_V1 = 11;
const OP_CONTROL_V1 = 4;

function pemBody(text: string, begin: string, what: string, wantWhat: string): Buffer {
  const end = begin.replace('BEGIN', 'END');
  const b = text.indexOf(begin);
  const e = text.indexOf(end);
  if (b < 0 || e < b) throw new ConfigError(what, '(key file)', wantWhat);
  const body = text.slice(b + begin.length, e).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new ConfigError(what, '(key file)', wantWhat);
  return Buffer.from(body, 'base64');
}

function pem(begin: string, data: Buffer): string {
  const b64 = data.toString('base64');
  const lines = [begin];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(begin.replace('BEGIN', 'END'), '');
  return lines.join('\n');
}

/** The tls-crypt-v2 server key (`openvpn --genkey tls-crypt-v2-server`): 128 bytes. */
export function parseTlsCryptV2ServerKey(text: string, what: string): Buffer {
  const k = pemBody(text, TLS_CRYPT_V2_SERVER_BEGIN, what, 'an OpenVPN tls-crypt-v2 server key (openvpn --genkey tls-crypt-v2-server)');
  if (k.length !== V2_SERVER_KEY_SIZE) throw new ConfigError(what, '(key file)', 'a tls-crypt-v2 server key of 128 bytes');
  return k;
}

export function formatTlsCryptV2ServerKey(key: Buffer): string {
  return pem(TLS_CRYPT_V2_SERVER_BEGIN, key);
}

/** A tls-crypt-v2 client key file: Kc (256 bytes) then WKc. */
export function parseTlsCryptV2ClientKey(text: string, what: string): { kc: Buffer; wkc: Buffer } {
  const d = pemBody(text, TLS_CRYPT_V2_CLIENT_BEGIN, what, 'an OpenVPN tls-crypt-v2 client key');
  if (d.length < STATIC_KEY_SIZE + TLS_CRYPT_TAG_SIZE + 2) throw new ConfigError(what, '(key file)', 'a complete tls-crypt-v2 client key');
  return { kc: d.subarray(0, STATIC_KEY_SIZE), wkc: d.subarray(STATIC_KEY_SIZE) };
}

export function formatTlsCryptV2ClientKey(kc: Buffer, wkc: Buffer): string {
  return pem(TLS_CRYPT_V2_CLIENT_BEGIN, Buffer.concat([kc, wkc]));
}

/** WKc for client key `kc` (256 bytes) and `metadata` under the server key. */
export function wrapClientKey(serverKey: Buffer, kc: Buffer, metadata: Buffer): Buffer {
  const len = TLS_CRYPT_TAG_SIZE + kc.length + metadata.length + 2;
  const netLen = Buffer.alloc(2);
  netLen.writeUInt16BE(len);
  const tag = createHmac('sha256', serverKey.subarray(64, 96)).update(netLen).update(kc).update(metadata).digest();
  const c = createCipheriv('aes-256-ctr', serverKey.subarray(0, 32), tag.subarray(0, 16));
  return Buffer.concat([tag, c.update(kc), c.update(metadata), c.final(), netLen]);
}

/** Kc and metadata from WKc, or null when it is not authentic under this server key. */
export function unwrapClientKey(serverKey: Buffer, wkc: Buffer): { kc: Buffer; metadata: Buffer } | null {
  if (wkc.length < TLS_CRYPT_TAG_SIZE + STATIC_KEY_SIZE + 2 || wkc.length > TLS_CRYPT_V2_MAX_WKC_LEN) return null;
  if (wkc.readUInt16BE(wkc.length - 2) !== wkc.length) return null;
  const tag = wkc.subarray(0, TLS_CRYPT_TAG_SIZE);
  const d = createCipheriv('aes-256-ctr', serverKey.subarray(0, 32), tag.subarray(0, 16));
  const plain = Buffer.concat([d.update(wkc.subarray(TLS_CRYPT_TAG_SIZE, wkc.length - 2)), d.final()]);
  const want = createHmac('sha256', serverKey.subarray(64, 96)).update(wkc.subarray(wkc.length - 2)).update(plain).digest();
  if (!timingSafeEqual(want, tag)) return null;
  return { kc: plain.subarray(0, STATIC_KEY_SIZE), metadata: plain.subarray(STATIC_KEY_SIZE) };
}

/**
 * tls-crypt-v2 on the server: learns Kc from the WKc of the client's V3 reset or P_CONTROL_WKC_V1
 * (stripping it, and turning WKC_V1 into P_CONTROL_V1 for the layers above), then is tls-crypt
 * under Kc. A session's wrap keeps the first Kc it learned (later WKc parts are stripped and
 * ignored, as OpenVPN does). The stateless instance (no replay) learns the key of every packet
 * anew and wraps the reply with the key of the packet it unwrapped last (the manager replies at once).
 */
export class TlsCryptV2Wrap implements ControlWrap {
  readonly overhead = TLS_CRYPT_OVERHEAD;
  private inner: TlsCryptWrap | null = null;
  /** the client's reset asked for early negotiation (packet-id 0x0f......) */
  earlyNegotiation = false;

  constructor(
    private readonly serverKey: Buffer,
    private readonly withReplay = true,
  ) {}

  wrap(clear: Buffer, nowMs: number): Buffer {
    if (!this.inner) throw new ParseError('tls-crypt-v2', 0, 'no client key yet');
    return this.inner.wrap(clear, nowMs);
  }

  unwrap(wire: Buffer, nowMs: number): Buffer | ParseError {
    if (wire.length < 1) return new ParseError('tls-crypt-v2', 0, 'empty');
    const op = wire[0]! >> 3;
    let body = wire;
    if (op === OP_RESET_V3 || op === OP_WKC_V1) {
      if (wire.length < HEADER_SIZE + TLS_CRYPT_OVERHEAD + 2) return new ParseError('tls-crypt-v2', wire.length, 'too short');
      const wkcLen = wire.readUInt16BE(wire.length - 2);
      if (wkcLen > wire.length - HEADER_SIZE - TLS_CRYPT_OVERHEAD) return new ParseError('tls-crypt-v2', wire.length - 2, 'bad WKc length');
      body = wire.subarray(0, wire.length - wkcLen);
      if (!this.inner || !this.withReplay) {
        const k = unwrapClientKey(this.serverKey, wire.subarray(wire.length - wkcLen));
        if (!k) return new ParseError('tls-crypt-v2', wire.length - wkcLen, 'client key not authentic');
        this.inner = new TlsCryptWrap(Buffer.from(k.kc), this.withReplay); // its keys are views of the copy
        k.kc.fill(0);
      }
      if (op === OP_RESET_V3) this.earlyNegotiation = ((wire.readUInt32BE(HEADER_SIZE) & EARLY_NEG_MASK) >>> 0) === EARLY_NEG_START;
    } else if (!this.inner || !this.withReplay) {
      return new ParseError('tls-crypt-v2', 0, 'no client key');
    }
    const clear = this.inner.unwrap(body, nowMs);
    if (!(clear instanceof ParseError) && op === OP_WKC_V1) clear[0] = (OP_CONTROL_V1 << 3) | (clear[0]! & 7);
    return clear;
  }
}
