import { TransformType } from '../wire/constants.js';
import type { Proposal } from '../wire/types.js';
import type { IkeSa } from '../sa/ike-sa.js';

// When a rekey we started does not go through, the old SA stays and we try again later.
// RFC 7296 §2.25: a peer that is rekeying the same SA itself answers TEMPORARY_FAILURE, and the
// initiator retries after a random delay so the two sides do not collide again (strongSwan's
// child_rekey.c and ike_rekey.c likewise reschedule a collided rekey after a randomized delay).

/** After TEMPORARY_FAILURE (a collision, RFC 7296 §2.25) retry after a random 2–10 s. */
export const REKEY_RETRY_MIN_MS = 2000;
export const REKEY_RETRY_SPAN_MS = 8000;
/** After a refusal (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE, ...) try again this much later (hard expiry may come first). */
export const REKEY_FAILED_RETRY_MS = 30_000;
/** How many INVALID_KE_PAYLOAD answers (RFC 7296 §1.3) a rekey follows before giving up. */
export const MAX_KE_RETRIES = 2;

function randomFraction(sa: IkeSa): number {
  return sa.ctx.random(4).readUInt32BE(0) / 0x1_0000_0000;
}

export function temporaryRetryMs(sa: IkeSa): number {
  return REKEY_RETRY_MIN_MS + Math.floor(randomFraction(sa) * REKEY_RETRY_SPAN_MS);
}

/** Whether any of our proposals offers this DH group (an INVALID_KE_PAYLOAD may only ask for one of them). */
export function isDhOffered(proposals: readonly Proposal[], group: number): boolean {
  return proposals.some((p) => p.transforms.some((t) => t.type === TransformType.DH && t.id === group));
}
