import { beforeAll, describe, expect, it } from 'vitest';
import { captureLogger } from '../../../src/common/log.js';
import { SslSession } from '../../../src/ssl/session.js';
import { serverKeysFromBlock } from '../../../src/ssl/control/key-derivation.js';
import { type TestPki, makeTestPki } from '../../helpers/pki.js';
import { makeHarness, TEST_PUSH } from '../../helpers/ssl-harness.js';
import { CLIENT_PEER_INFO_26 } from '../../helpers/ssl-test-client.js';

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

describe('SslSession full handshake against an in-process TLS client', () => {
  it('hard reset -> TLS -> km2 both ways -> authenticated -> keys equal on both sides -> early PUSH_REPLY (EKM, TLS 1.3)', async () => {
    const h = makeHarness(pki);
    h.client.start(h.now());
    const ok = await h.pump(() => h.client.commands.some((c) => c.startsWith('PUSH_REPLY')));
    expect(ok).toBe(true);
    expect(h.client.errors).toEqual([]);
    const auth = h.of('authenticated');
    expect(auth).toHaveLength(1);
    expect(auth[0]!.user).toBe('alice');
    expect(auth[0]!.certCn).toBe('alice');
    expect(auth[0]!.peerInfo.get('IV_VER')).toBe('2.6.14');
    const keys = h.of('keys');
    expect(keys).toHaveLength(1);
    expect(keys[0]!.keyId).toBe(0);
    expect(keys[0]!.cipher).toBe('AES-256-GCM');
    expect(keys[0]!.peerId).toBe(7);
    // the client's view (EKM, since IV_PROTO has bit 3): its decrypt key is our encrypt key
    const cks = h.client.keys.get(0)!;
    const mine = serverKeysFromBlock(cks.ekmBlock!, 'AES-256-GCM');
    expect(keys[0]!.encKey.equals(mine.encKey)).toBe(true);
    expect(keys[0]!.decKey.equals(mine.decKey)).toBe(true);
    expect(keys[0]!.encImplicitIv.equals(mine.encImplicitIv)).toBe(true);
    expect(keys[0]!.decImplicitIv.equals(mine.decImplicitIv)).toBe(true);
    expect(keys[0]!.encKey.length).toBe(32);
    expect(keys[0]!.encImplicitIv.length).toBe(8);
    const push = h.client.commands.find((c) => c.startsWith('PUSH_REPLY'))!;
    expect(push).toContain('ifconfig 10.8.0.2 255.255.255.0');
    expect(push).toContain('peer-id 7');
    expect(push).toContain('cipher AES-256-GCM');
    expect(push).toContain('protocol-flags cc-exit tls-ekm');
    expect(push).not.toContain('dyn-tls-crypt');
    expect(h.server.state).toBe('established');
    // every server packet stays under --tls-mtu
    for (const a of h.of('send')) expect(a.packet.length).toBeLessThanOrEqual(1250);
  });

  it('TLS 1.2 client without EKM (IV_PROTO bit 3 clear) gets PRF keys, and PUSH_REPLY only after PUSH_REQUEST', async () => {
    const peerInfo = CLIENT_PEER_INFO_26.replace('IV_PROTO=990', 'IV_PROTO=2');
    const h = makeHarness(pki, { client: { peerInfo, tlsMaxVersion: 'TLSv1.2' } });
    h.client.start(h.now());
    expect(await h.pump(() => h.of('keys').length === 1 && h.client.keys.get(0)?.prfBlock != null)).toBe(true);
    await h.pump(() => false, 20);
    expect(h.client.commands).toEqual([]); // no early push without bit 2
    h.client.sendText('PUSH_REQUEST');
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    const push = h.client.commands[0]!;
    expect(push.startsWith('PUSH_REPLY,')).toBe(true);
    expect(push).not.toContain('tls-ekm');
    expect(push).not.toContain('protocol-flags');
    expect(push).toContain('peer-id 7');
    const k = h.of('keys')[0]!;
    const mine = serverKeysFromBlock(h.client.keys.get(0)!.prfBlock!, 'AES-256-GCM');
    expect(k.encKey.equals(mine.encKey)).toBe(true);
    expect(k.decImplicitIv.equals(mine.decImplicitIv)).toBe(true);
  });

  it('PUSH_REQUEST that arrives before setPush is answered once setPush is called', async () => {
    const peerInfo = CLIENT_PEER_INFO_26.replace('IV_PROTO=990', 'IV_PROTO=10');
    const h = makeHarness(pki, { client: { peerInfo }, autoPush: null });
    h.client.start(h.now());
    expect(await h.pump(() => h.of('authenticated').length === 1 && h.client.keys.get(0)?.serverKm2 != null)).toBe(true);
    h.client.sendText('PUSH_REQUEST');
    await h.pump(() => false, 20);
    expect(h.client.commands).toEqual([]);
    expect(h.of('keys')).toHaveLength(0); // no keys before the shell accepted the client
    h.server.setPush(TEST_PUSH);
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    expect(h.of('keys')).toHaveLength(1);
  });

  it('reject(): AUTH_FAILED reaches the client after our km2, then the session closes', async () => {
    const h = makeHarness(pki, { autoPush: null });
    h.client.start(h.now());
    expect(await h.pump(() => h.of('authenticated').length === 1)).toBe(true);
    h.server.reject('user disabled');
    expect(await h.pump(() => h.client.commands.includes('AUTH_FAILED,user disabled'))).toBe(true);
    expect(h.of('keys')).toHaveLength(0);
    expect(h.server.state).toBe('closing');
    h.advance(6000);
    expect(h.of('closed').map((a) => a.reason)).toEqual(['rejected: user disabled']);
  });

  it('a client certificate from another CA is refused with a clear reason, and it is logged', async () => {
    const log = captureLogger();
    const h = makeHarness(pki, { client: { cert: pki.foreignClient.cert, key: pki.foreignClient.key }, log });
    h.client.start(h.now());
    // the client is told (it would otherwise retry until its hand-window ends) ...
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    expect(h.client.commands).toEqual(['AUTH_FAILED,client certificate rejected']);
    expect(h.server.state).toBe('closing');
    h.advance(5000);
    expect(h.of('closed')[0]!.reason).toMatch(/^client certificate rejected: UNABLE_TO_(VERIFY_LEAF_SIGNATURE|GET_ISSUER_CERT)/);
    expect(h.of('authenticated')).toHaveLength(0);
    expect(h.of('keys')).toHaveLength(0);
    expect(log.lines.some((l) => l.level === 'warn' && l.msg === 'client certificate rejected')).toBe(true);
  });

  it('an expired client certificate is refused with CERT_HAS_EXPIRED', async () => {
    const h = makeHarness(pki, { client: { cert: pki.expiredClient.cert, key: pki.expiredClient.key } });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    expect(h.client.commands).toEqual(['AUTH_FAILED,client certificate rejected']);
    h.advance(5000);
    expect(h.of('closed')).toHaveLength(1);
    expect(h.of('closed')[0]!.reason).toBe('client certificate rejected: CERT_HAS_EXPIRED');
    expect(h.of('keys')).toHaveLength(0);
  });

  it('a client with no acceptable cipher gets AUTH_FAILED and the session closes with "no common cipher"', async () => {
    const peerInfo = CLIENT_PEER_INFO_26.replace('IV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305', 'IV_CIPHERS=BF-CBC:AES-256-CBC');
    const h = makeHarness(pki, { client: { peerInfo } });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    expect(h.client.commands[0]).toBe('AUTH_FAILED,no common cipher');
    expect(h.of('authenticated')).toHaveLength(0);
    h.advance(6000);
    expect(h.of('closed').map((a) => a.reason)).toEqual(['no common cipher']);
  });

  it('the server picks its own first preference among the client ciphers', async () => {
    const peerInfo = CLIENT_PEER_INFO_26.replace('IV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305', 'IV_CIPHERS=CHACHA20-POLY1305:AES-128-GCM');
    const h = makeHarness(pki, { client: { peerInfo } });
    h.client.start(h.now());
    expect(await h.pump(() => h.of('keys').length === 1)).toBe(true);
    expect(h.of('keys')[0]!.cipher).toBe('AES-128-GCM');
    expect(h.of('keys')[0]!.encKey.length).toBe(16);
  });

  it('completes the handshake despite losing every third packet in both directions (retransmits by tick)', async () => {
    const h = makeHarness(pki);
    let n = 0;
    h.filter.toServer = () => (++n % 3 === 0 ? 0 : 1);
    let m = 0;
    h.filter.toClient = () => (++m % 3 === 0 ? 0 : 2); // and duplicate the rest
    h.client.start(h.now());
    let done = false;
    for (let round = 0; round < 40 && !done; round++) {
      done = await h.pump(() => h.client.commands.some((c) => c.startsWith('PUSH_REPLY')), 30);
      if (!done) h.advance(2000);
    }
    expect(done).toBe(true);
    expect(h.client.errors).toEqual([]);
    expect(h.of('keys')).toHaveLength(1);
  });

  it('closes with "handshake timeout" when the client vanishes after its hard reset', async () => {
    const h = makeHarness(pki);
    h.filter.toServer = (() => {
      let first = true;
      return () => (first ? ((first = false), 1) : 0);
    })();
    h.client.start(h.now());
    await h.pump(() => false, 10);
    for (let i = 0; i < 31 && h.of('closed').length === 0; i++) h.advance(2000);
    expect(h.of('closed').map((a) => a.reason)).toEqual(['handshake timeout']);
    // retransmissions of our hard reset happened, with backoff
    const resets = h.of('send').filter((a) => a.packet[0] === 0x40);
    expect(resets.length).toBeGreaterThanOrEqual(4);
    expect(resets.length).toBeLessThanOrEqual(8);
  });

  it('EXIT from the client is reported and closes the session after the linger time', async () => {
    const h = makeHarness(pki);
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    h.client.sendText('EXIT');
    expect(await h.pump(() => h.of('control').length === 1)).toBe(true);
    expect(h.of('control')[0]!.text).toBe('EXIT');
    h.advance(5000);
    expect(h.of('closed').map((a) => a.reason)).toEqual(['client exit']);
  });

  it('isInitialPacket accepts only a clean client hard reset', () => {
    const ok = Buffer.from('38cb3a27b28d7562fb0000000000', 'hex');
    expect(SslSession.isInitialPacket(ok)).toBe(true);
    expect(SslSession.isInitialPacket(Buffer.from('39cb3a27b28d7562fb0000000000', 'hex'))).toBe(false); // key id 1
    expect(SslSession.isInitialPacket(Buffer.from('20cb3a27b28d7562fb0000000000', 'hex'))).toBe(false); // P_CONTROL_V1
    expect(SslSession.isInitialPacket(Buffer.from('38cb3a27b28d7562fb00000000', 'hex'))).toBe(false); // short
    expect(SslSession.isInitialPacket(Buffer.from('38cb3a27b28d7562fb0000000001', 'hex'))).toBe(false); // message id 1
  });
});

