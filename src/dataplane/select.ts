import type { Logger } from '../common/log.js';
import type { UdpBind } from '../net/udp-bind.js';
import type { TunDevice } from '../tun/tun-device.js';
import type { DataPlane } from './data-plane.js';
import { loadNativeDataPlane, NativeDataPlane } from './native-data-plane.js';
import type { FdUdpBind, NativeDataPlaneOptions } from './native-data-plane.js';
import { TsDataPlane } from './ts-data-plane.js';

/**
 * Picks the data plane: the native one when the addon loads, has a data plane, and the devices expose
 * file descriptors (LinuxTun, NativeUdp); otherwise the TypeScript backend, after ONE log line saying
 * why. Shaped like the daemon's DataPlaneFactory: `(io) => DataPlane`.
 *
 * `VPCGW_DATAPLANE=ts` forces the TypeScript backend, `=native` makes a native failure an error.
 */
export interface SelectDataPlaneIo {
  tun: TunDevice;
  binds: readonly UdpBind[];
  log: Logger;
}

export type DataPlaneBackend = 'native' | 'ts';

export interface SelectOptions extends NativeDataPlaneOptions {
  /** 'auto' (default): native if possible; 'ts' or 'native' force one */
  prefer?: 'auto' | DataPlaneBackend;
}

/** Why the native backend cannot serve these devices, or null when it can. */
export function nativeUnavailableReason(tun: TunDevice, binds: readonly UdpBind[]): string | null {
  try {
    loadNativeDataPlane();
  } catch (e) {
    return (e as Error).message;
  }
  if (typeof (tun as { fd?: unknown }).fd !== 'number') return 'the TUN device has no file descriptor (not a LinuxTun)';
  for (const b of binds) {
    if (typeof (b as { fd?: unknown }).fd !== 'number') return 'a UDP bind has no file descriptor (not a NativeUdp)';
  }
  return null;
}

export function selectDataPlane(io: SelectDataPlaneIo, opts: SelectOptions = {}): DataPlane & { readonly backend: DataPlaneBackend } {
  const env = process.env.VPCGW_DATAPLANE;
  const prefer = opts.prefer ?? (env === 'ts' || env === 'native' ? env : 'auto');
  if (prefer !== 'ts') {
    const why = nativeUnavailableReason(io.tun, io.binds);
    if (why === null) {
      try {
        const dp = new NativeDataPlane(io.tun as TunDevice & { fd: number }, io.binds as readonly FdUdpBind[], {
          ...opts,
          logger: opts.logger ?? io.log,
        });
        return Object.assign(dp, { backend: 'native' as const });
      } catch (e) {
        if (prefer === 'native') throw e;
        io.log.warn({ err: e }, `native data plane failed to start (${(e as Error).message}); using the TypeScript data plane`);
      }
    } else {
      if (prefer === 'native') throw new Error(`native data plane not available: ${why}`);
      io.log.warn({ reason: why }, `native data plane not available (${why}); using the TypeScript data plane`);
    }
  }
  const ts = new TsDataPlane(io.tun, io.binds, { logger: io.log });
  return Object.assign(ts, { backend: 'ts' as const });
}

/** A DataPlaneFactory for the daemon: native with TypeScript fallback. */
export const autoDataPlane = (io: SelectDataPlaneIo): DataPlane => selectDataPlane(io);
