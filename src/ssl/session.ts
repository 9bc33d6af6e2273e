/**
 * One OpenVPN-compatible client session on the server: the control channel from the client's
 * hard reset to data keys, PUSH_REPLY, renegotiations and teardown (OpenVPN 2.6 `ssl.c`
 * `tls_process`, `key_method_2_*`, `push.c`).
 *
 * Pipeline for one incoming control packet (`receiveControl`):
 *   1. unwrap (tls-auth / tls-crypt seam; plain for now) and decode; drop malformed packets
 *   2. session-id checks: the sender's id (after the hard reset) and the id in the ACK block
 *   3. pick the key state by key id (a SOFT_RESET for the next key id creates one)
 *   4. reliability: free ACKed slots, accept/ACK the message id, deliver in order
 *   5. in-order TLS bytes go into that key state's TLS engine
 *   6. flush: new and retransmitted packets (with piggy-backed ACKs), else a bare P_ACK_V1
 * The TLS engine answers asynchronously (ciphertext, secure, plaintext); those callbacks
 * continue the state machine and emit actions through `onAction`.
 *
 * Time is data: the session never reads a clock or sets a timer. `now` comes with every call;
 * callbacks from the TLS engine use the latest `now` seen.
 *
 * Key states (one TLS session each): key id 0 from the hard reset, then 1..7 wrapping to 1 on
 * each renegotiation (SOFT_RESET from either side). After a renegotiation the previous key stays
 * as a lame duck for receiving until `tranWindowSec` passes or the next renegotiation replaces
 * it ('retireKey').
 */
