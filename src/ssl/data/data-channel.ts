/**
 * The OpenVPN data channel of one client session: AEAD per key-id, packet-ids, replay window, ping,
 * OCC exit and compression stubs. Pure: no sockets, no timers; time comes in as `nowMs`.
 * OpenVPN 2.6 crypto.c (AEAD format), packet_id.c (replay), comp*.c (stubs), ping.c / occ.c, ssl.c (key-ids).
 *
 * Inbound (`decrypt`):
 *  1. read the clear header (V2: op|kid, peer-id, packet-id; V1: op|kid, packet-id); short → drop
 *  2. pick the key by key-id (current or lame duck); none → drop
 *  3. replay check (no state change)
 *  4. nonce = packet-id || implicit IV; AAD = header (V2) or packet-id (V1); open in place; bad tag → drop
 *  5. record the packet-id in the replay window
 *  6. undo the compression stub framing
 *  7. classify: ping magic → DATA_PING; OCC → DATA_OCC_EXIT / dropped; else DATA_IP (this.outOff/outLen)
 *
 * Outbound (`encrypt`):
 *  1. pick the send key (the newest installed); none → drop
 *  2. next packet-id (never wraps: refuse at 0xFFFFFFFF; `needsRenegotiation` from 0xFF000000)
 *  3. write the V2 header, then the framed plaintext after the tag room, then seal in place
 *
 * Drops are return codes and counters (stats.drops[code]), never exceptions.
 */
import { VpnError } from '../../common/errors.js';
import {
  DATA_V2_AEAD_OVERHEAD,
  DATA_V2_HEADER_SIZE,
  DECODE_NOT_DATA,
  DECODE_OK,
  P_DATA_V2,
  newDataPacketHeader,
  readDataHeader,
  writeDataV2Header,
} from '../wire/data-packet.js';
import { createDataAead, type DataAead } from './data-aead.js';
import { ReplayWindow, REPLAY_OK } from './replay-window.js';
import { COMP_MAX_OVERHEAD, COMP_NONE, Unframer, framingSize, writeFramed, type CompressionMode } from './compression.js';
import { isPing, occOpcode, OCC_EXIT, PING_MAGIC, MAGIC_SIZE } from './special.js';

// --- spec constants ---
export const IMPLICIT_IV_SIZE = 8;
export const NONCE_SIZE = 12;
export const KEY_ID_COUNT = 8;
/** OpenVPN renegotiates when the send packet-id gets close to wrapping (ssl.c, packet_id_close_to_wrapping) */
export const PACKET_ID_RENEG_THRESHOLD = 0xff000000;
export const PACKET_ID_MAX = 0xffffffff;

// --- implementation choices ---
/** the most a data packet grows on the wire: header + tag + stub framing */
export const DATA_MAX_OVERHEAD = DATA_V2_AEAD_OVERHEAD + COMP_MAX_OVERHEAD;

// decrypt results (>= 0 deliver/handled, the DROP_* codes index stats.drops)
export const DATA_IP = 0;
export const DATA_PING = 1;
export const DATA_OCC_EXIT = 2;
export const DROP_SHORT = 3;
export const DROP_NOT_DATA = 4;
export const DROP_NO_KEY = 5;
export const DROP_REPLAY = 6;
export const DROP_BAD_TAG = 7;
export const DROP_COMPRESSED = 8;
export const DROP_OCC_OTHER = 9;
export const DROP_PACKET_ID_EXHAUSTED = 10;
export const DROP_TOO_BIG = 11;
export const DROP_CODE_COUNT = 12;
export const DROP_NAMES: readonly string[] = [
  'ip', 'ping', 'occExit', 'short', 'notData', 'noKey', 'replay', 'badTag', 'compressed', 'occOther',
  'packetIdExhausted', 'tooBig',
];

/** The key material of one key state, as the control channel hands it over (the 'keys' action). */
export interface DataKeyMaterial {
  keyId: number;
  cipher: string;
  encKey: Buffer; // server → client cipher key (slot bytes 128..; leading bytes used)
  encImplicitIv: Buffer; // server → client implicit IV (8 bytes)
  decKey: Buffer; // client → server
  decImplicitIv: Buffer;
  /** the last send packet-id already used (default 0); for tests of the wrap limit */
  initialSendPacketId?: number;
}

class DataKey {
  sendPacketId = 0;
  readonly replay: ReplayWindow;
  constructor(
    readonly keyId: number,
    readonly cipher: string,
    readonly enc: DataAead,
    readonly dec: DataAead,
    readonly encIv: Buffer,
    readonly decIv: Buffer,
    readonly installedMs: number,
    replayBacktrackMs: number,
  ) {
    this.replay = new ReplayWindow(replayBacktrackMs);
  }
}

