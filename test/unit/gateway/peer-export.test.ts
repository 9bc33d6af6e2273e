import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, VpnError } from '../../../src/common/errors.js';
import { parseConfig } from '../../../src/gateway/config/index.js';
import { exportPeerConfig } from '../../../src/gateway/peer-export.js';
import { pskText } from '../../../src/gateway/peer-export/facts.js';
import { libreswanEsp, libreswanIke } from '../../../src/gateway/peer-export/libreswan-proposals.js';
import { parseProposals } from '../../../src/ike/config/proposal.js';
import { createCertificate, keyToPem } from '../../../src/gateway/pki-ike.js';

// The customer side of a connection as swanctl.conf and Libreswan ipsec.conf: exact texts for the
// common shapes, the proposal translation to Libreswan, and what is refused. That strongSwan loads
// every variant and brings the tunnel up is test/interop/s2c-peer-export.test.ts.

// TEST FIXTURE ONLY: not a real secret.
const PSK = 'a long random secret';

let dir = '';
let ca: { cert: X509Certificate; key: KeyObject };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vpcgw-peer-export-'));
  const caKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  ca = { key: caKey, cert: createCertificate({ subject: 'O=example, CN=Example IKE CA', key: caKey, ca: true }) };
  writeFileSync(join(dir, 'ca.pem'), ca.cert.toString());
  for (const [name, kind] of [['gw', 'ec'], ['gw-rsa', 'rsa']] as const) {
    const k = kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const c = createCertificate({ subject: `O=example, CN=${name}.example`, sans: [`fqdn:${name}.example`], key: k, issuer: ca });
    writeFileSync(join(dir, `${name}.pem`), c.toString());
    writeFileSync(join(dir, `${name}.key`), keyToPem(k));
  }
});

type Conn = Record<string, unknown>;
function config(conn: Conn = {}, o: { gateway?: Record<string, unknown>; cgw?: Record<string, unknown> } = {}) {
  const raw = {
    gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], ...o.gateway },
    customerGateways: [{ name: 'dc1', address: '192.0.2.1', id: '192.0.2.1', ...o.cgw }],
    vpnConnections: [{
      name: 'dc1-main',
      customerGateway: 'dc1',
      localSubnets: ['10.2.0.0/16'],
      remoteSubnets: ['10.1.0.0/16'],
      auth: { psk: PSK },
      ike: { proposals: 'aes128gcm16-prfsha256-x25519', lifetime: '4h', localId: '192.0.2.2' },
      esp: { proposals: 'aes128gcm16', lifetime: '1h' },
      startAction: 'none',
      ...conn,
    }],
  };
  return parseConfig(stringify(raw), join(dir, 'vpcgw.yaml'));
}

function errorOf(f: () => unknown): VpnError {
  try {
    f();
  } catch (e) {
    if (e instanceof VpnError) return e;
    throw e;
  }
  throw new Error('expected a VpnError');
}

