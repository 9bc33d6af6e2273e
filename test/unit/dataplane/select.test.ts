// The data-plane chooser (src/dataplane/select.ts) with fake TUN openers: which data plane, the
// fallbacks, VPCGW_DATAPLANE forcing, and exactly one log line per start. The native and
// multi-queue outcomes on real devices are covered by native-data-plane.test.ts,
// multi-queue-daemon.test.ts and test/interop/s2c-vpcgw.test.ts. selectDataPlane on a real TUN needs root.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { fstatSync, openSync } from 'node:fs';
import { captureLogger } from '../../../src/common/log.js';
import { VpnError } from '../../../src/common/errors.js';
import { MemoryUdpNetwork } from '../../../src/net/memory-udp.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { MemoryTun } from '../../../src/tun/memory-tun.js';
import type { OffloadTun } from '../../../src/dataplane/native-data-plane.js';
import { TsDataPlane } from '../../../src/dataplane/ts-data-plane.js';
import {
  dataPlaneModeFromEnv, nativeAddonProblem, openDataPlaneTun, selectDataPlane, tsDataPlane, type DataPlaneTunOpeners,
} from '../../../src/dataplane/select.js';

class Openers implements DataPlaneTunOpeners {
  opened: string[] = [];
  offloadError: Error | null = null;
  mqError: Error | null = null;
  offloadFd = -1;
  openTun(): MemoryTun {
    this.opened.push('tun');
    return new MemoryTun({ name: 'sel0' });
  }
  openOffloadTun(): OffloadTun {
    this.opened.push('offload');
    if (this.offloadError) throw this.offloadError;
    return { fd: this.offloadFd, name: 'sel0', mtu: 1400, vnetHdr: true };
  }
  openMultiQueueTun(queues: number): OffloadTun[] {
    this.opened.push(`mq${queues}`);
    if (this.mqError) throw this.mqError;
    throw new Error('not faked');
  }
}

/** The lines that name a data plane (every chooser line carries a `dataPlane` field). */
function choiceLines(log: ReturnType<typeof captureLogger>): { level: string; msg: string | undefined; obj: Record<string, unknown> }[] {
  return log.lines
    .filter((l) => typeof l.obj === 'object' && l.obj !== null && 'dataPlane' in (l.obj as object))
    .map((l) => ({ level: l.level, msg: l.msg, obj: l.obj as Record<string, unknown> }));
}

const choiceLinesOf = (log: ReturnType<typeof captureLogger>) => choiceLines(log).map((l) => l.msg);
const binds = () => [new MemoryUdpNetwork().bind('192.0.2.2', 4500)];
const nativeAddon = nativeAddonProblem() === null;

