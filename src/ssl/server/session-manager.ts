/**
 * The OpenVPN-compatible server's session manager (point-to-cloud SSL VPN): which client a packet
 * belongs to, admission, peer-ids, floats and restarts, sessions per user (replace or refuse),
 * leases, the policy for inner packets, ping-restart and renegotiation, status. Pure: no sockets,
 * timers, clock or TUN.
 * Bytes and the time come in through `receiveDatagram` / `receiveFrame` / `tick`; what the shell must
 * do comes back as actions (src/ssl/server/actions.ts). The per-session data channel is a port
 * (SslDataPath: the TypeScript DataChannel or the data plane's native offload); the control channel
 * of each session is SslSession (src/ssl/session.ts).
 *
 * Inbound (client → VPC):
 *  1. UDP datagram (sessions keyed by addr:port; P_DATA_V2 may also be matched by peer-id, so a
 *     client whose address changed "floats" once its packet authenticates) or TCP frame (one
 *     connection = one session)
 *  2. data opcodes → the session's data path decrypts in place → ping / OCC exit / IP packet
 *  3. IP packet: the source must be the client's virtual address; a destination inside the client
 *     subnet goes to another client (only with clientToClient) or is dropped; anything else is a
 *     writeToTun action
 *  4. control opcodes → the session whose client session id the packet carries. UDP without one:
 *     the stateless start (src/ssl/server/stateless-reset.ts) — a hard reset is answered with an
 *     HMAC session id and no state; only the client's echo of that id creates a session. TCP: the
 *     first frame must be a hard reset. Anything else is a counted drop without a session.
 *
 * Before authentication (the hostile internet): half-open sessions are capped in total and per
 * source address and closed after a short handshake timeout; hard-reset replies are rate limited
 * and never retransmitted; a new session from the address:port of a live one replaces it only when
 * it authenticates; TCP connections are capped in total and per source and must send a valid first
 * frame within a timeout. Limits: SslServerLimits (config.ts).
 *
 * Outbound (VPC → client) does not pass here: the data plane routes the client's /32 to its data path.
 *
 * Time: `tick(now)` runs the control channels' deadlines, keepalive pings, and expires clients silent
 * for twice the pushed ping-restart, like the stock server (OpenVPN multi.c, server-side
 * ping-restart is doubled when pushed). Actions of the control channels that arise outside a call
 * (asynchronous TLS) go to `onAsyncActions`.
 */
