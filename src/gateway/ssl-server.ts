/**
 * The SSL VPN server shell (OpenVPN 2.6 compatible, point-to-cloud): sockets, the session table,
 * the address pool, routing between clients and the VPC, and one timer. The protocol work is done by
 * the pure cores: SslSession (control channel, src/ssl/session.ts) and DataChannel (src/ssl/data).
 *
 * Inbound (client → VPC):
 *  1. UDP datagram (sessions keyed by addr:port; P_DATA_V2 may also be matched by peer-id, so a client
 *     whose address changed "floats") or TCP frame (TcpDeframer; one connection = one session)
 *  2. data opcodes → DataChannel.decrypt in place → ping / OCC exit / IP packet
 *  3. IP packet: source must be the client's virtual address; destination inside clientCidr → another
 *     client's sink (only with clientToClient) or dropped; anything else → tunnel.writeToTun
 *  4. control opcodes → SslSession.receiveControl; an unknown remote must start with a valid initial
 *     packet (hard reset), anything else is a counted drop without a session
 *
 * Outbound (VPC → client): the data plane routes the client's /32 to the session's PacketSink, which
 * encrypts (DataChannel.encrypt) into a fresh buffer and sends it (UDP datagram / TCP frame).
 *
 * Native data channel: when the tunnel is the native data plane (it has `attachSslUdp`), the UDP
 * socket is polled by the data plane instead, and each UDP session gets a native twin keyed by
 * peer-id (keys, virtual address, /32 route). Data packets of known sessions are then decrypted
 * and encrypted in C++ and never reach JS; JS still sees control packets, unknown peer-ids and
 * floats (as datagrams, through the same `onDatagram`), OCC and client-to-client plaintext, and
 * reads the counters once per tick (ping-restart, keepalive pings, status). TCP sessions and the
 * TypeScript data plane keep the DataChannel path.
 *
 * Timers: one interval ticks every session (control retransmits and deadlines, keepalive pings,
 * ping-restart expiry at twice the pushed ping-restart, like the stock server).
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import { readFileSync } from 'node:fs';
import type { Logger } from '../common/log.js';
import { ConfigError } from '../common/errors.js';
import { bytesToIp, parseIp, parsePrefix, prefixContains, type Prefix } from '../common/ip.js';
import { PacketBatch } from '../common/batch.js';
import type { UdpBind } from '../net/udp-bind.js';
import { AddressPool } from './pools.js';
import { SslSession, type SslAction, type SslSessionOptions, type PushParams } from '../ssl/session.js';
import {
  DataChannel,
  DATA_IP,
  DATA_OCC_EXIT,
  DATA_PING,
  DATA_MAX_OVERHEAD,
} from '../ssl/data/data-channel.js';
import { COMP_LZO_STUB, COMP_NONE, COMP_STUB_V2, type CompressionMode } from '../ssl/data/compression.js';
import { isDataOpcode, opcodeOf, P_DATA_V2, PEER_ID_MAX } from '../ssl/wire/data-packet.js';
import { TcpDeframer, TCP_LENGTH_SIZE, writeTcpLength, frameForTcp } from '../ssl/wire/tcp-framing.js';
import { isSupportedDataCipher } from '../ssl/data/data-aead.js';
import { DROP_NO_KEY, DROP_OCC_OTHER, PACKET_ID_RENEG_THRESHOLD } from '../ssl/data/data-channel.js';
import { OCC_EXIT, occOpcode } from '../ssl/data/special.js';
import type { Endpoint } from '../dataplane/data-plane.js';
import type { SslDatagramHandler, SslKeyMaterial, SslSessionCounters, SslSessionParams } from '../dataplane/native-data-plane.js';

// --- implementation choices ---
export const TICK_MS = 250;
export const DEFAULT_PING_SEC = 10;
export const DEFAULT_PING_RESTART_SEC = 60;
export const HANDSHAKE_WINDOW_SEC = 60;
/** the stock server drops a silent client after twice the pushed ping-restart */
export const SERVER_TIMEOUT_FACTOR = 2;
/** TCP output queue above which data packets are dropped rather than buffered */
export const TCP_MAX_QUEUED_BYTES = 4 * 1024 * 1024;
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** The slice of the data plane the SSL server uses (src/dataplane's DataPlane has these). */
export interface PacketSink {
  push(buf: Buffer, off: number, len: number): void;
  flush(): void;
}
export interface TunnelHooks {
  /** an IP packet from a client to the VPC (copied or written before the next event-loop turn) */
  writeToTun(buf: Buffer, off: number, len: number): void;
  addSinkRoute(prefix: Prefix, sink: PacketSink): void;
  removeSinkRoute(prefix: Prefix): void;
}

/**
 * The native data plane's SSL VPN side (NativeDataPlane has it; see its methods): with it, UDP
 * sessions' data packets are handled in C++ (results: OVPN_IP 0, OVPN_PING 1, OVPN_OCC 2, else a drop).
 */
export interface NativeSslTunnel {
  attachSslUdp(bind: UdpBind & { readonly fd: number }, handler: SslDatagramHandler): number;
  detachSslUdp(bind: number): void;
  installSslSession(peerId: number, p: SslSessionParams): boolean;
  setSslRemote(peerId: number, bind: number, remote: Endpoint): boolean;
  setSslVirtualAddress(peerId: number, address: string | null): boolean;
  setSslCompression(peerId: number, mode: number): boolean;
  setSslKey(peerId: number, k: SslKeyMaterial): boolean;
  retireSslKey(peerId: number, keyId: number): boolean;
  removeSslSession(peerId: number): boolean;
  addSslRoute(prefix: Prefix, peerId: number): void;
  removeSslRoute(prefix: Prefix): boolean;
  sslCounters(peerId: number): SslSessionCounters | undefined;
  sendSslPing(peerId: number): boolean;
  sslSend(peerId: number, buf: Buffer, off: number, len: number): boolean;
  sslDecrypt(peerId: number, buf: Buffer, off: number, len: number): number;
  readonly sslSpan: Uint32Array;
}

function nativeSslOf(t: TunnelHooks): NativeSslTunnel | null {
  const n = t as Partial<NativeSslTunnel>;
  return typeof n.attachSslUdp === 'function' && typeof n.installSslSession === 'function' ? (t as unknown as NativeSslTunnel) : null;
}

// native data-channel results (src/native/core/ovpn.h)
const OVPN_IP = 0;
const OVPN_PING = 1;
const OVPN_OCC = 2;

export type SslProtocol = 'udp' | 'tcp';

/** Frozen server config (see `sslServerConfigFrom` for building it from the gateway's YAML model). */
export interface SslServerConfig {
  readonly name: string;
  readonly protocols: readonly SslProtocol[];
  readonly port: number;
  readonly listen: string;
  readonly clientCidr: string;
  readonly localSubnets: readonly string[];
  readonly dnsServers: readonly string[];
  readonly dataCiphers: readonly string[];
  readonly identity: Readonly<{ cert: string; key: string; clientCa: string }>; // PEM text
  readonly maxConnections: number;
  readonly clientToClient: boolean;
  readonly renegSec: number;
  readonly pingSec?: number;
  readonly pingRestartSec?: number;
}

/** The control-channel core as the shell uses it (SslSession; a fake in unit tests). */
export interface ControlSession {
  receiveControl(pkt: Buffer, now: number): void;
  tick(now: number): void;
  nextDeadline(): number;
  setPush(p: PushParams): void;
  reject(reason: string): void;
  sendControlText(t: string): void;
  close(reason: string): void;
  /** starts a server-side renegotiation (SOFT_RESET); false if one is under way */
  renegotiate?(now: number): boolean;
  readonly state: string;
}
export interface ControlSessionFactory {
  isInitialPacket(pkt: Buffer): boolean;
  create(opts: SslSessionOptions, peerId: number, onAction: (a: SslAction) => void): ControlSession;
}
export const defaultSessionFactory: ControlSessionFactory = {
  isInitialPacket: (pkt) => SslSession.isInitialPacket(pkt),
  create: (opts, peerId, onAction) => new SslSession(opts, peerId, onAction),
};

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
  /**
   * Use the tunnel's native data channel for UDP sessions when it has one (default true;
   * VPCGW_SSL_NATIVE=0 turns it off).
   */
  nativeData?: boolean;
}

