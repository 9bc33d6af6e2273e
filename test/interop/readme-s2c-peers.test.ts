// The customer-side swanctl.conf examples of README.md's "Dead peers and restarts" and "Why is my
// tunnel down (vpcgw diagnose)" subsections, verbatim, loaded into the REAL strongSwan 5.9.8 against
// vpcgw running the README's site-to-cloud YAML (data dir and PSK replaced by test fixtures), so the
// documentation cannot drift from what works:
// 1. dead peers: the tunnel comes up (vpcgw initiates), vpcgw crashes and starts again, its
//    INITIAL_CONTACT makes strongSwan drop the stale SA, one IKE SA remains and traffic passes;
// 2. diagnose: strongSwan's mismatched IKE proposal fails, and `vpcgw diagnose` says
//    IKE_PROPOSAL_MISMATCH with the proposal the README names.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ADDR, createTopology, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { run, waitFor } from '../helpers/proc.js';
import { Vpcgw, VPCGW_CLI } from '../helpers/vpcgw.js';
import { REPO_ROOT } from '../helpers/openvpn.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-psk-readme-peers-5678';

/** The site-to-cloud YAML and the swanctl.conf block of one ### subsection (by its heading's start). */
function readmeBlocks(heading: string): { yaml: string; swanctl: string } {
  const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = md.slice(md.indexOf('## Site-to-cloud'), md.indexOf('## Point-to-cloud'));
  const yaml = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].find((b) => b[1] === 'yaml')?.[2];
  const at = section.indexOf(`### ${heading}`);
  if (!yaml || at < 0) throw new Error(`README site-to-cloud section lost its YAML or the subsection "${heading}"`);
  const next = section.indexOf('\n### ', at + 4);
  const sub = section.slice(at, next < 0 ? undefined : next);
  const swanctl = [...sub.matchAll(/```(\w*)\n([\s\S]*?)```/g)].find((b) => b[2]!.includes('connections {'))?.[2];
  if (!swanctl) throw new Error(`README subsection "${heading}" lost its swanctl.conf block`);
  return { yaml, swanctl };
}

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
  await topo?.destroy();
  topo = null;
});

async function lab(tag: string, heading: string) {
  const { yaml, swanctl } = readmeBlocks(heading);
  topo = await createTopology({ tag });
  const cfg = parse(yaml) as { gateway: { dataDir: string }; vpnConnections: { name: string; auth: { psk: string } }[] };
  cfg.gateway.dataDir = join(topo.workDir, 'var');
  cfg.vpnConnections[0]!.auth.psk = PSK;
  // strongSwan: start with the harness config, then replace it with the README's text and reload
  const sw = await Charon.start(topo, 'siteGw', {
    localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
    psk: PSK, ikeProposals: 'default', espProposals: 'default', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
  });
  running.push(sw);
  mkdirSync(sw.dir, { recursive: true });
  writeFileSync(sw.swanctlPath, swanctl.replace(/secret = "[^"]*"/, `secret = "${PSK}"`), { mode: 0o600 });
  await sw.loadAll();
  return { sw, cfg, conn: cfg.vpnConnections[0]!.name };
}

describe('README site-to-cloud: dead peers and diagnose examples', () => {
  it('dead peers: the README swanctl.conf (dpd, trap, restart) against the README YAML; a crashed vpcgw comes back and strongSwan keeps one IKE SA', async () => {
    const { sw, cfg } = await lab('rdpeer', 'Dead peers and restarts');
    let gw = await Vpcgw.start(topo!, 'cloudGw', cfg as never, 30_000);
    running.push(gw);
    // vpcgw initiates (startAction: start)
    await gw.waitInstalled(30_000);
    const old = (await sw.waitInstalled(10_000))[0]!;
    await waitForPing(topo!, 'siteHost', ADDR.vpcHost);
    // a crash: no DELETE reaches strongSwan; the new vpcgw's INITIAL_CONTACT replaces the stale SA
    await gw.proc.stop('SIGKILL', 3000);
    rmSync(gw.controlPath, { force: true });
    gw = await Vpcgw.start(topo!, 'cloudGw', cfg as never, 30_000);
    running.push(gw);
    await gw.waitInstalled(30_000);
    const sas = await waitFor(async () => {
      const l = await sw.listSas();
      return l.length === 1 && l[0]!.state === 'ESTABLISHED' && l[0]!.children.length === 1 && l[0]!.children[0]!.spiIn !== old.children[0]!.spiIn ? l : undefined;
    }, { timeoutMs: 10_000, intervalMs: 200, what: 'strongSwan to keep only the new IKE SA (INITIAL_CONTACT)' });
    expect(sas[0]!.children[0]!.state).toBe('INSTALLED');
    await waitForPing(topo!, 'siteHost', ADDR.vpcHost);
    await waitForPing(topo!, 'vpcHost', ADDR.siteHost);
  }, 120_000);

  it('diagnose: the README swanctl.conf with a mismatched IKE proposal fails, and vpcgw diagnose says IKE_PROPOSAL_MISMATCH', async () => {
    const { sw, cfg, conn } = await lab('rdiag', 'Why is my tunnel down');
    const gw = await Vpcgw.start(topo!, 'cloudGw', cfg as never, 30_000);
    running.push(gw);
    const r = await sw.swanctl(['--initiate', '--child', conn, '--timeout', '10'], { timeoutMs: 15_000, allowFail: true });
    expect(r.code).not.toBe(0);
    const d = await waitFor(async () => {
      const out = await run(process.execPath, [VPCGW_CLI, 'diagnose', conn, '--json', '--control', gw.controlPath], { timeoutMs: 15_000 });
      const j = JSON.parse(out.stdout) as { lastError?: { code: string; message: string } };
      return j.lastError?.code === 'IKE_PROPOSAL_MISMATCH' ? j : undefined;
    }, { timeoutMs: 20_000, intervalMs: 500, what: 'vpcgw diagnose to report IKE_PROPOSAL_MISMATCH' });
    expect(d.lastError!.message).toMatch(/aes256-sha256-modp2048|aes128gcm16-prfsha256-x25519/);
    const text = await run(process.execPath, [VPCGW_CLI, 'diagnose', conn, '--control', gw.controlPath], { timeoutMs: 15_000 });
    expect(text.stdout).toMatch(/code: IKE_PROPOSAL_MISMATCH/);
    expect(text.stdout).toMatch(/suggested fix: /);
  }, 90_000);
});
