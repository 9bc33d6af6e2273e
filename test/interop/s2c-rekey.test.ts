// Rekeying with the REAL strongSwan 5.9.8 as the rekey initiator and vpcgw responding: two CHILD_SA
// rekeys and one IKE_SA rekey (`swanctl --rekey`), then the same with PFS on the child. After each
// the tunnel carries pings, strongSwan has exactly one INSTALLED child whose SPIs are vpcgw's (in
// mirror), and vpcgw shows one ESTABLISHED connection with one child.
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, createTopology, ping, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon, type IkeSaInfo } from '../helpers/strongswan.js';
import { sleep, waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

async function lab(esp: string) {
  topo = await createTopology({ tag: 'rekey' });
  const cfg = s2cConfig({
    gatewayName: 'gw-rekey', dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
    psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: esp, startAction: 'none',
  });
  const gw = await Vpcgw.start(topo, 'cloudGw', cfg);
  running.push(gw);
  const sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
    psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: esp,
    localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet, logLevels: { default: 1, ike: 2, enc: 1, cfg: 1, knl: 1 },
  });
  running.push(sw);
  await sw.initiate();
  await waitForPing(topo, 'siteHost', ADDR.vpcHost);
  return { gw, sw };
}

/** Waits until both sides agree on exactly one child (the old one deleted) and returns strongSwan's IKE SA. */
async function settled(gw: Vpcgw, sw: Charon, notSpi: string | null): Promise<IkeSaInfo> {
  return waitFor(
    async () => {
      const sas = (await sw.listSas()).filter((s) => s.state === 'ESTABLISHED');
      if (sas.length !== 1) return undefined;
      const kids = sas[0]!.children.filter((c) => c.state === 'INSTALLED');
      if (kids.length !== 1 || sas[0]!.children.length !== 1 || kids[0]!.spiOut === notSpi) return undefined;
      const st = await gw.status();
      const conn = st.connections[0]!;
      if (conn.state !== 'ESTABLISHED' || conn.children.length !== 1) return undefined;
      return sas[0];
    },
    { timeoutMs: 20_000, intervalMs: 250, what: 'one INSTALLED child on both sides after the rekey' },
  );
}

async function expectSame(gw: Vpcgw, sw: Charon): Promise<void> {
  const ike = await settled(gw, sw, null);
  const child = ike.children[0]!;
  const conn = (await gw.status()).connections.filter((c) => c.state === 'ESTABLISHED');
  expect(conn).toHaveLength(1);
  expect(conn[0]!.children).toHaveLength(1);
  expect(conn[0]!.children[0]!.spiIn).toBe(child.spiOut);
  expect(conn[0]!.children[0]!.spiOut).toBe(child.spiIn);
  const r = await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3 });
  expect(r.received).toBe(3);
}

async function rekeyChild(gw: Vpcgw, sw: Charon): Promise<void> {
  const before = (await sw.listSas())[0]!.children[0]!.spiOut;
  await sw.swanctl(['--rekey', '--child', sw.childName]);
  await settled(gw, sw, before);
  await expectSame(gw, sw);
}

describe('rekeying started by strongSwan, vpcgw responding', () => {
  it('survives two CHILD_SA rekeys and an IKE_SA rekey', async () => {
    const { gw, sw } = await lab('aes128gcm16');
    await rekeyChild(gw, sw);
    await rekeyChild(gw, sw);
    const before = (await sw.listSas())[0]!;
    await sw.swanctl(['--rekey', '--ike', sw.connName]);
    const after = await waitFor(
      async () => {
        const sas = await sw.listSas();
        return sas.length === 1 && sas[0]!.state === 'ESTABLISHED' && sas[0]!.spiI !== before.spiI ? sas[0] : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: 'strongSwan to hold only the rekeyed IKE SA' },
    );
    expect(after.children[0]!.spiOut).toBe(before.children[0]!.spiOut); // ESP untouched by an IKE rekey
    await expectSame(gw, sw);
    expect(sw.log()).not.toMatch(/received (NO_PROPOSAL_CHOSEN|INVALID_KE_PAYLOAD|NO_ADDITIONAL_SAS|CHILD_SA_NOT_FOUND)/);
    // the rekeyed IKE SA works: a child rekey on it goes through
    await rekeyChild(gw, sw);
  }, 120_000);

  it('a child rekey under traffic loses no packets in either direction', async () => {
    const { gw, sw } = await lab('aes128gcm16');
    const before = (await sw.listSas())[0]!.children[0]!.spiOut;
    const flood = { count: 400, intervalSec: 0.01, waitSec: 2 };
    const [up, down] = await Promise.all([
      ping(topo!, 'siteHost', ADDR.vpcHost, flood),
      ping(topo!, 'vpcHost', ADDR.siteHost, flood),
      (async () => {
        await sleep(1500);
        await sw.swanctl(['--rekey', '--child', sw.childName]);
      })(),
    ]);
    await settled(gw, sw, before);
    expect(up.transmitted).toBe(400);
    expect(up.received, up.output.slice(-300)).toBe(400);
    expect(down.received, down.output.slice(-300)).toBe(400);
  }, 120_000);

  it('with PFS (aes128gcm16-x25519): the child rekey carries a KE and the tunnel keeps working', async () => {
    const { gw, sw } = await lab('aes128gcm16-x25519');
    await rekeyChild(gw, sw);
    expect(sw.log()).toMatch(/CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]/);
    expect(sw.log()).toMatch(/CREATE_CHILD_SA response \d+ \[ SA No KE TSi TSr \]/);
    const child = (await sw.listSas())[0]!.children[0]!;
    expect(child.dhGroup).toMatch(/CURVE_25519/);
  }, 120_000);
});