/** A UdpBind with the single-datagram control-plane send (NativeUdp and MemoryUdp have it). */
export interface BatchUdp extends UdpBind {
  sendTo(data: Uint8Array, family: 4 | 6, addr: Uint8Array | string, port: number): boolean;
}

/** outgoing data datagrams per sendmmsg batch */
export const UDP_TX_BATCH = 64;
export const UDP_TX_SLOT = 2048;

export interface SslClientStatus {
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
}

export class SslServerCounters {
  sessionsCreated = 0;
  sessionsClosed = 0;
  garbageDrops = 0; // packets from unknown remotes that are not an initial packet
  maxConnectionRefusals = 0;
  poolRefusals = 0;
  authRefusals = 0; // sessions closed before authentication (bad cert, no common cipher, ...)
  noSessionDataDrops = 0;
  badSourceDrops = 0;
  ipv6Drops = 0;
  clientToClientDrops = 0;
  noClientDrops = 0; // client-to-client to an address nobody holds
  tcpBackpressureDrops = 0;
  sendErrors = 0;
  replacedSessions = 0;
}

type Closer = 'closed' | 'open';

class ClientSession implements PacketSink {
  user = '';
  certCn = '';
  lease: { address: string; addressNum: number } | null = null;
  prefix: Prefix | null = null;
  ssl!: ControlSession;
  readonly data: DataChannel;
  lastRxMs: number;
  status: Closer = 'open';
  authenticated = false;
  /** the client's control-channel session id (bytes 1..8 of its hard reset), UDP only */
  clientSid: Buffer | null = null;
  /** the remote address in network order (16 bytes, IPv4 in the first 4) and its family, for batch sends */
  readonly remoteBytes = Buffer.alloc(16);
  remoteFamily: 4 | 6 = 4;
  readonly log: Logger;
  /** the data channel runs in the native data plane (UDP on a native tunnel) */
  native = false;
  nativeCipher = '';
  /** native counters seen at the last tick: packets in (any), packets out (any), and when out changed */
  nativeRx = 0;
  nativeTx = 0;
  nativeTxMs = 0;

