import { beforeEach, describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType } from '../../src/ike/wire/constants.js';
import type { Payload } from '../../src/ike/wire/types.js';
import { decodeMessage, encodeMessage } from '../../src/ike/wire/message.js';
import { IkeManager, UNMATCHED_LOG_INTERVAL_MS, type IkeManagerOptions } from '../../src/ike/ike-manager.js';
import { COOKIE_PREVIOUS_SECRET_GRACE_MS, COOKIE_SECRET_LIFETIME_MS } from '../../src/ike/init-guard.js';
import { notify } from '../../src/ike/sa/ike-sa.js';
import { parseProposals } from '../../src/ike/config/proposal.js';
import type { Endpoint, IkeAction } from '../../src/ike/sa/types.js';
import { captureLogger } from '../../src/common/log.js';

// Responder admission control (RFC 7296 §2.6 cookies, RFC 8019 half-open limits) with a fixed
// clock. Every DH key pair the IKE code creates is counted, so "no DH work" is checked directly.
const dh = vi.hoisted(() => ({ created: 0 }));
vi.mock('../../src/crypto/dh.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../src/crypto/dh.js')>();
  return {
    ...orig,
    createKeyExchange: (group: number, privateKey?: Buffer) => {
      dh.created++;
      return orig.createKeyExchange(group, privateKey);
    },
  };
});

const T0 = 1_000_000;
const OTHER_ADDR = '198.51.100.7';
const STRANGER_ADDR = '203.0.113.9';
const TO: Endpoint = { address: B_ADDR, port: 500 };
const IKE_PROPOSALS = parseProposals('aes128gcm16-prfsha256-x25519', 'ike');
// an X25519 public value: any 32 bytes other than the low-order points
const KE_DATA = Buffer.alloc(32, 0x42);

function from(address = A_ADDR): Endpoint {
  return { address, port: 500 };
}

/* IKE_SA_INIT request: [N(COOKIE)] SA KE Ni --> */
function initRequest(spiI: Buffer, nonce: Buffer, cookie?: Buffer): Buffer {
  const payloads: Payload[] = [];
  if (cookie) payloads.push(notify(NotifyType.COOKIE, cookie));
  payloads.push({ type: PayloadType.SA, proposals: IKE_PROPOSALS.map((p) => ({ ...p, spi: Buffer.alloc(0) })) });
  payloads.push({ type: PayloadType.KE, group: 31, data: KE_DATA });
  payloads.push({ type: PayloadType.NONCE, nonce });
  return encodeMessage({ spiI, spiR: Buffer.alloc(8), exchangeType: ExchangeType.IKE_SA_INIT, flags: HeaderFlag.I, messageId: 0 }, payloads, null);
}

function responder(opts: Omit<IkeManagerOptions, 'log'> = {}) {
  const log = captureLogger();
  const mgr = new IkeManager({ log, now: T0, ...opts });
  mgr.setConfigs([
    peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] }),
  ]);
  return { mgr, log };
}

/** The single datagram of a reply, decoded; null when the request was dropped silently. */
function reply(actions: IkeAction[]) {
  const sends = actions.filter((a) => a.kind === 'send');
  if (sends.length === 0) return null;
  expect(sends).toHaveLength(1);
  const res = decodeMessage((sends[0] as Extract<IkeAction, { kind: 'send' }>).datagram, null);
  if (!res.ok) throw new Error(`reply does not decode: ${res.reason}`);
  return res.msg;
}

function cookieOf(actions: IkeAction[]): Buffer {
  const msg = reply(actions)!;
  /* <-- IKE_SA_INIT response: N(COOKIE) and nothing else */
  expect(msg.payloads).toHaveLength(1);
  const n = msg.payloads[0]!;
  if (n.type !== PayloadType.N || n.notifyType !== NotifyType.COOKIE) throw new Error('reply is not N(COOKIE)');
  return Buffer.from(n.data);
}

function isFullResponse(actions: IkeAction[]): boolean {
  const msg = reply(actions);
  return !!msg && msg.payloads.some((p) => p.type === PayloadType.SA) && msg.payloads.some((p) => p.type === PayloadType.KE);
}

/** A fresh request with a random SPI and nonce (as a flood sends them). */
function fresh(mgr: IkeManager, now: number, address = A_ADDR) {
  const spiI = randomBytes(8);
  const nonce = randomBytes(32);
  const actions = mgr.receive(initRequest(spiI, nonce), from(address), TO, now);
  return { spiI, nonce, actions };
}

beforeEach(() => {
  dh.created = 0;
});

