// An acknowledged change survives kill -9. `vpcgw start` (store-backed, in a namespace of its own)
// takes a stream of creates and updates through the HTTPS API; at a random moment the daemon is
// SIGKILLed, possibly in the middle of a request. After a restart every change the API answered
// with 2xx is there, with its last acknowledged content, and the store is intact.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, NsDaemon, seedDataDir, type Netns } from '../helpers/api.js';
import { sleep } from '../helpers/proc.js';
import { ensureBuilt } from '../helpers/openvpn.js';

const ROUNDS = 4;
const MAX_REQUESTS_PER_ROUND = 60;

let ns: Netns;
let dir = '';
let dataDir = '';

beforeAll(async () => {
  await ensureBuilt();
  ns = await createNetns('k9');
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-k9-'));
  dataDir = seedDataDir(dir, { name: 'k9', tun: 'vgk9' });
}, 60_000);

afterAll(async () => {
  await ns?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the store under kill -9', () => {
  it(`keeps every acknowledged create and update across ${ROUNDS} kills at random moments`, async () => {
    /**
     * name → the addresses it may have now: its last acknowledged one, plus any later write the kill
     * cut short (sent, never answered: it may or may not have landed)
     */
    const acked = new Map<string, string[]>();
    const allowed = (name: string, got: string | undefined): boolean => acked.get(name)!.includes(got ?? '(missing)');
    let token = '';
    for (let round = 0; round < ROUNDS; round++) {
      const d = await NsDaemon.start(ns, { dataDir, label: `vpcgw-k9-r${round}` });
      if (round === 0) token = await d.createToken();
      d.token = token;
      const url = await d.apiUrl();
      // everything acknowledged so far is there
      const list = await d.api('GET', '/v1/customer-gateways?limit=2000', undefined, { url });
      expect(list.status, list.body).toBe(200);
      const got = new Map((list.json as { items: { name: string; address: string }[] }).items.map((i) => [i.name, i.address]));
      for (const [name, addrs] of acked) expect(allowed(name, got.get(name)), `round ${round}: ${name} is ${got.get(name)}, acknowledged ${addrs.join(' or ')}`).toBe(true);
      for (const [name, addr] of got) if (acked.has(name)) acked.set(name, [addr]);

      // a stream of writes, and a SIGKILL at a random moment while it runs
      const killAfterMs = 200 + Math.floor(Math.random() * 1500);
      let stop = false;
      const writer = (async () => {
        for (let i = 0; i < MAX_REQUESTS_PER_ROUND && !stop; i++) {
          const name = `r${round}-${i}`;
          const addr = `198.51.100.${(round * MAX_REQUESTS_PER_ROUND + i) % 250 + 1}`;
          const r = await d.api('POST', '/v1/customer-gateways', { name, address: addr }, { url });
          if (r.status === 201) acked.set(name, [addr]);
          else if (r.status !== 0) throw new Error(`unexpected ${r.status}: ${r.body}`);
          if (stop) break;
          // an update of an earlier one
          const prev = [...acked.keys()][Math.floor(Math.random() * acked.size)];
          if (prev && i % 3 === 0) {
            const newAddr = `203.0.113.${(i % 250) + 1}`;
            acked.set(prev, [...acked.get(prev)!, newAddr]);
            const u = await d.api('PUT', `/v1/customer-gateways/${prev}`, { address: newAddr }, { url });
            if (u.status === 200) acked.set(prev, [newAddr]);
            else if (u.status !== 0) throw new Error(`unexpected ${u.status}: ${u.body}`);
          }
        }
      })();
      await sleep(killAfterMs);
      await d.kill9();
      stop = true;
      await writer.catch(() => undefined);
    }
    const d = await NsDaemon.start(ns, { dataDir, label: 'vpcgw-k9-final' });
    d.token = token;
    const list = await d.api('GET', '/v1/customer-gateways?limit=2000');
    const items = (list.json as { items: { name: string; address: string }[] }).items;
    const got = new Map(items.map((i) => [i.name, i.address]));
    expect(acked.size).toBeGreaterThan(ROUNDS);
    for (const [name, addrs] of acked) expect(allowed(name, got.get(name)), `${name} is ${got.get(name)}, acknowledged ${addrs.join(' or ')}`).toBe(true);
    // nothing but what was asked for (a request the kill cut short may or may not have landed)
    for (const name of got.keys()) expect(name).toMatch(/^r\d+-\d+$/);
    expect((await d.stop()).code).toBe(0);
  }, 240_000);
});
