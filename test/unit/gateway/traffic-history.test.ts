// Traffic history (src/gateway/traffic-history.ts) on a fake clock and hand-made status documents:
// rates are counter deltas over the real step, CHILD_SA rekeys and reconnecting clients neither
// lose nor double-count, vanished objects are dropped, the ring keeps exactly the last hour, and
// memory stays fixed per object (1,000 objects).
import { describe, expect, it } from 'vitest';
import type { ChildSaStatus, GatewayStatus, VpnClientStatus } from '../../../src/gateway/status.js';
import { TRAFFIC_POINTS, TRAFFIC_STEP_SEC, TrafficHistory } from '../../../src/gateway/traffic-history.js';

const T0 = 1_800_000_000_000;
const STEP = TRAFFIC_STEP_SEC * 1000;

const child = (spiIn: string, bytesIn: number, bytesOut: number): ChildSaStatus => ({ state: 'INSTALLED', spiIn, spiOut: `${spiIn}0`, bytesIn, bytesOut, packetsIn: 0, packetsOut: 0 });
const session = (id: string, user: string, bytesIn: number, bytesOut: number): VpnClientStatus => ({
  id, user, protocol: 'udp', realAddress: '192.0.2.9:1194', virtualAddress: '10.8.0.2', state: 'ONLINE', cipher: 'AES-256-GCM', bytesIn, bytesOut, packetsIn: 0, packetsOut: 0, connectedSince: '',
});

function status(o: { conns?: Record<string, ChildSaStatus[]>; clients?: VpnClientStatus[]; endpoints?: Record<string, [number, number]> }): GatewayStatus {
  return {
    gateway: {} as GatewayStatus['gateway'],
    connections: Object.entries(o.conns ?? {}).map(([name, children]) => ({ name, state: children.length ? 'ESTABLISHED' : 'DOWN', children })),
    vpnServers: [{ name: 'p2c', state: 'LISTENING', protocols: ['udp'], port: 1194, clients: o.clients?.length ?? 0, sessions: o.clients ?? [] }],
    endpoints: Object.entries(o.endpoints ?? {}).map(([name, [bytesIn, bytesOut]]) => ({
      name, service: 's', type: 'interface', state: 'ACCEPTED', address: null, dnsName: null, flows: 0, flowsCreated: 0, packetsIn: 0, bytesIn, packetsOut: 0, bytesOut, drops: {},
    })),
  };
}

