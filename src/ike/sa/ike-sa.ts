import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../../common/log.js';
import { formatIkeSaId } from '../../common/spi.js';
import type { Prf } from '../../crypto/prf.js';
import type { KeyExchange } from '../../crypto/dh.js';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, Payload, Proposal } from '../wire/types.js';
import { decodeMessage, describeMessage, encodeMessage, type DecodeResult, type SkCrypto } from '../wire/message.js';
import { FragmentReassembler, decodeFragment, encodeFragments } from '../wire/fragments.js';
import type { IkeKeys } from './keymat.js';
import type { PeerConfig, RetransmitConfig } from '../config/peer-config.js';
import type { Identity } from '../config/identity.js';
import { ChildSa, spiHex, spiToBuffer } from './child-sa.js';
import { type Endpoint, type IkeAction, endpointToString } from './types.js';
import type { IkeTask } from '../tasks/task.js';
import { firstErrorNotify } from '../tasks/task.js';
import { noAnswer, type IkeFailure } from '../failure.js';

/** Services the manager gives every IKE SA (randomness and SPI allocation are injectable for tests). */
export interface IkeContext {
  readonly log: Logger;
  readonly retransmit: RetransmitConfig;
  /** seconds a responder SA may stay half-open (no IKE_AUTH) */
  readonly halfOpenTimeoutSec: number;
  random(n: number): Buffer;
  allocChildSpi(): number;
  releaseChildSpi(spi: number): void;
  /** true when we hold another established IKE SA with this peer config (INITIAL_CONTACT is sent only when not) */
  hasOtherIkeSa(cfg: PeerConfig, except: IkeSa): boolean;
  /** Should be called after a CHILD_SA of `sa` was rekeyed, whichever side started it (status counters). */
  onChildRekeyed?(sa: IkeSa): void;
  /** Should be called when a liveness check (DPD) we sent went unanswered and `sa` is cleared (status counters). */
  onDpdFailed?(sa: IkeSa): void;
}

/**
 * Largest IKE message we send unfragmented once fragmentation is negotiated (RFC 7383 §2.5.1):
 * with IPv6 (40), UDP (8) and the non-ESP marker (4) it stays within 1280 bytes, the IPv6 minimum
 * MTU, which strongSwan's default fragment_size (1280) also assumes.
 */
export const IKE_FRAGMENT_MAX_BYTES = 1200;

/** REKEYED: replaced by a new IKE SA (children moved); waits for the peer's DELETE. */
/** How long a rekeyed child's inbound SA outlives its DELETE (strongSwan's delete_rekeyed_delay). */
export const REKEYED_INBOUND_GRACE_MS = 5000;

/** A replaced IKE SA whose DELETE never comes is dropped locally after this long (it has no children). */
export const REKEYED_IKE_SA_TIMEOUT_MS = 30_000;

/** The peer's half of a simultaneous IKE SA rekey: the SA its exchange created and that exchange's Ni and Nr. */
export interface IkeRekeyCollision {
  readonly next: IkeSa;
  readonly nonceI: Buffer;
  readonly nonceR: Buffer;
}

export type IkeSaState = 'CREATED' | 'INIT_SENT' | 'INIT_RECEIVED' | 'AUTH_SENT' | 'ESTABLISHED' | 'REKEYED' | 'DELETING' | 'DEAD';

interface Outstanding {
  mid: number;
  exchange: ExchangeType;
  datagram: Buffer;
  /** what goes on the wire: the datagram, or its RFC 7383 fragments */
  wire: Buffer[];
  tasks: IkeTask[];
  sentAtMs: number;
  retries: number;
  nextAtMs: number;
  /** a liveness check counted as unanswered but kept going (DPD action none) */
  deadReported: boolean;
}

interface QueuedExchange {
  exchange: ExchangeType;
  tasks: IkeTask[];
}

/**
 * One IKE SA: SPIs, keys, message IDs (window 1), the retransmission schedule as data, the
 * response cache, the task queue and its CHILD_SAs. Pure: no sockets, no timers, no clock.
 * Each method takes `now` (ms) and returns the actions the shell must carry out.
 */