describe('SslSession renegotiation', () => {
  async function established() {
    const h = makeHarness(pki, { server: { renegSec: 0, tranWindowSec: 60 } });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.some((c) => c.startsWith('PUSH_REPLY')))).toBe(true);
    return h;
  }

  it('client SOFT_RESET: new key id 1, brand-new TLS session, new keys, old key kept as lame duck then retired', async () => {
    const h = await established();
    const k0 = h.of('keys')[0]!;
    h.advance(1000);
    const keyId = h.client.renegotiate(h.now());
    expect(keyId).toBe(1);
    expect(await h.pump(() => h.of('keys').length === 2)).toBe(true);
    const k1 = h.of('keys')[1]!;
    expect(k1.keyId).toBe(1);
    expect(k1.cipher).toBe('AES-256-GCM');
    expect(k1.encKey.equals(k0.encKey)).toBe(false);
    const mine = serverKeysFromBlock(h.client.keys.get(1)!.ekmBlock!, 'AES-256-GCM');
    expect(k1.encKey.equals(mine.encKey)).toBe(true);
    expect(k1.decKey.equals(mine.decKey)).toBe(true);
    // no second PUSH_REPLY after a renegotiation, and no second 'authenticated'
    await h.pump(() => false, 10);
    expect(h.client.commands.filter((c) => c.startsWith('PUSH_REPLY'))).toHaveLength(1);
    expect(h.of('authenticated')).toHaveLength(1);
    expect(h.of('retireKey')).toHaveLength(0);
    // the lame duck lives for tranWindowSec (60 s here), then is retired
    h.advance(59_000);
    expect(h.of('retireKey')).toHaveLength(0);
    h.advance(2_000);
    expect(h.of('retireKey')).toEqual([{ kind: 'retireKey', keyId: 0 }]);
    expect(h.server.state).toBe('established');
  });

  it('server-initiated after renegSec: SOFT_RESET from us, client answers, new keys', async () => {
    const h = makeHarness(pki, { server: { renegSec: 30 } });
    h.client.start(h.now());
    expect(await h.pump(() => h.of('keys').length === 1)).toBe(true);
    expect(h.server.nextDeadline()).toBeLessThanOrEqual(h.now() + 30_000);
    h.advance(30_000);
    const soft = h.of('send').filter((a) => a.packet[0] === ((3 << 3) | 1));
    expect(soft.length).toBeGreaterThanOrEqual(1);
    expect(await h.pump(() => h.of('keys').length === 2)).toBe(true);
    expect(h.of('keys')[1]!.keyId).toBe(1);
    const mine = serverKeysFromBlock(h.client.keys.get(1)!.ekmBlock!, 'AES-256-GCM');
    expect(h.of('keys')[1]!.encKey.equals(mine.encKey)).toBe(true);
  });

  it('key ids run 1..7 and wrap to 1; a replaced lame duck is retired', async () => {
    const h = await established();
    const seen: number[] = [];
    for (let i = 0; i < 8; i++) {
      h.advance(100);
      const want = h.of('keys').length + 1;
      seen.push(h.client.renegotiate(h.now()));
      expect(await h.pump(() => h.of('keys').length === want)).toBe(true);
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 1]);
    expect(h.of('keys').map((k) => k.keyId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 1]);
    // every renegotiation after the first replaced the previous lame duck
    expect(h.of('retireKey').map((r) => r.keyId)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('a SOFT_RESET with an out-of-sync key id is dropped without effect', async () => {
    const h = await established();
    const before = h.server.dropped;
    // hand-made SOFT_RESET for key id 3 (expected next is 1)
    const pkt = Buffer.concat([Buffer.from([(3 << 3) | 3]), h.client.sid, Buffer.from([0, 0, 0, 0, 0])]);
    h.server.receiveControl(pkt, h.now());
    expect(h.server.dropped).toBe(before + 1);
    await h.pump(() => false, 5);
    expect(h.of('keys')).toHaveLength(1);
  });

  it('drops packets with a foreign session id or an ACK for another session', async () => {
    const h = await established();
    const before = h.server.dropped;
    const other = Buffer.from('0102030405060708', 'hex');
    const ack = (sender: Buffer, acked: Buffer) => Buffer.concat([Buffer.from([0x28]), sender, Buffer.from([1, 0, 0, 0, 1]), acked]);
    h.server.receiveControl(ack(other, h.server.sessionId), h.now());
    h.server.receiveControl(ack(h.client.sid, other), h.now());
    expect(h.server.dropped).toBe(before + 2);
    expect(h.of('closed')).toHaveLength(0);
  });

  it('a new hard reset with another client session id ends this session (the shell starts a new one)', async () => {
    const h = await established();
    h.server.receiveControl(Buffer.from('380102030405060708' + '0000000000', 'hex'), h.now());
    expect(h.of('closed').map((c) => c.reason)).toEqual(['peer started a new session']);
  });

  it('garbage and truncated packets never throw and never change state', async () => {
    const h = await established();
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256);
    for (let i = 0; i < 300; i++) {
      const len = rnd() % 60;
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = rnd();
      if (len > 0 && i % 2 === 0) b[0] = 0x20; // pretend P_CONTROL_V1
      expect(() => h.server.receiveControl(b, h.now())).not.toThrow();
    }
    expect(h.server.state).toBe('established');
    expect(h.of('closed')).toHaveLength(0);
  });
});

