import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseIp } from '../../../../src/common/ip.js';
import { fakeAddress, natdHash } from '../../../../src/ike/tasks/ike-natd.js';

describe('NAT detection hashes over IPv6 (RFC 7296 §2.23)', () => {
  const spiI = Buffer.from('0102030405060708', 'hex');
  const spiR = Buffer.from('1112131415161718', 'hex');

  it('hashes SPIi | SPIr | the 16-byte address | port', () => {
    const want = createHash('sha1').update(spiI).update(spiR)
      .update(Buffer.from('20010db800ff00000000000000000002', 'hex')).update(Buffer.from([0x01, 0xf4])).digest();
    expect(natdHash(spiI, spiR, { address: '2001:db8:ff::2', port: 500 })).toEqual(want);
    // not the same as the IPv4 hash of the same SPIs
    expect(natdHash(spiI, spiR, { address: '192.0.2.2', port: 500 }).equals(want)).toBe(false);
  });

  it('the faked source address has the SA\'s family', () => {
    const v6 = fakeAddress(Buffer.alloc(16, 0));
    expect(parseIp(v6)!.family).toBe(6);
    expect(v6.startsWith('fd00:')).toBe(true);
    const v4 = fakeAddress(Buffer.alloc(4, 0));
    expect(parseIp(v4)!.family).toBe(4);
    expect(v4).toBe('1.0.0.0');
  });
});
