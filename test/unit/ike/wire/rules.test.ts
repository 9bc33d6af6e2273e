// Exchange payload tables (RFC 7296 §1.2-1.5; strongSwan src/libcharon/encoding/message.c rules).
import { describe, expect, it } from 'vitest';
import { checkPayloadTypes, checkRules, rulesFor } from '../../../../src/ike/wire/rules.js';
import { ExchangeType, HeaderFlag, PayloadType } from '../../../../src/ike/wire/constants.js';
import type { IkeMessage, Payload } from '../../../../src/ike/wire/types.js';
import { notify } from '../../../../src/ike/wire/payloads/notify.js';

function msg(exchangeType: number, response: boolean, encrypted: boolean, types: Payload[]): IkeMessage {
  return {
    header: { spiI: Buffer.alloc(8), spiR: Buffer.alloc(8), nextPayload: 0, version: 0x20, exchangeType, flags: response ? HeaderFlag.R : HeaderFlag.I, messageId: 0, length: 0 },
    payloads: types,
    encrypted,
    skipped: [],
  };
}
const SA: Payload = { type: PayloadType.SA, proposals: [] };
const KE: Payload = { type: PayloadType.KE, group: 31, data: Buffer.alloc(32) };
const NO: Payload = { type: PayloadType.NONCE, nonce: Buffer.alloc(32) };
const IDI: Payload = { type: PayloadType.IDi, idType: 2, data: Buffer.from('a') };
const AUTH: Payload = { type: PayloadType.AUTH, method: 2, data: Buffer.alloc(32) };
const D: Payload = { type: PayloadType.D, protocol: 1, spiSize: 0, spis: [] };

describe('checkRules', () => {
  it('IKE_SA_INIT request needs exactly one SA, KE, Nonce, in the clear', () => {
    expect(checkRules(msg(ExchangeType.IKE_SA_INIT, false, false, [notify(16390), SA, KE, NO, notify(16388)]))).toBeNull();
    expect(checkRules(msg(ExchangeType.IKE_SA_INIT, false, false, [SA, NO]))).toMatch(/missing payload type 34/);
    expect(checkRules(msg(ExchangeType.IKE_SA_INIT, false, false, [SA, KE, NO, NO]))).toMatch(/at most 1/);
    expect(checkRules(msg(ExchangeType.IKE_SA_INIT, false, true, [SA, KE, NO]))).toMatch(/not be encrypted/);
  });

  it('IKE_SA_INIT response may be a lone notify (INVALID_KE, NO_PROPOSAL_CHOSEN, COOKIE) and carry CERTREQ', () => {
    expect(checkRules(msg(ExchangeType.IKE_SA_INIT, true, false, [notify(17, Buffer.from('0013', 'hex'))]))).toBeNull();
    expect(checkRules(msg(ExchangeType.IKE_SA_INIT, true, false, [SA, KE, NO, { type: PayloadType.CERTREQ, encoding: 4, data: Buffer.alloc(20) }]))).toBeNull();
  });

  it('IKE_AUTH must be encrypted; the request needs IDi; an AUTH_FAILED-only response is fine', () => {
    expect(checkRules(msg(ExchangeType.IKE_AUTH, false, true, [IDI, AUTH, SA]))).toBeNull();
    expect(checkRules(msg(ExchangeType.IKE_AUTH, false, false, [IDI, AUTH]))).toMatch(/must be encrypted/);
    expect(checkRules(msg(ExchangeType.IKE_AUTH, false, true, [AUTH]))).toMatch(/missing payload type 35/);
    expect(checkRules(msg(ExchangeType.IKE_AUTH, true, true, [notify(24)]))).toBeNull();
    expect(checkRules(msg(ExchangeType.IKE_AUTH, true, true, [KE]))).toMatch(/not allowed/);
  });

  it('CREATE_CHILD_SA request needs SA and Nonce; INFORMATIONAL allows D/N/empty', () => {
    expect(checkRules(msg(ExchangeType.CREATE_CHILD_SA, false, true, [notify(16393), SA, NO, KE]))).toBeNull();
    expect(checkRules(msg(ExchangeType.CREATE_CHILD_SA, false, true, [SA]))).toMatch(/missing payload type 40/);
    expect(checkRules(msg(ExchangeType.CREATE_CHILD_SA, true, true, [notify(38)]))).toBeNull();
    expect(checkRules(msg(ExchangeType.INFORMATIONAL, false, true, []))).toBeNull();
    expect(checkRules(msg(ExchangeType.INFORMATIONAL, false, true, [D, D]))).toBeNull();
    expect(checkRules(msg(ExchangeType.INFORMATIONAL, false, true, [SA]))).toMatch(/not allowed/);
    expect(checkRules(msg(43, false, true, []))).toMatch(/unsupported exchange/);
  });
});

describe('checkPayloadTypes (on generic headers, before bodies are decoded)', () => {
  it('allows the table\'s types up to their maximum, leaves minimum counts to checkRules', () => {
    const initReq = rulesFor(ExchangeType.IKE_SA_INIT, false)!;
    expect(checkPayloadTypes(initReq, [PayloadType.N, PayloadType.SA, PayloadType.KE, PayloadType.NONCE, PayloadType.N])).toBeNull();
    expect(checkPayloadTypes(initReq, [PayloadType.SA])).toBeNull();
    expect(checkPayloadTypes(initReq, [PayloadType.SA, PayloadType.D])).toBe('payload type 42 not allowed here');
    expect(checkPayloadTypes(initReq, [PayloadType.KE, PayloadType.KE])).toBe('2 payloads of type 34, at most 1');
    const info = rulesFor(ExchangeType.INFORMATIONAL, true)!;
    expect(checkPayloadTypes(info, [PayloadType.D, PayloadType.D, PayloadType.N])).toBeNull();
    expect(checkPayloadTypes(info, [PayloadType.CP, PayloadType.CP])).toMatch(/at most 1/);
  });
});
