// Microbenchmark: the TypeScript policy stage (src/vpcep/nat.ts) per packet, with 10,000 live flows.
// Uses the compiled tree: run `npx tsc -p tsconfig.build.json` first, then
//   node bench/micro/policy-stage.mjs [msPerCase=250]
// Each case copies a 64-byte UDP packet into a work buffer (translation is in place; the copy is included)
// and runs one stage call; one core, no I/O. `--trace-gc` should show no scavenges during the cases.
import { PolicyStage } from '../../dist/vpcep/nat.js';
import { ip4ToNumber } from '../../dist/vpcep/policy.js';

const MS = Number(process.argv[2] ?? 250);
const FLOWS = 10_000;
const E = ip4ToNumber('10.2.100.10');
const BACKEND = ip4ToNumber('10.3.0.10');
const CLIENT0 = ip4ToNumber('10.1.0.0');

const stage = new PolicyStage(
  {
    endpoints: [{ id: 1, address: E, open: true, ports: [{ protocol: 17, servicePort: 53, backendAddr: BACKEND, backendPort: 5353 }], origins: [7], sources: [] }],
    acls: [{ origin: 9, rules: [{ family: 4, addr: Uint8Array.from([10, 4, 0, 0]), len: 16, protocol: 6, portLo: 443, portHi: 443 }, { family: 4, addr: Uint8Array.from([10, 2, 0, 0]), len: 16, protocol: 0, portLo: 0, portHi: 65535 }] }],
    limits: { maxFlows: 65_536, tcpEstablishedMs: 7_200_000, tcpTransitoryMs: 60_000, udpMs: 60_000 },
  },
  0,
);

function udp(src, sport, dst, dport) {
  const b = Buffer.alloc(64);
  b[0] = 0x45;
  b.writeUInt16BE(64, 2);
  b[8] = 64;
  b[9] = 17;
  b.writeUInt32BE(src, 12);
  b.writeUInt32BE(dst, 16);
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(dport, 22);
  b.writeUInt16BE(44, 24);
  b.writeUInt16BE(0x1234, 26);
  return b;
}

const queries = [];
const replies = [];
for (let i = 0; i < FLOWS; i++) {
  const q = udp(CLIENT0 + i, 1000 + (i % 50_000), E, 53);
  queries.push(Buffer.from(q));
  stage.inbound(q, 0, q.length, 7, 1);
  replies.push(udp(BACKEND, 5353, E, q.readUInt16BE(20)));
}
const plain = [udp(CLIENT0, 1, ip4ToNumber('10.7.0.1'), 80)];
const aclHit = [udp(CLIENT0, 1, ip4ToNumber('10.2.9.9'), 80)];

function bench(name, pkts, call) {
  const work = Buffer.alloc(64);
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(MS) * 1_000_000n;
  let n = 0;
  let bad = 0;
  for (;;) {
    const p = pkts[n % pkts.length];
    p.copy(work);
    bad += call(work);
    n++;
    if ((n & 1023) === 0 && process.hrtime.bigint() > deadline) break;
  }
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${name.padEnd(34)} ${ns.toFixed(0).padStart(5)} ns/packet  ${(1e3 / ns).toFixed(2)} Mpps${bad ? `  (${bad} drops)` : ''}`);
}

for (let round = 0; round < 2; round++) {
  if (round === 1) console.log('--');
  bench('inbound, no endpoint, no ACL', plain, (b) => stage.inbound(b, 0, 64, 7, 2));
  bench('inbound, ACL (2 rules)', aclHit, (b) => stage.inbound(b, 0, 64, 9, 2));
  bench('outbound, not an endpoint', plain, (b) => stage.outbound(b, 0, 64, 2));
  bench('inbound, endpoint flow translated', queries, (b) => stage.inbound(b, 0, 64, 7, 2));
  bench('outbound, endpoint reply translated', replies, (b) => stage.outbound(b, 0, 64, 2));
}