describe('swanctl.conf', () => {
  it('PSK connection that the customer gateway starts, with DPD: the exact text', () => {
    const r = exportPeerConfig(config({ dpd: { interval: '30s' } }), 'dc1-main', 'swanctl');
    expect(r.filename).toBe('dc1-main.swanctl.conf');
    expect(r.text).toBe(`# strongSwan swanctl.conf: the customer side of VPN connection dc1-main of gateway gw1.
# THIS FILE HOLDS THE PRE-SHARED KEY (secrets section): keep it private (chmod 600).
# Install: copy it to /etc/swanctl/conf.d/dc1-main.swanctl.conf, then run: swanctl --load-all
# The tunnel comes up when the file is loaded and is kept up from this side.
connections {
  dc1-main {
    version = 2
    local_addrs = 192.0.2.1
    remote_addrs = 192.0.2.2
    proposals = aes128gcm16-prfsha256-x25519
    rekey_time = 4h
    over_time = 24m
    # the cloud gateway carries ESP in UDP 4500 (RFC 3948) and does not implement MOBIKE
    encap = yes
    mobike = no
    keyingtries = 0
    dpd_delay = 30s
    local {
      auth = psk
      id = 192.0.2.1
    }
    remote {
      auth = psk
      id = 192.0.2.2
    }
    children {
      dc1-main {
        local_ts = 10.1.0.0/16
        remote_ts = 10.2.0.0/16
        esp_proposals = aes128gcm16
        rekey_time = 1h
        life_time = 66m
        start_action = start
        close_action = start
        dpd_action = restart
      }
    }
  }
}
secrets {
  ike-dc1-main {
    id-1 = 192.0.2.1
    id-2 = 192.0.2.2
    secret = "a long random secret"
  }
}
`);
  });

  it('when vpcgw initiates, the peer traps instead of starting (no duplicate IKE SAs); several subnets', () => {
    const r = exportPeerConfig(config({
      startAction: 'start', localSubnets: ['10.2.1.0/24', '10.2.2.0/24'], remoteSubnets: ['10.1.0.0/16', '10.3.0.0/24'],
      dpd: { interval: '1m' }, ike: { proposals: 'aes256-sha256-modp2048, AES128GCM16-prfsha256-ecp256', lifetime: '90m', localId: '192.0.2.2' },
      esp: { proposals: 'aes256-sha256-modp2048', lifetime: '45s' },
    }), 'dc1-main', 'swanctl');
    expect(r.text).toContain('# The cloud gateway initiates the tunnel; traffic from your subnets brings it up too (trap policies).\n');
    expect(r.text).toContain(`    proposals = aes256-sha256-modp2048,aes128gcm16-prfsha256-ecp256
    rekey_time = 90m
    over_time = 9m
`);
    expect(r.text).not.toContain('keyingtries');
    expect(r.text).toContain(`        local_ts = 10.1.0.0/16, 10.3.0.0/24
        remote_ts = 10.2.1.0/24, 10.2.2.0/24
        esp_proposals = aes256-sha256-modp2048
        rekey_time = 45s
        life_time = 49s
        start_action = trap
        close_action = trap
        dpd_action = trap
`);
  });

  it('children: one child section each, with its own subnets and ESP settings', () => {
    const r = exportPeerConfig(config({
      localSubnets: undefined, remoteSubnets: undefined,
      children: [
        { name: 'app', localSubnets: ['10.2.0.0/24'], remoteSubnets: ['10.1.0.0/24'] },
        { name: 'db', localSubnets: ['10.2.1.0/24', '10.2.2.0/24'], remoteSubnets: ['10.1.1.0/24', '10.1.2.0/24'], esp: { proposals: 'aes256gcm16', lifetime: '30m' } },
      ],
    }), 'dc1-main', 'swanctl');
    expect(r.text).toContain(`      app {
        local_ts = 10.1.0.0/24
        remote_ts = 10.2.0.0/24
        esp_proposals = aes128gcm16
        rekey_time = 1h
`);
    expect(r.text).toContain(`      db {
        local_ts = 10.1.1.0/24, 10.1.2.0/24
        remote_ts = 10.2.1.0/24, 10.2.2.0/24
        esp_proposals = aes256gcm16
        rekey_time = 30m
`);
  });

  it('mode route: one child 0.0.0.0/0 === 0.0.0.0/0, never trapped on the customer side', () => {
    const r = exportPeerConfig(config({ localSubnets: undefined, remoteSubnets: undefined, mode: 'route', routes: ['10.1.0.0/16'], startAction: 'start' }), 'dc1-main', 'swanctl');
    expect(r.text).toContain(`      dc1-main {
        local_ts = 0.0.0.0/0
        remote_ts = 0.0.0.0/0
`);
    expect(r.text).toContain('        start_action = none\n        close_action = none\n');
  });

  it('certificate authentication: certs and cacerts with the files to place, no secrets', () => {
    const cfg = config({ auth: { cert: 'gw.pem', key: 'gw.key' }, ike: { localId: 'fqdn:gw.example' } },
      { cgw: { id: 'fqdn:dc1.example', ca: 'ca.pem' } });
    const r = exportPeerConfig(cfg, 'dc1-main', 'swanctl');
    expect(r.text).toBe(`# strongSwan swanctl.conf: the customer side of VPN connection dc1-main of gateway gw1.
# Certificate authentication. Put these files into /etc/swanctl before loading:
#   x509/dc1-main.pem: your gateway's certificate, issued by O=example, CN=Example IKE CA
#     (this gateway trusts no other CA for you); its subject or a subjectAltName must hold local.id
#   private/<any name>: its private key (PEM)
#   x509ca/dc1-main-ca.pem: the CA that issued this gateway's certificate, O=example, CN=Example IKE CA
# Install: copy it to /etc/swanctl/conf.d/dc1-main.swanctl.conf, then run: swanctl --load-all
# The tunnel comes up when the file is loaded and is kept up from this side.
connections {
  dc1-main {
    version = 2
    local_addrs = 192.0.2.1
    remote_addrs = 192.0.2.2
    proposals = aes128gcm16-prfsha256-x25519
    rekey_time = 4h
    over_time = 24m
    # the cloud gateway carries ESP in UDP 4500 (RFC 3948) and does not implement MOBIKE
    encap = yes
    mobike = no
    keyingtries = 0
    local {
      auth = pubkey
      id = fqdn:dc1.example
      certs = dc1-main.pem
    }
    remote {
      auth = pubkey
      id = fqdn:gw.example
      cacerts = dc1-main-ca.pem
    }
    children {
      dc1-main {
        local_ts = 10.1.0.0/16
        remote_ts = 10.2.0.0/16
        esp_proposals = aes128gcm16
        rekey_time = 1h
        life_time = 66m
        start_action = start
        close_action = start
      }
    }
  }
}
`);
  });

  it('with a certificate and no localId our id is its subject DN, quoted', () => {
    const cfg = config({ auth: { cert: 'gw.pem', key: 'gw.key' }, ike: { localId: null } }, { cgw: { id: 'O=example, CN=dc1', ca: 'ca.pem' } });
    const t = exportPeerConfig(cfg, 'dc1-main', 'swanctl').text;
    expect(t).toContain('      id = "O=example, CN=dc1"\n');
    expect(t).toContain('      id = "O=example, CN=gw.example"\n');
  });

  it('a customer gateway at %any: local_addrs %any, no local id, the secret keyed by our id only', () => {
    const t = exportPeerConfig(config({}, { cgw: { address: '%any', id: '%any' } }), 'dc1-main', 'swanctl').text;
    expect(t).toContain('    local_addrs = %any\n');
    expect(t).toContain('    local {\n      auth = psk\n    }\n');
    expect(t).toContain('  ike-dc1-main {\n    id-2 = 192.0.2.2\n    secret = "a long random secret"\n  }\n');
  });

  it('a dotted connection name becomes a section name with "_" (swanctl reads dots as nesting)', () => {
    const r = exportPeerConfig(config({ name: 'dc1.main' }), 'dc1.main', 'swanctl');
    expect(r.filename).toBe('dc1.main.swanctl.conf');
    expect(r.text).toContain('connections {\n  dc1_main {\n');
    expect(r.text).toContain('    children {\n      dc1_main {\n');
    expect(r.text).toContain('  ike-dc1_main {\n');
  });

  it('only a wildcard bind: remote_addrs is the IP address identity', () => {
    const t = exportPeerConfig(config({}, { gateway: { publicAddresses: ['0.0.0.0'] } }), 'dc1-main', 'swanctl').text;
    expect(t).toContain('    remote_addrs = 192.0.2.2\n');
  });

  it('several public addresses are all remote_addrs', () => {
    const t = exportPeerConfig(config({}, { gateway: { publicAddresses: ['192.0.2.2', '198.51.100.2'] } }), 'dc1-main', 'swanctl').text;
    expect(t).toContain('    remote_addrs = 192.0.2.2, 198.51.100.2\n');
  });
});