export class IkeSa {
  readonly ctx: IkeContext;
  readonly initiator: boolean; // we are the ORIGINAL initiator
  readonly spiI: Buffer;
  spiR: Buffer;
  state: IkeSaState = 'CREATED';
  /** chosen config; for a responder, the candidates until IKE_AUTH picks one */
  cfg: PeerConfig | null;
  candidates: PeerConfig[];
  local: Endpoint;
  remote: Endpoint;
  log: Logger;

  // negotiation results (set by the tasks)
  proposal: Proposal | null = null;
  prf: Prf | null = null;
  keys: IkeKeys | null = null;
  sk: SkCrypto | null = null;
  ke: KeyExchange | null = null;
  nonceI: Buffer = Buffer.alloc(0);
  nonceR: Buffer = Buffer.alloc(0);
  /** RealMessage1 / RealMessage2 for AUTH (RFC 7296 §2.15) */
  initRequest: Buffer = Buffer.alloc(0);
  initResponse: Buffer = Buffer.alloc(0);
  peerId: Identity | null = null;
  /** hashes the peer announced in N(SIGNATURE_HASH_ALGORITHMS) (RFC 7427 §4); null: none sent */
  peerSignatureHashes: number[] | null = null;
  /** we sent N(SIGNATURE_HASH_ALGORITHMS) in IKE_SA_INIT */
  offeredSignatureHashes = false;
  /** both sides sent N(IKEV2_FRAGMENTATION_SUPPORTED) (RFC 7383 §2.3): large messages go as SKF fragments */
  fragmentation = false;
  /** collects the peer's SKF fragments of one message at a time */
  private readonly reassembler = new FragmentReassembler();
  /**
   * RFC 7296 §2.23 NAT detection (src/ike/tasks/ike-natd.ts). natDetected: ESP goes in UDP 4500
   * (a NAT was found on the path, or we faked one: natFaked); peerBehindNat / weBehindNat: what the
   * peer's hashes said (a peer that forces encapsulation looks as if it were behind a NAT).
   */
  natDetected = false;
  natFaked = false;
  peerBehindNat = false;
  weBehindNat = false;
  /** times the peer's endpoint moved once established (followPeer) */
  peerMoves = 0;
  /** NAT-keepalive bookkeeping (IkeManager.natKeepalives): next due time, ESP out count then, sent total */
  natKeepaliveAtMs = 0;
  espOutSeen = -1;
  natKeepalivesSent = 0;
  /** the raw bytes of the message being processed (tasks need them for AUTH) */
  currentRaw: Buffer = Buffer.alloc(0);
  /** set by a responder task: destroy the SA once the response is out (e.g. peer deleted the IKE SA) */
  pendingDestroy = '';
  /** the peer asked us to drop other IKE SAs with it (INITIAL_CONTACT) */
  initialContact = false;
  establishedAtMs = 0;
  rekeyedAtMs = 0;
  lastInboundMs = 0;
  /** DPD bookkeeping: last time anything (IKE or ESP) came in, and the ESP inbound packet count then */
  activityMs = 0;
  espInSeen = -1;
  failReason = '';
  /** the SA went down because the peer stopped answering (retransmits or a liveness check ran out) */
  peerUnresponsive = false;
  // lifetime bookkeeping for IKE rekeys we start (src/ike/rekey-scheduler.ts); 0 = not scheduled yet
  rekeyAtMs = 0;
  expireAtMs = 0;
  rekeyRetryAtMs = 0;
  /** our IKE rekey is queued or in flight (a peer's IKE rekey gets TEMPORARY_FAILURE until ours is on the wire, see rekeyInFlight) */
  rekeying = false;
  /** our CREATE_CHILD_SA rekeying this IKE SA is on the wire (a peer's IKE rekey now is a collision, RFC 7296 §2.8.1) */
  rekeyInFlight = false;
  /**
   * Set while our IKE rekey is in flight and the peer rekeyed this IKE SA too (RFC 7296 §2.8.1): the
   * SA the peer's exchange created and that exchange's nonces; our answer decides (ike-rekey.ts).
   */
  ikeCollision: IkeRekeyCollision | null = null;
  /** hard lifetime passed: our D(IKE) is queued */
  expiring = false;

  readonly children: ChildSa[] = [];

