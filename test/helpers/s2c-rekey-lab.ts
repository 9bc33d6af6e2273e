// A vpcgw <-> strongSwan lab for the rekey, loss and soak interop tests (s2c-ike-collision, s2c-loss,
// s2c-soak): one site-to-cloud connection through `vpcgw start`, PSK or certificate auth, short
// lifetimes on either side, an nftables helper for the site gateway's namespace, a background ping
// and the "exactly one IKE SA and one CHILD_SA pair on both sides" check.
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDR, createTopology, type NodeName, type Topology } from './netns.js';
import { Charon, type IkeSaInfo, type StrongSwanConnConfig } from './strongswan.js';
import { run, waitFor, type ManagedProcess } from './proc.js';
import { s2cConfig, Vpcgw, VPCGW_CLI } from './vpcgw.js';
import { TEST_PSK } from './scenario.js';
import { createCertificate, keyToPem } from '../../src/gateway/pki-ike.js';

export const IKE_PROPOSALS = 'aes128gcm16-prfsha256-x25519';
export const ESP_PROPOSALS = 'aes128gcm16';

export interface RekeyLabOptions {
  tag: string;
  /** who brings the tunnel up: vpcgw (startAction start) or strongSwan (swanctl --initiate) */
  initiator: 'cloud' | 'site';
  /** certificate auth (ECDSA, one throwaway CA) instead of the PSK */
  certs?: boolean;
  /** vpcgw ike.lifetime / esp.lifetime (e.g. '3m'); defaults 4h / 1h */
  ikeLifetime?: string;
  espLifetime?: string;
  /** strongSwan rekey_time of the IKE SA and of the child (e.g. '3m'); unset: its defaults (4h / 1h) */
  swIkeRekey?: string;
  swChildRekey?: string;
  /** gateway.ike settings (retransmitTimeout, retransmitTries) */
  gatewayIke?: Record<string, unknown>;
  /** extra charon settings (retransmit_tries, retransmit_timeout, ...) */
  charonSettings?: Record<string, string | number>;
}

export interface RekeyLab {
  topo: Topology;
  gw: Vpcgw;
  sw: Charon;
  conn: string;
  stop(): Promise<void>;
}

/** Starts vpcgw in cloudGw and charon in siteGw; the tunnel is not brought up yet (see bringUp). */
export async function startRekeyLab(o: RekeyLabOptions): Promise<RekeyLab> {
  const topo = await createTopology({ tag: o.tag });
  const running: { stop(): Promise<unknown> }[] = [];
  const stop = async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
    await topo.destroy();
  };
  try {
    const cfg = s2cConfig({
      gatewayName: `gw-${o.tag}`, dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
      localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
      psk: TEST_PSK, ikeProposals: IKE_PROPOSALS, espProposals: ESP_PROPOSALS, startAction: o.initiator === 'cloud' ? 'start' : 'none',
      gatewayIke: o.gatewayIke,
    });
    const conn = cfg.vpnConnections[0] as unknown as Record<string, unknown> & { ike: Record<string, unknown>; esp: Record<string, unknown> };
    if (o.ikeLifetime) conn.ike.lifetime = o.ikeLifetime;
    if (o.espLifetime) conn.esp.lifetime = o.espLifetime;
    let pubkey: StrongSwanConnConfig['pubkey'];
    if (o.certs) {
      const pki = writePki(topo.workDir);
      conn.auth = { cert: pki.gw.certFile, key: pki.gw.keyFile };
      Object.assign(cfg.customerGateways[0]!, { ca: pki.caFile });
      pubkey = { certFile: pki.site.certFile, keyFile: pki.site.keyFile, caFile: pki.caFile };
    }
    const gw = await Vpcgw.start(topo, 'cloudGw', cfg, 30_000);
    running.push(gw);
    const sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: TEST_PSK, pubkey, ikeProposals: IKE_PROPOSALS, espProposals: ESP_PROPOSALS, localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
      ikeRekeyTime: o.swIkeRekey, childRekeyTime: o.swChildRekey, charonSettings: o.charonSettings,
      logLevels: { default: 1, ike: 2, enc: 1, cfg: 1, knl: 1 },
    });
    running.push(sw);
    return { topo, gw, sw, conn: cfg.vpnConnections[0]!.name, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A throwaway ECDSA CA and one certificate per side, the IP addresses as subjectAltNames (the IDs). */
function writePki(dir: string) {
  const caKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const caCert = createCertificate({ subject: 'O=vpcgw interop, CN=rekey-ca', key: caKey, ca: true });
  const caFile = join(dir, 'rekey-ca.pem');
  writeFileSync(caFile, caCert.toString());
  const now = Date.now();
  const issue = (name: string, addr: string) => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const cert = createCertificate({
      subject: `O=vpcgw interop, CN=${name}`, sans: [addr], key, issuer: { cert: caCert, key: caKey },
      notBefore: new Date(now - 86_400_000), notAfter: new Date(now + 30 * 86_400_000),
    });
    const certFile = join(dir, `${name}.pem`);
    const keyFile = join(dir, `${name}.key`);
    writeFileSync(certFile, cert.toString());
    writeFileSync(keyFile, keyToPem(key), { mode: 0o600 });
    return { certFile, keyFile };
  };
  return { caFile, gw: issue('gw', ADDR.cloudGwOutside), site: issue('site', ADDR.siteGwOutside) };
}

/** Loads an nftables script in a namespace of the lab. */
export async function nft(topo: Topology, ns: NodeName, script: string): Promise<void> {
  await topo.exec(ns, 'nft', ['-f', '-'], { input: script });
}