  constructor(
    readonly server: SslServer,
    readonly id: number,
    readonly protocol: SslProtocol,
    public remoteAddr: string,
    public remotePort: number,
    readonly tcp: TcpSocket | null,
    readonly peerId: number,
    readonly createdMs: number,
    log: Logger,
  ) {
    this.data = new DataChannel({ peerId }, createdMs);
    this.lastRxMs = createdMs;
    this.nativeTxMs = createdMs;
    this.log = log;
    this.setRemote(remoteAddr, remotePort);
  }

  setRemote(addr: string, port: number): void {
    this.remoteAddr = addr;
    this.remotePort = port;
    const ip = parseIp(addr);
    this.remoteBytes.fill(0);
    if (ip) {
      ip.bytes.copy(this.remoteBytes);
      this.remoteFamily = ip.family;
    }
  }

  get remote(): string {
    return `${this.remoteAddr}:${this.remotePort}`;
  }

  /** PacketSink: an IP packet for this client (from the data plane or another client). */
  push(buf: Buffer, off: number, len: number): void {
    this.server.sendData(this, buf, off, len);
  }

  flush(): void {
    // batch UDP: send what this batch queued; dgram and TCP send each packet at once
    if (!this.tcp) this.server.flushUdp();
  }
}

export class SslServer {
  readonly config: SslServerConfig;
  readonly counters = new SslServerCounters();
  readonly pool: AddressPool;
  private readonly log: Logger;
  private readonly tunnel: TunnelHooks;
  private readonly factory: ControlSessionFactory;
  private readonly clock: () => number;
  private readonly useTimer: boolean;
  private readonly clientPrefix: Prefix;
  /** the server's tunnel address (.1): packets to it go to the TUN like VPC traffic */
  private readonly serverAddressNum: number;
  private readonly pushRoutes: { network: string; netmask: string }[];
  private readonly pingSec: number;
  private readonly pingRestartSec: number;
  private udp: UdpSocket | null = null;
  private bind: BatchUdp | null = null;
  private readonly udpBindFactory: ((address: string, port: number) => BatchUdp) | null;
  private readonly tx = new PacketBatch(UDP_TX_BATCH, UDP_TX_SLOT, 0);
  private txScheduled = false;
  private readonly flushUdpSoon = (): void => {
    this.txScheduled = false;
    this.flushUdp();
  };
  private tcp: TcpServer | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** the native data channel (null: DataChannel in JS) and our socket's bind index in it */
  private readonly nativeSsl: NativeSslTunnel | null;
  private sslBind = -1;
  /** where decryptFor left the payload */
  private dOff = 0;
  private dLen = 0;
  private nextSessionId = 1;
  /** UDP sessions by "addr:port" */
  private readonly udpSessions = new Map<string, ClientSession>();
  private readonly all = new Set<ClientSession>();
  private readonly byPeerId: (ClientSession | undefined)[] = [];
  private readonly freePeerIds: number[] = [];
  private nextPeerId = 0;
  private readonly byUser = new Map<string, ClientSession>();
  private readonly byAddress = new Map<number, ClientSession>();
  private readonly tcpSockets = new Set<TcpSocket>();
  udpPort = 0;
  tcpPort = 0;

  constructor(opts: SslServerOptions) {
    const c = opts.config;
    this.config = c;
    this.log = opts.log.child({ conn: c.name });
    this.tunnel = opts.tunnel;
    this.factory = opts.sessions ?? defaultSessionFactory;
    this.clock = opts.clock ?? Date.now;
    this.useTimer = opts.timer ?? true;
    this.udpBindFactory = opts.udpBind ?? null;
    const nativeWanted = (opts.nativeData ?? true) && process.env.VPCGW_SSL_NATIVE !== '0';
    this.nativeSsl = nativeWanted ? nativeSslOf(opts.tunnel) : null;
    this.pool = new AddressPool({ name: c.name, cidr: c.clientCidr }, this.log);
    this.clientPrefix = this.pool.prefix;
    this.serverAddressNum = this.pool.prefix.bytes.readUInt32BE(0) + 1;
    this.pushRoutes = c.localSubnets.map((s, i) => {
      const p = parsePrefix(s);
      if (!p || p.family !== 4) throw new ConfigError(`vpnServers.${c.name}.localSubnets[${i}]`, s, 'an IPv4 CIDR');
      return { network: bytesToIp(p.bytes), netmask: lenToMask(p.len) };
    });
    for (const [i, name] of c.dataCiphers.entries()) {
      if (!isSupportedDataCipher(name)) throw new ConfigError(`vpnServers.${c.name}.dataCiphers[${i}]`, name, 'AES-128-GCM, AES-256-GCM or CHACHA20-POLY1305');
    }
    this.pingSec = c.pingSec ?? DEFAULT_PING_SEC;
    this.pingRestartSec = c.pingRestartSec ?? DEFAULT_PING_RESTART_SEC;
  }

