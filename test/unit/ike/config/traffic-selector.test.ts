import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../../src/common/errors.js';
import { formatPrefix, parsePrefix, type Prefix } from '../../../../src/common/ip.js';
import { narrow, prefixToTs, tsIntersect, tsToPrefixes, tsToString, tsWithin } from '../../../../src/ike/config/traffic-selector.js';
import { PayloadType, TsType } from '../../../../src/ike/wire/constants.js';
import * as ts from '../../../../src/ike/wire/payloads/ts.js';

const P = (t: string): Prefix => parsePrefix(t)!;
const hx = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('traffic selectors for IPv6 (RFC 7296 §3.13.1 TS_IPV6_ADDR_RANGE)', () => {
  // TSi for local_ts = 10.1.0.0/16,fd00:1::/64 (strongSwan's order): two selectors, any protocol and port
  const TSI_V4_V6 = hx(`02000000
    07 00 0010 0000 ffff 0a010000 0a01ffff
    08 00 0028 0000 ffff fd000001000000000000000000000000 fd00000100000000ffffffffffffffff`);

  it('a /64 becomes a 40-byte selector; IPv4 and IPv6 selectors in one payload round-trip byte for byte', () => {
    const v6 = prefixToTs(P('fd00:1::/64'));
    expect(v6.tsType).toBe(TsType.TS_IPV6_ADDR_RANGE);
    expect(v6.startAddr.toString('hex')).toBe('fd000001000000000000000000000000');
    expect(v6.endAddr.toString('hex')).toBe('fd00000100000000ffffffffffffffff');
    const payload = { type: PayloadType.TSi as const, selectors: [prefixToTs(P('10.1.0.0/16')), v6] };
    const out = Buffer.alloc(ts.encodedLength(payload));
    expect(ts.encode(payload, out, 0)).toBe(4 + 16 + 40);
    expect(out).toEqual(TSI_V4_V6);
    const decoded = ts.decode(TSI_V4_V6, 0, PayloadType.TSi);
    expect(decoded.selectors.map(tsToString)).toEqual(['10.1.0.0/16', 'fd00:1::/64']);
    const again = Buffer.alloc(ts.encodedLength(decoded));
    ts.encode(decoded, again, 0);
    expect(again).toEqual(TSI_V4_V6);
  });

  it('a selector whose length does not fit its type is a ParseError (40 bytes claimed as IPv4, 16 as IPv6)', () => {
    const v6in16 = hx('01000000 08 00 0010 0000 ffff 0a010000 0a01ffff');
    expect(() => ts.decode(v6in16, 0, PayloadType.TSi)).toThrow(ParseError);
    const v4in40 = Buffer.concat([hx('01000000 07 00 0028 0000 ffff'), Buffer.alloc(32)]);
    expect(() => ts.decode(v4in40, 0, PayloadType.TSi)).toThrow(ParseError);
    // an IPv6 selector cut short inside its ending address
    const cut = Buffer.concat([hx('01000000 08 00 0028 0000 ffff'), Buffer.alloc(20)]);
    expect(() => ts.decode(cut, 0, PayloadType.TSr)).toThrow(ParseError);
  });

  it('narrowing works per family: IPv4 meets IPv4, IPv6 meets IPv6, never across', () => {
    const proposed = [prefixToTs(P('0.0.0.0/0')), prefixToTs(P('::/0'))];
    const policy = [prefixToTs(P('10.2.0.0/16')), prefixToTs(P('fd00:2::/48'))];
    expect(narrow(proposed, policy).map(tsToString)).toEqual(['10.2.0.0/16', 'fd00:2::/48']);
    expect(tsIntersect(prefixToTs(P('::/0')), prefixToTs(P('10.2.0.0/16')))).toBeNull();
    // the peer proposes only IPv6, wider than ours: only the IPv6 part remains
    expect(narrow([prefixToTs(P('fd00::/16'))], policy).map(tsToString)).toEqual(['fd00:2::/48']);
    // the peer proposes an IPv6 subnet inside ours: it stays as proposed
    expect(narrow([prefixToTs(P('fd00:2:0:7::/64'))], policy).map(tsToString)).toEqual(['fd00:2:0:7::/64']);
    // disjoint IPv6: nothing (the responder answers TS_UNACCEPTABLE)
    expect(narrow([prefixToTs(P('fd00:9::/48'))], policy)).toEqual([]);
  });

  it('the initiator accepts an IPv6 answer only inside what it proposed', () => {
    const ours = [prefixToTs(P('10.1.0.0/16')), prefixToTs(P('fd00:1::/48'))];
    expect(tsWithin(prefixToTs(P('fd00:1:0:5::/64')), ours)).toBe(true);
    expect(tsWithin(prefixToTs(P('fd00::/16')), ours)).toBe(false);
    expect(tsWithin(prefixToTs(P('fd00:1::/48')), [prefixToTs(P('10.0.0.0/8'))])).toBe(false);
  });

  it('an IPv6 range that is no prefix becomes the covering prefixes (routes and SPD)', () => {
    const r = { ...prefixToTs(P('fd00::/128')), startAddr: hx('fd000000000000000000000000000001'), endAddr: hx('fd000000000000000000000000000006') };
    expect(tsToPrefixes(r).map(formatPrefix)).toEqual(['fd00::1/128', 'fd00::2/127', 'fd00::4/127', 'fd00::6/128']);
    expect(tsToString(r)).toBe('fd00::1..fd00::6');
    expect(tsToPrefixes(prefixToTs(P('::/0'))).map(formatPrefix)).toEqual(['::/0']);
  });
});
