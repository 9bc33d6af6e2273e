// Site-to-cloud failure paths against the REAL strongSwan 5.9.8: what a user sees when the two sides
// disagree (PSK, subnets, proposals), and that an operator's terminate reaches strongSwan as a DELETE.
// Each case: vpcgw responds in the cloud namespace, strongSwan initiates from the site namespace.
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, createTopology, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { run, waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw, VPCGW_CLI } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

async function lab(o: { vpcgwPsk?: string; vpcgwIke?: string; vpcgwEsp?: string; vpcgwRemote?: string; start?: 'start' | 'none' }) {
  topo = await createTopology({ tag: 'neg' });
  const gw = await Vpcgw.start(
    topo,
    'cloudGw',
    s2cConfig({
      gatewayName: 'gw-neg',
      dataDir: `${topo.workDir}/var`,
      publicAddress: ADDR.cloudGwOutside,
      peerAddress: ADDR.siteGwOutside,
      localId: ADDR.cloudGwOutside,
      peerId: ADDR.siteGwOutside,
      localSubnets: [ADDR.vpcSubnet],
      remoteSubnets: [o.vpcgwRemote ?? ADDR.siteSubnet],
      psk: o.vpcgwPsk ?? TEST_PSK,
      ikeProposals: o.vpcgwIke ?? 'aes128gcm16-prfsha256-x25519',
      espProposals: o.vpcgwEsp ?? 'aes128gcm16',
      startAction: o.start ?? 'none',
    }),
  );
  running.push(gw);
  const sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside,
    remoteAddr: ADDR.cloudGwOutside,
    localId: ADDR.siteGwOutside,
    remoteId: ADDR.cloudGwOutside,
    psk: TEST_PSK,
    ikeProposals: 'aes128gcm16-prfsha256-x25519',
    espProposals: 'aes128gcm16',
    localTs: ADDR.siteSubnet,
    remoteTs: ADDR.vpcSubnet,
  });
  running.push(sw);
  return { gw, sw };
}

describe('strongSwan -> vpcgw: failures are refused with a reason a user can act on', () => {
  it('a wrong PSK: AUTHENTICATION_FAILED to strongSwan, no SA on either side, no PSK in vpcgw logs', async () => {
    const { gw, sw } = await lab({ vpcgwPsk: 'another-test-fixture-psk-0000' });
    const r = await sw.swanctl(['--initiate', '--child', sw.childName, '--timeout', '15'], { timeoutMs: 20_000, allowFail: true });
    expect(r.stdout + r.stderr).toMatch(/AUTHENTICATION_FAILED|initiate failed/);
    expect(sw.log()).toMatch(/received AUTHENTICATION_FAILED notify error/);
    expect(await sw.listSas()).toHaveLength(0);
    const st = await gw.status();
    expect(st.connections[0]!.state).toBe('DOWN');
    const out = gw.output();
    expect(out).toMatch(/pre-shared keys differ/);
    expect(out).not.toContain('another-test-fixture-psk-0000');
    expect(out).not.toContain(TEST_PSK);
  }, 90_000);

  it('disjoint subnets: TS_UNACCEPTABLE, the IKE SA stays up without a child', async () => {
    const { gw, sw } = await lab({ vpcgwRemote: '10.77.0.0/16' });
    await sw.swanctl(['--initiate', '--child', sw.childName, '--timeout', '15'], { timeoutMs: 20_000, allowFail: true });
    expect(sw.log()).toMatch(/received TS_UNACCEPTABLE notify/);
    const st = await gw.status();
    expect(st.connections[0]!.state).toBe('ESTABLISHED');
    expect(st.connections[0]!.children).toHaveLength(0);
    expect(gw.output()).toMatch(/traffic selectors unacceptable/);
  }, 90_000);

  it('no common IKE proposal: NO_PROPOSAL_CHOSEN, and vpcgw logs both offers', async () => {
    const { gw, sw } = await lab({ vpcgwIke: 'aes256-sha512-modp4096' });
    await sw.swanctl(['--initiate', '--child', sw.childName, '--timeout', '15'], { timeoutMs: 20_000, allowFail: true });
    expect(sw.log()).toMatch(/received NO_PROPOSAL_CHOSEN notify error/);
    expect(gw.output()).toMatch(/no acceptable IKE proposal: peer offered .*AES_GCM_16_128.*we accept .*AES_CBC_256/);
    expect((await gw.status()).connections[0]!.state).toBe('DOWN');
  }, 90_000);

  it('vpcgw terminate sends a DELETE that strongSwan honours', async () => {
    const { gw, sw } = await lab({ start: 'start' });
    await gw.waitInstalled(20_000);
    await sw.waitInstalled(10_000);
    await run('ip', ['netns', 'exec', topo!.ns.cloudGw, process.execPath, VPCGW_CLI, 'terminate', 'cgw1-main', '--control', gw.controlPath], { timeoutMs: 15_000 });
    await waitFor(async () => (await sw.listSas()).length === 0, { timeoutMs: 10_000, what: 'strongSwan dropped the SA' });
    expect(sw.log()).toMatch(/received DELETE for IKE_SA/);
    await waitFor(async () => (await gw.status()).connections[0]!.state === 'DOWN', { timeoutMs: 10_000, what: 'vpcgw connection DOWN' });
  }, 90_000);
});
