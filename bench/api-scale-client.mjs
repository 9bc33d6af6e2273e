// A management API client for scale runs (used by bench/api-scale.mjs and
// test/interop/api-scale.test.ts): creates N vpn connections through the HTTPS API over one
// keep-alive connection, then pages through the list and reads single resources, and prints one
// JSON line with what it saw and how long each step took. Run it where the API listens (inside the
// daemon's network namespace).
//
//   node bench/api-scale-client.mjs URL TOKEN N
import { Agent, request } from 'node:https';

const [url, token, nText] = process.argv.slice(2);
const n = Number(nText);
if (!url || !token || !Number.isInteger(n) || n < 1 || n > 20000) {
  console.error('usage: api-scale-client.mjs URL TOKEN N (1..20000)');
  process.exit(2);
}
const base = new URL(url);
const agent = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = { authorization: `Bearer ${token}` };
    if (payload) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    const r = request({ host: base.hostname, port: base.port, path, method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, json: text ? JSON.parse(text) : null });
      });
    });
    r.setTimeout(60_000, () => r.destroy(new Error(`${method} ${path}: no answer in 60 s`)));
    r.on('error', reject);
    if (payload) r.write(payload);
    r.end();
  });
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { n: s.length, p50: +pct(s, 50).toFixed(2), p99: +pct(s, 99).toFixed(2), max: +s.at(-1).toFixed(2) };
}

const out = { created: 0, createMs: [], failures: [] };
const cgw = await call('POST', '/v1/customer-gateways', { name: 'scale-cgw', address: '192.0.2.1' });
if (cgw.status !== 201 && cgw.status !== 409) throw new Error(`customer gateway: ${cgw.status} ${JSON.stringify(cgw.json)}`);
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  const body = {
    name: `scale-${i}`, customerGateway: 'scale-cgw', localSubnets: ['10.2.0.0/16'],
    // one /24 per connection, from 10.100.0.0 upward: never inside the VPC subnet
    remoteSubnets: [`10.${100 + (i >> 8)}.${i & 255}.0/24`],
    auth: { psk: `scale-test-fixture-psk-${i}` }, startAction: 'none',
  };
  const t = performance.now();
  const r = await call('POST', '/v1/vpn-connections', body);
  out.createMs.push(performance.now() - t);
  if (r.status === 201) out.created++;
  else if (out.failures.length < 5) out.failures.push({ i, status: r.status, body: r.json });
}
const createTotalSec = (performance.now() - t0) / 1000;

// every page of 500 by marker, then single reads
const names = [];
const pageMs = [];
let marker = null;
for (let guard = 0; guard < 1000; guard++) {
  const t = performance.now();
  const r = await call('GET', `/v1/vpn-connections?limit=500${marker ? `&marker=${marker}` : ''}`);
  pageMs.push(performance.now() - t);
  if (r.status !== 200) throw new Error(`list: ${r.status} ${JSON.stringify(r.json)}`);
  names.push(...r.json.items.map((i) => i.name));
  marker = r.json.page_info.next_marker;
  if (!marker) break;
}
const getMs = [];
for (let i = 0; i < Math.min(n, 200); i++) {
  const t = performance.now();
  const r = await call('GET', `/v1/vpn-connections/scale-${(i * 7919) % n}`);
  getMs.push(performance.now() - t);
  if (r.status !== 200) throw new Error(`get: ${r.status}`);
}
agent.destroy();
console.log(JSON.stringify({
  created: out.created,
  failures: out.failures,
  createTotalSec: +createTotalSec.toFixed(1),
  create: stats(out.createMs),
  listPage500: stats(pageMs),
  get: stats(getMs),
  listed: names.length,
  distinct: new Set(names).size,
}));
