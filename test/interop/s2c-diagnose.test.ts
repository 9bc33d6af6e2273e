// "Why is my tunnel down" against the REAL strongSwan 5.9.8: each misconfiguration is made on the
// charon side (its swanctl.conf rewritten and reloaded; one vpcgw daemon, one charon for the whole
// file), and `vpcgw status --json` and `vpcgw diagnose` must name it in the words of README.md's
// "Why is my tunnel down". First charon initiates (vpcgw judges what the peer sent), then vpcgw
// initiates (vpcgw reports what charon refused). Last, charon is stopped: with a short retransmission
// schedule (gateway.ike.retransmitTimeout 1s, retransmitTries 2) vpcgw names the unanswered peer.
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDR, createTopology, type Topology } from '../helpers/netns.js';
import { Charon, swanctlConf, type StrongSwanConnConfig } from '../helpers/strongswan.js';
import { run, waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw, VPCGW_CLI } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';

const CONN = 'cgw1-main';
const OURS_IKE = 'aes128gcm16-prfsha256-x25519';
const OURS_ESP = 'aes128gcm16';

const BASE: StrongSwanConnConfig = {
  localAddr: ADDR.siteGwOutside,
  remoteAddr: ADDR.cloudGwOutside,
  localId: ADDR.siteGwOutside,
  remoteId: ADDR.cloudGwOutside,
  psk: TEST_PSK,
  ikeProposals: OURS_IKE,
  espProposals: OURS_ESP,
  localTs: ADDR.siteSubnet,
  remoteTs: ADDR.vpcSubnet,
};

interface LastError { code: string; message: string; hint: string; at: string }

let topo: Topology;
let gw: Vpcgw;
let sw: Charon;

beforeAll(async () => {
  topo = await createTopology({ tag: 'diag' });
  gw = await Vpcgw.start(topo, 'cloudGw', s2cConfig({
    gatewayName: 'gw-diag',
    dataDir: `${topo.workDir}/var`,
    publicAddress: ADDR.cloudGwOutside,
    peerAddress: ADDR.siteGwOutside,
    localId: ADDR.cloudGwOutside,
    peerId: ADDR.siteGwOutside,
    localSubnets: [ADDR.vpcSubnet],
    remoteSubnets: [ADDR.siteSubnet],
    psk: TEST_PSK,
    ikeProposals: OURS_IKE,
    espProposals: OURS_ESP,
    startAction: 'none',
    gatewayIke: { retransmitTimeout: '1s', retransmitTries: 2 },
  }));
  sw = await Charon.start(topo, 'siteGw', BASE);
}, 60_000);

afterAll(async () => {
  await sw?.stop();
  await gw?.stop();
  await topo?.destroy();
});

async function cli(args: string[]): Promise<string> {
  // the control socket is a file: reachable from outside the gateway's namespace
  const r = await run(process.execPath, [VPCGW_CLI, ...args, '--control', gw.controlPath], { timeoutMs: 15_000 });
  return r.stdout;
}

/** Rewrites charon's swanctl.conf with the misconfiguration and reloads it (old credentials cleared). */
async function charonWith(over: Partial<StrongSwanConnConfig>): Promise<void> {
  writeFileSync(sw.swanctlPath, swanctlConf({ ...BASE, ...over }), { mode: 0o600 });
  await sw.swanctl(['--load-all', '--clear', '--noprompt', '--file', sw.swanctlPath]);
}

/** Waits for the connection's last error to have `code` and a message matching `message`. */
async function lastError(code: string, message: RegExp): Promise<LastError> {
  return waitFor(async () => {
    const st = JSON.parse(await cli(['status', '--json'])) as { connections: { name: string; lastError?: LastError }[] };
    const e = st.connections.find((c) => c.name === CONN)?.lastError;
    return e && e.code === code && message.test(e.message) ? e : undefined;
  }, { timeoutMs: 20_000, intervalMs: 250, what: `${CONN} lastError ${code} ${message}` });
}

/** Both sides without SAs again (after a case whose IKE SA stays up without a child). */
async function reset(): Promise<void> {
  await sw.terminateIke();
  await waitFor(async () => {
    const st = JSON.parse(await cli(['status', '--json'])) as { connections: { name: string; state: string }[] };
    return st.connections.find((c) => c.name === CONN)?.state === 'DOWN';
  }, { timeoutMs: 10_000, intervalMs: 250, what: `${CONN} DOWN` });
}

async function charonInitiates(): Promise<void> {
  await sw.swanctl(['--initiate', '--child', sw.childName, '--timeout', '10'], { timeoutMs: 15_000, allowFail: true });
}

async function vpcgwInitiates(): Promise<void> {
  await cli(['initiate', CONN]);
}

