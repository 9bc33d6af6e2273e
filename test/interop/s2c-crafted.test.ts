// Crafted IKE input against the running daemon, with the REAL strongSwan 5.9.8 tunnel up, inside the
// test's own namespaces only. A Node sender in the site namespace, bound to the customer gateway's
// own address (so the packets reach the IKE_SA_INIT parser instead of the unknown-peer refusal),
// sends for a bounded CRAFTED_MS at CRAFTED_PPS, alternating UDP 500 and UDP 4500 (behind the
// non-ESP marker):
//  - a 348-byte IKE_SA_INIT holding 40 Delete payloads, each "protocol IKE, SPI size 0, 65,535 SPIs"
//    (RFC 7296 §3.11: with SPI size 0 a Delete carries no SPI; an IKE_SA_INIT may carry no Delete);
//  - the same at about 1.4 KB (171 such Deletes), still one unfragmented datagram.
// test/unit/ike/wire/message.bounds.test.ts shows why decoding these is cheap; this file checks the
// whole daemon: it stays up, its control socket keeps answering `status` within STATUS_WITHIN_MS,
// a ping through the tunnel loses at most one packet, its RSS stays under RSS_BOUND_MB, nothing is
// sent back, and every crafted datagram that arrived is counted as a malformed IKE_SA_INIT.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, createTopology, ping, waitForPing, type Topology } from '../helpers/netns.js';
import { Charon } from '../helpers/strongswan.js';
import { run, sleep } from '../helpers/proc.js';
import { s2cConfig, Vpcgw, VPCGW_CLI } from '../helpers/vpcgw.js';
import { TEST_PSK } from '../helpers/scenario.js';
import { controlCall } from '../../src/gateway/control.js';
import { ExchangeType, HeaderFlag, PayloadType } from '../../src/ike/wire/constants.js';
import type { GatewayStatus } from '../../src/gateway/status.js';

const SENDER = fileURLToPath(new URL('./s2c-crafted-sender.mjs', import.meta.url));
const CRAFTED_PPS = 500;
const CRAFTED_MS = 3000;
/** the daemon's resident memory under the crafted packets (about 80 MB idle on the lab machine) */
const RSS_BOUND_MB = 200;
/** and how much it may grow over its pre-flood value: the datagrams are dropped, nothing is kept */
const RSS_GROWTH_BOUND_MB = 64;
/** each `status` request over the control socket (what `vpcgw status --json` sends) answers within */
const STATUS_WITHIN_MS = 1000;
const STATUS_EVERY_MS = 200;
const PING_INTERVAL_SEC = 0.2;
/** pings cover the whole flood plus a margin on both sides */
const PING_COUNT = Math.ceil((CRAFTED_MS / 1000 + 1.5) / PING_INTERVAL_SEC);
const IKE = 'aes128gcm16-prfsha256-x25519';
const IKE_HEADER_SIZE = 28;
const DELETE_SIZE = 8;

let topo: Topology | null = null;
const running: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await topo?.destroy();
  topo = null;
});

