// Receive moderation of the native engine (gateway.dataPlane.rxModerationUs): a UDP socket that
// keeps receiving is held for the moderation period after each wake-up that drained it, then read
// again; nothing queued meanwhile is lost, and a lone datagram after idle is read at once. Runs on a
// real TUN and loopback UDP, with IKE-marked datagrams (which the engine hands to onControl in order).
// Needs root (TUN).
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { until } from '../../helpers/native-lab.js';

interface Rig {
  tun: LinuxTun;
  udp: NativeUdp;
  peer: NativeUdp;
  dp: NativeDataPlane;
  got: number[];
}
let rig: Rig | undefined;

function open(rxModerationUs: number | undefined): Rig {
  const tun = LinuxTun.open({ name: `nrxm${randomBytes(2).toString('hex')}`, mtu: 1400 });
  const udp = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  const peer = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  const dp = new NativeDataPlane(tun, [udp], rxModerationUs === undefined ? {} : { rxModerationUs });
  const got: number[] = [];
  dp.onControl((pkt) => got.push(pkt.readUInt32BE(0)));
  rig = { tun, udp, peer, dp, got };
  return rig;
}

/** One IKE-marked datagram (non-ESP marker, then a sequence number) from the peer. */
function send(r: Rig, n: number): void {
  const d = Buffer.alloc(8);
  d.writeUInt32BE(n, 4);
  expect(r.peer.sendTo(d, 4, '127.0.0.1', r.udp.port)).toBe(true);
}

/** `total` datagrams in bursts of `burst`, yielding to the event loop between bursts. */
async function stream(r: Rig, total: number, burst: number): Promise<void> {
  for (let i = 0; i < total; i++) {
    send(r, i);
    if (i % burst === burst - 1) await tick();
  }
}

afterEach(() => {
  rig?.dp.close();
  rig?.tun.close();
  rig?.udp.close();
  rig?.peer.close();
  rig = undefined;
});

describe('receive moderation', () => {
  it('holds a busy socket between reads and still delivers every datagram in order', async () => {
    const r = open(2000);
    expect(r.dp.offloads.rxModerationUs).toBe(2000);
    await stream(r, 600, 10);
    await until('all 600 datagrams', () => r.got.length === 600);
    expect(r.got).toEqual([...Array(600).keys()]);
    expect(r.dp.nativeStats().rxModerations).toBeGreaterThan(0);
  });

  it('reads a lone datagram after idle without holding the socket', async () => {
    const r = open(2000);
    send(r, 1);
    await until('first datagram', () => r.got.length === 1);
    await new Promise((res) => setTimeout(res, 50)); // idle for well over 4 x 2 ms
    send(r, 2);
    await until('second datagram', () => r.got.length === 2);
    expect(r.dp.nativeStats().rxModerations).toBe(0);
  });

  it('is on by default (200 µs) and off with 0', async () => {
    const d = open(undefined);
    expect(d.dp.offloads.rxModerationUs).toBe(200);
    d.dp.close();
    d.tun.close();
    d.udp.close();
    d.peer.close();
    const r = open(0);
    await stream(r, 600, 10);
    await until('all 600 datagrams', () => r.got.length === 600);
    expect(r.dp.nativeStats().rxModerations).toBe(0);
  });
});
