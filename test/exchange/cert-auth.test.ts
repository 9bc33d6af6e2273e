import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import { AuthMethod, ExchangeType, NotifyType, PayloadType } from '../../src/ike/wire/constants.js';
import { FragmentReassembler, decodeFragment } from '../../src/ike/wire/fragments.js';
import { IKE_FRAGMENT_MAX_BYTES } from '../../src/ike/sa/ike-sa.js';
import { decodeMessage } from '../../src/ike/wire/message.js';
import type { IkeSa } from '../../src/ike/sa/ike-sa.js';
import type { IkeManager } from '../../src/ike/ike-manager.js';
import type { PeerConfig } from '../../src/ike/config/peer-config.js';
import { certificateSubjectIdentity, parseIdentity } from '../../src/ike/config/identity.js';
import { parseCrl } from '../../src/ike/config/x509.js';
import { createCertificate, createCrl } from '../../src/gateway/pki-ike.js';

// Certificate authentication between two in-process peers (RFC 7296 §2.15, §3.6-3.8; RFC 7427; RFC 4754).
// A (192.0.2.1) initiates, B (192.0.2.2) responds; both trust one CA unless a test says otherwise.

type KeyType = 'rsa' | 'p256' | 'p384' | 'p521';
const DAY_MS = 86_400_000;

function newKey(t: KeyType): KeyObject {
  if (t === 'rsa') return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const namedCurve = t === 'p256' ? 'prime256v1' : t === 'p384' ? 'secp384r1' : 'secp521r1';
  return generateKeyPairSync('ec', { namedCurve }).privateKey;
}

interface Pki { caKey: KeyObject; ca: X509Certificate }
function makeCa(t: KeyType, cn = 'Test CA'): Pki {
  const caKey = newKey(t);
  return { caKey, ca: createCertificate({ subject: `C=CH, O=vpcgw test, CN=${cn}`, key: caKey, ca: true }) };
}
function issue(pki: Pki, t: KeyType, cn: string, sans: string[], validity: { from?: number; to?: number } = {}) {
  const key = newKey(t);
  const now = Date.now();
  const cert = createCertificate({
    subject: `C=CH, O=vpcgw test, CN=${cn}`, sans, key, issuer: { cert: pki.ca, key: pki.caKey },
    notBefore: new Date(validity.from ?? now - DAY_MS), notAfter: new Date(validity.to ?? now + 30 * DAY_MS),
  });
  return { cert, key };
}

function withCert(base: PeerConfig, own: { cert: X509Certificate; key: KeyObject }, o: {
  cas: X509Certificate[]; localId?: string; remoteId?: string; signatureAuth?: boolean; crls?: Buffer[]; chain?: X509Certificate[];
}): PeerConfig {
  return {
    ...base,
    psk: Buffer.alloc(0),
    localId: o.localId ? parseIdentity(o.localId)! : certificateSubjectIdentity(own.cert),
    remoteId: o.remoteId ? parseIdentity(o.remoteId)! : base.remoteId,
    cert: { cert: own.cert, chain: o.chain ?? [], key: own.key, cas: o.cas, crls: (o.crls ?? []).map(parseCrl), signatureAuth: o.signatureAuth ?? true },
  };
}

function baseA() {
  return peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
}
function baseB() {
  return peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
}

function onlySa(m: IkeManager): IkeSa | undefined {
  return [...(m as unknown as { sas: Map<string, IkeSa> }).sas.values()][0];
}

function run(a: PeerConfig, b: PeerConfig): TwoPeers {
  const p = new TwoPeers([a], [b], undefined, {}, Date.now());
  p.run(p.a.initiate('a2b', p.now), 'a');
  return p;
}

/** The decrypted IKE_AUTH request (from A) and response (from B) of an established pair (reassembled when fragmented). */
function authMessages(p: TwoPeers) {
  const open = (to: string, sa: IkeSa) => {
    const ds = p.wire.filter((w) => w.to.address === to && w.datagram[18] === ExchangeType.IKE_AUTH).map((w) => w.datagram);
    if (ds[0]![16] !== PayloadType.SKF) return decodeMessage(ds[0]!, sa.sk);
    const r = new FragmentReassembler();
    for (const d of ds) {
      const f = decodeFragment(d, sa.sk!);
      const whole = f.ok ? r.add(f) : null;
      if (whole) return whole;
    }
    throw new Error('IKE_AUTH fragments do not reassemble');
  };
  const req = open(B_ADDR, onlySa(p.b)!);
  const resp = open(A_ADDR, onlySa(p.a)!);
  if (!req.ok || !resp.ok) throw new Error('IKE_AUTH does not decode');
  return { req: req.msg, resp: resp.msg };
}
function authMethod(msg: { payloads: { type: number; method?: number }[] }): number | undefined {
  return msg.payloads.find((x) => x.type === PayloadType.AUTH)?.method;
}

