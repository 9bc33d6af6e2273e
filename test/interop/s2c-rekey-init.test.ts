// Rekeys STARTED by vpcgw at its configured lifetimes, against the REAL strongSwan 5.9.8 (whose own
// rekey times are long, so every rekey here is vpcgw's): a 12 s ESP lifetime makes vpcgw rekey the
// child (a ping flood across it loses nothing), a 15 s IKE lifetime makes it rekey the IKE SA.
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, createTopology, ping, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

async function lab(o: { espLifetime: string; ikeLifetime: string }) {
  topo = await createTopology({ tag: 'rkinit' });
  const cfg = s2cConfig({
    gatewayName: 'gw-rkinit', dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
    psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', startAction: 'none',
  });
  cfg.vpnConnections[0]!.esp.lifetime = o.espLifetime;
  cfg.vpnConnections[0]!.ike.lifetime = o.ikeLifetime;
  const gw = await Vpcgw.start(topo, 'cloudGw', cfg);
  running.push(gw);
  const sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
    psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16',
    localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet, ikeRekeyTime: '4h', childRekeyTime: '1h',
    logLevels: { default: 1, ike: 2, enc: 1, cfg: 1, knl: 1 },
  });
  running.push(sw);
  await sw.initiate();
  await waitForPing(topo, 'siteHost', ADDR.vpcHost);
  return { gw, sw };
}

describe('rekeying started by vpcgw at its lifetimes, strongSwan responding', () => {
  it('ESP lifetime 12 s: vpcgw rekeys the child, SPIs change on both sides, a ping flood across the rekey loses nothing', async () => {
    const { gw, sw } = await lab({ espLifetime: '12s', ikeLifetime: '4h' });
    const before = (await sw.listSas())[0]!.children[0]!;
    // ~14 s of traffic both ways (50 packets/s each way); the rekey falls at 10.8–12 s after the child came up
    const flood = { count: 700, intervalSec: 0.02, waitSec: 2 };
    const [up, down] = await Promise.all([
      ping(topo!, 'siteHost', ADDR.vpcHost, flood),
      ping(topo!, 'vpcHost', ADDR.siteHost, flood),
    ]);
    const ike = await waitFor(
      async () => {
        const sas = (await sw.listSas()).filter((s) => s.state === 'ESTABLISHED');
        if (sas.length !== 1 || sas[0]!.children.length !== 1 || sas[0]!.children[0]!.state !== 'INSTALLED') return undefined;
        if (sas[0]!.children[0]!.spiIn === before.spiIn || sas[0]!.children[0]!.spiOut === before.spiOut) return undefined;
        const conn = (await gw.status()).connections[0]!;
        return conn.state === 'ESTABLISHED' && conn.children.length === 1 ? sas[0] : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: 'one INSTALLED child with new SPIs on both sides' },
    );
    // it was vpcgw that rekeyed: strongSwan parsed a REKEY_SA request and answered it
    expect(sw.log()).toMatch(/parsed CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No TSi TSr \]/);
    expect(sw.log()).toMatch(/generating CREATE_CHILD_SA response \d+ \[ SA No TSi TSr \]/);
    expect(sw.log()).toMatch(/parsed INFORMATIONAL request \d+ \[ D \]/);
    expect(up.transmitted).toBe(700);
    expect(up.received, up.output.slice(-300)).toBe(700);
    expect(down.received, down.output.slice(-300)).toBe(700);
    const conn = (await gw.status()).connections[0]!;
    const child = ike.children[0]!;
    if (conn.children[0]!.spiIn !== child.spiOut) {
      // a further 12 s rekey may have happened between the two reads; they agree after it settles
      await waitFor(async () => ((await gw.status()).connections[0]!.children[0]!.spiIn === (await sw.listSas())[0]!.children[0]!.spiOut ? true : undefined),
        { timeoutMs: 15_000, intervalMs: 250, what: 'vpcgw and strongSwan to agree on the child SPIs' });
    }
    const r = await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(r.received).toBe(3);
    expect(sw.log()).not.toMatch(/received (NO_PROPOSAL_CHOSEN|INVALID_KE_PAYLOAD|TS_UNACCEPTABLE|CHILD_SA_NOT_FOUND)/);
  }, 120_000);

  it('IKE lifetime 15 s: vpcgw rekeys the IKE SA, strongSwan keeps one ESTABLISHED IKE SA with new SPIs, ESP untouched', async () => {
    const { gw, sw } = await lab({ espLifetime: '1h', ikeLifetime: '15s' });
    const before = (await sw.listSas())[0]!;
    expect(before.initiator).toBe(true);
    const after = await waitFor(
      async () => {
        const sas = await sw.listSas();
        return sas.length === 1 && sas[0]!.state === 'ESTABLISHED' && sas[0]!.spiI !== before.spiI && sas[0]!.spiR !== before.spiR ? sas[0] : undefined;
      },
      { timeoutMs: 25_000, intervalMs: 250, what: 'strongSwan to hold only the IKE SA vpcgw rekeyed' },
    );
    expect(sw.log()).toMatch(/parsed CREATE_CHILD_SA request \d+ \[ SA No KE \]/);
    // vpcgw started the rekey: it is the new SA's original initiator
    expect(after.initiator).toBe(false);
    expect(after.children).toHaveLength(1);
    expect(after.children[0]!.spiOut).toBe(before.children[0]!.spiOut);
    const conn = (await gw.status()).connections.filter((c) => c.state === 'ESTABLISHED');
    expect(conn).toHaveLength(1);
    expect(conn[0]!.children).toHaveLength(1);
    expect(conn[0]!.children[0]!.spiIn).toBe(after.children[0]!.spiOut);
    const r = await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(r.received).toBe(3);
  }, 120_000);
});
