// The README's site-to-cloud example, verbatim: its vpcgw YAML and its customer-side swanctl.conf are
// taken out of README.md and run against each other (vpcgw and the REAL strongSwan 5.9.8), so the
// documentation cannot drift from what works. Only the data dir and the PSK are
// replaced (the PSK by a test fixture, identically on both sides).
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ADDR, createTopology, ping, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { Vpcgw } from '../helpers/vpcgw.js';
import { REPO_ROOT } from '../helpers/openvpn.js';

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'test-fixture-psk-readme-example-1234';

function readmeBlocks(): { yaml: string; swanctl: string } {
  const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = md.slice(md.indexOf('## Site-to-cloud'), md.indexOf('## Point-to-cloud'));
  const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)];
  const yaml = blocks.find((b) => b[1] === 'yaml')?.[2];
  const swanctl = blocks.find((b) => b[2]!.includes('connections {'))?.[2];
  if (!yaml || !swanctl) throw new Error('README site-to-cloud section lost its YAML or swanctl.conf block');
  return { yaml, swanctl };
}

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterAll(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
});

describe('README site-to-cloud example', () => {
  it('vpcgw with the README YAML and strongSwan with the README swanctl.conf pass traffic', async () => {
    const { yaml, swanctl } = readmeBlocks();
    topo = await createTopology({ tag: 'readme' });
    const cfg = parse(yaml) as { gateway: { dataDir: string }; vpnConnections: { auth: { psk: string } }[] };
    expect(cfg.vpnConnections).toHaveLength(1);
    cfg.gateway.dataDir = join(topo.workDir, 'var');
    cfg.vpnConnections[0]!.auth.psk = PSK;
    const gw = await Vpcgw.start(topo, 'cloudGw', cfg as never);
    running.push(gw);
    // strongSwan: start with the harness config, then replace it with the README's text and reload
    const sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: PSK, ikeProposals: 'default', espProposals: 'default', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
    });
    running.push(sw);
    mkdirSync(sw.dir, { recursive: true });
    writeFileSync(sw.swanctlPath, swanctl.replace(/secret = "[^"]*"/, `secret = "${PSK}"`), { mode: 0o600 });
    await sw.loadAll();
    // the README's connection has startAction: start on the vpcgw side: vpcgw initiates by itself
    await gw.waitInstalled(30_000);
    const sas = await sw.waitInstalled(10_000);
    expect(sas[0]!.children[0]!.encap).toBe(true);
    const st = await gw.status();
    expect(st.connections[0]!.children[0]!.spiIn).toBe(sas[0]!.children[0]!.spiOut);
    const p = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 3 });
    expect(p.received, p.output).toBe(3);
    const back = await ping(topo, 'vpcHost', ADDR.siteHost, { count: 3 });
    expect(back.received, back.output).toBe(3);
  }, 120_000);
});
