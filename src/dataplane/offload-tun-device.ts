import { IoError } from '../common/errors.js';
import type { PacketBatch } from '../common/batch.js';
import type { TunDevice, TunStats } from '../tun/tun-device.js';
import type { OffloadTun } from './native-data-plane.js';

const NO_STATS: TunStats = Object.freeze({ rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, readBatches: 0, writeErrors: 0 });

/**
 * A TUN opened with the virtio-net header and TSO/checksum offloads for the native data plane, which
 * reads and writes it itself (64 KB TCP super-packets in, coalesced segments out) and closes it on
 * `close()`. The daemon sees it as a TunDevice for its name, MTU and counters only.
 */
export class OffloadTunDevice implements TunDevice, OffloadTun {
  readonly name: string;
  readonly mtu: number;
  readonly fd: number;
  readonly vnetHdr: boolean;
  /** where the counters come from once the data plane runs */
  statsSource: (() => TunStats) | null = null;

  constructor(t: OffloadTun) {
    this.name = t.name;
    this.mtu = t.mtu;
    this.fd = t.fd;
    this.vnetHdr = t.vnetHdr;
  }

  start(_onBatch: (batch: PacketBatch) => void): void {
    throw new IoError(`TUN ${this.name} has offloads on: only the native data plane reads it`);
  }

  write(_batch: PacketBatch): number {
    return 0;
  }

  stats(): TunStats {
    return this.statsSource?.() ?? { ...NO_STATS };
  }

  close(): void {
    // owned by the native data plane (it closes the fd)
  }
}
