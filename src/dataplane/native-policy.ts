/**
 * The native policy stage's TypeScript side: decoding its counters (one Float64Array the addon fills,
 * layout in src/native/engine/parse-policy.h) into PolicyCounters, and the test-only stage
 * (src/native/testing/policy-core.cc) as a PolicyStageApi, so the same scenarios run against the
 * TypeScript and the C++ stage.
 */
import { VpnError } from '../common/errors.js';
import { loadNativeTestCores } from '../native/test-cores.js';
import type { NativePolicyCore } from '../native/test-cores.js';
import { POLICY_DROPS } from '../vpcep/policy.js';
import type { DataPathPolicy, EndpointCounters, PolicyCounters, PolicyDrop, PolicyLimits, PolicyStageApi } from '../vpcep/policy.js';

/** The largest limits.maxFlows either stage accepts (kMaxFlows in src/native/core/policy.h). */
export const MAX_POLICY_FLOWS = 1 << 24;

/** Throws VpnError ERR_INVALID_ARG for limits out of range, as the TypeScript stage does. */
export function validatePolicyLimits(l: PolicyLimits): void {
  const ok =
    Number.isInteger(l.maxFlows) && l.maxFlows >= 1 && l.maxFlows <= MAX_POLICY_FLOWS &&
    l.tcpEstablishedMs >= 0 && l.tcpTransitoryMs >= 0 && l.udpMs >= 0;
  if (!ok) throw new VpnError('ERR_INVALID_ARG', 'policy limits out of range (maxFlows 1..2^24, timeouts ≥ 0)');
}

/** drops (7), flows, endpoint count, origin count (mirror of kPolicyCounterHead) */
const HEAD = POLICY_DROPS.length + 3;
/** id, flows, flowsCreated, packetsIn, bytesIn, packetsOut, bytesOut, drops (kPolicyEndpointStride) */
const EP_STRIDE = 7 + POLICY_DROPS.length;

function dropsAt(a: Float64Array, off: number): Record<PolicyDrop, number> {
  const out = {} as Record<PolicyDrop, number>;
  for (let i = 0; i < POLICY_DROPS.length; i++) out[POLICY_DROPS[i]!] = a[off + i]!;
  return out;
}

/** Decodes the counters a native stage filled into `a`. */
export function decodePolicyCounters(a: Float64Array): PolicyCounters {
  const nEp = a[POLICY_DROPS.length + 1]!;
  const nOrigins = a[POLICY_DROPS.length + 2]!;
  const endpoints: EndpointCounters[] = [];
  let o = HEAD;
  for (let i = 0; i < nEp; i++, o += EP_STRIDE) {
    endpoints.push({
      id: a[o]!, flows: a[o + 1]!, flowsCreated: a[o + 2]!, packetsIn: a[o + 3]!, bytesIn: a[o + 4]!,
      packetsOut: a[o + 5]!, bytesOut: a[o + 6]!, drops: dropsAt(a, o + 7),
    });
  }
  const aclDenied = new Map<number, number>();
  for (let i = 0; i < nOrigins; i++, o += 2) aclDenied.set(a[o]!, a[o + 1]!);
  return { drops: dropsAt(a, 0), endpoints, aclDenied, flows: a[POLICY_DROPS.length]! };
}

/** Reads counters through `fill` (which returns the doubles needed), growing the buffer once when needed. */
export class PolicyCounterReader {
  private buf = new Float64Array(HEAD + 8 * EP_STRIDE + 32);

  read(fill: (out: Float64Array) => number): PolicyCounters {
    const need = fill(this.buf);
    if (need > this.buf.length) {
      this.buf = new Float64Array(need * 2);
      fill(this.buf);
    }
    return decodePolicyCounters(this.buf);
  }
}

/** The C++ policy stage outside a data plane, as the sans-I/O PolicyStageApi (tests, scenarios). */
export class NativePolicyStage implements PolicyStageApi {
  private readonly core: NativePolicyCore;
  private readonly reader = new PolicyCounterReader();

  constructor() {
    this.core = new (loadNativeTestCores().PolicyCore)();
  }

  setPolicy(p: DataPathPolicy, now: number): void {
    validatePolicyLimits(p.limits);
    this.core.setPolicy(p, now);
  }

  inbound(buf: Uint8Array, off: number, len: number, origin: number, now: number): number {
    return this.core.inbound(buf, off, len, origin, now);
  }

  outbound(buf: Uint8Array, off: number, len: number, now: number): number {
    return this.core.outbound(buf, off, len, now);
  }

  expire(now: number): void {
    this.core.expire(now);
  }

  counters(): PolicyCounters {
    return this.reader.read((out) => this.core.counters(out));
  }
}

/** Builds a standalone native policy stage (needs the test addon, vpcgw_native_test.node). */
export function createNativePolicyStage(): PolicyStageApi {
  return new NativePolicyStage();
}
