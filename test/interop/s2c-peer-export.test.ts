// The exported customer-side configuration (src/gateway/peer-export.ts) against the REAL strongSwan
// 5.9.8: `swanctl --load-all` accepts every swanctl.conf variant it writes and `--list-conns` shows
// the connection as intended; and a strongSwan peer whose swanctl.conf is exactly the exported text
// (only files the text names are added around it) brings the tunnel up against `vpcgw start` by its
// own start_action, with a PSK and with certificates. Certificates are made at test time with
// src/gateway/pki-ike.ts; no private key is committed.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ADDR, createTopology, ping, type Topology } from '../helpers/netns.js';
import { Charon, type ViciSection } from '../helpers/strongswan.js';
import { run, waitFor } from '../helpers/proc.js';
import { Vpcgw, type VpcgwConfig } from '../helpers/vpcgw.js';
import { createCertificate, keyToPem } from '../../src/gateway/pki-ike.js';
import { parseConfig } from '../../src/gateway/config/index.js';
import { exportPeerConfig } from '../../src/gateway/peer-export.js';

// TEST FIXTURE ONLY: not a real secret.
// Spaces, '#', ',' and '=' check the quoting of the secrets section.
const PSK = 'test fixture # psk, peer=export 1234';

let dir = '';
interface Ca { cert: X509Certificate; key: KeyObject; file: string }
let ecCa: Ca;
let rsaCa: Ca;

function newKey(t: 'rsa' | 'ecdsa'): KeyObject {
  return t === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}