  // messaging
  private nextRequestMid = 0;
  private expectedRequestMid = 0;
  private outstanding: Outstanding | null = null;
  private readonly queue: QueuedExchange[] = [];
  private lastResponse: { mid: number; requestHash: Buffer; wire: Buffer[]; to: Endpoint; from: Endpoint } | null = null;
  private readonly actions: IkeAction[] = [];
  private createdAtMs: number;

  constructor(ctx: IkeContext, opts: {
    initiator: boolean; spiI: Buffer; spiR?: Buffer; cfg: PeerConfig | null; candidates?: PeerConfig[];
    local: Endpoint; remote: Endpoint; now: number;
  }) {
    this.ctx = ctx;
    this.initiator = opts.initiator;
    this.spiI = Buffer.from(opts.spiI);
    this.spiR = opts.spiR ? Buffer.from(opts.spiR) : Buffer.alloc(8);
    this.cfg = opts.cfg;
    this.candidates = opts.candidates ?? (opts.cfg ? [opts.cfg] : []);
    this.local = opts.local;
    this.remote = opts.remote;
    this.createdAtMs = opts.now;
    this.lastInboundMs = opts.now;
    this.log = ctx.log.child({ ike: this.id, peer: endpointToString(opts.remote), conn: opts.cfg?.name ?? null });
  }

  /** "spiI/spiR" in hex: how this SA prints everywhere. */
  get id(): string {
    return formatIkeSaId(this.spiI, this.spiR);
  }

  /** Our own SPI (the key the manager indexes this SA by). */
  get ourSpi(): Buffer {
    return this.initiator ? this.spiI : this.spiR;
  }

  setResponderSpi(spiR: Buffer): void {
    this.spiR = Buffer.from(spiR);
    this.log = this.ctx.log.child({ ike: this.id, peer: endpointToString(this.remote), conn: this.cfg?.name ?? null });
  }

  chooseConfig(cfg: PeerConfig): void {
    this.cfg = cfg;
    this.log = this.ctx.log.child({ ike: this.id, peer: endpointToString(this.remote), conn: cfg.name });
  }

  /** Queue an exchange we initiate; it goes out when no request of ours is outstanding. */
  queueExchange(exchange: ExchangeType, tasks: IkeTask[], now: number): IkeAction[] {
    this.queue.push({ exchange, tasks });
    this.pump(now);
    return this.drain();
  }

  /**
   * Queue an exchange from inside a task (e.g. a DELETE after a rekey response): no send here;
   * it goes out when the current message has been handled.
   */
  queueLater(exchange: ExchangeType, tasks: IkeTask[]): void {
    this.queue.push({ exchange, tasks });
  }

  /** The next moment `tick` has work: a retransmit or an expiry. */
  nextDeadline(): number {
    let d = Infinity;
    if (this.outstanding) d = Math.min(this.outstanding.nextAtMs, this.dpdGiveUpAt(this.outstanding));
    if (this.state === 'INIT_RECEIVED') d = Math.min(d, this.createdAtMs + this.ctx.halfOpenTimeoutSec * 1000);
    if (this.state === 'REKEYED') d = Math.min(d, this.rekeyedAtMs + REKEYED_IKE_SA_TIMEOUT_MS);
    return d;
  }

  tick(now: number): IkeAction[] {
    if (this.state === 'DEAD') return this.drain();
    if (this.state === 'INIT_RECEIVED' && now >= this.createdAtMs + this.ctx.halfOpenTimeoutSec * 1000) {
      this.destroy('half-open IKE SA timed out (no IKE_AUTH)', now);
      return this.drain();
    }
    if (this.state === 'REKEYED' && now >= this.rekeyedAtMs + REKEYED_IKE_SA_TIMEOUT_MS) {
      this.destroy('rekeyed IKE SA not deleted by the peer: dropped', now);
      return this.drain();
    }
    const o = this.outstanding;
    if (o && now >= this.dpdGiveUpAt(o)) {
      this.log.warn({ mid: o.mid, tries: o.retries, timeoutSec: this.cfg?.dpdTimeoutSec }, 'liveness check unanswered within the DPD timeout: peer does not answer');
      return this.peerGone(o, `peer did not answer the liveness check #${o.mid} within ${this.cfg?.dpdTimeoutSec} s`, now);
    }
    if (o && now >= o.nextAtMs) {
      if (o.retries >= this.ctx.retransmit.tries) {
        if (!o.deadReported) this.log.warn({ mid: o.mid, tries: o.retries }, `giving up after ${o.retries} retransmits: peer does not answer`);
        return this.peerGone(o, `peer did not answer ${ExchangeType[o.exchange]} #${o.mid} after ${o.retries} retransmits`, now);
      }
      o.retries++;
      o.nextAtMs = now + this.ctx.retransmit.timeoutMs * Math.pow(this.ctx.retransmit.base, o.retries);
      this.log.debug({ mid: o.mid, retry: o.retries }, `retransmit ${ExchangeType[o.exchange]} request #${o.mid}`);
      for (const d of o.wire) this.emitSend(d);
    }
    return this.drain();
  }

