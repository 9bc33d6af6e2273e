import type { Logger } from '../common/log.js';
import { formatChildSpi } from '../common/spi.js';
import { SA_EVENT_HARD, SA_EVENT_SEQ_EXHAUSTED, SA_EVENT_SOFT } from '../esp/esp-sa.js';
import type { Endpoint } from '../common/endpoint.js';
import type { SaEvent, SaParams } from './data-plane.js';

/**
 * The lifecycle lines of an ESP SA, the same from every backend: installed/replaced, removed and
 * lifetime events, with the child SA printed by formatChildSpi. Control path only (never per packet).
 */

/** `bindIndex` < 0: no UDP bind owns the SA's local address (an outbound SA then drops NO_BIND). */
export function logSaInstalled(log: Logger, p: SaParams, replaced: boolean, bindIndex: number, alg?: string): void {
  const fields = alg === undefined
    ? { child: formatChildSpi(p.spi), dir: p.direction, peer: `${p.remoteAddr}:${p.remotePort}` }
    : { child: formatChildSpi(p.spi), dir: p.direction, alg, peer: `${p.remoteAddr}:${p.remotePort}` };
  if (p.direction === 'out' && bindIndex < 0) log.warn(fields, 'outbound SA has no UDP bind for its local address');
  log.info(fields, replaced ? 'ESP SA replaced' : 'ESP SA installed');
}

export function logSaRemoved(log: Logger, spi: number, direction: 'in' | 'out', counters: { bytes: number; packets: number } | undefined): void {
  log.info({ child: formatChildSpi(spi), dir: direction, bytes: counters?.bytes, packets: counters?.packets }, 'ESP SA removed');
}

export function logSaEvent(log: Logger, ev: SaEvent): void {
  if (ev.kind === 'peer-moved') return; // the gateway logs the rebinding once, with the old and new endpoint
  log.info({ child: formatChildSpi(ev.spi), dir: ev.direction, kind: ev.kind }, 'ESP SA lifetime event');
}

/**
 * Appends one SaEvent per SA_EVENT_* bit set in `bits` (src/esp/esp-sa.ts; native code reports the
 * same bits), in the order soft, hard, seq-exhausted.
 */
export function pushSaEvents(out: SaEvent[], spi: number, direction: 'in' | 'out', bits: number): void {
  if (bits & SA_EVENT_SOFT) out.push({ spi, direction, kind: 'soft' });
  if (bits & SA_EVENT_HARD) out.push({ spi, direction, kind: 'hard' });
  if (bits & SA_EVENT_SEQ_EXHAUSTED) out.push({ spi, direction, kind: 'seq-exhausted' });
}

/** Appends a 'peer-moved' event (SA_EVENT_PEER_MOVED): inbound SA `spi` now has peer `remote`. */
export function pushPeerMoved(out: SaEvent[], spi: number, remote: Endpoint): void {
  out.push({ spi, direction: 'in', kind: 'peer-moved', remote });
}
