import { describe, expect, it } from 'vitest';
import {
  classifyNattDatagram, IKE_NATT_PORT, IKE_PORT, NAT_KEEPALIVE_BYTE, NATT_ESP, NATT_IKE, NATT_KEEPALIVE, NON_ESP_MARKER_SIZE,
  withNonEspMarker, writeNonEspMarker,
} from '../../../src/common/ipsec-udp.js';

describe('IKE/ESP over UDP (RFC 3948)', () => {
  it('has the RFC values', () => {
    expect([IKE_PORT, IKE_NATT_PORT, NON_ESP_MARKER_SIZE, NAT_KEEPALIVE_BYTE]).toEqual([500, 4500, 4, 0xff]);
  });

  it('tells a keepalive, IKE behind the non-ESP marker and ESP apart, at an offset', () => {
    const b = Buffer.from('ee' + 'ff' + '00000000' + '2120' + 'c0a80001' + '00', 'hex');
    expect(classifyNattDatagram(b, 1, 1)).toBe(NATT_KEEPALIVE);
    expect(classifyNattDatagram(b, 2, 6)).toBe(NATT_IKE);
    expect(classifyNattDatagram(b, 8, 5)).toBe(NATT_ESP);
    // a single byte that is not 0xff, and a 3-byte run of zeros, are not keepalive or IKE
    expect(classifyNattDatagram(b, 0, 1)).toBe(NATT_ESP);
    expect(classifyNattDatagram(b, 2, 3)).toBe(NATT_ESP);
  });

  it('adds the marker in place and into a new buffer', () => {
    const msg = Buffer.from('aabbcc', 'hex');
    expect(withNonEspMarker(msg).toString('hex')).toBe('00000000aabbcc');
    const b = Buffer.alloc(10, 0x55);
    const at = writeNonEspMarker(b, 2);
    expect(at).toBe(6);
    expect(b.toString('hex')).toBe('55550000000055555555');
    expect(classifyNattDatagram(withNonEspMarker(msg), 0, 7)).toBe(NATT_IKE);
  });
});
