// The store at scale, bounded: 1,000 vpn connections created one by one through the HTTPS API of
// a running `vpcgw start` (each one validated and taken live), every one listed once through
// marker pagination, and all of them back after a restart. The figures (create, list and get
// latency, start time) are printed; targets live in bench/api-scale.mjs, not here.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, NsDaemon, seedDataDir, type Netns } from '../helpers/api.js';
import { ensureBuilt, REPO_ROOT } from '../helpers/openvpn.js';
import { hashPassword } from '../../src/gateway/users.js';

const CONNECTIONS = 1000;
const USERS = 10_000;
// TEST FIXTURE ONLY: not a real secret.
const PASSWORD = 'scale-test-fixture-password';

let ns: Netns;
let dir = '';
let dataDir = '';

beforeAll(async () => {
  await ensureBuilt();
  ns = await createNetns('scale');
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-scale-'));
  // the users come with the seed document (the declarative path `vpcgw apply` also takes), one hash for all
  dataDir = seedDataDir(dir, { name: 'scale', tun: 'vgscale', logLevel: 'warn', users: { count: USERS, passwordHash: await hashPassword(PASSWORD) } });
}, 60_000);

afterAll(async () => {
  await ns?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe(`${CONNECTIONS} vpn connections through the API, ${USERS} users in the store`, () => {
  it('are created, listed once each by marker pages, read one by one, and all back after a restart', async () => {
    const d = await NsDaemon.start(ns, { dataDir, label: 'vpcgw-scale' });
    const token = await d.createToken();
    const url = await d.apiUrl();
    const r = await ns.exec(process.execPath, [join(REPO_ROOT, 'bench/api-scale-client.mjs'), url, token, String(CONNECTIONS)], { timeoutMs: 300_000 });
    const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, any>;
    console.log(`[scale] ${JSON.stringify(res)}`);
    expect(res.failures).toEqual([]);
    expect(res.created).toBe(CONNECTIONS);
    expect(res.listed).toBe(CONNECTIONS);
    expect(res.distinct).toBe(CONNECTIONS);
    // the users: listed, read, one more created through the API; no hash ever shown
    const users = await d.api('GET', '/v1/users?limit=2000&offset=9000');
    expect((users.json as { total_count: number }).total_count).toBe(USERS);
    expect((users.json as { items: unknown[] }).items).toHaveLength(1000);
    const one = await d.api('GET', `/v1/users/user${USERS - 1}`);
    expect(one.status).toBe(200);
    expect(one.body).not.toMatch(/scrypt|passwordHash/);
    const t1 = Date.now();
    const added = await d.api('POST', '/v1/users', { name: 'one-more', password: 'another-fixture-password' });
    expect(added.status, added.body).toBe(201);
    console.log(`[scale] one user created through the API with ${USERS} users and ${CONNECTIONS} connections stored: ${Date.now() - t1} ms`);
    const st = await d.status();
    expect(st.connections).toHaveLength(CONNECTIONS);
    expect(st.gateway.routes).toHaveLength(CONNECTIONS);
    expect((await d.stop()).code).toBe(0);

    const t0 = Date.now();
    const again = await NsDaemon.start(ns, { dataDir, label: 'vpcgw-scale-restart', timeoutMs: 60_000 });
    console.log(`[scale] start with ${CONNECTIONS} connections in the store: ${Date.now() - t0} ms to answer status`);
    again.token = token;
    const page = await again.api('GET', '/v1/vpn-connections?limit=1');
    expect((page.json as { total_count: number }).total_count).toBe(CONNECTIONS);
    expect(((await again.api('GET', '/v1/users?limit=1')).json as { total_count: number }).total_count).toBe(USERS + 1);
    expect((await again.status()).connections).toHaveLength(CONNECTIONS);
    expect((await again.stop()).code).toBe(0);
  }, 420_000);
});
