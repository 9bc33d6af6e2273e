/**
 * Virtual addresses for clients, as the session manager asks for them. Leases are keyed by identity
 * (the certificate CN), so a client that reconnects gets its old address back; the gateway's
 * AddressPool (src/gateway/pools.ts) implements this.
 */
import type { Prefix } from '../../common/ip.js';

export interface ClientLease {
  readonly address: string; // dotted quad
  readonly addressNum: number; // the address as a u32
}

export type LeaseResult = { ok: true; lease: ClientLease } | { ok: false; reason: string };

export interface LeaseProvider {
  /** the client subnet */
  readonly prefix: Prefix;
  /** the server's tunnel address (pushed as route-gateway and ifconfig-local) */
  readonly serverAddress: string;
  readonly netmask: string;
  acquire(identity: string): LeaseResult;
  release(identity: string): unknown;
}