/**
 * nftables rules matching IKE only: UDP 500, and UDP 4500 with the non-ESP marker (RFC 3948 §2.2:
 * four zero bytes after the UDP header), so ESP-in-UDP on 4500 is left alone. `dir` is dport for
 * what the namespace sends, sport for what it receives.
 */
export function ikeMatch(dir: 'dport' | 'sport'): string[] {
  return [`udp ${dir} 500`, `udp ${dir} 4500 @th,64,32 0`];
}

/** Counts a regular expression in a text. */
export function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'g'))?.length ?? 0;
}

export interface SaPicture {
  sw: IkeSaInfo[];
  gwIkeSa: string;
  gwState: string;
  gwChildren: { state: string; spiIn: string; spiOut: string }[];
  halfOpen: number;
}

/** What both sides hold now: strongSwan's IKE SAs (all states), vpcgw's connection and half-open count. */
export async function saPicture(lab: RekeyLab): Promise<SaPicture> {
  const r = await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', lab.gw.controlPath], { timeoutMs: 15_000 });
  const j = JSON.parse(r.stdout) as {
    connections: { state: string; ikeSa?: string; children: { state: string; spiIn: string; spiOut: string }[] }[];
    ikeResponder?: { halfOpen: number };
  };
  const c = j.connections[0]!;
  const norm = (s: string) => s.replace(/^0x/, '').padStart(8, '0').toLowerCase();
  return {
    sw: await lab.sw.listSas(),
    gwIkeSa: c.ikeSa ?? '',
    gwState: c.state,
    gwChildren: c.children.map((ch) => ({ state: ch.state, spiIn: norm(ch.spiIn), spiOut: norm(ch.spiOut) })),
    halfOpen: j.ikeResponder?.halfOpen ?? 0,
  };
}

/**
 * Exactly one IKE SA on strongSwan (nothing half-open, rekeyed or deleting left), ESTABLISHED, with
 * one INSTALLED child; vpcgw's connection ESTABLISHED on that same IKE SA (its SPIs) with that child's
 * SPI pair, and no half-open IKE SA at vpcgw's responder. Undefined (with `why`) otherwise.
 */
export function isOnePair(p: SaPicture): { ok: true } | { ok: false; why: string } {
  if (p.sw.length !== 1) return { ok: false, why: `strongSwan holds ${p.sw.length} IKE SAs (${p.sw.map((s) => s.state).join(', ')})` };
  const s = p.sw[0]!;
  if (s.state !== 'ESTABLISHED') return { ok: false, why: `strongSwan's IKE SA is ${s.state}` };
  if (s.children.length !== 1 || s.children[0]!.state !== 'INSTALLED') return { ok: false, why: `strongSwan's children: ${s.children.map((c) => c.state).join(', ') || 'none'}` };
  if (p.gwState !== 'ESTABLISHED') return { ok: false, why: `vpcgw's connection is ${p.gwState}` };
  if (p.gwIkeSa !== `${s.spiI}/${s.spiR}`) return { ok: false, why: `vpcgw's IKE SA ${p.gwIkeSa} is not strongSwan's ${s.spiI}/${s.spiR}` };
  if (p.gwChildren.length !== 1 || p.gwChildren[0]!.state !== 'INSTALLED') return { ok: false, why: `vpcgw's children: ${p.gwChildren.map((c) => c.state).join(', ') || 'none'}` };
  const [ours, theirs] = [p.gwChildren[0]!, s.children[0]!];
  if (ours.spiIn !== theirs.spiOut || ours.spiOut !== theirs.spiIn) return { ok: false, why: `SPI pairs differ: vpcgw ${ours.spiIn}/${ours.spiOut}, strongSwan ${theirs.spiIn}/${theirs.spiOut}` };
  if (p.halfOpen !== 0) return { ok: false, why: `vpcgw holds ${p.halfOpen} half-open IKE SAs` };
  return { ok: true };
}

/** Waits (bounded) for isOnePair; the error names what differs and carries both logs' tails. */
export async function waitOnePair(lab: RekeyLab, timeoutMs: number): Promise<SaPicture> {
  let last = '';
  return waitFor(
    async () => {
      const p = await saPicture(lab);
      const r = isOnePair(p);
      if (r.ok) return p;
      last = r.why;
      return undefined;
    },
    { timeoutMs, intervalMs: 250, what: 'exactly one IKE SA and one CHILD_SA pair on both sides' },
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${last}\nvpcgw log: ${lab.gw.output().slice(-6000)}\ncharon log: ${lab.sw.log().slice(-6000)}`);
  });
}

/**
 * A ping from the site host to the VPC host in the background: `perSec` a second for `seconds`
 * (-c: it stops by itself, after waiting up to 2 s for the last reply). `result()` waits for it
 * (bounded; SIGINT makes it print its summary if it overruns) and returns the counts.
 */
export function backgroundPing(topo: Topology, seconds: number, perSec: number) {
  const interval = (1 / perSec).toFixed(3);
  const n = Math.max(1, Math.round(seconds * perSec));
  const proc: ManagedProcess = topo.spawnIn('siteHost', 'ping', ['-n', '-q', '-i', interval, '-W', '2', '-c', String(n), ADDR.vpcHost], { label: 'background ping' });
  return {
    proc,
    async result(): Promise<{ transmitted: number; received: number }> {
      const late = setTimeout(() => void proc.stop('SIGINT', 5000), (seconds + 15) * 1000);
      try {
        await proc.exited;
      } finally {
        clearTimeout(late);
      }
      const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(proc.output());
      if (!m) throw new Error(`cannot parse ping output: ${proc.output()}`);
      return { transmitted: Number(m[1]), received: Number(m[2]) };
    },
  };
}
