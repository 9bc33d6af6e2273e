// The console's form model against the kinds' real schemas (src/gateway/resources.ts): what the
// browser checks before sending, how form text becomes a request body, and which field a server
// ConfigError names.
import { describe, expect, it } from 'vitest';
import { bodyOf, fieldOfServerError, validate, valuesOf, type Schema } from '../../../src/console/schema.js';
import { KINDS } from '../../../src/gateway/resources.js';

const schemaOf = (kind: string) => KINDS.find((k) => k.kind === kind)!.schema as Schema;

describe('console form model', () => {
  it('a customer gateway: a bad address is named, with every allowed form; a good one passes', () => {
    const s = schemaOf('customer-gateway');
    expect(validate(s, { name: 'dc1', address: '192.0.2.300' })).toEqual({ address: 'must be an IPv4 address, an IPv6 address or "%any"' });
    expect(validate(s, { name: 'dc1', address: '192.0.2.1' })).toEqual({});
    expect(validate(s, { name: 'dc1', address: '%any' })).toEqual({});
    expect(validate(s, { address: '192.0.2.1' })).toEqual({ name: 'is required' });
    expect(validate(s, { name: 'bad name!', address: '192.0.2.1', extra: 1 })).toMatchObject({ name: expect.stringContaining('does not match'), extra: 'is not a known field' });
  });

  it('a VPN connection from form text: lists split, nested fields, empty fields left out, then valid', () => {
    const s = schemaOf('vpn-connection');
    const errors = {};
    const body = bodyOf(s, {
      name: 'dc1-main', customerGateway: 'dc1', localSubnets: '10.2.0.0/16', remoteSubnets: '10.1.0.0/16, 10.3.0.0/16',
      'auth.psk': 'a-long-enough-test-fixture-psk-000', 'ike.proposals': '', startAction: 'none',
    }, '', errors);
    expect(errors).toEqual({});
    expect(body).toEqual({
      name: 'dc1-main', customerGateway: 'dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16', '10.3.0.0/16'],
      auth: { psk: 'a-long-enough-test-fixture-psk-000' }, startAction: 'none',
    });
    expect(validate(s, body)).toEqual({});
    expect(validate(s, { ...body, startAction: 'sometimes' })).toMatchObject({ startAction: expect.stringContaining('must be one of') });
    expect(validate(s, { ...body, localSubnets: [] })).toMatchObject({ localSubnets: expect.stringContaining('at least 1') });
  });

  it('an edit form starts from the view, without write-only fields', () => {
    const s = schemaOf('user');
    const v = valuesOf(s, { name: 'alice', servers: ['p2c', 'p2c-tcp'], disabled: true, password: 'never shown', id: 'x' });
    expect(v).toEqual({ name: 'alice', servers: 'p2c, p2c-tcp', disabled: 'true' });
  });

  it('the field a server ConfigError names (src/common/errors.ts: "config <path>: ...")', () => {
    const known = ['name', 'customerGateway', 'remoteSubnets', 'auth', 'auth.psk', 'ike', 'ike.proposals'];
    expect(fieldOfServerError('config vpnConnections[c1].remoteSubnets[0]: "10.2.5.0/24" is not valid: a customer-side prefix', known)).toBe('remoteSubnets');
    expect(fieldOfServerError('config vpnConnections[c.1].ike.proposals: "x" is not valid: proposals', known)).toBe('ike.proposals');
    expect(fieldOfServerError('config vpnConnections[c1].customerGateway: "nope" is not valid', known)).toBe('customerGateway');
    expect(fieldOfServerError('vpn connection "c1" already exists', known)).toBe(null);
  });
});