  /**
   * When an unanswered liveness check counts as failed by the connection's DPD timeout (Infinity:
   * none configured, or `o` is no liveness check; the retransmission schedule decides then).
   */
  private dpdGiveUpAt(o: Outstanding): number {
    const timeoutSec = this.cfg?.dpdTimeoutSec ?? 0;
    if (timeoutSec <= 0 || o.deadReported || !o.tasks.some((t) => t.type === 'IKE_DPD')) return Infinity;
    return o.sentAtMs + timeoutSec * 1000;
  }

  /**
   * Our request `o` went unanswered. Normally the SA is cleared (RFC 7296 §2.4: the peer is dead);
   * an unanswered liveness check with the DPD action "none" is only counted and logged, and the SAs
   * stay. The check then goes on being retransmitted at the longest interval: its message ID must
   * stay in use (§2.3), so a peer that comes back answers it and the SA carries on.
   */
  private peerGone(o: Outstanding, reason: string, now: number): IkeAction[] {
    const dpd = o.tasks.some((t) => t.type === 'IKE_DPD');
    if (dpd && !o.deadReported) this.ctx.onDpdFailed?.(this);
    if (dpd && this.cfg?.dpdAction === 'none' && this.state === 'ESTABLISHED') {
      if (!o.deadReported) this.log.warn({ mid: o.mid }, `${reason}: keeping the SAs (dpd action none)`);
      o.deadReported = true;
      o.nextAtMs = now + this.ctx.retransmit.timeoutMs * Math.pow(this.ctx.retransmit.base, this.ctx.retransmit.tries);
      for (const d of o.wire) this.emitSend(d);
      return this.drain();
    }
    this.peerUnresponsive = true;
    if (!o.deadReported) this.reportFailure(noAnswer(endpointToString(this.remote), o.retries, ExchangeType[o.exchange] ?? String(o.exchange)));
    this.destroy(reason, now);
    return this.drain();
  }

