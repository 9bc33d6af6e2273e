/**
 * Virtual address pools for SSL VPN clients (topology subnet), in the shape of strongSwan's mem_pool
 * (src/libcharon/attributes/mem_pool.c): leases are keyed by identity; a released lease goes "offline"
 * but stays reserved for that identity, so a reconnecting user gets the same address back as long as
 * nobody else needed it. Addresses never used are handed out first; only when those run out are offline
 * leases of other identities reused (oldest release first). With every address online, `acquire` refuses
 * with the reason 'address pool exhausted' (counted).
 *
 * Layout of a `clientCidr` like 10.8.0.0/24: .0 network, .1 the server (gateway side of the tunnel,
 * pushed as route-gateway), .2 … .254 clients, .255 broadcast.
 *
 * Static addresses (users[].staticAddress): an identity with one always gets that address, and the
 * pool never hands it to anyone else (never-used addresses skip it; an offline lease of someone else
 * on it is dropped when the reservation is set). `setStatic` replaces the reservations live and names
 * the identities online on an address that is now someone else's, or away from their own: the server
 * ends those sessions so they reconnect to the right address.
 */
import { ConfigError } from '../common/errors.js';
import { bytesToIp, parsePrefix, type Prefix } from '../common/ip.js';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';

export const POOL_EXHAUSTED = 'address pool exhausted';

/** Frozen pool config (built from a vpnServers entry). */
export interface PoolConfig {
  readonly name: string;
  readonly cidr: string; // e.g. "10.8.0.0/24"
}

export interface Lease {
  readonly identity: string;
  readonly address: string; // dotted quad
  readonly addressNum: number; // the address as a u32
  online: boolean;
}

export type AcquireResult = { ok: true; lease: Lease; reused: boolean } | { ok: false; reason: string };

export interface PoolStats {
  size: number;
  online: number;
  offline: number;
  refusals: number;
}

export class AddressPool {
  readonly name: string;
  readonly prefix: Prefix;
  /** the server's (gateway-side) tunnel address: the first host address */
  readonly serverAddress: string;
  readonly netmask: string;
  /** how many client addresses the pool holds */
  readonly size: number;
  private readonly base: number; // network address as u32
  private readonly first: number; // first client address
  private nextUnused: number; // addresses >= this were never handed out
  private readonly byIdentity = new Map<string, Lease>();
  private readonly byAddress = new Map<number, Lease>();
  /** offline leases in release order (oldest first); Map keeps insertion order */
  private readonly offline = new Map<string, Lease>();
  private refusals = 0;
  private readonly log: Logger;
  /** static reservations: identity → address (u32), and the reverse */
  private staticByIdentity = new Map<string, number>();
  private staticByAddress = new Map<number, string>();
  /** never-used addresses passed over while reserved; handed out once their reservation goes */
  private readonly skipped = new Set<number>();
  private readonly unreserved: number[] = [];

  constructor(cfg: PoolConfig, log: Logger = silentLogger) {
    const p = parsePrefix(cfg.cidr);
    if (!p || p.family !== 4) throw new ConfigError(`pool ${cfg.name}.cidr`, cfg.cidr, 'an IPv4 network in CIDR form, host bits zero');
    if (p.len > 29) throw new ConfigError(`pool ${cfg.name}.cidr`, cfg.cidr, 'a prefix of /29 or shorter (room for the server and clients)');
    this.name = cfg.name;
    this.prefix = p;
    this.base = p.bytes.readUInt32BE(0);
    const total = 2 ** (32 - p.len);
    this.first = this.base + 2;
    this.size = total - 3; // minus network, server, broadcast
    this.nextUnused = this.first;
    this.serverAddress = numToIp(this.base + 1);
    this.netmask = numToIp(p.len === 0 ? 0 : (0xffffffff << (32 - p.len)) >>> 0);
    this.log = log.child({ pool: cfg.name });
  }

  /**
   * Gives `identity` an address: its existing lease (online or offline) if it has one, else a never-used
   * address, else the oldest offline lease of another identity. An identity already online gets the same
   * lease again (the caller is replacing that identity's old session).
   */
  acquire(identity: string): AcquireResult {
    const fixed = this.staticByIdentity.get(identity);
    if (fixed !== undefined) return this.acquireStatic(identity, fixed);
    const own = this.byIdentity.get(identity);
    if (own) {
      const reused = !own.online;
      own.online = true;
      this.offline.delete(identity);
      if (reused) this.log.info({ user: identity, address: own.address }, 'lease reacquired');
      return { ok: true, lease: own, reused: true };
    }
    let addr: number;
    while (this.nextUnused < this.first + this.size && this.staticByAddress.has(this.nextUnused)) this.skipped.add(this.nextUnused++);
    if (this.unreserved.length > 0) {
      addr = this.unreserved.pop()!;
    } else if (this.nextUnused < this.first + this.size) {
      addr = this.nextUnused++;
    } else {
      // the oldest offline lease not on a static address (those stay their owner's)
      let oldest: IteratorResult<Lease> = { done: true, value: undefined };
      for (const l of this.offline.values()) {
        if (!this.staticByAddress.has(l.addressNum)) {
          oldest = { done: false, value: l };
          break;
        }
      }
      if (oldest.done) {
        this.refusals++;
        this.log.warn({ user: identity, size: this.size }, POOL_EXHAUSTED);
        return { ok: false, reason: POOL_EXHAUSTED };
      }
      const victim = oldest.value;
      this.offline.delete(victim.identity);
      this.byIdentity.delete(victim.identity);
      this.byAddress.delete(victim.addressNum);
      addr = victim.addressNum;
    }
    return { ok: true, lease: this.grant(identity, addr), reused: false };
  }

