// CHILD_SA byte lifetimes and simultaneous rekeys through `vpcgw start`, with the REAL strongSwan
// 5.9.8 as the customer gateway:
// 1. esp.lifetimeBytes 16 MiB under iperf3: vpcgw's data plane reports the soft limit, vpcgw rekeys
//    (strongSwan answers REKEY_SA requests), new SPIs on both sides, and no iperf3 interval without
//    throughput.
// 2. `vpcgw rekey NAME` and `swanctl --rekey --child` while IKE between the gateways is briefly
//    dropped (nftables), so both requests are outstanding and their retransmissions cross (RFC 7296
//    §2.8.1): the nonces decide, exactly one pair of CHILD_SAs remains on both sides, traffic flows.
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, createTopology, ping, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon, type IkeSaInfo } from '../helpers/strongswan.js';
import { run, sleep, waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw, VPCGW_CLI } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';
import { controlCall } from '../../src/gateway/control.js';

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

const LIFETIME_BYTES = 16 * 1024 * 1024;

async function lab(tag: string, esp: string, lifetimeBytes = 0) {
  topo = await createTopology({ tag });
  const cfg = s2cConfig({
    gatewayName: `gw-${tag}`, dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
    psk: TEST_PSK, ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: esp, startAction: 'none',
  });
  if (lifetimeBytes) Object.assign(cfg.vpnConnections[0]!.esp, { lifetimeBytes });
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
  return { gw, sw, conn: cfg.vpnConnections[0]!.name };
}

/** Exactly one IKE SA with one INSTALLED child on strongSwan, one child on vpcgw, the same SPI pair. */
async function onePair(gw: Vpcgw, sw: Charon, timeoutMs = 20_000): Promise<IkeSaInfo> {
  return waitFor(
    async () => {
      const sas = (await sw.listSas()).filter((s) => s.state === 'ESTABLISHED');
      if (sas.length !== 1 || sas[0]!.children.length !== 1 || sas[0]!.children[0]!.state !== 'INSTALLED') return undefined;
      const conn = (await gw.status()).connections[0]!;
      if (conn.state !== 'ESTABLISHED' || conn.children.length !== 1) return undefined;
      const [ours, theirs] = [conn.children[0]!, sas[0]!.children[0]!];
      return ours.spiIn === theirs.spiOut && ours.spiOut === theirs.spiIn ? sas[0] : undefined;
    },
    { timeoutMs, intervalMs: 200, what: 'one pair of CHILD_SAs on both sides' },
  );
}

/** iperf3 TCP from the site host to the VPC host, with per-second intervals (Mbit/s each). */
async function iperfIntervals(t: Topology, seconds: number): Promise<{ intervals: number[]; mbps: number }> {
  const port = 5211;
  const server = t.spawnIn('vpcHost', 'iperf3', ['-s', '-1', '-B', ADDR.vpcHost, '-p', String(port)], { label: 'iperf3 server' });
  try {
    await waitFor(async () => {
      if (!server.running) throw new Error(`iperf3 server exited: ${server.output()}`);
      return (await t.exec('vpcHost', 'ss', ['-Hltn', `sport = :${port}`], { allowFail: true })).stdout.includes(`:${port}`);
    }, { timeoutMs: 5000, intervalMs: 100, what: 'the iperf3 server to listen' });
    const r = await t.exec('siteHost', 'iperf3', ['-c', ADDR.vpcHost, '-p', String(port), '-t', String(seconds), '-i', '1', '-J', '--connect-timeout', '3000'],
      { timeoutMs: (seconds + 15) * 1000, allowFail: true });
    const j = JSON.parse(r.stdout) as { error?: string; intervals?: { sum: { bits_per_second: number } }[]; end?: { sum_received?: { bits_per_second: number } } };
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    return { intervals: (j.intervals ?? []).map((i) => i.sum.bits_per_second / 1e6), mbps: (j.end?.sum_received?.bits_per_second ?? 0) / 1e6 };
  } finally {
    await server.stop('SIGTERM', 2000);
  }
}

function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'g'))?.length ?? 0;
}