  /**
   * An IKE datagram for this SA (the non-ESP marker already stripped). `from` is where it came
   * from and `to` the local endpoint it arrived on; responses go back exactly there (RFC 7296 §2.11).
   */
  receive(datagram: Buffer, from: Endpoint, to: Endpoint, now: number): IkeAction[] {
    if (this.state === 'DEAD') return [];
    if (datagram.length < 28) return [];
    const flags = datagram[19]!;
    const mid = datagram.readUInt32BE(20);
    const isResponse = (flags & HeaderFlag.R) !== 0;
    if (!isResponse) {
      // a retransmitted request: resend the cached response, nothing else (RFC 7296 §2.1)
      if (this.lastResponse && mid === this.lastResponse.mid) {
        if (sha1(datagram).equals(this.lastResponse.requestHash)) {
          this.log.debug({ mid }, 'retransmitted request: resending cached response');
          for (const d of this.lastResponse.wire) this.actions.push({ kind: 'send', from: this.lastResponse.from, to: this.lastResponse.to, datagram: d });
        }
        return this.drain();
      }
      if (mid !== this.expectedRequestMid) {
        this.log.debug({ mid, expected: this.expectedRequestMid }, `received message ID ${mid}, expected ${this.expectedRequestMid}, ignored`);
        return [];
      }
    } else if (!this.outstanding || this.outstanding.mid !== mid) {
      this.log.debug({ mid }, 'unexpected response ignored');
      return [];
    }
    let res: DecodeResult;
    if (datagram[16] === PayloadType.SKF) {
      // RFC 7383 §2.6: verify each fragment on its own, process the message once all are in
      if (!this.sk || datagram[18] === ExchangeType.IKE_SA_INIT) return [];
      const f = decodeFragment(datagram, this.sk);
      if (!f.ok) {
        this.log.debug({ mid, reason: f.reason, detail: f.detail }, 'dropped invalid IKE fragment');
        return [];
      }
      const whole = this.reassembler.add(f);
      if (!whole) {
        this.log.debug({ mid, fragment: f.fragmentNumber, total: f.totalFragments }, `received fragment ${f.fragmentNumber} of ${f.totalFragments}`);
        return [];
      }
      res = whole;
    } else {
      res = decodeMessage(datagram, datagram[18] === ExchangeType.IKE_SA_INIT ? null : this.sk);
    }
    if (!res.ok) {
      if (res.reason === 'unsupported-critical' && !isResponse) {
        this.respondError(datagram, mid, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([res.criticalType ?? 0]), from, to);
        return this.drain();
      }
      // malformed or bad ICV: silent drop, state untouched (RFC 7296 §2.21)
      this.log.debug({ mid, reason: res.reason, detail: res.detail }, 'dropped invalid IKE message');
      return [];
    }
    const msg = res.msg;
    if (msg.header.exchangeType !== ExchangeType.IKE_SA_INIT && !msg.encrypted) {
      this.log.debug({ mid }, 'unprotected message after IKE_SA_INIT dropped');
      return [];
    }
    if (this.log.isLevelEnabled('debug')) this.log.debug({}, `received ${describeMessage(msg)}`);
    this.lastInboundMs = now;
    // an authenticated message: follow the peer's address/port (port floating, NAT rebinding)
    if (msg.encrypted) this.followPeer(from, to, 'IKE');
    if (!isResponse && this.ikeCollision && this.outstanding) {
      // RFC 7296 §2.8.1: the peer settled a simultaneous IKE rekey before our answer came (its DELETE of
      // this SA, when its exchange won). Taken from its retransmission once ours is answered, so the
      // SA our exchange made can still be deleted properly if it is the redundant one.
      this.log.debug({ mid }, 'request while our collided IKE rekey is unanswered: deferred to its retransmission');
      return [];
    }
    this.currentRaw = datagram;
    if (isResponse) this.handleResponse(msg, now);
    else this.handleRequest(datagram, msg, from, to, now);
    this.pump(now);
    return this.drain();
  }

  /**
   * Should be called after an authenticated packet of this SA (an IKE message that passed its
   * integrity check, or an ICV-verified ESP packet of one of its children) came from `from` to `to`.
   *
   * RFC 7296 §2.23: a host not behind a NAT SHOULD send to the address and port of the last valid
   * authenticated packet (the peer's NAT may drop and recreate its mapping); a host behind a NAT
   * SHOULD NOT (that would open a DoS hole), so then only the float to port 4500 is followed. Once
   * established, a move is logged once and every child's SAs follow (the peerMoved action).
   * Returns whether the peer endpoint changed.
   */
  followPeer(from: Endpoint, to: Endpoint, via: 'IKE' | 'ESP'): boolean {
    const moved = from.address !== this.remote.address || from.port !== this.remote.port;
    const floated = to.port !== this.local.port;
    if (!moved && !floated) return false;
    if (moved && !floated && this.weBehindNat) {
      this.log.debug({ from: endpointToString(from) }, 'authenticated packet from another endpoint ignored: we are behind a NAT (RFC 7296 §2.23)');
      return false;
    }
    const old = this.remote;
    this.remote = from;
    if (via === 'IKE') this.local = to;
    if (!moved || this.state !== 'ESTABLISHED') return moved;
    this.peerMoves++;
    this.log.info({ from: endpointToString(old), to: endpointToString(from), via }, 'peer moved: NAT mapping changed');
    this.actions.push({
      kind: 'peerMoved',
      connection: this.cfg?.name ?? '',
      ikeId: this.id,
      remote: from,
      spis: this.children.filter((c) => c.spiOut !== 0).map((c) => ({ spiIn: c.spiIn, spiOut: c.spiOut })),
    });
    return true;
  }