describe('PSK text', () => {
  it.each([
    ['a long random secret', '"a long random secret"'],
    ['0x00112233445566778899', '0x00112233445566778899'],
    ['0sAAECAwQFBgcICQ==', '0x00010203040506070809'],
    ['say "hi" to all', `0x${Buffer.from('say "hi" to all').toString('hex')}`],
    ['back\\slash secret', `0x${Buffer.from('back\\slash secret').toString('hex')}`],
    ['grüße und mehr', `0x${Buffer.from('grüße und mehr').toString('hex')}`],
    // a text that only looks like hex is text to vpcgw (decodePsk), so it goes out as bytes
    ['0xnothexatall', `0x${Buffer.from('0xnothexatall').toString('hex')}`],
  ])('%s → %s', (psk, out) => {
    const p = pskText(psk);
    expect('quoted' in p ? p.quoted : p.hex).toBe(out);
  });

  it('a quote in the PSK is written as hex in both formats', () => {
    const cfg = config({ auth: { psk: 'say "hi" to all' } });
    const hex = Buffer.from('say "hi" to all').toString('hex');
    expect(exportPeerConfig(cfg, 'dc1-main', 'swanctl').text).toContain(`    secret = 0x${hex}\n`);
    expect(exportPeerConfig(cfg, 'dc1-main', 'libreswan').text).toContain(`# 192.0.2.1 192.0.2.2 : PSK 0x${hex}\n`);
  });
});

