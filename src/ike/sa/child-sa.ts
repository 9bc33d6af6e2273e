import type { ChildConfig } from '../config/peer-config.js';
import type { Proposal, TrafficSelector } from '../wire/types.js';

/** REKEYED: replaced by a new child; stays installed (inbound) until the peer deletes it. */
export type ChildSaState = 'CREATED' | 'INSTALLED' | 'REKEYED' | 'DELETING' | 'DELETED';

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

  constructor(cfg: ChildConfig, spiIn: number) {
    this.cfg = cfg;
    this.spiIn = spiIn;
  }

  get id(): string {
    return `0x${this.spiIn.toString(16).padStart(8, '0')}`;
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
