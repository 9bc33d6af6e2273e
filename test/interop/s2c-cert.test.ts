// IKEv2 certificate authentication between vpcgw (cloud) and the REAL strongSwan 5.9.8 (site):
// RSA and ECDSA certificates, RFC 7427 and the classic AUTH methods, identities as DN, FQDN and IP,
// vpcgw as responder and as initiator; a revoked and an expired certificate are refused with a
// reason in vpcgw's log. IKE_AUTH with RSA certificates is fragmented both ways (RFC 7383).
// Certificates are made at test time with src/gateway/pki-ike.ts (what `vpcgw pki` runs); no
// private key is committed.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { stringify } from 'yaml';
import { join } from 'node:path';
import { ADDR, createTopology, ping, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { run, waitFor } from '../helpers/proc.js';
import { s2cConfig, Vpcgw, VPCGW_CLI, type VpcgwConfig } from '../helpers/vpcgw.js';
import { createCertificate, createCrl, crlToPem, keyToPem } from '../../src/gateway/pki-ike.js';

const DAY_MS = 86_400_000;
let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];
let dir = '';

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

interface Ca { cert: X509Certificate; key: KeyObject; file: string }
function newKey(t: 'rsa' | 'ecdsa'): KeyObject {
  return t === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}
function makeCa(name: string, t: 'rsa' | 'ecdsa'): Ca {
  const key = newKey(t);
  const cert = createCertificate({ subject: `O=vpcgw interop, CN=${name}`, key, ca: true });
  const file = join(dir, `${name}.pem`);
  writeFileSync(file, cert.toString());
  return { cert, key, file };
}
/** Writes NAME.pem / NAME.key; returns their paths and the certificate. */
function issue(ca: Ca, name: string, t: 'rsa' | 'ecdsa', sans: string[], validity: { from?: number; to?: number } = {}) {
  const key = newKey(t);
  const now = Date.now();
  const cert = createCertificate({
    subject: `O=vpcgw interop, CN=${name}`, sans, key, issuer: ca,
    notBefore: new Date(validity.from ?? now - DAY_MS), notAfter: new Date(validity.to ?? now + 30 * DAY_MS),
  });
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  writeFileSync(certFile, cert.toString());
  writeFileSync(keyFile, keyToPem(key), { mode: 0o600 });
  return { cert, certFile, keyFile };
}

interface Lab {
  initiator: 'site' | 'cloud';
  gwCert: { certFile: string; keyFile: string };
  siteCert: { certFile: string; keyFile: string };
  /** what vpcgw trusts (and its CRL) and what strongSwan trusts */
  gwCa: string; crl?: string; siteCa: string;
  gwId: string | null; siteId: string;
  /** ids as strongSwan writes them */
  swGwId: string; swSiteId: string;
  signatureAuth?: boolean;
}

async function lab(o: Lab) {
  topo = await createTopology({ tag: 'crt' });
  const cfg = s2cConfig({
    gatewayName: 'gw-cert', dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
    localId: o.gwId ?? '', peerId: o.siteId, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet], psk: 'unused-unused',
    ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', startAction: o.initiator === 'cloud' ? 'start' : 'none',
  });
  const conn = cfg.vpnConnections[0] as unknown as Record<string, unknown> & { ike: Record<string, unknown> };
  conn.auth = { cert: o.gwCert.certFile, key: o.gwCert.keyFile };
  conn.ike.localId = o.gwId;
  Object.assign(cfg.customerGateways[0]!, { ca: o.gwCa, ...(o.crl ? { crl: o.crl } : {}) });
  const check = await run(process.execPath, [VPCGW_CLI, 'check-config', await writeConfig(cfg)], { allowFail: true, timeoutMs: 15_000 });
  expect(check.stdout + check.stderr).toMatch(/OK/);
  const gw = await Vpcgw.start(topo, 'cloudGw', cfg);
  running.push(gw);
  const sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: o.swSiteId, remoteId: o.swGwId, psk: 'unused',
    pubkey: { certFile: o.siteCert.certFile, keyFile: o.siteCert.keyFile, caFile: o.siteCa, signatureAuth: o.signatureAuth },
    ikeProposals: 'aes128gcm16-prfsha256-x25519', espProposals: 'aes128gcm16', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
  });
  running.push(sw);
  return { gw, sw };
}

