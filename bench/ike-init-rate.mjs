#!/usr/bin/env node
// IKE_SA_INIT requests/s a responder answers, with and without COOKIEs (RFC 7296 §2.6):
//   (a) vpcgw, every request answered with N(COOKIE)     (gateway.ike cookieThreshold 0)
//   (b) vpcgw, cookies and half-open limits off           (every request gets an SA and a DH)
//   (c) charon, cookies for everything past the first     (charon.cookie_threshold = 1)
//   (d) charon, DoS protection off                        (charon.dos_protection = no)
// The same sender (test/interop/s2c-flood-sender.mjs: crafted requests with random SPIs and nonces,
// x25519) runs in the site namespace and offers --pps for --seconds; the figure is replies per
// second received, i.e. what the responder sustained (at most the offered rate).
//
//   node bench/ike-init-rate.mjs [--pps 20000] [--seconds 3] [--only a,b,c,d] [--json]
//
// Needs root and a built dist/ (npm run build). Namespaces are created here and deleted at the end.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ADDR, BENCH_PSK, CHARON, VPCGW_CLI, createTopology, run, waitFor } from './e2e/lib.mjs';

const SENDER = fileURLToPath(new URL('../test/interop/s2c-flood-sender.mjs', import.meta.url));
const IKE = 'aes128gcm16-prfsha256-x25519';

const { values: opt } = parseArgs({
  options: {
    pps: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '3' },
    only: { type: 'string', default: 'a,b,c,d' },
    json: { type: 'boolean', default: false },
  },
});
const pps = Number(opt.pps);
const seconds = Number(opt.seconds);
if (!(pps > 0 && pps <= 200_000) || !(seconds > 0 && seconds <= 20)) {
  console.error('--pps must be in 1..200000 and --seconds in 1..20');
  process.exit(2);
}

/*
 * IKE_SA_INIT request: SA KE Ni, built by hand (benches run plain Node and cannot import the
 * TypeScript codecs): one IKE proposal ENCR AES-GCM-16/128, PRF HMAC-SHA-256, DH 31 (x25519).
 */
function template() {
  const transforms = [
    [1, 20, Buffer.from([0x80, 0x0e, 0x00, 0x80])], // ENCR_AES_GCM_16, key length 128
    [2, 5, Buffer.alloc(0)], // PRF_HMAC_SHA2_256
    [4, 31, Buffer.alloc(0)], // DH curve25519
  ].map(([type, id, attr], i, all) => {
    const t = Buffer.alloc(8 + attr.length);
    t[0] = i === all.length - 1 ? 0 : 3;
    t.writeUInt16BE(t.length, 2);
    t[4] = type;
    t.writeUInt16BE(id, 6);
    attr.copy(t, 8);
    return t;
  });
  const proposal = Buffer.concat([Buffer.from([0, 0, 0, 0, 1, 1, 0, transforms.length]), ...transforms]);
  proposal.writeUInt16BE(proposal.length, 2);
  const payload = (next, body) => {
    const p = Buffer.alloc(4 + body.length);
    p[0] = next;
    p.writeUInt16BE(p.length, 2);
    body.copy(p, 4);
    return p;
  };
  const sa = payload(34, proposal); // next: KE
  const ke = payload(40, Buffer.concat([Buffer.from([0, 31, 0, 0]), randomBytes(32)])); // next: Ni
  const nonce = payload(0, randomBytes(32));
  const header = Buffer.alloc(28);
  randomBytes(8).copy(header, 0);
  header[16] = 33; // SA
  header[17] = 0x20; // IKEv2
  header[18] = 34; // IKE_SA_INIT
  header[19] = 0x08; // Initiator
  const d = Buffer.concat([header, sa, ke, nonce]);
  d.writeUInt32BE(d.length, 24);
  return { hex: d.toString('hex'), nonceOffset: d.length - 32 };
}

async function startVpcgw(topo, ike) {
  const dir = join(topo.workDir, 'vpcgw');
  mkdirSync(join(dir, 'var'), { recursive: true });
  const { stringify } = await import('yaml');
  const configPath = join(dir, 'vpcgw.yaml');
  const control = join(dir, 'control.sock');
  writeFileSync(configPath, stringify({
    gateway: {
      name: 'gw-bench', dataDir: join(dir, 'var'), publicAddresses: [ADDR.cloudGwOutside], vpcSubnets: [ADDR.vpcSubnet],
      tun: { name: 'vpcgw0', mtu: 1400 }, logLevel: 'warn', ike,
    },
    customerGateways: [{ name: 'cgw1', address: ADDR.siteGwOutside, id: ADDR.siteGwOutside }],
    vpnConnections: [{
      name: 'cgw1-main', customerGateway: 'cgw1', localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
      auth: { psk: BENCH_PSK }, ike: { proposals: IKE, localId: ADDR.cloudGwOutside }, esp: { proposals: 'aes128gcm16' }, startAction: 'none',
    }],
  }), { mode: 0o600 });
  const proc = topo.spawnIn('cloudGw', process.execPath, [VPCGW_CLI, 'start', '--config', configPath, '--control', control]);
  await waitFor(async () => {
    if (!proc.running) throw new Error(`vpcgw exited: ${proc.output()}`);
    if (!existsSync(control)) return false;
    await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', control], { timeoutMs: 3000 });
    return true;
  }, { timeoutMs: 10_000, intervalMs: 150, what: 'vpcgw status --json' });
  return proc;
}

