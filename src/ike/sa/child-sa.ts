import { formatChildSpi } from '../../common/spi.js';
import type { ChildConfig } from '../config/peer-config.js';
import type { Proposal, TrafficSelector } from '../wire/types.js';

/** REKEYED: replaced by a new child; stays installed (inbound) until the peer deletes it. */
export type ChildSaState = 'CREATED' | 'INSTALLED' | 'REKEYED' | 'DELETING' | 'DELETED';

/** The peer's half of a simultaneous rekey: the child its exchange created and the exchange's Ni and Nr. */
export interface RekeyCollision {
  readonly child: ChildSa;
  readonly nonceI: Buffer;
  readonly nonceR: Buffer;
}

/** Runtime state of one CHILD_SA (both directions). Counters live in the data plane. */
export class ChildSa {
  readonly cfg: ChildConfig;
  readonly spiIn: number;
  spiOut = 0;
  state: ChildSaState = 'CREATED';
  proposal: Proposal | null = null;
  localTs: TrafficSelector[] = [];
  remoteTs: TrafficSelector[] = [];
  installedAtMs = 0;
  /** the child that replaced this one in a rekey (its outbound takes over when this one is deleted) */
  successor: ChildSa | null = null;
  // lifetime bookkeeping for rekeys we start (src/ike/rekey-scheduler.ts); 0 = not scheduled yet
  rekeyAtMs = 0;
  expireAtMs = 0;
  /** a rekey after a failed attempt (TEMPORARY_FAILURE etc.); 0 = none */
  retryAtMs = 0;
  /** our rekey of this child is queued or in flight (a peer's rekey of it gets TEMPORARY_FAILURE) */
  rekeying = false;
  /** hard lifetime passed: our DELETE is queued */
  expiring = false;
  /** our CREATE_CHILD_SA rekeying this child is on the wire (a peer's rekey of it now is a collision, RFC 7296 §2.8.1) */
  rekeyInFlight = false;
  /**
   * Set while our rekey of this child is in flight and the peer rekeyed it too (RFC 7296 §2.8.1): the
   * child the peer's exchange created and that exchange's nonces. Our answer decides which new child
   * stays (child-rekey.ts).
   */
  collision: RekeyCollision | null = null;

  constructor(cfg: ChildConfig, spiIn: number) {
    this.cfg = cfg;
    this.spiIn = spiIn;
  }

  get id(): string {
    return formatChildSpi(this.spiIn);
  }
}

export function spiToBuffer(spi: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(spi >>> 0, 0);
  return b;
}

export function spiHex(spi: number): string {
  return (spi >>> 0).toString(16).padStart(8, '0');
}