  /** ESP of child `spiIn` authenticated from a new endpoint (the data plane's 'peer-moved'). */
  espPeerMoved(from: Endpoint, now: number): IkeAction[] {
    if (this.state !== 'ESTABLISHED') return [];
    this.activityMs = now;
    this.followPeer(from, { ...this.local }, 'ESP');
    return this.drain();
  }

  /** Build and send our next queued request if the window (size 1) is free. */
  private pump(now: number): void {
    while (!this.outstanding && this.queue.length > 0 && this.state !== 'DEAD') {
      const q = this.queue.shift()!;
      const payloads: Payload[] = [];
      let failed = false;
      for (const t of q.tasks) {
        if (!t.buildRequest) continue;
        const st = t.buildRequest(payloads);
        if (st === 'fail') {
          failed = true;
          this.log.warn({ task: t.type }, `cannot build ${ExchangeType[q.exchange]}: ${t.failReason ?? 'task failed'}`);
          break;
        }
      }
      if (failed) {
        if (q.exchange === ExchangeType.IKE_SA_INIT || q.exchange === ExchangeType.IKE_AUTH) this.destroy('could not build request', now);
        continue;
      }
      const mid = q.exchange === ExchangeType.IKE_SA_INIT ? 0 : this.nextRequestMid;
      const datagram = this.encode(q.exchange, false, mid, payloads);
      if (q.exchange === ExchangeType.IKE_SA_INIT) this.initRequest = datagram;
      const wire = this.fragmentIfLarge(q.exchange, false, mid, payloads, datagram);
      this.outstanding = {
        mid, exchange: q.exchange, datagram, wire, tasks: q.tasks, sentAtMs: now, retries: 0,
        nextAtMs: now + this.ctx.retransmit.timeoutMs, deadReported: false,
      };
      if (this.log.isLevelEnabled('debug')) this.log.debug({}, `sending ${ExchangeType[q.exchange]} request #${mid} [ ${payloadNames(payloads)} ]`);
      for (const d of wire) this.emitSend(d);
    }
  }

  private handleResponse(msg: IkeMessage, now: number): void {
    const o = this.outstanding!;
    this.outstanding = null;
    this.nextRequestMid = o.mid + 1;
    let retry = false;
    for (const t of o.tasks) {
      if (!t.processResponse) continue;
      const st = t.processResponse(msg);
      if (st === 'more') retry = true;
      if (st === 'fail') {
        const reason = t.failReason ?? `${t.type} failed`;
        if (o.exchange === ExchangeType.IKE_SA_INIT || (o.exchange === ExchangeType.IKE_AUTH && t.type !== 'CHILD_CREATE')) {
          this.destroy(reason, now);
          return;
        }
        this.log.warn({ task: t.type }, reason);
      }
      if (this.state === 'DEAD') return;
    }
    if (retry) {
      // e.g. INVALID_KE_PAYLOAD or COOKIE: the same tasks build the request again (MID stays 0)
      this.queue.unshift({ exchange: o.exchange, tasks: o.tasks });
    }
  }

  private handleRequest(raw: Buffer, msg: IkeMessage, from: Endpoint, to: Endpoint, now: number): void {
    const exchange = msg.header.exchangeType as ExchangeType;
    const tasks = this.responderTasks(exchange, msg);
    const out: Payload[] = [];
    let fatal = false;
    if (tasks === null) {
      out.push(notify(NotifyType.INVALID_SYNTAX));
      fatal = true;
    } else {
      for (const t of tasks) {
        if (!t.processRequest) continue;
        if (t.processRequest(msg) === 'fail' && isFatalResponderTask(t)) {
          fatal = true;
          break;
        }
      }
      if (fatal) {
        const failed = tasks.find((t) => t.failReason);
        out.length = 0;
        out.push(...failurePayloads(failed));
      } else {
        for (const t of tasks) {
          if (!t.buildResponse) continue;
          if (t.buildResponse(out) === 'fail' && isFatalResponderTask(t)) {
            fatal = true;
          }
        }
      }
    }
    const datagram = this.encode(exchange, true, msg.header.messageId, out);
    if (exchange === ExchangeType.IKE_SA_INIT) this.initResponse = datagram;
    const wire = this.fragmentIfLarge(exchange, true, msg.header.messageId, out, datagram);
    this.lastResponse = { mid: msg.header.messageId, requestHash: sha1(raw), wire, to: from, from: to };
    this.expectedRequestMid = msg.header.messageId + 1;
    if (this.log.isLevelEnabled('debug')) this.log.debug({}, `sending ${ExchangeType[exchange]} response #${msg.header.messageId} [ ${payloadNames(out)} ]`);
    for (const d of wire) this.actions.push({ kind: 'send', from: to, to: from, datagram: d });
    if (fatal) {
      const failed = tasks?.find((t) => t.failReason);
      this.destroy(failed?.failReason ?? 'request failed', now);
    } else if (this.pendingDestroy) {
      this.destroy(this.pendingDestroy, now);
    }
  }

