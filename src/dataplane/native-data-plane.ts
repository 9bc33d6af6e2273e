import type { Endpoint } from '../common/endpoint.js';
import { bytesToIp, parseIp } from '../common/ip.js';
import type { Prefix } from '../common/ip.js';
import { IoError, VpnError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { encrKeyMatLen, integKeyLen, isSupportedSpec } from '../crypto/aead.js';
import { DROP_REASON_COUNT } from '../esp/drop-reason.js';
import type { UdpBind } from '../net/udp-bind.js';
import { loadNative, statsByName, type NativeEspSaConfig } from '../native/loader.js';
import { loadNativeTestCores } from '../native/test-cores.js';
import type { NativeEspCore } from '../native/test-cores.js';
import { setLinkUp, setMtu } from '../tun/netcfg.js';
import type { TunDevice } from '../tun/tun-device.js';
import { PING_MAGIC } from '../ssl/data/special.js';
import { callControlCallbacks, callSaEventCallbacks } from './callbacks.js';
import type { ControlCallback, SaEventCallback } from './callbacks.js';
import { bindIndexFor } from './bind-lookup.js';
import { dropsByName } from './drop-counters.js';
import type { DataPlane, DataPlaneStats, SaCounters, SaEvent, SaParams } from './data-plane.js';
import type { DataPathPolicy, PolicyCounters } from '../vpcep/policy.js';
import { PolicyCounterReader, validatePolicyLimits } from './native-policy.js';
import type { PacketSink } from '../common/packet-sink.js';
import { logSaEvent, logSaInstalled, logSaRemoved, pushPeerMoved, pushSaEvents } from './sa-log.js';
import { SA_EVENT_PEER_MOVED } from '../esp/esp-sa.js';
import { NAT_KEEPALIVE_BYTE } from '../common/ipsec-udp.js';

/** RFC 3948 §2.3: the one-byte NAT-keepalive payload */
const NAT_KEEPALIVE = Buffer.from([NAT_KEEPALIVE_BYTE]);
import { SinkTable } from './sink-table.js';
import { DEFAULT_RX_MODERATION_US } from './moderation.js';

/**
 * The native data plane (src/native/engine + core/esp.cc + core/offload.cc): the whole packet path
 * TUN ⇄ ESP-in-UDP runs in C++ on the event-loop thread, with reused OpenSSL contexts per SA.
 *
 *   1. TUN readable → read a batch (or TSO super-packets, segmented in C) → LPM route in C →
 *      encapsulate in place → sendmmsg per bind (UDP GSO for runs of equal-size datagrams);
 *   2. UDP readable → recvmmsg → keepalive / non-ESP marker (IKE) / SPI → decapsulate in place →
 *      write to the TUN (or GRO: coalesce in-order TCP segments into one vnet-header write);
 *   3. what JavaScript must see — IKE packets, packets routed to a PacketSink (SSL VPN), SA lifetime
 *      events — is copied into buffers pinned here and announced by ONE callback per batch;
 *   4. the policy stage (src/native/core/policy.cc, semantics in src/vpcep/policy.ts) sits between
 *      the tunnels and the TUN in C++: decrypted packets carry their SA's or session's origin into it,
 *      TUN packets pass it before the route lookup; its idle flows expire on a 1 s unref'd timer here.
 *
 * The TUN and UDP devices stay owned by the caller (DataPlane contract): we poll their fds instead of
 * calling their `start`, and never close them, unless the TUN fd came from `openOffloadTun`.
 */

// Indices into the native stats array (mirror of enum Stat in src/native/engine/engine.h).
export const NATIVE_DP_STAT = {
  tunRxPackets: 0,
  espTxPackets: 1,
  espRxPackets: 2,
  tunTxPackets: 3,
  sinkPackets: 4,
  controlPackets: 5,
  natKeepalives: 6,
  udpRxDatagrams: 7,
  udpTxDatagrams: 8,
  udpSendMsgs: 9,
  sendErrors: 10,
  tunWriteErrors: 11,
  tunReadErrors: 12,
  pollErrors: 13,
  icmpErrors: 14,
  gsoSends: 15,
  tsoSuperPackets: 16,
  groWrites: 17,
  groSegments: 18,
  truncated: 19,
  jsCallbacks: 20,
  sslRxPackets: 21,
  sslTxPackets: 22,
  sslDrops: 23,
  tunRxBytes: 24,
  tunTxBytes: 25,
  tunReadsAfterWrite: 26,
  rxModerations: 27,
} as const;
const STAT_DROPS = 28;
const STAT_COUNT = STAT_DROPS + DROP_REASON_COUNT;
/** Length of the native stats array (NativeDataPlaneOptions.stats). */
export const NATIVE_DP_STAT_COUNT = STAT_COUNT;

// Implementation choices: sizes of the buffers native code fills for JS.
const CTL_CAPACITY = 64;
const CTL_BYTES = 128 * 1024;
/** off, len, bind, family, port, local family (mirror of kCtlStride in src/native/engine/engine.h) */
const CTL_STRIDE = 6;
/** per control entry: the sender's address (16 bytes), then the local address it reached (16) */
const CTL_ADDR_STRIDE = 32;
const SINK_CAPACITY = 64;
const SINK_STRIDE = 3;
const EVENT_CAPACITY = 64;
const EVENT_STRIDE = 3;
const PREFIX_PACKED = 18;
const COUNTERS_LEN = 4 + DROP_REASON_COUNT;
const SSL_CAPACITY = 64;
const SSL_BYTES = 128 * 1024;
const SSL_STRIDE = 7;
const SSL_KIND_DATAGRAM = 0;
const SSL_COUNTER_HEAD = 12;
/** how often the policy stage's idle flows are expired (the engine bounds the work per call) */
const POLICY_EXPIRE_MS = 1000;

// OpenVPN data-channel results: mirror of ovpn::Result (src/native/core/ovpn.h). 3..11 have the values
// and names of DROP_* in src/ssl/data/data-channel.ts; OVPN_OCC is any OCC message (the shell decides).
export const OVPN_IP = 0;
export const OVPN_PING = 1;
export const OVPN_OCC = 2;
export const OVPN_RESULT_NAMES: readonly string[] = [
  'ip', 'ping', 'occ', 'short', 'notData', 'noKey', 'replay', 'badTag', 'compressed', 'occOther',
  'packetIdExhausted', 'tooBig', 'notIpv4', 'badSource', 'noSession', 'noBind',
];
export const OVPN_RESULT_COUNT = OVPN_RESULT_NAMES.length;
/** OpenVPN data cipher name → the native cipher id */
export const OVPN_CIPHER_IDS: Readonly<Record<string, number>> = Object.freeze({
  'AES-128-GCM': 1,
  'AES-256-GCM': 2,
  'CHACHA20-POLY1305': 3,
});

// The SSL offload's types live with its interface (data-plane.ts); re-exported for existing importers.
export type { SslDatagramHandler, SslKeyMaterial, SslSessionCounters, SslSessionParams } from './data-plane.js';
import type { SslDatagramHandler, SslKeyMaterial, SslOffload, SslSessionCounters, SslSessionParams, SslTcpWriter } from './data-plane.js';
import { SSL_TCP_HEAD, SSL_TCP_STRIDE } from './data-plane.js';
import { TCP_MAX_FRAME } from '../ssl/wire/tcp-framing.js';
/** entries per sslTcpChunk call (a 64 KiB read of small packets takes a few calls) */
const SSL_TCP_ENTRIES = 1024;

/** The part of the addon this module uses (declared here: src/native/loader.ts types the I/O handles). */
export interface NativeDataPlaneHandle {
  attachTun(fd: number, vnetHdr: boolean, owns: boolean): void;
  attachUdp(fd: number): number;
  setOptions(gso: boolean, gro: boolean, rxModerationUs: number): void;
  start(cb: (ctl: number, sink: number, events: number) => void): void;
  installSa(p: NativeSaParams): boolean;
  removeSa(spi: number, inbound: boolean): boolean;
  saCounters(spi: number, inbound: boolean, out: Float64Array): boolean;
  /** family * 65536 + port with the address in addrOut (16 bytes), or -1: no such SA */
  saRemote(spi: number, inbound: boolean, addrOut: Buffer): number;
  setSaRemote(spi: number, inbound: boolean, family: number, addr: Buffer, port: number): boolean;
  addRoute(family: number, addr: Buffer, len: number, spi: number, sink: number): void;
  removeRoute(family: number, addr: Buffer, len: number, onlySink: boolean): boolean;
  lookupRoute(family: number, addr: Buffer): [number, number, number?] | null;
  sendControl(bind: number, data: Uint8Array, family: number, addr: Buffer, port: number, marker?: boolean): boolean;
  /** false when not queued (closed, bad length, or dropped by the policy stage for `origin`) */
  writeTun(buf: Uint8Array, off: number, len: number, origin?: number): boolean;
  flushTun(): void;
  close(): void;
  // SSL VPN (src/native/core/ovpn.cc); see the NativeDataPlane methods of the same names
  attachSsl(fd: number): number;
  detachSsl(bind: number): boolean;
  setSslHandler(bufs: { buf: Buffer; meta: Uint32Array; addr: Buffer }, cb: (n: number) => void): void;
  installSslSession(peerId: number, bind: number, family: number, addr: Buffer, port: number, comp: number, clientNet: Buffer, clientLen: number, serverAddr: Buffer, origin?: number): boolean;
  updateSslSession(peerId: number, what: 'remote', bind: number, family: number, addr: Buffer, port: number): boolean;
  updateSslSession(peerId: number, what: 'vaddr', addr: Buffer | null): boolean;
  updateSslSession(peerId: number, what: 'comp', mode: number): boolean;
  updateSslSession(peerId: number, what: 'origin', origin: number): boolean;
  setSslKey(peerId: number, keyId: number, cipher: number, encKey: Buffer, encIv: Buffer, decKey: Buffer, decIv: Buffer, initialSendPacketId?: number, pidCell?: BigUint64Array): boolean;
  /** multi-queue worker queues: floats reach JS only once authenticated here (Engine::SetSslFloatCheck) */
  setSslFloatCheck?(on: boolean): void;
  retireSslKey(peerId: number, keyId: number): boolean;
  removeSslSession(peerId: number): boolean;
  addSslRoute(family: number, addr: Buffer, len: number, peerId: number): void;
  removeSslRoute(family: number, addr: Buffer, len: number): boolean;
  sslCounters(peerId: number, out: Float64Array): boolean;
  sslSend(peerId: number, buf: Uint8Array, off: number, len: number, ping: boolean): boolean;
  sslDecrypt(peerId: number, buf: Uint8Array, off: number, len: number, span: Uint32Array): number;
  sslTcpOpen(stream: number, maxFrame?: number): boolean;
  sslTcpBind(stream: number, peerId: number): boolean;
  sslTcpChunk(stream: number, buf: Uint8Array, off: number, len: number, list: Uint32Array, spill: Buffer): number;
  sslTcpClose(stream: number): boolean;
  sslTcpFlush(): void;
  /** absent from addons built before the native TCP send side */
  setSslTcpOutput?(cb: (list: (number | Buffer)[]) => void): void;
  sslTcpOutput?(peerId: number, on: boolean): boolean;
  // the policy stage (src/native/core/policy.h); absent from addons built before it
  setPolicy?(p: DataPathPolicy): void;
  /** fills `out` when large enough (layout in src/native/engine/parse-policy.h); returns the doubles needed */
  policyCounters?(out: Float64Array): number;
  /** forgets idle flows (bounded work); returns how many */
  expirePolicy?(): number;
}

/** installSa's argument: the SA itself plus where its datagrams go. */
export interface NativeSaParams extends NativeEspSaConfig {
  bind: number;
  remoteFamily: number;
  remoteAddr: Buffer;
  remotePort: number;
  /** our outer address (16 bytes, IPv4 in the first 4): on a wildcard socket the SA's datagrams leave from it */
  localFamily: number;
  localAddr: Buffer;
  /** outbound SA shared by several queues: its last-used sequence number, in shared memory (multi-queue.ts) */
  seqCell?: BigUint64Array;
  /** inbound: the origin its packets carry into the policy stage (0: none) */
  origin: number;
}

interface DataPlaneAddon {
  dataPlaneAbi: number;
  DataPlaneHandle: new (o: {
    stats: Float64Array;
    ctlBuf: Buffer;
    ctlMeta: Uint32Array;
    ctlAddr: Buffer;
    sinkBuf: Buffer;
    sinkMeta: Uint32Array;
    events: Uint32Array;
    maxPacket: number;
  }) => NativeDataPlaneHandle;
  ovpnAbi?: number;
  openTun(name: string, vnetHdr: boolean, multiQueue: boolean): [number, string];
  closeFd(fd: number): void;
}

/** Loads the addon's data-plane part; throws when the addon is missing or too old. */
export function loadNativeDataPlane(): DataPlaneAddon {
  const a = loadNative() as unknown as Partial<DataPlaneAddon>;
  if (typeof a.DataPlaneHandle !== 'function' || a.dataPlaneAbi !== 2) {
    throw new VpnError('ERR_NATIVE_UNAVAILABLE', 'vpcgw native addon has no data plane (rebuild it with `npm run build`)');
  }
  return a as DataPlaneAddon;
}

/** True when the loaded addon has the native OpenVPN data channel (an older build may not). */
export function nativeSslAvailable(): boolean {
  try {
    const a = loadNativeDataPlane();
    return a.ovpnAbi === 1;
  } catch {
    return false;
  }
}

/** The native cipher id for an OpenVPN data cipher name; throws RangeError for an unknown one. */
export function ovpnCipherId(name: string): number {
  const id = OVPN_CIPHER_IDS[name.toUpperCase()];
  if (id === undefined) throw new RangeError(`unsupported data cipher ${name}`);
  return id;
}

/** Packs selectors for native code: 18 bytes each (family, length, 16 address bytes). */
export function packPrefixes(list: readonly Prefix[]): Buffer {
  const b = Buffer.alloc(list.length * PREFIX_PACKED);
  list.forEach((p, i) => {
    b[i * PREFIX_PACKED] = p.family;
    b[i * PREFIX_PACKED + 1] = p.len;
    p.bytes.copy(b, i * PREFIX_PACKED + 2);
  });
  return b;
}

/** Validates SaParams as TsDataPlane does (same error codes) and builds the native form. */
export function nativeSaParams(p: SaParams, bind: number): NativeSaParams {
  if (!Number.isInteger(p.spi) || p.spi <= 0 || p.spi > 0xffffffff) throw new VpnError('ERR_SA', `bad SPI ${p.spi}`);
  const spec = { encr: p.encr, encrKeyBits: p.encrKeyBits, integ: p.integ };
  if (!isSupportedSpec(spec)) {
    throw new VpnError('ERR_CRYPTO_UNSUPPORTED', `unsupported transform encr=${p.encr}/${p.encrKeyBits} integ=${p.integ}`);
  }
  if (p.encrKey.length !== encrKeyMatLen(spec)) {
    throw new VpnError('ERR_CRYPTO_KEY', `encryption key material must be ${encrKeyMatLen(spec)} bytes, got ${p.encrKey.length}`);
  }
  if (p.integ !== 0 && p.integKey.length !== integKeyLen(p.integ)) {
    throw new VpnError('ERR_CRYPTO_KEY', `integrity key must be ${integKeyLen(p.integ)} bytes, got ${p.integKey.length}`);
  }
  const local = parseIp(p.localAddr);
  const remote = parseIp(p.remoteAddr);
  if (!local || !remote || local.family !== remote.family) {
    throw new VpnError('ERR_SA', `bad outer addresses ${p.localAddr} / ${p.remoteAddr}`);
  }
  const remoteAddr = Buffer.alloc(16);
  remote.bytes.copy(remoteAddr);
  const localAddr = Buffer.alloc(16);
  local.bytes.copy(localAddr);
  const lt = p.lifetime;
  return {
    inbound: p.direction === 'in',
    spi: p.spi >>> 0,
    encr: p.encr,
    encrKeyBits: p.encrKeyBits,
    integ: p.integ,
    encrKey: p.encrKey,
    integKey: p.integKey,
    replayWindow: p.replayWindow ?? 1024,
    esn: p.esn ?? false,
    initialSeq: p.initialSeq ?? 0,
    initialSeqHi: p.esn ? (p.initialSeqHi ?? 0) : 0,
    bind,
    remoteFamily: remote.family,
    remoteAddr,
    remotePort: p.remotePort,
    localFamily: local.family,
    localAddr,
    localTs: packPrefixes(p.localTs),
    remoteTs: packPrefixes(p.remoteTs),
    softBytes: lt?.softBytes ?? 0,
    hardBytes: lt?.hardBytes ?? 0,
    softPackets: lt?.softPackets ?? 0,
    hardPackets: lt?.hardPackets ?? 0,
    origin: p.direction === 'in' ? (p.origin ?? 0) >>> 0 : 0,
  };
}

/** Builds a standalone native ESP core for one SA direction (differential tests, micro benchmarks; the test addon). */
export function createNativeEspCore(p: SaParams): NativeEspCore {
  const n = nativeSaParams(p, -1);
  return new (loadNativeTestCores().EspCore)(n);
}

/** A TUN the native data plane opens itself, with IFF_VNET_HDR and TSO/CSUM offloads (bench, tests). */
export interface OffloadTun {
  readonly fd: number;
  readonly name: string;
  readonly mtu: number;
  readonly vnetHdr: boolean;
}

/** Opens (creates) a TUN with the vnet header and TUNSETOFFLOAD(CSUM|TSO4|TSO6), sets MTU and up. */
export function openOffloadTun(name: string, mtu: number, vnetHdr = true): OffloadTun {
  const a = loadNativeDataPlane();
  let r: [number, string];
  try {
    r = a.openTun(name, vnetHdr, false);
  } catch (e) {
    throw new IoError(`cannot create TUN device "${name}": ${(e as Error).message}`, e);
  }
  try {
    setMtu(r[1], mtu);
    setLinkUp(r[1]);
  } catch (e) {
    a.closeFd(r[0]);
    throw e;
  }
  return { fd: r[0], name: r[1], mtu, vnetHdr };
}

/** A UDP bind the native data plane can poll: anything with a socket fd (NativeUdp). */
export type FdUdpBind = UdpBind & { readonly fd: number };

export interface NativeDataPlaneOptions {
  logger?: Logger;
  /** largest inner packet (default max(tun mtu, 1500)) */
  maxPacket?: number;
  /** UDP GSO (UDP_SEGMENT) on send (default true) */
  gso?: boolean;
  /** GRO-style coalescing into the TUN; needs a vnet-header TUN (default true when it has one) */
  gro?: boolean;
  /**
   * Receive moderation in µs (default DEFAULT_RX_MODERATION_US, 0 off): a UDP socket that stays busy
   * is polled at most once per this period, so datagrams are read, coalesced and answered in
   * batches (src/native/engine/engine.cc explains the trade: at most this much added latency, only
   * while a socket is busy).
   */
  rxModerationUs?: number;
  /**
   * The array native code counts into (NATIVE_DP_STAT_COUNT doubles); a SharedArrayBuffer view lets
   * another thread read a worker's counters (multi-queue). Default: a private one.
   */
  stats?: Float64Array;
}

/** The TUN side: a TunDevice with an fd (LinuxTun, not started) or an OffloadTun (owned, closed by us). */
export type NativeTunSource = (TunDevice & { readonly fd: number }) | OffloadTun;

function isOffloadTun(t: NativeTunSource): t is OffloadTun {
  return 'vnetHdr' in t;
}

export class NativeDataPlane implements DataPlane, SslOffload {
  private readonly log: Logger;
  private readonly h: NativeDataPlaneHandle;
  private readonly bindLocal: Endpoint[];
  private readonly binds: readonly FdUdpBind[];
  private readonly statsArr: Float64Array;
  private readonly ctlBuf = Buffer.alloc(CTL_BYTES);
  private readonly ctlMeta = new Uint32Array(CTL_CAPACITY * CTL_STRIDE);
  private readonly ctlAddr = Buffer.alloc(CTL_CAPACITY * CTL_ADDR_STRIDE);
  private readonly sinkBuf: Buffer;
  private readonly sinkMeta = new Uint32Array(SINK_CAPACITY * SINK_STRIDE);
  private readonly events = new Uint32Array(EVENT_CAPACITY * EVENT_STRIDE);
  private readonly counterOut = new Float64Array(COUNTERS_LEN);
  private readonly addrTmp = Buffer.alloc(16);
  private readonly sinks: SinkTable;
  /** installed SAs by "dir:spi" (to tell an install from a replacement) */
  private readonly sas = new Set<string>();
  private controlCbs: ControlCallback[] = [];
  private eventCbs: SaEventCallback[] = [];
  private tunFlushScheduled = false;
  private closed = false;
  // SSL VPN: buffers native code fills for JS, handlers by bind index, scratch for calls
  private readonly sslBuf = Buffer.alloc(SSL_BYTES);
  private readonly sslMeta = new Uint32Array(SSL_CAPACITY * SSL_STRIDE);
  private readonly sslAddr = Buffer.alloc(SSL_CAPACITY * 16);
  private readonly sslHandlers: (SslDatagramHandler | undefined)[] = [];
  private sslHandlerSet = false;
  private readonly sslCounterOut = new Float64Array(SSL_COUNTER_HEAD + OVPN_RESULT_COUNT);
  private readonly sslAddrTmp = Buffer.alloc(16);
  private readonly sslNetTmp = Buffer.alloc(4);
  private readonly sslSrvTmp = Buffer.alloc(4);
  /** output of `sslDecrypt` for OVPN_IP / OVPN_OCC: the payload is at buf[sslOutOff, sslOutOff+sslOutLen) */
  readonly sslSpan = new Uint32Array(2);
  /** sslTcpChunk's output (layout: SSL_TCP_* in data-plane.ts) */
  readonly sslTcpList = new Uint32Array(SSL_TCP_HEAD + SSL_TCP_ENTRIES * SSL_TCP_STRIDE);
  readonly sslTcpSpill = Buffer.alloc(TCP_MAX_FRAME);
  /** TCP sessions whose send side is native: their writers by peer-id (setSslTcpWriter) */
  private readonly tcpWriters = new Map<number, SslTcpWriter>();
  private tcpOutputSet = false;
  private readonly flushTunSoon: () => void;
  // policy stage: counters read through one growing Float64Array; idle flows expired by a timer
  private readonly policyReader = new PolicyCounterReader();
  private policyTimer: NodeJS.Timeout | null = null;
  readonly tunName: string;
  readonly offloads: { vnetHdr: boolean; gso: boolean; gro: boolean; rxModerationUs: number };

  constructor(tun: NativeTunSource, binds: readonly FdUdpBind[], opts: NativeDataPlaneOptions = {}) {
    const addon = loadNativeDataPlane();
    this.statsArr = opts.stats && opts.stats.length >= STAT_COUNT ? opts.stats : new Float64Array(STAT_COUNT);
    this.log = (opts.logger ?? silentLogger).child({ component: 'dataplane', backend: 'native' });
    this.sinks = new SinkTable(this.log);
    const maxPacket = opts.maxPacket ?? Math.max(tun.mtu, 1500);
    this.sinkBuf = Buffer.alloc(SINK_CAPACITY * maxPacket);
    this.h = new addon.DataPlaneHandle({
      stats: this.statsArr,
      ctlBuf: this.ctlBuf,
      ctlMeta: this.ctlMeta,
      ctlAddr: this.ctlAddr,
      sinkBuf: this.sinkBuf,
      sinkMeta: this.sinkMeta,
      events: this.events,
      maxPacket,
    });
    const vnet = isOffloadTun(tun) && tun.vnetHdr;
    this.h.attachTun(tun.fd, vnet, isOffloadTun(tun));
    this.binds = [...binds];
    for (const b of this.binds) this.h.attachUdp(b.fd);
    this.bindLocal = this.binds.map((b) => ({ family: b.family, address: b.address, port: b.port }));
    const gso = opts.gso ?? true;
    const gro = vnet && (opts.gro ?? true);
    const rxModerationUs = opts.rxModerationUs ?? DEFAULT_RX_MODERATION_US;
    this.h.setOptions(gso, gro, rxModerationUs);
    this.offloads = { vnetHdr: vnet, gso, gro, rxModerationUs };
    this.tunName = tun.name;
    this.flushTunSoon = () => {
      this.tunFlushScheduled = false;
      if (!this.closed) this.h.flushTun();
    };
    this.h.start((c, s, e) => this.onNative(c, s, e));
  }

  // ---------------------------------------------------------------- control-plane API

  /** `seqCell`: an outbound SA shared with other queues takes its sequence numbers from it (multi-queue.ts) */
  installSa(p: SaParams, seqCell?: BigUint64Array): void {
    if (this.closed) return;
    const bind = bindIndexFor(this.binds, parseIp(p.localAddr)?.family ?? 0, p.localAddr, p.localPort);
    const n = nativeSaParams(p, bind);
    if (seqCell && p.direction === 'out') n.seqCell = seqCell;
    this.h.installSa(n);
    const key = `${p.direction}:${n.spi}`;
    const old = this.sas.has(key);
    this.sas.add(key);
    logSaInstalled(this.log, p, old, bind);
  }

  setSaRemote(spi: number, direction: 'in' | 'out', remote: Endpoint): boolean {
    if (this.closed) return false;
    const ip = parseIp(remote.address);
    if (!ip) return false;
    return this.h.setSaRemote(spi >>> 0, direction === 'in', ip.family, this.addr16(ip.bytes), remote.port);
  }

  removeSa(spi: number, direction: 'in' | 'out'): void {
    if (this.closed) return;
    const c = this.saCounters(spi, direction);
    if (this.h.removeSa(spi >>> 0, direction === 'in')) {
      this.sas.delete(`${direction}:${spi >>> 0}`);
      logSaRemoved(this.log, spi, direction, c);
    }
  }

  addRoute(prefix: Prefix, outSpi: number): void {
    if (this.closed) return;
    this.h.addRoute(prefix.family, this.addr16(prefix.bytes), prefix.len, outSpi >>> 0, -1);
  }

  removeRoute(prefix: Prefix): void {
    if (this.closed) return;
    this.h.removeRoute(prefix.family, this.addr16(prefix.bytes), prefix.len, false);
  }

  addSinkRoute(prefix: Prefix, sink: PacketSink): void {
    if (this.closed) return;
    this.h.addRoute(prefix.family, this.addr16(prefix.bytes), prefix.len, 0, this.sinks.indexOf(sink));
  }

  removeSinkRoute(prefix: Prefix): void {
    if (this.closed) return;
    this.h.removeRoute(prefix.family, this.addr16(prefix.bytes), prefix.len, true);
  }

  /** LPM as the native table sees it (tests): the route's SPI or sink index, or null. */
  lookupRoute(address: string): { spi: number; sink: number } | null {
    const ip = parseIp(address);
    if (!ip || this.closed) return null;
    const r = this.h.lookupRoute(ip.family, this.addr16(ip.bytes));
    return r ? { spi: r[0], sink: r[1] } : null;
  }

  /** The SSL session (peer-id) the route for `address` names, or -1 (tests). */
  lookupSslRoute(address: string): number {
    const ip = parseIp(address);
    if (!ip || this.closed) return -1;
    const r = this.h.lookupRoute(ip.family, this.addr16(ip.bytes));
    return r ? (r[2] ?? -1) : -1;
  }

  saCounters(spi: number, direction: 'in' | 'out'): SaCounters | undefined {
    if (this.closed) return undefined;
    const o = this.counterOut;
    if (!this.h.saCounters(spi >>> 0, direction === 'in', o)) return undefined;
    return { bytes: o[0]!, packets: o[1]!, drops: dropsByName(o, 4, true), seq: o[2]! };
  }

  dropCounters(): Record<string, number> {
    return dropsByName(this.statsArr, STAT_DROPS, false);
  }

  stats(): DataPlaneStats {
    const s = this.statsArr;
    return {
      tunRxPackets: s[NATIVE_DP_STAT.tunRxPackets]!,
      tunRxBytes: s[NATIVE_DP_STAT.tunRxBytes]!,
      espTxPackets: s[NATIVE_DP_STAT.espTxPackets]!,
      espRxPackets: s[NATIVE_DP_STAT.espRxPackets]!,
      tunTxPackets: s[NATIVE_DP_STAT.tunTxPackets]!,
      tunTxBytes: s[NATIVE_DP_STAT.tunTxBytes]!,
      sinkPackets: s[NATIVE_DP_STAT.sinkPackets]!,
      controlPackets: s[NATIVE_DP_STAT.controlPackets]!,
      natKeepalives: s[NATIVE_DP_STAT.natKeepalives]!,
    };
  }

  /** Every native counter by name (offload and error counters included). */
  nativeStats(): Record<keyof typeof NATIVE_DP_STAT, number> {
    return statsByName(NATIVE_DP_STAT, this.statsArr);
  }

  onControl(cb: (pkt: Buffer, from: Endpoint, local: Endpoint) => void): void {
    this.controlCbs.push(cb);
  }

  onSaEvent(cb: (ev: SaEvent) => void): void {
    this.eventCbs.push(cb);
  }

  sendNatKeepalive(to: Endpoint, local: Endpoint): boolean {
    if (this.closed) return false;
    const i = bindIndexFor(this.binds, local.family, local.address, local.port);
    const addr = parseIp(to.address);
    if (i < 0 || !addr) return false;
    return this.h.sendControl(i, NAT_KEEPALIVE, addr.family, this.addr16(addr.bytes), to.port, false);
  }

  sendControl(pkt: Buffer, to: Endpoint, local: Endpoint): boolean {
    if (this.closed) return false;
    const i = bindIndexFor(this.binds, local.family, local.address, local.port);
    const addr = parseIp(to.address);
    if (i < 0 || !addr) return false;
    return this.h.sendControl(i, pkt, addr.family, this.addr16(addr.bytes), to.port);
  }

  /** `origin`: the packet goes through the policy stage's inbound check as that tunnel's (default 0: none) */
  writeToTun(pkt: Buffer, off: number, len: number, origin = 0): void {
    if (this.closed) return;
    this.h.writeTun(pkt, off, len, origin >>> 0);
    if (!this.tunFlushScheduled) {
      this.tunFlushScheduled = true;
      setImmediate(this.flushTunSoon);
    }
  }

  // ---------------------------------------------------------------- policy stage

  /**
   * Replaces the policy stage's rules (src/vpcep/policy.ts): ACLs apply at once, endpoint flows that
   * the new policy no longer allows are cut. Throws VpnError ERR_INVALID_ARG for limits out of range
   * and a TypeError for a malformed policy (the old one stays). While endpoints exist, a 1 s unref'd timer expires idle flows.
   */
  setPolicy(p: DataPathPolicy): void {
    if (this.closed) return;
    if (!this.h.setPolicy) throw new VpnError('ERR_NATIVE_UNAVAILABLE', 'vpcgw native addon has no policy stage (rebuild it with `npm run build`)');
    validatePolicyLimits(p.limits);
    this.h.setPolicy(p);
    if (p.endpoints.length > 0 && !this.policyTimer) {
      this.policyTimer = setInterval(this.expirePolicy, POLICY_EXPIRE_MS);
      this.policyTimer.unref();
    } else if (p.endpoints.length === 0 && this.policyTimer) {
      clearInterval(this.policyTimer);
      this.policyTimer = null;
    }
    this.log.info({ endpoints: p.endpoints.length, acls: p.acls.length, maxFlows: p.limits.maxFlows }, 'policy set');
  }

  /** The policy stage's counters (all zero before setPolicy). */
  policyCounters(): PolicyCounters {
    const h = this.h;
    if (!h.policyCounters) return this.policyReader.read((out) => (out.fill(0), 0));
    return this.policyReader.read((out) => (this.closed ? (out.fill(0), 0) : h.policyCounters!(out)));
  }

  /** Changes a native session's origin (its user's groups changed); false without that session. */
  setSslOrigin(peerId: number, origin: number): boolean {
    return !this.closed && this.h.updateSslSession(peerId, 'origin', origin >>> 0);
  }

  private readonly expirePolicy = (): void => {
    if (!this.closed) this.h.expirePolicy?.();
  };

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.policyTimer) clearInterval(this.policyTimer);
    this.policyTimer = null;
    this.h.close();
    this.log.info({ sas: this.sas.size }, 'data plane closed');
    this.sas.clear();
  }

  // ---------------------------------------------------------------- SSL VPN (OpenVPN data channel)
  //
  // The SSL server's UDP socket can be handed to the data plane (attachSslUdp): then P_DATA_V2/V1
  // packets of sessions installed here are decrypted in C++ and go straight to the TUN, routes to a
  // session's /32 encrypt in C++ and leave by sendmmsg/GSO, and JS sees only what needs a decision
  // (SslDatagramHandler). Sessions are keyed by peer-id; their keys come from the control channel.

  /** This data plane carries the SSL VPN data channel itself (the methods below). */
  get sslOffload(): SslOffload {
    return this;
  }

  /**
   * Polls an SSL VPN socket from now on (the bind must not be started; it stays owned by the caller,
   * who calls detachSslUdp before closing it). Returns the bind index sessions refer to.
   */
  attachSslUdp(bind: FdUdpBind, handler: SslDatagramHandler): number {
    if (this.closed) throw new IoError('attachSslUdp: the data plane is closed');
    if (!this.sslHandlerSet) {
      this.h.setSslHandler({ buf: this.sslBuf, meta: this.sslMeta, addr: this.sslAddr }, (n) => this.onSsl(n));
      this.sslHandlerSet = true;
    }
    const idx = this.h.attachSsl(bind.fd);
    this.sslHandlers[idx] = handler;
    this.log.info({ udp: `${bind.address}:${bind.port}`, bind: idx }, 'SSL VPN socket attached');
    return idx;
  }

  /** Stops polling an SSL socket (before the caller closes it). */
  detachSslUdp(bind: number): void {
    this.sslHandlers[bind] = undefined;
    this.h.detachSsl(bind);
  }

  /** Creates (or replaces, without keys) the native session of a peer-id. False: the remote is unusable on that bind. */
  installSslSession(peerId: number, p: SslSessionParams): boolean {
    if (this.closed) return false;
    const remote = parseIp(p.remote.address);
    if (!remote) throw new VpnError('ERR_SSL_SESSION', `bad remote address ${p.remote.address}`);
    if (p.clientPrefix.family !== 4) throw new VpnError('ERR_SSL_SESSION', 'the client pool must be IPv4');
    const srv = parseIp(p.serverAddress);
    if (!srv || srv.family !== 4) throw new VpnError('ERR_SSL_SESSION', `bad server address ${p.serverAddress}`);
    this.sslAddrTmp.fill(0);
    remote.bytes.copy(this.sslAddrTmp);
    p.clientPrefix.bytes.copy(this.sslNetTmp, 0, 0, 4);
    srv.bytes.copy(this.sslSrvTmp, 0, 0, 4);
    return this.h.installSslSession(peerId, p.bind, remote.family, this.sslAddrTmp, p.remote.port, p.compression, this.sslNetTmp, p.clientPrefix.len, this.sslSrvTmp, (p.origin ?? 0) >>> 0);
  }

  /** A session's client moved (float, decided by the shell). */
  setSslRemote(peerId: number, bind: number, remote: Endpoint): boolean {
    const ip = parseIp(remote.address);
    if (this.closed || !ip) return false;
    this.sslAddrTmp.fill(0);
    ip.bytes.copy(this.sslAddrTmp);
    return this.h.updateSslSession(peerId, 'remote', bind, ip.family, this.sslAddrTmp, remote.port);
  }

  /** The client's virtual IPv4 address: inner packets from any other source are dropped (badSource). */
  setSslVirtualAddress(peerId: number, address: string | null): boolean {
    if (this.closed) return false;
    if (address === null) return this.h.updateSslSession(peerId, 'vaddr', null);
    const ip = parseIp(address);
    if (!ip || ip.family !== 4) return false;
    return this.h.updateSslSession(peerId, 'vaddr', Buffer.from(ip.bytes.subarray(0, 4)));
  }

  setSslCompression(peerId: number, mode: number): boolean {
    return !this.closed && this.h.updateSslSession(peerId, 'comp', mode);
  }

  /**
   * Installs a key state (becomes the send key at once; the other slot stays as lame duck).
   * `pidCell`: the key's packet-id counter shared with other queues (multi-queue.ts), holding the
   * last packet-id sent; each packet takes the next one by an atomic add.
   */
  setSslKey(peerId: number, k: SslKeyMaterial, pidCell?: BigUint64Array): boolean {
    if (this.closed) return false;
    return this.h.setSslKey(peerId, k.keyId, ovpnCipherId(k.cipher), k.encKey, k.encImplicitIv, k.decKey, k.decImplicitIv, k.initialSendPacketId ?? 0, pidCell);
  }

  /**
   * A worker queue of the multi-queue data plane hands a session's float to JS only after its own
   * copy of the session authenticated it and recorded its packet-id (JS then decides with queue 0's copy).
   */
  setSslFloatCheck(on: boolean): void {
    if (!this.closed) this.h.setSslFloatCheck?.(on);
  }

  retireSslKey(peerId: number, keyId: number): boolean {
    return !this.closed && this.h.retireSslKey(peerId, keyId);
  }

  removeSslSession(peerId: number): boolean {
    this.tcpWriters.delete(peerId);
    return !this.closed && this.h.removeSslSession(peerId);
  }

  addSslRoute(prefix: Prefix, peerId: number): void {
    if (this.closed) return;
    this.h.addSslRoute(prefix.family, this.addr16(prefix.bytes), prefix.len, peerId);
  }

  removeSslRoute(prefix: Prefix): boolean {
    if (this.closed) return false;
    return this.h.removeSslRoute(prefix.family, this.addr16(prefix.bytes), prefix.len);
  }

  sslCounters(peerId: number): SslSessionCounters | undefined {
    if (this.closed) return undefined;
    const o = this.sslCounterOut;
    if (!this.h.sslCounters(peerId, o)) return undefined;
    const drops: Record<string, number> = {};
    for (let i = 3; i < OVPN_RESULT_COUNT; i++) if (o[SSL_COUNTER_HEAD + i]! > 0) drops[OVPN_RESULT_NAMES[i]!] = o[SSL_COUNTER_HEAD + i]!;
    return {
      rxPackets: o[0]!, rxBytes: o[1]!, txPackets: o[2]!, txBytes: o[3]!, pingsIn: o[4]!, pingsOut: o[5]!,
      msSinceRx: o[6]!, msSinceTx: o[7]!, sendKeyId: o[8]!, sendPacketId: o[9]!, compression: o[10]!, drops,
    };
  }

  /** Encrypts and sends the keepalive ping (OpenVPN's PING_STRING payload) to a session's client. */
  sendSslPing(peerId: number): boolean {
    return !this.closed && this.h.sslSend(peerId, PING_MAGIC, 0, PING_MAGIC.length, true);
  }

  /** Encrypts and sends one IP packet to a session's client (client-to-client from the shell). */
  sslSend(peerId: number, buf: Buffer, off: number, len: number): boolean {
    return !this.closed && this.h.sslSend(peerId, buf, off, len, false);
  }

  /**
   * Decrypts one data packet with a session's keys, in place (the shell's float check). Returns an
   * OVPN_* result (-1: no such session); the payload is then at `sslSpan` [off, len].
   */
  sslDecrypt(peerId: number, buf: Buffer, off: number, len: number): number {
    if (this.closed) return -1;
    return this.h.sslDecrypt(peerId, buf, off, len, this.sslSpan);
  }

  /** OpenVPN over TCP: a stream whose framing and data packets run natively (see SslOffload) */
  openSslTcp(stream: number, maxFrame?: number): boolean {
    return !this.closed && typeof this.h.sslTcpOpen === 'function' && this.h.sslTcpOpen(stream, maxFrame);
  }

  bindSslTcp(stream: number, peerId: number): boolean {
    return !this.closed && this.h.sslTcpBind(stream, peerId);
  }

  closeSslTcp(stream: number): void {
    if (!this.closed) this.h.sslTcpClose(stream);
  }

  sslTcpChunk(stream: number, buf: Buffer, off: number, len: number): number {
    if (this.closed) return -1;
    return this.h.sslTcpChunk(stream, buf, off, len, this.sslTcpList, this.sslTcpSpill);
  }

  flushSslTcp(): void {
    if (!this.closed) this.h.sslTcpFlush();
  }

  /** OpenVPN over TCP, the send side in C++ (see SslOffload.setSslTcpWriter) */
  setSslTcpWriter(peerId: number, write: SslTcpWriter | null): boolean {
    const h = this.h;
    if (this.closed || !h.setSslTcpOutput || !h.sslTcpOutput) return false;
    if (!this.tcpOutputSet) {
      h.setSslTcpOutput((list) => this.onTcpOutput(list));
      this.tcpOutputSet = true;
    }
    if (!h.sslTcpOutput(peerId, write !== null)) return false;
    if (write) this.tcpWriters.set(peerId, write);
    else this.tcpWriters.delete(peerId);
    return true;
  }

  /** one batch of native TCP output: [peerId, Buffer, frames, ...] */
  private onTcpOutput(list: (number | Buffer)[]): void {
    for (let i = 0; i + 2 < list.length; i += 3) {
      const w = this.tcpWriters.get(list[i] as number);
      if (!w) continue;
      try {
        w(list[i + 1] as Buffer, list[i + 2] as number);
      } catch (err) {
        this.log.warn({ err, peerId: list[i] }, 'ssl tcp writer failed');
      }
    }
  }

  private onSsl(n: number): void {
    if (this.closed) return;
    const m = this.sslMeta;
    const touched = new Set<SslDatagramHandler>();
    for (let i = 0; i < n; i++) {
      const k = i * SSL_STRIDE;
      const h = this.sslHandlers[m[k + 2]!];
      if (!h) continue;
      const fam = m[k + 3] === 6 ? 6 : 4;
      const from: Endpoint = { family: fam, address: bytesToIp(this.sslAddr.subarray(i * 16, i * 16 + (fam === 4 ? 4 : 16))), port: m[k + 4]! };
      try {
        if (m[k + 6] === SSL_KIND_DATAGRAM) h.datagram(this.sslBuf, m[k]!, m[k + 1]!, from);
        else h.plaintext(m[k + 5]!, this.sslBuf, m[k]!, m[k + 1]!, from);
      } catch (err) {
        this.log.error({ err }, 'SSL datagram handler failed');
      }
      touched.add(h);
    }
    for (const h of touched) {
      try {
        h.flush();
      } catch (err) {
        this.log.error({ err }, 'SSL datagram handler flush failed');
      }
    }
  }

  // ---------------------------------------------------------------- once per native batch

  private onNative(ctl: number, sink: number, events: number): void {
    if (this.closed) return;
    if (sink > 0) this.deliverSinks(sink);
    if (ctl > 0) this.deliverControl(ctl);
    if (events > 0) this.deliverEvents(events);
  }

  private deliverSinks(n: number): void {
    const m = this.sinkMeta;
    for (let i = 0; i < n; i++) {
      this.sinks.push(m[i * SINK_STRIDE + 2]!, this.sinkBuf, m[i * SINK_STRIDE]!, m[i * SINK_STRIDE + 1]!);
    }
    this.sinks.flush();
  }

  private deliverControl(n: number): void {
    const m = this.ctlMeta;
    for (let i = 0; i < n; i++) {
      const off = m[i * CTL_STRIDE]!;
      const len = m[i * CTL_STRIDE + 1]!;
      const bound = this.bindLocal[m[i * CTL_STRIDE + 2]!]!;
      const fam = m[i * CTL_STRIDE + 3] === 6 ? 6 : 4;
      const a = i * CTL_ADDR_STRIDE;
      const addr = this.ctlAddr.subarray(a, a + (fam === 4 ? 4 : 16));
      // on a wildcard socket, the address the peer reached (src/native/io/pktinfo.h)
      const lf = m[i * CTL_STRIDE + 5];
      const local: Endpoint = lf === 4 || lf === 6
        ? { family: lf, address: bytesToIp(this.ctlAddr.subarray(a + 16, a + 16 + (lf === 4 ? 4 : 16))), port: bound.port }
        : bound;
      const pkt = Buffer.from(this.ctlBuf.subarray(off, off + len));
      const from: Endpoint = { family: fam, address: bytesToIp(addr), port: m[i * CTL_STRIDE + 4]! };
      callControlCallbacks(this.log, this.controlCbs, pkt, from, local);
    }
  }

  private deliverEvents(n: number): void {
    const list: SaEvent[] = [];
    const m = this.events;
    for (let i = 0; i < n; i++) {
      const spi = m[i * EVENT_STRIDE]!;
      const bits = m[i * EVENT_STRIDE + 2]!;
      pushSaEvents(list, spi, m[i * EVENT_STRIDE + 1] === 0 ? 'in' : 'out', bits);
      if (bits & SA_EVENT_PEER_MOVED) {
        // the engine already moved the inbound SA: read where to (rare path)
        const fp = this.h.saRemote(spi, true, this.addrTmp);
        const fam = fp >= 0 ? Math.floor(fp / 65536) : 0;
        if (fam === 4 || fam === 6) {
          pushPeerMoved(list, spi, { family: fam, address: bytesToIp(this.addrTmp.subarray(0, fam === 4 ? 4 : 16)), port: fp % 65536 });
        }
      }
    }
    for (const ev of list) {
      logSaEvent(this.log, ev);
      callSaEventCallbacks(this.log, this.eventCbs, ev);
    }
  }

  private addr16(bytes: Buffer): Buffer {
    this.addrTmp.fill(0);
    bytes.copy(this.addrTmp, 0, 0, Math.min(16, bytes.length));
    return this.addrTmp;
  }
}
