import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { prefixContains } from '../../../src/common/ip.js';
import type { Prefix } from '../../../src/common/ip.js';
import { innerIpLength, policyAllows, Route, selectorsContain, Spd } from '../../../src/esp/spd.js';
import { Sad } from '../../../src/esp/sad.js';
import { ipv4Packet, ipv6Packet, P, saPair, SUITES } from './packets.js';

describe('selectors', () => {
  it('selectorsContain agrees with prefixContains (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }), (net, addr, len) => {
        const p = P(`${net.join('.')}/32`);
        const masked: Prefix = { family: 4, len, bytes: Buffer.from(p.bytes.map((b, i) => (len - i * 8 >= 8 ? b : len - i * 8 <= 0 ? 0 : b & (0xff << (8 - (len - i * 8)))))) };
        const buf = Buffer.concat([Buffer.alloc(3), Buffer.from(addr)]);
        expect(selectorsContain([masked], buf, 3, 4)).toBe(prefixContains(masked, Buffer.from(addr)));
      }),
      { numRuns: 500 },
    );
  });

  it('never matches across families', () => {
    const b = Buffer.alloc(16);
    expect(selectorsContain([P('0.0.0.0/0')], b, 0, 16)).toBe(false);
    expect(selectorsContain([P('::/0')], b, 0, 4)).toBe(false);
    expect(selectorsContain([P('::/0'), P('0.0.0.0/0')], b, 0, 4)).toBe(true);
  });

  it('policyAllows checks src and dst against the right side', () => {
    const { out, inb } = saPair(SUITES[0]!);
    expect(policyAllows(out, ipv4Packet('10.1.2.3', '10.2.3.4'), 0, false)).toBe(true);
    expect(policyAllows(out, ipv4Packet('10.2.3.4', '10.1.2.3'), 0, false)).toBe(false);
    expect(policyAllows(inb, ipv4Packet('10.1.2.3', '10.2.3.4'), 0, true)).toBe(true);
    expect(policyAllows(inb, ipv6Packet('fd01::5', 'fd02::5'), 0, true)).toBe(true);
    expect(policyAllows(inb, ipv6Packet('fd02::5', 'fd01::5'), 0, true)).toBe(false);
  });

  it('innerIpLength validates v4/v6 headers', () => {
    expect(innerIpLength(ipv4Packet('1.1.1.1', '2.2.2.2', 60), 0, 60)).toBe(60);
    expect(innerIpLength(ipv4Packet('1.1.1.1', '2.2.2.2', 60), 0, 59)).toBe(-1);
    expect(innerIpLength(ipv6Packet('::1', '::2', 60), 0, 70)).toBe(60);
    expect(innerIpLength(Buffer.from([0x50, 0, 0, 0]), 0, 4)).toBe(-1);
    const badIhl = ipv4Packet('1.1.1.1', '2.2.2.2', 60);
    badIhl[0] = 0x44;
    expect(innerIpLength(badIhl, 0, 60)).toBe(-1);
  });
});

describe('Spd (LPM on the inner destination) and Sad', () => {
  it('picks the longest prefix, per family, and forgets removed routes', () => {
    const spd = new Spd();
    spd.set(P('10.0.0.0/8'), new Route(1, -1));
    spd.set(P('10.2.0.0/16'), new Route(2, -1));
    spd.set(P('fd02::/64'), new Route(-1, 0));
    expect(spd.lookup(ipv4Packet('10.1.0.1', '10.2.9.9'), 0)!.outSpi).toBe(2);
    expect(spd.lookup(ipv4Packet('10.1.0.1', '10.3.9.9'), 0)!.outSpi).toBe(1);
    expect(spd.lookup(ipv4Packet('10.1.0.1', '11.0.0.1'), 0)).toBeUndefined();
    expect(spd.lookup(ipv6Packet('fd01::1', 'fd02::77'), 0)!.sinkIndex).toBe(0);
    expect(spd.remove(P('10.2.0.0/16'))).toBe(true);
    expect(spd.lookup(ipv4Packet('10.1.0.1', '10.2.9.9'), 0)!.outSpi).toBe(1);
  });

  it('Sad keeps directions apart and returns replaced SAs', () => {
    const sad = new Sad();
    const { out, inb } = saPair(SUITES[0]!);
    expect(sad.add(out)).toBeUndefined();
    expect(sad.add(inb)).toBeUndefined();
    expect(sad.get(0xc0ffee01, 'in')).toBe(inb);
    expect(sad.get(0xc0ffee01, 'out')).toBe(out);
    const again = saPair(SUITES[0]!).inb;
    expect(sad.add(again)).toBe(inb);
    expect(sad.remove(0xc0ffee01, 'in')).toBe(again);
    expect(sad.get(0xc0ffee01, 'in')).toBeUndefined();
    expect(sad.outboundCount).toBe(1);
  });

  it('refuses SPI 0 and mismatched outer address families', () => {
    expect(() => saPair(SUITES[0]!, { spi: 0 })).toThrow(expect.objectContaining({ code: 'ERR_SA' }));
    expect(() => saPair(SUITES[0]!, { remoteAddr: '2001:db8::1' })).toThrow(expect.objectContaining({ code: 'ERR_SA' }));
  });
});
