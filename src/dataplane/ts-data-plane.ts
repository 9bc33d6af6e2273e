import { PacketBatch } from '../common/batch.js';
import type { Endpoint } from '../common/endpoint.js';
import { bytesToIp, parseIp } from '../common/ip.js';
import { classifyNattDatagram, NAT_KEEPALIVE_BYTE, NATT_IKE, NATT_KEEPALIVE, NON_ESP_MARKER_SIZE, writeNonEspMarker } from '../common/ipsec-udp.js';
import type { Prefix } from '../common/ip.js';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { createEncTransform } from '../crypto/aead.js';
import { espDecap } from '../esp/decap.js';
import { DROP_REASON_COUNT, DropReason } from '../esp/drop-reason.js';
import { ESP_HEADER_SIZE, ESP_MAX_HEADROOM, ESP_MAX_TAILROOM, espEncap } from '../esp/encap.js';
import { EspSa, EspSpan } from '../esp/esp-sa.js';
import { Sad } from '../esp/sad.js';
import { innerIpLength, policyAllows, Route, Spd } from '../esp/spd.js';
import type { UdpBind } from '../net/udp-bind.js';
import type { TunDevice } from '../tun/tun-device.js';
import { callControlCallbacks, callSaEventCallbacks } from './callbacks.js';
import type { ControlCallback, SaEventCallback } from './callbacks.js';
import { bindIndexFor } from './bind-lookup.js';
import { dropsByName } from './drop-counters.js';
import type { DataPlane, DataPlaneStats, SaCounters, SaEvent, SaParams } from './data-plane.js';
import type { EspSaConfig } from '../esp/esp-sa.js';
import type { PacketSink } from '../common/packet-sink.js';
import { logSaEvent, logSaInstalled, logSaRemoved, pushPeerMoved, pushSaEvents } from './sa-log.js';
import { SinkTable } from './sink-table.js';
import { PolicyStage } from '../vpcep/nat.js';
import { POLICY_DROPS, POLICY_PASS } from '../vpcep/policy.js';
import type { DataPathPolicy, PolicyCounters, PolicyDrop } from '../vpcep/policy.js';

/**
 * The TypeScript data plane: TUN ⇄ ESP-in-UDP (RFC 4303 tunnel mode, RFC 3948 encapsulation).
 *
 * Outbound flow (one TUN batch):
 *   1. per packet: check the IP header; with a policy set, the policy stage (src/vpcep/nat.ts: replies
 *      of VPC endpoint flows translated back, other packets to an endpoint address dropped); LPM on the
 *      inner destination → route;
 *   2. a sink route hands the packet to its sink (SSL VPN); an SA route finds the outbound SA by SPI;
 *   3. policy: inner src/dst inside the SA's selectors;
 *   4. copy the inner packet into the next slot of the send batch of the SA's UDP bind, at a headroom
 *      offset, and encapsulate it there in place (ESP header + IV before, trailer + ICV after);
 *   5. after the batch: one send per bind, one flush per touched sink, then SA events.
 *   (We copy before sealing rather than sealing in the TUN slot and copying after: same one copy, and it
 *   does not depend on how much headroom the TunDevice left.)
 *
 * Inbound flow (one UDP batch):
 *   1. a single 0xff byte is a NAT-T keepalive (RFC 3948 §2.3): count, drop (classifyNattDatagram);
 *   2. a zero 4-byte non-ESP marker means IKE: copy the rest out and queue it for the control callback;
 *   3. otherwise ESP: SPI → inbound SA, decapsulate in place (replay, ICV, padding, policy);
 *   4. with a policy set, the policy stage with the SA's origin (ACL, or endpoint translation in place);
 *   5. copy the inner packet into the TUN write batch; after the batch: one TUN write, control callbacks,
 *      SA events.
 *
 * No per-packet closures, promises, object literals or Buffer.concat on these paths; drops are numeric
 * reasons counted per SA and globally.
 */

// Implementation choices
const DEFAULT_BATCH = 64;
const SEND_HEADROOM = Math.max(64, ESP_MAX_HEADROOM);
/** how often idle VPC endpoint flows are swept (PolicyStage.expire) */
const POLICY_EXPIRE_INTERVAL_MS = 1000;

/** An SA as this data plane keeps it: inbound SAs carry their origin into the policy stage. */
class OriginEspSa extends EspSa {
  readonly origin: number;
  constructor(c: EspSaConfig, origin: number) {
    super(c);
    this.origin = origin >>> 0;
  }
}