/** The daemon logs JSON lines: undo the escaping of quotes in them. */
function unjson(out: string): string {
  return out.replace(/\\"/g, '"');
}

async function writeConfig(cfg: VpcgwConfig): Promise<string> {
  const f = join(dir, `check-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, stringify(cfg), { mode: 0o600 });
  return f;
}

async function upBothWays(gw: Vpcgw, sw: Charon, initiator: 'site' | 'cloud') {
  if (initiator === 'site') await sw.initiate();
  const gs = await gw.waitInstalled(20_000);
  const ss = await sw.waitInstalled(10_000);
  expect(gs.connections[0]!.children[0]!.spiOut).toBe(ss[0]!.children[0]!.spiIn);
  expect((await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3, intervalSec: 0.2 })).received).toBeGreaterThan(0);
}

describe('vpcgw <-> strongSwan with certificates', () => {
  let rsaCa: Ca;
  let ecCa: Ca;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vpcgw-cert-'));
    rsaCa = makeCa('rsa-ca', 'rsa');
    ecCa = makeCa('ec-ca', 'ecdsa');
  });

  it('RSA, DN identities, strongSwan initiates (RFC 7427 method 14)', async () => {
    const gwCert = issue(rsaCa, 'gw-rsa', 'rsa', []);
    const siteCert = issue(rsaCa, 'site-rsa', 'rsa', []);
    const { gw, sw } = await lab({
      initiator: 'site', gwCert, siteCert, gwCa: rsaCa.file, siteCa: rsaCa.file,
      gwId: null, siteId: 'O=vpcgw interop, CN=site-rsa', swGwId: '"O=vpcgw interop, CN=gw-rsa"', swSiteId: '"O=vpcgw interop, CN=site-rsa"',
    });
    await upBothWays(gw, sw, 'site');
    expect(sw.log()).toMatch(/authentication of 'O=vpcgw interop, CN=gw-rsa' with RSA_EMSA_PKCS1_SHA2_256 successful/);
    // RFC 7383: RSA certificates make IKE_AUTH larger than 1200 bytes; both sides fragment it
    expect(sw.log()).toMatch(/splitting IKE message \(\d+ bytes\) into \d+ fragments/);
    expect(sw.log()).toMatch(/reassembled fragmented IKE message/);
  }, 120_000);

  it('ECDSA, FQDN identities, vpcgw initiates', async () => {
    const gwCert = issue(ecCa, 'gw-ec', 'ecdsa', ['fqdn:gw.example']);
    const siteCert = issue(ecCa, 'site-ec', 'ecdsa', ['fqdn:site.example']);
    const { gw, sw } = await lab({
      initiator: 'cloud', gwCert, siteCert, gwCa: ecCa.file, siteCa: ecCa.file,
      gwId: 'fqdn:gw.example', siteId: 'fqdn:site.example', swGwId: 'gw.example', swSiteId: 'site.example',
    });
    await upBothWays(gw, sw, 'cloud');
    expect(sw.log()).toMatch(/authentication of 'gw\.example' with ECDSA_WITH_SHA256_DER successful/);
  }, 120_000);

  it('ECDSA, IP identities, classic AUTH method (strongSwan without RFC 7427), strongSwan initiates', async () => {
    const gwCert = issue(ecCa, 'gw-ip', 'ecdsa', [ADDR.cloudGwOutside]);
    const siteCert = issue(ecCa, 'site-ip', 'ecdsa', [ADDR.siteGwOutside]);
    const { gw, sw } = await lab({
      initiator: 'site', gwCert, siteCert, gwCa: ecCa.file, siteCa: ecCa.file, signatureAuth: false,
      gwId: ADDR.cloudGwOutside, siteId: ADDR.siteGwOutside, swGwId: ADDR.cloudGwOutside, swSiteId: ADDR.siteGwOutside,
    });
    await upBothWays(gw, sw, 'site');
    expect(sw.log()).toMatch(/authentication of '192\.0\.2\.2' with ECDSA-256 signature successful/);
  }, 120_000);

  it('RSA, vpcgw initiates with strongSwan on the classic method', async () => {
    const gwCert = issue(rsaCa, 'gw-rsa2', 'rsa', ['fqdn:gw.example']);
    const siteCert = issue(rsaCa, 'site-rsa2', 'rsa', [ADDR.siteGwOutside]);
    const { gw, sw } = await lab({
      initiator: 'cloud', gwCert, siteCert, gwCa: rsaCa.file, siteCa: rsaCa.file, signatureAuth: false,
      gwId: 'fqdn:gw.example', siteId: ADDR.siteGwOutside, swGwId: 'gw.example', swSiteId: ADDR.siteGwOutside,
    });
    await upBothWays(gw, sw, 'cloud');
    expect(sw.log()).toMatch(/authentication of 'gw\.example' with RSA signature successful/);
  }, 120_000);

  it('a revoked certificate from strongSwan is refused (CRL), with the reason in vpcgw\'s log', async () => {
    const gwCert = issue(ecCa, 'gw-rv', 'ecdsa', [ADDR.cloudGwOutside]);
    const siteCert = issue(ecCa, 'site-rv', 'ecdsa', [ADDR.siteGwOutside]);
    const crl = join(dir, 'ec-ca.crl.pem');
    writeFileSync(crl, crlToPem(createCrl({ ca: ecCa.cert, caKey: ecCa.key, revokedSerials: [siteCert.cert.serialNumber] })));
    const { gw, sw } = await lab({
      initiator: 'site', gwCert, siteCert, gwCa: ecCa.file, crl, siteCa: ecCa.file,
      gwId: ADDR.cloudGwOutside, siteId: ADDR.siteGwOutside, swGwId: ADDR.cloudGwOutside, swSiteId: ADDR.siteGwOutside,
    });
    await sw.swanctl(['--initiate', '--child', sw.childName, '--timeout', '15'], { timeoutMs: 20_000, allowFail: true });
    expect(sw.log()).toMatch(/received AUTHENTICATION_FAILED notify error/);
    expect(await sw.listSas()).toHaveLength(0);
    expect(unjson(gw.output())).toMatch(/certificate "O=vpcgw interop, CN=site-rv" \(serial [0-9A-F]+\) is revoked by the CRL of "O=vpcgw interop, CN=ec-ca"/);
    expect((await gw.status()).connections[0]!.state).toBe('DOWN');
  }, 120_000);

  it('an expired certificate from strongSwan is refused when vpcgw initiates', async () => {
    const now = Date.now();
    const gwCert = issue(ecCa, 'gw-ex', 'ecdsa', [ADDR.cloudGwOutside]);
    const siteCert = issue(ecCa, 'site-ex', 'ecdsa', [ADDR.siteGwOutside], { from: now - 10 * DAY_MS, to: now - DAY_MS });
    const { gw } = await lab({
      initiator: 'cloud', gwCert, siteCert, gwCa: ecCa.file, siteCa: ecCa.file,
      gwId: ADDR.cloudGwOutside, siteId: ADDR.siteGwOutside, swGwId: ADDR.cloudGwOutside, swSiteId: ADDR.siteGwOutside,
    });
    await waitFor(async () => /certificate "O=vpcgw interop, CN=site-ex" expired on/.test(unjson(gw.output())), { timeoutMs: 20_000, what: 'vpcgw refuses the expired certificate' });
    expect((await gw.status()).connections[0]!.state).not.toBe('ESTABLISHED');
  }, 120_000);
});