describe('Libreswan ipsec.conf', () => {
  it('PSK connection that the customer gateway starts: the exact text, secrets as a commented block', () => {
    const r = exportPeerConfig(config({ dpd: { interval: '30s' }, remoteSubnets: ['10.1.0.0/16', '10.3.0.0/24'] }), 'dc1-main', 'libreswan');
    expect(r.filename).toBe('dc1-main.libreswan.conf');
    expect(r.text).toBe(`# Libreswan ipsec.conf: the customer side of VPN connection dc1-main of gateway gw1.
# Needs Libreswan 5.0 or later (all subnets in one Child SA). Left is your gateway, right the cloud.
# Install: copy it to /etc/ipsec.d/dc1-main.conf, the secrets line at the end to /etc/ipsec.d/dc1-main.secrets,
# then run: ipsec add dc1-main && ipsec up dc1-main   (or restart the ipsec service)
# THIS FILE HOLDS THE PRE-SHARED KEY (the secrets line at the end): keep it private (chmod 600).
conn dc1-main
\tkeyexchange=ikev2
\tleft=192.0.2.1
\tleftid=192.0.2.1
\tleftsubnet=10.1.0.0/16,10.3.0.0/24
\tright=192.0.2.2
\trightid=192.0.2.2
\trightsubnet=10.2.0.0/16
\tauthby=secret
\tike=aes_gcm128-sha2_256-dh31
\tesp=aes_gcm128
\tpfs=no
\tesn=no
\tikelifetime=4h
\tipsec-lifetime=1h
\trekeymargin=3m
\trekeyfuzz=100%
\tencapsulation=yes
\tmobike=no
\tdpddelay=30s
\tauto=start

# /etc/ipsec.d/dc1-main.secrets (chmod 600), without the leading "# ":
# 192.0.2.1 192.0.2.2 : PSK "a long random secret"
`);
  });

  it('certificate connection (ECDSA): leftcert from the NSS database, authby=ecdsa, no secrets', () => {
    const cfg = config({ auth: { cert: 'gw.pem', key: 'gw.key' }, ike: { localId: 'fqdn:gw.example' }, startAction: 'start' },
      { cgw: { id: 'fqdn:dc1.example', ca: 'ca.pem' } });
    expect(exportPeerConfig(cfg, 'dc1-main', 'libreswan').text).toBe(`# Libreswan ipsec.conf: the customer side of VPN connection dc1-main of gateway gw1.
# Needs Libreswan 5.0 or later (all subnets in one Child SA). Left is your gateway, right the cloud.
# Install: copy it to /etc/ipsec.d/dc1-main.conf,
# then run: ipsec add dc1-main && ipsec route dc1-main   (or restart the ipsec service)
# Certificate authentication: Libreswan keeps certificates in its NSS database (/var/lib/ipsec/nss).
#   ipsec import dc1-main.p12: your gateway's certificate and key, with the friendly name dc1-main
#     (leftcert= below), issued by O=example, CN=Example IKE CA (this gateway trusts no other CA for you)
#   certutil -d sql:/var/lib/ipsec/nss -A -t "CT,," -n dc1-main-ca -i dc1-main-ca.pem: the CA that issued
#     this gateway's certificate, O=example, CN=Example IKE CA
# authby=ecdsa: your certificate must hold an ECDSA key too.
conn dc1-main
\tkeyexchange=ikev2
\tleft=192.0.2.1
\tleftid=@dc1.example
\tleftcert=dc1-main
\tleftsendcert=always
\tleftsubnet=10.1.0.0/16
\tright=192.0.2.2
\trightid=@gw.example
\trightsubnet=10.2.0.0/16
\tauthby=ecdsa
\tike=aes_gcm128-sha2_256-dh31
\tesp=aes_gcm128
\tpfs=no
\tesn=no
\tikelifetime=4h
\tipsec-lifetime=1h
\trekeymargin=3m
\trekeyfuzz=100%
\tencapsulation=yes
\tmobike=no
\tauto=ondemand
`);
  });

  it('RSA certificate: authby=rsa-sha1 (this gateway verifies PKCS#1 v1.5, not RSASSA-PSS); DN ids quoted', () => {
    const cfg = config({ auth: { cert: 'gw-rsa.pem', key: 'gw-rsa.key' }, ike: { localId: null } }, { cgw: { id: 'O=example, CN=dc1', ca: 'ca.pem' } });
    const t = exportPeerConfig(cfg, 'dc1-main', 'libreswan').text;
    expect(t).toContain('\tauthby=rsa-sha1\n');
    expect(t).toContain('\tleftid="O=example, CN=dc1"\n');
    expect(t).toContain('\trightid="O=example, CN=gw-rsa.example"\n');
  });

  it('an ESP lifetime over Libreswan\'s 24 h maximum is written as 24 h (it then rekeys first)', () => {
    const t = exportPeerConfig(config({ esp: { lifetime: '2d' }, ike: { lifetime: '3d', localId: '192.0.2.2' } }), 'dc1-main', 'libreswan').text;
    expect(t).toContain('\tikelifetime=3d\n\tipsec-lifetime=1d\n\trekeymargin=72m\n');
  });

  it('email ids, %any customer gateway, PFS and ESN', () => {
    const cfg = config({
      ike: { localId: 'email:vpn@gw.example' },
      esp: { proposals: 'aes256-sha384-ecp384-esn-noesn' },
    }, { cgw: { address: '%any', id: 'email:ops@dc1.example' } });
    const t = exportPeerConfig(cfg, 'dc1-main', 'libreswan').text;
    expect(t).toContain('\tleft=%defaultroute\n\tleftid=ops@dc1.example\n');
    expect(t).toContain('\trightid=vpn@gw.example\n');
    expect(t).toContain('\tesp=aes256-sha2_384-dh20\n\tpfs=yes\n\tesn=either\n');
    expect(t).toContain('# ops@dc1.example vpn@gw.example : PSK "a long random secret"\n');
  });
});

