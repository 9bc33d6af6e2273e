// One site-to-cloud scenario, parameterised by which implementation runs on each gateway, who
// initiates, and the proposal set. Shared by test/interop/s2c-*.test.ts so every pairing runs the
// same checks: SA up on both sides, mirrored child SPIs, ping both ways, a short iperf3 TCP run,
// and a clean SIGTERM exit of every vpcgw.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDR, createTopology, IFACE, iperf3Tcp, parseEspLines, ping, startCapture, waitForPing, type NodeName, type Topology } from './netns.js';
import { Charon } from './strongswan.js';
import { run } from './proc.js';
import { s2cConfig, Vpcgw, VPCGW_CLI } from './vpcgw.js';

export type Impl = 'strongswan' | 'vpcgw';

export interface ProposalSet {
  ike: string;
  esp: string;
  /** What strongSwan must report as negotiated (`swanctl --list-sas --raw` names). */
  expect: {
    ikeEncr: string;
    ikeKeySize: number;
    ikePrf: string;
    dhGroup: string;
    espEncr: string;
    espKeySize: number;
    espInteg: string | undefined;
  };
  /** What every vpcgw must log as the child SA's transforms, strongSwan style (e.g. "AES_GCM_16_128/EXT_SEQ"). */
  vpcgwChild?: string;
}

/** The proposal sets every pairing is run with. */
export const PROPOSAL_SETS: readonly ProposalSet[] = [
  {
    ike: 'aes128gcm16-prfsha256-x25519',
    esp: 'aes128gcm16',
    expect: { ikeEncr: 'AES_GCM_16', ikeKeySize: 128, ikePrf: 'PRF_HMAC_SHA2_256', dhGroup: 'CURVE_25519', espEncr: 'AES_GCM_16', espKeySize: 128, espInteg: undefined },
  },
  {
    ike: 'aes256-sha256-modp2048',
    esp: 'aes256-sha256',
    expect: { ikeEncr: 'AES_CBC', ikeKeySize: 256, ikePrf: 'PRF_HMAC_SHA2_256', dhGroup: 'MODP_2048', espEncr: 'AES_CBC', espKeySize: 256, espInteg: 'HMAC_SHA2_256_128' },
  },
  {
    ike: 'aes256gcm16-prfsha384-ecp384',
    esp: 'aes256gcm16',
    expect: { ikeEncr: 'AES_GCM_16', ikeKeySize: 256, ikePrf: 'PRF_HMAC_SHA2_384', dhGroup: 'ECP_384', espEncr: 'AES_GCM_16', espKeySize: 256, espInteg: undefined },
  },
  {
    ike: 'aes128-sha1-modp3072',
    esp: 'aes128-sha1',
    expect: { ikeEncr: 'AES_CBC', ikeKeySize: 128, ikePrf: 'PRF_HMAC_SHA1', dhGroup: 'MODP_3072', espEncr: 'AES_CBC', espKeySize: 128, espInteg: 'HMAC_SHA1_96' },
  },
];

// TEST FIXTURE ONLY: not a real secret.
export const TEST_PSK = 'test-fixture-psk-s2c-not-a-secret-42';

export interface ScenarioSpec {
  site: Impl;
  cloud: Impl;
  /** Which gateway starts the IKE SA. */
  initiator: 'site' | 'cloud';
  proposals: ProposalSet;
  iperfSeconds?: number;
}

interface ChildView {
  state: string;
  spiIn: string;
  spiOut: string;
  bytesIn: number;
}

/** A running gateway of either implementation, seen through what the checks need. */
interface LabGateway {
  readonly impl: Impl;
  /** vpcgw only: its output so far (pino lines). */
  output?(): string;
  /** strongSwan only: asserts the negotiated IKE and ESP algorithms. */
  checkAlgorithms?(p: ProposalSet): Promise<void>;
  waitInstalled(timeoutMs: number): Promise<void>;
  child(): Promise<ChildView>;
  diagnostics(): string;
  /** The gateway's own view (swanctl --list-sas / vpcgw status --json), or why it is unavailable. */
  snapshot(): Promise<string>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }>;
}