describe('IKE_AUTH with certificates', () => {
  let rsa: Pki;
  let ec: Pki;
  beforeAll(() => {
    rsa = makeCa('rsa', 'RSA CA');
    ec = makeCa('p256', 'ECDSA CA');
  });

  it.each([
    ['ECDSA P-256', 'p256' as KeyType],
    ['RSA', 'rsa' as KeyType],
  ])('%s certificates, IP identities, RFC 7427 method 14 both ways', (_n, t) => {
    const pki = t === 'rsa' ? rsa : ec;
    const ca = issue(pki, t, 'a', [A_ADDR]);
    const cb = issue(pki, t, 'b', [B_ADDR]);
    const p = run(withCert(baseA(), ca, { cas: [pki.ca], localId: A_ADDR }), withCert(baseB(), cb, { cas: [pki.ca], localId: B_ADDR }));
    /* IKE_SA_INIT { SA KE Ni N(NATD_S) N(NATD_D) N(SIGNATURE_HASH_ALGORITHMS) } -->
       <-- { SA KE Nr N(NATD_S) N(NATD_D) N(SIGNATURE_HASH_ALGORITHMS) CERTREQ }
       IKE_AUTH SK{ IDi CERT N(INITIAL_CONTACT) CERTREQ IDr AUTH SA TSi TSr } -->
       <-- SK{ IDr CERT AUTH SA TSi TSr } */
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.installs('a')).toHaveLength(1);
    const init = decodeMessage(p.wire[1]!.datagram, null);
    expect(init.ok && init.msg.payloads.some((x) => x.type === PayloadType.CERTREQ)).toBe(true);
    const { req, resp } = authMessages(p);
    expect(authMethod(req)).toBe(AuthMethod.DIGITAL_SIGNATURE);
    expect(authMethod(resp)).toBe(AuthMethod.DIGITAL_SIGNATURE);
    expect(req.payloads.filter((x) => x.type === PayloadType.CERT)).toHaveLength(1);
    expect(req.payloads.some((x) => x.type === PayloadType.CERTREQ)).toBe(true);
    expect(resp.payloads.filter((x) => x.type === PayloadType.CERT)).toHaveLength(1);
  });

  it.each([
    ['RSA', 'rsa' as KeyType, AuthMethod.RSA_SIG],
    ['ECDSA P-256', 'p256' as KeyType, AuthMethod.ECDSA_SHA256_P256],
    ['ECDSA P-384', 'p384' as KeyType, AuthMethod.ECDSA_SHA384_P384],
    ['ECDSA P-521', 'p521' as KeyType, AuthMethod.ECDSA_SHA512_P521],
  ])('%s with the classic method when RFC 7427 is off on one side', (_n, t, method) => {
    const pki = t === 'rsa' ? rsa : ec;
    const ca = issue(pki, t, 'a', ['fqdn:a.example']);
    const cb = issue(pki, t, 'b', ['fqdn:b.example']);
    const p = run(
      withCert(baseA(), ca, { cas: [pki.ca], localId: 'fqdn:a.example', remoteId: 'fqdn:b.example' }),
      withCert(baseB(), cb, { cas: [pki.ca], localId: 'fqdn:b.example', remoteId: 'fqdn:a.example', signatureAuth: false }),
    );
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    const { req, resp } = authMessages(p);
    expect(authMethod(req)).toBe(method);
    expect(authMethod(resp)).toBe(method);
  });

  it('DN identities: the default own ID is the certificate subject; a configured DN matches it', () => {
    const ca = issue(ec, 'p256', 'a', []);
    const cb = issue(rsa, 'rsa', 'b', []);
    // each trusts both CAs: an RSA end entity against an ECDSA one
    const p = run(
      withCert(baseA(), ca, { cas: [ec.ca, rsa.ca], remoteId: 'C=CH, O=vpcgw test, CN=b' }),
      withCert(baseB(), cb, { cas: [ec.ca, rsa.ca], remoteId: 'C=CH, O=vpcgw test, CN=a' }),
    );
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    expect(onlySa(p.b)!.peerId!.text).toBe('C=CH, O=vpcgw test, CN=a');
  });

  function refusedByB(p: TwoPeers, reason: RegExp): void {
    expect(p.installs('a')).toHaveLength(0);
    expect(p.installs('b')).toHaveLength(0);
    expect(p.a.status().every((s) => s.state !== 'ESTABLISHED')).toBe(true);
    expect(p.logText('b')).toMatch(reason);
    expect(p.logText('a')).toMatch(/AUTHENTICATION_FAILED/);
  }

  it('refuses a certificate from another CA', () => {
    const other = makeCa('p256', 'Other CA');
    const ca = issue(other, 'p256', 'a', [A_ADDR]);
    const cb = issue(ec, 'p256', 'b', [B_ADDR]);
    const p = run(withCert(baseA(), ca, { cas: [ec.ca], localId: A_ADDR }), withCert(baseB(), cb, { cas: [ec.ca], localId: B_ADDR }));
    refusedByB(p, /authentication of 192\.0\.2\.1 failed: certificate "C=CH, O=vpcgw test, CN=a" is not issued by a configured CA/);
  });

  it('refuses an expired certificate', () => {
    const now = Date.now();
    const ca = issue(ec, 'p256', 'a', [A_ADDR], { from: now - 10 * DAY_MS, to: now - DAY_MS });
    const cb = issue(ec, 'p256', 'b', [B_ADDR]);
    const p = run(withCert(baseA(), ca, { cas: [ec.ca], localId: A_ADDR }), withCert(baseB(), cb, { cas: [ec.ca], localId: B_ADDR }));
    refusedByB(p, /certificate "C=CH, O=vpcgw test, CN=a" expired on/);
  });

  it('refuses a certificate that is not valid yet', () => {
    const now = Date.now();
    const ca = issue(ec, 'p256', 'a', [A_ADDR], { from: now + DAY_MS, to: now + 10 * DAY_MS });
    const cb = issue(ec, 'p256', 'b', [B_ADDR]);
    const p = run(withCert(baseA(), ca, { cas: [ec.ca], localId: A_ADDR }), withCert(baseB(), cb, { cas: [ec.ca], localId: B_ADDR }));
    refusedByB(p, /certificate "C=CH, O=vpcgw test, CN=a" is not valid yet/);
  });

  it('refuses a certificate revoked by the CA\'s CRL', () => {
    const ca = issue(ec, 'p256', 'a', [A_ADDR]);
    const cb = issue(ec, 'p256', 'b', [B_ADDR]);
    const crl = createCrl({ ca: ec.ca, caKey: ec.caKey, revokedSerials: [ca.cert.serialNumber] });
    const p = run(withCert(baseA(), ca, { cas: [ec.ca], localId: A_ADDR }), withCert(baseB(), cb, { cas: [ec.ca], localId: B_ADDR, crls: [crl] }));
    refusedByB(p, new RegExp(`certificate "C=CH, O=vpcgw test, CN=a" \\(serial ${ca.cert.serialNumber.replace(/^0+/, '')}\\) is revoked by the CRL of "C=CH, O=vpcgw test, CN=ECDSA CA"`));
  });

  it('refuses an identity the certificate does not contain', () => {
    const ca = issue(ec, 'p256', 'a', ['fqdn:a.example']);
    const cb = issue(ec, 'p256', 'b', [B_ADDR]);
    const p = run(
      withCert(baseA(), ca, { cas: [ec.ca], localId: 'fqdn:other.example', remoteId: B_ADDR }),
      withCert(baseB(), cb, { cas: [ec.ca], localId: B_ADDR, remoteId: '%any' }),
    );
    refusedByB(p, /authentication of other\.example failed: its identity other\.example is not in its certificate "C=CH, O=vpcgw test, CN=a" \(subjectAltNames: DNS:a\.example\)/);
  });

  it('the initiator refuses the responder\'s expired certificate', () => {
    const now = Date.now();
    const ca = issue(ec, 'p256', 'a', [A_ADDR]);
    const cb = issue(ec, 'p256', 'b', [B_ADDR], { from: now - 10 * DAY_MS, to: now - DAY_MS });
    const p = run(withCert(baseA(), ca, { cas: [ec.ca], localId: A_ADDR }), withCert(baseB(), cb, { cas: [ec.ca], localId: B_ADDR }));
    expect(p.installs('a')).toHaveLength(0);
    expect(p.logText('a')).toMatch(/authentication of peer 192\.0\.2\.2 failed: certificate "C=CH, O=vpcgw test, CN=b" expired on/);
  });

  it('refuses a PSK peer on a certificate connection (and the other way round)', () => {
    const cb = issue(ec, 'p256', 'b', [B_ADDR]);
    const p = run(baseA(), withCert(baseB(), cb, { cas: [ec.ca], localId: B_ADDR }));
    refusedByB(p, /connection b2a expects a certificate, the peer used a pre-shared key/);
    const ca = issue(ec, 'p256', 'a', [A_ADDR]);
    const q = run(withCert(baseA(), ca, { cas: [ec.ca], localId: A_ADDR }), baseB());
    refusedByB(q, /connection b2a expects a pre-shared key, the peer used AUTH method ECDSA_SHA256_P256/);
  });
});

