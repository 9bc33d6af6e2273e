import type { PacketBatch } from '../common/batch.js';

/**
 * A layer-3 TUN device (IFF_TUN | IFF_NO_PI): each packet is one raw IPv4 or IPv6 packet.
 *
 * Contract:
 * - `start(onBatch)` arms readiness polling; every wake-up reads as many packets as are queued (up
 *   to the batch capacity) and calls `onBatch` once. The batch is valid only during the call.
 * - `write(batch)` writes packets 0..count-1 (one packet per write(2)); returns how many were
 *   written. Packets the kernel refuses are counted in `stats().writeErrors`, never thrown.
 * - After `close()` no callback fires and writes return 0.
 */
export interface TunDevice {
  readonly name: string;
  readonly mtu: number;
  start(onBatch: (batch: PacketBatch) => void): void;
  write(batch: PacketBatch): number;
  stats(): TunStats;
  close(): void;
}

export interface TunStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  readBatches: number;
  writeErrors: number;
}
