// Certificate chains and the identity types s2c-cert.test.ts leaves out, against the REAL strongSwan
// 5.9.8, with certificates made by `vpcgw pki` exactly as README.md ("Certificates") shows:
// 1. RSA root -> RSA intermediate -> RSA end entities, email identities (rfc822Name SANs,
//    ID_RFC822_ADDR) on both sides, strongSwan initiates: each side sends its end-entity and
//    intermediate CERT payloads and asks for the other's with CERTREQ; IKE_AUTH is larger than
//    1200 bytes both ways and goes as RFC 7383 fragments in both directions (strongSwan's log says
//    it split ours and reassembled its own), and pings pass.
// 2. ECDSA chain, vpcgw initiates with an email identity, strongSwan's is a DN.
// 3. A certificate that is not valid yet is refused with one log line, and `vpcgw diagnose` says why.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, X509Certificate, createPrivateKey } from 'node:crypto';
import { ADDR, createTopology, ping, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { run, waitFor } from '../helpers/proc.js';
import { REPO_ROOT, s2cConfig, Vpcgw, VPCGW_CLI } from '../helpers/vpcgw.js';
import { createCertificate, keyToPem } from '../../src/gateway/pki-ike.js';

const DAY_MS = 86_400_000;
let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];
let dir = '';

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

/** `vpcgw pki ARGS...`; the values of --out and --ca are directories under the test's directory. */
async function pki(...args: string[]): Promise<void> {
  const abs = args.map((a, i) => (args[i - 1] === '--out' || args[i - 1] === '--ca' ? join(dir, a) : a));
  await run(process.execPath, [VPCGW_CLI, 'pki', ...abs], { timeoutMs: 30_000 });
}

interface Side { certFile: string; keyFile: string }
interface Lab {
  initiator: 'site' | 'cloud';
  gw: Side; site: Side;
  /** the root CA each side trusts */
  rootCa: string;
  /** strongSwan's intermediate CA (swanctl loads it from x509ca/ and sends it as an issuer cert) */
  siteIntermediate?: string;
  gwId: string; siteId: string; swGwId: string; swSiteId: string;
}

async function lab(o: Lab) {
  topo = await createTopology({ tag: 'chn' });
  const cfg = s2cConfig({
    gatewayName: 'gw-chain', dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: o.gwId, peerId: o.siteId, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet], psk: 'unused-unused',
    ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', startAction: o.initiator === 'cloud' ? 'start' : 'none',
  });
  const conn = cfg.vpnConnections[0] as unknown as Record<string, unknown>;
  conn.auth = { cert: o.gw.certFile, key: o.gw.keyFile };
  Object.assign(cfg.customerGateways[0]!, { ca: o.rootCa });
  const gw = await Vpcgw.start(topo, 'cloudGw', cfg, 30_000);
  running.push(gw);
  if (o.siteIntermediate) {
    // swanctl --load-all reads <SWANCTL_DIR>/x509ca; Charon.start uses <workDir>/swan-<ns> as SWANCTL_DIR
    const x509ca = join(topo.workDir, 'swan-siteGw', 'x509ca');
    mkdirSync(x509ca, { recursive: true });
    writeFileSync(join(x509ca, 'intermediate.pem'), readFileSync(o.siteIntermediate));
  }
  const sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: o.swSiteId, remoteId: o.swGwId, psk: 'unused',
    pubkey: { certFile: o.site.certFile, keyFile: o.site.keyFile, caFile: o.rootCa },
    ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
  });
  running.push(sw);
  return { gw, sw, conn: cfg.vpnConnections[0]!.name };
}

async function upAndPing(gw: Vpcgw, sw: Charon, initiator: 'site' | 'cloud') {
  if (initiator === 'site') await sw.initiate();
  const gs = await gw.waitInstalled(30_000);
  const ss = await sw.waitInstalled(10_000);
  expect(gs.connections[0]!.children[0]!.spiOut).toBe(ss[0]!.children[0]!.spiIn);
  expect((await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.2 })).received).toBeGreaterThan(0);
}

