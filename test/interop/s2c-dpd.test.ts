// Dead peer detection with the REAL strongSwan 5.9.8, both ways, on an idle tunnel: strongSwan's
// liveness checks (dpd_delay) are answered by vpcgw, and vpcgw's own (dpd.interval) are answered by
// strongSwan; the SA stays up on both sides with the same SPIs.
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, createTopology, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { sleep } from '../helpers/proc.js';
import { s2cConfig, Vpcgw } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

async function lab(o: { vpcgwDpd?: string; swDpd?: string }) {
  topo = await createTopology({ tag: 'dpd' });
  const cfg = s2cConfig({
    gatewayName: 'gw-dpd', dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
    psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', startAction: 'none',
  });
  if (o.vpcgwDpd) (cfg.vpnConnections[0] as Record<string, unknown>).dpd = { interval: o.vpcgwDpd };
  const gw = await Vpcgw.start(topo, 'cloudGw', cfg);
  running.push(gw);
  const sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
    psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16',
    localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet, dpdDelay: o.swDpd, logLevels: { default: 1, ike: 2, enc: 1, cfg: 1, knl: 1 },
  });
  running.push(sw);
  await sw.initiate();
  return { gw, sw };
}

describe('DPD between vpcgw and strongSwan (idle tunnel)', () => {
  it("vpcgw answers strongSwan's liveness checks", async () => {
    const { gw, sw } = await lab({ swDpd: '2s' });
    const before = (await gw.status()).connections[0]!;
    await sleep(7000);
    const log = sw.log();
    expect(log).toMatch(/sending DPD request/);
    expect(log.match(/parsed INFORMATIONAL response \d+ \[ \]/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    const after = (await gw.status()).connections[0]!;
    expect(after.state).toBe('ESTABLISHED');
    expect(after.children[0]!.spiIn).toBe(before.children[0]!.spiIn);
    expect(await sw.listSas()).toHaveLength(1);
  }, 90_000);

  it('vpcgw sends its own liveness checks (dpd.interval) and strongSwan answers them', async () => {
    const { gw, sw } = await lab({ vpcgwDpd: '2s' });
    await sleep(7000);
    const log = sw.log();
    expect(log.match(/parsed INFORMATIONAL request \d+ \[ \]/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    expect(log).toMatch(/generating INFORMATIONAL response \d+ \[ \]/);
    expect((await gw.status()).connections[0]!.state).toBe('ESTABLISHED');
    expect(await sw.listSas()).toHaveLength(1);
  }, 90_000);
});
