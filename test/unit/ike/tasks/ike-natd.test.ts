import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { parseIp } from '../../../../src/common/ip.js';
import { checkNatd, fakeAddress, natdHash } from '../../../../src/ike/tasks/ike-natd.js';

// RFC 7296 §2.23: NAT_DETECTION_*_IP data = SHA-1(SPIi | SPIr | IP address | port), the address
// in network order (4 bytes for IPv4, 16 for IPv6) and the port as 2 bytes.
const SPI_I = Buffer.from('0102030405060708', 'hex');
const SPI_R = Buffer.from('1112131415161718', 'hex');

describe('natdHash (RFC 7296 §2.23)', () => {
  it('is SHA-1 over SPIi, SPIr, the address bytes and the port (IPv4)', () => {
    const want = createHash('sha1').update(Buffer.from('0102030405060708' + '1112131415161718' + 'c0000201' + '01f4', 'hex')).digest();
    expect(natdHash(SPI_I, SPI_R, { address: '192.0.2.1', port: 500 })).toEqual(want);
    expect(natdHash(SPI_I, SPI_R, { address: '192.0.2.1', port: 500 }).toString('hex')).toBe(want.toString('hex'));
  });

  it('covers IPv6 addresses as 16 bytes and changes with each input', () => {
    const want = createHash('sha1').update(Buffer.concat([SPI_I, SPI_R, Buffer.from('20010db8000000000000000000000001', 'hex'), Buffer.from([0x11, 0x94])])).digest();
    expect(natdHash(SPI_I, SPI_R, { address: '2001:db8::1', port: 4500 })).toEqual(want);
    const base = natdHash(SPI_I, SPI_R, { address: '192.0.2.1', port: 500 });
    expect(natdHash(SPI_I, SPI_R, { address: '192.0.2.1', port: 4500 })).not.toEqual(base);
    expect(natdHash(SPI_I, SPI_R, { address: '192.0.2.2', port: 500 })).not.toEqual(base);
    expect(natdHash(SPI_I, Buffer.alloc(8), { address: '192.0.2.1', port: 500 })).not.toEqual(base);
    // in IKE_SA_INIT's request SPIr is still zero, and both sides hash with it
    expect(natdHash(SPI_I, Buffer.alloc(8), { address: '192.0.2.1', port: 500 })).toHaveLength(20);
  });
});

describe('checkNatd', () => {
  const peer = { address: '198.51.100.1', port: 500 };
  const us = { address: '192.0.2.2', port: 500 };
  const h = (ep: { address: string; port: number }) => natdHash(SPI_I, SPI_R, ep);

  it('no NAT: the peer hashed what we see and where it sent to', () => {
    expect(checkNatd(SPI_I, SPI_R, [h(peer)], h(us), peer, us)).toEqual({ peerBehindNat: false, weBehindNat: false });
  });

  it('peer behind a NAT: its source hash (its private address) matches nothing we see', () => {
    const priv = { address: '10.0.0.2', port: 500 };
    expect(checkNatd(SPI_I, SPI_R, [h(priv)], h(us), peer, us)).toEqual({ peerBehindNat: true, weBehindNat: false });
    // a port change alone (a NAPT keeping the address) is a NAT as well
    expect(checkNatd(SPI_I, SPI_R, [h(peer)], h(us), { ...peer, port: 40000 }, us).peerBehindNat).toBe(true);
  });

  it('any one of several source hashes may match (a multi-homed peer sends one per address)', () => {
    expect(checkNatd(SPI_I, SPI_R, [h({ address: '10.9.9.9', port: 500 }), h(peer)], h(us), peer, us).peerBehindNat).toBe(false);
  });

  it('we are behind a NAT: the peer sent to an address that is not ours', () => {
    expect(checkNatd(SPI_I, SPI_R, [h(peer)], h({ address: '203.0.113.9', port: 500 }), peer, us)).toEqual({ peerBehindNat: false, weBehindNat: true });
  });
});

describe('fakeAddress', () => {
  it('the faked source address has the SA\'s family', () => {
    const v6 = fakeAddress(Buffer.alloc(16, 0));
    expect(parseIp(v6)!.family).toBe(6);
    expect(v6.startsWith('fd00:')).toBe(true);
    const v4 = fakeAddress(Buffer.alloc(4, 0));
    expect(parseIp(v4)!.family).toBe(4);
    expect(v4).toBe('1.0.0.0');
  });
});