const CHARON_PLUGINS = JSON.parse(readFileSync(new URL('../test/helpers/charon-plugins.json', import.meta.url), 'utf8')).join(' ');

async function startCharon(topo, settings) {
  const dir = join(topo.workDir, 'swan');
  mkdirSync(dir, { recursive: true });
  const vici = `unix://${join(dir, 'charon.vici')}`;
  writeFileSync(join(dir, 'strongswan.conf'), `charon {
    load = ${CHARON_PLUGINS}
${Object.entries(settings).map(([k, v]) => `    ${k} = ${v}\n`).join('')}    plugins {
        vici {
            socket = ${vici}
        }
    }
    syslog {
        daemon {
            default = -1
        }
    }
}
`);
  writeFileSync(join(dir, 'swanctl.conf'), `connections {
    s2c {
        version = 2
        local_addrs = ${ADDR.cloudGwOutside}
        remote_addrs = ${ADDR.siteGwOutside}
        proposals = ${IKE}
        local {
            auth = psk
            id = ${ADDR.cloudGwOutside}
        }
        remote {
            auth = psk
            id = ${ADDR.siteGwOutside}
        }
        children {
            net {
                local_ts = ${ADDR.vpcSubnet}
                remote_ts = ${ADDR.siteSubnet}
                esp_proposals = aes128gcm16
            }
        }
    }
}
secrets {
    ike-s2c {
        id-local = ${ADDR.cloudGwOutside}
        id-remote = ${ADDR.siteGwOutside}
        secret = ${JSON.stringify(BENCH_PSK)}
    }
}
`, { mode: 0o600 });
  const env = { ...process.env, STRONGSWAN_CONF: join(dir, 'strongswan.conf') };
  const proc = topo.spawnIn('cloudGw', 'unshare', ['-m', 'sh', '-c', `mount -t tmpfs none /run && exec ${CHARON}`], { env });
  const swanctl = (args, o = {}) => run('swanctl', [...args, '--uri', vici], { env, ...o });
  await waitFor(async () => {
    if (!proc.running) throw new Error(`charon exited: ${proc.output()}`);
    return existsSync(join(dir, 'charon.vici')) && (await swanctl(['--version', '--daemon'], { allowFail: true })).code === 0;
  }, { timeoutMs: 10_000, intervalMs: 100, what: 'charon vici' });
  await swanctl(['--load-all', '--noprompt', '--file', join(dir, 'swanctl.conf')]);
  return proc;
}

const CASES = {
  a: { label: 'vpcgw, cookies', start: (t) => startVpcgw(t, { cookieThreshold: 0, cookieThresholdPerSource: 0 }) },
  b: {
    label: 'vpcgw, no cookies (DH each)',
    start: (t) => startVpcgw(t, { cookieThreshold: 1_000_000, cookieThresholdPerSource: 1_000_000, halfOpenPerSource: 1_000_000, halfOpenLimit: 1_000_000 }),
  },
  c: { label: 'charon, cookies', start: (t) => startCharon(t, { cookie_threshold: 1 }) },
  d: { label: 'charon, no cookies (DH each)', start: (t) => startCharon(t, { dos_protection: 'no' }) },
};

async function measure(key) {
  const topo = await createTopology();
  try {
    await CASES[key].start(topo);
    const t = template();
    const sender = topo.spawnIn('siteGw', process.execPath, [
      SENDER, ADDR.siteGwOutside, ADDR.cloudGwOutside, '500', String(pps), String(seconds * 1000), t.hex, String(t.nonceOffset),
    ]);
    await Promise.race([sender.exited, new Promise((r) => setTimeout(r, (seconds + 10) * 1000))]);
    const line = sender.output().trim().split('\n').pop();
    const r = JSON.parse(line);
    return { sent: r.sent, replies: r.replies, cookies: r.cookies, repliesPerSec: Math.round(r.replies / seconds) };
  } finally {
    await topo.destroy();
  }
}

const results = {};
for (const key of opt.only.split(',').map((s) => s.trim()).filter((k) => k in CASES)) {
  process.stderr.write(`[bench:ike-init-rate] (${key}) ${CASES[key].label}: ${pps}/s offered for ${seconds} s ...\n`);
  try {
    results[key] = await measure(key);
  } catch (e) {
    results[key] = { error: e.message.split('\n')[0] };
  }
}

if (opt.json) {
  console.log(JSON.stringify({ pps, seconds, results }));
} else {
  console.log(`IKE_SA_INIT answered per second (${IKE}), ${pps}/s offered for ${seconds} s from one address`);
  for (const [key, c] of Object.entries(CASES)) {
    const r = results[key];
    const text = r === undefined ? 'not run' : 'error' in r ? `n/a (${r.error})` : `${String(r.repliesPerSec).padStart(7)} /s  (sent ${r.sent}, replies ${r.replies}, cookies ${r.cookies})`;
    console.log(`  (${key}) ${c.label.padEnd(30)} ${text}`);
  }
}
process.exit(Object.values(results).some((r) => 'error' in r) ? 1 : 0);
