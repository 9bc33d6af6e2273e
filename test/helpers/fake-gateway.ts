// A running gateway as the management service sees it (src/gateway/service.ts LiveGateway), in
// memory: it records every config it is handed, reports connections it is told are up as
// ESTABLISHED, and can be made to refuse the next change.
import type { GatewayConfig } from '../../src/gateway/config/index.js';
import type { LiveGateway } from '../../src/gateway/service.js';
import type { ConnectionError, GatewayStatus } from '../../src/gateway/status.js';

export class FakeGateway implements LiveGateway {
  state = 'running';
  applied: GatewayConfig[] = [];
  established = new Set<string>();
  /** connection name → the last error its status reports */
  lastErrors = new Map<string, ConnectionError>();
  failNext: Error | null = null;
  constructor(public config: GatewayConfig) {}
  async applyConfig(next: GatewayConfig): Promise<unknown> {
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      throw e;
    }
    this.applied.push(next);
    this.config = next;
    return {};
  }
  status(): GatewayStatus {
    return {
      gateway: {} as GatewayStatus['gateway'],
      connections: this.config.vpnConnections.map((c) => ({
        name: c.name,
        state: this.established.has(c.name) ? 'ESTABLISHED' : 'CONNECTING',
        children: this.established.has(c.name) ? [{ state: 'INSTALLED', spiIn: '0x1', spiOut: '0x2', bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0 }] : [],
        ...(this.lastErrors.has(c.name) ? { lastError: this.lastErrors.get(c.name)! } : {}),
      })),
      vpnServers: [],
    };
  }
  initiate(): void {}
  terminate(): void {}
}

