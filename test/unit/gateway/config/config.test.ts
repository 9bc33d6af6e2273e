import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { stringify } from 'yaml';
import { ConfigError } from '../../../../src/common/errors.js';
import { formatPrefix } from '../../../../src/common/ip.js';
import { loadConfigFile, parseConfig, parseDurationSec, formatDuration } from '../../../../src/gateway/config/index.js';

const PSK = 'correct-horse-battery';

/** A full, valid config in the documented shape; tests break one field at a time. */
function base(): any {
  return {
    gateway: {
      name: 'gw1',
      dataDir: './var',
      publicAddresses: ['192.0.2.2'],
      vpcSubnets: ['10.2.0.0/16'],
      tun: { name: 'vpcgw0', mtu: 1400 },
      logLevel: 'info',
    },
    customerGateways: [{ name: 'dc1', address: '192.0.2.1', id: '192.0.2.1' }],
    vpnConnections: [
      {
        name: 'dc1-main',
        customerGateway: 'dc1',
        localSubnets: ['10.2.0.0/16'],
        remoteSubnets: ['10.1.0.0/16'],
        auth: { psk: PSK },
        ike: { proposals: 'aes128gcm16-prfsha256-x25519', lifetime: '4h', localId: '192.0.2.2' },
        esp: { proposals: 'aes128gcm16', lifetime: '1h', replayWindow: 1024 },
        startAction: 'start',
        dpd: { interval: '30s' },
      },
    ],
    vpnServers: [
      {
        name: 'p2c',
        protocols: ['udp', 'tcp'],
        port: 1194,
        listen: '0.0.0.0',
        clientCidr: '10.8.0.0/24',
        localSubnets: ['10.2.0.0/16'],
        dnsServers: ['10.2.0.53'],
        dataCiphers: ['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305'],
        auth: { type: 'cert' },
        serverCert: { cert: 'server.crt', key: 'server.key' },
        clientCa: 'ca.crt',
        maxConnections: 100,
        clientToClient: false,
      },
    ],
  };
}

function parse(obj: unknown) {
  return parseConfig(stringify(obj), '/etc/vpcgw/test.yaml');
}

/** Applies `edit` to a valid config and expects a ConfigError naming `path`. */
function rejects(edit: (c: any) => void, path: string, allowed?: RegExp): ConfigError {
  const c = base();
  edit(c);
  let err: unknown;
  try {
    parse(c);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const ce = err as ConfigError;
  expect(ce.path).toBe(path);
  expect(ce.message).toContain(path);
  if (allowed) expect(ce.message).toMatch(allowed);
  return ce;
}

describe('parseConfig: a valid config', () => {
  it('yields typed, frozen objects with seconds, parsed prefixes and the original text', () => {
    const cfg = parse(base());
    expect(cfg.source).toBe('/etc/vpcgw/test.yaml');
    expect(cfg.gateway.name).toBe('gw1');
    expect(cfg.gateway.dataDir).toBe('/etc/vpcgw/var');
    expect(cfg.gateway.publicAddresses.map((a) => a.text)).toEqual(['192.0.2.2']);
    expect(cfg.gateway.vpcSubnets[0]!.text).toBe('10.2.0.0/16');
    expect(formatPrefix(cfg.gateway.vpcSubnets[0]!.prefix)).toBe('10.2.0.0/16');
    expect(cfg.gateway.tun).toEqual({ name: 'vpcgw0', mtu: 1400, address: null });
    const c = cfg.vpnConnections[0]!;
    expect(c.peer.name).toBe('dc1');
    expect(c.peer.address!.text).toBe('192.0.2.1');
    expect(c.ike.lifetimeSec).toBe(4 * 3600);
    expect(c.ike.localId).toBe('192.0.2.2');
    expect(c.esp.lifetimeSec).toBe(3600);
    expect(c.esp.replayWindow).toBe(1024);
    expect(c.dpd).toEqual({ intervalSec: 30, action: 'clear', timeoutSec: 0 });
    expect(c.ike.parsedProposals).toHaveLength(1);
    expect(c.esp.parsedProposals[0]!.transforms.length).toBeGreaterThan(0);
    expect(c.auth.psk!.reveal()).toBe(PSK);
    const s = cfg.vpnServers[0]!;
    expect(s.serverCert.cert).toBe('/etc/vpcgw/server.crt');
    expect(s.clientCa).toBe('/etc/vpcgw/ca.crt');
    expect(s.protocols).toEqual(['udp', 'tcp']);
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.vpnConnections[0]!.localSubnets)).toBe(true);
    expect(() => {
      (cfg.gateway as any).name = 'x';
    }).toThrow(TypeError);
  });

  it('fills defaults for optional fields', () => {
    const cfg = parse({
      gateway: { publicAddresses: ['0.0.0.0'], vpcSubnets: ['10.2.0.0/16'] },
      customerGateways: [{ name: 'any', address: '%any', id: 'fqdn:dc.example.com' }],
      vpnConnections: [{ name: 'c', customerGateway: 'any', localSubnets: ['10.2.1.0/24'], remoteSubnets: ['10.1.0.0/16'], auth: { psk: PSK }, ike: { localId: 'fqdn:gw.example.com' } }],
    });
    expect(cfg.gateway.name).toBe('vpcgw');
    expect(cfg.gateway.tun).toEqual({ name: 'vpcgw0', mtu: 1400, address: null });
    expect(cfg.gateway.logLevel).toBe('info');
    const c = cfg.vpnConnections[0]!;
    expect(c.peer.address).toBeNull();
    expect(c.startAction).toBe('none'); // "%any" cannot be initiated
    expect(c.ike.proposals).toBe('aes128gcm16-prfsha256-x25519');
    expect(c.esp.proposals).toBe('aes128gcm16');
    expect(c.ike.lifetimeSec).toBe(14400);
    expect(c.dpd).toBeNull();
    expect(cfg.vpnServers).toEqual([]);
  });

  it('defaults the customer gateway id to its address and accepts a TUN address with host bits', () => {
    const c = base();
    delete c.customerGateways[0].id;
    c.gateway.tun.address = '169.254.10.1/32';
    const cfg = parse(c);
    expect(cfg.customerGateways[0]!.id).toBe('192.0.2.1');
    expect(cfg.gateway.tun.address!.text).toBe('169.254.10.1/32');
  });
});

