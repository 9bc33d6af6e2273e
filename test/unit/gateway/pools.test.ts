import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AddressPool, POOL_EXHAUSTED } from '../../../src/gateway/pools.js';
import { ConfigError } from '../../../src/common/errors.js';
import { captureLogger } from '../../../src/common/log.js';

const ok = (r: ReturnType<AddressPool['acquire']>) => {
  if (!r.ok) throw new Error(r.reason);
  return r.lease.address;
};

describe('AddressPool (topology subnet)', () => {
  it('.1 is the server, clients get .2 upward, netmask from the prefix', () => {
    const p = new AddressPool({ name: 'p2c', cidr: '10.8.0.0/24' });
    expect(p.serverAddress).toBe('10.8.0.1');
    expect(p.netmask).toBe('255.255.255.0');
    expect(p.size).toBe(253);
    expect(ok(p.acquire('alice'))).toBe('10.8.0.2');
    expect(ok(p.acquire('bob'))).toBe('10.8.0.3');
  });

  it('the same user gets the same address back after a disconnect while it is free', () => {
    const p = new AddressPool({ name: 'p2c', cidr: '10.8.0.0/24' });
    const a = ok(p.acquire('alice'));
    ok(p.acquire('bob'));
    p.release('alice');
    ok(p.acquire('carol')); // a never-used address, not alice's
    expect(ok(p.acquire('alice'))).toBe(a);
    // reconnect while still online (session replacement): same lease
    expect(ok(p.acquire('alice'))).toBe(a);
  });

  it('exhaustion: refusal with a clear reason, counted and logged; offline leases are reused oldest first', () => {
    const log = captureLogger();
    const p = new AddressPool({ name: 'small', cidr: '10.9.0.0/29' }, log); // .2 .. .6
    expect(p.size).toBe(5);
    for (let i = 0; i < 5; i++) ok(p.acquire(`u${i}`));
    const r = p.acquire('late');
    expect(r).toEqual({ ok: false, reason: POOL_EXHAUSTED });
    expect(p.stats()).toMatchObject({ online: 5, refusals: 1 });
    expect(log.lines.some((l) => l.msg === POOL_EXHAUSTED && l.level === 'warn')).toBe(true);
    p.release('u3');
    p.release('u1');
    expect(ok(p.acquire('late'))).toBe('10.9.0.5'); // u3 released first
    expect(p.leaseFor('u3')).toBeUndefined(); // its reservation is gone
    expect(ok(p.acquire('u1'))).toBe('10.9.0.3'); // u1 still reserved
  });

  it('rejects unusable networks with a ConfigError', () => {
    expect(() => new AddressPool({ name: 'x', cidr: '10.8.0.1/24' })).toThrow(ConfigError);
    expect(() => new AddressPool({ name: 'x', cidr: '10.8.0.0/30' })).toThrow(ConfigError);
    expect(() => new AddressPool({ name: 'x', cidr: 'fd00::/64' })).toThrow(ConfigError);
  });

  it('property: online addresses are always distinct and inside the pool', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 12 })), { maxLength: 80 }), (ops) => {
        const p = new AddressPool({ name: 't', cidr: '10.1.0.0/29' });
        const online = new Map<string, string>();
        for (const [acq, n] of ops) {
          const id = `u${n}`;
          if (acq) {
            const r = p.acquire(id);
            if (r.ok) online.set(id, r.lease.address);
            else if (online.size < p.size) return false; // refused although room existed
          } else if (p.release(id)) online.delete(id);
        }
        const addrs = [...online.values()];
        return new Set(addrs).size === addrs.length && addrs.every((a) => /^10\.1\.0\.[2-6]$/.test(a));
      }),
    );
  });
});

describe('AddressPool: static addresses', () => {
  it('a user with a static address always gets it; nobody else ever does, not even when the pool runs short', () => {
    const p = new AddressPool({ name: 'p2c', cidr: '10.8.0.0/29' }); // .2 .. .6
    expect(p.setStatic(new Map([['alice', '10.8.0.3'], ['out-of-pool', '10.9.0.5']]))).toEqual([]);
    expect(ok(p.acquire('bob'))).toBe('10.8.0.2');
    expect(ok(p.acquire('carol'))).toBe('10.8.0.4'); // .3 is alice's
    expect(ok(p.acquire('dave'))).toBe('10.8.0.5');
    expect(ok(p.acquire('erin'))).toBe('10.8.0.6');
    // alice's address was never used, yet a fifth dynamic user is refused rather than given it
    expect(p.acquire('frank')).toEqual({ ok: false, reason: POOL_EXHAUSTED });
    expect(ok(p.acquire('alice'))).toBe('10.8.0.3');
    p.release('alice');
    // offline, it stays hers: others do not reuse it, she gets it back
    expect(p.acquire('frank')).toEqual({ ok: false, reason: POOL_EXHAUSTED });
    p.release('bob');
    expect(ok(p.acquire('frank'))).toBe('10.8.0.2');
    expect(ok(p.acquire('alice'))).toBe('10.8.0.3');
  });

  it('setStatic live: offline leases in the way are dropped, online ones on a wrong address are named', () => {
    const p = new AddressPool({ name: 'p2c', cidr: '10.8.0.0/24' });
    ok(p.acquire('alice')); // .2
    ok(p.acquire('bob')); // .3
    ok(p.acquire('carol')); // .4
    p.release('carol');
    // bob now owns alice's address; alice gets carol's (offline: dropped); carol's lease goes
    expect(p.setStatic(new Map([['bob', '10.8.0.2'], ['alice', '10.8.0.4']])).sort()).toEqual(['alice', 'bob']);
    expect(p.leaseFor('carol')).toBeUndefined();
    // alice's session ends (released): her static address is free, she gets it
    p.release('alice');
    p.release('bob');
    expect(ok(p.acquire('bob'))).toBe('10.8.0.2');
    expect(ok(p.acquire('alice'))).toBe('10.8.0.4');
    // a static address someone still holds online is refused until they leave
    ok(p.acquire('dave'));
    const dave = p.leaseFor('dave')!.address;
    expect(p.setStatic(new Map([['bob', '10.8.0.2'], ['alice', '10.8.0.4'], ['erin', dave]]))).toEqual(['dave']);
    expect(p.acquire('erin')).toMatchObject({ ok: false });
    p.release('dave');
    expect(ok(p.acquire('erin'))).toBe(dave);
    expect(ok(p.acquire('dave'))).not.toBe(dave);
  });

  it('an address passed over while reserved is handed out once the reservation goes', () => {
    const p = new AddressPool({ name: 'p2c', cidr: '10.8.0.0/29' }); // .2 .. .6
    p.setStatic(new Map([['alice', '10.8.0.2']]));
    expect(ok(p.acquire('bob'))).toBe('10.8.0.3');
    p.setStatic(new Map());
    expect(ok(p.acquire('carol'))).toBe('10.8.0.2');
    expect(ok(p.acquire('dave'))).toBe('10.8.0.4');
  });
});
