import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { stringify } from 'yaml';
import { ConfigError } from '../../../../src/common/errors.js';
import { parseConfig } from '../../../../src/gateway/config/index.js';
import { peerConfigsFrom } from '../../../../src/gateway/peer-configs.js';
import { exportPeerConfig } from '../../../../src/gateway/peer-export.js';
import { IdType } from '../../../../src/ike/wire/constants.js';
import { createCertificate, createCrl, crlToPem, keyToPem } from '../../../../src/gateway/pki-ike.js';

// auth.cert/auth.key on a connection and ca/crl on its customer gateway: files are read and
// checked when the config loads, and every refusal names the field.

let dir = '';
let ca: { cert: X509Certificate; key: KeyObject };
const file = (name: string, text: string): string => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-cfg-cert-'));
  const caKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  ca = { key: caKey, cert: createCertificate({ subject: 'O=test, CN=CA', key: caKey, ca: true }) };
  file('ca.pem', ca.cert.toString());
  const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const gw = createCertificate({ subject: 'O=test, CN=gw', sans: ['fqdn:gw.example', '192.0.2.2'], key: k, issuer: ca });
  file('gw.pem', gw.toString());
  file('gw.key', keyToPem(k));
  file('other.key', keyToPem(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey));
  file('ed.key', keyToPem(generateKeyPairSync('ed25519').privateKey));
  file('crl.pem', crlToPem(createCrl({ ca: ca.cert, caKey: ca.key, revokedSerials: ['01'] })));
  const otherCaKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const otherCa = createCertificate({ subject: 'O=test, CN=other CA', key: otherCaKey, ca: true });
  file('other-crl.pem', crlToPem(createCrl({ ca: otherCa, caKey: otherCaKey, revokedSerials: [] })));
  file('junk.pem', 'not a certificate\n');
});

function cfg(o: { auth?: unknown; localId?: string | null; ca?: string | null; crl?: string } = {}): any {
  return {
    gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'] },
    customerGateways: [{ name: 'dc1', address: '192.0.2.1', id: 'fqdn:dc1.example', ...(o.ca !== null ? { ca: o.ca ?? 'ca.pem' } : {}), ...(o.crl ? { crl: o.crl } : {}) }],
    vpnConnections: [{
      name: 'dc1-main', customerGateway: 'dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'],
      auth: o.auth ?? { cert: 'gw.pem', key: 'gw.key' },
      ike: { localId: o.localId === undefined ? null : o.localId },
    }],
  };
}

function load(obj: unknown) {
  return parseConfig(stringify(obj), join(dir, 'vpcgw.yaml'));
}

