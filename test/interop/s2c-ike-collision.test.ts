// Simultaneous IKE SA rekeys through `vpcgw start`, with the REAL strongSwan 5.9.8 as the customer
// gateway (RFC 7296 §2.8.1, last part; src/ike/tasks/ike-rekey.ts):
// 1. `vpcgw rekey NAME --ike` alone: a new IKE SA, the CHILD_SA moves to it unchanged.
// 2. `vpcgw rekey NAME --ike` and `swanctl --rekey --ike` at once, the crossing made certain with
//    nftables (strongSwan's IKE packets to us are held back while both requests are outstanding):
//    both sides see the collision, the nonces decide, and afterwards there is exactly one IKE SA on
//    both sides, the same one, holding the same CHILD_SA pair, while a ping at 5/s loses nothing.
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR, waitForPing } from '../helpers/netns.js';
import { run, sleep, waitFor } from '../helpers/proc.js';
import { VPCGW_CLI } from '../helpers/vpcgw.js';
import { controlCall } from '../../src/gateway/control.js';
import { backgroundPing, count, ikeMatch, nft, startRekeyLab, waitOnePair, type RekeyLab } from '../helpers/s2c-rekey-lab.js';

let lab: RekeyLab | null = null;

afterEach(async () => {
  await lab?.stop();
  lab = null;
});

describe('IKE SA rekey collisions against strongSwan', () => {
  it('vpcgw rekey --ike and swanctl --rekey --ike at once: one IKE SA on both sides, its CHILD_SA intact, pings never stop', async () => {
    lab = await startRekeyLab({ tag: 'ikecol', initiator: 'site' });
    const { topo, gw, sw, conn } = lab;
    await sw.initiate();
    await waitForPing(topo, 'siteHost', ADDR.vpcHost);
    const first = await waitOnePair(lab, 20_000);

    // `vpcgw rekey NAME --ike` as users run it (no collision): a new IKE SA, the same child
    const r0 = await run(process.execPath, [VPCGW_CLI, 'rekey', conn, '--ike', '--control', gw.controlPath], { timeoutMs: 10_000 });
    expect(r0.stdout).toMatch(/IKE SA rekeying/);
    const plain = await waitFor(async () => {
      const p = await waitOnePair(lab!, 20_000);
      return p.gwIkeSa !== first.gwIkeSa ? p : undefined;
    }, { timeoutMs: 20_000, intervalMs: 250, what: 'the rekeyed IKE SA on both sides' });
    expect(plain.gwChildren).toEqual(first.gwChildren);
    expect(gw.output()).not.toMatch(/IKE_SA rekey collision/);

    const pinger = backgroundPing(topo, 20, 5);
    // The collision made certain, in this order: strongSwan's IKE packets to us are dropped in the
    // site's namespace (UDP 500, and 4500 with the non-ESP marker: ESP goes on); strongSwan sends its
    // rekey request (lost); ours reaches strongSwan while its own is outstanding (it sees the
    // collision; its answer is lost); the block goes; strongSwan's retransmitted request reaches us
    // while ours is outstanding (we see the collision), and our retransmission gets its cached answer.
    const theirRequests = () => count(sw.log(), /generating CREATE_CHILD_SA request \d+ \[ SA No KE \]/);
    const ourRequests = () => count(sw.log(), /detected IKE_REKEY collision with IKE_REKEY[\s\S]*?generating CREATE_CHILD_SA response \d+ \[ SA No KE \]/);
    const [theirs0, ours0] = [theirRequests(), ourRequests()];
    await nft(topo, 'siteGw', `table inet vgikecol {\n  chain out { type filter hook output priority 0; ${ikeMatch('dport').map((m) => `${m} drop;`).join(' ')} }\n}\n`);
    let theirs: Promise<unknown> = Promise.resolve();
    try {
      theirs = sw.swanctl(['--rekey', '--ike', sw.connName], { timeoutMs: 30_000, allowFail: true });
      await waitFor(async () => theirRequests() > theirs0, { timeoutMs: 10_000, intervalMs: 50, what: 'strongSwan to send its IKE rekey request' });
      await controlCall(gw.controlPath, 'rekey', { name: conn, sa: 'ike' });
      await waitFor(async () => ourRequests() > ours0, { timeoutMs: 10_000, intervalMs: 50, what: 'strongSwan to answer our IKE rekey request' });
      await sleep(300); // its answer has left (and been dropped)
    } finally {
      await nft(topo, 'siteGw', 'delete table inet vgikecol\n');
    }
    await theirs;
    await waitFor(async () => /IKE_SA rekey collision (won|lost)/.test(gw.output()), { timeoutMs: 30_000, intervalMs: 200, what: 'vpcgw to resolve the IKE SA rekey collision' })
      .catch((err: Error) => {
        throw new Error(`${err.message}\nvpcgw log: ${gw.output().slice(-5000)}\ncharon log: ${sw.log().slice(-5000)}`);
      });
    // both sides saw both halves and resolved it the same way: one of them won
    const out = gw.output();
    expect(out).toMatch(/IKE_SA rekey collision: the peer rekeyed/);
    const weWon = /IKE_SA rekey collision won/.test(out);
    expect(sw.log()).toMatch(weWon ? /IKE_SA rekey collision lost/ : /IKE_SA rekey collision won/);
    // exactly one IKE SA on both sides (the redundant one deleted, the old one deleted), the same
    // one, new, and the CHILD_SA pair from before on it
    const after = await waitOnePair(lab, 30_000);
    expect(after.gwIkeSa).not.toBe(plain.gwIkeSa);
    expect(after.gwChildren).toEqual(first.gwChildren);
    expect(sw.log()).not.toMatch(/received (NO_PROPOSAL_CHOSEN|INVALID_KE_PAYLOAD|INVALID_IKE_SPI)/);
    expect(out).not.toMatch(/giving up after|peer does not answer/);
    // the ping ran across it all and lost nothing: the children were never touched
    const p = await pinger.result();
    expect(p.transmitted).toBeGreaterThan(50);
    expect(p.received, `ping: ${JSON.stringify(p)}`).toBe(p.transmitted);
    // and it stays so: nothing was left to time out
    await sleep(2000);
    const later = await waitOnePair(lab, 5000);
    expect(later.gwIkeSa).toBe(after.gwIkeSa);
  }, 90_000);
});
