// The SSL VPN pool at the data-plane level, both backends over a real TUN: the gateway's pool
// address (x.x.x.1) is on the TUN with the pool's prefix (as the daemon configures it), a client's
// /32 is a sink route. The client's ping to the pool address goes to the TUN (writeToTun), the
// kernel answers, and the reply comes back through the client's sink. The TUN counters count the
// bytes both ways. Needs root (TUN, addresses).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { captureLogger } from '../../../src/common/log.js';
import type { PacketSink } from '../../../src/common/packet-sink.js';
import type { DataPlane } from '../../../src/dataplane/data-plane.js';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { TsDataPlane } from '../../../src/dataplane/ts-data-plane.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress } from '../../../src/tun/netcfg.js';
import { P } from '../esp/packets.js';
import { icmpEcho, until } from '../../helpers/native-lab.js';

const BACKENDS = [
  { name: 'native', net: '10.216.1', make: (t: LinuxTun, u: NativeUdp) => new NativeDataPlane(t, [u], { logger: captureLogger() }) },
  { name: 'ts', net: '10.216.2', make: (t: LinuxTun, u: NativeUdp) => new TsDataPlane(t, [u], { logger: captureLogger() }) },
] as const;

for (const b of BACKENDS) {
  describe(`${b.name} data plane: the pool address answers through the TUN`, () => {
    const gwAddr = `${b.net}.1`;
    const client = `${b.net}.2`;
    const got: Buffer[] = [];
    const sink: PacketSink = { push: (buf, off, len) => got.push(Buffer.from(buf.subarray(off, off + len))), flush: () => undefined };
    let tun: LinuxTun;
    let udp: NativeUdp;
    let dp: DataPlane;

    beforeAll(() => {
      tun = LinuxTun.open({ name: `pool${randomBytes(2).toString('hex')}`, mtu: 1400 });
      addAddress(tun.name, `${gwAddr}/24`); // the kernel's connected route sends the pool to the TUN
      udp = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
      dp = b.make(tun, udp);
      dp.addSinkRoute(P(`${client}/32`), sink);
    });

    afterAll(() => {
      dp?.close();
      tun?.close();
      udp?.close();
    });

    it('a ping from the client to the pool address is answered to the client; TUN bytes are counted', async () => {
      const echo = icmpEcho(client, gwAddr, 0x51, 1);
      dp.writeToTun(echo, 0, echo.length);
      await until('the echo reply in the client sink', () => got.some((p) => p[9] === 1 && p[20] === 0));
      const reply = got.find((p) => p[9] === 1 && p[20] === 0)!;
      expect(reply.subarray(12, 16)).toEqual(Buffer.from(gwAddr.split('.').map(Number)));
      expect(reply.subarray(16, 20)).toEqual(Buffer.from(client.split('.').map(Number)));
      const st = dp.stats();
      expect(st.tunTxPackets).toBe(1);
      expect(st.tunTxBytes).toBe(echo.length);
      expect(st.tunRxPackets).toBeGreaterThanOrEqual(1);
      // the kernel may also send its own packets to the pool (none expected here, but never fewer bytes)
      expect(st.tunRxBytes).toBeGreaterThanOrEqual(reply.length);
    });
  });
}