interface Side {
  node: NodeName;
  localAddr: string;
  remoteAddr: string;
  localTs: string;
  remoteTs: string;
  name: string;
}

const SITE: Side = {
  node: 'siteGw',
  localAddr: ADDR.siteGwOutside,
  remoteAddr: ADDR.cloudGwOutside,
  localTs: ADDR.siteSubnet,
  remoteTs: ADDR.vpcSubnet,
  name: 'site',
};
const CLOUD: Side = {
  node: 'cloudGw',
  localAddr: ADDR.cloudGwOutside,
  remoteAddr: ADDR.siteGwOutside,
  localTs: ADDR.vpcSubnet,
  remoteTs: ADDR.siteSubnet,
  name: 'cloud',
};

function tail(s: string, n = 4000): string {
  return s.length > n ? s.slice(-n) : s;
}

async function startGateway(topo: Topology, impl: Impl, side: Side, p: ProposalSet, initiates: boolean): Promise<LabGateway> {
  if (impl === 'strongswan') {
    const c = await Charon.start(topo, side.node, {
      localAddr: side.localAddr,
      remoteAddr: side.remoteAddr,
      localId: side.localAddr,
      remoteId: side.remoteAddr,
      psk: TEST_PSK,
      ikeProposals: p.ike,
      espProposals: p.esp,
      localTs: side.localTs,
      remoteTs: side.remoteTs,
      startAction: 'none',
    });
    // A failed initiate is reported by waitInstalled() with the logs, not here.
    if (initiates) await c.swanctl(['--initiate', '--child', c.childName, '--timeout', '15'], { timeoutMs: 20_000, allowFail: true });
    return {
      impl,
      async waitInstalled(timeoutMs) {
        await c.waitInstalled(timeoutMs);
      },
      async child() {
        const sas = await c.listSas();
        expect(sas, 'strongSwan IKE SAs').toHaveLength(1);
        expect(sas[0]!.children, 'strongSwan child SAs').toHaveLength(1);
        return sas[0]!.children[0]!;
      },
      async checkAlgorithms(want) {
        const sa = (await c.listSas())[0]!;
        const e = want.expect;
        expect({ encr: sa.encrAlg, keySize: sa.encrKeySize, prf: sa.prfAlg, dh: sa.dhGroup }).toEqual({
          encr: e.ikeEncr,
          keySize: e.ikeKeySize,
          prf: e.ikePrf,
          dh: e.dhGroup,
        });
        const ch = sa.children[0]!;
        expect({ encr: ch.encrAlg, keySize: ch.encrKeySize, integ: ch.integAlg }).toEqual({
          encr: e.espEncr,
          keySize: e.espKeySize,
          integ: e.espInteg,
        });
      },
      diagnostics: () => `--- charon@${side.node} log ---\n${tail(c.logForDiagnostics())}`,
      snapshot: async () => {
        const r = await c.swanctl(['--list-sas', '--noblock'], { allowFail: true });
        return `--- swanctl --list-sas @${side.node} ---\n${r.stdout}${r.stderr}`;
      },
      stop: () => c.stop(),
    };
  }
  const gw = await Vpcgw.start(
    topo,
    side.node,
    s2cConfig({
      gatewayName: `gw-${side.name}`,
      dataDir: `${topo.workDir}/vpcgw-${side.name}-var`,
      publicAddress: side.localAddr,
      peerAddress: side.remoteAddr,
      localId: side.localAddr,
      peerId: side.remoteAddr,
      localSubnets: [side.localTs],
      remoteSubnets: [side.remoteTs],
      psk: TEST_PSK,
      ikeProposals: p.ike,
      espProposals: p.esp,
      startAction: initiates ? 'start' : 'none',
    }),
  );
  return {
    impl,
    output: () => gw.output(),
    async waitInstalled(timeoutMs) {
      await gw.waitInstalled(timeoutMs);
    },
    async child() {
      const s = await gw.status();
      expect(s.connections, 'vpcgw connections').toHaveLength(1);
      const installed = s.connections[0]!.children.filter((ch) => ch.state === 'INSTALLED');
      expect(installed, 'vpcgw INSTALLED children').toHaveLength(1);
      return installed[0]!;
    },
    diagnostics: () => `--- vpcgw@${side.node} output ---\n${tail(gw.output())}`,
    snapshot: async () => {
      const r = await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', gw.controlPath], {
        timeoutMs: 5000,
        allowFail: true,
      });
      return `--- vpcgw status --json @${side.node} ---\n${r.stdout}${r.stderr}`;
    },
    stop: () => gw.stop(),
  };
}