describe('IKE fragmentation (RFC 7383) with certificate chains', () => {
  // root (ECDSA) -> intermediate (RSA) -> end entities (RSA): each IKE_AUTH carries two
  // certificates and an RSA signature, more than IKE_FRAGMENT_MAX_BYTES
  function chainPair() {
    const root = makeCa('p256', 'Root CA');
    const midKey = newKey('rsa');
    const mid = createCertificate({ subject: 'C=CH, O=vpcgw test, CN=Intermediate CA', key: midKey, ca: true, issuer: { cert: root.ca, key: root.caKey } });
    const midPki: Pki = { ca: mid, caKey: midKey };
    const ca = issue(midPki, 'rsa', 'a', [A_ADDR]);
    const cb = issue(midPki, 'rsa', 'b', [B_ADDR]);
    return {
      a: withCert(baseA(), ca, { cas: [root.ca], localId: A_ADDR, chain: [mid] }),
      b: withCert(baseB(), cb, { cas: [root.ca], localId: B_ADDR, chain: [mid] }),
    };
  }
  const isFragment = (d: Buffer): boolean => d[16] === PayloadType.SKF;

  it('negotiates fragmentation in IKE_SA_INIT and sends IKE_AUTH both ways as SKF fragments', () => {
    const { a, b } = chainPair();
    const p = run(a, b);
    /* IKE_SA_INIT { ... N(IKEV2_FRAGMENTATION_SUPPORTED) } --> <-- { ... N(IKEV2_FRAGMENTATION_SUPPORTED) }
       IKE_AUTH SKF{1/n} ... SKF{n/n} --> <-- SKF{1/m} ... SKF{m/m} */
    const init = decodeMessage(p.wire[1]!.datagram, null);
    expect(init.ok && init.msg.payloads.some((x) => x.type === PayloadType.N && x.notifyType === NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)).toBe(true);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    const frags = p.wire.slice(2).filter((w) => isFragment(w.datagram));
    expect(frags.length).toBeGreaterThanOrEqual(4);
    expect(frags.every((w) => w.datagram.length <= IKE_FRAGMENT_MAX_BYTES)).toBe(true);
    expect(frags.some((w) => w.to.address === B_ADDR) && frags.some((w) => w.to.address === A_ADDR)).toBe(true);
  });

  it('a lost fragment: the initiator retransmits the whole set and the SA comes up', () => {
    const { a, b } = chainPair();
    const p = new TwoPeers([a], [b], undefined, {}, Date.now());
    let dropped = false;
    p.filter = (d) => {
      if (!dropped && isFragment(d.datagram) && d.to.address === B_ADDR) {
        dropped = true;
        return false;
      }
      return true;
    };
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(dropped).toBe(true);
    expect(p.b.status()[0]!.state).not.toBe('ESTABLISHED');
    p.tick(5000);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
  });

  const announces = (d: Buffer): boolean => {
    const m = decodeMessage(d, null);
    return m.ok && m.msg.payloads.some((x) => x.type === PayloadType.N && x.notifyType === NotifyType.IKEV2_FRAGMENTATION_SUPPORTED);
  };

  it('PSK connections announce it too (strongSwan\'s fragmentation=yes); their small messages go whole', () => {
    const p = run(baseA(), baseB());
    expect(announces(p.wire[0]!.datagram)).toBe(true);
    expect(announces(p.wire[1]!.datagram)).toBe(true);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.wire.some((w) => isFragment(w.datagram))).toBe(false);
  });

  it('fragmentation: accept announces it but sends whole messages; the peer\'s fragments are still reassembled', () => {
    const { a, b } = chainPair();
    const p = run({ ...a, fragmentation: 'accept' }, b);
    expect(announces(p.wire[0]!.datagram)).toBe(true);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    const authRequests = p.wire.slice(2).filter((w) => w.to.address === B_ADDR);
    expect(authRequests.some((w) => isFragment(w.datagram))).toBe(false);
    expect(authRequests.some((w) => w.datagram.length > IKE_FRAGMENT_MAX_BYTES)).toBe(true);
    expect(p.wire.slice(2).some((w) => w.to.address === A_ADDR && isFragment(w.datagram))).toBe(true);
  });

  it('fragmentation: no is not announced, so neither side fragments', () => {
    const { a, b } = chainPair();
    const p = run({ ...a, fragmentation: 'no' }, b);
    expect(announces(p.wire[0]!.datagram)).toBe(false);
    expect(announces(p.wire[1]!.datagram)).toBe(false);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.wire.some((w) => isFragment(w.datagram))).toBe(false);
  });

  it('a responder whose connection says no does not answer the announcement', () => {
    const { a, b } = chainPair();
    const p = run(a, { ...b, fragmentation: 'no' });
    expect(announces(p.wire[0]!.datagram)).toBe(true);
    expect(announces(p.wire[1]!.datagram)).toBe(false);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.wire.some((w) => isFragment(w.datagram))).toBe(false);
  });
});