describe('proposals in Libreswan syntax', () => {
  it.each([
    ['aes128gcm16-prfsha256-x25519', 'aes_gcm128-sha2_256-dh31'],
    ['aes256gcm16-prfsha384-ecp384', 'aes_gcm256-sha2_384-dh20'],
    ['aes128gcm12-prfsha256-ecp256', 'aes_gcm_b128-sha2_256-dh19'],
    ['aes192gcm8-prfsha512-ecp521', 'aes_gcm_a192-sha2_512-dh21'],
    ['chacha20poly1305-prfsha256-x25519', 'chacha20_poly1305-sha2_256-dh31'],
    ['aes256-sha256-modp2048', 'aes256-sha2_256-dh14'],
    ['aes128-sha1-modp3072', 'aes128-sha1-dh15'],
    ['aes-sha512-modp4096', 'aes128-sha2_512-dh16'],
    ['aes128-aes256-sha256-sha384-x25519-ecp256', 'aes128+aes256-sha2_256+sha2_384-dh31+dh19'],
    ['aes128gcm16-aes256gcm16-prfsha256-prfsha384-x25519,aes256-sha256-modp2048',
      'aes_gcm128+aes_gcm256-sha2_256+sha2_384-dh31,aes256-sha2_256-dh14'],
    ['aes256-sha256-prfsha256-modp2048', 'aes256-sha2_256-dh14'],
    ['aes256-sha256-sha384-prfsha384-prfsha256-ecp384', 'aes256-sha2_256+sha2_384-dh20'],
  ])('IKE %s → %s', (ours, theirs) => {
    expect(libreswanIke(parseProposals(ours, 'ike'))).toBe(theirs);
  });

  it('IKE "default" (strongSwan 5.9.8\'s set, as far as vpcgw implements it) is expressible', () => {
    expect(libreswanIke(parseProposals('default', 'ike'))).toBe(
      'aes128+aes192+aes256-sha2_256+sha2_384+sha2_512+sha1-dh31+dh19+dh20+dh21+dh15+dh16+dh14,'
      + 'aes_gcm128+aes_gcm192+aes_gcm256+aes_gcm_b128+aes_gcm_b192+aes_gcm_b256+aes_gcm_a128+aes_gcm_a192+aes_gcm_a256+chacha20_poly1305'
      + '-sha2_256+sha2_384+sha2_512+sha1-dh31+dh19+dh20+dh21+dh15+dh16+dh14');
  });

  it.each([
    ['aes128gcm16', { esp: 'aes_gcm128', pfs: false, esn: 'no' }],
    ['aes256gcm16-x25519', { esp: 'aes_gcm256-dh31', pfs: true, esn: 'no' }],
    ['aes256-sha256', { esp: 'aes256-sha2_256', pfs: false, esn: 'no' }],
    ['aes128-sha1-modp2048-esn', { esp: 'aes128-sha1-dh14', pfs: true, esn: 'yes' }],
    ['aes128gcm16-esn-noesn,aes256-sha512', { esp: 'aes_gcm128,aes256-sha2_512', pfs: false, esn: 'either' }],
    ['chacha20poly1305', { esp: 'chacha20_poly1305', pfs: false, esn: 'no' }],
  ])('ESP %s', (ours, theirs) => {
    expect(libreswanEsp(parseProposals(ours, 'esp'))).toEqual(theirs);
  });

  it('refuses an IKE PRF that differs from the integrity algorithm (Libreswan derives one from the other)', () => {
    const e = errorOf(() => libreswanIke(parseProposals('aes256-sha256-prfsha384-modp2048', 'ike')));
    expect(e.code).toBe('ERR_CRYPTO_UNSUPPORTED');
    expect(e.message).toMatch(/Libreswan cannot express the proposal AES_CBC_256\/HMAC_SHA2_256_128\/PRF_HMAC_SHA2_384\/MODP_2048: its PRF differs/);
    expect(errorOf(() => libreswanIke(parseProposals('aes256-sha256-sha384-prfsha256-x25519', 'ike'))).code).toBe('ERR_CRYPTO_UNSUPPORTED');
  });

  it('refuses ESP proposals that mix PFS and no PFS (pfs= is per connection)', () => {
    const e = errorOf(() => libreswanEsp(parseProposals('aes128gcm16-x25519,aes128gcm16', 'esp')));
    expect(e.code).toBe('ERR_CRYPTO_UNSUPPORTED');
    expect(e.message).toMatch(/PFS per connection/);
  });

  it('exportPeerConfig refuses such a connection for Libreswan, and still writes swanctl.conf', () => {
    const cfg = config({ ike: { proposals: 'aes256-sha256-prfsha512-x25519', localId: '192.0.2.2' } });
    expect(errorOf(() => exportPeerConfig(cfg, 'dc1-main', 'libreswan')).code).toBe('ERR_CRYPTO_UNSUPPORTED');
    expect(exportPeerConfig(cfg, 'dc1-main', 'swanctl').text).toContain('    proposals = aes256-sha256-prfsha512-x25519\n');
  });
});