/** ms on a monotonic clock, for the policy stage's flow timeouts */
function monotonicMs(): number {
  return performance.now();
}

export interface TsDataPlaneOptions {
  logger?: Logger;
  /** packets per send/TUN-write batch (default 64) */
  batchSize?: number;
  /** largest inner packet accepted from the TUN or the wire (default max(tun.mtu, 1500)) */
  maxPacket?: number;
}

/** A UdpBind that can say which local address a received datagram reached (NativeUdp). */
interface LocalAddressSource {
  localAddressOf?(i: number): string | null;
}

class PendingControl {
  constructor(
    readonly pkt: Buffer,
    readonly from: Endpoint,
    readonly local: Endpoint,
  ) {}
}

export class TsDataPlane implements DataPlane {
  /** no SSL offload here: the SSL VPN data channel runs in TypeScript */
  readonly sslOffload = null;
  private readonly log: Logger;
  private readonly tun: TunDevice;
  private readonly binds: readonly UdpBind[];
  private readonly bindLocal: readonly Endpoint[];
  private readonly sad = new Sad();
  private readonly spd = new Spd();
  private readonly sinks: SinkTable;
  private readonly sendBatches: PacketBatch[];
  private readonly tunBatch: PacketBatch;
  private readonly ctlBatch: PacketBatch;
  private readonly span = new EspSpan();
  private readonly drops = new Float64Array(DROP_REASON_COUNT);
  private readonly st: DataPlaneStats = {
    tunRxPackets: 0,
    tunRxBytes: 0,
    espTxPackets: 0,
    espRxPackets: 0,
    tunTxPackets: 0,
    tunTxBytes: 0,
    sinkPackets: 0,
    controlPackets: 0,
    natKeepalives: 0,
  };
  private readonly maxPacket: number;
  private controlCbs: ControlCallback[] = [];
  private eventCbs: SaEventCallback[] = [];
  private pendingEvents: SaEvent[] = [];
  private pendingControl: PendingControl[] = [];
  private tunFlushScheduled = false;
  private closed = false;
  /** null until setPolicy: the data path then costs one branch */
  private policy: PolicyStage | null = null;
  private policyTimer: NodeJS.Timeout | null = null;
  private readonly flushTunSoon: () => void;