export class DataChannelStats {
  rxPackets = 0; // authenticated packets in (IP, ping, OCC)
  rxBytes = 0; // plaintext IP bytes delivered (before routing)
  txPackets = 0;
  txBytes = 0; // plaintext IP bytes sent
  pingsIn = 0;
  pingsOut = 0;
  readonly drops = new Uint32Array(DROP_CODE_COUNT);

  dropCount(): number {
    let n = 0;
    for (let i = DROP_SHORT; i < DROP_CODE_COUNT; i++) n += this.drops[i]!;
    return n;
  }

  /** drop counters by name (only the non-zero ones), for status and logs */
  dropsByName(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = DROP_SHORT; i < DROP_CODE_COUNT; i++) if (this.drops[i]) out[DROP_NAMES[i]!] = this.drops[i]!;
    return out;
  }
}

export interface DataChannelOptions {
  peerId: number;
  /** compression stub mode the client was told to use (learned from the uplink if left at COMP_NONE) */
  compression?: CompressionMode;
  /** replay time backtrack in ms (OpenVPN default 15 s; 0 = off) */
  replayBacktrackMs?: number;
}

export class DataChannel {
  readonly stats = new DataChannelStats();
  readonly peerId: number;
  private readonly keys: (DataKey | null)[] = new Array<DataKey | null>(KEY_ID_COUNT).fill(null);
  private sendKey: DataKey | null = null;
  private readonly unframer = new Unframer();
  private readonly encNonce = Buffer.alloc(NONCE_SIZE);
  private readonly decNonce = Buffer.alloc(NONCE_SIZE);
  private readonly hdr = newDataPacketHeader();
  private readonly replayBacktrackMs: number;
  /** time of the last packet sent / authenticated packet received (ms), for ping and ping-restart */
  lastTxMs: number;
  lastRxMs: number;
  /** output of `decrypt` for DATA_IP: the IP packet is at buf[outOff, outOff+outLen) */
  outOff = 0;
  outLen = 0;
  /** key-id of the last authenticated packet */
  outKeyId = 0;

  constructor(opts: DataChannelOptions, nowMs: number) {
    this.peerId = opts.peerId;
    this.unframer.mode = opts.compression ?? COMP_NONE;
    this.replayBacktrackMs = opts.replayBacktrackMs ?? 15_000;
    this.lastTxMs = nowMs;
    this.lastRxMs = nowMs;
  }

  get compression(): CompressionMode {
    return this.unframer.mode;
  }

  set compression(mode: CompressionMode) {
    this.unframer.mode = mode;
  }

  /**
   * Installs the keys of a key state; it becomes the send key at once (OpenVPN switches to the new
   * key_id as soon as its keys exist). The previous key stays for receiving until `retireKey`.
   */
  installKey(k: DataKeyMaterial, nowMs: number): void {
    if (k.keyId < 0 || k.keyId >= KEY_ID_COUNT) throw new VpnError('ERR_INVALID_ARG', `key-id ${k.keyId} out of range`);
    if (k.encImplicitIv.length < IMPLICIT_IV_SIZE || k.decImplicitIv.length < IMPLICIT_IV_SIZE) {
      throw new VpnError('ERR_CRYPTO_KEY', 'implicit IV must be 8 bytes');
    }
    const key = new DataKey(
      k.keyId,
      k.cipher.toUpperCase(),
      createDataAead(k.cipher, k.encKey),
      createDataAead(k.cipher, k.decKey),
      Buffer.from(k.encImplicitIv.subarray(0, IMPLICIT_IV_SIZE)),
      Buffer.from(k.decImplicitIv.subarray(0, IMPLICIT_IV_SIZE)),
      nowMs,
      this.replayBacktrackMs,
    );
    key.sendPacketId = k.initialSendPacketId ?? 0;
    this.keys[k.keyId] = key;
    this.sendKey = key;
  }

  /** Forgets a key state (the lame-duck period ended). Retiring the send key stops sending. */
  retireKey(keyId: number): void {
    const k = this.keys[keyId & 7];
    if (!k) return;
    this.keys[keyId & 7] = null;
    if (this.sendKey === k) this.sendKey = null;
  }

  hasKeys(): boolean {
    return this.sendKey !== null;
  }

  get sendKeyId(): number {
    return this.sendKey ? this.sendKey.keyId : -1;
  }

  get cipher(): string {
    return this.sendKey ? this.sendKey.cipher : '';
  }

  /** True once the send packet-id is close to wrapping: the session should renegotiate. */
  get needsRenegotiation(): boolean {
    return this.sendKey !== null && this.sendKey.sendPacketId >= PACKET_ID_RENEG_THRESHOLD;
  }

