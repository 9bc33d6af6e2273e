// Recorded INVALID_KE_PAYLOAD round (test/recorded/ike/strongswan-invalid-ke.json):
//   IKE_SA_INIT { SA KE(31) No N... } -->            initiator guesses X25519
//               <-- { N(INVALID_KE_PAYLOAD, 000e) }  SPIr = 0, no state (RFC 7296 §1.3)
//   IKE_SA_INIT { SA KE(14) No N... } -->            same SPIi, MODP-2048
//               <-- { SA KE No N... }
//   IKE_AUTH ... : AUTH signs the RETRIED request (RealMessage1 is the last request sent, §2.15).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { decodeMessage, describeMessage } from '../../../../src/ike/wire/message.js';
import { createPrf } from '../../../../src/crypto/prf.js';
import { deriveIkeKeys, encodeIdBody, ikeKeyLengths, pskAuthData, skCryptoFor } from '../../../../src/ike/sa/keymat.js';
import { dhGroupOf } from '../../../../src/ike/config/proposal.js';
import { HeaderFlag, NotifyType, PayloadType } from '../../../../src/ike/wire/constants.js';
import type { IkeMessage, Payload } from '../../../../src/ike/wire/types.js';

const fx = JSON.parse(readFileSync(new URL('../../../recorded/ike/strongswan-invalid-ke.json', import.meta.url), 'utf8')) as {
  psk: string;
  datagrams: Array<{ hex: string }>;
  logged: string[];
  keys: Record<string, string>;
};
const dg = fx.datagrams.map((d) => Buffer.from(d.hex, 'hex'));
type Of<T, P = Payload> = P extends { type: infer U } ? (T extends U ? P : never) : never;
function ok(b: Buffer): IkeMessage {
  const r = decodeMessage(b, null);
  if (!r.ok) throw new Error(r.detail);
  return r.msg;
}
function find<T extends Payload['type']>(m: IkeMessage, type: T): Of<T> {
  return m.payloads.find((x) => x.type === type) as Of<T>;
}

describe('recorded INVALID_KE_PAYLOAD retry', () => {
  const first = ok(dg[0]!);
  const invalid = ok(dg[1]!);
  const retry = ok(dg[2]!);
  const resp = ok(dg[3]!);

  it('the error reply is a lone N(INVALID_KE_PAYLOAD, 14) with SPIr 0, 38 bytes', () => {
    expect(dg[1]!.length).toBe(38);
    expect(describeMessage(invalid).replace('#', '')).toBe(fx.logged[1]);
    expect(invalid.header.spiR.equals(Buffer.alloc(8))).toBe(true);
    expect(invalid.header.flags).toBe(HeaderFlag.R);
    const n = find(invalid, PayloadType.N);
    expect([n.notifyType, n.data.toString('hex')]).toEqual([NotifyType.INVALID_KE_PAYLOAD, '000e']);
  });

  it('the retry keeps SPIi and MID 0 and carries a 256-byte MODP-2048 KE', () => {
    expect(find(first, PayloadType.KE).group).toBe(31);
    expect(retry.header.spiI.equals(first.header.spiI)).toBe(true);
    expect(retry.header.messageId).toBe(0);
    const ke = find(retry, PayloadType.KE);
    expect([ke.group, ke.data.length]).toEqual([14, 256]);
    expect(dhGroupOf(find(resp, PayloadType.SA).proposals[0]!)).toBe(14);
  });

  it('keys come from the retry; AUTH covers the retried request, not the first one', () => {
    const chosen = find(resp, PayloadType.SA).proposals[0]!;
    const l = ikeKeyLengths(chosen);
    const prf = createPrf(l.prfId);
    const nI = find(retry, PayloadType.NONCE).nonce;
    const nR = find(resp, PayloadType.NONCE).nonce;
    const keys = deriveIkeKeys(prf, Buffer.from(fx.keys.sharedSecret!, 'hex'), nI, nR, resp.header.spiI, resp.header.spiR, l.encrKeyLen, l.integKeyLen);
    expect(keys.skD.toString('hex')).toBe(fx.keys.skD);
    const auth = decodeMessage(dg[4]!, skCryptoFor(chosen, keys, false));
    expect(auth.ok).toBe(true);
    if (!auth.ok) return;
    const idi = find(auth.msg, PayloadType.IDi);
    const body = encodeIdBody(idi.idType, idi.data);
    const good = pskAuthData(prf, Buffer.from(fx.psk), dg[2]!, nR, keys.skPi, body);
    const wrong = pskAuthData(prf, Buffer.from(fx.psk), dg[0]!, nR, keys.skPi, body);
    expect(find(auth.msg, PayloadType.AUTH).data.equals(good)).toBe(true);
    expect(good.toString('hex')).toBe(fx.keys.authI);
    expect(wrong.equals(good)).toBe(false);
  });
});