  constructor(tun: TunDevice, binds: readonly UdpBind[], opts: TsDataPlaneOptions = {}) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'dataplane' });
    this.sinks = new SinkTable(this.log);
    this.tun = tun;
    this.binds = [...binds];
    this.bindLocal = this.binds.map((b) => ({ family: b.family, address: b.address, port: b.port }));
    const batch = opts.batchSize ?? DEFAULT_BATCH;
    this.maxPacket = opts.maxPacket ?? Math.max(tun.mtu, 1500);
    const slot = SEND_HEADROOM + this.maxPacket + ESP_MAX_TAILROOM;
    this.sendBatches = this.binds.map(() => new PacketBatch(batch, slot, SEND_HEADROOM));
    this.tunBatch = new PacketBatch(batch, this.maxPacket, 0);
    this.ctlBatch = new PacketBatch(1, 65536, 0);
    this.flushTunSoon = () => {
      this.tunFlushScheduled = false;
      this.flushTun();
    };
    tun.start((b) => this.onTunBatch(b));
    this.binds.forEach((b, i) => b.start((batch) => this.onUdpBatch(i, batch)));
  }

  // ---------------------------------------------------------------- control-plane API

  installSa(p: SaParams): void {
    if (this.closed) return;
    const transform = createEncTransform({ encr: p.encr, encrKeyBits: p.encrKeyBits, integ: p.integ }, p.encrKey, p.integKey);
    const sa = new OriginEspSa({
      spi: p.spi,
      direction: p.direction,
      transform,
      replayWindow: p.replayWindow,
      esn: p.esn ?? false,
      initialSeq: p.initialSeq,
      initialSeqHi: p.initialSeqHi,
      localTs: p.localTs,
      remoteTs: p.remoteTs,
      localAddr: p.localAddr,
      localPort: p.localPort,
      remoteAddr: p.remoteAddr,
      remotePort: p.remotePort,
      lifetime: p.lifetime,
    }, p.direction === 'in' ? p.origin ?? 0 : 0);
    sa.ioIndex = this.findBind(sa);
    const old = this.sad.add(sa);
    logSaInstalled(this.log, p, old !== undefined, sa.ioIndex, transform.name);
  }

  setSaRemote(spi: number, direction: 'in' | 'out', remote: Endpoint): boolean {
    if (this.closed) return false;
    const sa = this.sad.get(spi, direction);
    return sa !== undefined && sa.setRemote(remote.address, remote.port);
  }

  removeSa(spi: number, direction: 'in' | 'out'): void {
    const sa = this.sad.remove(spi, direction);
    if (sa) logSaRemoved(this.log, sa.spi, direction, sa);
  }

  addRoute(prefix: Prefix, outSpi: number): void {
    if (this.closed) return;
    this.spd.set(prefix, new Route(outSpi >>> 0, -1));
  }

  removeRoute(prefix: Prefix): void {
    this.spd.remove(prefix);
  }

  addSinkRoute(prefix: Prefix, sink: PacketSink): void {
    if (this.closed) return;
    this.spd.set(prefix, new Route(-1, this.sinks.indexOf(sink)));
  }

  removeSinkRoute(prefix: Prefix): void {
    const r = this.spd.get(prefix);
    if (r && r.sinkIndex >= 0) this.spd.remove(prefix);
  }

  saCounters(spi: number, direction: 'in' | 'out'): SaCounters | undefined {
    const sa = this.sad.get(spi, direction);
    if (!sa) return undefined;
    const drops = dropsByName(sa.drops, 0, true);
    return { bytes: sa.bytes, packets: sa.packets, drops, seq: sa.seq64() };
  }

  dropCounters(): Record<string, number> {
    return dropsByName(this.drops, 0, false);
  }

  stats(): DataPlaneStats {
    // bytes come from the TUN device's own counters (LinuxTun counts them per read and write)
    const t = this.tun.stats();
    return { ...this.st, tunRxBytes: t.rxBytes, tunTxBytes: t.txBytes };
  }

  onControl(cb: (pkt: Buffer, from: Endpoint, local: Endpoint) => void): void {
    this.controlCbs.push(cb);
  }

  onSaEvent(cb: (ev: SaEvent) => void): void {
    this.eventCbs.push(cb);
  }

  sendNatKeepalive(to: Endpoint, local: Endpoint): boolean {
    // RFC 3948 §2.3: one 0xFF byte, no non-ESP marker
    this.ctlBatch.buf[0] = NAT_KEEPALIVE_BYTE;
    return this.sendOne(to, local, 1);
  }

  sendControl(pkt: Buffer, to: Endpoint, local: Endpoint): boolean {
    if (pkt.length + NON_ESP_MARKER_SIZE > this.ctlBatch.slotSize) return false;
    pkt.copy(this.ctlBatch.buf, writeNonEspMarker(this.ctlBatch.buf, 0));
    return this.sendOne(to, local, pkt.length + NON_ESP_MARKER_SIZE);
  }

  /** Sends the first `len` bytes of the control batch's first slot from `local` to `to`. */
  private sendOne(to: Endpoint, local: Endpoint, len: number): boolean {
    if (this.closed) return false;
    const i = bindIndexFor(this.binds, local.family, local.address, local.port);
    const addr = parseIp(to.address);
    if (i < 0 || !addr) return false;
    const b = this.ctlBatch;
    b.count = 1;
    b.off[0] = 0;
    b.len[0] = len;
    b.family[0] = addr.family;
    b.addr.fill(0, 0, 16);
    addr.bytes.copy(b.addr, 0);
    b.port[0] = to.port;
    const n = this.binds[i]!.send(b);
    b.count = 0;
    return n === 1;
  }

  writeToTun(pkt: Buffer, off: number, len: number, origin?: number): void {
    if (this.closed) return;
    if (origin !== undefined && this.policy !== null) {
      // translate the copy in the TUN batch, not the caller's buffer; a drop takes the slot back
      const tb = this.tunBatch;
      if (!this.appendTun(pkt, off, len)) return;
      const slot = tb.count - 1;
      if (this.policy.inbound(tb.buf, tb.off[slot]!, len, origin, monotonicMs()) !== POLICY_PASS) {
        tb.count = slot;
        return;
      }
    } else if (!this.appendTun(pkt, off, len)) {
      return;
    }
    if (!this.tunFlushScheduled) {
      this.tunFlushScheduled = true;
      setImmediate(this.flushTunSoon);
    }
  }

  setPolicy(p: DataPathPolicy): void {
    if (this.closed) return;
    const now = monotonicMs();
    if (this.policy === null) this.policy = new PolicyStage(p, now);
    else this.policy.setPolicy(p, now);
    if (this.policyTimer === null) {
      const stage = this.policy;
      this.policyTimer = setInterval(() => stage.expire(monotonicMs()), POLICY_EXPIRE_INTERVAL_MS);
      this.policyTimer.unref();
    }
  }

  policyCounters(): PolicyCounters {
    if (this.policy !== null) return this.policy.counters();
    const drops = {} as Record<PolicyDrop, number>;
    for (const d of POLICY_DROPS) drops[d] = 0;
    return { drops, endpoints: [], aclDenied: new Map(), flows: 0 };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.policyTimer !== null) clearInterval(this.policyTimer);
    this.policyTimer = null;
    const sas = this.sad.inboundCount + this.sad.outboundCount;
    this.sad.clear(); // drop the SAs (and with them the key objects)
    this.pendingControl = [];
    this.pendingEvents = [];
    this.log.info({ sas }, 'data plane closed');
  }

  // ---------------------------------------------------------------- outbound: TUN → ESP

  private onTunBatch(batch: PacketBatch): void {
    if (this.closed) return;
    const buf = batch.buf;
    const span = this.span;
    const n = batch.count;
    this.st.tunRxPackets += n;
    const policy = this.policy;
    const now = policy === null ? 0 : monotonicMs();
    for (let i = 0; i < n; i++) {
      const off = batch.off[i]!;
      const len = batch.len[i]!;
      if (innerIpLength(buf, off, len) < 0) {
        this.drops[DropReason.BAD_INNER]!++;
        continue;
      }
      if (policy !== null && policy.outbound(buf, off, len, now) !== POLICY_PASS) continue; // counted by the stage
      const route = this.spd.lookup(buf, off);
      if (route === undefined) {
        this.drops[DropReason.NO_ROUTE]!++;
        continue;
      }
      if (route.sinkIndex >= 0) {
        this.sinks.push(route.sinkIndex, buf, off, len);
        this.st.sinkPackets++;
        continue;
      }
      const sa = this.sad.get(route.outSpi, 'out');
      if (sa === undefined) {
        this.drops[DropReason.NO_SA]!++;
        continue;
      }
      if (!policyAllows(sa, buf, off, false)) {
        sa.drops[DropReason.POLICY]!++;
        this.drops[DropReason.POLICY]!++;
        continue;
      }
      const bi = sa.ioIndex;
      if (bi < 0) {
        sa.drops[DropReason.NO_BIND]!++;
        this.drops[DropReason.NO_BIND]!++;
        continue;
      }
      if (len > this.maxPacket) {
        sa.drops[DropReason.NO_ROOM]!++;
        this.drops[DropReason.NO_ROOM]!++;
        continue;
      }
      const sb = this.sendBatches[bi]!;
      if (sb.count === sb.capacity) this.flushSend(bi);
      const slot = sb.count;
      const start = slot * sb.slotSize + SEND_HEADROOM;
      buf.copy(sb.buf, start, off, off + len);
      const r = espEncap(sa, sb.buf, start, len, (slot + 1) * sb.slotSize, span);
      if (span.event !== 0) this.queueEvents(sa, span.event);
      if (r !== DropReason.NONE) {
        this.drops[r]!++;
        continue;
      }
      sb.off[slot] = span.off;
      sb.len[slot] = span.len;
      sb.family[slot] = sa.family;
      sa.remoteAddrBytes.copy(sb.addr, slot * 16);
      sb.port[slot] = sa.remotePort;
      sb.count = slot + 1;
      this.st.espTxPackets++;
    }
    for (let b = 0; b < this.sendBatches.length; b++) if (this.sendBatches[b]!.count > 0) this.flushSend(b);
    this.sinks.flush();
    this.deliverPending();
  }

  private flushSend(b: number): void {
    const sb = this.sendBatches[b]!;
    this.binds[b]!.send(sb);
    sb.count = 0;
  }

  // ---------------------------------------------------------------- inbound: UDP → TUN

  private onUdpBatch(bindIndex: number, batch: PacketBatch): void {
    if (this.closed) return;
    const buf = batch.buf;
    const span = this.span;
    const n = batch.count;
    const policy = this.policy;
    const now = policy === null ? 0 : monotonicMs();
    for (let i = 0; i < n; i++) {
      const off = batch.off[i]!;
      const len = batch.len[i]!;
      const kind = classifyNattDatagram(buf, off, len);
      if (kind === NATT_KEEPALIVE) {
        this.st.natKeepalives++;
        continue;
      }
      if (kind === NATT_IKE) {
        this.queueControl(bindIndex, batch, i);
        continue;
      }
      if (len < ESP_HEADER_SIZE) {
        this.drops[DropReason.SHORT]!++;
        continue;
      }
      const sa = this.sad.lookupInbound(buf, off);
      if (sa === undefined) {
        this.drops[DropReason.NO_SA]!++; // RFC 4303 §3.4.2: audit, no INVALID_SPI (as libipsec)
        continue;
      }
      const r = espDecap(sa, buf, off, len, span);
      if (span.event !== 0) this.queueEvents(sa, span.event);
      if (r !== DropReason.NONE) {
        this.drops[r]!++;
        continue;
      }
      this.st.espRxPackets++;
      // authenticated: a datagram from another address:port moves the SA's peer (NAT rebinding)
      if (sa.remoteDiffers(batch.addr, i * 16, batch.port[i]!)) this.peerMoved(sa, batch, i);
      // counted by the stage when dropped
      if (policy !== null && policy.inbound(buf, span.off, span.len, (sa as OriginEspSa).origin, now) !== POLICY_PASS) continue;
      this.appendTun(buf, span.off, span.len);
    }
    this.flushTun();
    this.deliverPending();
  }

  /** copies a packet into the TUN write batch (flushing a full one first); false: too big, counted */
  private appendTun(src: Buffer, off: number, len: number): boolean {
    const tb = this.tunBatch;
    if (len > tb.slotSize) {
      this.drops[DropReason.NO_ROOM]!++;
      return false;
    }
    if (tb.count === tb.capacity) this.flushTun();
    const slot = tb.count;
    const start = slot * tb.slotSize;
    src.copy(tb.buf, start, off, off + len);
    tb.off[slot] = start;
    tb.len[slot] = len;
    tb.count = slot + 1;
    return true;
  }

  private flushTun(): void {
    const tb = this.tunBatch;
    if (tb.count === 0) return;
    this.st.tunTxPackets += this.tun.write(tb);
    tb.count = 0;
  }

  // ---------------------------------------------------------------- rare paths: control, events

  private queueControl(bindIndex: number, batch: PacketBatch, i: number): void {
    const off = batch.off[i]!;
    const len = batch.len[i]!;
    const fam = batch.family[i] === 6 ? 6 : 4;
    const addr = batch.addr.subarray(i * 16, i * 16 + (fam === 4 ? 4 : 16));
    const pkt = Buffer.from(batch.buf.subarray(off + NON_ESP_MARKER_SIZE, off + len));
    // on a wildcard bind (NativeUdp), the address the peer reached; replies leave from it
    // (src/native/io/pktinfo.h), and the IKE SA learns where it was reached
    const bound = this.bindLocal[bindIndex]!;
    const reached = (this.binds[bindIndex] as LocalAddressSource).localAddressOf?.(i) ?? null;
    const local: Endpoint = reached === null ? bound : { family: reached.includes(':') ? 6 : 4, address: reached, port: bound.port };
    this.pendingControl.push(new PendingControl(pkt, { family: fam, address: bytesToIp(addr), port: batch.port[i]! }, local));
    this.st.controlPackets++;
  }

  /** Rare path: the inbound SA takes the datagram's source as its peer; reported once (SaEvent 'peer-moved'). */
  private peerMoved(sa: EspSa, batch: PacketBatch, i: number): void {
    const fam = batch.family[i] === 6 ? 6 : 4;
    if (fam !== sa.family) return;
    const address = bytesToIp(batch.addr.subarray(i * 16, i * 16 + (fam === 4 ? 4 : 16)));
    const port = batch.port[i]!;
    sa.setRemote(address, port);
    pushPeerMoved(this.pendingEvents, sa.spi, { family: fam, address, port });
  }

  private queueEvents(sa: EspSa, bits: number): void {
    pushSaEvents(this.pendingEvents, sa.spi, sa.direction, bits);
  }

  private deliverPending(): void {
    if (this.pendingControl.length > 0) {
      const list = this.pendingControl;
      this.pendingControl = [];
      for (const c of list) {
        callControlCallbacks(this.log, this.controlCbs, c.pkt, c.from, c.local);
      }
    }
    if (this.pendingEvents.length > 0) {
      const list = this.pendingEvents;
      this.pendingEvents = [];
      for (const ev of list) {
        logSaEvent(this.log, ev);
        callSaEventCallbacks(this.log, this.eventCbs, ev);
      }
    }
  }

  private findBind(sa: EspSa): number {
    return bindIndexFor(this.binds, sa.family, sa.localAddr, sa.localPort);
  }
}