describe('refusals', () => {
  it('an unknown connection is ERR_NOT_FOUND', () => {
    const e = errorOf(() => exportPeerConfig(config(), 'nope', 'swanctl'));
    expect(e.code).toBe('ERR_NOT_FOUND');
    expect(e.message).toContain('"nope"');
  });

  it('an unknown format is ERR_INVALID_ARG', () => {
    expect(errorOf(() => exportPeerConfig(config(), 'dc1-main', 'ipsec.conf' as never)).code).toBe('ERR_INVALID_ARG');
  });

  it('a name outside the config\'s pattern is refused before it reaches a section name', () => {
    const cfg = config();
    const broken = { ...cfg, vpnConnections: [{ ...cfg.vpnConnections[0]!, name: 'x }\nconnections { y' }] } as typeof cfg;
    expect(errorOf(() => exportPeerConfig(broken, 'x }\nconnections { y', 'swanctl')).code).toBe('ERR_INVALID_ARG');
  });

  it('only a wildcard bind and a non-IP identity: nothing names our address', () => {
    const cfg = config({ ike: { localId: 'fqdn:gw.example' } }, { gateway: { publicAddresses: ['0.0.0.0'] } });
    const e = errorOf(() => exportPeerConfig(cfg, 'dc1-main', 'swanctl'));
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).path).toBe('gateway.publicAddresses');
  });

  it('an identity with a double quote cannot be written into either file', () => {
    const cfg = config({}, { cgw: { id: 'O=ex"ample, CN=dc1' } });
    for (const f of ['swanctl', 'libreswan'] as const) {
      const e = errorOf(() => exportPeerConfig(cfg, 'dc1-main', f));
      expect(e).toBeInstanceOf(ConfigError);
    }
  });
});