function makeCa(name: string, t: 'rsa' | 'ecdsa'): Ca {
  const key = newKey(t);
  const cert = createCertificate({ subject: `O=vpcgw export, CN=${name}`, key, ca: true });
  const file = join(dir, `${name}.pem`);
  writeFileSync(file, cert.toString());
  return { cert, key, file };
}
function issue(ca: Ca, name: string, t: 'rsa' | 'ecdsa', sans: string[]) {
  const key = newKey(t);
  const cert = createCertificate({ subject: `O=vpcgw export, CN=${name}`, sans, key, issuer: ca });
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  writeFileSync(certFile, cert.toString());
  writeFileSync(keyFile, keyToPem(key), { mode: 0o600 });
  return { certFile, keyFile, pem: cert.toString(), keyPem: keyToPem(key) };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-export-'));
  ecCa = makeCa('ec-ca', 'ecdsa');
  rsaCa = makeCa('rsa-ca', 'rsa');
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A vpcgw config object (the YAML users write), as the export reads it after loading. */
function exported(cfg: unknown, conn: string) {
  const file = join(dir, `cfg-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(cfg), { mode: 0o600 });
  return exportPeerConfig(parseConfig(stringify(cfg), file), conn, 'swanctl');
}

/** swanctl against `sw`'s charon with SWANCTL_DIR = its folder (x509/, x509ca/, private/ there). */
function swanctl(sw: Charon, args: string[], allowFail = false) {
  return run('swanctl', [...args, '--uri', sw.vici], {
    timeoutMs: 15_000, allowFail, env: { ...process.env, STRONGSWAN_CONF: join(sw.dir, 'strongswan.conf'), SWANCTL_DIR: sw.dir },
  });
}

/** Writes the files the exported text names (x509/NAME.pem, x509ca/NAME-ca.pem, private/*) into `sw`'s swanctl dir. */
function placeCertFiles(sw: Charon, section: string, own: { pem: string; keyPem: string }, gatewayCa: Ca): void {
  for (const d of ['x509', 'x509ca', 'private']) mkdirSync(join(sw.dir, d), { recursive: true, mode: 0o700 });
  writeFileSync(join(sw.dir, 'x509', `${section}.pem`), own.pem);
  writeFileSync(join(sw.dir, 'x509ca', `${section}-ca.pem`), gatewayCa.cert.toString());
  writeFileSync(join(sw.dir, 'private', `${section}.key`), own.keyPem, { mode: 0o600 });
}

/** What swanctl complained about, without the missing credential folders it scans (x509ocsp/, pkcs12/, ...). */
function loadProblems(out: string): string[] {
  return out.split('\n').filter((l) => /failed|invalid|unknown|error/i.test(l) && !/^opening directory '.*' failed: No such file/.test(l));
}

/**
 * `swanctl --list-conns --pretty`: one vici element per line ("name {", "key = value", "key = [",
 * one list item per line, "]", "}"), so DNs with spaces and "=" in them stay whole.
 */
function listConns(stdout: string): ViciSection {
  const root: ViciSection = {};
  const stack: ViciSection[] = [];
  let list: string[] | null = null;
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (list) {
      if (line === ']') list = null;
      else list.push(line);
      continue;
    }
    if (line.startsWith('list-conn event {')) {
      stack.splice(0, stack.length, root);
      continue;
    }
    const top = stack[stack.length - 1];
    if (!top) continue;
    let m: RegExpExecArray | null;
    if (line === '}') stack.pop();
    else if ((m = /^(\S+) \{$/.exec(line))) {
      const sec: ViciSection = {};
      top[m[1]!] = sec;
      stack.push(sec);
    } else if ((m = /^(\S+) = \[$/.exec(line))) {
      list = [];
      top[m[1]!] = list;
    } else if ((m = /^(\S+) = (.*)$/.exec(line))) top[m[1]!] = m[2]!;
  }
  return root;
}

// ---- a config in the shape users write ----

function baseConfig(o: {
  name?: string; peerAddress?: string; peerId?: string; localId?: string | null; remoteSubnets?: string[]; localSubnets?: string[];
  psk?: string; startAction?: 'start' | 'none'; dpd?: string; ikeProposals?: string; espProposals?: string;
  cert?: { certFile: string; keyFile: string; ca: string };
} = {}) {
  return {
    gateway: { name: 'gw-export', dataDir: join(dir, 'var'), publicAddresses: [ADDR.cloudGwOutside], vpcSubnets: [ADDR.vpcSubnet] },
    customerGateways: [{
      name: 'site', address: o.peerAddress ?? ADDR.siteGwOutside, id: o.peerId ?? ADDR.siteGwOutside, ...(o.cert ? { ca: o.cert.ca } : {}),
    }],
    vpnConnections: [{
      name: o.name ?? 'site-main', customerGateway: 'site',
      localSubnets: o.localSubnets ?? [ADDR.vpcSubnet], remoteSubnets: o.remoteSubnets ?? [ADDR.siteSubnet],
      auth: o.cert ? { cert: o.cert.certFile, key: o.cert.keyFile } : { psk: o.psk ?? PSK },
      ike: { proposals: o.ikeProposals ?? 'aes128gcm16-prfsha256-x25519', lifetime: '4h', localId: o.localId === undefined ? ADDR.cloudGwOutside : o.localId },
      esp: { proposals: o.espProposals ?? 'aes128gcm16', lifetime: '1h' },
      startAction: o.startAction ?? 'none',
      ...(o.dpd ? { dpd: { interval: o.dpd } } : {}),
    }],
  };
}

describe('swanctl --load-all accepts every exported swanctl.conf', () => {
  let topo: Topology | null = null;
  let sw: Charon | null = null;
  beforeAll(async () => {
    topo = await createTopology({ tag: 'pexl' });
    // charon with the harness config first; each case then replaces swanctl.conf and reloads
    const site = issue(ecCa, 'load-site', 'ecdsa', ['fqdn:site.example']);
    sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: PSK, ikeProposals: 'default', espProposals: 'default', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
      pubkey: { certFile: site.certFile, keyFile: site.keyFile, caFile: ecCa.file },
    });
  }, 60_000);
  afterAll(async () => {
    await sw?.stop();
    await topo?.destroy();
  });

  async function load(text: string): Promise<ViciSection> {
    writeFileSync(sw!.swanctlPath, text, { mode: 0o600 });
    const r = await swanctl(sw!, ['--load-all', '--noprompt', '--file', sw!.swanctlPath], true);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(loadProblems(r.stdout + r.stderr)).toEqual([]);
    return listConns((await swanctl(sw!, ['--list-conns', '--pretty'])).stdout);
  }

  function child(conns: ViciSection, conn: string, name: string): ViciSection {
    const c = conns[conn] as ViciSection;
    expect(c, JSON.stringify(conns)).toBeDefined();
    return (c.children as ViciSection)[name] as ViciSection;
  }

  it('PSK, the peer starts (vpcgw waits), DPD', async () => {
    const conns = await load(exported(baseConfig({ dpd: '30s' }), 'site-main').text);
    const c = conns['site-main'] as ViciSection;
    expect(c.version).toBe('IKEv2');
    expect(c.local_addrs).toEqual([ADDR.siteGwOutside]);
    expect(c.remote_addrs).toEqual([ADDR.cloudGwOutside]);
    expect(c.dpd_delay).toBe('30');
    expect(c.rekey_time).toBe('14400');
    expect((c['local-1'] as ViciSection).id).toBe(ADDR.siteGwOutside);
    expect((c['remote-1'] as ViciSection).id).toBe(ADDR.cloudGwOutside);
    const ch = child(conns, 'site-main', 'site-main');
    expect(ch['local-ts']).toEqual([ADDR.siteSubnet]);
    expect(ch['remote-ts']).toEqual([ADDR.vpcSubnet]);
    expect(ch.rekey_time).toBe('3600');
    // vici names the restart action "start"
    expect(ch.dpd_action).toBe('start');
    expect(ch.close_action).toBe('start');
  });

  it('PSK, vpcgw initiates: the peer traps; FQDN ids, several subnets, a hex PSK, a dotted name', async () => {
    // kernel-libipsec routes each trapped subnet pair from an address of the site gateway inside the
    // local subnet, as a real site gateway has one: give it one in the second subnet
    await topo!.exec('siteGw', 'ip', ['addr', 'add', '10.3.0.1/24', 'dev', 'in0']);
    const conns = await load(exported(baseConfig({
      name: 'site.main', startAction: 'start', peerId: 'fqdn:site.example', localId: 'fqdn:gw.example', psk: '0x00112233445566778899aabbccddeeff',
      remoteSubnets: [ADDR.siteSubnet, '10.3.0.0/24'], localSubnets: ['10.2.1.0/24', '10.2.2.0/24'],
      ikeProposals: 'aes256-sha256-modp2048, aes128gcm16-prfsha256-ecp256', espProposals: 'aes256-sha256-modp2048',
    }), 'site.main').text);
    const c = conns.site_main as ViciSection;
    expect((c['local-1'] as ViciSection).id).toBe('site.example');
    expect((c['remote-1'] as ViciSection).id).toBe('gw.example');
    const ch = child(conns, 'site_main', 'site_main');
    expect(ch['local-ts']).toEqual([ADDR.siteSubnet, '10.3.0.0/24']);
    expect(ch['remote-ts']).toEqual(['10.2.1.0/24', '10.2.2.0/24']);
    expect(ch.close_action).toBe('trap');
    // charon installs the trap policies after the load (a job of its own)
    await waitFor(async () => /site_main/.test((await swanctl(sw!, ['--list-pols', '--trap', '--raw'])).stdout), {
      timeoutMs: 5000, intervalMs: 200, what: 'trap policies of site_main in charon',
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n${sw!.logForDiagnostics().slice(-4000)}`);
    });
  });

  it('PSK with a customer gateway at %any', async () => {
    const conns = await load(exported(baseConfig({ peerAddress: '%any', peerId: '%any' }), 'site-main').text);
    const c = conns['site-main'] as ViciSection;
    expect(c.local_addrs).toEqual(['%any']);
    expect((c['remote-1'] as ViciSection).id).toBe(ADDR.cloudGwOutside);
  });

  it('ECDSA certificates with FQDN ids, files where the text says', async () => {
    const gw = issue(ecCa, 'load-gw-ec', 'ecdsa', ['fqdn:gw.example']);
    const site = issue(ecCa, 'load-site-ec', 'ecdsa', ['fqdn:site.example']);
    placeCertFiles(sw!, 'site-main', site, ecCa);
    const text = exported(baseConfig({ peerId: 'fqdn:site.example', localId: 'fqdn:gw.example', cert: { ...gw, ca: ecCa.file } }), 'site-main').text;
    expect(text).not.toMatch(/secrets/);
    const conns = await load(text);
    const c = conns['site-main'] as ViciSection;
    expect((c['local-1'] as ViciSection).class).toBe('public key');
    expect((c['local-1'] as ViciSection).certs).toBeDefined();
    expect((c['remote-1'] as ViciSection).cacerts).toBeDefined();
  });

  it('RSA certificates with DN ids (our id defaults to the certificate subject)', async () => {
    const gw = issue(rsaCa, 'load-gw-rsa', 'rsa', []);
    const site = issue(rsaCa, 'load-site-rsa', 'rsa', []);
    placeCertFiles(sw!, 'site-main', site, rsaCa);
    const text = exported(baseConfig({ peerId: 'O=vpcgw export, CN=load-site-rsa', localId: null, cert: { ...gw, ca: rsaCa.file } }), 'site-main').text;
    const conns = await load(text);
    const c = conns['site-main'] as ViciSection;
    expect((c['local-1'] as ViciSection).id).toBe('O=vpcgw export, CN=load-site-rsa');
    expect((c['remote-1'] as ViciSection).id).toBe('O=vpcgw export, CN=load-gw-rsa');
  });
});

