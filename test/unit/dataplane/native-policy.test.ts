// The TypeScript side of the native policy stage: the flat counter layout the addon fills
// (src/native/engine/parse-policy.h) decoded by src/dataplane/native-policy.ts, and the multi-queue
// sum of several queues' counters (src/dataplane/multi-queue.ts).
import { describe, expect, it } from 'vitest';
import { decodePolicyCounters, PolicyCounterReader } from '../../../src/dataplane/native-policy.js';
import { sumPolicyCounters } from '../../../src/dataplane/multi-queue.js';
import { POLICY_DROPS, type PolicyCounters } from '../../../src/vpcep/policy.js';

const D = POLICY_DROPS.length;

function layout(): Float64Array {
  // drops 1..7, flows 5, 2 endpoints, 1 origin
  const a = new Float64Array(D + 3 + 2 * (7 + D) + 2);
  for (let i = 0; i < D; i++) a[i] = i + 1;
  a[D] = 5;
  a[D + 1] = 2;
  a[D + 2] = 1;
  let o = D + 3;
  for (const id of [4, 9]) {
    a.set([id, id + 1, id + 2, id + 3, id + 4, id + 5, id + 6], o);
    a[o + 7 + 2] = id * 10; // endpointDenied
    o += 7 + D;
  }
  a[o] = 77;
  a[o + 1] = 3;
  return a;
}

describe('native policy counters', () => {
  it('decode the flat layout: global drops by name, endpoints in order, aclDenied by origin', () => {
    const c = decodePolicyCounters(layout());
    expect(c.flows).toBe(5);
    expect(c.drops).toEqual(Object.fromEntries(POLICY_DROPS.map((r, i) => [r, i + 1])));
    expect(c.endpoints).toHaveLength(2);
    expect(c.endpoints[1]).toMatchObject({ id: 9, flows: 10, flowsCreated: 11, packetsIn: 12, bytesIn: 13, packetsOut: 14, bytesOut: 15 });
    expect(c.endpoints[1]!.drops.endpointDenied).toBe(90);
    expect(c.endpoints[0]!.drops.endpointNoFlow).toBe(0);
    expect([...c.aclDenied]).toEqual([[77, 3]]);
  });

  it('the reader grows its buffer once when the counters need more room', () => {
    const src = layout();
    const r = new PolicyCounterReader();
    let calls = 0;
    const big = new Float64Array(4000);
    big.set(src);
    big[D + 1] = 200; // 200 endpoints: more than the initial buffer
    const c = r.read((out) => {
      calls++;
      if (out.length < 4000) return 4000;
      out.set(big);
      return 4000;
    });
    expect(calls).toBe(2);
    expect(c.endpoints).toHaveLength(200);
  });

  it('multi-queue: sums drops, flows, endpoints by id and aclDenied by origin', () => {
    const a = decodePolicyCounters(layout());
    const b: PolicyCounters = {
      ...a,
      endpoints: [a.endpoints[1]!],
      aclDenied: new Map([[77, 1], [78, 2]]),
      flows: 1,
    };
    const s = sumPolicyCounters([a, b]);
    expect(s.flows).toBe(6);
    expect(s.drops.aclDenied).toBe(2);
    expect(s.endpoints.map((e) => [e.id, e.packetsIn, e.drops.endpointDenied])).toEqual([[4, 7, 40], [9, 24, 180]]);
    expect(s.aclDenied).toEqual(new Map([[77, 4], [78, 2]]));
    expect(sumPolicyCounters([]).flows).toBe(0);
  });
});
