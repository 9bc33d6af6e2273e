// Peers that restart or vanish, with the REAL strongSwan 5.9.8 and vpcgw as users run it (`vpcgw start`):
//  - dpd action restart: charon is killed (no DELETE) and started again without state; vpcgw's liveness
//    check goes unanswered, it clears the SAs and initiates again by itself; pings pass;
//  - INITIAL_CONTACT: a restarted charon initiates again; vpcgw drops its old IKE SA at once;
//  - a restarted vpcgw (killed, no DELETE) brings its startAction start connection back by itself and
//    strongSwan replaces its stale SA (our INITIAL_CONTACT);
//  - startAction trap: no tunnel until a packet from the VPC side goes to the site; then up and pings pass.
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, createTopology, waitForPing, ping, type Topology } from '../helpers/netns.js';
import { Charon, type StrongSwanConnConfig } from '../helpers/strongswan.js';
import { sleep, waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw, type VpcgwConfig } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

const IKE = 'aes128gcm16-prfsha256-x25519';
const ESP = 'aes128gcm16';

function gwConfig(t: Topology, startAction: 'start' | 'none' | 'trap', dpd?: Record<string, string>): VpcgwConfig {
  const cfg = s2cConfig({
    gatewayName: 'gw-peers', dataDir: `${t.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
    psk: TEST_PSK, ikeProposals: IKE, espProposals: ESP, startAction: 'none',
  });
  const conn = cfg.vpnConnections[0] as Record<string, unknown>;
  conn.startAction = startAction;
  if (dpd) conn.dpd = dpd;
  return cfg;
}

const swConfig: StrongSwanConnConfig = {
  localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
  psk: TEST_PSK, ikeProposals: IKE, espProposals: ESP, localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
  logLevels: { default: 1, ike: 2, enc: 1, cfg: 1, knl: 1 },
};

async function startCharon(t: Topology): Promise<Charon> {
  const sw = await Charon.start(t, 'siteGw', swConfig);
  running.push(sw);
  return sw;
}

/** SIGKILL: the process gets no chance to send DELETEs (a crash or power loss). */
async function crash(p: { proc: { stop(signal: NodeJS.Signals, timeoutMs: number): Promise<unknown> } }): Promise<void> {
  await p.proc.stop('SIGKILL', 3000);
}

describe('peers that restart or vanish (vpcgw start against strongSwan)', () => {
  it('dpd action restart: after charon is killed and started again, vpcgw brings the tunnel back by itself', async () => {
    topo = await createTopology({ tag: 'pdr' });
    let sw = await startCharon(topo);
    const gw = await Vpcgw.start(topo, 'cloudGw', gwConfig(topo, 'start', { interval: '2s', action: 'restart', timeout: '3s' }));
    running.push(gw);
    const before = (await gw.waitInstalled()).connections[0]!.children[0]!;
    await waitForPing(topo, 'vpcHost', ADDR.siteHost);
    await crash(sw);
    sw = await startCharon(topo); // no state, start_action none: only vpcgw can bring the tunnel back
    const after = await waitFor(async () => {
      const s = await gw.status();
      const c = s.connections[0]!;
      return c.state === 'ESTABLISHED' && c.children[0] && c.children[0].spiIn !== before.spiIn ? c : undefined;
    }, { timeoutMs: 25_000, intervalMs: 250, what: 'vpcgw to re-initiate after the DPD timeout' });
    expect(after.children[0]!.state).toBe('INSTALLED');
    expect(gw.output()).toMatch(/dpd action restart/);
    expect(await sw.listSas()).toHaveLength(1);
    await waitForPing(topo, 'vpcHost', ADDR.siteHost);
    expect((await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.2 })).received).toBe(3);
  }, 60_000);

  it('INITIAL_CONTACT: a restarted charon that initiates again replaces our old IKE SA at once', async () => {
    topo = await createTopology({ tag: 'pic' });
    let sw = await startCharon(topo);
    const gw = await Vpcgw.start(topo, 'cloudGw', gwConfig(topo, 'none'));
    running.push(gw);
    await sw.initiate();
    const before = (await gw.waitInstalled()).connections[0]!.children[0]!;
    await crash(sw);
    sw = await startCharon(topo);
    await sw.initiate();
    const swSa = (await sw.listSas())[0]!;
    // "at once": the old IKE SA goes when the new one is authenticated, not after a DPD or a lifetime
    const s = await waitFor(async () => {
      const c = (await gw.status()).connections[0]!;
      return c.state === 'ESTABLISHED' && /down: replaced \(INITIAL_CONTACT from peer\)/.test(gw.output()) ? c : undefined;
    }, { timeoutMs: 3000, intervalMs: 200, what: 'vpcgw to drop its old IKE SA (INITIAL_CONTACT)' });
    expect(s.children).toHaveLength(1);
    expect(s.children[0]!.spiIn).not.toBe(before.spiIn);
    expect(s.children[0]!.spiOut).toBe(swSa.children[0]!.spiIn);
    expect(gw.output().match(/\] established between/g)?.length).toBe(2);
    expect(gw.output().match(/down: replaced \(INITIAL_CONTACT from peer\)/g)?.length).toBe(1);
    await waitForPing(topo, 'vpcHost', ADDR.siteHost);
  }, 60_000);

  it('a restarted vpcgw brings its startAction start connection back; strongSwan replaces its stale SA', async () => {
    topo = await createTopology({ tag: 'prs' });
    const sw = await startCharon(topo);
    const cfg = gwConfig(topo, 'start');
    let gw = await Vpcgw.start(topo, 'cloudGw', cfg);
    running.push(gw);
    await gw.waitInstalled();
    const oldSw = (await sw.listSas())[0]!;
    await crash(gw);
    rmSync(gw.controlPath, { force: true });
    gw = await Vpcgw.start(topo, 'cloudGw', cfg);
    running.push(gw);
    await gw.waitInstalled();
    const sas = await waitFor(async () => {
      const l = await sw.listSas();
      return l.length === 1 && l[0]!.children.length === 1 && l[0]!.children[0]!.spiIn !== oldSw.children[0]!.spiIn ? l : undefined;
    }, { timeoutMs: 5000, intervalMs: 200, what: 'strongSwan to keep only the new IKE SA' });
    expect(sas[0]!.state).toBe('ESTABLISHED');
    await waitForPing(topo, 'vpcHost', ADDR.siteHost);
  }, 60_000);

  it('startAction trap: no tunnel until traffic from the VPC goes to the site, then up and pings pass', async () => {
    topo = await createTopology({ tag: 'ptr' });
    const sw = await startCharon(topo);
    const gw = await Vpcgw.start(topo, 'cloudGw', gwConfig(topo, 'trap'));
    running.push(gw);
    await sleep(2000);
    expect((await gw.status()).connections[0]!.state).toBe('DOWN');
    expect(await sw.listSas()).toHaveLength(0);
    await waitForPing(topo, 'vpcHost', ADDR.siteHost, 15_000);
    expect((await gw.status()).connections[0]!.state).toBe('ESTABLISHED');
    expect(await sw.listSas()).toHaveLength(1);
    expect((await ping(topo, 'vpcHost', ADDR.siteHost, { count: 3, intervalSec: 0.2 })).received).toBe(3);
    expect(gw.output()).toMatch(/trapped connection: initiating/);
  }, 60_000);
});