describe('SslSession edge cases', () => {
  it('a client without any certificate is refused (NO_PEER_CERTIFICATE)', async () => {
    const h = makeHarness(pki, { client: { cert: undefined, key: undefined } });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    h.advance(5000);
    expect(h.of('closed')).toHaveLength(1);
    expect(h.of('closed')[0]!.reason).toBe('client certificate rejected: NO_PEER_CERTIFICATE');
  });

  it('never logs the password, key material or the km2 randoms', async () => {
    const log = captureLogger();
    const h = makeHarness(pki, { client: { username: 'alice', password: 'Sup3r-S3cret-PW' }, log });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.some((c) => c.startsWith('PUSH_REPLY')))).toBe(true);
    const text = JSON.stringify(log.lines.map((l) => [l.bindings, l.obj, l.msg]));
    expect(text).toContain('data channel keys ready');
    expect(text).not.toContain('Sup3r-S3cret-PW');
    const k = h.of('keys')[0]!;
    for (const secret of [k.encKey, k.decKey, k.encImplicitIv, k.decImplicitIv]) expect(text).not.toContain(secret.toString('hex'));
  });

  it('renegotiate() starts a server SOFT_RESET only when established and idle', async () => {
    const h = makeHarness(pki);
    expect(h.server.renegotiate(h.now())).toBe(false);
    h.client.start(h.now());
    expect(await h.pump(() => h.of('keys').length === 1)).toBe(true);
    expect(h.server.renegotiate(h.now())).toBe(true);
    expect(h.server.renegotiate(h.now())).toBe(false); // one under way
    expect(await h.pump(() => h.of('keys').length === 2)).toBe(true);
    expect(h.of('keys')[1]!.keyId).toBe(1);
  });

  it('a renegotiation that never completes is abandoned after the handshake window; the old key stays', async () => {
    const h = makeHarness(pki, { server: { handshakeWindowSec: 20 } });
    h.client.start(h.now());
    expect(await h.pump(() => h.of('keys').length === 1)).toBe(true);
    h.filter.toServer = () => 0; // the client goes silent
    expect(h.server.renegotiate(h.now())).toBe(true);
    for (let i = 0; i < 12; i++) h.advance(2000);
    expect(h.of('keys')).toHaveLength(1);
    expect(h.of('closed')).toHaveLength(0);
    expect(h.of('retireKey')).toHaveLength(0);
    expect(h.server.state).toBe('established');
    // and a later one can start again
    expect(h.server.renegotiate(h.now())).toBe(true);
  });
});

describe('SslSession control text limits', () => {
  it('an endless unterminated control message closes the session instead of growing memory', async () => {
    const h = makeHarness(pki);
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    h.client.keys.get(0)!.tls!.writePlaintext(Buffer.alloc(20_000, 0x41));
    expect(await h.pump(() => h.of('closed').length === 1)).toBe(true);
    expect(h.of('closed')[0]!.reason).toBe('control message too long');
  });

  it('unknown client commands are passed to the shell as control text', async () => {
    const h = makeHarness(pki);
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    h.client.sendText('INFO,hello\r\n');
    expect(await h.pump(() => h.of('control').length === 1)).toBe(true);
    expect(h.of('control')[0]!.text).toBe('INFO,hello');
    expect(h.server.state).toBe('established');
  });
});