describe('durations', () => {
  it.each([
    ['4h', 14400], ['30m', 1800], ['45s', 45], ['1d', 86400], ['1h30m', 5400], [90, 90], ['120', 120],
  ])('%s is %i seconds', (text, sec) => {
    expect(parseDurationSec(text)).toBe(sec);
    const c = base();
    c.vpnConnections[0].ike.lifetime = text;
    expect(parse(c).vpnConnections[0]!.ike.lifetimeSec).toBe(sec);
  });

  it.each(['4x', '', '1.5h', '-3', 'h', '4 h'])('%j is not a duration', (text) => {
    expect(parseDurationSec(text)).toBeNull();
  });

  it('formats seconds back to the shortest exact spelling', () => {
    expect(formatDuration(14400)).toBe('4h');
    expect(formatDuration(5400)).toBe('1h30m');
    expect(formatDuration(45)).toBe('45s');
  });

  it('names the field, the value and the allowed form', () => {
    const e = rejects((c) => (c.vpnConnections[0].ike.lifetime = '4x'), 'vpnConnections[0].ike.lifetime', /duration like 4h/);
    expect(e.message).toContain('"4x"');
    rejects((c) => (c.vpnConnections[0].esp.lifetime = '1s'), 'vpnConnections[0].esp.lifetime', /from 10s/);
    rejects((c) => (c.vpnConnections[0].dpd.interval = '2h'), 'vpnConnections[0].dpd.interval', /to 3600s/);
  });
});