  /** Factory for responder tasks (set by the manager so this file does not import every task). */
  responderTasks: (exchange: ExchangeType, msg: IkeMessage) => IkeTask[] | null = () => null;

  private respondError(raw: Buffer, mid: number, type: NotifyType, data: Buffer, from: Endpoint, to: Endpoint): void {
    const exchange = raw[18]!;
    const sk = exchange === ExchangeType.IKE_SA_INIT ? null : this.sk;
    const datagram = encodeMessage(
      { spiI: this.spiI, spiR: this.spiR, exchangeType: exchange, flags: this.flagsFor(true), messageId: mid },
      [notify(type, data)],
      sk,
    );
    this.actions.push({ kind: 'send', from: to, to: from, datagram });
  }

  flagsFor(response: boolean): number {
    return (this.initiator ? HeaderFlag.I : 0) | (response ? HeaderFlag.R : 0);
  }

  private encode(exchange: ExchangeType, response: boolean, mid: number, payloads: Payload[]): Buffer {
    const sk = exchange === ExchangeType.IKE_SA_INIT ? null : this.sk;
    return encodeMessage({ spiI: this.spiI, spiR: this.spiR, exchangeType: exchange, flags: this.flagsFor(response), messageId: mid }, payloads, sk);
  }

  /**
   * RFC 7383 §2.5: once negotiated, an encrypted message larger than IKE_FRAGMENT_MAX_BYTES goes
   * as SKF fragments (IKE_SA_INIT never: it is unencrypted and has no keys yet).
   */
  private fragmentIfLarge(exchange: ExchangeType, response: boolean, mid: number, payloads: Payload[], datagram: Buffer): Buffer[] {
    if (!this.fragmentation || !this.sk || exchange === ExchangeType.IKE_SA_INIT || datagram.length <= IKE_FRAGMENT_MAX_BYTES) return [datagram];
    const wire = encodeFragments(
      { spiI: this.spiI, spiR: this.spiR, exchangeType: exchange, flags: this.flagsFor(response), messageId: mid }, payloads, this.sk, IKE_FRAGMENT_MAX_BYTES,
    );
    this.log.debug({ mid, bytes: datagram.length, fragments: wire.length }, `${ExchangeType[exchange]} ${response ? 'response' : 'request'} #${mid} split into ${wire.length} fragments`);
    return wire;
  }

  private emitSend(datagram: Buffer): void {
    this.actions.push({ kind: 'send', from: this.local, to: this.remote, datagram });
  }

  /** Tasks use this to emit data-plane actions. */
  emit(a: IkeAction): void {
    this.actions.push(a);
  }

  private drain(): IkeAction[] {
    if (this.actions.length === 0) return [];
    return this.actions.splice(0, this.actions.length);
  }

  /** Marks the SA established (called by the auth task) and reports it. */
  established(now: number): void {
    this.state = 'ESTABLISHED';
    this.establishedAtMs = now;
    this.log.info({ peerId: this.peerId?.text ?? null }, `IKE_SA ${this.cfg?.name ?? ''}[${this.id}] established between ${endpointToString(this.local)} and ${endpointToString(this.remote)}`);
    this.actions.push({ kind: 'ikeUp', connection: this.cfg?.name ?? '', ikeId: this.id });
  }

