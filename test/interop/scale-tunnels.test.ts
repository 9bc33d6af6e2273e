// 200 site tunnels at once against `vpcgw start`: one charon holds 200 connections, each from its
// own address (198.18.0.1-200 on the site gateway's outside link, RFC 2544's benchmarking range) with
// its own site subnet (10.100.<i>.0/24), all started when charon loads them; vpcgw answers as
// responder. Every one must come up (an ESTABLISHED IKE SA with an INSTALLED child) and carry a
// ping from its site subnet to the VPC host. The larger figures (1,000 tunnels, setup rate beside
// charon's own, memory per tunnel, status latency) are bench/scale.mjs's.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDR, createTopology, type Topology } from '../helpers/netns.js';
import { CHARON_PATH, strongswanConf } from '../helpers/strongswan.js';
import { startVpcgw, type Vpcgw, type VpcgwConfig } from '../helpers/vpcgw.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';

const TUNNELS = 200;
// TEST FIXTURE ONLY: not a real secret.
const PSK = 'scale-tunnels-fixture-psk-not-secret';
const IKE = 'aes128gcm16-prfsha256-x25519';
const ESP = 'aes128gcm16';

const siteAddr = (i: number): string => `198.18.${(i + 1) >> 8}.${(i + 1) & 255}`;
const siteNet = (i: number): string => `10.100.${i}.0/24`;
const siteHostAddr = (i: number): string => `10.100.${i}.1`;

let topo: Topology;
let gw: Vpcgw;
let charon: ManagedProcess;
let swanDir: string;

function swanctl(args: string[], timeoutMs = 30_000) {
  return topo.exec('siteGw', 'swanctl', [...args, '--uri', `unix://${join(swanDir, 'charon.vici')}`], {
    timeoutMs,
    env: { ...process.env, STRONGSWAN_CONF: join(swanDir, 'strongswan.conf') },
  });
}

beforeAll(async () => {
  topo = await createTopology({ tag: 'scale' });
  // the sites' public addresses: one per tunnel on the site gateway's outside link
  for (let i = 0; i < TUNNELS; i++) {
    await topo.exec('siteGw', 'ip', ['addr', 'add', `${siteAddr(i)}/16`, 'dev', 'out0']);
    await topo.exec('siteGw', 'ip', ['addr', 'add', `${siteHostAddr(i)}/32`, 'dev', 'lo']);
  }
  await topo.exec('cloudGw', 'ip', ['route', 'add', '198.18.0.0/16', 'dev', 'out0']);

  const config = {
    gateway: {
      name: 'scale',
      dataDir: join(topo.workDir, 'gw-data'),
      publicAddresses: [ADDR.cloudGwOutside],
      vpcSubnets: [ADDR.vpcSubnet],
      tun: { name: 'vpcgw0', mtu: 1400 },
    },
    customerGateways: Array.from({ length: TUNNELS }, (_, i) => ({ name: `site${i}`, address: siteAddr(i), id: siteAddr(i) })),
    vpnConnections: Array.from({ length: TUNNELS }, (_, i) => ({
      name: `site${i}-main`,
      customerGateway: `site${i}`,
      localSubnets: [ADDR.vpcSubnet],
      remoteSubnets: [siteNet(i)],
      auth: { psk: PSK },
      ike: { proposals: IKE, lifetime: '4h', localId: ADDR.cloudGwOutside },
      esp: { proposals: ESP, lifetime: '1h' },
      startAction: 'none',
    })),
  };
  gw = await startVpcgw(topo, 'cloudGw', config as unknown as VpcgwConfig, 60_000);

  swanDir = join(topo.workDir, 'swan-scale');
  mkdirSync(swanDir, { recursive: true });
  writeFileSync(join(swanDir, 'strongswan.conf'), strongswanConf(swanDir, { logLevels: { default: 0, ike: 0, cfg: 0, knl: 0 } }));
  const conns = Array.from({ length: TUNNELS }, (_, i) => `    site${i} {
        version = 2
        local_addrs = ${siteAddr(i)}
        remote_addrs = ${ADDR.cloudGwOutside}
        proposals = ${IKE}
        encap = yes
        local { auth = psk
                id = ${siteAddr(i)} }
        remote { auth = psk
                 id = ${ADDR.cloudGwOutside} }
        children {
            net {
                local_ts = ${siteNet(i)}
                remote_ts = ${ADDR.vpcSubnet}
                esp_proposals = ${ESP}
                start_action = start
            }
        }
    }`).join('\n');
  writeFileSync(join(swanDir, 'swanctl.conf'), `connections {\n${conns}\n}\nsecrets {\n    ike-all {\n        secret = "${PSK}"\n    }\n}\n`, { mode: 0o600 });
  charon = topo.spawnIn('siteGw', 'unshare', ['-m', 'sh', '-c', `mount -t tmpfs none /run && exec ${CHARON_PATH}`], {
    env: { ...process.env, STRONGSWAN_CONF: join(swanDir, 'strongswan.conf') },
    label: 'charon@siteGw (scale)',
  });
  await waitFor(async () => {
    if (!charon.running) throw new Error(`charon exited: ${charon.output()}`);
    return (await swanctl(['--version', '--daemon'], 3000).catch(() => null)) !== null;
  }, { timeoutMs: 15_000, intervalMs: 200, what: 'charon to answer on vici' });
}, 180_000);

afterAll(async () => {
  await charon?.stop('SIGTERM', 10_000);
  await gw?.stop(10_000);
  await topo?.destroy();
});

describe(`${TUNNELS} site tunnels from one strongSwan`, () => {
  it('all come up with vpcgw as responder, and each carries a ping from its site subnet to the VPC host', async () => {
    const t0 = performance.now();
    await swanctl(['--load-all', '--noprompt', '--file', join(swanDir, 'swanctl.conf')], 60_000);
    const up = await waitFor(async () => {
      if (!gw.proc.running) throw new Error(`vpcgw exited: ${gw.output().slice(-3000)}`);
      const s = await gw.status(30_000);
      const n = s.connections.filter((c) => c.state === 'ESTABLISHED' && c.children.some((ch) => ch.state === 'INSTALLED')).length;
      return n === TUNNELS ? s : undefined;
    }, { timeoutMs: 150_000, intervalMs: 1000, what: `${TUNNELS} tunnels ESTABLISHED with an INSTALLED child` });
    const setupSec = (performance.now() - t0) / 1000;
    expect(up.connections).toHaveLength(TUNNELS);

    // one ping per tunnel, 10 at a time, from that site's subnet address
    const lost: number[] = [];
    for (let i = 0; i < TUNNELS; i += 10) {
      await Promise.all(Array.from({ length: Math.min(10, TUNNELS - i) }, async (_, k) => {
        const t = i + k;
        const r = await topo.exec('siteGw', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '-I', siteHostAddr(t), ADDR.vpcHost], { timeoutMs: 15_000, allowFail: true });
        if (!/ [1-3] received/.test(r.stdout)) lost.push(t);
      }));
    }
    expect(lost, 'tunnels whose pings got no answer').toEqual([]);
    const st0 = performance.now();
    const s = await gw.status(30_000);
    const statusMs = performance.now() - st0;
    const bytes = s.connections.reduce((n, c) => n + c.children.reduce((m, ch) => m + ch.bytesIn, 0), 0);
    expect(bytes).toBeGreaterThan(0);
    console.log(`scale-tunnels: ${TUNNELS} tunnels up in ${setupSec.toFixed(1)} s (${(TUNNELS / setupSec).toFixed(1)}/s incl. charon's start), status --json ${statusMs.toFixed(0)} ms`);
  }, 300_000);
});
