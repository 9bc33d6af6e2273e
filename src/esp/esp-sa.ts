import type { EncTransform } from '../crypto/aead.js';
import type { Family, Prefix } from '../common/ip.js';
import { parseIp } from '../common/ip.js';
import { VpnError } from '../common/errors.js';
import { formatChildSpi } from '../common/spi.js';
import { DROP_REASON_COUNT } from './drop-reason.js';
import { REPLAY_WINDOW_DEFAULT, ReplayWindow } from './replay-window.js';

/** Byte and packet limits; 0 means "no limit". Time limits belong to the control plane's timer wheel. */
export interface SaLifetime {
  readonly softBytes: number;
  readonly hardBytes: number;
  readonly softPackets: number;
  readonly hardPackets: number;
}

export const NO_LIFETIME: SaLifetime = Object.freeze({ softBytes: 0, hardBytes: 0, softPackets: 0, hardPackets: 0 });

/** Event bits returned by `EspSa.count` and carried in `EspSpan.event`; each fires once per SA. */
export const SA_EVENT_SOFT = 1;
export const SA_EVENT_HARD = 2;
export const SA_EVENT_SEQ_EXHAUSTED = 4;
/**
 * An authenticated inbound packet came from another outer address/port than the SA's peer (a NAT
 * mapping changed): the data plane moved the SA's peer endpoint and reports it once.
 */
export const SA_EVENT_PEER_MOVED = 8;

/**
 * RFC 4303 §3.3.3: without ESN the last usable sequence number is 2^32 − 1; with ESN (§2.2.1) it is
 * 2^64 − 1, i.e. both 32-bit halves at SEQ_MAX. The counter never cycles: the SA must be rekeyed.
 */
export const SEQ_MAX = 0xffffffff;
const TWO_32 = 4294967296;

export interface EspSaConfig {
  spi: number;
  direction: 'in' | 'out';
  transform: EncTransform;
  /** inbound only; multiple of 32; default 1024 */
  replayWindow?: number;
  /** RFC 4303 §2.2.1 extended (64-bit) sequence numbers, negotiated with the ESN transform; default false */
  esn?: boolean;
  /** outbound only: the last sequence number already used (the next packet carries +1); default 0. Tests start near 2^32. */
  initialSeq?: number;
  /** outbound only, with ESN: the high 32 bits of that last used number; default 0. Tests start near 2^64. */
  initialSeqHi?: number;
  /** our side's traffic selectors (inbound: inner dst must match; outbound: inner src must match) */
  localTs: readonly Prefix[];
  /** the peer's traffic selectors (inbound: inner src; outbound: inner dst) */
  remoteTs: readonly Prefix[];
  /** outer endpoints of the UDP-encapsulated SA (RFC 3948) */
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  lifetime?: SaLifetime;
}

/**
 * One direction of an ESP SA: keys (inside `transform`), sequence state, counters and lifetimes.
 * Runtime object with a stable shape: every field is set in the constructor.
 */
export class EspSa {
  readonly spi: number;
  readonly direction: 'in' | 'out';
  readonly transform: EncTransform;
  /** inbound: anti-replay window; outbound: null */
  readonly replay: ReplayWindow | null;
  /** 64-bit extended sequence numbers (RFC 4303 §2.2.1): only the low 32 bits go on the wire */
  readonly esn: boolean;
  /** outbound: the last sequence number sent (starts at 0, first packet carries 1); with ESN its low 32 bits */
  seq: number;
  /** outbound with ESN: the high 32 bits of the last sequence number sent (0 without ESN) */
  seqHi: number;
  bytes: number;
  packets: number;
  /** drops by DropReason */
  readonly drops: Float64Array;
  readonly lifetime: SaLifetime;
  softReached: boolean;
  hardReached: boolean;
  seqExhausted: boolean;
  readonly localTs: readonly Prefix[];
  readonly remoteTs: readonly Prefix[];
  readonly family: Family;
  readonly localAddr: string;
  readonly localPort: number;
  /** the peer's outer endpoint; moved by setRemote when its NAT mapping changes (RFC 7296 §2.23) */
  remoteAddr: string;
  remotePort: number;
  /** the remote address in network order, 16 bytes (IPv4 in the first 4), as PacketBatch.addr wants it */
  readonly remoteAddrBytes: Buffer;
  /** we always use ESP-in-UDP on 4500 for now (RFC 3948) */
  readonly encapUdp: boolean;
  /** set by the data plane: index of the UDP bind that sends for this SA (-1 = none) */
  ioIndex: number;
  /** "0x" + SPI in hex, the one way child SAs print */
  readonly id: string;

