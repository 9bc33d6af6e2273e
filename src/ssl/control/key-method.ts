/**
 * Key-method-2 messages, the first TLS plaintext each side sends (OpenVPN 2.6 `ssl.c`,
 * `key_method_2_write` / `key_method_2_read`).
 *
 * client -> server                                server -> client
 *   u32   0                                         u32   0
 *   u8    key method (low 4 bits = 2)               u8    2
 *   48 B  pre_master                                (no pre_master)
 *   32 B  random1                                   32 B  random1
 *   32 B  random2                                   32 B  random2
 *   u16+n options string (len incl. NUL)            u16+n options string
 *   u16+n username   (u16 0 = absent)               u16 0
 *   u16+n password   (u16 0 = absent)               u16 0
 *   u16+n peer-info  "VAR=value\n"...  NUL          u16 0
 *
 * Everything after the client's km2 in the plaintext stream is NUL-terminated text commands.
 * TLS `data` events are not record-aligned, so the parser reports "need more bytes" until the
 * whole structure is present.
 */
import { randomBytes } from 'node:crypto';
import { ParseError } from '../../common/errors.js';

export const KEY_METHOD_2 = 2;
export const KEY_METHOD_MASK = 0x0f;
export const PRE_MASTER_SIZE = 48;
export const RANDOM_SIZE = 32;
/** OpenVPN's limit for the options string (TLS_OPTIONS_LEN) */
export const OPTIONS_STRING_MAX = 512;
/** the largest username/password a 2.6 (PKCS#11) build sends */
export const CREDENTIAL_MAX = 4096;
export const PEER_INFO_MAX = 10_000;

export interface ClientKeyMethod2 {
  keyMethod: number;
  preMaster: Buffer; // 48
  random1: Buffer; // 32
  random2: Buffer; // 32
  options: string;
  username: string | null;
  /** never logged; the session hands it to the authenticator once and drops it (src/ssl/session.ts) */
  password: string | null;
  peerInfoText: string;
}

export interface ServerKeyMethod2 {
  random1: Buffer;
  random2: Buffer;
  options: string;
}

/** Random material for our own km2 (kept for the PRF key derivation). */
export function makeServerKeyMethod2(options: string): ServerKeyMethod2 {
  return { random1: randomBytes(RANDOM_SIZE), random2: randomBytes(RANDOM_SIZE), options };
}

/**
 * Parses a client km2 from the start of `buf`. Returns null if more bytes are needed, a
 * ParseError if malformed, else the message and the number of bytes it used.
 */
export function parseClientKeyMethod2(buf: Buffer): { km2: ClientKeyMethod2; used: number } | null | ParseError {
  const fixed = 4 + 1 + PRE_MASTER_SIZE + 2 * RANDOM_SIZE;
  if (buf.length < 5) return null;
  if (buf.readUInt32BE(0) !== 0) return new ParseError('km2', 0, 'leading u32 is not zero');
  const keyMethod = buf[4]! & KEY_METHOD_MASK;
  if (keyMethod !== KEY_METHOD_2) return new ParseError('km2', 4, `key method ${keyMethod} (only 2 is supported)`);
  if (buf.length < fixed) return null;
  let off = 5;
  const preMaster = Buffer.from(buf.subarray(off, off + PRE_MASTER_SIZE));
  off += PRE_MASTER_SIZE;
  const random1 = Buffer.from(buf.subarray(off, off + RANDOM_SIZE));
  off += RANDOM_SIZE;
  const random2 = Buffer.from(buf.subarray(off, off + RANDOM_SIZE));
  off += RANDOM_SIZE;
  const fields: (string | null)[] = [];
  const limits = [OPTIONS_STRING_MAX, CREDENTIAL_MAX, CREDENTIAL_MAX, PEER_INFO_MAX];
  const names = ['options', 'username', 'password', 'peer-info'];
  for (let i = 0; i < 4; i++) {
    // a 2.x client always writes all four; a very old client may stop after the options string
    if (off + 2 > buf.length) return null;
    const len = buf.readUInt16BE(off);
    if (len > limits[i]!) return new ParseError('km2', off, `${names[i]} length ${len} > ${limits[i]}`);
    off += 2;
    if (len === 0) {
      fields.push(null);
      continue;
    }
    if (off + len > buf.length) return null;
    const raw = buf.subarray(off, off + len);
    if (raw[len - 1] !== 0) return new ParseError('km2', off + len - 1, `${names[i]} is not NUL-terminated`);
    fields.push(raw.toString('utf8', 0, len - 1));
    off += len;
  }
  if (fields[0] === null) return new ParseError('km2', fixed, 'missing options string');
  return {
    km2: {
      keyMethod,
      preMaster,
      random1,
      random2,
      options: fields[0]!,
      username: fields[1] ?? null,
      password: fields[2] ?? null,
      peerInfoText: fields[3] ?? '',
    },
    used: off,
  };
}

