/**
 * Placeholder for the gateway's DNS responder (the endpoints' dnsNames, other names forwarded to
 * upstream resolvers). It has the shape the daemon drives (src/gateway/daemon.ts) and answers
 * nothing: no socket is opened. The real responder replaces this file.
 */
import type { Logger } from '../common/log.js';

export class DnsServer {
  private records: ReadonlyMap<string, string> = new Map();

  private constructor() {}

  static start(o: { address: string; port?: number; upstream: readonly string[]; log: Logger }): Promise<DnsServer> {
    o.log.warn({ address: o.address }, 'DNS responder not available in this build: endpoint names are not answered');
    return Promise.resolve(new DnsServer());
  }

  setRecords(records: ReadonlyMap<string, string>): void {
    this.records = new Map(records);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  stats(): Record<string, number> {
    return { records: this.records.size };
  }
}