  /** Binds the configured sockets and starts the timer. */
  async start(): Promise<void> {
    const c = this.config;
    if (c.protocols.includes('udp') && this.udpBindFactory) {
      const b = this.udpBindFactory(c.listen, c.port);
      this.bind = b;
      this.udpPort = b.port;
      const nat = this.nativeSsl;
      if (nat && typeof (b as { fd?: unknown }).fd === 'number') {
        // the data plane polls the socket: data of known sessions stays in C++
        this.sslBind = nat.attachSslUdp(b as BatchUdp & { fd: number }, {
          datagram: (buf, off, len, from) => this.onDatagram(buf.subarray(off, off + len), from.address, from.port, false, this.clock()),
          plaintext: (peerId, buf, off, len) => this.onNativePlaintext(peerId, buf, off, len),
          flush: () => this.flushUdp(),
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
        this.log.debug({ err: err.message }, 'udp socket error');
      });
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(c.port, c.listen, () => {
          sock.off('error', reject);
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
      srv.on('error', (err) => this.log.error({ err: err.message }, 'tcp listener error'));
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
    for (const s of [...this.all]) {
      try {
        s.ssl.sendControlText('RESTART');
      } catch {
        /* closing anyway */
      }
      this.closeSession(s, 'server shutdown');
    }
    this.flushUdp();
    if (this.sslBind >= 0) this.nativeSsl?.detachSslUdp(this.sslBind);
    this.sslBind = -1;
    this.bind?.close();
    this.bind = null;
    const udp = this.udp;
    this.udp = null;
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
    const tcp = this.tcp;
    this.tcp = null;
    for (const s of this.tcpSockets) s.destroy();
    if (tcp) await new Promise<void>((r) => tcp.close(() => r()));
    this.log.info({}, 'ssl vpn server stopped');
  }

  /** One timer tick for every session (public so tests can drive time). */
  tick(now: number): void {
    const timeoutMs = SERVER_TIMEOUT_FACTOR * this.pingRestartSec * 1000;
    for (const s of this.all) {
      try {
        if (s.status !== 'open') continue;
        if (now >= s.ssl.nextDeadline()) s.ssl.tick(now);
        if (s.status !== 'open') continue;
        if (s.authenticated && now - s.lastRxMs > timeoutMs) {
          this.closeSession(s, `ping-restart: nothing received for ${Math.round((now - s.lastRxMs) / 1000)} s`);
          continue;
        }
        if (s.native) {
          this.tickNative(s, now);
          continue;
        }
        if (s.data.pingDue(now, this.pingSec)) this.sendPing(s, now);
        // brief §6.3: never let the data packet-id wrap; renegotiate well before (OpenVPN: 0xFF000000)
        if (s.data.needsRenegotiation && s.ssl.renegotiate) s.ssl.renegotiate(now);
      } catch (err) {
        s.log.error({ err: (err as Error).message }, 'session tick failed; closing it');
        this.closeSession(s, 'internal error');
      }
    }
  }

  /**
   * A native session's tick: what it received/sent since the last tick (from the counters) drives
   * ping-restart and keepalive pings; the packet-id drives renegotiation.
   */
  private tickNative(s: ClientSession, now: number): void {
    const c = this.nativeSsl!.sslCounters(s.peerId);
    if (!c) return;
    if (c.rxPackets !== s.nativeRx) {
      s.nativeRx = c.rxPackets;
      s.lastRxMs = now;
    }
    const tx = c.txPackets + c.pingsOut;
    if (tx !== s.nativeTx) {
      s.nativeTx = tx;
      s.nativeTxMs = now;
    }
    if (this.pingSec > 0 && c.sendKeyId >= 0 && now - s.nativeTxMs >= this.pingSec * 1000) {
      this.sendPing(s, now);
      s.nativeTxMs = now;
    }
    // brief §6.3: never let the data packet-id wrap; renegotiate well before (OpenVPN: 0xFF000000)
    if (c.sendKeyId >= 0 && c.sendPacketId >= PACKET_ID_RENEG_THRESHOLD && s.ssl.renegotiate) s.ssl.renegotiate(now);
  }

  /** A session's data-channel figures: the native counters (plus JS-side drops) or the DataChannel's. */
  private dataStats(s: ClientSession): { cipher: string; bytesIn: number; bytesOut: number; packetsIn: number; packetsOut: number; drops: Record<string, number> } {
    const st = s.data.stats;
    const c = s.native ? this.nativeSsl!.sslCounters(s.peerId) : undefined;
    if (!c) {
      return { cipher: s.native ? s.nativeCipher : s.data.cipher, bytesIn: st.rxBytes, bytesOut: st.txBytes, packetsIn: st.rxPackets - st.pingsIn, packetsOut: st.txPackets, drops: st.dropsByName() };
    }
    const drops = { ...c.drops };
    for (const [k, v] of Object.entries(st.dropsByName())) drops[k] = (drops[k] ?? 0) + v;
    return { cipher: s.nativeCipher, bytesIn: c.rxBytes, bytesOut: c.txBytes, packetsIn: c.rxPackets - c.pingsIn, packetsOut: c.txPackets, drops };
  }

  /** Online clients (and sessions still negotiating). */
  status(): SslClientStatus[] {
    const out: SslClientStatus[] = [];
    for (const s of this.all) {
      const st = this.dataStats(s);
      out.push({
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
      });
    }
    return out;
  }

  /** One line for the gateway status (the shape of status.ts VpnServerStatus), plus the client list. */
  summary(): { name: string; state: 'DOWN' | 'LISTENING'; protocols: string[]; port: number; clients: number; sessions: SslClientStatus[] } {
    const listening = this.udp !== null || this.bind !== null || this.tcp !== null;
    const sessions = this.status();
    return {
      name: this.config.name,
      state: listening ? 'LISTENING' : 'DOWN',
      protocols: [...this.config.protocols],
      port: this.udpPort || this.tcpPort || this.config.port,
      clients: sessions.filter((x) => x.virtualAddress !== null).length,
      sessions,
    };
  }

  get sessionCount(): number {
    return this.all.size;
  }

  // ---------------------------------------------------------------- UDP

  private onUdp(msg: Buffer, rinfo: RemoteInfo): void {
    this.onDatagram(msg, rinfo.address, rinfo.port, true, this.clock());
  }

  private onUdpBatch(b: PacketBatch): void {
    const now = this.clock();
    for (let i = 0; i < b.count; i++) {
      const fam = b.family[i]!;
      const addr = bytesToIp(b.addr.subarray(i * 16, i * 16 + (fam === 6 ? 16 : 4)));
      const off = b.off[i]!;
      this.onDatagram(b.buf.subarray(off, off + b.len[i]!), addr, b.port[i]!, false, now);
    }
    this.flushUdp();
  }

  /**
   * One datagram. `owned`: the buffer is ours to keep (dgram); batch slots are reused after the
   * batch, so control packets are copied before they go to the (asynchronous) control core.
   */
  private onDatagram(msg: Buffer, address: string, port: number, owned: boolean, now: number): void {
    try {
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
          const cand = this.byPeerId[peerId];
          if (cand && cand.protocol === 'udp' && cand.status === 'open') {
            const r = this.decryptFor(cand, msg, 0, msg.length, now);
            if (r <= DATA_OCC_EXIT) {
              this.udpSessions.delete(cand.remote);
              cand.log.info({ from: cand.remote, to: key }, 'client address changed (float)');
              cand.setRemote(address, port);
              if (cand.native) this.nativeSsl!.setSslRemote(cand.peerId, this.sslBind, { family: cand.remoteFamily, address, port });
              this.udpSessions.set(key, cand);
              this.afterDecrypt(cand, r, msg, this.dOff, this.dLen, now);
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
      if (s && s.clientSid !== null && this.factory.isInitialPacket(msg) && !msg.subarray(1, 9).equals(s.clientSid)) {
        // a new hard reset with a new session id from the same addr:port: the client restarted
        s.log.info({}, 'client restarted its session from the same address');
        this.closeSession(s, 'client started a new session');
        s = undefined;
      }
      if (!s) {
        if (!this.factory.isInitialPacket(msg)) {
          this.counters.garbageDrops++;
          this.log.debug({ peer: key, len: msg.length, byte0: msg[0] }, 'dropped: not an initial packet from an unknown remote');
          return;
        }
        const created = this.newSession('udp', address, port, null, now);
        if (!created) return;
        created.clientSid = Buffer.from(msg.subarray(1, 9));
        s = created;
        this.udpSessions.set(key, s);
      }
      s.lastRxMs = now;
      s.ssl.receiveControl(owned ? msg : Buffer.from(msg), now);
    } catch (err) {
      this.log.error({ err: (err as Error).message, peer: `${address}:${port}` }, 'udp packet handling failed');
    }
  }

  // ---------------------------------------------------------------- TCP

  private onTcpConnection(sock: TcpSocket): void {
    const addr = sock.remoteAddress ?? '?';
    const port = sock.remotePort ?? 0;
    this.tcpSockets.add(sock);
    let s: ClientSession | null = null;
    let dead = false;
    const deframer = new TcpDeframer((buf, off, len) => {
      if (dead) return;
      const now = this.clock();
      try {
        if (!s) {
          const pkt = buf.subarray(off, off + len);
          if (!this.factory.isInitialPacket(pkt)) {
            this.counters.garbageDrops++;
            this.log.debug({ peer: `${addr}:${port}`, len }, 'dropped tcp connection: first frame is not an initial packet');
            dead = true;
            deframer.fail('not an initial packet');
            sock.destroy();
            return;
          }
          s = this.newSession('tcp', addr, port, sock, now);
          if (!s) {
            dead = true;
            deframer.fail('refused');
            sock.destroy();
            return;
          }
        }
        if (isDataOpcode(buf[off]!)) {
          this.onData(s, buf, off, len, now);
        } else {
          s.lastRxMs = now;
          // the control core keeps packets past this call (async TLS): give it its own copy
          s.ssl.receiveControl(Buffer.from(buf.subarray(off, off + len)), now);
        }
      } catch (err) {
        this.log.error({ err: (err as Error).message, peer: `${addr}:${port}` }, 'tcp frame handling failed');
      }
    });
    sock.on('data', (chunk: Buffer) => {
      if (!deframer.push(chunk) && !dead) {
        dead = true;
        this.counters.garbageDrops++;
        this.log.debug({ peer: `${addr}:${port}`, reason: deframer.failed }, 'tcp stream broken');
        sock.destroy();
      }
    });
    sock.on('error', (err) => this.log.debug({ peer: `${addr}:${port}`, err: err.message }, 'tcp socket error'));
    sock.on('close', () => {
      this.tcpSockets.delete(sock);
      dead = true;
      if (s && s.status === 'open') this.closeSession(s, 'tcp connection closed');
    });
  }

  // ---------------------------------------------------------------- sessions

  private newSession(protocol: SslProtocol, addr: string, port: number, tcp: TcpSocket | null, now: number): ClientSession | null {
    const remote = `${addr}:${port}`;
    if (this.all.size >= this.config.maxConnections) {
      this.counters.maxConnectionRefusals++;
      this.log.warn({ peer: remote, max: this.config.maxConnections }, 'connection refused: maxConnections reached');
      return null;
    }
    const peerId = this.allocPeerId();
    if (peerId < 0) {
      this.counters.maxConnectionRefusals++;
      return null;
    }
    const id = this.nextSessionId++;
    const log = this.log.child({ peer: remote, proto: protocol, session: id });
    const s = new ClientSession(this, id, protocol, addr, port, tcp, peerId, now, log);
    const opts: SslSessionOptions = {
      identity: { ...this.config.identity },
      dataCiphers: [...this.config.dataCiphers],
      renegSec: this.config.renegSec,
      handshakeWindowSec: HANDSHAKE_WINDOW_SEC,
      log,
      now,
      proto: protocol,
    };
    this.all.add(s);
    this.byPeerId[peerId] = s;
    if (protocol === 'udp' && this.sslBind >= 0) {
      s.native = this.nativeSsl!.installSslSession(peerId, {
        bind: this.sslBind,
        remote: { family: s.remoteFamily, address: addr, port },
        compression: COMP_NONE,
        clientPrefix: this.clientPrefix,
        serverAddress: this.pool.serverAddress,
      });
      if (!s.native) {
        this.nativeSsl!.removeSslSession(peerId);
        log.warn({}, 'native data channel refused the client address; using the JS data channel');
      }
    }
    s.ssl = this.factory.create(opts, peerId, (a) => this.onAction(s, a));
    this.counters.sessionsCreated++;
    log.info({ peerId }, 'new client session');
    return s;
  }

  private onAction(s: ClientSession, a: SslAction): void {
    try {
      switch (a.kind) {
        case 'send':
          this.sendControl(s, a.packet);
          break;
        case 'authenticated':
          this.onAuthenticated(s, a.user, a.certCn);
          break;
        case 'keys': {
          if (s.status !== 'open') break;
          const comp = (a as { compress?: string }).compress;
          if (s.native) {
            this.nativeSsl!.setSslKey(s.peerId, a);
            s.nativeCipher = a.cipher.toUpperCase();
            if (comp !== undefined) this.nativeSsl!.setSslCompression(s.peerId, compressionModeOf(comp));
          } else {
            s.data.installKey(a, this.clock());
            if (comp !== undefined) s.data.compression = compressionModeOf(comp);
          }
          s.log.info({ keyId: a.keyId, cipher: a.cipher }, 'data channel keys installed');
          break;
        }
        case 'retireKey':
          if (s.native) this.nativeSsl!.retireSslKey(s.peerId, a.keyId);
          else s.data.retireKey(a.keyId);
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
          if (!s.authenticated && s.status === 'open') {
            this.counters.authRefusals++;
            s.log.warn({ reason: a.reason }, 'client refused');
          }
          this.closeSession(s, a.reason);
          break;
      }
    } catch (err) {
      s.log.error({ err: (err as Error).message, action: a.kind }, 'session action failed; closing it');
      this.closeSession(s, 'internal error');
    }
  }

  private onAuthenticated(s: ClientSession, user: string, certCn: string): void {
    if (s.status !== 'open') return;
    s.user = user;
    s.certCn = certCn;
    const old = this.byUser.get(user);
    if (old && old !== s) {
      this.counters.replacedSessions++;
      old.log.info({ by: s.remote }, 'replaced by a new connection of the same user');
      this.closeSession(old, 'replaced by a new connection of the same user');
    }
    const r = this.pool.acquire(user);
    if (!r.ok) {
      this.counters.poolRefusals++;
      s.log.warn({ user, reason: r.reason }, 'client refused');
      s.ssl.reject(r.reason);
      return;
    }
    s.lease = r.lease;
    s.authenticated = true;
    this.byUser.set(user, s);
    this.byAddress.set(r.lease.addressNum, s);
    s.prefix = parsePrefix(`${r.lease.address}/32`)!;
    if (s.native) {
      this.nativeSsl!.setSslVirtualAddress(s.peerId, r.lease.address);
      this.nativeSsl!.addSslRoute(s.prefix, s.peerId);
    } else {
      this.tunnel.addSinkRoute(s.prefix, s);
    }
    s.ssl.setPush({
      ifconfig: { address: r.lease.address, netmask: this.pool.netmask },
      ifconfigLocal: this.pool.serverAddress,
      routeGateway: this.pool.serverAddress,
      routes: this.pushRoutes,
      dns: [...this.config.dnsServers],
      pingSec: this.pingSec,
      pingRestartSec: this.pingRestartSec,
    });
    s.log.info({ user, address: r.lease.address }, 'client connected');
  }

  /** Removes a session from every table (idempotent). */
  private closeSession(s: ClientSession, reason: string): void {
    if (s.status === 'closed') return;
    s.status = 'closed';
    this.all.delete(s);
    if (this.udpSessions.get(s.remote) === s) this.udpSessions.delete(s.remote);
    if (this.byPeerId[s.peerId] === s) {
      this.byPeerId[s.peerId] = undefined;
      this.freePeerIds.push(s.peerId);
    }
    if (s.user && this.byUser.get(s.user) === s) {
      this.byUser.delete(s.user);
      this.pool.release(s.user);
    }
    if (s.lease && this.byAddress.get(s.lease.addressNum) === s) this.byAddress.delete(s.lease.addressNum);
    if (s.prefix) {
      if (s.native) this.nativeSsl!.removeSslRoute(s.prefix);
      else this.tunnel.removeSinkRoute(s.prefix);
    }
    const st = this.dataStats(s);
    if (s.native) this.nativeSsl!.removeSslSession(s.peerId);
    this.counters.sessionsClosed++;
    if (s.tcp) s.tcp.end();
    if (s.ssl && s.ssl.state !== 'closed') {
      try {
        s.ssl.close(reason);
      } catch {
        /* ignore */
      }
    }
    s.log.info({ user: s.user || undefined, reason, bytesIn: st.bytesIn, bytesOut: st.bytesOut, drops: st.drops }, 'client session closed');
  }

  private allocPeerId(): number {
    const id = this.freePeerIds.pop();
    if (id !== undefined) return id;
    if (this.nextPeerId > PEER_ID_MAX) return -1;
    return this.nextPeerId++;
  }

  // ---------------------------------------------------------------- data path

  private onData(s: ClientSession, buf: Buffer, off: number, len: number, now: number): void {
    if (s.status !== 'open') return;
    const r = this.decryptFor(s, buf, off, len, now);
    this.afterDecrypt(s, r, buf, this.dOff, this.dLen, now);
  }

  /**
   * Decrypts one data packet in place with the session's data channel (native or JS); returns a
   * DATA_* result (payload at this.dOff/dLen for DATA_IP) or a drop code (counted where it happened).
   */
  private decryptFor(s: ClientSession, buf: Buffer, off: number, len: number, now: number): number {
    if (!s.native) {
      const r = s.data.decrypt(buf, off, len, now);
      this.dOff = s.data.outOff;
      this.dLen = s.data.outLen;
      return r;
    }
    const nat = this.nativeSsl!;
    const r = nat.sslDecrypt(s.peerId, buf, off, len);
    this.dOff = nat.sslSpan[0]!;
    this.dLen = nat.sslSpan[1]!;
    if (r === OVPN_IP) return DATA_IP;
    if (r === OVPN_PING) return DATA_PING;
    if (r === OVPN_OCC) return this.classifyOcc(s, buf, this.dOff, this.dLen);
    if (r < 0) {
      s.data.stats.drops[DROP_NO_KEY]!++; // no native session (yet)
      return DROP_NO_KEY;
    }
    return r; // a drop, counted natively
  }

  private classifyOcc(s: ClientSession, buf: Buffer, off: number, len: number): number {
    if (occOpcode(buf, off, len) === OCC_EXIT) return DATA_OCC_EXIT;
    s.data.stats.drops[DROP_OCC_OTHER]!++;
    return DROP_OCC_OTHER;
  }

  /** Decrypted payload a native session hands up: OCC messages and client-to-client packets. */
  private onNativePlaintext(peerId: number, buf: Buffer, off: number, len: number): void {
    const s = this.byPeerId[peerId];
    if (!s || s.status !== 'open' || !s.native) return;
    try {
      const now = this.clock();
      const r = occOpcode(buf, off, len) >= 0 ? this.classifyOcc(s, buf, off, len) : DATA_IP;
      this.afterDecrypt(s, r, buf, off, len, now);
    } catch (err) {
      this.log.error({ err: (err as Error).message, peer: s.remote }, 'native plaintext handling failed');
    }
  }

  private afterDecrypt(s: ClientSession, r: number, buf: Buffer, off: number, len: number, now: number): void {
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
        dst.push(buf, off, len);
        return;
      }
      this.tunnel.writeToTun(buf, off, len);
    } else if (r === DATA_PING) {
      s.lastRxMs = now;
    } else if (r === DATA_OCC_EXIT) {
      s.log.info({}, 'client sent OCC_EXIT');
      this.closeSession(s, 'client exit (OCC)');
    }
    // drops are counted in the session's DataChannel stats
  }

  /** Encrypts an IP packet for a client and sends it (the PacketSink path). */
  sendData(s: ClientSession, buf: Buffer, off: number, len: number): void {
    if (s.status !== 'open') return;
    if (s.native) {
      this.nativeSsl!.sslSend(s.peerId, buf, off, len); // drops are counted natively
      return;
    }
    if (this.bind && !s.tcp) {
      // batch UDP: encrypt straight into a send slot
      const b = this.tx;
      if (b.count === b.capacity) this.flushUdp();
      const o = b.count * b.slotSize;
      const n = s.data.encrypt(buf, off, len, b.buf, o, this.clock());
      if (n > 0) this.queueTx(s, o, n);
      return;
    }
    const out = Buffer.allocUnsafe(TCP_LENGTH_SIZE + len + DATA_MAX_OVERHEAD);
    const n = s.data.encrypt(buf, off, len, out, TCP_LENGTH_SIZE, this.clock());
    if (n > 0) this.transmit(s, out, n);
  }

  private sendPing(s: ClientSession, now: number): void {
    if (s.native) {
      if (!this.nativeSsl!.sendSslPing(s.peerId)) this.counters.sendErrors++;
      return;
    }
    if (this.bind && !s.tcp) {
      const b = this.tx;
      if (b.count === b.capacity) this.flushUdp();
      const o = b.count * b.slotSize;
      const n = s.data.encryptPing(b.buf, o, now);
      if (n > 0) this.queueTx(s, o, n);
      return;
    }
    const out = Buffer.allocUnsafe(TCP_LENGTH_SIZE + 16 + DATA_MAX_OVERHEAD);
    const n = s.data.encryptPing(out, TCP_LENGTH_SIZE, now);
    if (n > 0) this.transmit(s, out, n);
  }

  private queueTx(s: ClientSession, o: number, n: number): void {
    const b = this.tx;
    const i = b.count++;
    b.off[i] = o;
    b.len[i] = n;
    b.family[i] = s.remoteFamily;
    s.remoteBytes.copy(b.addr, i * 16);
    b.port[i] = s.remotePort;
    if (!this.txScheduled) {
      this.txScheduled = true;
      setImmediate(this.flushUdpSoon);
    }
  }

  /** Sends the queued UDP data datagrams in one batch (sendmmsg with NativeUdp). */
  flushUdp(): void {
    const b = this.tx;
    if (b.count === 0 || !this.bind) return;
    const sent = this.bind.send(b);
    if (sent < b.count) this.counters.sendErrors += b.count - sent;
    b.count = 0;
  }

  /** Sends a packet written at out[2, 2+n) (2 bytes of headroom for the TCP length). */
  private transmit(s: ClientSession, out: Buffer, n: number): void {
    if (s.tcp) {
      if (s.tcp.writableLength > TCP_MAX_QUEUED_BYTES) {
        this.counters.tcpBackpressureDrops++;
        return;
      }
      writeTcpLength(out, 0, n);
      s.tcp.write(out.subarray(0, TCP_LENGTH_SIZE + n));
    } else if (this.udp) {
      this.udp.send(out, TCP_LENGTH_SIZE, n, s.remotePort, s.remoteAddr);
    }
  }

  private sendControl(s: ClientSession, pkt: Buffer): void {
    if (s.tcp) {
      if (!s.tcp.destroyed) s.tcp.write(frameForTcp(pkt));
    } else if (this.bind) {
      if (!this.bind.sendTo(pkt, s.remoteFamily, s.remoteBytes.subarray(0, s.remoteFamily === 4 ? 4 : 16), s.remotePort)) this.counters.sendErrors++;
    } else if (this.udp) {
      this.udp.send(pkt, s.remotePort, s.remoteAddr);
    }
  }
}

function lenToMask(len: number): string {
  const m = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}`;
}

function compressionModeOf(framing: string): CompressionMode {
  if (framing === 'lzo-stub') return COMP_LZO_STUB;
  if (framing === 'stub-v2') return COMP_STUB_V2;
  return COMP_NONE;
}

/**
 * Builds the frozen SslServerConfig from the gateway's validated `vpnServers` entry (reads the PEM
 * files). Kept structural so this module does not depend on the config loader.
 */
export function sslServerConfigFrom(
  v: {
    name: string;
    protocols: readonly SslProtocol[];
    port: number;
    listen: { text: string };
    clientCidr: { text: string };
    localSubnets: readonly { text: string }[];
    dnsServers: readonly { text: string }[];
    dataCiphers: readonly string[];
    serverCert: { cert: string; key: string };
    clientCa: string;
    maxConnections: number;
    clientToClient: boolean;
    renegSec?: number;
  },
  readPem: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): SslServerConfig {
  return Object.freeze({
    name: v.name,
    protocols: Object.freeze([...v.protocols]),
    port: v.port,
    listen: v.listen.text,
    clientCidr: v.clientCidr.text,
    localSubnets: Object.freeze(v.localSubnets.map((s) => s.text)),
    dnsServers: Object.freeze(v.dnsServers.map((s) => s.text)),
    dataCiphers: Object.freeze([...v.dataCiphers]),
    identity: Object.freeze({ cert: readPem(v.serverCert.cert), key: readPem(v.serverCert.key), clientCa: readPem(v.clientCa) }),
    maxConnections: v.maxConnections,
    clientToClient: v.clientToClient,
    renegSec: v.renegSec ?? 0,
  });
}
