/**
 * The SSL VPN server's shell (OpenVPN 2.6 compatible, point-to-cloud): the UDP and TCP sockets, TCP
 * framing, one timer, the address pool, and the data paths the session manager drives. Everything
 * that decides — which session a packet belongs to, admission, floats, leases, inner-packet policy,
 * ping-restart, renegotiation, status — is the pure SslSessionManager (src/ssl/server/); this file
 * carries out the actions it returns.
 *
 * Data channel: each session gets one SslDataPath. With the data plane's SSL offload
 * (DataPlane.sslOffload, the native data plane) the UDP socket is polled by the data plane, and UDP
 * sessions get an OffloadDataPath: their data packets are decrypted and encrypted in C++ and never
 * reach JavaScript; the shell still sees control packets, unknown peer-ids and floats (as datagrams)
 * and OCC / client-to-client plaintext. With the offload a TCP connection's stream is parsed in
 * C++ as well (one sslTcpChunk call per socket read): its session's data packets go to the TUN
 * there, and the shell gets the control frames and plaintext back per chunk, in stream order; its
 * outbound packets are encrypted and framed in C++ too (NativeTcpDataPath), and the shell writes each
 * batch's frames with one socket write (tcpBatchWriter; a data plane that cannot frame leaves that
 * to a JsDataPath, TcpOffloadDataPath). Every session without the
 * offload gets a JsDataPath (the TypeScript DataChannel) whose encrypted packets leave through the
 * transports below: a slot of one sendmmsg batch (NativeUdp/MemoryUdp), a node:dgram datagram, or a
 * TCP frame.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import { VpnError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { bytesToIp, type Prefix } from '../common/ip.js';
import type { PacketBatch } from '../common/batch.js';
import { SSL_TCP_HEAD, SSL_TCP_PLAIN, SSL_TCP_SPILL, SSL_TCP_STRIDE, type SslOffload } from '../dataplane/data-plane.js';
import { AddressPool } from './pools.js';
import { NativeTcpDataPath, OffloadDataPath, TcpOffloadDataPath } from './ssl-offload-path.js';
import { COMP_NONE } from '../ssl/data/compression.js';
import { TcpDeframer, frameForTcp } from '../ssl/wire/tcp-framing.js';
import { TICK_MS, type SslServerConfig } from '../ssl/server/config.js';
import type { ControlSessionFactory } from '../ssl/server/control-session.js';
import {
  JsDataPath,
  type DataPathSession,
  type DataTransport,
  type PacketSink,
  type SslDataPath,
  type SslEndpoint,
} from '../ssl/server/data-path.js';
import { SslSessionManager, type SslClientStatus, type SslServerCounters } from '../ssl/server/session-manager.js';
import type { SslServerAction } from '../ssl/server/actions.js';
import type { Authenticator } from '../ssl/server/authenticator.js';
import { BatchUdpTransport, DgramTransport, TcpTransport, UdpTx, tcpBatchWriter, type BatchUdp } from './ssl-transports.js';

export {
  TICK_MS,
  DEFAULT_PING_SEC,
  DEFAULT_PING_RESTART_SEC,
  HANDSHAKE_WINDOW_SEC,
  SERVER_TIMEOUT_FACTOR,
  type SslProtocol,
  type SslServerConfig,
} from '../ssl/server/config.js';
export { defaultSessionFactory, type ControlSession, type ControlSessionFactory } from '../ssl/server/control-session.js';
export { SslServerCounters, type SslClientStatus } from '../ssl/server/session-manager.js';
export type { PacketSink } from '../ssl/server/data-path.js';
export { TCP_MAX_QUEUED_BYTES, UDP_TX_BATCH, UDP_TX_SLOT, type BatchUdp } from './ssl-transports.js';
export { sslServerConfigFrom } from './ssl-server-config.js';

// --- implementation choices ---
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** The slice of the data plane the SSL server uses (src/dataplane's DataPlane has these). */
export interface TunnelHooks {
  /**
   * an IP packet from a client to the VPC (copied or written before the next event-loop turn);
   * `origin`: the session's origin for the policy stage (DataPlane.writeToTun)
   */
  writeToTun(buf: Buffer, off: number, len: number, origin?: number): void;
  addSinkRoute(prefix: Prefix, sink: PacketSink): void;
  removeSinkRoute(prefix: Prefix): void;
  /** the data plane's SSL VPN offload (DataPlane.sslOffload); absent or null: data channel in TypeScript */
  readonly sslOffload?: SslOffload | null;
}