import { VpnError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { parseIp, parsePrefix, prefixContains, type Prefix } from '../../common/ip.js';
import type { SslAction, SslSessionOptions } from '../session.js';
import { DATA_IP, DATA_OCC_EXIT, DATA_PING, DROP_OCC_OTHER } from '../data/data-channel.js';
import { COMP_LZO_STUB, COMP_NONE, COMP_STUB_V2, type CompressionMode } from '../data/compression.js';
import { OCC_EXIT, occOpcode } from '../data/special.js';
import { isDataOpcode, opcodeOf, P_DATA_V2, PEER_ID_MAX } from '../wire/data-packet.js';
import { WriteToTun, type SslServerAction } from './actions.js';
import { AuthBackoff, type AuthBackoffLimits } from './auth-backoff.js';
import { needsClientCert, needsPassword, type SslAuthType } from './authenticator.js';
import {
  DEFAULT_PING_RESTART_SEC,
  DEFAULT_PING_SEC,
  HANDSHAKE_WINDOW_SEC,
  SERVER_TIMEOUT_FACTOR,
  TICK_MS,
  limitsOf,
  pushedRoutesOf,
  type SslServerLimits,
  type PushedRoute,
  type SslProtocol,
  type SslServerConfig,
} from './config.js';
import { defaultSessionFactory, type ControlSession, type ControlSessionFactory } from './control-session.js';
import { KEEP_COMPRESSION, TICK_RENEGOTIATE, TICK_RX_SEEN, TICK_SEND_FAILED, type SslDataPath, type SslDataPathFactory } from './data-path.js';
import type { ClientLease, LeaseProvider } from './leases.js';
import { RESEND_WKC_TLVS, SID_SLOT_MS, SessionIdCookie, buildResetReply, parseEcho, parseInitialReset } from './stateless-reset.js';
import { plainWrap, type ControlWrap } from '../wire/control-packet.js';
import { EARLY_NEG_MASK, EARLY_NEG_START, wrapFactoryOf, type ControlWrapFactory } from '../wire/tls-wrap.js';
import { Opcode } from '../wire/opcodes.js';

/** How long a disconnected client's control channel lingers to deliver RESTART / HALT (and retransmit it). */
export const DISCONNECT_LINGER_MS = 2_000;

export interface SslClientStatus {
  /** stable for the session's life and never reused by this server: `s` + a counter (disconnect takes it) */
  id: string;
  user: string;
  protocol: SslProtocol;
  realAddress: string; // ip:port
  virtualAddress: string | null;
  peerId: number;
  state: string;
  cipher: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  connectedSince: string; // ISO time
  drops: Record<string, number>;
  /** key id of the newest data channel keys (-1: none yet); it advances 0, 1..7, 1.. with each renegotiation */
  keyId: number;
  /** data channel key changes after the first keys (renegotiations by either side) */
  renegotiations: number;
}

export class SslServerCounters {
  sessionsCreated = 0;
  sessionsClosed = 0;
  garbageDrops = 0; // packets from unknown remotes that are not an initial packet
  maxConnectionRefusals = 0;
  poolRefusals = 0;
  authRefusals = 0; // sessions closed before authentication (bad cert, bad password, no common cipher, ...)
  /** username/password logins refused (wrong password, unknown or disabled user, no credentials, back-off) */
  passwordFailures = 0;
  /** logins refused without a check: the source failed too often (AuthBackoff) */
  authBackoffRefusals = 0;
  noSessionDataDrops = 0;
  badSourceDrops = 0;
  ipv6Drops = 0;
  clientToClientDrops = 0;
  noClientDrops = 0; // client-to-client to an address nobody holds
  tcpBackpressureDrops = 0;
  sendErrors = 0;
  replacedSessions = 0;
  /** logins refused: the user had sessionsPerUser sessions already (onExtraSession refuse) */
  sessionLimitRefusals = 0;
  /** stateless hard-reset replies sent (UDP) */
  resetReplies = 0;
  /** hard resets not answered: over resetRepliesPerSec */
  resetRateDrops = 0;
  /** echoes whose server session id did not verify (spoofed, stale or from another address) */
  badEchoDrops = 0;
  halfOpenRefusals = 0;
  halfOpenTimeouts = 0;
  tcpRefusals = 0;
  tcpFirstFrameTimeouts = 0;
  /** control packets without a valid tls-auth / tls-crypt wrapper */
  wrapDrops = 0;
  /** data channel bytes of sessions already closed, so server totals never go down when a client leaves */
  closedBytesIn = 0;
  closedBytesOut = 0;
}

type SessionStatus = 'closed' | 'open';

/** the AUTH_FAILED reason for a client refused at maxConnections */
export const REFUSED_SERVER_FULL = 'server full';
/** the AUTH_FAILED reason for a login beyond sessionsPerUser with onExtraSession refuse */
export const REFUSED_SESSION_LIMIT = 'session limit reached: this user is connected already';
/** why a session ended when a newer one of its user took its place (also the HALT text's reason) */
export const REPLACED_BY_NEW_SESSION = 'replaced by a new connection of the same user';

/** One client session: its tables' keys, its control channel and its data path. */
export class ServerSession {
  user = '';
  certCn = '';
  /** the identity its lease is held under: the user for their first session, `user#2`... for more (sessionsPerUser) */
  leaseId = '';
  /** the origin its decrypted packets carry into the data path's policy stage (0: none) */
  origin = 0;
  lease: ClientLease | null = null;
  prefix: Prefix | null = null;
  ssl!: ControlSession;
  data!: SslDataPath;
  lastRxMs: number;
  status: SessionStatus = 'open';
  authenticated = false;
  /** counted in the half-open limits (until it authenticates or closes) */
  halfOpen = false;
  /** the id of its password check in flight (0: none) */
  authPending = 0;
  /** the client's control-channel session id (bytes 1..8 of its hard reset), UDP only */
  clientSid: Buffer | null = null;
  remoteFamily: 4 | 6 = 4;
  /** disconnected by the operator: the control channel stays until then (0: closes with the session) */
  lingerUntilMs = 0;
  /** newest data channel key id (-1: none yet) and how many keys were installed */
  keyId = -1;
  keysInstalled = 0;
  /**
   * refused and logged once already: after authentication (maxConnections, pool; by `refuse`) or
   * its password (by `refusePassword`, which counts it in authRefusals). It may linger, or its TCP
   * connection close, before 'closed' comes: that must not count or log it again.
   */
  refused = false;

  constructor(
    readonly id: number,
    readonly protocol: SslProtocol,
    public remoteAddr: string,
    public remotePort: number,
    /** the shell's TCP connection id, -1 for UDP */
    readonly conn: number,
    readonly peerId: number,
    readonly createdMs: number,
    readonly log: Logger,
  ) {
    this.lastRxMs = createdMs;
    this.setRemote(remoteAddr, remotePort);
  }

  setRemote(addr: string, port: number): void {
    this.remoteAddr = addr;
    this.remotePort = port;
    this.remoteFamily = parseIp(addr)?.family ?? 4;
  }

  get remote(): string {
    return `${this.remoteAddr}:${this.remotePort}`;
  }
}

export interface SslSessionManagerOptions {
  config: SslServerConfig;
  log: Logger;
  leases: LeaseProvider;
  dataPaths: SslDataPathFactory;
  /** defaults to the real SslSession */
  sessions?: ControlSessionFactory;
  /** actions that arise outside any call (the control channels' asynchronous TLS); the array is reused */
  onAsyncActions?: (actions: readonly SslServerAction[]) => void;
  /** the stateless start's HMAC key (default: random per manager; tests fix it) */
  cookieSecret?: Buffer;
  /** failed-password back-off per source address (default DEFAULT_AUTH_BACKOFF) */
  authBackoff?: AuthBackoffLimits;
  /**
   * Asked once a client has authenticated (certificate, and password when the server wants one),
   * before it gets an address: a reason refuses it (AUTH_FAILED,<reason>), null admits it. The
   * gateway refuses users disabled or not allowed on this server here, also on certificate servers.
   */
  admit?: (user: string, certCn: string) => string | null;
  /** the origin of a user's sessions (src/vpcep/policy.ts; 0: none, the default) */
  originOf?: (user: string) => number;
}

interface OpenTcp {
  addr: string;
  /** the first-valid-frame deadline; Infinity once it came */
  deadlineMs: number;
}

export class SslSessionManager {
  readonly config: SslServerConfig;
  readonly counters = new SslServerCounters();
  private readonly log: Logger;
  private readonly leases: LeaseProvider;
  private readonly dataPaths: SslDataPathFactory;
  private readonly factory: ControlSessionFactory;
  private readonly onAsync: (actions: readonly SslServerAction[]) => void;
  private readonly clientPrefix: Prefix;
  /** the server's tunnel address (.1): packets to it go to the TUN like VPC traffic */
  private readonly serverAddressNum: number;
  private readonly pushRoutes: PushedRoute[];
  readonly pingSec: number;
  readonly pingRestartSec: number;
  private readonly timeoutMs: number;
  readonly limits: SslServerLimits;
  private readonly cookie: SessionIdCookie;
  /** tls-auth / tls-crypt from the config: the stateless pre-check, and one wrap per session */
  private readonly wraps: ControlWrapFactory | null;
  private readonly wrap: ControlWrap;
  readonly authType: SslAuthType;
  private readonly backoff: AuthBackoff;
  /** password checks in flight: their id → the session waiting for the verdict */
  private readonly authChecks = new Map<number, { s: ServerSession; user: string; certCn: string }>();
  private nextAuthCheck = 1;

  /** actions of the current call (reused; `depth` > 0 inside a call) */
  private readonly out: SslServerAction[] = [];
  private depth = 0;
  private readonly tunAction = new WriteToTun();
  /** the latest time seen (for control-channel actions that arrive asynchronously) */
  private nowMs = 0;
  private lastTickMs = 0;

  private nextSessionId = 1;
  /** UDP sessions by "addr:port" */
  private readonly udpSessions = new Map<string, ServerSession>();
  private readonly tcpSessions = new Map<number, ServerSession>();
  /** closed sessions whose control channel still delivers the operator's RESTART / HALT */
  private readonly lingering: ServerSession[] = [];
  private readonly all = new Set<ServerSession>();
  private readonly byPeerId: (ServerSession | undefined)[] = [];
  private readonly freePeerIds: number[] = [];
  /** this server's peer-ids are [peerIdFirst, peerIdEnd); byPeerId is indexed by peerId - peerIdFirst */
  private readonly peerIdFirst: number;
  private readonly peerIdEnd: number;
  private nextPeerId = 0;
  /** authenticated sessions by user, oldest first */
  private readonly byUser = new Map<string, ServerSession[]>();
  private readonly sessionsPerUser: number;
  private readonly onExtraSession: 'replace' | 'refuse';
  private readonly admit: ((user: string, certCn: string) => string | null) | null;
  private readonly originOf: ((user: string) => number) | null;
  private readonly byAddress = new Map<number, ServerSession>();
  /** a new session at the addr:port of a live one, until it authenticates and replaces it */
  private readonly udpPending = new Map<string, ServerSession>();
  private halfOpenCount = 0;
  private readonly halfOpenBySource = new Map<string, number>();
  private replyWindowStartMs = 0;
  private repliesInWindow = 0;
  /** TCP connections the shell reported open, by id */
  private readonly tcpConns = new Map<number, OpenTcp>();
  private readonly tcpBySource = new Map<string, number>();

  constructor(opts: SslSessionManagerOptions) {
    const c = opts.config;
    this.config = c;
    this.log = opts.log;
    this.leases = opts.leases;
    this.dataPaths = opts.dataPaths;
    this.factory = opts.sessions ?? defaultSessionFactory;
    this.onAsync = opts.onAsyncActions ?? (() => {});
    this.peerIdFirst = c.peerIds?.first ?? 0;
    this.peerIdEnd = Math.min(PEER_ID_MAX + 1, this.peerIdFirst + (c.peerIds?.count ?? PEER_ID_MAX + 1));
    this.nextPeerId = this.peerIdFirst;
    this.clientPrefix = this.leases.prefix;
    this.serverAddressNum = this.clientPrefix.bytes.readUInt32BE(0) + 1;
    this.pushRoutes = pushedRoutesOf(c);
    this.pingSec = c.pingSec ?? DEFAULT_PING_SEC;
    this.pingRestartSec = c.pingRestartSec ?? DEFAULT_PING_RESTART_SEC;
    this.timeoutMs = SERVER_TIMEOUT_FACTOR * this.pingRestartSec * 1000;
    this.limits = limitsOf(c);
    this.cookie = new SessionIdCookie(opts.cookieSecret);
    this.wraps = c.tlsWrap ? wrapFactoryOf(c.tlsWrap) : null;
    this.wrap = this.wraps ? this.wraps.stateless : plainWrap;
    this.authType = c.auth ?? 'cert';
    this.backoff = new AuthBackoff(opts.authBackoff);
    this.sessionsPerUser = c.sessionsPerUser ?? 1;
    this.onExtraSession = c.onExtraSession ?? 'replace';
    this.admit = opts.admit ?? null;
    this.originOf = opts.originOf ?? null;
  }

  /**
   * The verdict of a `verifyPassword` action's check. A check whose session has closed meanwhile
   * is ignored. Refused: the client gets AUTH_FAILED (no reason: it must not learn whether the user
   * exists) and its source address a failure towards the back-off.
   */
  passwordVerdict(check: number, ok: boolean, reason: string, now: number): readonly SslServerAction[] {
    this.enter(now);
    const c = this.authChecks.get(check);
    if (c) {
      this.authChecks.delete(check);
      const s = c.s;
      try {
        if (s.status === 'open' && s.authPending === check) {
          s.authPending = 0;
          if (ok) {
            this.backoff.success(s.remoteAddr);
            this.onAuthenticated(s, c.user, c.certCn);
          } else {
            this.refusePassword(s, c.user, reason, now);
          }
        }
      } catch (err) {
        s.log.error({ err }, 'password verdict failed; closing the session');
        this.closeSession(s, 'internal error');
      }
    }
    return this.leave();
  }
  /** Sessions that have not authenticated yet. */
  get halfOpenSessions(): number {
    return this.halfOpenCount;
  }

  /** Open TCP connections the shell reported. */
  get tcpConnections(): number {
    return this.tcpConns.size;
  }

  get sessionCount(): number {
    return this.all.size;
  }

  // ---------------------------------------------------------------- input

  /**
   * One UDP datagram from address:port. `owned`: the buffer is the caller's to give away (node:dgram);
   * otherwise (batch slots reused after the batch) control packets are copied before they go to the
   * asynchronous control channel. Data packets are decrypted in place.
   */
  receiveDatagram(msg: Buffer, address: string, port: number, owned: boolean, now: number): readonly SslServerAction[] {
    this.enter(now);
    try {
      this.onDatagram(msg, address, port, owned, now);
    } catch (err) {
      this.log.error({ err, peer: `${address}:${port}` }, 'udp packet handling failed');
    }
    return this.leave();
  }

  /**
   * One frame of TCP connection `conn` (the shell numbers its connections). The first frame must be
   * an initial packet, else the connection is closed (closeConnection with abort).
   */
  receiveFrame(conn: number, address: string, port: number, buf: Buffer, off: number, len: number, now: number): readonly SslServerAction[] {
    this.enter(now);
    try {
      this.onFrame(conn, address, port, buf, off, len, now);
    } catch (err) {
      this.log.error({ err, peer: `${address}:${port}` }, 'tcp frame handling failed');
    }
    return this.leave();
  }

  /**
   * A TCP connection was accepted. Over the total or per-source cap it is closed at once (abort);
   * otherwise it must deliver a valid first frame within tcpFirstFrameTimeoutSec.
   */
  connectionOpened(conn: number, address: string, port: number, now: number): readonly SslServerAction[] {
    this.enter(now);
    const L = this.limits;
    const perSource = this.tcpBySource.get(address) ?? 0;
    if (this.tcpConns.size >= L.maxTcpConnections || perSource >= L.maxTcpPerSource) {
      this.counters.tcpRefusals++;
      this.log.debug({ peer: `${address}:${port}`, total: this.tcpConns.size, perSource }, 'tcp connection refused: connection limit');
      this.emit({ kind: 'closeConnection', conn, abort: true });
    } else {
      this.tcpConns.set(conn, { addr: address, deadlineMs: now + L.tcpFirstFrameTimeoutSec * 1000 });
      this.tcpBySource.set(address, perSource + 1);
    }
    return this.leave();
  }

  /**
   * The shell's TCP connection closed (by the client, the network, or after a closeConnection). Until
   * then a closed session keeps its connection: later frames on it are ignored.
   */
  connectionClosed(conn: number, now: number): readonly SslServerAction[] {
    this.enter(now);
    this.forgetConnection(conn);
    const s = this.tcpSessions.get(conn);
    this.tcpSessions.delete(conn);
    if (s && s.status === 'open') this.closeSession(s, 'tcp connection closed');
    return this.leave();
  }

  /**
   * Decrypted payload the data plane's SSL offload hands up for a session (OCC messages and
   * client-to-client packets), at buf[off, off+len).
   */
  receivePlaintext(peerId: number, buf: Buffer, off: number, len: number, now: number): readonly SslServerAction[] {
    this.enter(now);
    const s = this.byPeerId[peerId - this.peerIdFirst];
    if (s && s.status === 'open') {
      try {
        const r = occOpcode(buf, off, len) >= 0 ? this.classifyOcc(s, buf, off, len) : DATA_IP;
        this.afterDecrypt(s, r, buf, off, len, now);
      } catch (err) {
        this.log.error({ err, peer: s.remote }, 'offloaded plaintext handling failed');
      }
    }
    return this.leave();
  }

  /** Control-channel deadlines, ping-restart expiry, keepalive pings and renegotiation for every session. */
  tick(now: number): readonly SslServerAction[] {
    this.enter(now);
    this.lastTickMs = now;
    for (const [conn, p] of this.tcpConns) {
      if (now >= p.deadlineMs && !this.tcpSessions.has(conn)) {
        this.counters.tcpFirstFrameTimeouts++;
        this.log.debug({ peer: p.addr, conn }, 'tcp connection closed: no valid first frame in time');
        this.forgetConnection(conn);
        this.emit({ kind: 'closeConnection', conn, abort: true });
      }
    }
    const handshakeMs = this.limits.handshakeTimeoutSec * 1000;
    for (const s of this.all) {
      try {
        if (s.status !== 'open') continue;
        if (s.halfOpen && now - s.createdMs >= handshakeMs) {
          this.counters.halfOpenTimeouts++;
          s.log.info({ state: s.ssl.state }, 'half-open session did not authenticate in time');
          this.closeSession(s, 'handshake timeout');
          continue;
        }
        if (now >= s.ssl.nextDeadline()) s.ssl.tick(now);
        if (s.status !== 'open') continue;
        if (s.authenticated && now - s.lastRxMs > this.timeoutMs) {
          this.closeSession(s, `ping-restart: nothing received for ${Math.round((now - s.lastRxMs) / 1000)} s`);
          continue;
        }
        const f = s.data.tick(now, this.pingSec);
        if (f & TICK_RX_SEEN) s.lastRxMs = now;
        if (f & TICK_SEND_FAILED) this.counters.sendErrors++;
        if (f & TICK_RENEGOTIATE && s.ssl.renegotiate) s.ssl.renegotiate(now);
      } catch (err) {
        s.log.error({ err }, 'session tick failed; closing it');
        this.closeSession(s, 'internal error');
      }
    }
    if (this.lingering.length > 0) this.tickLingering(now);
    return this.leave();
  }

  /**
   * When `tick` has work next: a control-channel deadline, a ping-restart expiry, or the next poll of
   * the data paths (every TICK_MS while a session is up: pings and offload counters are polled).
   */
  nextDeadline(): number {
    let d = Infinity;
    for (const p of this.tcpConns.values()) d = Math.min(d, p.deadlineMs);
    const handshakeMs = this.limits.handshakeTimeoutSec * 1000;
    for (const s of this.all) {
      if (s.status !== 'open') continue;
      d = Math.min(d, s.ssl.nextDeadline());
      if (s.halfOpen) d = Math.min(d, s.createdMs + handshakeMs);
      if (s.authenticated) d = Math.min(d, s.lastRxMs + this.timeoutMs + 1, this.lastTickMs + TICK_MS);
    }
    for (const s of this.lingering) d = Math.min(d, s.lingerUntilMs, s.ssl.nextDeadline());
    return d;
  }

  /** Closes every session (server shutdown): the clients are told to reconnect (RESTART). */
  closeAll(reason: string, now: number): readonly SslServerAction[] {
    this.enter(now);
    for (const s of [...this.all]) {
      try {
        s.ssl.sendControlText('RESTART');
      } catch {
        /* closing anyway */
      }
      this.closeSession(s, reason);
    }
    this.tickLingering(Infinity);
    return this.leave();
  }

  /** The open session a status id or a user name refers to (the id wins), or null. */
  clientOf(client: string): { id: string; user: string } | null {
    const s = this.findClient(client);
    return s ? { id: sessionIdOf(s), user: s.user } : null;
  }

  /**
   * An operator closes one session (like the stock server's management `client-kill`): the client
   * is sent `message` on the control channel — RESTART makes a stock client reconnect, HALT makes
   * it exit (OpenVPN push.c, server_pushed_signal) — and its data path, lease and route go at once.
   * The control channel lingers DISCONNECT_LINGER_MS so the message (asynchronous TLS) gets out and
   * can be retransmitted; its TCP connection is ended after that. ERR_NOT_FOUND for an unknown client.
   */
  disconnect(client: string, message: 'RESTART' | 'HALT', now: number): readonly SslServerAction[] {
    const s = this.findClient(client);
    if (!s) throw new VpnError('ERR_NOT_FOUND', `no client session "${client}"`);
    this.enter(now);
    s.log.info({ user: s.user || undefined, message }, 'client disconnected by the operator');
    this.tellAndClose(s, message, 'disconnected by the operator', now);
    return this.leave();
  }

  /**
   * Ends every session of `user` now (the user was disabled, removed, or no longer allowed here):
   * each client is told `message` (with `reason` after a comma: the stock client logs it, OpenVPN
   * push.c server_pushed_signal) and its lease and route go at once, as with `disconnect`. Returns
   * how many sessions ended (0 when the user has none).
   */
  disconnectUser(user: string, message: 'RESTART' | 'HALT', reason: string, now: number): { count: number; actions: readonly SslServerAction[] } {
    this.enter(now);
    const list = [...(this.byUser.get(user) ?? [])];
    for (const s of list) {
      s.log.info({ user, message, reason }, 'client session ended: its user changed');
      this.tellAndClose(s, `${message},${reason}`, reason, now);
    }
    return { count: list.length, actions: this.leave() };
  }

  /** The users with a session that holds an address now. */
  onlineUsers(): string[] {
    return [...this.byUser.keys()];
  }

  /**
   * Asks `originOf` again for every authenticated session (a user's groups or the policies changed)
   * and hands a changed origin to the session's data path.
   */
  refreshOrigins(): void {
    if (!this.originOf) return;
    for (const list of this.byUser.values()) {
      for (const s of list) {
        const o = this.originOf(s.user);
        if (o === s.origin) continue;
        s.origin = o;
        s.data.setOrigin?.(o);
      }
    }
  }

  /**
   * Sends `text` on the session's control channel and closes the session; the control channel
   * lingers DISCONNECT_LINGER_MS so the message gets out (and can be retransmitted).
   */
  private tellAndClose(s: ServerSession, text: string, reason: string, now: number): void {
    try {
      s.ssl.sendControlText(text);
      s.lingerUntilMs = now + DISCONNECT_LINGER_MS;
      this.lingering.push(s);
      this.closeSession(s, reason);
    } catch (err) {
      s.log.error({ err }, 'disconnect failed; closing the session');
      this.closeSession(s, 'internal error');
    }
  }

  private findClient(client: string): ServerSession | undefined {
    for (const s of this.all) if (s.status === 'open' && sessionIdOf(s) === client) return s;
    return this.byUser.get(client)?.find((x) => x.status === 'open');
  }

  /** Ends the control channels of disconnected sessions whose linger ran out (or that closed themselves). */
  private tickLingering(now: number): void {
    for (let i = this.lingering.length - 1; i >= 0; i--) {
      const s = this.lingering[i]!;
      if (now < s.lingerUntilMs && s.ssl.state !== 'closed') {
        if (now >= s.ssl.nextDeadline()) s.ssl.tick(now); // retransmits the message
        continue;
      }
      this.lingering.splice(i, 1);
      this.endControl(s, 'disconnected by the operator');
    }
  }

  // ---------------------------------------------------------------- status

  /** Online clients (and sessions still negotiating). */
  status(): SslClientStatus[] {
    const out: SslClientStatus[] = [];
    for (const s of this.all) {
      const st = s.data.stats();
      out.push({
        id: sessionIdOf(s),
        user: s.user,
        protocol: s.protocol,
        realAddress: s.remote,
        virtualAddress: s.lease ? s.lease.address : null,
        peerId: s.peerId,
        state: s.ssl.state,
        cipher: st.cipher,
        bytesIn: st.bytesIn,
        bytesOut: st.bytesOut,
        packetsIn: st.packetsIn,
        packetsOut: st.packetsOut,
        connectedSince: new Date(s.createdMs).toISOString(),
        drops: st.drops,
        keyId: s.keyId,
        renegotiations: Math.max(0, s.keysInstalled - 1),
      });
    }
    return out;
  }

  // ---------------------------------------------------------------- UDP and TCP input

  private onDatagram(msg: Buffer, address: string, port: number, owned: boolean, now: number): void {
    if (msg.length === 0) {
      this.counters.garbageDrops++;
      return;
    }
    const key = `${address}:${port}`;
    let s = this.udpSessions.get(key);
    if (isDataOpcode(msg[0]!)) {
      if (!s && opcodeOf(msg[0]!) === P_DATA_V2 && msg.length >= 4) {
        // a known client whose address changed: match by peer-id, accept only if it authenticates
        const peerId = (msg[1]! << 16) | (msg[2]! << 8) | msg[3]!;
        const cand = this.byPeerId[peerId - this.peerIdFirst];
        if (cand && cand.protocol === 'udp' && cand.status === 'open') {
          const r = cand.data.decrypt(msg, 0, msg.length, now);
          if (r <= DATA_OCC_EXIT) {
            this.udpSessions.delete(cand.remote);
            cand.log.info({ from: cand.remote, to: key }, 'client address changed (float)');
            cand.setRemote(address, port);
            cand.data.setRemote({ family: cand.remoteFamily, address, port });
            this.udpSessions.set(key, cand);
            this.afterDecrypt(cand, r, msg, cand.data.outOff, cand.data.outLen, now);
          }
          return;
        }
      }
      if (!s) {
        this.counters.noSessionDataDrops++;
        return;
      }
      this.onData(s, msg, 0, msg.length, now);
      return;
    }
    // control: the session this client session id belongs to (the id is in clear with every wrap)
    let target: ServerSession | undefined;
    if (msg.length >= 9) {
      const sid = msg.subarray(1, 9);
      if (s && s.clientSid !== null && sid.equals(s.clientSid)) target = s;
      else {
        const p = this.udpPending.get(key);
        if (p && p.clientSid !== null && sid.equals(p.clientSid)) target = p;
      }
    }
    if (!target) target = this.statelessStart(msg, address, port, key, s, now) ?? undefined;
    if (!target) return;
    target.lastRxMs = now;
    target.ssl.receiveControl(owned ? msg : Buffer.from(msg), now);
  }

  /**
   * A control packet of no known session: a hard reset gets the stateless reply; an echo of a valid
   * server session id creates the session (returned, the packet then goes to it); the rest is dropped.
   */
  private statelessStart(msg: Buffer, address: string, port: number, key: string, live: ServerSession | undefined, now: number): ServerSession | null {
    const clear = this.wrap.unwrap(msg, now);
    if (clear instanceof Error) {
      this.counters.wrapDrops++;
      return null;
    }
    const reset = parseInitialReset(clear);
    let tlvs: Buffer | undefined;
    if (reset && clear[0]! >> 3 === Opcode.P_CONTROL_HARD_RESET_CLIENT_V3) {
      // tls-crypt-v2: only clients that can resend their wrapped key keep the server stateless
      if (((msg.readUInt32BE(9) & EARLY_NEG_MASK) >>> 0) !== EARLY_NEG_START) {
        this.counters.garbageDrops++;
        this.log.debug({ peer: key }, 'dropped: tls-crypt-v2 reset without early negotiation (client before 2.6)');
        return null;
      }
      tlvs = RESEND_WKC_TLVS;
    }
    if (reset) {
      if (now - this.replyWindowStartMs >= 1000) {
        this.replyWindowStartMs = now;
        this.repliesInWindow = 0;
      }
      if (this.repliesInWindow >= this.limits.resetRepliesPerSec) {
        this.counters.resetRateDrops++;
        return null;
      }
      this.repliesInWindow++;
      const sid = this.cookie.sessionId(address, port, reset.clientSid, Math.floor(now / SID_SLOT_MS));
      const family = parseIp(address)?.family ?? 4;
      this.counters.resetReplies++;
      this.emit({ kind: 'sendControl', conn: -1, to: { family, address, port }, packet: buildResetReply(sid, reset.clientSid, msg.length, this.wrap, now, tlvs) });
      return null;
    }
    const echo = parseEcho(clear);
    if (!echo) {
      this.counters.garbageDrops++;
      this.log.debug({ peer: key, len: msg.length, byte0: msg[0] }, 'dropped: not an initial packet from an unknown remote');
      return null;
    }
    if (!this.cookie.verify(address, port, echo.clientSid, echo.serverSid, now)) {
      this.counters.badEchoDrops++;
      return null;
    }
    const created = this.newSession('udp', address, port, -1, now, { localSid: echo.serverSid, remoteSid: echo.clientSid });
    if (!created) return null;
    created.clientSid = echo.clientSid;
    if (live) {
      // the live session keeps its slot until this one authenticates (a reset must not end it)
      const prev = this.udpPending.get(key);
      if (prev) this.closeSession(prev, 'superseded by a newer session attempt');
      this.udpPending.set(key, created);
      created.log.info({}, 'new session from the address of a live one: it replaces it once authenticated');
    } else {
      this.udpSessions.set(key, created);
    }
    return created;
  }

  private onFrame(conn: number, address: string, port: number, buf: Buffer, off: number, len: number, now: number): void {
    let s = this.tcpSessions.get(conn);
    if (!s) {
      const clear = this.wrap.unwrap(buf.subarray(off, off + len), now);
      if (clear instanceof Error) {
        this.counters.wrapDrops++;
        this.log.debug({ peer: `${address}:${port}`, len }, 'dropped tcp connection: first frame without a valid tls-auth / tls-crypt wrapper');
        this.emit({ kind: 'closeConnection', conn, abort: true });
        return;
      }
      if (!this.factory.isInitialPacket(clear)) {
        this.counters.garbageDrops++;
        this.log.debug({ peer: `${address}:${port}`, len }, 'dropped tcp connection: first frame is not an initial packet');
        this.emit({ kind: 'closeConnection', conn, abort: true });
        return;
      }
      const created = this.newSession('tcp', address, port, conn, now);
      if (!created) {
        this.emit({ kind: 'closeConnection', conn, abort: true });
        return;
      }
      s = created;
      this.tcpSessions.set(conn, s);
      const open = this.tcpConns.get(conn);
      if (open) open.deadlineMs = Infinity; // its first valid frame came
    }
    if (s.status !== 'open') return;
    if (isDataOpcode(buf[off]!)) {
      this.onData(s, buf, off, len, now);
    } else {
      s.lastRxMs = now;
      // the control core keeps packets past this call (async TLS): give it its own copy
      s.ssl.receiveControl(Buffer.from(buf.subarray(off, off + len)), now);
    }
  }

  // ---------------------------------------------------------------- sessions

  private newSession(
    protocol: SslProtocol,
    addr: string,
    port: number,
    conn: number,
    now: number,
    statelessStart?: { localSid: Buffer; remoteSid: Buffer },
  ): ServerSession | null {
    const remote = `${addr}:${port}`;
    const perSource = this.halfOpenBySource.get(addr) ?? 0;
    if (this.halfOpenCount >= this.limits.maxHalfOpen || perSource >= this.limits.maxHalfOpenPerSource) {
      this.counters.halfOpenRefusals++;
      this.log.debug({ peer: remote, halfOpen: this.halfOpenCount, perSource }, 'session refused: half-open limit');
      return null;
    }
    // a full server still lets a new session negotiate (within the half-open limits above): only an
    // authenticated client can be told why it is refused (AUTH_FAILED,server full in onAuthenticated),
    // and a reconnecting user replaces its own session there instead of being locked out
    const peerId = this.allocPeerId();
    if (peerId < 0) {
      this.counters.maxConnectionRefusals++;
      this.log.warn({ peer: remote }, 'connection refused: no free peer-id');
      return null;
    }
    const id = this.nextSessionId++;
    const log = this.log.child({ peer: remote, proto: protocol, session: id });
    const s = new ServerSession(id, protocol, addr, port, conn, peerId, now, log);
    try {
      s.data = this.dataPaths.create(s, now);
    } catch (err) {
      this.freePeerIds.push(peerId);
      throw err;
    }
    const opts: SslSessionOptions = {
      identity: { ...this.config.identity },
      dataCiphers: [...this.config.dataCiphers],
      renegSec: this.config.renegSec,
      handshakeWindowSec: HANDSHAKE_WINDOW_SEC,
      log,
      now,
      proto: protocol,
      wrap: this.wraps ? this.wraps.session() : plainWrap,
      statelessStart,
      clientCert: needsClientCert(this.authType),
    };
    this.all.add(s);
    s.halfOpen = true;
    this.halfOpenCount++;
    this.halfOpenBySource.set(addr, perSource + 1);
    this.byPeerId[peerId - this.peerIdFirst] = s;
    s.ssl = this.factory.create(opts, peerId, (a) => this.onControlAction(s, a));
    this.counters.sessionsCreated++;
    log.info({ peerId }, 'new client session');
    return s;
  }

  private onControlAction(s: ServerSession, a: SslAction): void {
    this.enter(this.nowMs);
    try {
      switch (a.kind) {
        case 'send':
          this.emit({ kind: 'sendControl', conn: s.conn, to: { family: s.remoteFamily, address: s.remoteAddr, port: s.remotePort }, packet: a.packet });
          break;
        case 'authenticated':
          if (needsPassword(this.authType)) this.checkPassword(s, a.username ?? null, a.password ?? null, a.certCn);
          else this.onAuthenticated(s, a.user, a.certCn);
          break;
        case 'keys': {
          if (s.status !== 'open') break;
          const comp = (a as { compress?: string }).compress;
          s.data.installKey(a, comp === undefined ? KEEP_COMPRESSION : compressionModeOf(comp), this.nowMs);
          s.keyId = a.keyId;
          s.keysInstalled++;
          s.log.info({ keyId: a.keyId, cipher: a.cipher }, 'data channel keys installed');
          break;
        }
        case 'retireKey':
          s.data.retireKey(a.keyId);
          break;
        case 'control':
          if (/^EXIT\b/.test(a.text)) {
            s.log.info({}, 'client sent EXIT');
            this.closeSession(s, 'client exit');
          } else {
            s.log.debug({ text: a.text.slice(0, 64) }, 'control message ignored');
          }
          break;
        case 'closed':
          if (!s.authenticated && !s.refused && s.status === 'open') {
            this.counters.authRefusals++;
            s.log.warn({ reason: a.reason }, 'client refused');
          }
          this.closeSession(s, a.reason);
          break;
      }
    } catch (err) {
      s.log.error({ err, action: a.kind }, 'session action failed; closing it');
      this.closeSession(s, 'internal error');
    }
    const out = this.leave();
    if (this.depth === 0 && out.length > 0) this.onAsync(out);
  }

  /**
   * TLS is up (and the certificate verified for cert+password): the username/password the client
   * sent go to the shell's Authenticator, the session waits for `passwordVerdict`. The username is
   * the session's user (one session per user, leases by user). The password is in the action only.
   */
  private checkPassword(s: ServerSession, username: string | null, password: string | null, certCn: string): void {
    if (s.status !== 'open') return;
    const now = this.nowMs;
    if (!username || password === null) {
      this.refusePassword(s, username ?? '', 'no username/password sent (the client needs --auth-user-pass)', now);
      return;
    }
    if (this.backoff.blocked(s.remoteAddr, now)) {
      this.counters.authBackoffRefusals++;
      this.refusePassword(s, username, 'too many failed logins from this address: refused without a check', now);
      return;
    }
    const check = this.nextAuthCheck++;
    s.authPending = check;
    this.authChecks.set(check, { s, user: username, certCn });
    this.emit({ kind: 'verifyPassword', check, user: username, password, server: this.config.name, source: s.remoteAddr });
  }

  private refusePassword(s: ServerSession, user: string, reason: string, now: number): void {
    this.counters.passwordFailures++;
    this.counters.authRefusals++;
    s.refused = true;
    const blocked = this.backoff.failure(s.remoteAddr, now);
    s.log.warn({ user, source: s.remoteAddr, reason, blocked }, 'password authentication failed');
    s.ssl.reject('');
  }

  private onAuthenticated(s: ServerSession, user: string, certCn: string): void {
    if (s.status !== 'open') return;
    s.user = user;
    s.certCn = certCn;
    if (s.protocol === 'udp' && this.udpPending.get(s.remote) === s) {
      // authenticated: now it replaces the session it shared an address:port with
      this.udpPending.delete(s.remote);
      const live = this.udpSessions.get(s.remote);
      if (live && live !== s) {
        live.log.info({}, 'client restarted its session from the same address');
        this.closeSession(live, 'client started a new session');
      }
      this.udpSessions.set(s.remote, s);
    }
    const denied = this.admit ? this.admit(user, certCn) : null;
    if (denied !== null) {
      this.counters.authRefusals++;
      this.refuse(s, user, denied, {});
      return;
    }
    const mine = this.byUser.get(user) ?? [];
    if (mine.length >= this.sessionsPerUser) {
      if (this.onExtraSession === 'refuse') {
        this.counters.sessionLimitRefusals++;
        this.refuse(s, user, `${REFUSED_SESSION_LIMIT} (${this.sessionsPerUser})`, { sessions: mine.length });
        return;
      }
      // the oldest sessions make room, as the stock server without duplicate-cn drops the old one
      // (OpenVPN multi.c); each is told (HALT with the reason) so a client still running stops
      // instead of reconnecting and replacing the new session in turn
      for (const old of mine.slice(0, mine.length - this.sessionsPerUser + 1)) {
        this.counters.replacedSessions++;
        old.log.info({ by: s.remote }, REPLACED_BY_NEW_SESSION);
        this.tellAndClose(old, `HALT,${REPLACED_BY_NEW_SESSION}`, REPLACED_BY_NEW_SESSION, this.nowMs);
      }
    }
    if (this.all.size - this.halfOpenCount >= this.config.maxConnections) {
      this.counters.maxConnectionRefusals++;
      this.refuse(s, user, REFUSED_SERVER_FULL, { max: this.config.maxConnections });
      return;
    }
    const leaseId = this.freeLeaseId(user);
    const r = this.leases.acquire(leaseId);
    if (!r.ok) {
      this.counters.poolRefusals++;
      this.refuse(s, user, r.reason, { pool: this.config.clientCidr });
      return;
    }
    s.lease = r.lease;
    s.leaseId = leaseId;
    s.authenticated = true;
    this.leaveHalfOpen(s);
    const list = this.byUser.get(user);
    if (list) list.push(s);
    else this.byUser.set(user, [s]);
    this.byAddress.set(r.lease.addressNum, s);
    if (this.originOf) {
      s.origin = this.originOf(user);
      s.data.setOrigin?.(s.origin);
    }
    s.prefix = parsePrefix(`${r.lease.address}/32`)!;
    s.data.attach(s.prefix, r.lease.address);
    s.ssl.setPush({
      ifconfig: { address: r.lease.address, netmask: this.leases.netmask },
      ifconfigLocal: this.leases.serverAddress,
      routeGateway: this.leases.serverAddress,
      routes: this.pushRoutes,
      dns: [...this.config.dnsServers],
      pingSec: this.pingSec,
      pingRestartSec: this.pingRestartSec,
    });
    s.log.info({ user, address: r.lease.address }, 'client connected');
    if (s.status === 'open') this.emit({ kind: 'sessionUp', peerId: s.peerId, user, address: r.lease.address });
  }

  /**
   * The lease identity for a new session of `user`: the user name for the first (a static address
   * and a reconnect's old address are keyed by it), `user#2`, `user#3`... for further sessions.
   */
  private freeLeaseId(user: string): string {
    const used = new Set((this.byUser.get(user) ?? []).map((x) => x.leaseId));
    if (!used.has(user)) return user;
    for (let i = 2; ; i++) if (!used.has(`${user}#${i}`)) return `${user}#${i}`;
  }

  /**
   * Refuses an authenticated client with a reason it can show: AUTH_FAILED,<reason> on its control
   * channel (the OpenVPN 2.6 client logs "AUTH: Received control message: AUTH_FAILED,<reason>" and
   * stops instead of retrying), then the session closes. This is the one log line of the refusal.
   */
  private refuse(s: ServerSession, user: string, reason: string, detail: Record<string, unknown>): void {
    s.refused = true;
    s.log.warn({ user, reason, ...detail }, 'client refused');
    s.ssl.reject(reason);
  }

  /** Removes a session from every table (idempotent). */
  private closeSession(s: ServerSession, reason: string): void {
    if (s.status === 'closed') return;
    s.status = 'closed';
    this.all.delete(s);
    if (s.authPending !== 0) {
      this.authChecks.delete(s.authPending);
      s.authPending = 0;
    }
    if (s.protocol === 'udp' && this.udpSessions.get(s.remote) === s) this.udpSessions.delete(s.remote);
    if (s.protocol === 'udp' && this.udpPending.get(s.remote) === s) this.udpPending.delete(s.remote);
    this.leaveHalfOpen(s);
    if (this.byPeerId[s.peerId - this.peerIdFirst] === s) {
      this.byPeerId[s.peerId - this.peerIdFirst] = undefined;
      this.freePeerIds.push(s.peerId);
    }
    const list = s.user ? this.byUser.get(s.user) : undefined;
    const at = list ? list.indexOf(s) : -1;
    if (at >= 0) {
      list!.splice(at, 1);
      if (list!.length === 0) this.byUser.delete(s.user);
      this.leases.release(s.leaseId);
    }
    if (s.lease && this.byAddress.get(s.lease.addressNum) === s) this.byAddress.delete(s.lease.addressNum);
    const st = s.data.stats();
    s.data.close();
    this.counters.sessionsClosed++;
    this.counters.closedBytesIn += st.bytesIn;
    this.counters.closedBytesOut += st.bytesOut;
    if (s.lingerUntilMs === 0) this.endControl(s, reason);
    s.log.info({ user: s.user || undefined, reason, bytesIn: st.bytesIn, bytesOut: st.bytesOut, drops: st.drops }, 'client session closed');
    this.emit({ kind: 'sessionDown', peerId: s.peerId, user: s.user, reason });
  }

  /** Ends a closed session's TCP connection and control channel. */
  private endControl(s: ServerSession, reason: string): void {
    if (s.conn >= 0) this.emit({ kind: 'closeConnection', conn: s.conn, abort: false });
    if (s.ssl && s.ssl.state !== 'closed') {
      try {
        s.ssl.close(reason);
      } catch {
        /* ignore */
      }
    }
  }

  private leaveHalfOpen(s: ServerSession): void {
    if (!s.halfOpen) return;
    s.halfOpen = false;
    this.halfOpenCount--;
    const n = (this.halfOpenBySource.get(s.remoteAddr) ?? 1) - 1;
    if (n <= 0) this.halfOpenBySource.delete(s.remoteAddr);
    else this.halfOpenBySource.set(s.remoteAddr, n);
  }

  private forgetConnection(conn: number): void {
    const p = this.tcpConns.get(conn);
    if (p === undefined) return;
    this.tcpConns.delete(conn);
    const addr = p.addr;
    const n = (this.tcpBySource.get(addr) ?? 1) - 1;
    if (n <= 0) this.tcpBySource.delete(addr);
    else this.tcpBySource.set(addr, n);
  }

  private allocPeerId(): number {
    const id = this.freePeerIds.pop();
    if (id !== undefined) return id;
    if (this.nextPeerId >= this.peerIdEnd) return -1;
    return this.nextPeerId++;
  }

  // ---------------------------------------------------------------- data path (per packet)

  private onData(s: ServerSession, buf: Buffer, off: number, len: number, now: number): void {
    if (s.status !== 'open') return;
    const d = s.data;
    const r = d.decrypt(buf, off, len, now);
    this.afterDecrypt(s, r, buf, d.outOff, d.outLen, now);
  }

  private classifyOcc(s: ServerSession, buf: Buffer, off: number, len: number): number {
    if (occOpcode(buf, off, len) === OCC_EXIT) return DATA_OCC_EXIT;
    s.data.countDrop(DROP_OCC_OTHER);
    return DROP_OCC_OTHER;
  }

  private afterDecrypt(s: ServerSession, r: number, buf: Buffer, off: number, len: number, now: number): void {
    if (r === DATA_IP) {
      s.lastRxMs = now;
      if (!s.lease) return; // keys before authentication cannot happen; be safe
      const v = buf[off]! >> 4;
      if (v !== 4 || len < 20) {
        this.counters.ipv6Drops++; // we push no IPv6; the client's router solicitations end here
        return;
      }
      if (buf.readUInt32BE(off + 12) !== s.lease.addressNum) {
        this.counters.badSourceDrops++;
        return;
      }
      const dstNum = buf.readUInt32BE(off + 16);
      if (dstNum !== this.serverAddressNum && prefixContains(this.clientPrefix, buf.subarray(off + 16, off + 20))) {
        const dst = this.byAddress.get(dstNum);
        if (!this.config.clientToClient) {
          this.counters.clientToClientDrops++;
          return;
        }
        if (!dst) {
          this.counters.noClientDrops++;
          return;
        }
        if (dst.status === 'open') dst.data.send(buf, off, len, now);
        return;
      }
      const t = this.tunAction;
      t.peerId = s.peerId;
      t.buf = buf;
      t.off = off;
      t.len = len;
      t.origin = s.origin;
      this.out.push(t);
    } else if (r === DATA_PING) {
      s.lastRxMs = now;
    } else if (r === DATA_OCC_EXIT) {
      s.log.info({}, 'client sent OCC_EXIT');
      this.closeSession(s, 'client exit (OCC)');
    }
    // drops are counted by the session's data path
  }

  // ---------------------------------------------------------------- actions

  private enter(now: number): void {
    if (this.depth++ === 0) this.out.length = 0;
    this.nowMs = now;
  }

  private leave(): SslServerAction[] {
    this.depth--;
    return this.out;
  }

  private emit(a: SslServerAction): void {
    this.out.push(a);
  }
}

function sessionIdOf(s: ServerSession): string {
  return `s${s.id}`;
}

function compressionModeOf(framing: string): CompressionMode {
  if (framing === 'lzo-stub') return COMP_LZO_STUB;
  if (framing === 'stub-v2') return COMP_STUB_V2;
  return COMP_NONE;
}
