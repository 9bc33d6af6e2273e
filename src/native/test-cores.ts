/**
 * The test-only addon (build/Release/vpcgw_native_test.node, from src/native/testing): one ESP SA
 * direction, one OpenVPN data-channel session and the policy stage outside any data plane, driven directly by the
 * differential tests (test/unit/native) and the micro benchmarks (bench/micro). Production code
 * never loads it; the production addon (loader.ts) does not contain these cores.
 */
import { requireAddon, type NativeEspSaConfig } from './loader.js';

/** One direction of an SA outside any data plane: the native ESP core (src/native/core/esp.h). */
export interface NativeEspCore {
  /** in place; span receives [off, len, eventBits]; returns a DropReason */
  encap(buf: Buffer, off: number, len: number, limit: number, span: Uint32Array): number;
  decap(buf: Buffer, off: number, len: number, span: Uint32Array): number;
  encapBatch(buf: Buffer, off: Uint32Array, len: Uint32Array, count: number, slotSize: number): number;
  decapBatch(buf: Buffer, off: Uint32Array, len: Uint32Array, count: number, slotSize: number): number;
  /** out: bytes, packets, seq, flags (1 soft, 2 hard, 4 seq exhausted), drops by reason */
  counters(out: Float64Array): void;
}

/** What EspCore's constructor reads: the SA fields the data plane's installSa takes too. */
export type NativeEspCoreParams = NativeEspSaConfig;

/** One OpenVPN data-channel session outside any data plane (src/native/core/ovpn.h). */
export interface NativeOvpnCore {
  setKey(keyId: number, cipher: number, encKey: Buffer, encIv: Buffer, decKey: Buffer, decIv: Buffer, initialSendPacketId?: number): void;
  retireKey(keyId: number): void;
  setCompression(mode: number): void;
  compression(): number;
  /** in place: the payload at buf[off, off+len) becomes a P_DATA_V2 packet at span [off, len]; returns an OVPN_* result */
  encrypt(buf: Buffer, off: number, len: number, limit: number, nowMs: number, ping: boolean, span: Uint32Array): number;
  /** in place: returns an OVPN_* result; for OVPN_IP / OVPN_OCC the payload is at span [off, len] */
  decrypt(buf: Buffer, off: number, len: number, nowMs: number, span: Uint32Array): number;
  /** out: rxPackets, rxBytes, txPackets, txBytes, pingsIn, pingsOut, drops by OVPN_* code */
  counters(out: Float64Array): void;
}

/**
 * The data path's policy stage outside any data plane (src/native/core/policy.h); `policy` is a
 * DataPathPolicy of src/vpcep/policy.ts (typed loosely here: src/native imports only common).
 * src/dataplane/native-policy.ts wraps it as a PolicyStageApi.
 */
export interface NativePolicyCore {
  setPolicy(policy: object, now: number): void;
  /** a verdict: 0 pass (maybe rewritten in place), else 1 + the index of the drop reason */
  inbound(buf: Uint8Array, off: number, len: number, origin: number, now: number): number;
  outbound(buf: Uint8Array, off: number, len: number, now: number): number;
  /** returns how many flows it removed */
  expire(now: number): number;
  /** fills `out` when it is large enough; returns the number of doubles the counters need */
  counters(out: Float64Array): number;
}

export interface NativeTestAddon {
  readonly testAbi: number;
  EspCore: new (p: NativeEspCoreParams) => NativeEspCore;
  OvpnCore: new (peerId: number, replayBacktrackMs?: number) => NativeOvpnCore;
  PolicyCore: new () => NativePolicyCore;
}

let cached: NativeTestAddon | undefined;

/** Loads vpcgw_native_test.node once; VpnError ERR_NATIVE_UNAVAILABLE when it is not built. */
export function loadNativeTestCores(): NativeTestAddon {
  if (!cached) cached = requireAddon('vpcgw_native_test.node', process.env.VPCGW_NATIVE_TEST) as NativeTestAddon;
  return cached;
}

/** Builds a standalone native OpenVPN data-channel session (differential tests, micro benchmarks). */
export function createNativeOvpnCore(peerId: number, replayBacktrackMs = 15_000): NativeOvpnCore {
  return new (loadNativeTestCores().OvpnCore)(peerId, replayBacktrackMs);
}
