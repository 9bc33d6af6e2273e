import { ExchangeType } from './wire/constants.js';
import type { IkeSa } from './sa/ike-sa.js';
import type { ChildSa } from './sa/child-sa.js';
import { spiHex } from './sa/child-sa.js';
import type { IkeAction } from './sa/types.js';
import { ChildDeleteTask } from './tasks/child-delete.js';
import { IkeDeleteTask } from './tasks/ike-delete.js';
import { ChildRekeyTask } from './tasks/child-rekey.js';
import { IkeRekeyTask, type IkeRekeyHost } from './tasks/ike-rekey.js';

// Lifetimes of the SAs we hold, modelled on strongSwan's rekey_time/rand_time/life_time: rekey at the configured
// lifetime minus a random 0–10 % jitter (so two peers with equal lifetimes rarely collide), hard
// expiry at lifetime + 10 %: the SA is deleted then if no rekey has replaced it.

/** Rekey jitter as a fraction of the lifetime (0..this). */
export const REKEY_JITTER = 0.1;
/** Hard expiry after the lifetime, as a fraction of it. */
export const HARD_LIFETIME_MARGIN = 0.1;
/** While the IKE SA has other work in flight, an IKE rekey that is due waits this long. */
const IKE_REKEY_DEFER_MS = 1000;

function jitteredRekeyAt(sa: IkeSa, startMs: number, lifetimeSec: number): number {
  const r = sa.ctx.random(4).readUInt32BE(0) / 0x1_0000_0000;
  return startMs + Math.floor(lifetimeSec * 1000 * (1 - REKEY_JITTER * r));
}

function scheduleChild(sa: IkeSa, c: ChildSa): void {
  if (c.rekeyAtMs !== 0 || c.cfg.lifetimeSec <= 0) return;
  c.rekeyAtMs = jitteredRekeyAt(sa, c.installedAtMs, c.cfg.lifetimeSec);
  c.expireAtMs = c.installedAtMs + Math.floor(c.cfg.lifetimeSec * 1000 * (1 + HARD_LIFETIME_MARGIN));
  sa.log.debug({ child: c.id }, `CHILD_SA ${c.cfg.name}{${spiHex(c.spiIn)}_i} rekeys in ${Math.round((c.rekeyAtMs - c.installedAtMs) / 1000)} s, expires in ${Math.round((c.expireAtMs - c.installedAtMs) / 1000)} s`);
}

function scheduleIke(sa: IkeSa): void {
  const life = sa.cfg?.ikeLifetimeSec ?? 0;
  if (sa.rekeyAtMs !== 0 || life <= 0) return;
  sa.rekeyAtMs = jitteredRekeyAt(sa, sa.establishedAtMs, life);
  sa.expireAtMs = sa.establishedAtMs + Math.floor(life * 1000 * (1 + HARD_LIFETIME_MARGIN));
}

/** The earliest moment `checkLifetimes` has work for this SA (Infinity if none). */
export function lifetimeDeadline(sa: IkeSa): number {
  if (sa.state !== 'ESTABLISHED' || sa.expiring) return Infinity;
  scheduleIke(sa);
  let d = Infinity;
  if (sa.rekeyAtMs !== 0) d = sa.rekeying ? sa.expireAtMs : Math.min(sa.expireAtMs, sa.rekeyRetryAtMs || sa.rekeyAtMs);
  for (const c of sa.children) {
    if (c.state !== 'INSTALLED' || c.expiring) continue;
    scheduleChild(sa, c);
    if (c.rekeyAtMs === 0) continue;
    if (c.rekeying) continue; // its answer (or the retransmit budget) comes first
    d = Math.min(d, sa.rekeying ? c.expireAtMs : Math.min(c.expireAtMs, c.retryAtMs || c.rekeyAtMs));
  }
  return d;
}

/**
 * Starts the rekeys and hard-expiry deletes that are due on an established SA. `now` is a function
 * so the tasks read the manager's clock when their answers come.
 */