export interface SslServerOptions {
  config: SslServerConfig;
  log: Logger;
  tunnel: TunnelHooks;
  /** defaults to the real SslSession */
  sessions?: ControlSessionFactory;
  /** ms clock; defaults to Date.now */
  clock?: () => number;
  /** run the interval timer (default true; tests drive `tick(now)` by hand) */
  timer?: boolean;
  /**
   * Batch UDP socket factory (NativeUdp.bind in the daemon, MemoryUdp in tests). Without it UDP uses
   * node:dgram (one datagram per event and per send).
   */
  udpBind?: (address: string, port: number) => BatchUdp;
  /** use the tunnel's SSL offload for UDP sessions when it has one (default true; VPCGW_SSL_NATIVE=0 turns it off) */
  nativeData?: boolean;
  /** checks usernames/passwords (auth type password or cert+password); without one every password login is refused */
  authenticator?: Authenticator | null;
  // -- users: admission after authentication, static addresses, origins --
  /** a reason refuses an authenticated client (disabled user, not allowed here), null admits it */
  admit?: (user: string, certCn: string) => string | null;
  /** user name → the static address (dotted quad) their first session always gets */
  staticAddresses?: ReadonlyMap<string, string>;
  /** the origin of a user's sessions for the data path's policy stage (default 0: none) */
  originOf?: (user: string) => number;
}

export class SslServer {
  readonly config: SslServerConfig;
  readonly pool: AddressPool;
  readonly core: SslSessionManager;
  private readonly log: Logger;
  private readonly tunnel: TunnelHooks;
  private readonly clock: () => number;
  private readonly useTimer: boolean;
  private readonly offload: SslOffload | null;
  private readonly udpBindFactory: ((address: string, port: number) => BatchUdp) | null;
  private readonly authenticator: Authenticator | null;
  private udp: UdpSocket | null = null;
  private bind: BatchUdp | null = null;
  private readonly tx: UdpTx;
  private tcp: TcpServer | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** the offload's index of our UDP socket (-1: not attached) */
  private sslBind = -1;
  private readonly conns = new Map<number, TcpConn>();
  /** chunks of native TCP streams whose data packets wait in the data plane for flushNativeTcp */
  private readonly tcpHeld: Buffer[] = [];
  private tcpFlushScheduled = false;
  private nextConn = 0;
  udpPort = 0;
  tcpPort = 0;

  constructor(opts: SslServerOptions) {
    const c = opts.config;
    this.config = c;
    this.log = opts.log.child({ conn: c.name });
    this.tunnel = opts.tunnel;
    this.clock = opts.clock ?? Date.now;
    this.useTimer = opts.timer ?? true;
    this.udpBindFactory = opts.udpBind ?? null;
    this.authenticator = opts.authenticator ?? null;
    const nativeWanted = (opts.nativeData ?? true) && process.env.VPCGW_SSL_NATIVE !== '0';
    this.offload = nativeWanted ? (opts.tunnel.sslOffload ?? null) : null;
    this.pool = new AddressPool({ name: c.name, cidr: c.clientCidr }, this.log);
    this.core = new SslSessionManager({
      config: c,
      log: this.log,
      leases: this.pool,
      dataPaths: { create: (s, now) => this.createDataPath(s, now) },
      sessions: opts.sessions,
      onAsyncActions: (actions) => this.exec(actions),
      admit: opts.admit,
      originOf: opts.originOf,
    });
    if (opts.staticAddresses) this.pool.setStatic(opts.staticAddresses);
    this.tx = new UdpTx(this.core.counters);
  }

  get counters(): SslServerCounters {
    return this.core.counters;
  }

  get sessionCount(): number {
    return this.core.sessionCount;
  }

