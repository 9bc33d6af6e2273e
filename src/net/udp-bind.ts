import type { PacketBatch } from '../common/batch.js';

/**
 * A bound UDP socket with batch-shaped I/O (recvmmsg/sendmmsg underneath in the native backend).
 *
 * Contract:
 * - `start(onBatch)` delivers received datagrams in batches; slot i carries the sender in
 *   `family[i]`, `addr` (16 bytes per slot) and `port[i]`. The batch is valid only during the call.
 * - `send(batch)` sends datagrams 0..count-1, each to its slot's endpoint; returns how many were sent.
 *   On a wildcard bind (0.0.0.0 / ::) the native backend sends each from the local address its
 *   remote last reached us on (src/native/io/pktinfo.h); the in-memory one has a single address.
 *   Transient errors (ICMP unreachable, ENOBUFS) are counted in `stats()`, never thrown, and do not
 *   stop the receive side.
 * - After `close()` no callback fires.
 */
export interface UdpBind {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  start(onBatch: (batch: PacketBatch) => void): void;
  send(batch: PacketBatch): number;
  stats(): UdpStats;
  close(): void;
}

export interface UdpStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  sendErrors: number;
  recvErrors: number;
}
