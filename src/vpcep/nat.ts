import { VpnError } from '../common/errors.js';
import { applyDelta, applyDeltaUdp, delta16, delta32 } from './checksum.js';
import { KeyTable, mix32, tableSizeFor } from './key-table.js';
import { POLICY_DROPS, POLICY_PASS, PROTO_ICMP, PROTO_TCP, PROTO_UDP, policyDropCode } from './policy.js';
import type { DataPathPolicy, EndpointCounters, PolicyCounters, PolicyDrop, PolicyLimits, PolicyStageApi } from './policy.js';

/**
 * The policy stage in TypeScript: ACLs by origin and VPC endpoint translation, with the semantics
 * documented in src/vpcep/policy.ts (the native engine implements the same stage in C++).
 *
 * Inbound (a decrypted packet from a tunnel of origin o):
 *   1. IPv4 to an endpoint address E: header checks, open?, whitelist (o or source), then
 *      TCP/UDP: port map → flow (created by UDP or a SYN without ACK) → DNAT to the backend and SNAT to
 *      E:natPort in place; ICMP errors about a flow: embedded header and outer addresses translated;
 *   2. anything else: the origin's ACL, if it has one.
 * Outbound (a packet read from the TUN, before the route lookup), IPv4 to E only:
 *   1. TCP/UDP: flow by (E, protocol, natPort), source must be the flow's backend → back to
 *      E:servicePort → client:sport;
 *   2. ICMP errors about E:natPort → backend: embedded header and outer destination translated back.
 *
 * Per-packet work allocates nothing: the endpoint, port-map, whitelist and ACL lookups are static
 * typed-array hash tables rebuilt by setPolicy; flows live in one Int32Array of maxFlows 64-byte records indexed by
 * two open-addressing tables (forward key, reverse key) with backward-shift deletion; NAT ports come
 * from a per-(endpoint, protocol) bitmap scanned word by word from a cursor. Checksums are updated
 * incrementally (RFC 1624). Idle flows are removed lazily when a lookup meets them and by `expire`,
 * which sweeps a bounded number of slots per call.
 */

// ---------------------------------------------------------------- spec constants

const IPV4_MIN_HEADER = 20;
const IPV6_HEADER = 40;
const TCP_MIN_HEADER = 20;
const UDP_HEADER = 8;
const ICMP_HEADER = 8;
/** RFC 792: an ICMP error carries the IP header and at least 64 bits of the datagram's data */
const ICMP_EMBEDDED_L4 = 8;
const ICMP_DEST_UNREACHABLE = 3;
const ICMP_TIME_EXCEEDED = 11;
const ICMP_PARAMETER_PROBLEM = 12;
const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;
/** IPv6 extension headers walked to find the upper-layer protocol (RFC 8200 §4) */
const IPV6_HOP_BY_HOP = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_AH = 51;
const IPV6_DEST_OPTS = 60;

// ---------------------------------------------------------------- implementation choices

/** NAT ports handed out per (endpoint, protocol): the non-privileged range */
const NAT_PORT_MIN = 1024;
const NAT_PORT_COUNT = 65536 - NAT_PORT_MIN;
const PORT_WORDS = NAT_PORT_COUNT / 32;
/** flow slots `expire` looks at per call */
const EXPIRE_SLOTS_PER_CALL = 8192;
/** IPv6 extension headers followed before giving up on finding the ports */
const IPV6_MAX_EXT_HEADERS = 8;

/** a flow record's fields (int32 offsets; REC per flow) */
const R_STATE = 0;
const R_FLAGS = 1;
const R_PROTO = 2;
const R_ORIGIN = 3;
const R_CLIENT = 4;
const R_SPORT = 5;
const R_EP = 6;
const R_SVC_PORT = 7;
const R_NAT_PORT = 8;
const R_BACK_ADDR = 9;
const R_BACK_PORT = 10;
const R_FWD_HASH = 11;
const R_REV_HASH = 12;
const REC = 16;

const FLOW_FREE = 0;
const FLOW_UDP = 1;
const FLOW_TCP = 2;
/** flags: a packet seen client → backend, backend → client, a FIN or RST seen */
const SEEN_IN = 1;
const SEEN_OUT = 2;
const CLOSING = 4;

const D_ACL = policyDropCode('aclDenied');
const D_CLOSED = policyDropCode('endpointClosed');
const D_DENIED = policyDropCode('endpointDenied');
const D_NO_PORT = policyDropCode('endpointNoPort');
const D_NO_FLOW = policyDropCode('endpointNoFlow');
const D_FULL = policyDropCode('endpointTableFull');
const D_BAD = policyDropCode('endpointBadPacket');
const DROP_COUNT = POLICY_DROPS.length;

/** The header length of the IPv4 packet at off whose IHL and total length fit in len; 0 for a malformed header. */
function ipv4HeaderLen(b: Uint8Array, off: number, len: number): number {
  const ihl = (b[off]! & 0x0f) * 4;
  const total = rd16(b, off + 2);
  return ihl >= IPV4_MIN_HEADER && ihl <= len && total >= ihl && total <= len ? ihl : 0;
}

/**
 * Where the TCP or UDP header of the packet at off starts when it carries its ports: a first
 * fragment (RFC 791: later ones carry none) whose fixed header ends by `end`; -1 otherwise.
 */
function portsHeader(b: Uint8Array, off: number, ihl: number, end: number, proto: number): number {
  if ((rd16(b, off + 6) & 0x1fff) !== 0) return -1;
  const l4 = off + ihl;
  return l4 + (proto === PROTO_TCP ? TCP_MIN_HEADER : UDP_HEADER) <= end ? l4 : -1;
}

function rd16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

