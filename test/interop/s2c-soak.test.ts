// Soak: a site-to-cloud tunnel through `vpcgw start` against the REAL strongSwan 5.9.8, certificate
// auth, CHILD_SA lifetime 1 min and IKE SA lifetime 3 min on BOTH sides (each rekeys as it would, so
// rekeys are started by either side and sometimes cross), a continuous ping at 5/s from the site
// host to the VPC host for 15 minutes. Asserts that no ping is lost and counts the rekeys.
//
// Not part of the ordinary runs: it is skipped unless VPCGW_SOAK=1 (vitest reports it as skipped,
// and scripts/test.mjs counts skipped tests apart from passed ones). VPCGW_SOAK_MINUTES sets the
// duration (default 15) for a shorter run, e.g.
//   VPCGW_SOAK=1 VPCGW_SOAK_MINUTES=4 npx vitest run test/interop/s2c-soak.test.ts
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, waitForPing } from '../helpers/netns.js';
import { run } from '../helpers/proc.js';
import { VPCGW_CLI } from '../helpers/vpcgw.js';
import { backgroundPing, count, startRekeyLab, waitOnePair, type RekeyLab } from '../helpers/s2c-rekey-lab.js';

const SOAK = process.env.VPCGW_SOAK === '1';
const MINUTES = Number(process.env.VPCGW_SOAK_MINUTES ?? 15);
const PINGS_PER_SEC = 5;

let lab: RekeyLab | null = null;

afterEach(async () => {
  await lab?.stop();
  lab = null;
});

describe('soak (set VPCGW_SOAK=1)', () => {
  it.skipIf(!SOAK)(`certificates, CHILD_SA 1 min and IKE SA 3 min lifetimes both sides, ping ${PINGS_PER_SEC}/s for ${MINUTES} min: no ping lost`, async () => {
    expect(MINUTES, 'VPCGW_SOAK_MINUTES').toBeGreaterThan(0);
    lab = await startRekeyLab({
      tag: 'soak', initiator: 'site', certs: true,
      ikeLifetime: '3m', espLifetime: '1m', swIkeRekey: '3m', swChildRekey: '1m',
    });
    const { topo, gw, sw } = lab;
    await sw.initiate();
    await waitForPing(topo, 'siteHost', ADDR.vpcHost, 15_000);
    await waitOnePair(lab, 20_000);
    const seconds = MINUTES * 60;
    const p = await backgroundPing(topo, seconds, PINGS_PER_SEC).result();
    const r = await run(process.execPath, [VPCGW_CLI, 'status', '--json', '--control', gw.controlPath], { timeoutMs: 15_000 });
    const c = (JSON.parse(r.stdout) as { connections: { ikeRekeys?: number; childRekeys?: number }[] }).connections[0]!;
    const swLog = sw.log();
    const figures = {
      minutes: MINUTES,
      pingsSent: p.transmitted,
      pingsLost: p.transmitted - p.received,
      childRekeys: c.childRekeys ?? 0,
      ikeRekeys: c.ikeRekeys ?? 0,
      // started by strongSwan (its requests: N(REKEY_SA) for a child, SA No KE for the IKE SA)
      childRekeysByStrongswan: count(swLog, /generating CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\)/),
      ikeRekeysByStrongswan: count(swLog, /generating CREATE_CHILD_SA request \d+ \[ SA No KE \]/),
      collisions: count(gw.output(), /rekey collision (won|lost)/),
    };
    console.log(`soak figures: ${JSON.stringify(figures)}`);
    expect(p.transmitted).toBeGreaterThanOrEqual(Math.floor(seconds * PINGS_PER_SEC * 0.95));
    expect(figures.pingsLost, `soak figures: ${JSON.stringify(figures)}\nvpcgw log: ${gw.output().slice(-4000)}`).toBe(0);
    // a CHILD_SA rekey every 54-60 s and an IKE SA rekey every 162-180 s, whichever side starts it
    expect(figures.childRekeys).toBeGreaterThanOrEqual(Math.max(1, Math.floor(MINUTES) - 1));
    expect(figures.ikeRekeys).toBeGreaterThanOrEqual(Math.max(0, Math.floor(MINUTES / 3) - 1));
    expect(gw.output()).not.toMatch(/giving up after \d+ retransmits|reached its hard lifetime without a rekey/);
    await waitOnePair(lab, 30_000);
  }, (MINUTES * 60 + 180) * 1000);
});
