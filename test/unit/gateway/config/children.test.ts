// vpnConnections[].children, mode route and routes (src/gateway/config/sections.ts) and the IKE
// config graph built from them (src/gateway/peer-configs.ts).
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError } from '../../../../src/common/errors.js';
import { formatPrefix } from '../../../../src/common/ip.js';
import { parseConfig } from '../../../../src/gateway/config/index.js';
import { peerConfigsFrom } from '../../../../src/gateway/peer-configs.js';

const PSK = 'correct-horse-battery'; // test fixture

function base(conn: Record<string, unknown>): any {
  return {
    gateway: { name: 'gw1', dataDir: './var', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'] },
    customerGateways: [{ name: 'dc1', address: '192.0.2.1', id: '192.0.2.1' }],
    vpnConnections: [{ name: 'dc1-main', customerGateway: 'dc1', auth: { psk: PSK }, ...conn }],
  };
}

const TWO_CHILDREN = {
  esp: { proposals: 'aes128gcm16', lifetime: '1h' },
  children: [
    { name: 'app', localSubnets: ['10.2.0.0/24'], remoteSubnets: ['10.1.0.0/24'] },
    { name: 'db', localSubnets: ['10.2.1.0/24', '10.2.2.0/24'], remoteSubnets: ['10.1.1.0/24', '10.1.2.0/24'], esp: { proposals: 'aes256gcm16', lifetime: '30m' } },
  ],
};

function parse(obj: unknown) {
  return parseConfig(stringify(obj), '/etc/vpcgw/test.yaml');
}

function configError(obj: unknown): ConfigError {
  try {
    parse(obj);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('vpnConnections[].children', () => {
  it('reads each child with its subnets and ESP settings (the connection\'s esp by default)', () => {
    const cfg = parse(base(TWO_CHILDREN));
    const c = cfg.vpnConnections[0]!;
    expect(c.mode).toBe('policy');
    expect(c.children.map((x) => x.name)).toEqual(['app', 'db']);
    expect(c.children[0]!.esp.proposals).toBe('aes128gcm16');
    expect(c.children[1]!.esp.proposals).toBe('aes256gcm16');
    expect(c.children[1]!.esp.lifetimeSec).toBe(1800);
    // the connection-wide view: every child's subnets (TUN routes, endpoint checks)
    expect(c.remoteSubnets.map((p) => p.text)).toEqual(['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24']);
    const [peer] = peerConfigsFrom(cfg);
    expect(peer!.children).toHaveLength(2);
    expect(peer!.children[1]!.localTs.map(formatPrefix)).toEqual(['10.2.1.0/24', '10.2.2.0/24']);
    expect(peer!.children[1]!.remoteTs.map(formatPrefix)).toEqual(['10.1.1.0/24', '10.1.2.0/24']);
    expect(peer!.children[1]!.lifetimeSec).toBe(1800);
    expect(peer!.children[0]!.routes).toBeUndefined();
  });

  it('the single-child fields still mean one child named after the connection', () => {
    const cfg = parse(base({ localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16', '10.3.0.0/16'] }));
    const c = cfg.vpnConnections[0]!;
    expect(c.children.map((x) => x.name)).toEqual(['dc1-main']);
    const [peer] = peerConfigsFrom(cfg);
    expect(peer!.children.map((x) => x.name)).toEqual(['dc1-main']);
    expect(peer!.children[0]!.remoteTs.map(formatPrefix)).toEqual(['10.1.0.0/16', '10.3.0.0/16']);
  });

  it.each([
    ['children and localSubnets at once', { ...TWO_CHILDREN, localSubnets: ['10.2.0.0/16'] }, 'vpnConnections[0].localSubnets', '10.2.0.0/16', /has children/],
    ['children and remoteSubnets at once', { ...TWO_CHILDREN, remoteSubnets: ['10.1.0.0/16'] }, 'vpnConnections[0].remoteSubnets', '10.1.0.0/16', /has children/],
    ['neither subnets nor children', {}, 'vpnConnections[0].localSubnets', undefined, /or children/],
    ['only localSubnets', { localSubnets: ['10.2.0.0/16'] }, 'vpnConnections[0].remoteSubnets', undefined, /customer-side/],
    ['a child name twice', { children: [TWO_CHILDREN.children[0], { ...TWO_CHILDREN.children[1], name: 'app' }] }, 'vpnConnections[0].children[1].name', 'app', /not used before/],
    ['a child local subnet outside the VPC', { children: [{ ...TWO_CHILDREN.children[0], localSubnets: ['10.9.0.0/24'] }] },
      'vpnConnections[0].children[0].localSubnets[0]', '10.9.0.0/24', /inside gateway.vpcSubnets/],
    ['a child remote subnet inside the VPC', { children: [{ ...TWO_CHILDREN.children[0], remoteSubnets: ['10.2.9.0/24'] }] },
      'vpnConnections[0].children[0].remoteSubnets[0]', '10.2.9.0/24', /take over VPC traffic/],
    ['the same remote subnet on two children', { children: [TWO_CHILDREN.children[0], { ...TWO_CHILDREN.children[1], remoteSubnets: ['10.1.0.0/24'] }] },
      'vpnConnections[0].children[1].remoteSubnets[0]', '10.1.0.0/24', /app/],
    ['no child to start on an initiating connection', { startAction: 'start', children: [{ ...TWO_CHILDREN.children[0], startAction: 'none' }] },
      'vpnConnections[0].children', undefined, /startAction "start"/],
    ['a bad child ESP proposal', { children: [{ ...TWO_CHILDREN.children[0], esp: { proposals: 'nonsense' } }] },
      'vpnConnections[0].children[0].esp.proposals', 'nonsense', undefined],
    ['routes without mode route', { localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'], routes: ['10.5.0.0/16'] },
      'vpnConnections[0].routes', '10.5.0.0/16', /mode route/],
  ] as const)('%s is a ConfigError naming the field and value', (_name, conn, path, value, why) => {
    const e = configError(base(conn));
    expect(e.path).toBe(path);
    if (value !== undefined) expect(e.message).toContain(value);
    if (why) expect(e.message).toMatch(why);
  });
});

describe('mode route', () => {
  const ROUTE = { mode: 'route', routes: ['10.1.0.0/16', '10.3.0.0/16'], esp: { proposals: 'aes128gcm16' } };

  it('is one child 0.0.0.0/0 === 0.0.0.0/0 whose outbound SA the routes lead to', () => {
    const cfg = parse(base(ROUTE));
    const c = cfg.vpnConnections[0]!;
    expect(c.mode).toBe('route');
    expect(c.remoteSubnets.map((p) => p.text)).toEqual(['10.1.0.0/16', '10.3.0.0/16']);
    const [peer] = peerConfigsFrom(cfg);
    expect(peer!.children).toHaveLength(1);
    const child = peer!.children[0]!;
    expect(child.name).toBe('dc1-main');
    expect(child.localTs.map(formatPrefix)).toEqual(['0.0.0.0/0']);
    expect(child.remoteTs.map(formatPrefix)).toEqual(['0.0.0.0/0']);
    expect(child.routes!.map(formatPrefix)).toEqual(['10.1.0.0/16', '10.3.0.0/16']);
  });

  it('policy stays the default', () => {
    expect(parse(base({ localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'] })).vpnConnections[0]!.mode).toBe('policy');
  });

  it.each([
    ['without routes', { mode: 'route' }, 'vpnConnections[0].routes', undefined, /required with mode route/],
    ['with remoteSubnets', { ...ROUTE, remoteSubnets: ['10.1.0.0/16'] }, 'vpnConnections[0].remoteSubnets', '10.1.0.0/16', /0\.0\.0\.0\/0/],
    ['with children', { ...ROUTE, children: TWO_CHILDREN.children }, 'vpnConnections[0].children', 'app,db', /routes/],
    ['a route inside the VPC', { ...ROUTE, routes: ['10.2.3.0/24'] }, 'vpnConnections[0].routes[0]', '10.2.3.0/24', /take over VPC traffic/],
    ['an unknown mode', { ...ROUTE, mode: 'tunnel' }, 'vpnConnections[0].mode', 'tunnel', undefined],
  ] as const)('%s is a ConfigError naming the field and value', (_name, conn, path, value, why) => {
    const e = configError(base(conn));
    expect(e.path).toBe(path);
    if (value !== undefined) expect(e.message).toContain(value);
    if (why) expect(e.message).toMatch(why);
  });

  it('the same prefix routed by two connections is refused, naming the second', () => {
    const cfg = base(ROUTE);
    cfg.vpnConnections.push({ name: 'dc1-backup', customerGateway: 'dc1', auth: { psk: PSK }, mode: 'route', routes: ['10.3.0.0/16'] });
    const e = configError(cfg);
    expect(e.path).toBe('vpnConnections[1].routes[0]');
    expect(e.message).toMatch(/dc1-main/);
  });
});
