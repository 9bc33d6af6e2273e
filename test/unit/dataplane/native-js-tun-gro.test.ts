// Packets JavaScript hands to the native data plane for the TUN (writeToTun: the SSL VPN's TCP
// sessions and JS data channels) are coalesced like the natively decrypted ones: consecutive
// segments of one TCP flow reach a vnet-header TUN as one GRO super-packet. Needs root (a TUN).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { NativeDataPlane, openOffloadTun } from '../../../src/dataplane/native-data-plane.js';
import { addAddress } from '../../../src/tun/netcfg.js';
import { tcp4, udp4 } from '../../helpers/ip-packets.js';
import { until } from '../../helpers/native-lab.js';

const GW = '10.217.0.1';
const CLIENT = '10.217.0.2';
const TCP_ACK = 0x10;
let dp: NativeDataPlane;

beforeAll(() => {
  const tun = openOffloadTun(`njgt${randomBytes(2).toString('hex')}`, 1500, true);
  addAddress(tun.name, `${GW}/24`);
  dp = new NativeDataPlane(tun, []);
});

afterAll(() => {
  dp?.close();
});

describe('NativeDataPlane.writeToTun on a vnet-header TUN', () => {
  it('consecutive segments of one TCP flow go to the TUN as one coalesced write; other packets alone', async () => {
    expect(dp.offloads.gro).toBe(true);
    const before = dp.nativeStats();
    const payload = Buffer.alloc(1000, 0x5a);
    for (let i = 0; i < 4; i++) {
      const seg = tcp4(CLIENT, 40000, GW, 5201, TCP_ACK, payload, { seq: 1000 + i * payload.length, ack: 1 });
      dp.writeToTun(seg, 0, seg.length);
    }
    const dgram = udp4(CLIENT, 40001, GW, 9, 'x');
    dp.writeToTun(dgram, 0, dgram.length);
    await until('the JS packets written', () => dp.nativeStats().tunTxPackets >= before.tunTxPackets + 5);
    const after = dp.nativeStats();
    expect(after.groWrites - before.groWrites).toBe(1);
    expect(after.groSegments - before.groSegments).toBe(4);
    expect(after.tunTxPackets - before.tunTxPackets).toBe(5);
    expect(after.tunWriteErrors).toBe(before.tunWriteErrors);
  });
});
