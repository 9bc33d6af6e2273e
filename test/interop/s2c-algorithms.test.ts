// Algorithms beyond the default against the REAL strongSwan 5.9.8 (charon's openssl plugin provides
// ChaCha20-Poly1305 and Curve448), through `vpcgw start` on the data plane the suite runs with
// (VPCGW_DATAPLANE, see scripts/test.mjs):
// 1. IKE chacha20poly1305-prfsha256-x448 (RFC 7634, RFC 8031) and ESP chacha20poly1305 (RFC 7634),
//    then a CHILD_SA rekey with x448 PFS (CREATE_CHILD_SA with KE): pings pass before and after,
//    `swanctl --list-sas` shows the algorithms.
// 2. ESP AES-GCM with the short ICVs of RFC 4106 (aes256gcm8: 8 bytes, aes128gcm12: 12 bytes): vpcgw
//    supports them on both data planes; the same charon reloads its config and re-initiates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { ADDR, createTopology, ping, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon, swanctlConf, type IkeSaInfo, type StrongSwanConnConfig } from '../helpers/strongswan.js';
import { waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';

const VPCGW_IKE = 'chacha20poly1305-prfsha256-x448,aes128gcm16-prfsha256-x25519';
const VPCGW_ESP = 'chacha20poly1305-x448,aes256gcm8,aes128gcm12,aes128gcm16';

let topo: Topology;
let gw: Vpcgw;
let sw: Charon;
let swCfg: StrongSwanConnConfig;

beforeAll(async () => {
  topo = await createTopology({ tag: 'alg' });
  const cfg = s2cConfig({
    gatewayName: 'gw-alg', dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
    psk: TEST_PSK, ikeProposals: VPCGW_IKE, espProposals: VPCGW_ESP, startAction: 'none',
  });
  gw = await Vpcgw.start(topo, 'cloudGw', cfg, 30_000);
  swCfg = {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
    psk: TEST_PSK, ikeProposals: 'chacha20poly1305-prfsha256-x448', espProposals: 'chacha20poly1305-x448',
    localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
  };
  sw = await Charon.start(topo, 'siteGw', swCfg);
}, 60_000);

afterAll(async () => {
  await sw?.stop();
  await gw?.stop();
  await topo?.destroy();
});

/** The one ESTABLISHED IKE SA with one INSTALLED child whose SPIs vpcgw also has. */
async function onePair(): Promise<IkeSaInfo> {
  return waitFor(
    async () => {
      const sas = (await sw.listSas()).filter((s) => s.state === 'ESTABLISHED');
      if (sas.length !== 1 || sas[0]!.children.length !== 1 || sas[0]!.children[0]!.state !== 'INSTALLED') return undefined;
      const conn = (await gw.status()).connections[0]!;
      if (conn.state !== 'ESTABLISHED' || conn.children.length !== 1) return undefined;
      return conn.children[0]!.spiOut === sas[0]!.children[0]!.spiIn ? sas[0] : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 200, what: 'one pair of CHILD_SAs on both sides' },
  );
}

/** strongSwan reloads swanctl.conf with `esp` as its only ESP proposal and brings a fresh IKE SA up. */
async function reconnectWith(esp: string): Promise<IkeSaInfo> {
  await sw.terminateIke();
  await waitFor(async () => (await gw.status()).connections[0]!.state !== 'ESTABLISHED', { timeoutMs: 10_000, what: 'vpcgw to see the IKE SA deleted' });
  swCfg = { ...swCfg, espProposals: esp };
  writeFileSync(sw.swanctlPath, swanctlConf(swCfg), { mode: 0o600 });
  await sw.loadAll();
  await sw.initiate();
  const sa = await onePair();
  await waitForPing(topo, 'siteHost', ADDR.vpcHost);
  return sa;
}

describe('vpcgw <-> strongSwan: ChaCha20-Poly1305, x448 and short GCM ICVs', () => {
  it('IKE chacha20poly1305-prfsha256-x448, ESP chacha20poly1305, rekeyed with x448 PFS', async () => {
    await sw.initiate();
    const sa = await onePair();
    expect(sa.encrAlg).toBe('CHACHA20_POLY1305');
    expect(sa.prfAlg).toBe('PRF_HMAC_SHA2_256');
    expect(sa.dhGroup).toBe('CURVE_448');
    expect(sa.children[0]!.encrAlg).toBe('CHACHA20_POLY1305');
    expect((await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.2 })).received).toBe(3);

    // CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, KEi(x448), TSi, TSr } --> : PFS with Curve448
    const before = sa.children[0]!.spiIn;
    await sw.swanctl(['--rekey', '--child', sw.childName]);
    const after = await waitFor(async () => {
      const s = await onePair();
      return s.children[0]!.spiIn !== before ? s : undefined;
    }, { timeoutMs: 20_000, what: 'the rekeyed CHILD_SA' });
    expect(after.children[0]!.encrAlg).toBe('CHACHA20_POLY1305');
    expect(after.children[0]!.dhGroup).toBe('CURVE_448');
    expect((await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.2 })).received).toBe(3);
  }, 60_000);

  it('ESP aes256gcm8 (64-bit ICV) and aes128gcm12 (96-bit ICV)', async () => {
    const gcm8 = await reconnectWith('aes256gcm8');
    expect(gcm8.children[0]!.encrAlg).toBe('AES_GCM_8');
    expect(gcm8.children[0]!.encrKeySize).toBe(256);
    expect((await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.2 })).received).toBe(3);

    const gcm12 = await reconnectWith('aes128gcm12');
    expect(gcm12.children[0]!.encrAlg).toBe('AES_GCM_12');
    expect(gcm12.children[0]!.encrKeySize).toBe(128);
    expect((await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.2 })).received).toBe(3);
  }, 60_000);
});