import { randomBytes } from 'node:crypto';
import { ParseError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import {
  type ClientKeyMethod2,
  type ServerKeyMethod2,
  IV_PROTO_REQUEST_PUSH,
  buildServerKeyMethod2,
  chooseCipher,
  ivProto,
  makeServerKeyMethod2,
  parseClientKeyMethod2,
  parsePeerInfo,
  splitCommands,
} from './control/key-method.js';
import { EKM_LABEL, KEY_BLOCK_SIZE, type DirectionalKeys, prfKeyBlock, serverKeysFromBlock } from './control/key-derivation.js';
import { type CompressionFraming, type PushParams, buildPushReplyParts, compressionFraming, usesEkm } from './control/push.js';
import { ReliableChannel } from './control/reliable.js';
import { type TlsEngine, type TlsSecureInfo, createTlsEngine } from './control/tls-engine.js';
import { ACK_MAX_IDS, ACK_PIGGYBACK_MAX_IDS } from './wire/ack.js';
import { type ControlPacket, type ControlWrap, decodeControlPacket, encodeControlPacket, plainWrap } from './wire/control-packet.js';
import { Opcode, SESSION_ID_SIZE, nextKeyId, opcodeName } from './wire/opcodes.js';

export type { PushParams, CompressionFraming } from './control/push.js';

export interface SslServerIdentity {
  cert: string; // PEM
  key: string; // PEM
  clientCa: string; // PEM
  /** PEM CRL of clientCa ('' or absent: none); read when the session is created */
  clientCrl?: string;
}

export interface SslSessionOptions {
  identity: SslServerIdentity;
  /** server preference, e.g. ['AES-256-GCM','AES-128-GCM','CHACHA20-POLY1305'] */
  dataCiphers: string[];
  /** server-side renegotiation period (0 = off); clients renegotiate on their own */
  renegSec: number;
  /** --hand-window: the whole exchange must finish within this (60) */
  handshakeWindowSec: number;
  log: Logger;
  /** ms, the session's creation time */
  now: number;
  /** lame-duck lifetime of the previous key after a renegotiation (--tran-window, default 3600) */
  tranWindowSec?: number;
  /** only for the options string we send ('udp' default) */
  proto?: 'udp' | 'tcp';
  /** false = never use the TLS exporter for data keys (legacy PRF for everyone; for tests and old-client debugging). Default true. */
  allowEkm?: boolean;
  /** tls-auth / tls-crypt layer (default: none) */
  wrap?: ControlWrap;
  /**
   * The session starts after a stateless hard-reset exchange (src/ssl/server/stateless-reset.ts):
   * our session id is the one the reply carried, the client's reset (message 0) counts as received
   * and our reset (message 0) as sent; the client's reset is acknowledged with the first flush.
   */
  statelessStart?: { localSid: Buffer; remoteSid: Buffer };
  /**
   * false: no client certificate is requested (OpenVPN `verify-client-cert none`, for servers that
   * authenticate by username/password only). Default true: a certificate signed by clientCa is required.
   */
  clientCert?: boolean;
}

export type SslAction =
  /** one control-channel packet (opcode|key-id byte first): UDP as is, TCP adds the 2-byte length */
  | { kind: 'send'; packet: Buffer }
  /**
   * TLS and km2 done, client certificate verified (when one is required). The shell must answer
   * with `setPush(...)` or `reject(reason)`. `clientOptions` is the client's options string.
   * `user` is the certificate's CN, or the username without a certificate. `username`/`password`
   * are what the client's --auth-user-pass sent (null: none); the password must never be logged.
   */
  | {
      kind: 'authenticated';
      user: string;
      certCn: string;
      username?: string | null;
      password?: string | null;
      peerInfo: Map<string, string>;
      clientOptions: string;
      cipher: string;
    }
  /**
   * Data keys for key id `keyId` (server view: enc = server->client, dec = client->server;
   * implicit IVs are 8 bytes). Send with the newest key; decrypt by the packet's key id.
   */
  | {
      kind: 'keys';
      keyId: number;
      cipher: string;
      peerId: number;
      encKey: Buffer;
      encImplicitIv: Buffer;
      decKey: Buffer;
      decImplicitIv: Buffer;
      /** compression stub framing the data channel must use (see control/push.ts) */
      compress: CompressionFraming;
    }
  /** the lame-duck key expired or was replaced: stop accepting it */
  | { kind: 'retireKey'; keyId: number }
  /** client -> server control text other than PUSH_REQUEST (e.g. 'EXIT'; the session closes itself a few seconds after EXIT) */
  | { kind: 'control'; text: string }
  /** final: after this the session emits nothing more */
  | { kind: 'closed'; reason: string };

// ---- implementation choices -------------------------------------------------------------------
/** TLS bytes per P_CONTROL_V1 keep packets well under --tls-mtu 1250 */
export const TLS_CHUNK_MAX = 1100;
/** time to let AUTH_FAILED / final ACKs get through before closing */
export const CLOSE_LINGER_MS = 5_000;
/** stop lingering early once everything is acknowledged, but not before this */
export const CLOSE_MIN_LINGER_MS = 1_000;
/** the stock server ignores repeated PUSH_REQUESTs for 30 s after a reply */
export const PUSH_REQUEST_HOLDOFF_MS = 30_000;
export const DEFAULT_TRAN_WINDOW_SEC = 3600;
/** an unterminated control command longer than this ends the key state (the client's own buffer is ~2 KB) */
export const CONTROL_TEXT_MAX = 16 * 1024;

type KeyStateStatus = 'negotiating' | 'active' | 'lameDuck' | 'dead';

class KeyState {
  readonly rel = new ReliableChannel();
  tls: TlsEngine | null = null;
  status: KeyStateStatus = 'negotiating';
  secure: TlsSecureInfo | null = null;
  plain: Buffer = Buffer.alloc(0);
  clientKm2: ClientKeyMethod2 | null = null;
  serverKm2: ServerKeyMethod2 | null = null;
  km2Sent = false;
  keys: DirectionalKeys | null = null;
  /** set when the client certificate failed: the km2 exchange only carries AUTH_FAILED */
  refusal: string | null = null;
  /** handshake window end for this key state */
  deadlineMs: number;
  /** lame-duck end */
  expiresMs = Infinity;
  constructor(
    readonly keyId: number,
    nowMs: number,
    windowMs: number,
  ) {
    this.deadlineMs = nowMs + windowMs;
  }
}

type SessionState = 'initial' | 'handshake' | 'authenticating' | 'established' | 'closing' | 'closed';

export class SslSession {
  private readonly localSid: Buffer;
  private remoteSid: Buffer | null = null;
  private readonly keyStates = new Map<number, KeyState>();
  private active: KeyState | null = null;
  private st: SessionState = 'initial';
  private nowMs: number;
  private readonly log: Logger;
  private readonly wrap: ControlWrap;
  private readonly windowMs: number;
  private readonly debug: boolean;

  private cipher = '';
  private certCn = '';
  private peerInfo = new Map<string, string>();
  private clientOptions = '';
  private compress: CompressionFraming = 'none';
  private ekm = false;
  private push: PushParams | null = null;
  private pushRequested = false;
  private lastPushReplyMs = -Infinity;
  private renegAtMs = Infinity;
  private closeAtMs = Infinity;
  private closeStartMs = 0;
  private closeReason = '';
  /** packets dropped before reaching a key state (malformed, wrong session, wrong key id) */
  dropped = 0;

  constructor(
    private readonly opts: SslSessionOptions,
    readonly peerId: number,
    private readonly onAction: (a: SslAction) => void,
  ) {
    this.nowMs = opts.now;
    this.localSid = opts.statelessStart ? Buffer.from(opts.statelessStart.localSid) : randomBytes(SESSION_ID_SIZE);
    this.wrap = opts.wrap ?? plainWrap;
    this.windowMs = opts.handshakeWindowSec * 1000;
    this.log = opts.log.child({ sid: this.localSid.toString('hex'), peerId });
    this.debug = this.log.isLevelEnabled('debug');
    const ss = opts.statelessStart;
    if (ss) {
      this.remoteSid = Buffer.from(ss.remoteSid);
      this.st = 'handshake';
      const ks = this.newKeyState(0);
      ks.rel.skipSendId();
      ks.rel.onReceive(0, Opcode.P_CONTROL_HARD_RESET_CLIENT_V2, Buffer.alloc(0));
      ks.rel.takeDeliverable();
      this.log.info({ remoteSid: this.remoteSid.toString('hex') }, 'client verified its address: new session');
    }
  }

  /** The first packet from a new remote (unwrapped) must be a P_CONTROL_HARD_RESET_CLIENT_V2, or _V3 with tls-crypt-v2. */
  static isInitialPacket(pkt: Buffer): boolean {
    if (pkt.length < 14 || (pkt[0] !== Opcode.P_CONTROL_HARD_RESET_CLIENT_V2 << 3 && pkt[0] !== Opcode.P_CONTROL_HARD_RESET_CLIENT_V3 << 3)) return false;
    const p = decodeControlPacket(pkt);
    return !(p instanceof ParseError) && p.messageId === 0 && p.ack.ids.length === 0;
  }

  get state(): string {
    return this.st;
  }

  /** Our 8-byte session id (for logs and tests). */
  get sessionId(): Buffer {
    return this.localSid;
  }

  // ---------------------------------------------------------------- input

  receiveControl(pkt: Buffer, now: number): void {
    if (this.st === 'closed') return;
    this.nowMs = now;
    const clear = this.wrap.unwrap(pkt, now);
    if (clear instanceof ParseError) return this.drop(`unwrap: ${clear.message}`);
    const p = decodeControlPacket(clear);
    if (p instanceof ParseError) return this.drop(p.message);
    if (this.debug) this.log.debug({ kid: p.keyId, mid: p.messageId, acks: p.ack.ids, len: p.payload.length }, `in ${opcodeName(p.opcode)}`);
    if (p.ack.remoteSessionId !== null && !p.ack.remoteSessionId.equals(this.localSid)) return this.drop('ACK for another session id');

    if (this.remoteSid === null) {
      if (!isClientReset(p.opcode) || p.messageId !== 0) return this.drop(`expected a client hard reset, got ${opcodeName(p.opcode)}`);
      this.remoteSid = Buffer.from(p.sessionId);
      this.st = 'handshake';
      const ks = this.newKeyState(0);
      ks.rel.enqueue(Opcode.P_CONTROL_HARD_RESET_SERVER_V2, Buffer.alloc(0));
      this.log.info({ remoteSid: this.remoteSid.toString('hex') }, 'client hard reset: new session');
    } else if (!p.sessionId.equals(this.remoteSid)) {
      if (isClientReset(p.opcode)) {
        // the client restarted (new session id): this session is over; the shell starts a new one
        this.finish('peer started a new session');
        return;
      }
      return this.drop('wrong sender session id');
    }

    let ks = this.keyStates.get(p.keyId);
    if (!ks || (ks.status === 'lameDuck' && p.opcode === Opcode.P_CONTROL_SOFT_RESET_V1)) {
      if (p.opcode === Opcode.P_CONTROL_SOFT_RESET_V1 && p.messageId === 0 && this.canStartRenegotiation(p.keyId)) {
        this.log.info({ keyId: p.keyId }, 'client requested renegotiation');
        ks = this.startRenegotiation(p.keyId);
      } else {
        return this.drop(`key id ${p.keyId} out of sync (${opcodeName(p.opcode)})`);
      }
    }
    if (!this.opcodeFitsKeyState(p, ks)) return this.drop(`${opcodeName(p.opcode)} not valid for key id ${ks.keyId}`);

    if (p.ack.ids.length > 0) ks.rel.onAcks(p.ack.ids);
    if (p.messageId !== null && this.st !== 'closing') {
      ks.rel.onReceive(p.messageId, p.opcode, p.payload);
      for (const m of ks.rel.takeDeliverable()) {
        if (m.opcode === Opcode.P_CONTROL_V1) {
          if (ks.tls) ks.tls.feedCiphertext(m.payload);
        } else if (m.messageId !== 0) {
          this.log.debug({ keyId: ks.keyId, op: opcodeName(m.opcode), id: m.messageId }, 'reset opcode after message 0 ignored');
        }
        // message 0 (hard/soft reset): its payload is early-negotiation TLVs, not TLS; none used
      }
    } else if (p.messageId !== null) {
      // closing: still acknowledge so the client stops retransmitting
      ks.rel.onReceive(p.messageId, p.opcode, p.payload);
      ks.rel.takeDeliverable();
    }
    this.flush();
  }

  tick(now: number): void {
    if (this.st === 'closed') return;
    this.nowMs = now;
    if (this.st === 'closing') {
      const drained = [...this.keyStates.values()].every((k) => k.rel.allAcked());
      if (now >= this.closeAtMs || (drained && now >= this.closeStartMs + CLOSE_MIN_LINGER_MS)) {
        this.finish(this.closeReason);
        return;
      }
    }
    if ((this.st === 'handshake' || this.st === 'authenticating') && this.keyStates.get(0) && now >= this.keyStates.get(0)!.deadlineMs) {
      this.log.warn({ state: this.st }, 'TLS key negotiation did not finish within the handshake window');
      this.finish('handshake timeout');
      return;
    }
    for (const ks of [...this.keyStates.values()]) {
      if (ks.status === 'negotiating' && ks.keyId !== 0 && now >= ks.deadlineMs) {
        this.log.warn({ keyId: ks.keyId }, 'renegotiation did not finish in time; keeping the old key');
        this.dropKeyState(ks);
        this.renegAtMs = this.opts.renegSec > 0 ? now + this.opts.renegSec * 1000 : Infinity;
      } else if (ks.status === 'lameDuck' && now >= ks.expiresMs) {
        this.retire(ks);
      }
    }
    if (this.st === 'established' && now >= this.renegAtMs) {
      this.log.info({ renegSec: this.opts.renegSec }, 'reneg-sec reached');
      if (!this.renegotiate(now)) this.renegAtMs = Infinity; // one is under way; its completion re-arms the timer
    }
    this.flush();
  }

  nextDeadline(): number {
    if (this.st === 'closed') return Infinity;
    let d = this.closeAtMs;
    if (this.st === 'closing') d = Math.min(d, this.closeStartMs + CLOSE_MIN_LINGER_MS);
    if (this.st === 'established') d = Math.min(d, this.renegAtMs);
    for (const ks of this.keyStates.values()) {
      d = Math.min(d, ks.rel.nextDeadline());
      if (ks.status === 'negotiating') d = Math.min(d, ks.deadlineMs);
      if (ks.status === 'lameDuck') d = Math.min(d, ks.expiresMs);
    }
    return d;
  }

  // ---------------------------------------------------------------- shell decisions

  /** After 'authenticated': the client is accepted. Emits 'keys' for key id 0 and sends PUSH_REPLY when due. */
  setPush(push: PushParams): void {
    if (this.st !== 'authenticating') {
      this.log.warn({ state: this.st }, 'setPush ignored: session is not waiting for authorization');
      return;
    }
    this.push = push;
    const ks = this.keyStates.get(0)!;
    this.st = 'established';
    this.activate(ks);
    if ((ivProto(this.peerInfo) & IV_PROTO_REQUEST_PUSH) !== 0 || this.pushRequested) this.sendPushReply();
  }

  /** Refuses the client: sends AUTH_FAILED (after our km2), then closes after a short linger. */
  reject(reason: string): void {
    if (this.st === 'closing' || this.st === 'closed') return;
    this.log.debug({ reason }, 'client rejected'); // the caller logs the refusal with its context
    this.sendText(this.keyStates.get(0) ?? null, reason ? `AUTH_FAILED,${reason}` : 'AUTH_FAILED');
    this.beginClose(`rejected: ${reason}`);
  }

  /** Sends a server -> client control message (e.g. 'RESTART', 'HALT') on the active key. */
  sendControlText(text: string): void {
    if (this.st === 'closed') return;
    this.sendText(this.active ?? this.keyStates.get(0) ?? null, text);
  }

  /**
   * Starts a server-initiated renegotiation now (e.g. the data channel's packet-id nears its
   * limit). Returns false if the session is not established or a renegotiation is under way.
   */
  renegotiate(now: number): boolean {
    this.nowMs = now;
    if (this.st !== 'established' || !this.active) return false;
    for (const ks of this.keyStates.values()) if (ks.status === 'negotiating') return false;
    const keyId = nextKeyId(this.active.keyId);
    this.log.info({ keyId }, 'starting renegotiation');
    this.startRenegotiation(keyId);
    this.renegAtMs = Infinity;
    this.flush();
    return true;
  }

  /** Immediate close: no more packets, TLS engines destroyed, 'closed' emitted. */
  close(reason: string): void {
    this.finish(reason);
  }

  // ---------------------------------------------------------------- key states

  private newKeyState(keyId: number): KeyState {
    const ks = new KeyState(keyId, this.nowMs, this.windowMs);
    this.keyStates.set(keyId, ks);
    ks.tls = createTlsEngine(
      {
        role: 'server',
        cert: this.opts.identity.cert,
        key: this.opts.identity.key,
        // without a CA the engine requests no client certificate
        ca: this.opts.clientCert === false ? undefined : this.opts.identity.clientCa,
        crl: this.opts.clientCert === false || !this.opts.identity.clientCrl ? undefined : this.opts.identity.clientCrl,
      },
      {
        onCiphertext: (d) => this.guard(() => this.onTlsCiphertext(ks, d)),
        onSecure: (info) => this.guard(() => this.onTlsSecure(ks, info)),
        onPlaintext: (d) => this.guard(() => this.onTlsPlaintext(ks, d)),
        onError: (err) => this.guard(() => this.onTlsError(ks, err)),
      },
    );
    return ks;
  }

  private canStartRenegotiation(keyId: number): boolean {
    if (this.st !== 'established' || !this.active) return false;
    return keyId === nextKeyId(this.active.keyId);
  }

  private startRenegotiation(keyId: number): KeyState {
    const old = this.keyStates.get(keyId);
    if (old) this.retire(old); // a lame duck two generations back still holds this id
    const ks = this.newKeyState(keyId);
    ks.rel.enqueue(Opcode.P_CONTROL_SOFT_RESET_V1, Buffer.alloc(0));
    return ks;
  }

  private opcodeFitsKeyState(p: ControlPacket, ks: KeyState): boolean {
    switch (p.opcode) {
      case Opcode.P_CONTROL_V1:
      case Opcode.P_ACK_V1:
        return true;
      case Opcode.P_CONTROL_HARD_RESET_CLIENT_V2:
      case Opcode.P_CONTROL_HARD_RESET_CLIENT_V3:
        return ks.keyId === 0 && p.messageId === 0;
      case Opcode.P_CONTROL_SOFT_RESET_V1:
        return ks.keyId !== 0 && p.messageId === 0;
      default:
        return false; // server hard resets, tls-crypt-v2 opcodes
    }
  }

  private onTlsCiphertext(ks: KeyState, data: Buffer): void {
    if (ks.status === 'dead' || this.st === 'closed') return;
    for (let off = 0; off < data.length; off += TLS_CHUNK_MAX) ks.rel.enqueue(Opcode.P_CONTROL_V1, data.subarray(off, Math.min(off + TLS_CHUNK_MAX, data.length)));
    this.flush();
  }

  private onTlsSecure(ks: KeyState, info: TlsSecureInfo): void {
    if (ks.status === 'dead' || this.st === 'closed' || this.st === 'closing') return;
    const certRequired = this.opts.clientCert !== false;
    const refusal = !certRequired
      ? null
      : info.peerVerifyError !== null ? `client certificate rejected: ${info.peerVerifyError}` : info.peerCn === '' ? 'client certificate has no common name' : null;
    if (refusal !== null) {
      this.log.warn({ keyId: ks.keyId, cn: info.peerCn, verifyError: info.peerVerifyError }, 'client certificate rejected');
      if (ks.keyId === 0 && this.st === 'handshake') {
        // Node verifies after the handshake, so no TLS alert reaches the client. Like the stock
        // server for failed auth, answer its km2 with ours plus AUTH_FAILED so it stops (instead
        // of retrying until hand-window), and close after the linger time.
        ks.secure = info;
        ks.refusal = refusal;
        this.beginClose(refusal);
        this.tryKeyExchange(ks);
      } else {
        this.failKeyState(ks, refusal);
      }
      return;
    }
    if (ks.keyId !== 0 && info.peerCn !== this.certCn) {
      this.log.warn({ keyId: ks.keyId, cn: info.peerCn, was: this.certCn }, 'certificate CN changed on renegotiation');
      this.failKeyState(ks, 'client certificate changed on renegotiation');
      return;
    }
    ks.secure = info;
    this.log.info({ keyId: ks.keyId, tls: info.protocol, cipher: info.cipher, cn: info.peerCn }, 'control channel TLS up');
    this.tryKeyExchange(ks);
  }

  private onTlsPlaintext(ks: KeyState, data: Buffer): void {
    if (ks.status === 'dead' || this.st === 'closed') return;
    ks.plain = ks.plain.length === 0 ? Buffer.from(data) : Buffer.concat([ks.plain, data]);
    if (!ks.clientKm2) {
      const r = parseClientKeyMethod2(ks.plain);
      if (r === null) return;
      if (r instanceof ParseError) {
        this.log.warn({ keyId: ks.keyId, err: r.message }, 'bad key-method-2 message');
        this.failKeyState(ks, 'bad key-method-2 message');
        return;
      }
      ks.clientKm2 = r.km2;
      ks.plain = ks.plain.subarray(r.used);
      this.tryKeyExchange(ks);
    }
    if (!ks.clientKm2 || ks.plain.length === 0) return;
    const { commands, rest } = splitCommands(ks.plain);
    ks.plain = Buffer.from(rest);
    for (const c of commands) this.onCommand(c);
    if (ks.plain.length > CONTROL_TEXT_MAX) {
      this.log.warn({ keyId: ks.keyId, bytes: ks.plain.length }, 'unterminated control message too long');
      this.failKeyState(ks, 'control message too long');
    }
  }

  private onTlsError(ks: KeyState, err: Error): void {
    if (ks.status === 'dead' || this.st === 'closed') return;
    this.log.warn({ keyId: ks.keyId, err: err.message }, 'control channel TLS error');
    this.failKeyState(ks, `TLS error: ${err.message}`);
  }

  /** A key state failed: fatal for key id 0 during the handshake, otherwise the old key stays. */
  private failKeyState(ks: KeyState, reason: string): void {
    if (ks.keyId === 0 && ks.status === 'negotiating') {
      this.finish(reason);
      return;
    }
    if (ks.status === 'negotiating') {
      this.log.warn({ keyId: ks.keyId, reason }, 'renegotiation failed; keeping the old key');
      this.dropKeyState(ks);
      return;
    }
    if (ks === this.active) {
      this.finish(reason);
      return;
    }
    this.retire(ks);
  }

  /** TLS is up and the client's km2 is in: check it, answer with ours, derive keys. */
  private tryKeyExchange(ks: KeyState): void {
    if (!ks.secure || !ks.clientKm2 || ks.km2Sent) return;
    const km2 = ks.clientKm2;
    // the password is handed over at most once (key id 0) and not kept in the key state
    const password = km2.password;
    km2.password = null;
    ks.serverKm2 = makeServerKeyMethod2(this.serverOptionsString(km2.options));
    if (ks.refusal !== null) {
      this.sendKm2(ks);
      this.sendText(ks, 'AUTH_FAILED,client certificate rejected');
      return;
    }
    if (this.st === 'closing' || this.st === 'closed') return;
    if (ks.keyId === 0 && this.st === 'handshake') {
      this.peerInfo = parsePeerInfo(km2.peerInfoText);
      this.clientOptions = km2.options;
      this.certCn = ks.secure.peerCn;
      this.compress = compressionFraming(this.peerInfo, km2.options);
      // our km2 goes out even when we refuse, so the client reads the AUTH_FAILED after it (as the stock server does)
      this.sendKm2(ks);
      const cipher = chooseCipher(this.opts.dataCiphers, this.peerInfo);
      this.log.info(
        { cn: this.certCn, ver: this.peerInfo.get('IV_VER'), plat: this.peerInfo.get('IV_PLAT'), ciphers: this.peerInfo.get('IV_CIPHERS'), cipher },
        'key-method-2 received',
      );
      if (cipher === null) {
        this.log.warn({ offered: this.peerInfo.get('IV_CIPHERS') ?? '', ours: this.opts.dataCiphers.join(':') }, 'no common data cipher');
        this.sendText(ks, 'AUTH_FAILED,no common cipher');
        this.beginClose('no common cipher');
        return;
      }
      this.cipher = cipher;
      this.ekm = this.opts.allowEkm !== false && usesEkm(this.peerInfo);
      ks.keys = this.deriveKeys(ks);
      this.st = 'authenticating';
      const username = km2.username;
      const user = this.opts.clientCert === false ? (username ?? '') : this.certCn;
      this.emit({ kind: 'authenticated', user, certCn: this.certCn, username, password, peerInfo: this.peerInfo, clientOptions: this.clientOptions, cipher });
      return;
    }
    // renegotiation: same cipher and derivation method, no push (OpenVPN pushes only after the first key exchange)
    this.sendKm2(ks);
    ks.keys = this.deriveKeys(ks);
    this.activate(ks);
  }

  private sendKm2(ks: KeyState): void {
    ks.km2Sent = true;
    // km2 must be its own TLS record: OpenVPN's key_method_2_read takes it from a single TLS read
    ks.tls!.writePlaintext(buildServerKeyMethod2(ks.serverKm2!));
  }

  private deriveKeys(ks: KeyState): DirectionalKeys {
    let block: Buffer;
    if (this.ekm) {
      block = ks.tls!.exportKeyingMaterial(KEY_BLOCK_SIZE, EKM_LABEL);
    } else {
      const c = ks.clientKm2!;
      const s = ks.serverKm2!;
      block = prfKeyBlock({
        preMaster: c.preMaster,
        clientRandom1: c.random1,
        serverRandom1: s.random1,
        clientRandom2: c.random2,
        serverRandom2: s.random2,
        clientSessionId: this.remoteSid!,
        serverSessionId: this.localSid,
      });
    }
    const keys = serverKeysFromBlock(block, this.cipher);
    block.fill(0);
    c0(ks);
    return keys;
  }

  /** The key state's data keys go to the shell; the previous active key becomes a lame duck. */
  private activate(ks: KeyState): void {
    const prev = this.active;
    ks.status = 'active';
    this.active = ks;
    const k = ks.keys!;
    this.emit({
      kind: 'keys',
      keyId: ks.keyId,
      cipher: this.cipher,
      peerId: this.peerId,
      encKey: k.encKey,
      encImplicitIv: k.encImplicitIv,
      decKey: k.decKey,
      decImplicitIv: k.decImplicitIv,
      compress: this.compress,
    });
    this.log.info({ keyId: ks.keyId, cipher: this.cipher, kdf: this.ekm ? 'tls-ekm' : 'prf' }, 'data channel keys ready');
    if (prev && prev !== ks) {
      for (const other of this.keyStates.values()) if (other.status === 'lameDuck') this.retire(other);
      prev.status = 'lameDuck';
      prev.expiresMs = this.nowMs + (this.opts.tranWindowSec ?? DEFAULT_TRAN_WINDOW_SEC) * 1000;
    }
    this.renegAtMs = this.opts.renegSec > 0 ? this.nowMs + this.opts.renegSec * 1000 : Infinity;
  }

  private retire(ks: KeyState): void {
    const wasUsable = ks.status === 'lameDuck' || ks.status === 'active';
    this.dropKeyState(ks);
    if (wasUsable) this.emit({ kind: 'retireKey', keyId: ks.keyId });
  }

  private dropKeyState(ks: KeyState): void {
    ks.status = 'dead';
    ks.tls?.destroy();
    ks.tls = null;
    if (this.keyStates.get(ks.keyId) === ks) this.keyStates.delete(ks.keyId);
    if (this.active === ks) this.active = null;
  }

  // ---------------------------------------------------------------- text commands

  private onCommand(text: string): void {
    if (this.st === 'closing' || this.st === 'closed') return;
    if (text === 'PUSH_REQUEST') {
      if (this.st === 'authenticating') {
        this.pushRequested = true; // answered by setPush
      } else if (this.st === 'established') {
        if (this.nowMs - this.lastPushReplyMs < PUSH_REQUEST_HOLDOFF_MS) this.log.debug({}, 'repeated PUSH_REQUEST ignored');
        else this.sendPushReply();
      }
      return;
    }
    this.log.info({ text: text.length > 64 ? text.slice(0, 64) + '...' : text }, 'control message from client');
    this.emit({ kind: 'control', text });
    if (text === 'EXIT') this.beginClose('client exit');
  }

  private sendPushReply(): void {
    const ks = this.active;
    if (!ks || !this.push) return;
    const parts = buildPushReplyParts(this.push, this.peerInfo, this.cipher, this.peerId, this.clientOptions, this.ekm);
    for (const part of parts) this.sendText(ks, part);
    this.lastPushReplyMs = this.nowMs;
    this.pushRequested = false;
    this.log.debug({ parts: parts.length }, 'PUSH_REPLY sent');
  }

  private sendText(ks: KeyState | null, text: string): void {
    if (!ks || !ks.tls || !ks.km2Sent) {
      this.log.debug({ text: text.split(',')[0] }, 'control text not sent: no key state with a finished key exchange');
      return;
    }
    ks.tls.writePlaintext(Buffer.from(text + '\0', 'utf8'));
  }

  // ---------------------------------------------------------------- output

  /** Sends everything due on every key state: new/retransmitted packets, then bare ACKs. */
  private flush(): void {
    if (this.st === 'closed' || this.remoteSid === null) return;
    for (const ks of this.keyStates.values()) {
      for (const m of ks.rel.collectSends(this.nowMs)) {
        const ids = ks.rel.takeAcks(ACK_PIGGYBACK_MAX_IDS, true);
        this.sendPacket({
          opcode: m.opcode,
          keyId: ks.keyId,
          sessionId: this.localSid,
          ack: { ids, remoteSessionId: ids.length > 0 ? this.remoteSid : null },
          messageId: m.messageId,
          payload: m.payload,
        });
      }
      while (ks.rel.hasPendingAcks()) {
        const ids = ks.rel.takeAcks(ACK_MAX_IDS, true);
        this.sendPacket({ opcode: Opcode.P_ACK_V1, keyId: ks.keyId, sessionId: this.localSid, ack: { ids, remoteSessionId: this.remoteSid }, messageId: null, payload: Buffer.alloc(0) });
      }
    }
  }

  private sendPacket(p: ControlPacket): void {
    if (this.debug) this.log.debug({ kid: p.keyId, mid: p.messageId, acks: p.ack.ids, len: p.payload.length }, `out ${opcodeName(p.opcode)}`);
    this.emit({ kind: 'send', packet: this.wrap.wrap(encodeControlPacket(p), this.nowMs) });
  }

  private serverOptionsString(clientOptions: string): string {
    const tcp = this.opts.proto === 'tcp';
    const comp = /(^|,)comp-lzo(,|$)/.test(clientOptions) ? ',comp-lzo' : '';
    return `V4,dev-type tun,link-mtu ${tcp ? 1543 : 1541},tun-mtu 1500,proto ${tcp ? 'TCPv4_SERVER' : 'UDPv4'}${comp},auth SHA1,keysize 128,key-method 2,tls-server`;
  }

  // ---------------------------------------------------------------- teardown

  private beginClose(reason: string): void {
    if (this.st === 'closing' || this.st === 'closed') return;
    this.st = 'closing';
    this.closeReason = reason;
    this.closeStartMs = this.nowMs;
    this.closeAtMs = this.nowMs + CLOSE_LINGER_MS;
    this.log.info({ reason }, 'session closing');
  }

  private finish(reason: string): void {
    if (this.st === 'closed') return;
    this.st = 'closed';
    for (const ks of [...this.keyStates.values()]) this.dropKeyState(ks);
    this.active = null;
    this.log.info({ reason }, 'session closed');
    this.emit({ kind: 'closed', reason });
  }

  private drop(why: string): void {
    this.dropped++;
    this.log.debug({ why }, 'control packet dropped');
  }

  private emit(a: SslAction): void {
    if (this.st === 'closed' && a.kind !== 'closed') return;
    this.onAction(a);
  }

  /** Callbacks from the TLS engine run outside any shell call: keep a failure inside this session. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: err instanceof Error ? err.message : String(err) }, 'internal error in SSL session');
      this.finish('internal error');
    }
  }
}

function isClientReset(op: number): boolean {
  return op === Opcode.P_CONTROL_HARD_RESET_CLIENT_V2 || op === Opcode.P_CONTROL_HARD_RESET_CLIENT_V3;
}

/** Wipes the client's pre_master once keys are derived (it is only needed by the PRF). */
function c0(ks: KeyState): void {
  ks.clientKm2?.preMaster.fill(0);
}