describe('IKE_SA_INIT admission: cookies (RFC 7296 §2.6)', () => {
  it('below the threshold a request gets an SA; once half-open SAs reach it, only N(COOKIE) and no state, no DH', () => {
    const { mgr } = responder({ initLimits: { cookieThreshold: 2, cookieThresholdPerSource: 100, halfOpenPerSource: 100 } });
    expect(isFullResponse(fresh(mgr, T0).actions)).toBe(true);
    expect(isFullResponse(fresh(mgr, T0).actions)).toBe(true);
    expect(mgr.size).toBe(2);
    expect(dh.created).toBe(2);

    const third = fresh(mgr, T0);
    const cookie = cookieOf(third.actions);
    expect(cookie.length).toBeGreaterThanOrEqual(1);
    expect(cookie.length).toBeLessThanOrEqual(64);
    expect(mgr.size).toBe(2);
    expect(dh.created).toBe(2);
    expect(mgr.responderStats()).toMatchObject({ halfOpen: 2, halfOpenSources: 1, cookiesSent: 1 });

    // the same request again (no cookie) gets the same cookie: nothing was remembered about it
    expect(cookieOf(mgr.receive(initRequest(third.spiI, third.nonce), from(), TO, T0 + 100))).toEqual(cookie);

    /* IKE_SA_INIT request: N(COOKIE) SA KE Ni --> <-- SA KE Nr */
    expect(isFullResponse(mgr.receive(initRequest(third.spiI, third.nonce, cookie), from(), TO, T0 + 200))).toBe(true);
    expect(mgr.size).toBe(3);
    expect(dh.created).toBe(3);
  });

  it('a cookie is bound to Ni, SPIi and the source address', () => {
    const { mgr } = responder({ initLimits: { cookieThreshold: 0 } });
    const { spiI, nonce, actions } = fresh(mgr, T0);
    const cookie = cookieOf(actions);
    const otherNonce = randomBytes(32);
    cookieOf(mgr.receive(initRequest(spiI, otherNonce, cookie), from(), TO, T0));
    cookieOf(mgr.receive(initRequest(randomBytes(8), nonce, cookie), from(), TO, T0));
    const flipped = Buffer.from(cookie);
    flipped[flipped.length - 1]! ^= 1;
    cookieOf(mgr.receive(initRequest(spiI, nonce, flipped), from(), TO, T0));
    expect(mgr.counters.cookieInvalid).toBe(3);
    expect(mgr.size).toBe(0);
    expect(dh.created).toBe(0);
    expect(isFullResponse(mgr.receive(initRequest(spiI, nonce, cookie), from(), TO, T0))).toBe(true);
  });

  it('after a secret rotation the previous secret is honoured briefly, then refused', () => {
    const { mgr } = responder({ initLimits: { cookieThreshold: 0 } });
    const a = fresh(mgr, T0);
    const b = fresh(mgr, T0);
    const cookieA = cookieOf(a.actions);
    const cookieB = cookieOf(b.actions);
    // the secret rotates at T0 + lifetime; a cookie of the old one still works within the grace
    const rotation = T0 + COOKIE_SECRET_LIFETIME_MS;
    expect(isFullResponse(mgr.receive(initRequest(a.spiI, a.nonce, cookieA), from(), TO, rotation))).toBe(true);
    // past the grace the old cookie is refused and a new one (of the current secret) is sent
    const late = rotation + COOKIE_PREVIOUS_SECRET_GRACE_MS;
    const renewed = cookieOf(mgr.receive(initRequest(b.spiI, b.nonce, cookieB), from(), TO, late));
    expect(renewed).not.toEqual(cookieB);
    expect(mgr.counters.cookieInvalid).toBe(1);
    expect(isFullResponse(mgr.receive(initRequest(b.spiI, b.nonce, renewed), from(), TO, late))).toBe(true);
    expect(mgr.size).toBe(2);
  });

  it('a source with many half-open SAs must send cookies even while the total is low (strongSwan cookie_threshold_ip)', () => {
    const { mgr } = responder({ initLimits: { cookieThreshold: 100, cookieThresholdPerSource: 1 } });
    mgr.setConfigs([
      peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] }),
      peerConfig({ name: 'any', local: B_ADDR, remote: null, remoteId: '%any', localTs: ['10.2.0.0/16'], remoteTs: ['10.3.0.0/16'] }),
    ]);
    expect(isFullResponse(fresh(mgr, T0).actions)).toBe(true);
    cookieOf(fresh(mgr, T0).actions);
    expect(isFullResponse(fresh(mgr, T0, OTHER_ADDR).actions)).toBe(true);
  });

  it('an initiator IkeManager answers the cookie and establishes the SA', () => {
    const a = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
    const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
    const p = new TwoPeers([a], [b], undefined, { initLimits: { cookieThreshold: 0 } });
    p.run(p.a.initiate('a2b', p.now), 'a');
    /* IKE_SA_INIT { SA KE Ni } --> <-- { N(COOKIE) }
       IKE_SA_INIT { N(COOKIE) SA KE Ni } --> <-- { SA KE Nr }
       IKE_AUTH --> <-- */
    expect(p.b.counters.cookiesSent).toBe(1);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.responderStats().halfOpen).toBe(0);
  });
});

