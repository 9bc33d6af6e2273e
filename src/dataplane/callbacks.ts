import type { Logger } from '../common/log.js';
import type { Endpoint } from '../common/endpoint.js';
import type { SaEvent } from './data-plane.js';

export type ControlCallback = (pkt: Buffer, from: Endpoint, local: Endpoint) => void;
export type SaEventCallback = (ev: SaEvent) => void;

/** Hands a control packet (IKE on 4500) to every onControl callback; one that throws is logged, the rest still run. */
export function callControlCallbacks(log: Logger, cbs: readonly ControlCallback[], pkt: Buffer, from: Endpoint, local: Endpoint): void {
  for (const cb of cbs) {
    try {
      cb(pkt, from, local);
    } catch (err) {
      log.error({ err }, 'control callback failed');
    }
  }
}

/** Hands an SA lifetime event to every onSaEvent callback; one that throws is logged, the rest still run. */
export function callSaEventCallbacks(log: Logger, cbs: readonly SaEventCallback[], ev: SaEvent): void {
  for (const cb of cbs) {
    try {
      cb(ev);
    } catch (err) {
      log.error({ err }, 'SA event callback failed');
    }
  }
}