describe('openDataPlaneTun', () => {
  it('reads VPCGW_DATAPLANE: ts and native force one, anything else is auto', () => {
    expect(dataPlaneModeFromEnv({ VPCGW_DATAPLANE: 'ts' })).toBe('ts');
    expect(dataPlaneModeFromEnv({ VPCGW_DATAPLANE: 'native' })).toBe('native');
    expect(dataPlaneModeFromEnv({ VPCGW_DATAPLANE: 'fast' })).toBe('auto');
    expect(dataPlaneModeFromEnv({})).toBe('auto');
  });

  it('VPCGW_DATAPLANE=ts: a plain TUN, the TypeScript data plane, one line with the reason', async () => {
    const o = new Openers();
    const log = captureLogger();
    const choice = openDataPlaneTun({ tuns: o, log, mode: 'ts', queues: 2 });
    expect(o.opened).toEqual(['tun']);
    expect(choice.reusePort).toBe(false);
    const started = await choice.start(binds());
    expect(started.kind).toBe('ts');
    expect(started.dataPlane).toBeInstanceOf(TsDataPlane);
    expect(choiceLines(log)).toEqual([
      { level: 'info', msg: 'TypeScript data plane started, as VPCGW_DATAPLANE asks', obj: { dataPlane: 'ts', reason: 'VPCGW_DATAPLANE=ts' } },
    ]);
    started.dataPlane!.close();
  });

  it('a platform without an offload TUN runs the TypeScript data plane and says why', async () => {
    const log = captureLogger();
    const choice = openDataPlaneTun({ tuns: { openTun: () => new MemoryTun({ name: 'sel1' }) }, log, mode: 'auto' });
    const started = await choice.start(binds());
    expect(started.kind).toBe('ts');
    expect(choiceLines(log).map((l) => l.obj.reason)).toEqual(['this platform has no offload TUN']);
    started.dataPlane!.close();
  });

  it.runIf(nativeAddon)('an offload TUN that fails to open falls back to the TypeScript data plane (auto) or is an error (native)', async () => {
    const o = new Openers();
    o.offloadError = new Error('EPERM');
    const log = captureLogger();
    const choice = openDataPlaneTun({ tuns: o, log, mode: 'auto', queues: 1 });
    expect(o.opened).toEqual(['offload', 'tun']);
    const started = await choice.start(binds());
    expect(started.kind).toBe('ts');
    expect(choiceLines(log).map((l) => l.obj.reason)).toEqual(['cannot open an offload TUN: EPERM']);
    started.dataPlane!.close();

    const o2 = new Openers();
    o2.offloadError = new Error('EPERM');
    expect(() => openDataPlaneTun({ tuns: o2, log: captureLogger(), mode: 'native' })).toThrow(VpnError);
    expect(() => openDataPlaneTun({ tuns: o2, log: captureLogger(), mode: 'native' })).toThrow(/native data plane not available: cannot open an offload TUN: EPERM/);
    expect(o2.opened).not.toContain('tun');
  });

  it.runIf(nativeAddon)('a multi-queue TUN that fails to open leaves one queue (no SO_REUSEPORT); fds no data plane took are closed', async () => {
    const o = new Openers();
    o.mqError = new Error('EINVAL');
    o.offloadFd = openSync('/dev/null', 'r');
    const log = captureLogger();
    const choice = openDataPlaneTun({ tuns: o, log, mode: 'auto', queues: 2 });
    expect(o.opened).toEqual(['mq2', 'offload']);
    expect(choice.reusePort).toBe(false);
    expect(choice.tun.name).toBe('sel0');
    // the daemon failed before the data plane started: the offload TUN fd is closed, once
    choice.abandon();
    choice.abandon();
    expect(() => fstatSync(o.offloadFd)).toThrow(/EBADF/);
    expect(choiceLines(log)).toEqual([]);
  });

  it('a factory given by the caller is used over a plain TUN; null runs without a data plane; one line each', async () => {
    const o = new Openers();
    const log = captureLogger();
    const started = await openDataPlaneTun({ tuns: o, log, factory: tsDataPlane }).start(binds());
    expect(o.opened).toEqual(['tun']);
    expect(started.kind).toBe('ts');
    started.dataPlane!.close();
    const none = await openDataPlaneTun({ tuns: o, log, factory: null }).start(binds());
    expect(none).toMatchObject({ dataPlane: null, kind: 'none' });
    expect(choiceLines(log).map((l) => l.obj.dataPlane)).toEqual(['ts', 'none']);
  });
});

describe('selectDataPlane', () => {
  it('falls back to the TypeScript data plane with one clear log line when the devices have no fds', () => {
    const lines = captureLogger();
    const net = new MemoryUdpNetwork();
    const dp2 = selectDataPlane({ tun: new MemoryTun({ name: 'm0' }), binds: [net.bind('192.0.2.1', 4500)], log: lines });
    expect(dp2.backend).toBe('ts');
    const warn = lines.lines.filter((l) => l.level === 'warn');
    expect(warn).toHaveLength(1);
    expect(warn[0]!.msg).toMatch(/native data plane not available.*TypeScript data plane/);
    dp2.close();
  });

  it('picks the native data plane for LinuxTun + NativeUdp', () => {
    const t = LinuxTun.open({ name: `ndps${randomBytes(2).toString('hex')}`, mtu: 1400 });
    const u = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    try {
      const dp3Log = captureLogger();
      const dp3 = selectDataPlane({ tun: t, binds: [u], log: dp3Log });
      expect(dp3.backend).toBe('native');
      expect(choiceLinesOf(dp3Log)).toEqual(['native data plane started']);
      dp3.close();
    } finally {
      t.close();
      u.close();
    }
  });
});