  /**
   * Authenticates and decrypts one data packet in place (buf[off, off+len)). Returns DATA_IP (the IP
   * packet is then at this.outOff/outLen, inside `buf`), DATA_PING, DATA_OCC_EXIT, or a DROP_* code.
   */
  decrypt(buf: Buffer, off: number, len: number, nowMs: number): number {
    const h = this.hdr;
    const r = readDataHeader(buf, off, len, h);
    if (r !== DECODE_OK) return this.drop(r === DECODE_NOT_DATA ? DROP_NOT_DATA : DROP_SHORT);
    const key = this.keys[h.keyId];
    if (!key) return this.drop(DROP_NO_KEY);
    if (key.replay.check(h.packetId, nowMs) !== REPLAY_OK) return this.drop(DROP_REPLAY);
    const nonce = this.decNonce;
    nonce.writeUInt32BE(h.packetId, 0);
    key.decIv.copy(nonce, 4);
    // V2: AAD = op|kid, peer-id, packet-id (8 bytes); V1: AAD = packet-id only (OpenVPN crypto.c)
    const aadOff = h.opcode === P_DATA_V2 ? off : off + 1;
    const aadLen = h.opcode === P_DATA_V2 ? DATA_V2_HEADER_SIZE : 4;
    if (!key.dec.open(nonce, buf, aadOff, aadLen, h.dataOff, h.dataLen, h.tagOff)) return this.drop(DROP_BAD_TAG);
    key.replay.record(h.packetId, nowMs);
    this.lastRxMs = nowMs;
    this.outKeyId = h.keyId;
    this.stats.rxPackets++;

    const u = this.unframer;
    if (u.unframe(buf, h.dataOff, h.dataLen) !== 0) return this.drop(DROP_COMPRESSED);
    if (isPing(buf, u.off, u.len)) {
      this.stats.pingsIn++;
      return DATA_PING;
    }
    const occ = occOpcode(buf, u.off, u.len);
    if (occ >= 0) return occ === OCC_EXIT ? DATA_OCC_EXIT : this.drop(DROP_OCC_OTHER);
    this.outOff = u.off;
    this.outLen = u.len;
    this.stats.rxBytes += u.len;
    return DATA_IP;
  }

  /**
   * Encrypts src[srcOff, srcOff+len) (an IP packet or a special payload) into out[outOff..] as a
   * P_DATA_V2 packet. `out` needs len + DATA_MAX_OVERHEAD bytes of room. Returns the wire length, or
   * 0 when the packet was dropped (no key, packet-id exhausted, no room; counted).
   */
  encrypt(src: Buffer, srcOff: number, len: number, out: Buffer, outOff: number, nowMs: number): number {
    const key = this.sendKey;
    if (!key) return this.drop(DROP_NO_KEY), 0;
    if (key.sendPacketId >= PACKET_ID_MAX) return this.drop(DROP_PACKET_ID_EXHAUSTED), 0;
    if (len === 0 || out.length - outOff < len + DATA_V2_AEAD_OVERHEAD + framingSize(this.unframer.mode, src[srcOff]!)) {
      return this.drop(DROP_TOO_BIG), 0;
    }
    const pid = ++key.sendPacketId;
    writeDataV2Header(out, outOff, key.keyId, this.peerId, pid);
    const dataOff = outOff + DATA_V2_AEAD_OVERHEAD;
    const dataLen = writeFramed(this.unframer.mode, src, srcOff, len, out, dataOff);
    const nonce = this.encNonce;
    nonce.writeUInt32BE(pid, 0);
    key.encIv.copy(nonce, 4);
    key.enc.seal(nonce, out, outOff, DATA_V2_HEADER_SIZE, dataOff, dataLen, outOff + DATA_V2_HEADER_SIZE);
    this.lastTxMs = nowMs;
    this.stats.txPackets++;
    this.stats.txBytes += len;
    return DATA_V2_AEAD_OVERHEAD + dataLen;
  }

  /** True when nothing was sent for `pingSec` seconds: the shell should send `encryptPing`. */
  pingDue(nowMs: number, pingSec: number): boolean {
    return pingSec > 0 && this.sendKey !== null && nowMs - this.lastTxMs >= pingSec * 1000;
  }

  /** Encrypts the keepalive ping into out[outOff..]; returns the wire length (0 if dropped). */
  encryptPing(out: Buffer, outOff: number, nowMs: number): number {
    const n = this.encrypt(PING_MAGIC, 0, MAGIC_SIZE, out, outOff, nowMs);
    if (n > 0) {
      this.stats.pingsOut++;
      this.stats.txPackets--; // pings are not traffic
      this.stats.txBytes -= MAGIC_SIZE;
    }
    return n;
  }

  private drop(code: number): number {
    this.stats.drops[code]!++;
    return code;
  }
}