/** big-endian 32-bit read as a signed int32 (how addresses are kept in the tables) */
function rd32(b: Uint8Array, p: number): number {
  return (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!;
}

function wr16(b: Uint8Array, p: number, v: number): void {
  b[p] = (v >>> 8) & 0xff;
  b[p + 1] = v & 0xff;
}

function wr32(b: Uint8Array, p: number, v: number): void {
  b[p] = (v >>> 24) & 0xff;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}

function mask32(len: number): number {
  return len <= 0 ? 0 : len >= 32 ? -1 : (-1 << (32 - len)) | 0;
}

function randomSeed(): number {
  return (Math.random() * 0x100000000) | 0;
}

/** The static part of a policy, compiled for per-packet lookups. */
class CompiledPolicy {
  readonly epCount: number;
  readonly epId: Int32Array;
  readonly epAddr: Int32Array;
  readonly epOpen: Uint8Array;
  readonly epSrcStart: Int32Array;
  readonly srcAddr: Int32Array;
  readonly srcMask: Int32Array;
  /** E's address → endpoint index */
  readonly epByAddr: KeyTable;
  /** (endpoint index, protocol << 16 | servicePort) → port-map index */
  readonly portMaps: KeyTable;
  readonly pmBackendAddr: Int32Array;
  readonly pmBackendPort: Int32Array;
  /** (endpoint index, origin) → 0 when admitted */
  readonly admitted: KeyTable;
  readonly aclCount: number;
  readonly aclOrigin: Int32Array;
  readonly aclStart: Int32Array;
  /** origin → ACL index */
  readonly aclByOrigin: KeyTable;
  readonly ruleFamily: Uint8Array;
  readonly ruleProto: Uint8Array;
  readonly rulePortLo: Int32Array;
  readonly rulePortHi: Int32Array;
  /** 4 words per rule (IPv4 uses the first) */
  readonly ruleAddr: Int32Array;
  readonly ruleMask: Int32Array;
  readonly limits: PolicyLimits;

  constructor(p: DataPathPolicy, seed: number) {
    const eps = p.endpoints;
    const n = eps.length;
    this.limits = p.limits;
    this.epCount = n;
    this.epId = new Int32Array(n);
    this.epAddr = new Int32Array(n);
    this.epOpen = new Uint8Array(n);
    this.epSrcStart = new Int32Array(n + 1);
    let nSrc = 0;
    let nPm = 0;
    let nOrig = 0;
    for (const e of eps) {
      nSrc += e.sources.length;
      nPm += e.ports.length;
      nOrig += e.origins.length;
    }
    this.srcAddr = new Int32Array(nSrc);
    this.srcMask = new Int32Array(nSrc);
    this.epByAddr = new KeyTable(n, seed);
    this.portMaps = new KeyTable(nPm, seed ^ 0x1234567);
    this.pmBackendAddr = new Int32Array(nPm);
    this.pmBackendPort = new Int32Array(nPm);
    this.admitted = new KeyTable(nOrig, seed ^ 0x2345678);
    let si = 0;
    let pi = 0;
    for (let i = 0; i < n; i++) {
      const e = eps[i]!;
      this.epId[i] = e.id | 0;
      this.epAddr[i] = e.address | 0;
      this.epOpen[i] = e.open ? 1 : 0;
      this.epByAddr.set(e.address, 0, i);
      this.epSrcStart[i] = si;
      for (const s of e.sources) {
        const m = mask32(s.len);
        this.srcMask[si] = m;
        this.srcAddr[si] = s.addr & m;
        si++;
      }
      for (const pm of e.ports) {
        this.pmBackendAddr[pi] = pm.backendAddr | 0;
        this.pmBackendPort[pi] = pm.backendPort & 0xffff;
        this.portMaps.set(i, (pm.protocol << 16) | (pm.servicePort & 0xffff), pi);
        pi++;
      }
      for (const o of e.origins) if (o !== 0) this.admitted.set(i, o, 0);
    }
    this.epSrcStart[n] = si;

    const acls = p.acls.filter((a) => a.origin !== 0);
    this.aclCount = acls.length;
    this.aclOrigin = new Int32Array(acls.length);
    this.aclStart = new Int32Array(acls.length + 1);
    this.aclByOrigin = new KeyTable(acls.length, seed ^ 0x3456789);
    let nRules = 0;
    for (const a of acls) nRules += a.rules.length;
    this.ruleFamily = new Uint8Array(nRules);
    this.ruleProto = new Uint8Array(nRules);
    this.rulePortLo = new Int32Array(nRules);
    this.rulePortHi = new Int32Array(nRules);
    this.ruleAddr = new Int32Array(nRules * 4);
    this.ruleMask = new Int32Array(nRules * 4);
    let ri = 0;
    for (let i = 0; i < acls.length; i++) {
      const a = acls[i]!;
      this.aclOrigin[i] = a.origin | 0;
      this.aclStart[i] = ri;
      this.aclByOrigin.set(a.origin, 0, i);
      for (const r of a.rules) {
        this.ruleFamily[ri] = r.family;
        this.ruleProto[ri] = r.protocol;
        this.rulePortLo[ri] = r.portLo;
        this.rulePortHi[ri] = r.portHi;
        const words = r.family === 4 ? 1 : 4;
        for (let w = 0; w < words; w++) {
          const m = mask32(r.len - 32 * w);
          this.ruleMask[ri * 4 + w] = m;
          this.ruleAddr[ri * 4 + w] = rd32(r.addr, w * 4) & m;
        }
        ri++;
      }
    }
    this.aclStart[acls.length] = ri;
  }

  /** whether origin o or source src may use endpoint e */
  isAdmitted(e: number, origin: number, src: number): boolean {
    if (origin !== 0 && this.admitted.get(e, origin) >= 0) return true;
    const end = this.epSrcStart[e + 1]!;
    for (let i = this.epSrcStart[e]!; i < end; i++) {
      if ((src & this.srcMask[i]!) === this.srcAddr[i]) return true;
    }
    return false;
  }
}

function validateLimits(l: PolicyLimits): void {
  const ok =
    Number.isInteger(l.maxFlows) &&
    l.maxFlows >= 1 &&
    l.maxFlows <= 1 << 24 &&
    l.tcpEstablishedMs >= 0 &&
    l.tcpTransitoryMs >= 0 &&
    l.udpMs >= 0;
  if (!ok) throw new VpnError('ERR_INVALID_ARG', 'policy limits out of range (maxFlows 1..2^24, timeouts ≥ 0)');
}

export class PolicyStage implements PolicyStageApi {
  private pol: CompiledPolicy;
  private readonly seed = randomSeed();

  // per endpoint (index of the compiled policy)
  private epFlows = new Float64Array(0);
  private epFlowsCreated = new Float64Array(0);
  private epPacketsIn = new Float64Array(0);
  private epBytesIn = new Float64Array(0);
  private epPacketsOut = new Float64Array(0);
  private epBytesOut = new Float64Array(0);
  private epDrops = new Float64Array(0);
  /** NAT ports in use: PORT_WORDS words per (endpoint, TCP | UDP) */
  private portBits = new Int32Array(0);
  private portCursor = new Int32Array(0);
  private portUsed = new Int32Array(0);

  private readonly drops = new Float64Array(DROP_COUNT);
  private aclDeniedByAcl = new Float64Array(0);
  /** aclDenied counts of origins whose ACL went away */
  private readonly aclDeniedPast = new Map<number, number>();

  // flows (slot index)
  private maxFlows = 0;
  private flowCount = 0;
  /** flow records, REC int32 each (one 64-byte cache line): the fields at the R_* offsets */
  private rec = new Int32Array(0);
  /** when each flow last carried a packet (ms, the callers' clock) */
  private fLast = new Float64Array(0);
  private freeList = new Int32Array(0);
  private freeTop = 0;
  /** forward table (origin, client, sport, endpoint, servicePort, protocol) → slot + 1 */
  private fwd = new Int32Array(0);
  /** reverse table (endpoint, protocol, natPort) → slot + 1 */
  private rev = new Int32Array(0);
  private tableMask = 0;
  private expireCursor = 0;

  constructor(policy?: DataPathPolicy, now = 0) {
    this.pol = new CompiledPolicy({ endpoints: [], acls: [], limits: policy?.limits ?? { maxFlows: 1, tcpEstablishedMs: 0, tcpTransitoryMs: 0, udpMs: 0 } }, this.seed);
    this.allocFlows(this.pol.limits.maxFlows);
    if (policy) this.setPolicy(policy, now);
  }

  // ---------------------------------------------------------------- setPolicy

  setPolicy(p: DataPathPolicy, now: number): void {
    void now;
    validateLimits(p.limits);
    const old = this.pol;
    const next = new CompiledPolicy(p, this.seed);
    const n = next.epCount;
    const oldIndexById = new Map<number, number>();
    for (let i = 0; i < old.epCount; i++) oldIndexById.set(old.epId[i]!, i);
    const newIndexOfOld = new Int32Array(old.epCount).fill(-1);

    // per-endpoint counters and port cursors follow the endpoint id
    const flows = new Float64Array(n);
    const created = new Float64Array(n);
    const pIn = new Float64Array(n);
    const bIn = new Float64Array(n);
    const pOut = new Float64Array(n);
    const bOut = new Float64Array(n);
    const drops = new Float64Array(n * DROP_COUNT);
    const cursor = new Int32Array(n * 2);
    for (let i = 0; i < n; i++) {
      const o = oldIndexById.get(next.epId[i]!);
      if (o === undefined || newIndexOfOld[o] !== -1) continue;
      newIndexOfOld[o] = i;
      created[i] = this.epFlowsCreated[o]!;
      pIn[i] = this.epPacketsIn[o]!;
      bIn[i] = this.epBytesIn[o]!;
      pOut[i] = this.epPacketsOut[o]!;
      bOut[i] = this.epBytesOut[o]!;
      for (let d = 0; d < DROP_COUNT; d++) drops[i * DROP_COUNT + d] = this.epDrops[o * DROP_COUNT + d]!;
      cursor[i * 2] = this.portCursor[o * 2]!;
      cursor[i * 2 + 1] = this.portCursor[o * 2 + 1]!;
    }

    // aclDenied counts follow the origin
    const aclDenied = new Float64Array(next.aclCount);
    for (let a = 0; a < old.aclCount; a++) {
      const c = this.aclDeniedByAcl[a]!;
      if (c === 0) continue;
      const origin = old.aclOrigin[a]!;
      const na = next.aclByOrigin.get(origin, 0);
      if (na >= 0) aclDenied[na] = aclDenied[na]! + c;
      else this.aclDeniedPast.set(origin >>> 0, (this.aclDeniedPast.get(origin >>> 0) ?? 0) + c);
    }
    for (let a = 0; a < next.aclCount; a++) {
      const origin = next.aclOrigin[a]! >>> 0;
      const past = this.aclDeniedPast.get(origin);
      if (past !== undefined) {
        aclDenied[a] = aclDenied[a]! + past;
        this.aclDeniedPast.delete(origin);
      }
    }

    // which flows survive: their endpoint (by id) is still there, open, at the same address, their port
    // map points at the same backend, and their origin or source is still admitted
    const survivors: number[] = [];
    for (let f = 0; f < this.maxFlows; f++) {
      if (this.rec[f * REC + R_STATE] === FLOW_FREE) continue;
      const o = this.rec[f * REC + R_EP]!;
      const ni = newIndexOfOld[o]!;
      let keep = ni >= 0 && next.epOpen[ni] === 1 && next.epAddr[ni] === old.epAddr[o];
      if (keep) {
        const pm = next.portMaps.get(ni, (this.rec[f * REC + R_PROTO]! << 16) | this.rec[f * REC + R_SVC_PORT]!);
        keep =
          pm >= 0 &&
          next.pmBackendAddr[pm] === this.rec[f * REC + R_BACK_ADDR] &&
          next.pmBackendPort[pm] === this.rec[f * REC + R_BACK_PORT] &&
          next.isAdmitted(ni, this.rec[f * REC + R_ORIGIN]!, this.rec[f * REC + R_CLIENT]!);
      }
      if (keep) survivors.push(f);
    }

    // rebuild the flow store from the survivors (arrays reused when maxFlows is unchanged; with a smaller
    // maxFlows the most recently active survivors that fit are kept)
    const max = p.limits.maxFlows;
    if (survivors.length > max) survivors.sort((a, b) => this.fLast[b]! - this.fLast[a]!);
    const src = this.snapshotFlows(survivors, newIndexOfOld);
    this.pol = next;
    this.epFlows = flows;
    this.epFlowsCreated = created;
    this.epPacketsIn = pIn;
    this.epBytesIn = bIn;
    this.epPacketsOut = pOut;
    this.epBytesOut = bOut;
    this.epDrops = drops;
    this.portBits = new Int32Array(n * 2 * PORT_WORDS);
    this.portCursor = cursor;
    this.portUsed = new Int32Array(n * 2);
    this.aclDeniedByAcl = aclDenied;
    if (max !== this.maxFlows) this.allocFlows(max);
    else this.clearFlows();
    const keep = Math.min(src.last.length, max);
    for (let k = 0; k < keep; k++) {
      const f = this.takeSlot();
      this.rec.set(src.rec.subarray(k * REC, (k + 1) * REC), f * REC);
      this.fLast[f] = src.last[k]!;
      this.linkFlow(f);
    }
  }

  /** copies the surviving flows' records out, with their endpoint index mapped to the new policy */
  private snapshotFlows(survivors: readonly number[], newIndexOfOld: Int32Array): { rec: Int32Array; last: Float64Array } {
    const k = survivors.length;
    const rec = new Int32Array(k * REC);
    const last = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      const f = survivors[i]!;
      rec.set(this.rec.subarray(f * REC, (f + 1) * REC), i * REC);
      rec[i * REC + R_EP] = newIndexOfOld[rec[i * REC + R_EP]!]!;
      last[i] = this.fLast[f]!;
    }
    return { rec, last };
  }

  private allocFlows(max: number): void {
    this.maxFlows = max;
    this.rec = new Int32Array(max * REC);
    this.fLast = new Float64Array(max);
    this.freeList = new Int32Array(max);
    const size = tableSizeFor(max);
    this.fwd = new Int32Array(size);
    this.rev = new Int32Array(size);
    this.tableMask = size - 1;
    this.resetFreeList();
  }

  private clearFlows(): void {
    this.rec.fill(0); // R_STATE 0: FLOW_FREE
    this.fwd.fill(0);
    this.rev.fill(0);
    this.resetFreeList();
  }

  private resetFreeList(): void {
    // slots are taken from the top: lowest index first
    for (let i = 0; i < this.maxFlows; i++) this.freeList[i] = this.maxFlows - 1 - i;
    this.freeTop = this.maxFlows;
    this.flowCount = 0;
    this.expireCursor = 0;
  }

  private takeSlot(): number {
    return this.freeList[--this.freeTop]!;
  }

  // ---------------------------------------------------------------- inbound: tunnel → TUN

  inbound(buf: Uint8Array, off: number, len: number, origin: number, now: number): number {
    origin |= 0;
    const pol = this.pol;
    if (pol.epCount > 0 && len >= IPV4_MIN_HEADER && buf[off]! >>> 4 === 4) {
      const e = pol.epByAddr.get(rd32(buf, off + 16), 0);
      if (e >= 0) return this.inboundToEndpoint(buf, off, len, origin, e, now);
    }
    if (origin !== 0 && pol.aclCount > 0) {
      const a = pol.aclByOrigin.get(origin, 0);
      if (a >= 0 && !this.aclAllows(a, buf, off, len)) {
        this.drops[D_ACL - 1]!++;
        this.aclDeniedByAcl[a]!++;
        return D_ACL;
      }
    }
    return POLICY_PASS;
  }

  private inboundToEndpoint(buf: Uint8Array, off: number, len: number, origin: number, e: number, now: number): number {
    const pol = this.pol;
    const ihl = ipv4HeaderLen(buf, off, len);
    if (ihl === 0) return this.epDrop(e, D_BAD);
    const total = rd16(buf, off + 2);
    if (pol.epOpen[e] === 0) return this.epDrop(e, D_CLOSED);
    const src = rd32(buf, off + 12);
    if (!pol.isAdmitted(e, origin, src)) return this.epDrop(e, D_DENIED);
    const proto = buf[off + 9]!;
    const end = off + total;
    if (proto === PROTO_TCP || proto === PROTO_UDP) {
      const l4 = portsHeader(buf, off, ihl, end, proto);
      if (l4 < 0) return this.epDrop(e, D_BAD);
      const sport = rd16(buf, l4);
      const dport = rd16(buf, l4 + 2);
      const pm = pol.portMaps.get(e, (proto << 16) | dport);
      if (pm < 0) return this.epDrop(e, D_NO_PORT);
      let f = this.findForward(origin, src, sport, e, dport, proto, now);
      const tcpFlags = proto === PROTO_TCP ? buf[l4 + 13]! : 0;
      const syn = (tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN;
      if (f < 0) {
        if (proto === PROTO_TCP && !syn) return this.epDrop(e, D_NO_FLOW);
        f = this.createFlow(origin, src, sport, e, dport, proto, pol.pmBackendAddr[pm]!, pol.pmBackendPort[pm]!, now);
        if (f < 0) return this.epDrop(e, D_FULL);
      } else if (syn && (this.rec[f * REC + R_FLAGS]! & CLOSING) !== 0) {
        // the client reopens the same 4-tuple after a close: a new connection through the same NAT port
        this.rec[f * REC + R_FLAGS] = 0;
      }
      this.translateForward(buf, off, l4, proto, f);
      let fl = this.rec[f * REC + R_FLAGS]! | SEEN_IN;
      if ((tcpFlags & (TCP_FIN | TCP_RST)) !== 0) fl |= CLOSING;
      this.rec[f * REC + R_FLAGS] = fl;
      this.fLast[f] = now;
      this.epPacketsIn[e]!++;
      this.epBytesIn[e] = this.epBytesIn[e]! + total;
      return POLICY_PASS;
    }
    if (proto === PROTO_ICMP && (rd16(buf, off + 6) & 0x1fff) === 0 && this.inboundIcmpError(buf, off, ihl, end, origin, e, now)) {
      this.epPacketsIn[e]!++;
      this.epBytesIn[e] = this.epBytesIn[e]! + total;
      return POLICY_PASS;
    }
    return this.epDrop(e, D_NO_PORT);
  }

  /**
   * An ICMP error from the client side about a reply it got (embedded: E:servicePort → client:sport):
   * translated as the flow's packets are, embedded header included (what RFC 5508 asks of a NAT for
   * ICMP errors).
   */
  private inboundIcmpError(buf: Uint8Array, off: number, ihl: number, end: number, origin: number, e: number, now: number): boolean {
    const q = this.embeddedHeader(buf, off + ihl, end);
    if (q < 0) return false;
    const iihl = (buf[q]! & 0x0f) * 4;
    const il4 = q + iihl;
    const iproto = buf[q + 9]!;
    const isrc = rd32(buf, q + 12);
    const idst = rd32(buf, q + 16);
    const isport = rd16(buf, il4);
    const idport = rd16(buf, il4 + 2);
    if (isrc !== this.pol.epAddr[e]) return false;
    const f = this.findForward(origin, idst, idport, e, isport, iproto, now);
    if (f < 0) return false;
    const E = this.pol.epAddr[e]!;
    const back = this.rec[f * REC + R_BACK_ADDR]!;
    // embedded: E:servicePort → client:sport becomes backend:backendPort → E:natPort
    this.rewriteEmbedded(buf, off + ihl, end, q, il4, iproto, back, this.rec[f * REC + R_BACK_PORT]!, E, this.rec[f * REC + R_NAT_PORT]!);
    // outer: sender → E becomes E → backend
    const osrc = rd32(buf, off + 12);
    wr32(buf, off + 12, E);
    wr32(buf, off + 16, back);
    applyDelta(buf, off + 10, delta32(osrc, E) + delta32(E, back));
    return true;
  }

  // ---------------------------------------------------------------- outbound: TUN → tunnel

  outbound(buf: Uint8Array, off: number, len: number, now: number): number {
    const pol = this.pol;
    if (pol.epCount === 0 || len < IPV4_MIN_HEADER || buf[off]! >>> 4 !== 4) return POLICY_PASS;
    const e = pol.epByAddr.get(rd32(buf, off + 16), 0);
    if (e < 0) return POLICY_PASS;
    const ihl = ipv4HeaderLen(buf, off, len);
    if (ihl === 0) return this.epDrop(e, D_BAD);
    const total = rd16(buf, off + 2);
    const proto = buf[off + 9]!;
    const end = off + total;
    if (proto === PROTO_TCP || proto === PROTO_UDP) {
      const l4 = portsHeader(buf, off, ihl, end, proto);
      if (l4 < 0) return this.epDrop(e, D_BAD);
      const f = this.findReverse(e, proto, rd16(buf, l4 + 2), now);
      // a reply must come from the flow's backend: nobody else in the VPC may inject into a client's flow
      if (f < 0 || rd32(buf, off + 12) !== this.rec[f * REC + R_BACK_ADDR] || rd16(buf, l4) !== this.rec[f * REC + R_BACK_PORT]) return this.epDrop(e, D_NO_FLOW);
      this.translateReverse(buf, off, l4, proto, f);
      let fl = this.rec[f * REC + R_FLAGS]! | SEEN_OUT;
      if (proto === PROTO_TCP && (buf[l4 + 13]! & (TCP_FIN | TCP_RST)) !== 0) fl |= CLOSING;
      this.rec[f * REC + R_FLAGS] = fl;
      this.fLast[f] = now;
      this.epPacketsOut[e]!++;
      this.epBytesOut[e] = this.epBytesOut[e]! + total;
      return POLICY_PASS;
    }
    if (proto === PROTO_ICMP && (rd16(buf, off + 6) & 0x1fff) === 0 && this.outboundIcmpError(buf, off, ihl, end, e, now)) {
      this.epPacketsOut[e]!++;
      this.epBytesOut[e] = this.epBytesOut[e]! + total;
      return POLICY_PASS;
    }
    return this.epDrop(e, D_NO_FLOW);
  }

  /** An ICMP error about a packet we sent to the backend (embedded: E:natPort → backend:backendPort). */
  private outboundIcmpError(buf: Uint8Array, off: number, ihl: number, end: number, e: number, now: number): boolean {
    const q = this.embeddedHeader(buf, off + ihl, end);
    if (q < 0) return false;
    const iihl = (buf[q]! & 0x0f) * 4;
    const il4 = q + iihl;
    const iproto = buf[q + 9]!;
    const E = this.pol.epAddr[e]!;
    if (rd32(buf, q + 12) !== E) return false;
    const f = this.findReverse(e, iproto, rd16(buf, il4), now);
    if (f < 0 || rd32(buf, q + 16) !== this.rec[f * REC + R_BACK_ADDR] || rd16(buf, il4 + 2) !== this.rec[f * REC + R_BACK_PORT]) return false;
    const client = this.rec[f * REC + R_CLIENT]!;
    // embedded: E:natPort → backend:backendPort becomes client:sport → E:servicePort
    this.rewriteEmbedded(buf, off + ihl, end, q, il4, iproto, client, this.rec[f * REC + R_SPORT]!, E, this.rec[f * REC + R_SVC_PORT]!);
    // outer destination E → client (the sender, backend or a router, stays as it is)
    wr32(buf, off + 16, client);
    applyDelta(buf, off + 10, delta32(E, client));
    return true;
  }

  /**
   * Checks an ICMP error message at buf[icmp, end) and returns the offset of its embedded IPv4 header,
   * or -1: type 3, 11 or 12; the embedded header complete, not a later fragment, TCP or UDP, with at
   * least the 8 bytes of ports (RFC 792).
   */
  private embeddedHeader(buf: Uint8Array, icmp: number, end: number): number {
    if (icmp + ICMP_HEADER + IPV4_MIN_HEADER > end) return -1;
    const type = buf[icmp]!;
    if (type !== ICMP_DEST_UNREACHABLE && type !== ICMP_TIME_EXCEEDED && type !== ICMP_PARAMETER_PROBLEM) return -1;
    const q = icmp + ICMP_HEADER;
    if (buf[q]! >>> 4 !== 4) return -1;
    const iihl = (buf[q]! & 0x0f) * 4;
    if (iihl < IPV4_MIN_HEADER || q + iihl + ICMP_EMBEDDED_L4 > end) return -1;
    if ((rd16(buf, q + 6) & 0x1fff) !== 0) return -1;
    const p = buf[q + 9]!;
    if (p !== PROTO_TCP && p !== PROTO_UDP) return -1;
    return q;
  }

  /**
   * Rewrites the embedded packet's addresses and ports in place: source to (src, sport), destination to
   * (dst, dport); fixes its IP header checksum, its TCP/UDP checksum when the error carries it, and the
   * ICMP checksum over all of it (RFC 1624 deltas, all words 16-bit aligned from the ICMP header).
   */
  private rewriteEmbedded(buf: Uint8Array, icmp: number, end: number, q: number, il4: number, iproto: number, src: number, sport: number, dst: number, dport: number): void {
    const osrc = rd32(buf, q + 12);
    const odst = rd32(buf, q + 16);
    const osport = rd16(buf, il4);
    const odport = rd16(buf, il4 + 2);
    const addrDelta = delta32(osrc, src) + delta32(odst, dst);
    const portDelta = delta16(osport, sport) + delta16(odport, dport);
    let icmpAcc = addrDelta + portDelta;
    wr32(buf, q + 12, src);
    wr32(buf, q + 16, dst);
    wr16(buf, il4, sport);
    wr16(buf, il4 + 2, dport);
    const ipc = rd16(buf, q + 10);
    applyDelta(buf, q + 10, addrDelta);
    icmpAcc += delta16(ipc, rd16(buf, q + 10));
    const cpos = iproto === PROTO_TCP ? il4 + 16 : il4 + 6;
    if (cpos + 2 <= end) {
      const c = rd16(buf, cpos);
      if (iproto === PROTO_TCP) applyDelta(buf, cpos, addrDelta + portDelta);
      else applyDeltaUdp(buf, cpos, addrDelta + portDelta);
      icmpAcc += delta16(c, rd16(buf, cpos));
    }
    applyDelta(buf, icmp + 2, icmpAcc);
  }

  // ---------------------------------------------------------------- translation

  /** client:sport → E:servicePort becomes E:natPort → backend:backendPort */
  private translateForward(buf: Uint8Array, off: number, l4: number, proto: number, f: number): void {
    const r = f * REC;
    this.rewrite(buf, off, l4, proto, this.pol.epAddr[this.rec[r + R_EP]!]!, this.rec[r + R_BACK_ADDR]!, this.rec[r + R_NAT_PORT]!, this.rec[r + R_BACK_PORT]!);
  }

  /** backend:backendPort → E:natPort becomes E:servicePort → client:sport */
  private translateReverse(buf: Uint8Array, off: number, l4: number, proto: number, f: number): void {
    const r = f * REC;
    this.rewrite(buf, off, l4, proto, this.pol.epAddr[this.rec[r + R_EP]!]!, this.rec[r + R_CLIENT]!, this.rec[r + R_SVC_PORT]!, this.rec[r + R_SPORT]!);
  }

  /** Sets the addresses and ports of a TCP/UDP packet, with the IP and L4 checksums updated (RFC 1624). */
  private rewrite(buf: Uint8Array, off: number, l4: number, proto: number, src: number, dst: number, sport: number, dport: number): void {
    const addrDelta = delta32(rd32(buf, off + 12), src) + delta32(rd32(buf, off + 16), dst);
    const l4Delta = addrDelta + delta16(rd16(buf, l4), sport) + delta16(rd16(buf, l4 + 2), dport);
    wr32(buf, off + 12, src);
    wr32(buf, off + 16, dst);
    wr16(buf, l4, sport);
    wr16(buf, l4 + 2, dport);
    applyDelta(buf, off + 10, addrDelta);
    if (proto === PROTO_TCP) applyDelta(buf, l4 + 16, l4Delta);
    else applyDeltaUdp(buf, l4 + 6, l4Delta);
  }

  // ---------------------------------------------------------------- ACLs

  /** whether a rule of ACL `a` matches the packet's destination (and protocol and port) */
  private aclAllows(a: number, buf: Uint8Array, off: number, len: number): boolean {
    const pol = this.pol;
    const start = pol.aclStart[a]!;
    const stop = pol.aclStart[a + 1]!;
    if (start === stop || len < 1) return false;
    const v = buf[off]! >>> 4;
    let proto: number;
    let port = -1;
    let family: number;
    if (v === 4) {
      if (len < IPV4_MIN_HEADER) return false;
      const ihl = ipv4HeaderLen(buf, off, len);
      if (ihl === 0) return false;
      const total = rd16(buf, off + 2);
      family = 4;
      proto = buf[off + 9]!;
      if ((proto === PROTO_TCP || proto === PROTO_UDP) && (rd16(buf, off + 6) & 0x1fff) === 0 && off + ihl + 4 <= off + total) {
        port = rd16(buf, off + ihl + 2);
      }
    } else if (v === 6) {
      if (len < IPV6_HEADER) return false;
      const end = off + IPV6_HEADER + rd16(buf, off + 4);
      if (end > off + len) return false;
      family = 6;
      proto = buf[off + 6]!;
      let p = off + IPV6_HEADER;
      let later = false;
      for (let k = 0; k < IPV6_MAX_EXT_HEADERS; k++) {
        if (proto === IPV6_HOP_BY_HOP || proto === IPV6_ROUTING || proto === IPV6_DEST_OPTS || proto === IPV6_AH) {
          if (p + 2 > end) break;
          const next = buf[p]!;
          p += proto === IPV6_AH ? (buf[p + 1]! + 2) * 4 : (buf[p + 1]! + 1) * 8;
          proto = next;
        } else if (proto === IPV6_FRAGMENT) {
          if (p + 8 > end) break;
          const next = buf[p]!;
          if ((rd16(buf, p + 2) & 0xfff8) !== 0) later = true;
          p += 8;
          proto = next;
        } else break;
      }
      if ((proto === PROTO_TCP || proto === PROTO_UDP) && !later && p + 4 <= end) port = rd16(buf, p + 2);
    } else {
      return false;
    }
    for (let r = start; r < stop; r++) {
      if (pol.ruleFamily[r] !== family) continue;
      const rp = pol.ruleProto[r]!;
      if (rp !== 0 && rp !== proto) continue;
      if ((rp === PROTO_TCP || rp === PROTO_UDP) && (pol.rulePortLo[r]! > 0 || pol.rulePortHi[r]! < 65535)) {
        if (port < pol.rulePortLo[r]! || port > pol.rulePortHi[r]!) continue;
      }
      const w = r * 4;
      if (family === 4) {
        if ((rd32(buf, off + 16) & pol.ruleMask[w]!) !== pol.ruleAddr[w]) continue;
      } else if (
        (rd32(buf, off + 24) & pol.ruleMask[w]!) !== pol.ruleAddr[w] ||
        (rd32(buf, off + 28) & pol.ruleMask[w + 1]!) !== pol.ruleAddr[w + 1] ||
        (rd32(buf, off + 32) & pol.ruleMask[w + 2]!) !== pol.ruleAddr[w + 2] ||
        (rd32(buf, off + 36) & pol.ruleMask[w + 3]!) !== pol.ruleAddr[w + 3]
      ) {
        continue;
      }
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- flow table

  private fwdHash(origin: number, client: number, sport: number, e: number, svcPort: number, proto: number): number {
    let h = mix32(this.seed ^ origin);
    h = mix32(h + client);
    h = mix32(h + ((sport << 16) | svcPort));
    return mix32(h + ((e << 8) | proto));
  }

  private revHash(e: number, proto: number, natPort: number): number {
    return mix32(mix32(~this.seed ^ e) + ((proto << 16) | natPort));
  }

  /** the live flow for a client's packet, or -1 (an idle-expired flow met here is removed) */
  private findForward(origin: number, client: number, sport: number, e: number, svcPort: number, proto: number, now: number): number {
    const h = this.fwdHash(origin, client, sport, e, svcPort, proto);
    const mask = this.tableMask;
    const rec = this.rec;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = this.fwd[i]!;
      if (v === 0) return -1;
      const f = v - 1;
      const r = f * REC;
      if (
        rec[r + R_FWD_HASH] === h &&
        rec[r + R_ORIGIN] === origin &&
        rec[r + R_CLIENT] === client &&
        rec[r + R_SPORT] === sport &&
        rec[r + R_EP] === e &&
        rec[r + R_SVC_PORT] === svcPort &&
        rec[r + R_PROTO] === proto
      ) {
        return this.isIdle(f, now) ? (this.removeFlow(f), -1) : f;
      }
    }
  }

  private findReverse(e: number, proto: number, natPort: number, now: number): number {
    const h = this.revHash(e, proto, natPort);
    const mask = this.tableMask;
    const rec = this.rec;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = this.rev[i]!;
      if (v === 0) return -1;
      const f = v - 1;
      const r = f * REC;
      if (rec[r + R_REV_HASH] === h && rec[r + R_EP] === e && rec[r + R_PROTO] === proto && rec[r + R_NAT_PORT] === natPort) {
        return this.isIdle(f, now) ? (this.removeFlow(f), -1) : f;
      }
    }
  }

  private timeoutOf(f: number): number {
    const l = this.pol.limits;
    if (this.rec[f * REC + R_STATE] === FLOW_UDP) return l.udpMs;
    return (this.rec[f * REC + R_FLAGS]! & (SEEN_IN | SEEN_OUT | CLOSING)) === (SEEN_IN | SEEN_OUT) ? l.tcpEstablishedMs : l.tcpTransitoryMs;
  }

  private isIdle(f: number, now: number): boolean {
    return now - this.fLast[f]! > this.timeoutOf(f);
  }

  private createFlow(origin: number, client: number, sport: number, e: number, svcPort: number, proto: number, back: number, backPort: number, now: number): number {
    if (this.flowCount >= this.maxFlows) return -1;
    const nat = this.allocPort(e, proto);
    if (nat < 0) return -1;
    const f = this.takeSlot();
    this.rec[f * REC + R_STATE] = proto === PROTO_TCP ? FLOW_TCP : FLOW_UDP;
    this.rec[f * REC + R_FLAGS] = 0;
    this.rec[f * REC + R_PROTO] = proto;
    this.rec[f * REC + R_ORIGIN] = origin;
    this.rec[f * REC + R_CLIENT] = client;
    this.rec[f * REC + R_SPORT] = sport;
    this.rec[f * REC + R_EP] = e;
    this.rec[f * REC + R_SVC_PORT] = svcPort;
    this.rec[f * REC + R_NAT_PORT] = nat;
    this.rec[f * REC + R_BACK_ADDR] = back;
    this.rec[f * REC + R_BACK_PORT] = backPort;
    this.fLast[f] = now;
    this.linkFlow(f);
    this.epFlowsCreated[e]!++;
    return f;
  }

  /** enters slot f (fields set) into both tables, the port bitmap and the counts */
  private linkFlow(f: number): void {
    const mask = this.tableMask;
    const e = this.rec[f * REC + R_EP]!;
    const proto = this.rec[f * REC + R_PROTO]!;
    const nat = this.rec[f * REC + R_NAT_PORT]!;
    const hf = this.fwdHash(this.rec[f * REC + R_ORIGIN]!, this.rec[f * REC + R_CLIENT]!, this.rec[f * REC + R_SPORT]!, e, this.rec[f * REC + R_SVC_PORT]!, proto);
    const hr = this.revHash(e, proto, nat);
    this.rec[f * REC + R_FWD_HASH] = hf;
    this.rec[f * REC + R_REV_HASH] = hr;
    let i = hf & mask;
    while (this.fwd[i] !== 0) i = (i + 1) & mask;
    this.fwd[i] = f + 1;
    i = hr & mask;
    while (this.rev[i] !== 0) i = (i + 1) & mask;
    this.rev[i] = f + 1;
    const slot = e * 2 + (proto === PROTO_TCP ? 0 : 1);
    const bit = nat - NAT_PORT_MIN;
    this.portBits[slot * PORT_WORDS + (bit >>> 5)]! |= 1 << (bit & 31);
    this.portUsed[slot]!++;
    this.epFlows[e]!++;
    this.flowCount++;
  }

  private removeFlow(f: number): void {
    this.unlinkSlot(this.fwd, R_FWD_HASH, f);
    this.unlinkSlot(this.rev, R_REV_HASH, f);
    const e = this.rec[f * REC + R_EP]!;
    const slot = e * 2 + (this.rec[f * REC + R_PROTO] === PROTO_TCP ? 0 : 1);
    const bit = this.rec[f * REC + R_NAT_PORT]! - NAT_PORT_MIN;
    this.portBits[slot * PORT_WORDS + (bit >>> 5)]! &= ~(1 << (bit & 31));
    this.portUsed[slot]!--;
    this.epFlows[e]!--;
    this.flowCount--;
    this.rec[f * REC + R_STATE] = FLOW_FREE;
    this.freeList[this.freeTop++] = f;
  }

  /** linear-probing delete with backward shift (no tombstones, so probe runs stay short) */
  private unlinkSlot(table: Int32Array, hashField: number, f: number): void {
    const mask = this.tableMask;
    const rec = this.rec;
    let i = rec[f * REC + hashField]! & mask;
    while (table[i] !== f + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const v = table[j]!;
      if (v === 0) break;
      const home = rec[(v - 1) * REC + hashField]! & mask;
      // move v back to the hole at i unless its home lies cyclically in (i, j]
      const inRange = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!inRange) {
        table[i] = v;
        i = j;
      }
    }
    table[i] = 0;
  }

  /** a free NAT port for (endpoint, protocol), searched from the cursor on; -1 when all are taken */
  private allocPort(e: number, proto: number): number {
    const slot = e * 2 + (proto === PROTO_TCP ? 0 : 1);
    if (this.portUsed[slot]! >= NAT_PORT_COUNT) return -1;
    const base = slot * PORT_WORDS;
    const bits = this.portBits;
    let idx = this.portCursor[slot]!;
    for (let n = 0; n <= PORT_WORDS; n++) {
      const w = idx >>> 5;
      const free = ~bits[base + w]! & (-1 << (idx & 31));
      if (free !== 0) {
        const b = (w << 5) | (31 - Math.clz32(free & -free));
        this.portCursor[slot] = b + 1 === NAT_PORT_COUNT ? 0 : b + 1;
        return NAT_PORT_MIN + b;
      }
      idx = w + 1 === PORT_WORDS ? 0 : (w + 1) << 5;
    }
    return -1;
  }

  // ---------------------------------------------------------------- expiry, counters

  expire(now: number): void {
    const max = this.maxFlows;
    if (this.flowCount === 0) return;
    let c = this.expireCursor;
    const budget = Math.min(max, EXPIRE_SLOTS_PER_CALL);
    for (let k = 0; k < budget; k++) {
      if (this.rec[c * REC + R_STATE] !== FLOW_FREE && this.isIdle(c, now)) this.removeFlow(c);
      c = c + 1 === max ? 0 : c + 1;
    }
    this.expireCursor = c;
  }

  counters(): PolicyCounters {
    const pol = this.pol;
    const endpoints: EndpointCounters[] = [];
    for (let e = 0; e < pol.epCount; e++) {
      endpoints.push({
        id: pol.epId[e]!,
        flows: this.epFlows[e]!,
        flowsCreated: this.epFlowsCreated[e]!,
        packetsIn: this.epPacketsIn[e]!,
        bytesIn: this.epBytesIn[e]!,
        packetsOut: this.epPacketsOut[e]!,
        bytesOut: this.epBytesOut[e]!,
        drops: this.dropRecord(this.epDrops, e * DROP_COUNT),
      });
    }
    const aclDenied = new Map<number, number>(this.aclDeniedPast);
    for (let a = 0; a < pol.aclCount; a++) {
      const c = this.aclDeniedByAcl[a]!;
      if (c > 0) aclDenied.set(pol.aclOrigin[a]! >>> 0, (aclDenied.get(pol.aclOrigin[a]! >>> 0) ?? 0) + c);
    }
    return { drops: this.dropRecord(this.drops, 0), endpoints, aclDenied, flows: this.flowCount };
  }

  private dropRecord(arr: Float64Array, base: number): Record<PolicyDrop, number> {
    const r = {} as Record<PolicyDrop, number>;
    for (let d = 0; d < DROP_COUNT; d++) r[POLICY_DROPS[d]!] = arr[base + d]!;
    return r;
  }

  private epDrop(e: number, code: number): number {
    this.drops[code - 1]!++;
    this.epDrops[e * DROP_COUNT + code - 1]!++;
    return code;
  }
}