  /**
   * Reports why a negotiation failed (one warning line with the suggested fix, and a
   * `negotiationFailed` action). Before IKE_AUTH has chosen a connection, a responder SA reports it
   * for each connection it may still become (its candidates, all of which share the peer address).
   */
  reportFailure(failure: IkeFailure): void {
    const names = this.cfg ? [this.cfg.name] : this.candidates.map((c) => c.name);
    this.log.warn({ code: failure.code, hint: failure.hint }, `negotiation failed: ${failure.message}`);
    for (const connection of names) this.actions.push({ kind: 'negotiationFailed', connection, ikeId: this.id, failure });
  }

  /** Tears the SA down locally: children removed from the data plane, SPIs released. */
  destroy(reason: string, _now: number, log = true): void {
    if (this.state === 'DEAD') return;
    if (log) this.log.info({ reason }, `IKE_SA ${this.cfg?.name ?? ''}[${this.id}] down: ${reason}`);
    this.failReason = reason;
    this.state = 'DEAD';
    this.outstanding = null;
    this.queue.length = 0;
    for (const c of this.children) this.removeChild(c);
    this.children.length = 0;
    this.actions.push({ kind: 'ikeDown', connection: this.cfg?.name ?? null, ikeId: this.id, reason });
  }

  removeChild(c: ChildSa): void {
    if (c.state === 'INSTALLED' || c.state === 'REKEYED' || c.state === 'DELETING') {
      const conn = this.cfg?.name ?? '';
      // (REKEYED, or a rekey collision whose outcome is pending: the peer's DELETE settles it, RFC 7296 §2.8.1)
      const rekeyed = (c.state === 'REKEYED' || c.collision !== null) && c.successor !== null && c.successor.state === 'INSTALLED';
      // the peer deleted the SA it replaced: our traffic moves to the successor now, and the old
      // inbound SA stays a moment for packets still in flight, as strongSwan keeps the old inbound
      // SA of a rekeyed child for a while (charon.delete_rekeyed_delay) so late packets are not dropped
      if (rekeyed) this.actions.push({ kind: 'activateChildSa', connection: conn, spiOut: c.successor!.spiOut });
      this.actions.push({ kind: 'deleteChildSa', connection: conn, spiIn: c.spiIn, spiOut: c.spiOut, inboundGraceMs: rekeyed ? REKEYED_INBOUND_GRACE_MS : 0 });
      this.log.info({ child: c.id }, `CHILD_SA ${c.cfg.name}{${spiHex(c.spiIn)}_i ${spiHex(c.spiOut)}_o} deleted`);
    }
    c.state = 'DELETED';
    this.ctx.releaseChildSpi(c.spiIn);
  }

  /** Whether our own request is in flight (status, tests). */
  get busy(): boolean {
    return this.outstanding !== null || this.queue.length > 0;
  }

  randomNonce(): Buffer {
    return this.ctx.random(32);
  }
}

export function notify(type: number, data: Buffer = Buffer.alloc(0), protocol = 0, spi: Buffer = Buffer.alloc(0)): Payload {
  return { type: PayloadType.N, protocol, spi, notifyType: type, data };
}

export function deletePayload(protocol: ProtocolId, spis: number[]): Payload {
  return { type: PayloadType.D, protocol, spiSize: protocol === ProtocolId.IKE ? 0 : 4, spis: spis.map(spiToBuffer) };
}

function sha1(b: Buffer): Buffer {
  return createHash('sha1').update(b).digest();
}

function isFatalResponderTask(t: IkeTask): boolean {
  return t.type !== 'CHILD_CREATE';
}

function failurePayloads(t: IkeTask | undefined): Payload[] {
  const n = (t as { failNotify?: number } | undefined)?.failNotify;
  return [notify(n ?? NotifyType.AUTHENTICATION_FAILED)];
}

export function payloadNames(payloads: Payload[]): string {
  return payloads
    .map((p) => {
      if (p.type === PayloadType.N) return `N(${NotifyType[(p as { notifyType: number }).notifyType] ?? (p as { notifyType: number }).notifyType})`;
      if (p.type === PayloadType.D) return 'D';
      return PayloadType[p.type] ?? String(p.type);
    })
    .join(' ');
}

export { firstErrorNotify, randomBytes };