export function checkLifetimes(sa: IkeSa, now: number, clock: () => number, host: IkeRekeyHost): IkeAction[] {
  if (lifetimeDeadline(sa) > now) return [];
  const out: IkeAction[] = [];
  if (sa.rekeyAtMs !== 0 && now >= sa.expireAtMs) {
    sa.expiring = true;
    sa.log.warn({}, `IKE_SA ${sa.cfg?.name ?? ''}[${sa.id}] reached its hard lifetime without a rekey: deleting it`);
    out.push(...sa.queueExchange(ExchangeType.INFORMATIONAL, [new IkeDeleteTask(sa, clock, 'hard IKE lifetime expired')], now));
    return out;
  }
  for (const c of [...sa.children]) {
    if (c.state !== 'INSTALLED' || c.expiring || c.rekeyAtMs === 0) continue;
    // a rekey in flight settles first (its answer replaces the child, or a failure lets it expire next tick)
    if (now >= c.expireAtMs && !c.rekeying) {
      c.expiring = true;
      sa.log.warn({ child: c.id }, `CHILD_SA ${c.cfg.name}{${spiHex(c.spiIn)}_i ${spiHex(c.spiOut)}_o} reached its hard lifetime without a rekey: deleting it`);
      out.push(...sa.queueExchange(ExchangeType.INFORMATIONAL, [new ChildDeleteTask(sa, c.spiIn)], now));
    } else if (!c.rekeying && !sa.rekeying && now >= (c.retryAtMs || c.rekeyAtMs)) {
      out.push(...startChildRekey(sa, c, now, clock));
    }
  }
  if (sa.state === 'ESTABLISHED' && sa.rekeyAtMs !== 0 && !sa.rekeying && now >= (sa.rekeyRetryAtMs || sa.rekeyAtMs)) {
    if (sa.busy || sa.children.some((c) => c.rekeying)) {
      // one thing at a time: children and their DELETEs settle on this SA before it is replaced
      sa.rekeyRetryAtMs = now + IKE_REKEY_DEFER_MS;
    } else {
      out.push(...startIkeRekey(sa, now, clock, host));
    }
  }
  return out;
}

/** What the data plane reports about one ESP SA of a child (src/dataplane/data-plane.ts SaEventKind). */
export type ChildVolumeEvent = 'soft' | 'hard' | 'seq-exhausted';

/**
 * One ESP SA of an installed child crossed a volume limit (ChildSaParams.limits): the soft limit
 * (or outbound sequence numbers used up, RFC 4303 §3.3.3) makes the rekey due now, the hard limit
 * makes the child expire now. Both then go through checkLifetimes like the time-based limits, so a
 * rekey in flight, a retry delay after a failed rekey or an IKE rekey under way are honoured the
 * same way; a hard limit reached while our rekey is in flight waits for its answer.
 */
export function childVolumeReached(sa: IkeSa, c: ChildSa, kind: ChildVolumeEvent, now: number, clock: () => number, host: IkeRekeyHost): IkeAction[] {
  if (sa.state !== 'ESTABLISHED' || c.state !== 'INSTALLED' || c.expiring || !sa.children.includes(c)) return [];
  scheduleChild(sa, c);
  const name = `CHILD_SA ${c.cfg.name}{${spiHex(c.spiIn)}_i ${spiHex(c.spiOut)}_o}`;
  if (kind === 'hard') {
    sa.log.warn({ child: c.id }, `${name} reached its hard byte/packet limit${c.rekeying ? ' while its rekey is in flight' : ''}`);
    c.expireAtMs = now;
    if (c.rekeyAtMs === 0) c.rekeyAtMs = now;
  } else {
    if (c.rekeying) return [];
    sa.log.info({ child: c.id, reason: kind }, `${name} ${kind === 'soft' ? 'reached its soft byte/packet limit' : 'used up its sequence numbers'}: rekeying`);
    c.rekeyAtMs = c.rekeyAtMs === 0 ? now : Math.min(c.rekeyAtMs, now);
    if (c.expireAtMs === 0) c.expireAtMs = Infinity;
  }
  return checkLifetimes(sa, now, clock, host);
}

/**
 * Queues our rekey of one CHILD_SA (RFC 7296 §2.8): CREATE_CHILD_SA with N(REKEY_SA). The lifetime
 * check above and an operator's rekey (IkeManager.rekey) both start it here.
 */
export function startChildRekey(sa: IkeSa, c: ChildSa, now: number, clock: () => number): IkeAction[] {
  c.rekeying = true;
  c.retryAtMs = 0;
  return sa.queueExchange(ExchangeType.CREATE_CHILD_SA, [new ChildRekeyTask(sa, clock, c)], now);
}

/** Queues our rekey of the IKE SA itself (RFC 7296 §1.3.2, §2.18); the same two callers. */
export function startIkeRekey(sa: IkeSa, now: number, clock: () => number, host: IkeRekeyHost): IkeAction[] {
  sa.rekeying = true;
  sa.rekeyRetryAtMs = 0;
  return sa.queueExchange(ExchangeType.CREATE_CHILD_SA, [new IkeRekeyTask(sa, host, clock)], now);
}
