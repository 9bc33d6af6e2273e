// Recorded strongSwan 5.9.8 rekeys (test/recorded/ike/strongswan-rekey-pfs.json, see README):
//   A = original initiator (192.0.2.1), B = original responder.
//   #0-#3  IKE_SA_INIT, IKE_AUTH                                   (IKE SA 1, A is I)
//   #4     A: CREATE_CHILD_SA { N(REKEY_SA) SA No KE TSi TSr } -->  child rekey with PFS (ECP-256)
//   #5     B: <-- { SA No KE TSi TSr }
//   #6/#7  INFORMATIONAL { D } / { D }                              old child deleted
//   #8     B: CREATE_CHILD_SA { SA No KE } -->                      IKE rekey by the ORIGINAL RESPONDER
//   #9     A: <-- { SA No KE }
//   #10/#11 B: INFORMATIONAL { D } on the old IKE SA / { }
//   #12-#15 INFORMATIONAL on the new IKE SA, where B is now the original initiator (RFC 7296 §2.18)
// Checks: child KEYMAT with PFS (RFC 7296 §2.17), rekeyed SKEYSEED/SK_* with the new SPIs
// (§2.18), and that skCryptoFor with the flipped role decrypts the new SA's traffic and sets flags.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { decodeMessage, describeMessage, type SkCrypto } from '../../../../src/ike/wire/message.js';
import { createPrf } from '../../../../src/crypto/prf.js';
import { deriveChildKeys, deriveIkeKeys, deriveRekeyedIkeKeys, ikeKeyLengths, skCryptoFor } from '../../../../src/ike/sa/keymat.js';
import { dhGroupOf, proposalToString } from '../../../../src/ike/config/proposal.js';
import { HeaderFlag, NotifyType, PayloadType, ProtocolId } from '../../../../src/ike/wire/constants.js';
import type { IkeMessage, Payload } from '../../../../src/ike/wire/types.js';

const fx = JSON.parse(readFileSync(new URL('../../../recorded/ike/strongswan-rekey-pfs.json', import.meta.url), 'utf8')) as {
  datagrams: Array<{ from: string; hex: string }>;
  logged: string[];
  series: Record<string, string[]>;
};
const dg = fx.datagrams.map((d) => Buffer.from(d.hex, 'hex'));
const s = (name: string, i: number) => Buffer.from(fx.series[name]![i]!, 'hex');

type Of<T, P = Payload> = P extends { type: infer U } ? (T extends U ? P : never) : never;
function find<T extends Payload['type']>(m: IkeMessage, type: T): Of<T> {
  const p = m.payloads.find((x) => x.type === type);
  if (!p) throw new Error(`no payload ${type}`);
  return p as Of<T>;
}
function ok(buf: Buffer, sk: SkCrypto | null): IkeMessage {
  const r = decodeMessage(buf, sk);
  if (!r.ok) throw new Error(`decode failed: ${r.reason} ${r.detail}`);
  return r.msg;
}
/** strongSwan logs "request 2", we log "request #2"; the log lines are from A's side, in datagram order */
function loggedFor(m: IkeMessage): string {
  return describeMessage(m).replace('#', '');
}