  constructor(c: EspSaConfig) {
    // RFC 4303 §2.1: SPI 0 is reserved for local use and never appears on the wire
    if (!Number.isInteger(c.spi) || c.spi <= 0 || c.spi > 0xffffffff) throw new VpnError('ERR_SA', `bad SPI ${c.spi}`);
    const local = parseIp(c.localAddr);
    const remote = parseIp(c.remoteAddr);
    if (!local || !remote || local.family !== remote.family) {
      throw new VpnError('ERR_SA', `bad outer addresses ${c.localAddr} / ${c.remoteAddr}`);
    }
    this.spi = c.spi >>> 0;
    this.direction = c.direction;
    this.transform = c.transform;
    this.replay = c.direction === 'in' ? new ReplayWindow(c.replayWindow ?? REPLAY_WINDOW_DEFAULT) : null;
    this.esn = c.esn ?? false;
    this.seq = c.initialSeq ?? 0;
    this.seqHi = this.esn ? (c.initialSeqHi ?? 0) : 0;
    this.bytes = 0;
    this.packets = 0;
    this.drops = new Float64Array(DROP_REASON_COUNT);
    this.lifetime = Object.freeze({ ...(c.lifetime ?? NO_LIFETIME) });
    this.softReached = false;
    this.hardReached = false;
    this.seqExhausted = false;
    this.localTs = Object.freeze([...c.localTs]);
    this.remoteTs = Object.freeze([...c.remoteTs]);
    this.family = local.family;
    this.localAddr = c.localAddr;
    this.localPort = c.localPort;
    this.remoteAddr = c.remoteAddr;
    this.remotePort = c.remotePort;
    this.remoteAddrBytes = Buffer.alloc(16);
    remote.bytes.copy(this.remoteAddrBytes, 0);
    this.encapUdp = true;
    this.ioIndex = -1;
    this.id = formatChildSpi(this.spi);
  }

  /**
   * Per packet, no allocation: whether `addr` (4 or 16 bytes at `off`, the family's length) and
   * `port` differ from the peer endpoint this SA has.
   */
  remoteDiffers(addr: Uint8Array, off: number, port: number): boolean {
    if (port !== this.remotePort) return true;
    const n = this.family === 4 ? 4 : 16;
    const mine = this.remoteAddrBytes;
    for (let i = 0; i < n; i++) if (addr[off + i] !== mine[i]) return true;
    return false;
  }

  /** Moves the peer endpoint (same family); false when `address` is not an address of it. */
  setRemote(address: string, port: number): boolean {
    const ip = parseIp(address);
    if (!ip || ip.family !== this.family) return false;
    this.remoteAddrBytes.fill(0);
    ip.bytes.copy(this.remoteAddrBytes, 0);
    this.remoteAddr = address;
    this.remotePort = port;
    return true;
  }

  /**
   * Counts one packet of `bytes` inner bytes. Returns the SA_EVENT_* bits crossed by this packet
   * (each lifetime fires once). Should be called after the packet was authenticated (in) or sealed (out).
   */
  count(bytes: number): number {
    this.bytes += bytes;
    this.packets++;
    const lt = this.lifetime;
    let ev = 0;
    if (!this.softReached && ((lt.softBytes > 0 && this.bytes >= lt.softBytes) || (lt.softPackets > 0 && this.packets >= lt.softPackets))) {
      this.softReached = true;
      ev |= SA_EVENT_SOFT;
    }
    if (!this.hardReached && ((lt.hardBytes > 0 && this.bytes >= lt.hardBytes) || (lt.hardPackets > 0 && this.packets >= lt.hardPackets))) {
      this.hardReached = true;
      ev |= SA_EVENT_HARD;
    }
    return ev;
  }

  /** The 64-bit sequence number as a double: outbound the last one sent, inbound the highest authenticated (exact below 2^53). */
  seq64(): number {
    if (this.replay) return this.replay.topHi * TWO_32 + this.replay.top;
    return this.seqHi * TWO_32 + this.seq;
  }

  /** Total drops over all reasons. */
  dropTotal(): number {
    let n = 0;
    for (let i = 1; i < this.drops.length; i++) n += this.drops[i]!;
    return n;
  }
}

/**
 * Where encap/decap put their result (one preallocated object per caller, reused per packet):
 * the packet now occupies buf[off, off + len); `event` carries SA_EVENT_* bits crossed by it.
 */
export class EspSpan {
  off = 0;
  len = 0;
  event = 0;
}