function refusal(obj: unknown): ConfigError {
  try {
    load(obj);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('the config loaded');
}

describe('config: certificate authentication', () => {
  it('loads cert, key, ca and crl; the own ID defaults to the subject DN; the IKE config carries the parsed material', () => {
    const c = load(cfg({ crl: 'crl.pem' }));
    const conn = c.vpnConnections[0]!;
    expect(conn.auth.psk).toBeNull();
    expect(conn.auth.cert).toBe(join(dir, 'gw.pem'));
    const [pc] = peerConfigsFrom(c);
    expect(pc!.localId.type).toBe(IdType.ID_DER_ASN1_DN);
    expect(pc!.localId.text).toBe('O=test, CN=gw');
    expect(pc!.psk.length).toBe(0);
    expect(pc!.cert!.cas).toHaveLength(1);
    expect(pc!.cert!.crls[0]!.revokedSerials.has('1')).toBe(true);
    expect(pc!.cert!.key.type).toBe('private');
    // the private key never prints
    expect(JSON.stringify(c)).not.toContain('PRIVATE');
    expect(inspect(c, { depth: 10 })).not.toContain('PRIVATE');
    const peer = exportPeerConfig(c, conn.name, 'swanctl').text;
    expect(peer).toMatch(/auth = pubkey[\s\S]*id = "O=test, CN=gw"/);
    expect(peer).not.toContain('secrets');
  });

  it('accepts a localId from the certificate\'s subjectAltNames', () => {
    const [pc] = peerConfigsFrom(load(cfg({ localId: 'fqdn:gw.example' })));
    expect(pc!.localId.text).toBe('fqdn:gw.example');
    expect(peerConfigsFrom(load(cfg({ localId: '192.0.2.2' })))[0]!.localId.type).toBe(IdType.ID_IPV4_ADDR);
  });

  it.each([
    ['a localId the certificate does not contain', cfg({ localId: 'fqdn:other.example' }), 'vpnConnections[0].ike.localId',
      /an identity in the certificate .*gw\.pem: its subject "O=test, CN=gw" or fqdn:gw\.example, 192\.0\.2\.2/],
    ['a key of another certificate', cfg({ auth: { cert: 'gw.pem', key: 'other.key' } }), 'vpnConnections[0].auth.key', /the private key of the certificate "O=test, CN=gw"/],
    ['an unsupported key type', cfg({ auth: { cert: 'gw.pem', key: 'ed.key' } }), 'vpnConnections[0].auth.key', /an RSA or ECDSA/],
    ['a file that holds no certificate', cfg({ auth: { cert: 'junk.pem', key: 'gw.key' } }), 'vpnConnections[0].auth.cert', /no readable X\.509 certificate/],
    ['a missing certificate file', cfg({ auth: { cert: 'nope.pem', key: 'gw.key' } }), 'vpnConnections[0].auth.cert', /cannot be read: ENOENT/],
    ['cert without key', cfg({ auth: { cert: 'gw.pem' } }), 'vpnConnections[0].auth.key', /required with cert/],
    ['psk and cert together', cfg({ auth: { psk: 'correct-horse-battery', cert: 'gw.pem', key: 'gw.key' } }), 'vpnConnections[0].auth.cert', /either psk, or cert and key/],
    ['an empty auth', cfg({ auth: {} }), 'vpnConnections[0].auth.psk', /a pre-shared key, or cert and key/],
    ['certificate auth without a CA for the peer', cfg({ ca: null }), 'customerGateways[0].ca', /required: vpnConnections\[0\] authenticates with a certificate/],
    ['a CRL from another CA', cfg({ crl: 'other-crl.pem' }), 'customerGateways[0].crl', /a CRL issued and signed by a CA in/],
  ])('refuses %s', (_n, obj, path, why) => {
    const e = refusal(obj);
    expect(e.message).toContain(`config ${path}:`);
    expect(e.message).toMatch(why);
  });

  it('a PSK connection keeps working next to a customer gateway with a CA', () => {
    const c = load(cfg({ auth: { psk: 'correct-horse-battery' }, localId: '192.0.2.2' }));
    const [pc] = peerConfigsFrom(c);
    expect(pc!.cert).toBeNull();
    expect(pc!.psk.toString()).toBe('correct-horse-battery');
  });
});

describe('config: ike.fragmentation (RFC 7383, strongSwan\'s fragmentation setting)', () => {
  const withFrag = (v: unknown) => {
    const c = cfg();
    c.vpnConnections[0].ike.fragmentation = v;
    return c;
  };
  it('defaults to yes and carries accept and no to the IKE config', () => {
    expect(peerConfigsFrom(load(cfg()))[0]!.fragmentation).toBe('yes');
    expect(peerConfigsFrom(load(withFrag('accept')))[0]!.fragmentation).toBe('accept');
    expect(peerConfigsFrom(load(withFrag('no')))[0]!.fragmentation).toBe('no');
  });
  it.each(['force', 'maybe'])('refuses %s, naming the field and the value', (v) => {
    const e = refusal(withFrag(v));
    expect(e.message).toContain('config vpnConnections[0].ike.fragmentation:');
    expect(e.message).toContain(v);
    expect(e.message).toMatch(/yes.*accept.*no/);
  });
});