  private grant(identity: string, addr: number): Lease {
    const lease: Lease = { identity, address: numToIp(addr), addressNum: addr, online: true };
    this.byIdentity.set(identity, lease);
    this.byAddress.set(addr, lease);
    this.log.info({ user: identity, address: lease.address }, 'lease granted');
    return lease;
  }

  /** The identity's static address; refused only while another identity is still online on it. */
  private acquireStatic(identity: string, addr: number): AcquireResult {
    const own = this.byIdentity.get(identity);
    if (own && own.addressNum === addr) {
      own.online = true;
      this.offline.delete(identity);
      return { ok: true, lease: own, reused: true };
    }
    if (own) this.forget(own); // a lease from before the reservation
    const holder = this.byAddress.get(addr);
    if (holder) {
      if (holder.online) {
        this.refusals++;
        this.log.warn({ user: identity, address: holder.address, holder: holder.identity }, 'static address still in use');
        return { ok: false, reason: `static address ${holder.address} in use` };
      }
      this.forget(holder);
    }
    return { ok: true, lease: this.grant(identity, addr), reused: false };
  }

  private forget(lease: Lease): void {
    this.offline.delete(lease.identity);
    this.byIdentity.delete(lease.identity);
    if (this.byAddress.get(lease.addressNum) === lease) this.byAddress.delete(lease.addressNum);
  }

  /**
   * Replaces the static reservations (identity → dotted quad; addresses outside the client range
   * are ignored: the config allows an address inside any of a user's servers' pools). Offline leases
   * in the way are dropped. Returns the identities online on an address they may no longer hold
   * (someone else's static address, or not their own static address): their sessions must end.
   */
  setStatic(reservations: ReadonlyMap<string, string>): string[] {
    const byIdentity = new Map<string, number>();
    const byAddress = new Map<number, string>();
    for (const [identity, text] of reservations) {
      const p = parsePrefix(`${text}/32`);
      if (!p || p.family !== 4) continue;
      const n = p.bytes.readUInt32BE(0);
      if (n < this.first || n >= this.first + this.size) continue;
      byIdentity.set(identity, n);
      byAddress.set(n, identity);
    }
    this.staticByIdentity = byIdentity;
    this.staticByAddress = byAddress;
    for (const n of [...this.skipped]) {
      if (byAddress.has(n)) continue;
      this.skipped.delete(n);
      this.unreserved.push(n);
    }
    for (let i = this.unreserved.length - 1; i >= 0; i--) {
      if (byAddress.has(this.unreserved[i]!)) this.skipped.add(this.unreserved.splice(i, 1)[0]!);
    }
    const misplaced: string[] = [];
    for (const lease of [...this.byIdentity.values()]) {
      const reservedFor = byAddress.get(lease.addressNum);
      const mine = byIdentity.get(lease.identity);
      const wrong = (reservedFor !== undefined && reservedFor !== lease.identity) || (mine !== undefined && mine !== lease.addressNum);
      if (!wrong) continue;
      if (lease.online) misplaced.push(lease.identity);
      else this.forget(lease);
    }
    return misplaced;
  }

  /** Takes the identity's lease offline (it stays reserved for a reconnect while free). */
  release(identity: string): boolean {
    const lease = this.byIdentity.get(identity);
    if (!lease || !lease.online) return false;
    lease.online = false;
    const reservedFor = this.staticByAddress.get(lease.addressNum);
    if (reservedFor !== undefined && reservedFor !== identity) {
      // it sat on an address reserved since: give it back now
      this.forget(lease);
      this.log.info({ user: identity, address: lease.address }, 'lease released');
      return true;
    }
    this.offline.set(identity, lease);
    this.log.info({ user: identity, address: lease.address }, 'lease released');
    return true;
  }

  /** The lease holding an address (dotted quad), online or offline. */
  leaseOf(address: string): Lease | undefined {
    const p = parsePrefix(address);
    return p && p.family === 4 ? this.byAddress.get(p.bytes.readUInt32BE(0)) : undefined;
  }

  leaseFor(identity: string): Lease | undefined {
    return this.byIdentity.get(identity);
  }

  stats(): PoolStats {
    return { size: this.size, online: this.byIdentity.size - this.offline.size, offline: this.offline.size, refusals: this.refusals };
  }
}

function numToIp(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return bytesToIp(b);
}
