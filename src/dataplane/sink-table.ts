import type { Logger } from '../common/log.js';
import type { PacketSink } from '../common/packet-sink.js';

/**
 * The packet sinks (SSL VPN sessions) a data plane routes to, by index, and which of them were pushed
 * to in the current batch. Every backend keeps one: routes name a sink by its index here, packets are
 * pushed one by one, and each touched sink is flushed once at the end of the batch.
 *
 * A sink that throws is logged and the batch goes on (a bug in one session must not stop the others).
 */
export class SinkTable {
  private readonly sinks: PacketSink[] = [];
  private readonly touched: boolean[] = [];
  private anyTouched = false;

  constructor(private readonly log: Logger) {}

  /** The sink's index, added on first use. Control path. */
  indexOf(sink: PacketSink): number {
    let idx = this.sinks.indexOf(sink);
    if (idx < 0) {
      idx = this.sinks.length;
      this.sinks.push(sink);
      this.touched.push(false);
    }
    return idx;
  }

  /** Per packet: hands `buf[off, off+len)` to sink `idx` (valid during the call only). False: no such sink. */
  push(idx: number, buf: Buffer, off: number, len: number): boolean {
    const s = this.sinks[idx];
    if (s === undefined) return false;
    try {
      s.push(buf, off, len);
    } catch (err) {
      this.log.error({ err }, 'packet sink push failed');
    }
    this.touched[idx] = true;
    this.anyTouched = true;
    return true;
  }

  /** Once per batch: flushes every sink pushed to since the last flush. */
  flush(): void {
    if (!this.anyTouched) return;
    this.anyTouched = false;
    for (let i = 0; i < this.sinks.length; i++) {
      if (!this.touched[i]) continue;
      this.touched[i] = false;
      try {
        this.sinks[i]!.flush();
      } catch (err) {
        this.log.error({ err }, 'packet sink flush failed');
      }
    }
  }
}
