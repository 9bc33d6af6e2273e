import { describe, expect, it } from 'vitest';
import { formatChildSpi, formatIkeSaId, formatIkeSpi } from '../../../src/common/spi.js';
import { formatEndpoint, withFamily } from '../../../src/common/endpoint.js';

describe('how ids print', () => {
  it('child SA: 0x and 8 hex digits, unsigned', () => {
    expect(formatChildSpi(0x1a)).toBe('0x0000001a');
    expect(formatChildSpi(0xc1a2b3d4)).toBe('0xc1a2b3d4');
    expect(formatChildSpi(-1)).toBe('0xffffffff');
  });

  it('IKE SA: spiI/spiR in hex', () => {
    const i = Buffer.from('0102030405060708', 'hex');
    expect(formatIkeSpi(i.subarray(0, 8))).toBe('0102030405060708');
    expect(formatIkeSaId(i, Buffer.alloc(8))).toBe('0102030405060708/0000000000000000');
  });

  it('peer: ip:port, [ip]:port for IPv6; the family from the address text', () => {
    expect(formatEndpoint({ address: '192.0.2.1', port: 4500 })).toBe('192.0.2.1:4500');
    expect(formatEndpoint({ address: '2001:db8::1', port: 500 })).toBe('[2001:db8::1]:500');
    expect(withFamily({ address: '2001:db8::1', port: 500 })).toEqual({ family: 6, address: '2001:db8::1', port: 500 });
    expect(withFamily({ address: '192.0.2.1', port: 500 })).toEqual({ family: 4, address: '192.0.2.1', port: 500 });
  });
});
