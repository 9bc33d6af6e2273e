import type { ChildConfig } from '../config/peer-config.js';

// Volume lifetimes of a CHILD_SA, in strongSwan's terms: the configured bytes/packets are the hard
// limit (life_bytes/life_packets: the SA is unusable past it), and the rekey starts at a soft limit
// below it (rekey_bytes/rekey_packets minus a random part of rand_bytes/rand_packets). Here the soft
// limit is SOFT_VOLUME_FRACTION of the hard one minus up to VOLUME_JITTER of that, so the two peers
// (and the two directions) seldom cross it at the same moment and collide (RFC 7296 §2.8.1).

/** The soft limit before jitter, as a fraction of the hard limit. */
export const SOFT_VOLUME_FRACTION = 0.9;
/** Random reduction of the soft limit, as a fraction of it (0..this). */
export const VOLUME_JITTER = 0.1;

/** Byte and packet limits of one ESP SA; 0 = none. Same field names as the data plane's SaLifetime. */
export interface ChildVolumeLimits {
  readonly softBytes: number;
  readonly hardBytes: number;
  readonly softPackets: number;
  readonly hardPackets: number;
}

export const NO_VOLUME_LIMITS: ChildVolumeLimits = Object.freeze({ softBytes: 0, hardBytes: 0, softPackets: 0, hardPackets: 0 });

function softOf(hard: number, fraction: number): number {
  if (hard <= 0) return 0;
  return Math.max(1, Math.floor(hard * SOFT_VOLUME_FRACTION * (1 - VOLUME_JITTER * fraction)));
}

/**
 * The limits a new CHILD_SA of `cfg` gets (both directions); `random(4)` draws the jitter, one draw
 * per SA so consecutive SAs rekey at different volumes.
 */
export function childVolumeLimits(cfg: ChildConfig, random: (n: number) => Buffer): ChildVolumeLimits {
  const hardBytes = cfg.lifetimeBytes ?? 0;
  const hardPackets = cfg.lifetimePackets ?? 0;
  if (hardBytes <= 0 && hardPackets <= 0) return NO_VOLUME_LIMITS;
  const r = random(4).readUInt32BE(0) / 0x1_0000_0000;
  return Object.freeze({ softBytes: softOf(hardBytes, r), hardBytes: Math.max(0, hardBytes), softPackets: softOf(hardPackets, r), hardPackets: Math.max(0, hardPackets) });
}