describe('parseConfig: every rule names its field', () => {
  it.each<[string, (c: any) => void, string, RegExp?]>([
    ['unknown top-level key', (c) => (c.vpnConnection = []), 'vpnConnection', /unknown key/],
    ['unknown gateway key (typo)', (c) => (c.gateway.publicAdresses = ['1.2.3.4']), 'gateway.publicAdresses', /allowed here: .*publicAddresses/],
    ['unknown connection key', (c) => (c.vpnConnections[0].startaction = 'start'), 'vpnConnections[0].startaction'],
    ['unknown ike key', (c) => (c.vpnConnections[0].ike.lifetme = '1h'), 'vpnConnections[0].ike.lifetme'],
    ['unknown tun key', (c) => (c.gateway.tun.mtU = 1400), 'gateway.tun.mtU'],
    ['unknown server key', (c) => (c.vpnServers[0].clientcidr = '10.9.0.0/24'), 'vpnServers[0].clientcidr'],
    ['missing gateway', (c) => delete c.gateway, 'gateway', /mapping/],
    ['empty publicAddresses', (c) => (c.gateway.publicAddresses = []), 'gateway.publicAddresses', /at least 1/],
    ['bad public address', (c) => (c.gateway.publicAddresses = ['192.0.2.300']), 'gateway.publicAddresses[0]', /address/],
    ['duplicate public address', (c) => (c.gateway.publicAddresses = ['192.0.2.2', '192.0.2.2']), 'gateway.publicAddresses[1]'],
    ['vpc subnet not a CIDR', (c) => (c.gateway.vpcSubnets = ['10.2.0.0']), 'gateway.vpcSubnets[0]', /CIDR/],
    ['vpc subnet host bits', (c) => (c.gateway.vpcSubnets = ['10.2.0.1/16']), 'gateway.vpcSubnets[0]', /host bits zero/],
    ['vpc subnet reserved', (c) => (c.gateway.vpcSubnets = ['127.0.0.0/16']), 'gateway.vpcSubnets[0]', /127\.0\.0\.0\/8/],
    ['tun name too long', (c) => (c.gateway.tun.name = 'averyveryverylongname'), 'gateway.tun.name', /1-15/],
    ['tun mtu too small', (c) => (c.gateway.tun.mtu = 100), 'gateway.tun.mtu', /576 to 9000/],
    ['tun address not a prefix', (c) => (c.gateway.tun.address = 'tun0'), 'gateway.tun.address'],
    ['log level', (c) => (c.gateway.logLevel = 'verbose'), 'gateway.logLevel', /trace, debug, info/],
    ['gateway name', (c) => (c.gateway.name = 'gw 1'), 'gateway.name', /letters, digits/],
    ['customer gateway address', (c) => (c.customerGateways[0].address = 'dc1.example'), 'customerGateways[0].address', /address/],
    ['%any without id', (c) => {
      c.customerGateways[0].address = '%any';
      delete c.customerGateways[0].id;
    }, 'customerGateways[0].ikeId', /required when address is "%any"/],
    ['duplicate customer gateway', (c) => c.customerGateways.push({ ...c.customerGateways[0] }), 'customerGateways[1].name', /customerGateways\[0\]/],
    ['unknown customer gateway', (c) => (c.vpnConnections[0].customerGateway = 'dc2'), 'vpnConnections[0].customerGateway', /dc1/],
    ['duplicate connection', (c) => c.vpnConnections.push({ ...c.vpnConnections[0], remoteSubnets: ['10.3.0.0/16'] }), 'vpnConnections[1].name'],
    ['local subnet outside the VPC', (c) => (c.vpnConnections[0].localSubnets = ['10.3.0.0/24']), 'vpnConnections[0].localSubnets[0]', /inside gateway.vpcSubnets \(10.2.0.0\/16\)/],
    ['local subnet invalid', (c) => (c.vpnConnections[0].localSubnets = ['10.2.0.0/33']), 'vpnConnections[0].localSubnets[0]'],
    ['no local subnets', (c) => (c.vpnConnections[0].localSubnets = []), 'vpnConnections[0].localSubnets'],
    ['remote subnet inside the VPC', (c) => (c.vpnConnections[0].remoteSubnets = ['10.2.5.0/24']), 'vpnConnections[0].remoteSubnets[0]', /take over VPC traffic/],
    ['remote subnet repeated in a list', (c) => (c.vpnConnections[0].remoteSubnets = ['10.1.0.0/16', '10.1.0.0/16']), 'vpnConnections[0].remoteSubnets[1]'],
    ['remote subnet on two connections', (c) => c.vpnConnections.push({ ...c.vpnConnections[0], name: 'dc1-backup' }), 'vpnConnections[1].remoteSubnets[0]', /dc1-main/],
    ['missing auth', (c) => delete c.vpnConnections[0].auth, 'vpnConnections[0].auth'],
    ['replay window', (c) => (c.vpnConnections[0].esp.replayWindow = -1), 'vpnConnections[0].esp.replayWindow', /0 to 65536/],
    ['start action', (c) => (c.vpnConnections[0].startAction = 'ondemand'), 'vpnConnections[0].startAction', /start, none, trap/],
    ['trap with %any', (c) => { c.customerGateways[0].address = '%any'; c.vpnConnections[0].startAction = 'trap'; }, 'vpnConnections[0].startAction', /"%any"/],
    ['dpd action', (c) => (c.vpnConnections[0].dpd = { interval: '30s', action: 'hold' }), 'vpnConnections[0].dpd.action', /clear, restart, none/],
    ['dpd timeout', (c) => (c.vpnConnections[0].dpd = { interval: '30s', timeout: '0s' }), 'vpnConnections[0].dpd.timeout'],
    ['start action with %any', (c) => (c.customerGateways[0].address = '%any'), 'vpnConnections[0].startAction', /"%any"/],
    ['dpd without interval', (c) => (c.vpnConnections[0].dpd = {}), 'vpnConnections[0].dpd.interval'],
    ['server protocol', (c) => (c.vpnServers[0].protocols = ['udp', 'sctp']), 'vpnServers[0].protocols[1]', /udp, tcp/],
    ['server protocol twice', (c) => (c.vpnServers[0].protocols = ['tcp', 'tcp']), 'vpnServers[0].protocols'],
    ['server port 0', (c) => (c.vpnServers[0].port = 0), 'vpnServers[0].port', /1 to 65535/],
    ['server port 65536', (c) => (c.vpnServers[0].port = 65536), 'vpnServers[0].port', /1 to 65535/],
    ['server port on IKE', (c) => (c.vpnServers[0].port = 4500), 'vpnServers[0].port', /500 and 4500/],
    ['two servers on one port', (c) => c.vpnServers.push({ ...c.vpnServers[0], name: 'p2c-2', clientCidr: '10.9.0.0/24' }), 'vpnServers[1].port'],
    ['listen address', (c) => (c.vpnServers[0].listen = 'any'), 'vpnServers[0].listen'],
    ['client cidr invalid', (c) => (c.vpnServers[0].clientCidr = '10.8.0.0/40'), 'vpnServers[0].clientCidr'],
    ['client cidr link-local', (c) => (c.vpnServers[0].clientCidr = '169.254.8.0/24'), 'vpnServers[0].clientCidr', /169\.254/],
    ['client cidr overlaps local subnets', (c) => (c.vpnServers[0].clientCidr = '10.2.8.0/24'), 'vpnServers[0].clientCidr', /overlap 10.2.0.0\/16/],
    ['client cidr overlaps a remote subnet', (c) => (c.vpnServers[0].clientCidr = '10.0.0.0/8'), 'vpnServers[0].clientCidr', /overlap/],
    ['client pool too small', (c) => (c.vpnServers[0].clientCidr = '10.8.0.0/26'), 'vpnServers[0].clientCidr', /at least 100 client addresses/],
    ['client cidr IPv6', (c) => (c.vpnServers[0].clientCidr = 'fd00::/64'), 'vpnServers[0].clientCidr', /IPv4/],
    ['too many dns servers', (c) => (c.vpnServers[0].dnsServers = ['10.2.0.53', '10.2.0.54', '10.2.0.55']), 'vpnServers[0].dnsServers', /at most 2/],
    ['dns server', (c) => (c.vpnServers[0].dnsServers = ['dns.example']), 'vpnServers[0].dnsServers[0]'],
    ['data cipher', (c) => (c.vpnServers[0].dataCiphers = ['BF-CBC']), 'vpnServers[0].dataCiphers[0]', /AES-256-GCM/],
    ['auth type', (c) => (c.vpnServers[0].auth = { type: 'radius' }), 'vpnServers[0].auth.type', /cert/],
    ['server cert key missing', (c) => delete c.vpnServers[0].serverCert.key, 'vpnServers[0].serverCert.key'],
    ['client CA missing', (c) => delete c.vpnServers[0].clientCa, 'vpnServers[0].clientCa'],
    ['max connections', (c) => (c.vpnServers[0].maxConnections = 0), 'vpnServers[0].maxConnections'],
    ['client to client', (c) => (c.vpnServers[0].clientToClient = 'yes'), 'vpnServers[0].clientToClient', /true or false/],
    ['ike proposal unknown', (c) => (c.vpnConnections[0].ike.proposals = 'aes128gcm16-prfsha256-x25519x'), 'vpnConnections[0].ike.proposals'],
    ['ike proposal without DH', (c) => (c.vpnConnections[0].ike.proposals = 'aes128gcm16-prfsha256'), 'vpnConnections[0].ike.proposals', /DH group/],
    ['esp proposal with prf', (c) => (c.vpnConnections[0].esp.proposals = 'aes128gcm16-prfsha256'), 'vpnConnections[0].esp.proposals'],
    ['empty esp proposal', (c) => (c.vpnConnections[0].esp.proposals = ''), 'vpnConnections[0].esp.proposals'],
    ['duplicate server', (c) => c.vpnServers.push({ ...c.vpnServers[0], port: 1195, clientCidr: '10.9.0.0/24' }), 'vpnServers[1].name'],
  ])('%s', (_title, edit, path, allowed) => {
    rejects(edit, path, allowed);
  });
});