describe('IKE_SA_INIT admission: half-open limits (RFC 8019)', () => {
  it('per source: beyond halfOpenPerSource requests from that address are dropped; other sources still get in', () => {
    const { mgr } = responder({ initLimits: { cookieThreshold: 100, cookieThresholdPerSource: 100, halfOpenPerSource: 2 } });
    mgr.setConfigs([
      peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] }),
      peerConfig({ name: 'any', local: B_ADDR, remote: null, remoteId: '%any', localTs: ['10.2.0.0/16'], remoteTs: ['10.3.0.0/16'] }),
    ]);
    fresh(mgr, T0);
    fresh(mgr, T0);
    expect(fresh(mgr, T0).actions).toEqual([]);
    expect(mgr.counters.halfOpenPerSource).toBe(1);
    expect(dh.created).toBe(2);
    expect(isFullResponse(fresh(mgr, T0, OTHER_ADDR).actions)).toBe(true);
    expect(mgr.responderStats()).toMatchObject({ halfOpen: 3, halfOpenSources: 2 });
  });

  it('in total: at halfOpenLimit every new request is dropped before decoding or crypto', () => {
    const { mgr } = responder({ initLimits: { cookieThreshold: 100, cookieThresholdPerSource: 100, halfOpenPerSource: 100, halfOpenLimit: 3 } });
    for (let i = 0; i < 3; i++) fresh(mgr, T0);
    expect(dh.created).toBe(3);
    for (let i = 0; i < 5; i++) expect(fresh(mgr, T0).actions).toEqual([]);
    expect(mgr.counters.halfOpenLimit).toBe(5);
    expect(mgr.counters.cookiesSent).toBe(0);
    expect(dh.created).toBe(3);
    expect(mgr.size).toBe(3);
  });

  it('a retransmitted IKE_SA_INIT of a half-open SA still gets its cached response at the limit', () => {
    const { mgr } = responder({ initLimits: { halfOpenLimit: 1 } });
    const spiI = randomBytes(8);
    const nonce = randomBytes(32);
    const first = reply(mgr.receive(initRequest(spiI, nonce), from(), TO, T0));
    const again = reply(mgr.receive(initRequest(spiI, nonce), from(), TO, T0 + 1000));
    expect(again).toEqual(first);
    expect(dh.created).toBe(1);
  });

  it('the half-open timeout frees the slots', () => {
    const { mgr } = responder({ halfOpenTimeoutSec: 5, initLimits: { cookieThreshold: 100, cookieThresholdPerSource: 100, halfOpenPerSource: 2 } });
    fresh(mgr, T0);
    fresh(mgr, T0);
    expect(fresh(mgr, T0).actions).toEqual([]);
    expect(mgr.nextDeadline()).toBe(T0 + 5000);
    mgr.tick(T0 + 4999);
    expect(mgr.responderStats().halfOpen).toBe(2);
    mgr.tick(T0 + 5000);
    expect(mgr.responderStats()).toMatchObject({ halfOpen: 0, halfOpenSources: 0 });
    expect(mgr.size).toBe(0);
    expect(isFullResponse(fresh(mgr, T0 + 5000).actions)).toBe(true);
  });

  it('an established SA no longer counts as half-open', () => {
    const a = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] });
    const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
    const p = new TwoPeers([a], [b]);
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.b.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.b.responderStats()).toMatchObject({ halfOpen: 0, halfOpenSources: 0, cookiesSent: 0 });
  });
});

describe('IKE_SA_INIT from a source no connection matches', () => {
  it('is dropped with no reply, no IkeSa and no DH, and logged at most once per source per interval', () => {
    const { mgr, log } = responder();
    for (let i = 0; i < 50; i++) expect(fresh(mgr, T0 + i, STRANGER_ADDR).actions).toEqual([]);
    expect(mgr.size).toBe(0);
    expect(dh.created).toBe(0);
    expect(mgr.counters.noConfig).toBe(50);
    const lines = () => log.lines.filter((l) => /no connection is configured/.test(l.msg ?? ''));
    expect(lines()).toHaveLength(1);
    expect(lines()[0]!.obj).toMatchObject({ peer: `${STRANGER_ADDR}:500` });
    fresh(mgr, T0 + UNMATCHED_LOG_INTERVAL_MS, STRANGER_ADDR);
    expect(lines()).toHaveLength(2);
    expect(lines()[1]!.obj).toMatchObject({ droppedSinceLastLog: 49, droppedTotal: 51 });
    // a different source gets its own line
    fresh(mgr, T0 + UNMATCHED_LOG_INTERVAL_MS, OTHER_ADDR);
    expect(lines()).toHaveLength(3);
  });

  it('a "%any" connection matches every source', () => {
    const { mgr } = responder();
    mgr.setConfigs([peerConfig({ name: 'any', local: B_ADDR, remote: null, remoteId: '%any', localTs: ['10.2.0.0/16'], remoteTs: ['10.3.0.0/16'] })]);
    expect(isFullResponse(fresh(mgr, T0, STRANGER_ADDR).actions)).toBe(true);
    expect(mgr.counters.noConfig).toBe(0);
  });
});