describe('vpcgw says why a tunnel is down (strongSwan misconfigured)', () => {
  it('as responder: IKE and ESP proposals, PSK, traffic selectors and peer ID, each named', async () => {
    await charonWith({ ikeProposals: 'aes256-sha1-modp1024' });
    await charonInitiates();
    const ike = await lastError('IKE_PROPOSAL_MISMATCH', /peer offered aes256-sha1-modp1024, we accept aes128gcm16-prfsha256-x25519/);
    expect(Date.now() - Date.parse(ike.at)).toBeLessThan(60_000);
    const text = await cli(['diagnose', CONN]);
    expect(text).toContain(`connection ${CONN}: DOWN`);
    expect(text).toContain('suggested fix: set ike.proposals to include aes256-sha1-modp1024 or ask the peer for aes128gcm16-prfsha256-x25519');
    expect(await cli(['status'])).toContain('last error');
    expect(gw.output()).toMatch(/negotiation failed: no acceptable IKE proposal: peer offered aes256-sha1-modp1024/);

    await charonWith({ espProposals: 'aes256-sha1' });
    await charonInitiates();
    await lastError('ESP_PROPOSAL_MISMATCH', /peer offered aes256-sha1, we accept aes128gcm16/);
    const d = JSON.parse(await cli(['diagnose', CONN, '--json'])) as { state: string; children: number; suggestedFix: string };
    expect(d).toMatchObject({ state: 'ESTABLISHED', children: 0, suggestedFix: 'set esp.proposals to include aes256-sha1 or ask the peer for aes128gcm16' });
    await reset();

    await charonWith({ psk: 'another-test-fixture-psk-0000' });
    await charonInitiates();
    await lastError('PEER_AUTH_FAILED', new RegExp(`PSK mismatch: the AUTH of peer ${ADDR.siteGwOutside} did not verify`));

    await charonWith({ localTs: '10.9.0.0/16' });
    await charonInitiates();
    await lastError('TS_UNACCEPTABLE', /no traffic selector overlap: peer proposed 10\.9\.0\.0\/16/);
    await reset();

    await charonWith({ localId: 'fqdn:x.example' });
    await charonInitiates();
    await lastError('PEER_ID_MISMATCH', new RegExp(`peer ID fqdn:x\\.example does not match configured ${ADDR.siteGwOutside.replace(/\./g, '\\.')}`));
    expect(await cli(['diagnose', CONN])).toContain("suggested fix: set the customer gateway's id to fqdn:x.example");
    expect(gw.output()).not.toContain('another-test-fixture-psk-0000');
  }, 120_000);

  it('as initiator: NO_PROPOSAL_CHOSEN, AUTHENTICATION_FAILED and TS_UNACCEPTABLE from the peer; a good config clears the error', async () => {
    await charonWith({ ikeProposals: 'aes256-sha256-modp2048' });
    await vpcgwInitiates();
    await lastError('IKE_PROPOSAL_MISMATCH', /NO_PROPOSAL_CHOSEN from the peer\); we offered aes128gcm16-prfsha256-x25519/);

    await charonWith({ psk: 'another-test-fixture-psk-0000' });
    await vpcgwInitiates();
    await lastError('AUTH_REJECTED_BY_PEER', /^PSK mismatch \(AUTHENTICATION_FAILED from the peer\)$/);

    await charonWith({ remoteTs: '10.9.0.0/16' });
    await vpcgwInitiates();
    await lastError('TS_UNACCEPTABLE', /peer refused our 10\.2\.0\.0\/16 === 10\.1\.0\.0\/16 \(TS_UNACCEPTABLE from the peer\)/);
    await reset();

    await charonWith({});
    await vpcgwInitiates();
    await gw.waitInstalled(20_000);
    const d = JSON.parse(await cli(['diagnose', CONN, '--json'])) as { state: string; lastError?: unknown; suggestedFix: string };
    expect(d).toMatchObject({ state: 'ESTABLISHED', suggestedFix: 'none: the tunnel is up' });
    expect(d.lastError).toBeUndefined();
  }, 120_000);

  it('no IKE daemon at the peer: "no answer from ADDR:500 after 2 retransmits", with a fix that names the path', async () => {
    await reset();
    await sw.stop();
    await vpcgwInitiates();
    const e = await lastError('NO_ANSWER', new RegExp(`^no answer from ${ADDR.siteGwOutside.replace(/\./g, '\\.')}:500 after 2 retransmits \\(IKE_SA_INIT\\)$`));
    expect(e.hint).toMatch(/UDP 500 and 4500/);
    expect(await cli(['diagnose', CONN])).toMatch(/no answer from/);
  }, 60_000);
});