describe('the PSK stays hidden', () => {
  it('a short PSK is reported as (hidden)', () => {
    const e = rejects((c) => (c.vpnConnections[0].auth.psk = 'short7!'), 'vpnConnections[0].auth.psk', /8 to 128 characters/);
    expect(e.message).toContain('(hidden)');
    expect(e.message).not.toContain('short7!');
  });

  it('a PSK written in place of the auth mapping is not echoed', () => {
    const e = rejects((c) => (c.vpnConnections[0].auth = 'my-secret-psk-value'), 'vpnConnections[0].auth');
    expect(e.message).not.toContain('my-secret-psk-value');
  });

  it('a misspelt psk key names the key, not the secret under it', () => {
    const e = rejects((c) => (c.vpnConnections[0].auth = { pks: 'my-secret-psk-value' }), 'vpnConnections[0].auth.pks', /allowed here: psk/);
    expect(e.message).not.toContain('my-secret-psk-value');
  });

  it('a YAML syntax error gives the position but not the line text', () => {
    const text = stringify(base()).replace(`psk: ${PSK}`, `psk: "${PSK}`);
    expect(() => parseConfig(text, 'x.yaml')).toThrow(ConfigError);
    try {
      parseConfig(text, 'x.yaml');
    } catch (e) {
      expect((e as Error).message).toMatch(/line \d+, column \d+/);
      expect((e as Error).message).not.toContain(PSK);
    }
  });

  it('JSON, inspect and string conversion of the config mask the PSK', () => {
    const cfg = parse(base());
    expect(JSON.stringify(cfg)).not.toContain(PSK);
    expect(inspect(cfg, { depth: 10 })).not.toContain(PSK);
    expect(`${cfg.vpnConnections[0]!.auth.psk}`).toBe('(hidden)');
  });
});