describe('a strongSwan peer running the exported swanctl.conf verbatim against vpcgw start', () => {
  let topo: Topology | null = null;
  const running: { stop(): Promise<unknown> }[] = [];
  afterEach(async () => {
    for (const r of running.splice(0)) await r.stop();
    await topo?.destroy();
    topo = null;
  });

  /**
   * vpcgw and a charon whose swanctl.conf is the exported text. Charon starts on the harness config
   * (start_action none) and loads the exported text before vpcgw starts, so no SA can come up under
   * the harness config.
   */
  async function lab(cfg: ReturnType<typeof baseConfig>, cert?: { site: { certFile: string; keyFile: string; pem: string; keyPem: string }; gatewayCa: Ca }) {
    topo = await createTopology({ tag: 'pexp' });
    cfg.gateway.dataDir = join(topo.workDir, 'var');
    const text = exported(cfg, 'site-main').text;
    const sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: '192.0.2.99', localId: ADDR.siteGwOutside, remoteId: '192.0.2.99',
      psk: PSK, ikeProposals: 'default', espProposals: 'default', localTs: '10.99.0.0/16', remoteTs: '10.98.0.0/16',
      ...(cert ? { pubkey: { certFile: cert.site.certFile, keyFile: cert.site.keyFile, caFile: cert.gatewayCa.file } } : {}),
    });
    running.push(sw);
    if (cert) placeCertFiles(sw, 'site-main', cert.site, cert.gatewayCa);
    writeFileSync(sw.swanctlPath, text, { mode: 0o600 });
    const r = await swanctl(sw, ['--load-all', '--noprompt', '--file', sw.swanctlPath]);
    expect(loadProblems(r.stdout + r.stderr)).toEqual([]);
    const gw = await Vpcgw.start(topo, 'cloudGw', cfg as unknown as VpcgwConfig);
    running.push(gw);
    return { gw, sw, text };
  }

  async function upFromTheSite(gw: Vpcgw, sw: Charon) {
    // nobody calls initiate: start_action = start in the exported text brings it up (charon retries
    // until vpcgw answers: keyingtries = 0)
    const sas = await sw.waitInstalled(60_000);
    const st = await gw.waitInstalled(10_000);
    const ike = sas.find((s) => s.name === 'site-main' && s.state === 'ESTABLISHED')!;
    expect(ike.initiator).toBe(true);
    expect(ike.children[0]!.encap).toBe(true);
    expect(st.connections[0]!.children[0]!.spiIn).toBe(ike.children[0]!.spiOut);
    const p = await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(p.received, p.output).toBe(3);
    const back = await ping(topo!, 'vpcHost', ADDR.siteHost, { count: 3 });
    expect(back.received, back.output).toBe(3);
  }

  it('PSK: the tunnel comes up from strongSwan and passes traffic', async () => {
    const { gw, sw, text } = await lab(baseConfig({ dpd: '30s' }));
    expect(text).toContain(`secret = "${PSK}"`);
    await upFromTheSite(gw, sw);
  }, 120_000);

  it('certificates: the tunnel comes up from strongSwan and passes traffic', async () => {
    const gwCert = issue(ecCa, 'gw-ec', 'ecdsa', ['fqdn:gw.example']);
    const site = issue(ecCa, 'site-ec', 'ecdsa', ['fqdn:site.example']);
    const { gw, sw } = await lab(
      baseConfig({ peerId: 'fqdn:site.example', localId: 'fqdn:gw.example', cert: { ...gwCert, ca: ecCa.file } }),
      { site, gatewayCa: ecCa },
    );
    await upFromTheSite(gw, sw);
  }, 120_000);

  it('vpcgw initiates (startAction start): the trapping peer answers, and site traffic opens no second SA', async () => {
    const { gw, sw } = await lab(baseConfig({ startAction: 'start' }));
    const st = await gw.waitInstalled(60_000);
    const sas = await sw.waitInstalled(10_000);
    expect(sas.filter((s) => s.name === 'site-main')).toHaveLength(1);
    expect(sas[0]!.initiator).toBe(false);
    expect(st.connections[0]!.children[0]!.spiOut).toBe(sas[0]!.children[0]!.spiIn);
    const p = await ping(topo!, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(p.received, p.output).toBe(3);
    expect((await sw.listSas()).filter((s) => s.name === 'site-main')).toHaveLength(1);
  }, 120_000);
});