describe('CHILD_SA byte lifetimes and rekey collisions against strongSwan', () => {
  it('esp.lifetimeBytes 16 MiB under iperf3: vpcgw rekeys at the soft limit, new SPIs both sides, no interval without throughput', async () => {
    const { gw, sw } = await lab('life', 'aes128gcm16', LIFETIME_BYTES);
    const first = (await onePair(gw, sw)).children[0]!;
    const { intervals, mbps } = await iperfIntervals(topo!, 6);
    expect(intervals.length).toBeGreaterThanOrEqual(5);
    // every 1-s interval carried traffic: no stall across the rekeys
    for (const m of intervals) expect(m, `iperf3 intervals (Mbit/s): ${intervals.map((x) => x.toFixed(0)).join(' ')}`).toBeGreaterThan(0);
    const out = gw.output();
    const soft = count(out, /reached its soft byte\/packet limit: rekeying/);
    // 6 s at `mbps` moved far more than one lifetime: at least one rekey per 16 MiB crossed (minus the last)
    const crossed = Math.floor((mbps * 1e6 / 8) * 6 / LIFETIME_BYTES);
    expect(soft, `vpcgw output tail: ${out.slice(-3000)}`).toBeGreaterThanOrEqual(Math.max(1, Math.min(3, crossed - 1)));
    expect(out).not.toMatch(/reached its hard byte\/packet limit/);
    // strongSwan answered our REKEY_SA requests and holds the new pair
    expect(sw.log()).toMatch(/parsed CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No TSi TSr \]/);
    const last = (await onePair(gw, sw)).children[0]!;
    expect(last.spiIn).not.toBe(first.spiIn);
    expect(last.spiOut).not.toBe(first.spiOut);
    const r = await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(r.received).toBe(3);
  }, 60_000);

  it('vpcgw rekey and swanctl --rekey at once: the nonces decide, one pair of CHILD_SAs remains, traffic flows', async () => {
    const { gw, sw, conn } = await lab('collide', 'aes128gcm16-modp4096');
    // `vpcgw rekey NAME` once as users run it (an ordinary rekey, no collision)
    const r0 = await run(process.execPath, [VPCGW_CLI, 'rekey', conn, '--control', gw.controlPath], { timeoutMs: 10_000 });
    expect(r0.stdout).toMatch(/CHILD_SAs rekeying/);
    const before = (await onePair(gw, sw)).children[0]!.spiOut;
    expect(gw.output()).not.toMatch(/CHILD_SA rekey collision/);
    // A collision made certain, in this order: strongSwan's IKE packets to us are dropped in the site's
    // namespace (nftables); strongSwan sends its rekey request (lost); ours reaches strongSwan while its
    // own is outstanding (it sees the collision; its answer is lost); the block goes; strongSwan's
    // retransmitted request then reaches us while ours is outstanding (we see it), and our retransmission
    // gets strongSwan's cached answer. Both sides complete both exchanges (RFC 7296 §2.8.1).
    const nft = (script: string) => topo!.exec('siteGw', 'nft', ['-f', '-'], { input: script });
    const sent = (re: RegExp) => count(sw.log(), re);
    // strongSwan answered our request (the answer lost), having seen the collision
    const ourRequests = () => sent(/detected CHILD_REKEY collision with CHILD_REKEY[\s\S]*?generating CREATE_CHILD_SA response \d+ \[ SA No/);
    const theirRequests = () => sent(/generating CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\)/);
    const [ours0, theirs0] = [ourRequests(), theirRequests()];
    await nft('table inet vgcollide {\n  chain out { type filter hook output priority 0; udp dport { 500, 4500 } drop; }\n}\n');
    let theirs: Promise<unknown> = Promise.resolve();
    try {
      theirs = sw.swanctl(['--rekey', '--child', sw.childName], { timeoutMs: 30_000, allowFail: true });
      await waitFor(async () => theirRequests() > theirs0, { timeoutMs: 10_000, intervalMs: 50, what: 'strongSwan to send its rekey request' });
      await controlCall(gw.controlPath, 'rekey', { name: conn, sa: 'child' });
      await waitFor(async () => ourRequests() > ours0, { timeoutMs: 10_000, intervalMs: 50, what: 'strongSwan to answer our rekey request' });
      await sleep(300); // its answer has left (and been dropped)
    } finally {
      await nft('delete table inet vgcollide\n');
    }
    await theirs;
    await waitFor(async () => /CHILD_SA rekey collision (won|lost)/.test(gw.output()), { timeoutMs: 20_000, intervalMs: 200, what: 'vpcgw to resolve the collision' })
      .catch((err: Error) => {
        throw new Error(`${err.message}\nvpcgw log: ${gw.output().slice(-5000)}\ncharon log: ${sw.log().slice(-5000)}`);
      });
    const now = await onePair(gw, sw, 20_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: vpcgw ${JSON.stringify((await gw.status()).connections)}\nstrongSwan ${JSON.stringify(await sw.listSas())}\n`
        + `vpcgw log: ${gw.output().slice(-6000)}\ncharon log: ${sw.log().slice(-6000)}`);
    });
    expect(now.children[0]!.spiOut).not.toBe(before);
    const out = gw.output();
    // our side saw both halves (its own rekey in flight and strongSwan's request) and resolved it
    expect(out).toMatch(/CHILD_SA rekey collision: the peer rekeyed/);
    await sleep(1500); // the redundant child's DELETE and the old child's DELETE settle
    const final = await onePair(gw, sw);
    expect(final.children).toHaveLength(1);
    expect(sw.log()).not.toMatch(/received (NO_PROPOSAL_CHOSEN|INVALID_KE_PAYLOAD|CHILD_SA_NOT_FOUND)/);
    const r = await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(r.received).toBe(3);
    const back = await ping(topo!, 'vpcHost', ADDR.siteHost, { count: 3 });
    expect(back.received).toBe(3);
  }, 90_000);
});