describe('TrafficHistory', () => {
  it('rates are deltas over the real step; the first sample is a baseline; summary sums connections and clients', () => {
    const h = new TrafficHistory();
    h.sample(status({ conns: { dc1: [child('0xa', 1000, 500)] }, clients: [session('1', 'alice', 0, 0)], endpoints: { ep: [10, 20] } }), T0);
    expect(h.series('vpn-connection', 'dc1')!.points).toEqual([]);
    h.sample(status({ conns: { dc1: [child('0xa', 6000, 3000)] }, clients: [session('1', 'alice', 5000, 10_000)], endpoints: { ep: [510, 1020] } }), T0 + STEP);
    // a late tick: 10 s for 10 000 bytes is 1 000 B/s, not 2 000
    h.sample(status({ conns: { dc1: [child('0xa', 16_000, 3000)] }, clients: [session('1', 'alice', 5000, 10_000)], endpoints: { ep: [510, 1020] } }), T0 + 3 * STEP);
    expect(h.series('vpn-connection', 'dc1')).toEqual({ kind: 'vpn-connection', name: 'dc1', stepSeconds: 5, points: [[T0 + STEP, 1000, 500], [T0 + 3 * STEP, 1000, 0]] });
    expect(h.series('vpn-server-client', 'p2c/alice')!.points).toEqual([[T0 + STEP, 1000, 2000], [T0 + 3 * STEP, 0, 0]]);
    expect(h.series('vpc-endpoint', 'ep')!.points).toEqual([[T0 + STEP, 100, 200], [T0 + 3 * STEP, 0, 0]]);
    expect(h.series('vpn-connection', 'dc1', T0 + STEP)!.points).toEqual([[T0 + 3 * STEP, 1000, 0]]);
    expect(h.summary()).toEqual({ at: T0 + 3 * STEP, tunnelsUp: 1, tunnelsDown: 0, clientsOnline: 1, inBytesPerSec: 1000, outBytesPerSec: 0 });
    expect(h.series('vpn-connection', 'nope')).toBeNull();
  });

  it('a rekey (new SPI, old one gone) counts the new SA from zero; two sessions of one user add up; a counter reset counts from zero', () => {
    const h = new TrafficHistory();
    h.sample(status({ conns: { dc1: [child('0xa', 1000, 1000)] }, endpoints: { ep: [1000, 1000] } }), T0);
    // rekey: the old SA moved 500 more, the new one 2 000 since install
    h.sample(status({ conns: { dc1: [child('0xa', 1500, 1000), child('0xb', 2000, 0)] }, endpoints: { ep: [50, 50] } }), T0 + STEP);
    h.sample(status({ conns: { dc1: [child('0xb', 2500, 500)] }, clients: [session('1', 'bob', 100, 0), session('2', 'bob', 400, 0)] }), T0 + 2 * STEP);
    expect(h.series('vpn-connection', 'dc1')!.points).toEqual([[T0 + STEP, 500, 0], [T0 + 2 * STEP, 100, 100]]);
    expect(h.series('vpc-endpoint', 'ep')).toBeNull(); // gone from the status: dropped
    expect(h.series('vpn-server-client', 'p2c/bob')!.points).toEqual([[T0 + 2 * STEP, 100, 0]]);
    // the endpoint reappears with a fresh counter: its ring starts again
    h.sample(status({ conns: { dc1: [] }, endpoints: { ep: [100, 0] } }), T0 + 3 * STEP);
    expect(h.series('vpc-endpoint', 'ep')!.points).toEqual([[T0 + 3 * STEP, 20, 0]]);
    // a connection that went down keeps its history with zero points
    expect(h.series('vpn-connection', 'dc1')!.points.at(-1)).toEqual([T0 + 3 * STEP, 0, 0]);
    expect(h.series('vpn-server-client', 'p2c/bob')).toBeNull();
  });

  it('keeps exactly the last hour: 720 points, oldest first', () => {
    const h = new TrafficHistory();
    let bytes = 0;
    for (let i = 0; i <= 1000; i++) {
      h.sample(status({ conns: { dc1: [child('0xa', bytes, 0)] } }), T0 + i * STEP);
      bytes += (i % 7) * STEP; // a rate of (i mod 7) * 1000 B/s in step i+1
    }
    const pts = h.series('vpn-connection', 'dc1')!.points;
    expect(pts).toHaveLength(TRAFFIC_POINTS);
    expect(pts[0]![0]).toBe(T0 + (1000 - TRAFFIC_POINTS + 1) * STEP);
    expect(pts.at(-1)![0]).toBe(T0 + 1000 * STEP);
    for (const [t, rateIn] of pts) expect(rateIn).toBe((((t - T0) / STEP - 1) % 7) * 1000);
  });

  it('1,000 objects: memory fixed per object (typed arrays), unchanged by more samples, freed when they vanish', () => {
    const h = new TrafficHistory();
    const conns: Record<string, ChildSaStatus[]> = {};
    const clients: VpnClientStatus[] = [];
    for (let i = 0; i < 500; i++) conns[`c${i}`] = [child(`0x${i.toString(16)}`, i, i)];
    for (let i = 0; i < 500; i++) clients.push(session(String(i), `u${i}`, i, i));
    const st = status({ conns, clients });
    h.sample(st, T0);
    h.sample(st, T0 + STEP);
    expect(h.size).toBe(1000);
    const perObject = 2 * TRAFFIC_POINTS * Float32Array.BYTES_PER_ELEMENT;
    expect(h.ringBytes()).toBe(1000 * perObject + TRAFFIC_POINTS * 8);
    expect(h.ringBytes()).toBeLessThan(6 * 1024 * 1024);
    for (let i = 2; i < 2 * TRAFFIC_POINTS; i++) h.sample(st, T0 + i * STEP);
    expect(h.ringBytes()).toBe(1000 * perObject + TRAFFIC_POINTS * 8);
    expect(h.series('vpn-connection', 'c499')!.points).toHaveLength(TRAFFIC_POINTS);
    h.sample(status({}), T0 + 2 * TRAFFIC_POINTS * STEP);
    expect(h.size).toBe(0);
    expect(h.ringBytes()).toBe(TRAFFIC_POINTS * 8);
  });
});