  /**
   * Binds the configured sockets and starts the timer. When a socket cannot be bound (a port in
   * use) it closes what it already opened and throws: a failed start leaves nothing listening.
   */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private async open(): Promise<void> {
    const c = this.config;
    if (c.protocols.includes('udp') && this.udpBindFactory) {
      const b = this.udpBindFactory(c.listen, c.port);
      this.bind = b;
      this.tx.bind = b;
      this.udpPort = b.port;
      const off = this.offload;
      if (off && b.fd !== undefined) {
        // the data plane polls the socket: data of known sessions stays in C++
        this.sslBind = off.attachSslUdp(b as BatchUdp & { readonly fd: number }, {
          datagram: (buf, o, len, from) => this.exec(this.core.receiveDatagram(buf.subarray(o, o + len), from.address, from.port, false, this.clock())),
          plaintext: (peerId, buf, o, len) => this.exec(this.core.receivePlaintext(peerId, buf, o, len, this.clock())),
          flush: () => this.tx.flush(),
        });
      } else {
        b.start((batch) => this.onUdpBatch(batch));
      }
    } else if (c.protocols.includes('udp')) {
      const family = c.listen.includes(':') ? 'udp6' : 'udp4';
      const sock = createSocket({ type: family, recvBufferSize: UDP_SOCKET_BUFFER_BYTES, sendBufferSize: UDP_SOCKET_BUFFER_BYTES });
      sock.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));
      sock.on('error', (err) => {
        this.counters.sendErrors++;
        this.log.debug({ err }, 'udp socket error');
      });
      await new Promise<void>((resolve, reject) => {
        const fail = (err: Error) => {
          sock.close();
          reject(err);
        };
        sock.once('error', fail);
        sock.bind(c.port, c.listen, () => {
          sock.off('error', fail);
          resolve();
        });
      });
      this.udp = sock;
      this.udpPort = sock.address().port;
    }
    if (c.protocols.includes('tcp')) {
      const srv = createServer({ noDelay: true }, (s) => this.onTcpConnection(s));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(c.port === 0 ? 0 : c.port, c.listen, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      srv.on('error', (err) => this.log.error({ err }, 'tcp listener error'));
      this.tcp = srv;
      const a = srv.address();
      this.tcpPort = typeof a === 'object' && a ? a.port : 0;
    }
    if (this.useTimer) {
      this.timer = setInterval(() => this.tick(this.clock()), TICK_MS);
      this.timer.unref();
    }
    this.log.info({ udp: this.udp || this.bind ? this.udpPort : null, tcp: this.tcp ? this.tcpPort : null, listen: c.listen, pool: c.clientCidr, dataChannel: this.sslBind >= 0 ? 'native' : 'js' }, 'ssl vpn server listening');
  }

  /** Closes every session, the sockets and the timer. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.exec(this.core.closeAll('server shutdown', this.clock()));
    this.tx.flush();
    if (this.sslBind >= 0) this.offload?.detachSslUdp(this.sslBind);
    this.sslBind = -1;
    this.bind?.close();
    this.bind = null;
    this.tx.bind = null;
    const udp = this.udp;
    this.udp = null;
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
    const tcp = this.tcp;
    this.tcp = null;
    for (const c of this.conns.values()) c.sock.destroy();
    if (tcp) await new Promise<void>((r) => tcp.close(() => r()));
    this.log.info({}, 'ssl vpn server stopped');
  }

  /** One timer tick for every session (public so tests can drive time). */
  tick(now: number): void {
    this.exec(this.core.tick(now));
  }

  /** Sends the queued UDP data datagrams in one batch (sendmmsg with NativeUdp). */
  flushUdp(): void {
    this.tx.flush();
  }

  /** Online clients (and sessions still negotiating). */
  status(): SslClientStatus[] {
    return this.core.status();
  }

  /**
   * Closes one client session now, found by its status id or its user name: the client is told
   * RESTART (it reconnects) or, with `halt`, HALT (it exits), its lease and route go at once.
   * ERR_NOT_FOUND for an unknown client.
   */
  disconnect(client: string, halt = false): { id: string; user: string } {
    const who = this.core.clientOf(client);
    if (!who) throw new VpnError('ERR_NOT_FOUND', `no client "${client}" on VPN server ${this.config.name} (an id from its clients list, or a user name)`);
    this.exec(this.core.disconnect(who.id, halt ? 'HALT' : 'RESTART', this.clock()));
    this.tx.flush();
    return who;
  }

  /**
   * Ends every session of `user` now, telling each client `message` with `reason` (HALT: it exits;
   * RESTART: it reconnects). Returns how many sessions ended.
   */
  endUserSessions(user: string, message: 'RESTART' | 'HALT', reason: string): number {
    const r = this.core.disconnectUser(user, message, reason, this.clock());
    this.exec(r.actions);
    this.tx.flush();
    return r.count;
  }

  /** The users with a session holding an address now. */
  onlineUsers(): string[] {
    return this.core.onlineUsers();
  }

  /**
   * Replaces the static addresses (user → dotted quad) live; users online on an address they may no
   * longer hold (someone else's static address, or not their new one) are told RESTART and reconnect.
   */
  setStaticAddresses(reservations: ReadonlyMap<string, string>): void {
    const misplaced = this.pool.setStatic(reservations);
    // a lease identity is the user, or user#n for their further sessions (SslSessionManager.freeLeaseId)
    for (const user of new Set(misplaced.map((id) => id.replace(/#\d+$/, '')))) {
      this.endUserSessions(user, 'RESTART', 'static address changed');
    }
  }

  /** Asks originOf again for every session (groups or policies changed). */
  refreshOrigins(): void {
    this.core.refreshOrigins();
  }

  /** One line for the gateway status (the shape of status.ts VpnServerStatus), plus the client list. */
  summary(): {
    name: string;
    state: 'DOWN' | 'LISTENING';
    protocols: string[];
    port: number;
    clients: number;
    halfOpen: number;
    tcpConnections: number;
    counters: Record<string, number>;
    sessions: SslClientStatus[];
    authFailures: number;
    bytesIn: number;
    bytesOut: number;
  } {
    const listening = this.udp !== null || this.bind !== null || this.tcp !== null;
    const sessions = this.status();
    const c = this.core.counters;
    // totals since start: closed sessions' bytes plus the online sessions' current counters
    let bytesIn = c.closedBytesIn;
    let bytesOut = c.closedBytesOut;
    for (const x of sessions) {
      bytesIn += x.bytesIn;
      bytesOut += x.bytesOut;
    }
    return {
      name: this.config.name,
      state: listening ? 'LISTENING' : 'DOWN',
      protocols: [...this.config.protocols],
      port: this.udpPort || this.tcpPort || this.config.port,
      clients: sessions.filter((x) => x.virtualAddress !== null).length,
      halfOpen: this.core.halfOpenSessions,
      tcpConnections: this.core.tcpConnections,
      counters: { ...this.core.counters },
      sessions,
      // sessions refused before authentication (bad certificate, no common cipher, ...)
      authFailures: c.authRefusals,
      bytesIn,
      bytesOut,
    };
  }

  // ---------------------------------------------------------------- actions

  /** Carries out what the session manager asked for. */
  private exec(actions: readonly SslServerAction[]): void {
    for (let i = 0; i < actions.length; i++) {
      const a = actions[i]!;
      try {
        switch (a.kind) {
          case 'writeToTun':
            this.tunnel.writeToTun(a.buf, a.off, a.len, a.origin);
            break;
          case 'sendControl':
            this.sendControl(a.conn, a.to, a.packet);
            break;
          case 'closeConnection': {
            const c = this.conns.get(a.conn);
            if (!c) break;
            if (a.abort) {
              c.dead = true;
              c.deframer?.fail('refused');
              c.sock.destroy();
            } else {
              c.sock.end();
            }
            break;
          }
          case 'verifyPassword':
            this.verifyPassword(a.check, a.user, a.password, a.server);
            break;
          case 'sessionUp':
          case 'sessionDown':
            // logged by the session manager, which also hands the session's origin to its data path
            break;
        }
      } catch (err) {
        this.log.error({ err, action: a.kind }, 'ssl server action failed');
      }
    }
  }

  /**
   * Runs a password check off the current call (the verdict comes back on a later turn of the event
   * loop, never inside `exec`: the manager reuses its action array). Errors of the backend refuse
   * the login; the password is not logged.
   */
  private verifyPassword(check: number, user: string, password: string, server: string): void {
    const auth = this.authenticator;
    const verdict = auth
      ? auth.verify(user, password, server).catch((err: unknown) => {
        this.log.warn({ err, user }, 'authenticator failed; login refused');
        return { ok: false, reason: 'authenticator error' };
      })
      : Promise.resolve({ ok: false, reason: 'no authenticator configured' });
    void verdict.then((v) => this.exec(this.core.passwordVerdict(check, v.ok, v.reason, this.clock())));
  }

  private sendControl(conn: number, to: SslEndpoint, pkt: Buffer): void {
    if (conn >= 0) {
      const c = this.conns.get(conn);
      if (c && !c.sock.destroyed) c.sock.write(frameForTcp(pkt));
    } else if (this.bind) {
      if (!this.bind.sendTo(pkt, to.family, to.address, to.port)) this.counters.sendErrors++;
    } else if (this.udp) {
      this.udp.send(pkt, to.port, to.address);
    }
  }

  /** The data path of a new session: the offload's twin for UDP when it is attached, else a JsDataPath. */
  private createDataPath(s: DataPathSession, now: number): SslDataPath {
    const off = this.offload;
    const remote: SslEndpoint = { family: s.remoteFamily, address: s.remoteAddr, port: s.remotePort };
    if (s.protocol === 'udp' && off && this.sslBind >= 0) {
      const ok = off.installSslSession(s.peerId, {
        bind: this.sslBind,
        remote,
        compression: COMP_NONE,
        clientPrefix: this.pool.prefix,
        serverAddress: this.pool.serverAddress,
        // the user is not known yet: the session manager sets the origin once it authenticates
        origin: 0,
      });
      if (ok) return new OffloadDataPath(off, s.peerId, this.sslBind, now);
      off.removeSslSession(s.peerId);
      this.log.warn({ peer: `${s.remoteAddr}:${s.remotePort}`, peerId: s.peerId }, 'native data channel refused the client address; using the JS data channel');
    }
    let t: DataTransport;
    if (s.protocol === 'tcp') {
      const c = this.conns.get(s.conn)!;
      const js = (): JsDataPath => new JsDataPath(s.peerId, now, new TcpTransport(c.sock, this.core.counters, this.clock), this.tunnel);
      if (!c.native || !off) return js();
      // the stream's data packets are decrypted natively (no UDP socket: installSslSession says the
      // remote is unusable for sending, which a TCP session never does through the offload)
      off.installSslSession(s.peerId, {
        bind: -1,
        remote,
        compression: COMP_NONE,
        clientPrefix: this.pool.prefix,
        serverAddress: this.pool.serverAddress,
        origin: 0,
      });
      off.bindSslTcp!(s.conn, s.peerId);
      c.peerId = s.peerId;
      // the send side too when the data plane can frame for the stream; else the JsDataPath sends
      if (off.setSslTcpWriter?.(s.peerId, tcpBatchWriter(c.sock, this.core.counters))) return new NativeTcpDataPath(off, s.peerId, now);
      return new TcpOffloadDataPath(off, s.peerId, js(), now);
    }
    if (this.bind) t = new BatchUdpTransport(this.tx, remote, this.clock);
    else t = new DgramTransport(() => this.udp, remote, this.clock);
    return new JsDataPath(s.peerId, now, t, this.tunnel);
  }

  // ---------------------------------------------------------------- UDP and TCP input

  private onUdp(msg: Buffer, rinfo: RemoteInfo): void {
    this.exec(this.core.receiveDatagram(msg, rinfo.address, rinfo.port, true, this.clock()));
  }

  private onUdpBatch(b: PacketBatch): void {
    const now = this.clock();
    for (let i = 0; i < b.count; i++) {
      const fam = b.family[i]!;
      const addr = bytesToIp(b.addr.subarray(i * 16, i * 16 + (fam === 6 ? 16 : 4)));
      const off = b.off[i]!;
      this.exec(this.core.receiveDatagram(b.buf.subarray(off, off + b.len[i]!), addr, b.port[i]!, false, now));
    }
    this.tx.flush();
  }

  private onTcpConnection(sock: TcpSocket): void {
    const addr = sock.remoteAddress ?? '?';
    const port = sock.remotePort ?? 0;
    const conn = this.nextConn++;
    const off = this.offload;
    // with the data plane's TCP support the stream framing and data packets stay in C++ from the
    // first byte; the control channel's frames come back per chunk (onNativeTcpChunk)
    const native = off !== null && off.openSslTcp !== undefined && off.sslTcpChunk !== undefined && off.openSslTcp(conn);
    const c = new TcpConn(sock, addr, port, native);
    this.conns.set(conn, c);
    if (native) {
      sock.on('data', (chunk: Buffer) => {
        if (!c.dead) this.onNativeTcpChunk(conn, c, chunk);
      });
    } else {
      const deframer = new TcpDeframer((buf, o, len) => {
        if (c.dead) return;
        this.exec(this.core.receiveFrame(conn, addr, port, buf, o, len, this.clock()));
      });
      c.deframer = deframer;
      sock.on('data', (chunk: Buffer) => {
        if (!deframer.push(chunk) && !c.dead) this.tcpBroken(c, deframer.failed);
      });
    }
    sock.on('error', (err) => this.log.debug({ peer: `${addr}:${port}`, err }, 'tcp socket error'));
    sock.on('close', () => {
      this.conns.delete(conn);
      c.dead = true;
      if (native) off!.closeSslTcp?.(conn);
      this.exec(this.core.connectionClosed(conn, this.clock()));
    });
    // the core caps connections (total, per source) and times out those without a valid first frame
    this.exec(this.core.connectionOpened(conn, addr, port, this.clock()));
  }

  /**
   * One chunk of a native TCP stream: the session's data packets went to the TUN inside
   * sslTcpChunk; what it listed (control frames, other opcodes, OCC and client-to-client plaintext)
   * goes to the session manager here, in stream order.
   */
  private onNativeTcpChunk(conn: number, c: TcpConn, chunk: Buffer): void {
    const off = this.offload!;
    // the chunk's data packets stay queued in place until the flush at the end of this turn
    this.tcpHeld.push(chunk);
    if (!this.tcpFlushScheduled) {
      this.tcpFlushScheduled = true;
      setImmediate(this.flushNativeTcp);
    }
    const list = off.sslTcpList!;
    const end = chunk.length;
    const now = this.clock();
    let pos = 0;
    while (pos < end && !c.dead) {
      const n = off.sslTcpChunk!(conn, chunk, pos, end - pos);
      if (n < 0) {
        // the data plane closed under the connection (shutdown): nothing can carry it any more
        c.dead = true;
        c.sock.destroy();
        return;
      }
      const next = list[0]!;
      const broken = list[1] === 1;
      for (let i = 0; i < n && !c.dead; i++) {
        const k = SSL_TCP_HEAD + i * SSL_TCP_STRIDE;
        const kind = list[k + 2]!;
        let buf = chunk;
        let o = list[k]!;
        const len = list[k + 1]!;
        if ((kind & SSL_TCP_SPILL) !== 0) {
          // a packet that crossed chunks (at most one per chunk): a copy the core may keep
          buf = Buffer.from(off.sslTcpSpill!.subarray(o, o + len));
          o = 0;
        }
        if ((kind & SSL_TCP_PLAIN) !== 0) this.exec(this.core.receivePlaintext(c.peerId, buf, o, len, now));
        else this.exec(this.core.receiveFrame(conn, c.addr, c.port, buf, o, len, now));
      }
      if (broken) {
        if (!c.dead) this.tcpBroken(c, 'bad frame length');
        return;
      }
      pos = next;
    }
  }

  /** Writes the data packets of this turn's native TCP reads to the TUN, then lets their chunks go. */
  private readonly flushNativeTcp = (): void => {
    this.tcpFlushScheduled = false;
    this.offload?.flushSslTcp?.();
    this.tcpHeld.length = 0;
  };

  /** The stream carried an impossible length: count it and close the connection (as OpenVPN does). */
  private tcpBroken(c: TcpConn, reason: string | null): void {
    c.dead = true;
    this.counters.garbageDrops++;
    this.log.debug({ peer: `${c.addr}:${c.port}`, reason }, 'tcp stream broken');
    c.sock.destroy();
  }
}

class TcpConn {
  dead = false;
  /** the session whose data packets the native stream carries (-1: none yet) */
  peerId = -1;
  /** the JavaScript stream parser (streams not in the data plane) */
  deframer: TcpDeframer | null = null;
  constructor(
    readonly sock: TcpSocket,
    readonly addr: string,
    readonly port: number,
    /** the stream runs in the data plane (SslOffload.sslTcpChunk), else in TcpDeframer */
    readonly native: boolean,
  ) {}
}
