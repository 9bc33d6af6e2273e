// Baseline that proves the interop harness: strongSwan <-> strongSwan (kernel-libipsec) across
// the four-namespace site-to-cloud topology. If this fails, the s2c-vpcgw scenarios prove nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDR, createTopology, IFACE, iperf3Tcp, parseEspLines, ping, startCapture, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon, normSpi, type IkeSaInfo } from '../helpers/strongswan.js';
import { parseVpcgwStatus } from '../helpers/vpcgw.js';

// TEST FIXTURE ONLY: not a real secret.
const TEST_PSK = 'test-fixture-psk-harness-0123456789';

describe('interop harness: strongSwan <-> strongSwan', () => {
  let topo: Topology;
  let site: Charon;
  let cloud: Charon;

  beforeAll(async () => {
    topo = await createTopology({ tag: 'hx' });
    const common = {
      psk: TEST_PSK,
      ikeProposals: 'aes128gcm16-prfsha256-x25519',
      espProposals: 'aes128gcm16',
    };
    cloud = await Charon.start(topo, 'cloudGw', {
      ...common,
      localAddr: ADDR.cloudGwOutside,
      remoteAddr: ADDR.siteGwOutside,
      localId: ADDR.cloudGwOutside,
      remoteId: ADDR.siteGwOutside,
      localTs: ADDR.vpcSubnet,
      remoteTs: ADDR.siteSubnet,
    });
    site = await Charon.start(topo, 'siteGw', {
      ...common,
      localAddr: ADDR.siteGwOutside,
      remoteAddr: ADDR.cloudGwOutside,
      localId: ADDR.siteGwOutside,
      remoteId: ADDR.cloudGwOutside,
      localTs: ADDR.siteSubnet,
      remoteTs: ADDR.vpcSubnet,
    });
  }, 60_000);

  afterAll(async () => {
    const results = await Promise.all([site?.stop(), cloud?.stop()]);
    await topo?.destroy();
    for (const r of results) if (r) expect(r.killed, 'charon ignored SIGTERM').toBe(false);
  }, 60_000);

  it('without a tunnel, site-host cannot reach vpc-host (the gateways do not route 10.x to each other)', async () => {
    const r = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 1, waitSec: 1 });
    expect(r.received).toBe(0);
  });

  let siteSas: IkeSaInfo[];
  let cloudSas: IkeSaInfo[];

  it('establishes the IKE SA and an INSTALLED child with the requested algorithms', async () => {
    await site.initiate();
    siteSas = await site.waitInstalled();
    cloudSas = await cloud.waitInstalled();
    expect(siteSas).toHaveLength(1);
    expect(cloudSas).toHaveLength(1);
    const s = siteSas[0]!;
    expect(s.state).toBe('ESTABLISHED');
    expect(s.initiator).toBe(true);
    expect(s.encrAlg).toBe('AES_GCM_16');
    expect(s.dhGroup).toBe('CURVE_25519');
    expect(s.remotePort).toBe(4500); // kernel-libipsec forces UDP encapsulation
    const child = s.children[0]!;
    expect(child.state).toBe('INSTALLED');
    expect(child.encap).toBe(true);
    expect(child.encrAlg).toBe('AES_GCM_16');
    expect(child.localTs).toEqual([ADDR.siteSubnet]);
    expect(child.remoteTs).toEqual([ADDR.vpcSubnet]);
  }, 30_000);

  it('both charons show the same IKE SPIs and mirrored child SPIs', () => {
    const s = siteSas[0]!;
    const c = cloudSas[0]!;
    expect(c.initiator).toBe(false);
    expect(c.spiI).toBe(s.spiI);
    expect(c.spiR).toBe(s.spiR);
    const sc = s.children[0]!;
    const cc = c.children[0]!;
    expect(sc.spiIn).toMatch(/^[0-9a-f]{8}$/);
    expect(sc.spiOut).toMatch(/^[0-9a-f]{8}$/);
    expect(cc.spiIn).toBe(sc.spiOut);
    expect(cc.spiOut).toBe(sc.spiIn);
  });

  it('site-host pings vpc-host and back through the tunnel, and the child counts the traffic', async () => {
    await waitForPing(topo, 'siteHost', ADDR.vpcHost, 10_000);
    const there = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 5, intervalSec: 0.1 });
    const back = await ping(topo, 'vpcHost', ADDR.siteHost, { count: 5, intervalSec: 0.1 });
    expect(there.received).toBe(5);
    expect(back.received).toBe(5);
    const child = (await site.listSas())[0]!.children[0]!;
    expect(child.packetsOut).toBeGreaterThanOrEqual(10);
    expect(child.packetsIn).toBeGreaterThanOrEqual(10);
  }, 30_000);

  it('the outside link carries the pings only as UDP-encapsulated ESP on port 4500 with the negotiated SPIs', async () => {
    const site0 = siteSas[0]!.children[0]!;
    const cap = await startCapture(topo, 'cloudGw', IFACE.cloudGwOutside, ['udp', 'or', 'icmp']);
    const r = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.1 });
    const lines = await cap.stop();
    expect(r.received).toBe(3);
    const esp = parseEspLines(lines);
    const toCloud = esp.filter((p) => p.src === ADDR.siteGwOutside && p.dst === ADDR.cloudGwOutside);
    const toSite = esp.filter((p) => p.src === ADDR.cloudGwOutside && p.dst === ADDR.siteGwOutside);
    expect(toCloud.length, lines.join('\n')).toBeGreaterThanOrEqual(3);
    expect(toSite.length, lines.join('\n')).toBeGreaterThanOrEqual(3);
    expect(new Set(toCloud.map((p) => p.spi))).toEqual(new Set([site0.spiOut]));
    expect(new Set(toSite.map((p) => p.spi))).toEqual(new Set([site0.spiIn]));
    expect(esp.every((p) => p.srcPort === 4500 && p.dstPort === 4500)).toBe(true);
    expect(lines.some((l) => l.includes(`${ADDR.siteHost} > ${ADDR.vpcHost}`))).toBe(false);
  }, 20_000);

  it('carries a 3-second iperf3 TCP run', async () => {
    const r = await iperf3Tcp(topo, { serverNs: 'vpcHost', serverAddr: ADDR.vpcHost, clientNs: 'siteHost', seconds: 3 });
    console.log(`[harness] strongSwan<->strongSwan aes128gcm16: ${r.mbps.toFixed(1)} Mbit/s (retransmits ${r.retransmits})`);
    expect(r.mbps).toBeGreaterThan(0);
    const child = (await cloud.listSas())[0]!.children[0]!;
    expect(child.bytesIn).toBeGreaterThan(r.bytes / 2);
  }, 30_000);

  it('terminating the IKE SA removes it on both sides and the tunnel stops carrying traffic', async () => {
    await site.terminateIke();
    const gone = async (c: Charon): Promise<boolean> => (await c.listSas()).length === 0;
    await expect.poll(() => gone(site), { timeout: 10_000, interval: 200 }).toBe(true);
    await expect.poll(() => gone(cloud), { timeout: 10_000, interval: 200 }).toBe(true);
    const r = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 1, waitSec: 1 });
    expect(r.received).toBe(0);
  }, 30_000);
});

describe('interop harness: SPI comparison between swanctl and vpcgw status', () => {
  it('accepts vpcgw SPIs with or without 0x and with dropped leading zeros, as 8 hex digits', () => {
    const st = parseVpcgwStatus(
      JSON.stringify({
        connections: [
          { name: 'c', state: 'ESTABLISHED', children: [{ state: 'INSTALLED', spiIn: '0xC1A2B3D4', spiOut: 'a2b3d4', bytesIn: 1, bytesOut: 2, packetsIn: 3, packetsOut: 4 }] },
        ],
      }),
    );
    expect(st.connections[0]!.children[0]!.spiIn).toBe('c1a2b3d4');
    expect(st.connections[0]!.children[0]!.spiOut).toBe('00a2b3d4');
    expect(normSpi('00a2b3d4')).toBe(st.connections[0]!.children[0]!.spiOut);
  });

  it('rejects status output that is not the JSON contract, instead of comparing nothing', () => {
    expect(() => parseVpcgwStatus('ok')).toThrow(/no JSON/);
    expect(() => parseVpcgwStatus('{"conns":[]}')).toThrow(/connections/);
  });
});