/** The daemon logs JSON lines: undo the escaping of quotes in them. */
function unjson(out: string): string {
  return out.replace(/\\"/g, '"');
}

describe('vpcgw <-> strongSwan: certificate chains, email and DN identities, validity', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vpcgw-chain-'));
    // RSA: root, intermediate, and one end entity per side (what the README's commands make)
    await pki('ca', '--out', 'rsa-root', '--dn', 'O=vpcgw interop, CN=RSA Root CA', '--type', 'rsa');
    await pki('ca', '--out', 'rsa-mid', '--ca', 'rsa-root', '--dn', 'O=vpcgw interop, CN=RSA Intermediate CA', '--type', 'rsa');
    await pki('issue', '--ca', 'rsa-mid', '--cn', 'gw-rsa', '--san', 'email:vpn@cloud.example', '--type', 'rsa', '--out', 'gw-rsa');
    await pki('issue', '--ca', 'rsa-mid', '--cn', 'dc1', '--san', 'email:vpn@dc1.example', '--type', 'rsa', '--out', 'dc1');
    // ECDSA
    await pki('ca', '--out', 'ec-root', '--dn', 'O=vpcgw interop, CN=EC Root CA');
    await pki('ca', '--out', 'ec-mid', '--ca', 'ec-root', '--dn', 'O=vpcgw interop, CN=EC Intermediate CA');
    await pki('issue', '--ca', 'ec-mid', '--cn', 'gw-ec', '--san', 'email:vpn@cloud.example', '--out', 'gw-ec');
    await pki('issue', '--ca', 'ec-mid', '--dn', 'O=vpcgw interop, CN=site-ec', '--out', 'site-ec');
  }, 120_000);

  const side = (name: string): Side => ({ certFile: join(dir, name, `${name}.pem`), keyFile: join(dir, name, `${name}.key`) });

  it('RSA with an intermediate CA, email identities, strongSwan initiates with README.md\'s swanctl.conf; IKE_AUTH fragmented both ways', async () => {
    const { gw, sw } = await lab({
      initiator: 'site', gw: side('gw-rsa'), site: side('dc1'), rootCa: join(dir, 'rsa-root', 'ca.pem'), siteIntermediate: join(dir, 'rsa-mid', 'ca.pem'),
      gwId: 'email:vpn@cloud.example', siteId: 'email:vpn@dc1.example', swGwId: 'vpn@cloud.example', swSiteId: 'vpn@dc1.example',
    });
    // the customer side as README.md's "Certificate authentication" lays it out: its swanctl.conf, with
    // dc1.pem in x509/, the key in private/, the root and the intermediate in x509ca/
    const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const section = md.slice(md.indexOf('### Certificate authentication'), md.indexOf('### IKE fragmentation'));
    const swanctl = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].find((b) => b[2]!.includes('connections {'))?.[2];
    if (!swanctl) throw new Error('README.md lost the swanctl.conf of "Certificate authentication"');
    for (const sub of ['x509', 'x509ca', 'private']) mkdirSync(join(sw.dir, sub), { recursive: true, mode: 0o700 });
    writeFileSync(join(sw.dir, 'x509', 'dc1.pem'), readFileSync(side('dc1').certFile));
    writeFileSync(join(sw.dir, 'private', 'dc1.key'), readFileSync(side('dc1').keyFile), { mode: 0o600 });
    writeFileSync(join(sw.dir, 'x509ca', 'root.pem'), readFileSync(join(dir, 'rsa-root', 'ca.pem')));
    writeFileSync(join(sw.dir, 'x509ca', 'mid.pem'), readFileSync(join(dir, 'rsa-mid', 'ca.pem')));
    writeFileSync(sw.swanctlPath, swanctl, { mode: 0o600 });
    await sw.loadAll();
    await sw.initiate('dc1-main');
    await upAndPing(gw, sw, 'cloud');
    const log = sw.log();
    // CERTREQ both ways (RFC 7296 §3.7): strongSwan asks for our root and sees our request for its root
    expect(log).toMatch(/sending cert request for "O=vpcgw interop, CN=RSA Root CA"/);
    expect(log).toMatch(/received cert request for "O=vpcgw interop, CN=RSA Root CA"/);
    // our end-entity and intermediate CERT payloads; strongSwan sends its own pair
    expect(log).toMatch(/received end entity cert "CN=gw-rsa"/);
    expect(log).toMatch(/received issuer cert "O=vpcgw interop, CN=RSA Intermediate CA"/);
    expect(log).toMatch(/sending issuer cert "O=vpcgw interop, CN=RSA Intermediate CA"/);
    expect(log).toMatch(/authentication of 'vpn@cloud\.example' with RSA_EMSA_PKCS1_SHA2_256 successful/);
    // RFC 7383 on the wire both ways: strongSwan split its IKE_AUTH request, and reassembled our response
    expect(log).toMatch(/splitting IKE message \(\d+ bytes\) into \d+ fragments/);
    expect(log).toMatch(/received fragment #1 of \d+, waiting for complete IKE message/);
    expect(log).toMatch(/reassembled fragmented IKE message \(\d+ bytes\)/);
  }, 120_000);

  it('ECDSA with an intermediate CA, vpcgw initiates with an email identity, strongSwan\'s is a DN', async () => {
    const { gw, sw } = await lab({
      initiator: 'cloud', gw: side('gw-ec'), site: side('site-ec'), rootCa: join(dir, 'ec-root', 'ca.pem'), siteIntermediate: join(dir, 'ec-mid', 'ca.pem'),
      gwId: 'email:vpn@cloud.example', siteId: 'O=vpcgw interop, CN=site-ec', swGwId: 'vpn@cloud.example', swSiteId: '"O=vpcgw interop, CN=site-ec"',
    });
    await upAndPing(gw, sw, 'cloud');
    const log = sw.log();
    expect(log).toMatch(/received issuer cert "O=vpcgw interop, CN=EC Intermediate CA"/);
    expect(log).toMatch(/authentication of 'vpn@cloud\.example' with ECDSA_WITH_SHA256_DER successful/);
    expect(log).toMatch(/authentication of 'O=vpcgw interop, CN=site-ec' \(myself\) with ECDSA_WITH_SHA256_DER successful/);
  }, 120_000);

  it('a certificate that is not valid yet is refused with one log line; vpcgw diagnose names it', async () => {
    // issued by the ECDSA intermediate, valid from tomorrow on
    const mid = { cert: new X509Certificate(readFileSync(join(dir, 'ec-mid', 'ca.pem'))), key: createPrivateKey(readFileSync(join(dir, 'ec-mid', 'ca.key'))) };
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const now = Date.now();
    const future = createCertificate({
      subject: 'O=vpcgw interop, CN=site-future', key, issuer: mid, notBefore: new Date(now + DAY_MS), notAfter: new Date(now + 30 * DAY_MS),
    });
    mkdirSync(join(dir, 'site-future'), { recursive: true });
    const site = side('site-future');
    writeFileSync(site.certFile, future.toString());
    writeFileSync(site.keyFile, keyToPem(key), { mode: 0o600 });
    const { gw, sw, conn } = await lab({
      initiator: 'site', gw: side('gw-ec'), site, rootCa: join(dir, 'ec-root', 'ca.pem'), siteIntermediate: join(dir, 'ec-mid', 'ca.pem'),
      gwId: 'email:vpn@cloud.example', siteId: 'O=vpcgw interop, CN=site-future', swGwId: 'vpn@cloud.example', swSiteId: '"O=vpcgw interop, CN=site-future"',
    });
    await sw.swanctl(['--initiate', '--child', sw.childName, '--timeout', '15'], { timeoutMs: 20_000, allowFail: true });
    expect(sw.log()).toMatch(/received AUTHENTICATION_FAILED notify error/);
    const reason = /certificate "O=vpcgw interop, CN=site-future" is not valid yet \(not before \d{4}-\d\d-\d\dT/;
    await waitFor(async () => reason.test(unjson(gw.output())), { timeoutMs: 10_000, what: 'vpcgw to log why it refused the certificate' });
    expect(unjson(gw.output()).split('\n').filter((l) => reason.test(l) && /"level":(40|"warn")|WARN/i.test(l))).toHaveLength(1);
    const diag = await run(process.execPath, [VPCGW_CLI, 'diagnose', conn, '--control', gw.controlPath], { timeoutMs: 15_000, allowFail: true });
    expect(diag.stdout).toMatch(reason);
    expect(diag.stdout).toMatch(/check the clocks of both gateways/);
  }, 120_000);
});