/** IKE_SA_INIT request whose chain is `count` Deletes "protocol IKE, SPI size 0, 65,535 SPIs". */
function hostileInit(count: number): Buffer {
  const b = Buffer.alloc(IKE_HEADER_SIZE + count * DELETE_SIZE);
  b.fill(0x5a, 0, 8); // SPIi (the sender makes it random per datagram); SPIr zero
  b[16] = PayloadType.D;
  b[17] = 0x20; // version 2.0
  b[18] = ExchangeType.IKE_SA_INIT;
  b[19] = HeaderFlag.I;
  b.writeUInt32BE(0, 20); // message ID
  b.writeUInt32BE(b.length, 24);
  for (let i = 0; i < count; i++) {
    const o = IKE_HEADER_SIZE + i * DELETE_SIZE;
    b[o] = i + 1 < count ? PayloadType.D : PayloadType.NONE;
    b.writeUInt16BE(DELETE_SIZE, o + 2);
    b[o + 4] = 1; // protocol IKE
    b[o + 5] = 0; // SPI size 0
    b.writeUInt16BE(0xffff, o + 6); // number of SPIs
  }
  return b;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

describe('crafted Delete payloads against the running daemon with a strongSwan tunnel up', () => {
  it('stays up, answers status within 1 s, keeps the tunnel pinging, bounds its RSS and counts every drop', async () => {
    topo = await createTopology({ tag: 'crafted' });
    const gw = await Vpcgw.start(topo, 'cloudGw', s2cConfig({
      gatewayName: 'gw-crafted', dataDir: `${topo.workDir}/var`, publicAddress: ADDR.cloudGwOutside, peerAddress: ADDR.siteGwOutside,
      localId: ADDR.cloudGwOutside, peerId: ADDR.siteGwOutside, localSubnets: [ADDR.vpcSubnet], remoteSubnets: [ADDR.siteSubnet],
      psk: TEST_PSK, ikeProposals: IKE, espProposals: 'aes128gcm16', startAction: 'none',
    }));
    running.push(gw);
    const sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: TEST_PSK, ikeProposals: IKE, espProposals: 'aes128gcm16', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
    });
    running.push(sw);
    await sw.initiate();
    await gw.waitInstalled();
    await waitForPing(topo, 'siteHost', ADDR.vpcHost);

    const small = hostileInit(40);
    const large = hostileInit(171);
    expect(small.length).toBe(348);
    expect(large.length).toBeGreaterThan(1380);
    expect(large.length).toBeLessThan(1400); // one datagram on the 1500-byte lab links, with the marker too

    const pid = gw.proc.pid;
    const before = (await controlCall(gw.controlPath, 'status', undefined, { timeoutMs: STATUS_WITHIN_MS })) as GatewayStatus;
    const malformedBefore = before.ikeResponder!.drops.malformed!;
    const rssBefore = rssMb(pid);
    let maxRss = rssBefore;
    let maxStatusMs = 0;
    let statusCalls = 0;
    const statusErrors: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const t0 = Date.now();
        try {
          await controlCall(gw.controlPath, 'status', undefined, { timeoutMs: STATUS_WITHIN_MS });
          statusCalls++;
          maxStatusMs = Math.max(maxStatusMs, Date.now() - t0);
        } catch (e) {
          statusErrors.push((e as Error).message);
        }
        try {
          maxRss = Math.max(maxRss, rssMb(pid));
        } catch {
          /* the daemon exited: the assertions below say so */
        }
        await sleep(STATUS_EVERY_MS);
      }
    })();

    const pinging = ping(topo, 'siteHost', ADDR.vpcHost, { count: PING_COUNT, intervalSec: PING_INTERVAL_SEC, waitSec: 1 });
    await sleep(500);
    const sender = topo.spawnIn('siteGw', process.execPath, [
      SENDER, ADDR.siteGwOutside, ADDR.cloudGwOutside, String(CRAFTED_PPS), String(CRAFTED_MS), small.toString('hex'), large.toString('hex'),
    ], { label: 'ike-crafted' });
    running.push(sender);
    await sleep(CRAFTED_MS / 2);
    // the CLI itself during the flood (its own Node start-up is not the daemon's latency: a looser bound)
    const cli = await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', gw.controlPath], { timeoutMs: 10_000 });
    expect(JSON.parse(cli.stdout)).toHaveProperty('ikeResponder');
    await sender.exited;
    const pinged = await pinging;
    polling = false;
    await poller;

    const result = JSON.parse(sender.output().trim().split('\n').pop()!) as { sent: number; sent500: number; sent4500: number; replies: number };
    const after = (await controlCall(gw.controlPath, 'status', undefined, { timeoutMs: STATUS_WITHIN_MS })) as GatewayStatus;
    const counted = after.ikeResponder!.drops.malformed! - malformedBefore;
    console.info(JSON.stringify({
      crafted: result, countedMalformed: counted, ping: { transmitted: pinged.transmitted, received: pinged.received },
      statusCalls, maxStatusMs, rssBeforeMb: Math.round(rssBefore), maxRssMb: Math.round(maxRss),
    }));

    expect(gw.proc.running).toBe(true);
    expect(result.sent).toBeGreaterThanOrEqual(((CRAFTED_PPS * CRAFTED_MS) / 1000) * 0.95);
    expect(result.sent500).toBeGreaterThan(0);
    expect(result.sent4500).toBeGreaterThan(0);
    expect(result.replies).toBe(0); // dropped silently, nothing reflected
    expect(counted).toBeGreaterThanOrEqual(result.sent * 0.9); // UDP may lose a few on a busy machine
    expect(counted).toBeLessThanOrEqual(result.sent);
    expect(statusErrors).toEqual([]);
    expect(statusCalls).toBeGreaterThanOrEqual(Math.floor(CRAFTED_MS / (STATUS_EVERY_MS + STATUS_WITHIN_MS)));
    expect(maxStatusMs).toBeLessThan(STATUS_WITHIN_MS);
    expect(pinged.transmitted).toBe(PING_COUNT);
    expect(pinged.received).toBeGreaterThanOrEqual(PING_COUNT - 1);
    expect(maxRss).toBeGreaterThan(0);
    expect(maxRss).toBeLessThan(RSS_BOUND_MB);
    expect(maxRss - rssBefore).toBeLessThan(RSS_GROWTH_BOUND_MB);
    // the tunnel is untouched: still the one SA on both sides
    expect((await gw.status()).connections[0]!.state).toBe('ESTABLISHED');
    const sas = await sw.listSas();
    expect(sas).toHaveLength(1);
    expect(sas[0]!.state).toBe('ESTABLISHED');
  }, 90_000);
});
