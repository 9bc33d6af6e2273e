import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import { formatPrefix } from '../../src/common/ip.js';
import { ExchangeType, NotifyType } from '../../src/ike/wire/constants.js';
import { decodeMessage } from '../../src/ike/wire/message.js';
import { IkeManager } from '../../src/ike/ike-manager.js';
import { silentLogger } from '../../src/common/log.js';

function pair(o: { ikeA?: string; ikeB?: string; espA?: string; espB?: string; pskB?: string; tsB?: { local: string[]; remote: string[] } } = {}) {
  const a = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, ike: o.ikeA, esp: o.espA, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
  const b = peerConfig({
    name: 'b2a', local: B_ADDR, remote: A_ADDR, ike: o.ikeB, esp: o.espB, psk: o.pskB,
    localTs: o.tsB?.local ?? ['10.2.0.0/16'], remoteTs: o.tsB?.remote ?? ['10.1.0.0/16'],
  });
  return new TwoPeers([a], [b]);
}

function exchanges(p: TwoPeers): string[] {
  return p.wire.map((w) => `${ExchangeType[w.datagram[18]!]}${w.datagram[19]! & 0x20 ? ' resp' : ' req'} #${w.datagram.readUInt32BE(20)}`);
}

describe('IKEv2 exchanges between two in-process peers', () => {
  it('IKE_SA_INIT + IKE_AUTH with PSK establish the IKE SA and one CHILD_SA with matching keys', () => {
    const p = pair();
    p.run(p.a.initiate('a2b', p.now), 'a');
    /* IKE_SA_INIT { SA KE Ni N(NATD_S) N(NATD_D) } --> <-- { SA KE Nr N(NATD_S) N(NATD_D) }
       IKE_AUTH SK{ IDi N(INITIAL_CONTACT) IDr AUTH SA TSi TSr } --> <-- SK{ IDr AUTH SA TSi TSr } */
    expect(exchanges(p)).toEqual(['IKE_SA_INIT req #0', 'IKE_SA_INIT resp #0', 'IKE_AUTH req #1', 'IKE_AUTH resp #1']);
    // port floating: IKE_AUTH goes 4500 -> 4500 because NAT-D is faked (UDP-encapsulated ESP)
    expect(p.wire[2]!.from.port).toBe(4500);
    expect(p.wire[2]!.to.port).toBe(4500);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    const ia = p.installs('a');
    const ib = p.installs('b');
    expect(ia).toHaveLength(1);
    expect(ib).toHaveLength(1);
    expect(ia[0]!.spiOut).toBe(ib[0]!.spiIn);
    expect(ia[0]!.spiIn).toBe(ib[0]!.spiOut);
    expect(ia[0]!.encrKeyOut.equals(ib[0]!.encrKeyIn)).toBe(true);
    expect(ia[0]!.encrKeyIn.equals(ib[0]!.encrKeyOut)).toBe(true);
    expect(ia[0]!.encrKeyOut.equals(ia[0]!.encrKeyIn)).toBe(false);
    expect(ia[0]!.encrKeyOut.length).toBe(20); // AES-128 key + 4-byte salt
    expect(ia[0]!.remote).toEqual({ address: B_ADDR, port: 4500 });
    expect(ib[0]!.remote).toEqual({ address: A_ADDR, port: 4500 });
    expect(ia[0]!.localTs.map(formatPrefix)).toEqual(['10.1.0.0/16']);
    expect(ib[0]!.localTs.map(formatPrefix)).toEqual(['10.2.0.0/16']);
    expect(p.a.status()[0]!.children[0]!.spiIn).toBe(p.b.status()[0]!.children[0]!.spiOut);
  });

  it.each([
    ['aes256-sha256-modp2048', 'aes256-sha256', 32, 32],
    ['aes256gcm16-prfsha384-ecp384', 'aes256gcm16', 36, 0],
    ['aes128-sha1-modp3072', 'aes128-sha1', 16, 20],
    ['aes256-sha512-ecp521', 'aes256-sha512', 32, 64],
    ['aes128-sha384-ecp256', 'aes128-sha384', 16, 48],
  ])('negotiates %s / esp %s', (ike, esp, encrLen, integLen) => {
    const p = pair({ ikeA: ike, ikeB: ike, espA: esp, espB: esp });
    p.run(p.a.initiate('a2b', p.now), 'a');
    const ia = p.installs('a');
    const ib = p.installs('b');
    expect(ia).toHaveLength(1);
    expect(ia[0]!.encrKeyOut.length).toBe(encrLen);
    expect(ia[0]!.integKeyOut.length).toBe(integLen);
    expect(ia[0]!.integKeyOut.equals(ib[0]!.integKeyIn)).toBe(true);
  });

  it('retries IKE_SA_INIT with the group the responder asks for (INVALID_KE_PAYLOAD)', () => {
    const p = pair({ ikeA: 'aes128gcm16-prfsha256-x25519-modp2048', ikeB: 'aes128gcm16-prfsha256-modp2048' });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(exchanges(p).slice(0, 3)).toEqual(['IKE_SA_INIT req #0', 'IKE_SA_INIT resp #0', 'IKE_SA_INIT req #0']);
    const first = decodeMessage(p.wire[1]!.datagram, null);
    expect(first.ok && first.msg.payloads.some((x) => x.type === 41 && x.notifyType === NotifyType.INVALID_KE_PAYLOAD)).toBe(true);
    // the stateless error reply keeps SPIr zero and no state on the responder
    expect(p.wire[1]!.datagram.subarray(8, 16).equals(Buffer.alloc(8))).toBe(true);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()).toHaveLength(1);
  });

  it('fails with a clear reason when no IKE proposal matches (NO_PROPOSAL_CHOSEN)', () => {
    const p = pair({ ikeA: 'aes128gcm16-prfsha256-x25519', ikeB: 'aes256-sha512-modp4096' });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.a.status()).toHaveLength(0);
    expect(p.b.status()).toHaveLength(0);
    expect(p.logText('a')).toMatch(/NO_PROPOSAL_CHOSEN/);
    expect(p.logText('b')).toMatch(/no acceptable IKE proposal/);
    expect(p.b.counters.noProposal).toBe(1);
  });

  it('rejects a wrong PSK with AUTHENTICATION_FAILED on both sides and installs nothing', () => {
    const p = pair({ pskB: 'another-test-fixture-psk' });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.installs('a')).toHaveLength(0);
    expect(p.installs('b')).toHaveLength(0);
    expect(p.a.status()).toHaveLength(0);
    expect(p.b.status()).toHaveLength(0);
    expect(p.logText('a')).toMatch(/AUTHENTICATION_FAILED/);
    expect(p.logText('b')).toMatch(/pre-shared keys differ/);
    // the PSKs never reach the logs
    expect(p.logText('a') + p.logText('b')).not.toMatch(/test-fixture-psk/);
  });

  it('narrows traffic selectors to the responder policy', () => {
    const p = pair({ tsB: { local: ['10.2.3.0/24'], remote: ['10.1.0.0/24', '10.1.7.7/32'] } });
    p.run(p.a.initiate('a2b', p.now), 'a');
    const ia = p.installs('a')[0]!;
    expect(ia.remoteTs.map(formatPrefix)).toEqual(['10.2.3.0/24']);
    expect(ia.localTs.map(formatPrefix).sort()).toEqual(['10.1.0.0/24', '10.1.7.7/32']);
  });

  it('keeps the IKE SA but creates no child on TS_UNACCEPTABLE', () => {
    const p = pair({ tsB: { local: ['10.9.0.0/16'], remote: ['10.1.0.0/16'] } });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.installs('a')).toHaveLength(0);
    expect(p.installs('b')).toHaveLength(0);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.logText('a')).toMatch(/TS_UNACCEPTABLE/);
  });

  it('keeps the IKE SA but creates no child when no ESP proposal matches', () => {
    const p = pair({ espA: 'aes128gcm16', espB: 'aes256-sha512' });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.installs('a')).toHaveLength(0);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.logText('a')).toMatch(/NO_PROPOSAL_CHOSEN/);
  });

  it('retransmits a lost request with back-off and the responder answers from its cache', () => {
    const p = pair();
    // drop the first IKE_AUTH response (index 3)
    p.filter = (_d, i) => i !== 3;
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.a.status()[0]!.state).toBe('AUTH_SENT');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    p.tick(3999);
    expect(p.wire).toHaveLength(4);
    p.tick(1);
    // request resent byte for byte, the response comes from the cache (same bytes), no second child
    expect(p.wire[4]!.datagram.equals(p.wire[2]!.datagram)).toBe(true);
    expect(p.wire[5]!.datagram.equals(p.wire[3]!.datagram)).toBe(true);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.installs('b')).toHaveLength(1);
    expect(p.installs('a')).toHaveLength(1);
  });

  it('gives up after the retry budget when the peer never answers', () => {
    const p = pair();
    p.filter = (d) => d.to.address !== B_ADDR; // B never hears anything
    p.run(p.a.initiate('a2b', p.now), 'a');
    const delays = [4000, 7200, 12960, 23328, 41991, 75583]; // 4 s x 1.8^n (strongSwan defaults)
    for (const d of delays.slice(0, 5)) p.tick(d);
    expect(p.wire).toHaveLength(6); // first send + 5 retransmits
    expect(p.a.status()).toHaveLength(1);
    p.tick(delays[5]!);
    expect(p.a.status()).toHaveLength(0);
    expect(p.actionsA.some((x) => x.kind === 'ikeDown')).toBe(true);
    expect(p.logText('a')).toMatch(/giving up after 5 retransmits/);
  });

  it('answers liveness checks and deletes the IKE SA and its children on terminate', () => {
    const p = pair();
    p.run(p.a.initiate('a2b', p.now), 'a');
    p.run(p.b.dpd('b2a', p.now), 'b');
    expect(exchanges(p).slice(4)).toEqual(['INFORMATIONAL req #0', 'INFORMATIONAL resp #0']);
    p.run(p.a.terminate('a2b', p.now), 'a');
    expect(exchanges(p).slice(6)).toEqual(['INFORMATIONAL req #2', 'INFORMATIONAL resp #2']);
    expect(p.a.status()).toHaveLength(0);
    expect(p.b.status()).toHaveLength(0);
    expect(p.deletes('a')).toHaveLength(1);
    expect(p.deletes('b')).toHaveLength(1);
  });

  it('deletes a single CHILD_SA and the peer answers with its own inbound SPI', () => {
    const p = pair();
    p.run(p.a.initiate('a2b', p.now), 'a');
    const spi = p.installs('a')[0]!.spiIn;
    p.run(p.a.deleteChild(spi, p.now), 'a');
    const resp = decodeMessage(p.wire[5]!.datagram, null);
    expect(resp.ok).toBe(false); // encrypted: cannot be read without keys
    expect(p.a.status()[0]!.children).toHaveLength(0);
    expect(p.b.status()[0]!.children).toHaveLength(0);
    expect(p.deletes('b')[0]).toMatchObject({ spiOut: spi });
  });

  it('ignores a retransmitted IKE_SA_INIT (same SA, cached response)', () => {
    const p = pair();
    p.filter = (_d, i) => i !== 1; // lose the IKE_SA_INIT response
    p.run(p.a.initiate('a2b', p.now), 'a');
    p.tick(4000);
    expect(p.wire[2]!.datagram.equals(p.wire[0]!.datagram)).toBe(true);
    expect(p.wire[3]!.datagram.equals(p.wire[1]!.datagram)).toBe(true);
    expect(p.b.status()).toHaveLength(1);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  });

  it('drops malformed and random datagrams without throwing and counts them', () => {
    const m = new IkeManager({ log: silentLogger });
    m.setConfigs([peerConfig({ local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] })]);
    const from = { address: A_ADDR, port: 500 };
    const to = { address: B_ADDR, port: 500 };
    for (let i = 0; i < 500; i++) {
      const len = i % 60;
      const d = randomBytes(len);
      if (i % 3 === 0 && len >= 28) d[18] = 34;
      expect(() => m.receive(d, from, to, 1000)).not.toThrow();
    }
    expect(m.counters.malformed + m.counters.unknownSpi).toBeGreaterThan(0);
    expect(m.size).toBe(0);
  });

  it('answers an unknown critical payload with UNSUPPORTED_CRITICAL_PAYLOAD and keeps no state', () => {
    const p = pair();
    const init = p.a.initiate('a2b', p.now).find((x) => x.kind === 'send') as { datagram: Buffer };
    // append a critical payload of type 200 after the last payload
    const d = Buffer.from(init.datagram);
    let off = 28;
    let next = d[16]!;
    let lastOff = -1;
    while (next !== 0) {
      lastOff = off;
      next = d[off]!;
      off += d.readUInt16BE(off + 2);
    }
    d[lastOff] = 200;
    const extra = Buffer.from([0, 0x80, 0, 8, 1, 2, 3, 4]);
    const out = Buffer.concat([d, extra]);
    out.writeUInt32BE(out.length, 24);
    const res = p.b.receive(out, { address: A_ADDR, port: 500 }, { address: B_ADDR, port: 500 }, p.now);
    const reply = res.find((x) => x.kind === 'send') as { datagram: Buffer } | undefined;
    expect(reply).toBeDefined();
    const msg = decodeMessage(reply!.datagram, null);
    expect(msg.ok && msg.msg.payloads[0]).toMatchObject({ notifyType: NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD });
    expect(p.b.size).toBe(0);
  });
});