function strField(s: string | null): Buffer {
  if (s === null) return Buffer.from([0, 0]);
  const body = Buffer.from(s + '\0', 'utf8');
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

/** Our (server) km2: no pre_master, empty username/password/peer-info. */
export function buildServerKeyMethod2(m: ServerKeyMethod2): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0, 0, KEY_METHOD_2]), m.random1, m.random2, strField(m.options), strField(null), strField(null), strField(null)]);
}

/** A client km2 (used by tests, which play the client). */
export function buildClientKeyMethod2(m: ClientKeyMethod2): Buffer {
  return Buffer.concat([
    Buffer.from([0, 0, 0, 0, m.keyMethod]),
    m.preMaster,
    m.random1,
    m.random2,
    strField(m.options),
    strField(m.username),
    strField(m.password),
    strField(m.peerInfoText === '' ? null : m.peerInfoText),
  ]);
}

/** Parses a server km2 (tests play the client). Same shape as the client's without pre_master. */
export function parseServerKeyMethod2(buf: Buffer): { km2: ServerKeyMethod2; used: number } | null | ParseError {
  // reuse the client parser by splicing in a dummy pre_master
  if (buf.length < 5) return null;
  const withPm = Buffer.concat([buf.subarray(0, 5), Buffer.alloc(PRE_MASTER_SIZE), buf.subarray(5)]);
  const r = parseClientKeyMethod2(withPm);
  if (r === null || r instanceof ParseError) return r;
  return { km2: { random1: r.km2.random1, random2: r.km2.random2, options: r.km2.options }, used: r.used - PRE_MASTER_SIZE };
}

/** `VAR=value` lines to a map (later duplicates win; lines without '=' are ignored). */
export function parsePeerInfo(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    m.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return m;
}

// ---- IV_PROTO bits (ssl.h) ----
export const IV_PROTO_DATA_V2 = 1 << 1;
export const IV_PROTO_REQUEST_PUSH = 1 << 2;
export const IV_PROTO_TLS_KEY_EXPORT = 1 << 3;
export const IV_PROTO_AUTH_PENDING_KW = 1 << 4;
export const IV_PROTO_NCP_P2P = 1 << 5;
export const IV_PROTO_DNS_OPTION = 1 << 6;
export const IV_PROTO_CC_EXIT_NOTIFY = 1 << 7;
export const IV_PROTO_AUTH_FAIL_TEMP = 1 << 8;
export const IV_PROTO_DYN_TLS_CRYPT = 1 << 9;

export function ivProto(peerInfo: Map<string, string>): number {
  const v = Number.parseInt(peerInfo.get('IV_PROTO') ?? '0', 10);
  return Number.isFinite(v) && v >= 0 ? v : 0;
}

/**
 * Cipher negotiation (ssl_ncp.c): the first cipher of the server's list that the client offers
 * in IV_CIPHERS (case-insensitive). Old clients without IV_CIPHERS but with IV_NCP>=2 support
 * AES-256-GCM and AES-128-GCM. Null = no common cipher.
 */
export function chooseCipher(serverCiphers: readonly string[], peerInfo: Map<string, string>): string | null {
  let offered: string[];
  const ivCiphers = peerInfo.get('IV_CIPHERS');
  if (ivCiphers !== undefined) offered = ivCiphers.split(':').map((s) => s.trim().toUpperCase());
  else if (Number.parseInt(peerInfo.get('IV_NCP') ?? '0', 10) >= 2) offered = ['AES-256-GCM', 'AES-128-GCM'];
  else offered = [];
  for (const c of serverCiphers) if (offered.includes(c.toUpperCase())) return c.toUpperCase();
  return null;
}

/** Splits NUL-terminated control commands; returns the complete ones and the unterminated rest. */
export function splitCommands(buf: Buffer): { commands: string[]; rest: Buffer } {
  const commands: string[] = [];
  let start = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] !== 0) continue;
    const text = buf.toString('utf8', start, i).replace(/[\r\n]+$/, '');
    if (text.length > 0) commands.push(text);
    start = i + 1;
  }
  return { commands, rest: buf.subarray(start) };
}