/** Registers a describe block running one scenario. */
export function defineS2cScenario(spec: ScenarioSpec): void {
  const title =
    `${spec.site}(site) <-> ${spec.cloud}(cloud), ${spec.initiator} initiates, ` + `ike ${spec.proposals.ike} / esp ${spec.proposals.esp}`;
  describe(title, () => {
    let topo: Topology;
    let site: LabGateway | undefined;
    let cloud: LabGateway | undefined;
    const diag = (): string => [site?.diagnostics() ?? '', cloud?.diagnostics() ?? ''].join('\n');

    // A setup failure (e.g. the gateway not built yet, or a daemon that exits at once) is
    // re-thrown by every test, so each one is reported failed rather than silently skipped.
    let setupError: unknown;
    const ready = (): void => {
      if (setupError !== undefined) throw setupError;
    };

    beforeAll(async () => {
      try {
        topo = await createTopology({ tag: `${spec.site[0]}${spec.cloud[0]}` });
        // The responder must be listening before the initiator sends IKE_SA_INIT.
        if (spec.initiator === 'site') {
          cloud = await startGateway(topo, spec.cloud, CLOUD, spec.proposals, false);
          site = await startGateway(topo, spec.site, SITE, spec.proposals, true);
        } else {
          site = await startGateway(topo, spec.site, SITE, spec.proposals, false);
          cloud = await startGateway(topo, spec.cloud, CLOUD, spec.proposals, true);
        }
      } catch (err) {
        setupError = new Error(`scenario setup failed: ${(err as Error).message}\n${diag()}`);
      }
    }, 60_000);

    afterAll(async () => {
      await Promise.all([site?.stop(), cloud?.stop()]);
      await topo?.destroy();
    }, 60_000);

    it('establishes the IKE SA with an INSTALLED child on both gateways', async () => {
      ready();
      try {
        await Promise.all([site!.waitInstalled(20_000), cloud!.waitInstalled(20_000)]);
      } catch (err) {
        const snaps = await Promise.all([site!.snapshot(), cloud!.snapshot()]);
        throw new Error(`${(err as Error).message}\n${snaps.join('\n')}\n${diag()}`);
      }
    }, 30_000);

    it('both gateways agree on the child SPIs (one side\'s spiIn is the other\'s spiOut)', async () => {
      ready();
      const s = await site!.child();
      const c = await cloud!.child();
      expect(s.spiIn).toMatch(/^[0-9a-f]{8}$/);
      expect(s.spiOut).toMatch(/^[0-9a-f]{8}$/);
      expect(c.spiIn).toBe(s.spiOut);
      expect(c.spiOut).toBe(s.spiIn);
    });

    if (spec.site === 'strongswan' || spec.cloud === 'strongswan') {
      it('strongSwan reports the configured IKE and ESP algorithms as negotiated', async () => {
        ready();
        for (const gw of [site, cloud]) await gw?.checkAlgorithms?.(spec.proposals);
      });
    }

    if (spec.proposals.vpcgwChild !== undefined) {
      it(`every vpcgw logs the child SA as ${spec.proposals.vpcgwChild}`, () => {
        ready();
        for (const gw of [site, cloud]) {
          if (gw?.output) expect(gw.output(), gw.diagnostics()).toContain(`established with ${spec.proposals.vpcgwChild}`);
        }
      });
    }

    it('site-host pings vpc-host and vpc-host pings site-host through the tunnel', async () => {
      ready();
      await waitForPing(topo, 'siteHost', ADDR.vpcHost, 10_000);
      const there = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 5, intervalSec: 0.1 });
      const back = await ping(topo, 'vpcHost', ADDR.siteHost, { count: 5, intervalSec: 0.1 });
      expect(there.received, there.output).toBe(5);
      expect(back.received, back.output).toBe(5);
      // Large packets too: they must survive the TUN MTU (fragmentation or PMTU on the inner path).
      const big = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 2, intervalSec: 0.2, size: 1300 });
      expect(big.received, big.output).toBe(2);
    }, 30_000);

    it('the outside link carries that traffic only as UDP-encapsulated ESP (4500) under the agreed SPIs', async () => {
      ready();
      const s = await site!.child();
      const cap = await startCapture(topo, 'cloudGw', IFACE.cloudGwOutside, ['udp', 'or', 'icmp']);
      const r = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.1 });
      const lines = await cap.stop();
      expect(r.received, r.output).toBe(3);
      const esp = parseEspLines(lines);
      const toCloud = esp.filter((p) => p.src === ADDR.siteGwOutside && p.dst === ADDR.cloudGwOutside);
      const toSite = esp.filter((p) => p.src === ADDR.cloudGwOutside && p.dst === ADDR.siteGwOutside);
      expect(toCloud.length, lines.join('\n')).toBeGreaterThanOrEqual(3);
      expect(toSite.length, lines.join('\n')).toBeGreaterThanOrEqual(3);
      expect([...new Set(toCloud.map((p) => p.spi))]).toEqual([s.spiOut]);
      expect([...new Set(toSite.map((p) => p.spi))]).toEqual([s.spiIn]);
      expect(esp.every((p) => p.srcPort === 4500 && p.dstPort === 4500)).toBe(true);
      // Sequence numbers grow per SA (RFC 4303 §3.3.3).
      for (const dir of [toCloud, toSite]) for (let i = 1; i < dir.length; i++) expect(dir[i]!.seq).toBeGreaterThan(dir[i - 1]!.seq);
      expect(lines.some((l) => l.includes(`${ADDR.siteHost} > ${ADDR.vpcHost}`)), 'plaintext inner packet on the outside link').toBe(false);
    }, 20_000);

    it('carries an iperf3 TCP run site-host -> vpc-host, counted by the receiving gateway', async () => {
      ready();
      const seconds = spec.iperfSeconds ?? 3;
      const before = (await cloud!.child()).bytesIn;
      const r = await iperf3Tcp(topo, { serverNs: 'vpcHost', serverAddr: ADDR.vpcHost, clientNs: 'siteHost', seconds });
      console.log(`[s2c] ${title}: ${r.mbps.toFixed(1)} Mbit/s (retransmits ${r.retransmits})`);
      expect(r.mbps).toBeGreaterThan(0);
      const after = (await cloud!.child()).bytesIn;
      expect(after - before).toBeGreaterThan(r.bytes / 2);
    }, 40_000);

    if (spec.site === 'vpcgw' || spec.cloud === 'vpcgw') {
      it('every vpcgw exits with code 0 on SIGTERM', async () => {
        ready();
        for (const gw of [site, cloud]) {
          if (gw?.impl !== 'vpcgw') continue;
          const r = await gw.stop();
          expect(r.killed, `vpcgw ignored SIGTERM\n${gw.diagnostics()}`).toBe(false);
          expect(r.code, gw.diagnostics()).toBe(0);
        }
      }, 20_000);
    }
  });
}
