/**
 * Traffic history for the web console's charts: bytes per second in and out over the last hour,
 * per VPN connection, per SSL VPN client (`<server>/<user>`) and per VPC endpoint, from the data
 * plane's own counters.
 *
 *  1. Every STEP_SEC the shell calls `sample(status, nowMs)` with the gateway's status document
 *     (src/gateway/status.ts): the cumulative byte counters of each CHILD_SA (by inbound SPI), each
 *     client session (by session id) and each endpoint.
 *  2. A counter's delta since the previous sample is its traffic in the step. A CHILD_SA or session
 *     first seen counts in full (it was made during the step); one that went away (rekeyed, closed)
 *     stops counting; a counter that went backwards (an endpoint re-created) counts from zero.
 *  3. The deltas per object, divided by the step's real length, go into the object's ring: two
 *     Float32Arrays of POINTS entries (720 × 5 s = 1 h), so memory per object is fixed (5.6 KiB)
 *     however long the gateway runs. The sample times live once, in a shared Float64Array ring.
 *  4. An object that is no longer in the status (a connection or endpoint deleted, a user with no
 *     session left) is dropped with its ring.
 *
 * Pure: the caller supplies the status and the time.
 */
import type { TrafficHistoryView, TrafficObjectKind, TrafficSummaryView } from '../api/service.js';
import type { GatewayStatus } from './status.js';

export const TRAFFIC_STEP_SEC = 5;
/** One hour of samples. */
export const TRAFFIC_POINTS = 720;

export type TrafficKind = TrafficObjectKind;
export type TrafficSummary = TrafficSummaryView;
/** [unix ms, bytes/s in, bytes/s out] */
type TrafficPoint = [number, number, number];

class Ring {
  readonly inRate = new Float32Array(TRAFFIC_POINTS);
  readonly outRate = new Float32Array(TRAFFIC_POINTS);
  constructor(readonly firstSeq: number) {}
}

/** Cumulative counters seen at the previous sample, by counter id (SPI, session id, endpoint). */
type Seen = Map<string, { bytesIn: number; bytesOut: number }>;

export class TrafficHistory {
  /** Samples recorded so far; sample number s lives at index s % TRAFFIC_POINTS. */
  private seq = 0;
  private readonly times = new Float64Array(TRAFFIC_POINTS);
  private readonly rings = new Map<string, Ring>();
  private seen: Seen = new Map();
  private lastMs = -1;
  private last: TrafficSummary = { at: 0, tunnelsUp: 0, tunnelsDown: 0, clientsOnline: 0, inBytesPerSec: 0, outBytesPerSec: 0 };

  /** Takes one sample. The first call only records the counters (a rate needs two). */
  sample(st: GatewayStatus, nowMs: number): void {
    const next: Seen = new Map();
    const totals = new Map<string, [number, number]>();
    const add = (key: string, counter: string, bytesIn: number, bytesOut: number): void => {
      const prev = this.seen.get(counter);
      next.set(counter, { bytesIn, bytesOut });
      const dIn = prev && bytesIn >= prev.bytesIn ? bytesIn - prev.bytesIn : bytesIn;
      const dOut = prev && bytesOut >= prev.bytesOut ? bytesOut - prev.bytesOut : bytesOut;
      const t = totals.get(key);
      if (t) {
        t[0] += dIn;
        t[1] += dOut;
      } else totals.set(key, [dIn, dOut]);
    };
    let up = 0;
    let clients = 0;
    for (const c of st.connections) {
      const key = `vpn-connection\0${c.name}`;
      if (c.state === 'ESTABLISHED' && c.children.length > 0) up++;
      if (c.children.length === 0) totals.set(key, totals.get(key) ?? [0, 0]);
      for (const ch of c.children) add(key, `sa\0${c.name}\0${ch.spiIn}`, ch.bytesIn, ch.bytesOut);
    }
    for (const s of st.vpnServers) {
      clients += s.clients;
      for (const x of s.sessions ?? []) add(`vpn-server-client\0${s.name}/${x.user}`, `client\0${s.name}\0${x.id}`, x.bytesIn, x.bytesOut);
    }
    for (const e of st.endpoints ?? []) add(`vpc-endpoint\0${e.name}`, `endpoint\0${e.name}`, e.bytesIn, e.bytesOut);
    this.seen = next;

    const first = this.lastMs < 0;
    const dtSec = first ? 0 : Math.max(0.001, (nowMs - this.lastMs) / 1000);
    this.lastMs = nowMs;
    for (const key of [...this.rings.keys()]) if (!totals.has(key)) this.rings.delete(key);
    let sumIn = 0;
    let sumOut = 0;
    if (!first) {
      const i = this.seq % TRAFFIC_POINTS;
      this.times[i] = nowMs;
      for (const [key, [dIn, dOut]] of totals) {
        let r = this.rings.get(key);
        if (!r) this.rings.set(key, (r = new Ring(this.seq)));
        r.inRate[i] = dIn / dtSec;
        r.outRate[i] = dOut / dtSec;
        if (!key.startsWith('vpc-endpoint\0')) {
          sumIn += dIn / dtSec;
          sumOut += dOut / dtSec;
        }
      }
      this.seq++;
    } else {
      for (const key of totals.keys()) this.rings.set(key, new Ring(0));
    }
    this.last = {
      at: nowMs,
      tunnelsUp: up,
      tunnelsDown: st.connections.length - up,
      clientsOnline: clients,
      inBytesPerSec: Math.round(sumIn),
      outBytesPerSec: Math.round(sumOut),
    };
  }

  /** True while the object has a ring (it was in the last sample's status). */
  has(kind: TrafficKind, name: string): boolean {
    return this.rings.has(`${kind}\0${name}`);
  }

  /** The object's points, oldest first, newer than `sinceMs` when given; null for an unknown object. */
  series(kind: TrafficKind, name: string, sinceMs = -Infinity): TrafficHistoryView | null {
    const r = this.rings.get(`${kind}\0${name}`);
    if (!r) return null;
    const points: TrafficPoint[] = [];
    for (let s = Math.max(r.firstSeq, this.seq - TRAFFIC_POINTS); s < this.seq; s++) {
      const i = s % TRAFFIC_POINTS;
      if (this.times[i]! <= sinceMs) continue;
      points.push([this.times[i]!, Math.round(r.inRate[i]!), Math.round(r.outRate[i]!)]);
    }
    return { kind, name, stepSeconds: TRAFFIC_STEP_SEC, points };
  }

  /** The overview's figures as of the last sample (connections and clients; endpoints' traffic is part of theirs). */
  summary(): TrafficSummary {
    return this.last;
  }

  /** Objects with a ring now. */
  get size(): number {
    return this.rings.size;
  }

  /** Bytes held by the rings (typed arrays) and the shared time ring. */
  ringBytes(): number {
    let n = this.times.byteLength;
    for (const r of this.rings.values()) n += r.inRate.byteLength + r.outRate.byteLength;
    return n;
  }
}