describe('recorded strongSwan rekeys (child with PFS, IKE by the original responder)', () => {
  const init = ok(dg[0]!, null);
  const initR = ok(dg[1]!, null);
  const ikeProp = find(initR, PayloadType.SA).proposals[0]!;
  const { encrKeyLen, integKeyLen, prfId } = ikeKeyLengths(ikeProp);
  const prf = createPrf(prfId);
  const keys1 = deriveIkeKeys(prf, s('shared Diffie Hellman secret', 0), find(init, PayloadType.NONCE).nonce,
    find(initR, PayloadType.NONCE).nonce, initR.header.spiI, initR.header.spiR, encrKeyLen, integKeyLen);
  const a1 = skCryptoFor(ikeProp, keys1, true); // A on IKE SA 1
  const b1 = skCryptoFor(ikeProp, keys1, false); // B on IKE SA 1

  it('IKE SA 1 keys equal charon\'s first key dump', () => {
    expect(keys1.skD.equals(s('Sk_d secret', 0))).toBe(true);
    expect(keys1.skEr.equals(s('Sk_er secret', 0))).toBe(true);
  });

  it('child rekey with PFS: KEYMAT = prf+(SK_d, g^ir | Ni | Nr), A→B first', () => {
    const req = ok(dg[4]!, b1);
    const resp = ok(dg[5]!, a1);
    expect(loggedFor(req)).toBe(fx.logged[4]);
    expect(loggedFor(resp)).toBe(fx.logged[5]);
    const rekeySa = req.payloads.find((p) => p.type === PayloadType.N && p.notifyType === NotifyType.REKEY_SA) as Of<PayloadType.N>;
    expect([rekeySa.protocol, rekeySa.spi.length]).toEqual([ProtocolId.ESP, 4]);
    const esp = find(resp, PayloadType.SA).proposals[0]!;
    expect(proposalToString(esp)).toBe('AES_CBC_128/HMAC_SHA2_256_128/ECP_256/NO_EXT_SEQ');
    expect(find(req, PayloadType.KE).group).toBe(dhGroupOf(esp));
    const ni = find(req, PayloadType.NONCE).nonce;
    const nr = find(resp, PayloadType.NONCE).nonce;
    const dh = s('DH secret', 0);
    expect(s('seed', 1).equals(Buffer.concat([dh, ni, nr]))).toBe(true);
    const ck = deriveChildKeys(prf, keys1.skD, ni, nr, dh, esp);
    expect(ck.encrKeyI.equals(s('encryption initiator key', 1))).toBe(true);
    expect(ck.integKeyI.equals(s('integrity initiator key', 1))).toBe(true);
    expect(ck.encrKeyR.equals(s('encryption responder key', 1))).toBe(true);
    expect(ck.integKeyR.equals(s('integrity responder key', 1))).toBe(true);
  });

  it('old child deleted with D(ESP, sender\'s inbound SPI) both ways', () => {
    const d1 = find(ok(dg[6]!, b1), PayloadType.D);
    const d2 = find(ok(dg[7]!, a1), PayloadType.D);
    expect([d1.protocol, d1.spiSize, d1.spis.length, d2.spis.length]).toEqual([ProtocolId.ESP, 4, 1, 1]);
    expect(d1.spis[0]!.equals(d2.spis[0]!)).toBe(false);
  });

  // IKE rekey started by B, the original responder: B's messages on IKE SA 1 still use SK_er
  const req = ok(dg[8]!, a1);
  const resp = ok(dg[9]!, b1);
  const newProp = find(resp, PayloadType.SA).proposals[0]!;
  const spiI2 = find(req, PayloadType.SA).proposals[0]!.spi; // B's new SPI: B is I of the new SA
  const spiR2 = newProp.spi;
  const l2 = ikeKeyLengths(newProp);
  const keys2 = deriveRekeyedIkeKeys(createPrf(l2.prfId), keys1.skD, s('shared Diffie Hellman secret', 1),
    find(req, PayloadType.NONCE).nonce, find(resp, PayloadType.NONCE).nonce, spiI2, spiR2, l2.encrKeyLen, l2.integKeyLen);

  it('IKE rekey request/response on the old SA (B sends with SK_er, no I flag)', () => {
    expect(req.header.flags).toBe(0);
    expect(resp.header.flags).toBe(HeaderFlag.I | HeaderFlag.R);
    expect(loggedFor(req)).toBe(fx.logged[8]);
    expect(loggedFor(resp)).toBe(fx.logged[9]);
    expect([newProp.protocol, spiI2.length, spiR2.length]).toEqual([ProtocolId.IKE, 8, 8]);
  });

  it('rekeyed SKEYSEED = prf(SK_d(old), g^ir | Ni | Nr); SK_* from prf+ over Ni | Nr | SPIi\' | SPIr\'', () => {
    const skeyseed = prf.compute(keys1.skD, Buffer.concat([s('shared Diffie Hellman secret', 1), find(req, PayloadType.NONCE).nonce, find(resp, PayloadType.NONCE).nonce]));
    expect(skeyseed.equals(s('SKEYSEED', 1))).toBe(true);
    for (const [k, n] of [['skD', 'Sk_d secret'], ['skAi', 'Sk_ai secret'], ['skAr', 'Sk_ar secret'], ['skEi', 'Sk_ei secret'],
      ['skEr', 'Sk_er secret'], ['skPi', 'Sk_pi secret'], ['skPr', 'Sk_pr secret']] as const) {
      expect(keys2[k].toString('hex'), k).toBe(fx.series[n]![1]);
    }
  });

  it('old IKE SA deleted by B with D(IKE) under the old keys', () => {
    const d = ok(dg[10]!, a1);
    expect(find(d, PayloadType.D).protocol).toBe(ProtocolId.IKE);
    expect(ok(dg[11]!, b1).payloads).toHaveLength(0);
  });

  it('on the new IKE SA B is the original initiator: A decodes with weAreOriginalInitiator=false', () => {
    const a2 = skCryptoFor(newProp, keys2, false);
    const b2 = skCryptoFor(newProp, keys2, true);
    for (const k of [12, 13, 14, 15]) {
      const fromA = fx.datagrams[k]!.from === 'initiator';
      const m = ok(dg[k]!, fromA ? b2 : a2);
      expect(m.header.spiI.equals(spiI2)).toBe(true);
      expect(m.header.spiR.equals(spiR2)).toBe(true);
      // the I flag follows the new roles: set on B's messages only
      expect((m.header.flags & HeaderFlag.I) !== 0).toBe(!fromA);
      expect(loggedFor(m)).toBe(fx.logged[k]);
      // the old role assignment no longer decrypts
      expect(decodeMessage(dg[k]!, fromA ? a2 : b2).ok).toBe(false);
    }
  });
});
