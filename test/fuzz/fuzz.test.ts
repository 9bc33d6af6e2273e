// Coverage-guided fuzzing of the native decapsulation entry points (ESP + TSO/GRO code, the
// OpenVPN data channel and its TCP stream framing, the policy stage, and the data-plane engine's
// inbound demux) under AddressSanitizer and UBSan, bounded in time. The ESP run first replays the
// TypeScript encoder's differential vectors as seeds (an ASan pass over valid traffic).
// Needs clang++ and libssl-dev (.ci/run installs them).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/openvpn.js';

const SECONDS = '8';

function fuzz(script: string): { status: number | null; out: string } {
  const r = spawnSync('sh', [join(REPO_ROOT, 'test/fuzz', script), SECONDS], {
    cwd: REPO_ROOT,
    env: { ...process.env, FUZZ_OUT: mkdtempSync(join(tmpdir(), 'vpcgw-fuzz-')) },
    encoding: 'utf8',
    timeout: 240_000,
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function executed(out: string): number {
  const m = /stat::number_of_executed_units:\s*(\d+)/.exec(out);
  return m ? Number(m[1]) : 0;
}

describe('fuzzing the native decap and demux paths under ASan/UBSan', () => {
  it('ESP decap, TSO segmentation and GRO coalescing survive hostile input', () => {
    const r = fuzz('run.sh');
    expect(r.status, r.out.slice(-4000)).toBe(0);
    expect(r.out).not.toMatch(/ERROR: AddressSanitizer|runtime error:/);
    expect(executed(r.out), r.out.slice(-2000)).toBeGreaterThan(10_000);
  }, 300_000);

  it('the OpenVPN data channel survives hostile input', () => {
    const r = fuzz('run-ovpn.sh');
    expect(r.status, r.out.slice(-4000)).toBe(0);
    expect(r.out).not.toMatch(/ERROR: AddressSanitizer|runtime error:/);
    expect(executed(r.out), r.out.slice(-2000)).toBeGreaterThan(10_000);
  }, 300_000);

  it('the OpenVPN TCP stream framing parser gives the packets of the whole-stream definition however the stream is cut', () => {
    const r = fuzz('run-ovpn-tcp.sh');
    expect(r.status, r.out.slice(-4000)).toBe(0);
    expect(r.out).not.toMatch(/ERROR: AddressSanitizer|runtime error:/);
    expect(executed(r.out), r.out.slice(-2000)).toBeGreaterThan(10_000);
  }, 300_000);

  it('the engine\'s OpenVPN-over-TCP entry (framing, in-place decryption, the TUN queue held across chunks) survives hostile streams', () => {
    const r = fuzz('run-tcp-engine.sh');
    expect(r.status, r.out.slice(-4000)).toBe(0);
    expect(r.out).not.toMatch(/ERROR: AddressSanitizer|runtime error:/);
    expect(executed(r.out), r.out.slice(-2000)).toBeGreaterThan(10_000);
  }, 300_000);

  it('the policy stage (ACLs, VPC endpoint NAT, ICMP errors, setPolicy with live flows) survives hostile input and keeps checksums valid', () => {
    const r = fuzz('run-policy.sh');
    expect(r.status, r.out.slice(-4000)).toBe(0);
    expect(r.out).not.toMatch(/ERROR: AddressSanitizer|runtime error:/);
    expect(executed(r.out), r.out.slice(-2000)).toBeGreaterThan(10_000);
  }, 300_000);

  it('the engine\'s inbound demux (ESP, IKE marker, keepalive, SSL P_DATA by peer-id) survives hostile input', () => {
    const r = fuzz('run-inbound.sh');
    expect(r.status, r.out.slice(-4000)).toBe(0);
    expect(r.out).not.toMatch(/ERROR: AddressSanitizer|runtime error:/);
    expect(executed(r.out), r.out.slice(-2000)).toBeGreaterThan(10_000);
  }, 300_000);
});