describe('YAML handling', () => {
  it('rejects duplicate keys', () => {
    expect(() => parseConfig('gateway:\n  name: a\n  name: b\n', 'dup.yaml')).toThrow(/dup\.yaml \(line 3, column 3\).*unique/);
  });

  it('rejects an empty document', () => {
    expect(() => parseConfig('', 'empty.yaml')).toThrow(ConfigError);
  });
});

describe('loadConfigFile', () => {
  it('reads a file, resolving paths against its folder, and checks the files it names', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpcgw-cfg-'));
    const file = join(dir, 'vpcgw.yaml');
    writeFileSync(file, stringify(base()));
    expect(() => loadConfigFile(file)).toThrow(/vpnServers\[0\]\.serverCert\.cert: .*readable file \(ENOENT\)/);
    for (const f of ['server.crt', 'server.key', 'ca.crt']) writeFileSync(join(dir, f), 'x');
    const cfg = loadConfigFile(file);
    expect(cfg.gateway.dataDir).toBe(join(dir, 'var'));
    expect(cfg.vpnServers[0]!.clientCa).toBe(join(dir, 'ca.crt'));
  });

  it('a missing file is a ConfigError naming it', () => {
    expect(() => loadConfigFile('/nonexistent/vpcgw.yaml')).toThrow(/\/nonexistent\/vpcgw\.yaml: cannot read the config file \(ENOENT\)/);
  });
});
