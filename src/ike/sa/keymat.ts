// IKEv2 key material (RFC 7296 §2.13–§2.18, §2.15).
//
// 1. SKEYSEED = prf(Ni | Nr, g^ir)                                    (§2.14)
//    rekey:    SKEYSEED = prf(SK_d(old), g^ir(new) | Ni | Nr)            (§2.18)
// 2. SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
//    SK_d/SK_pi/SK_pr: PRF output length; SK_a*: INTEG key length (0 for AEAD);
//    SK_e*: ENCR key length + 4-byte salt for AEAD (RFC 5282 §7.1, RFC 7634 §2.1).
// 3. Child KEYMAT = prf+(SK_d, [g^ir(new) |] Ni | Nr), sliced encr(I→R) | integ(I→R) | encr(R→I) | integ(R→I)
//    where I/R are the roles in the exchange that created the child (§2.17).
// 4. PSK AUTH = prf(prf(PSK, "Key Pad for IKEv2"), RealMessage | Nonce(peer) | prf(SK_p, ID'))  (§2.15)
import { createEncTransform, type EncTransform, type EncTransformSpec } from '../../crypto/aead.js';
import { prfPlus, type Prf } from '../../crypto/prf.js';
import { EncrId, IntegId, TransformType } from '../wire/constants.js';
import type { Proposal } from '../wire/types.js';
import type { SkCrypto } from '../wire/message.js';

export interface IkeKeys {
  skD: Buffer;
  skAi: Buffer;
  skAr: Buffer;
  skEi: Buffer;
  skEr: Buffer;
  skPi: Buffer;
  skPr: Buffer;
}

/** Child SA keys in the order of RFC 7296 §2.17: exchange initiator → responder first. */
export interface ChildKeys {
  encrKeyI: Buffer; // I→R, includes the AEAD salt at the end
  integKeyI: Buffer; // I→R, empty for AEAD
  encrKeyR: Buffer; // R→I
  integKeyR: Buffer;
}

// Spec: RFC 7296 §2.15 key pad (17 ASCII bytes, no terminator).
const KEY_PAD = Buffer.from('Key Pad for IKEv2', 'ascii');
// Spec: salt lengths for AEAD ENCR transforms (RFC 4106 §8.1 / RFC 5282 §7.1 / RFC 7634 §2).
const AEAD_SALT_LEN = 4;
const CHACHA20_KEY_LEN = 32;

/** true for the AEAD ENCR transform IDs we support (no INTEG transform). */
export function isAeadEncr(encrId: number): boolean {
  return (
    encrId === EncrId.ENCR_AES_GCM_8 ||
    encrId === EncrId.ENCR_AES_GCM_12 ||
    encrId === EncrId.ENCR_AES_GCM_16 ||
    encrId === EncrId.ENCR_CHACHA20_POLY1305
  );
}

/**
 * ENCR key bytes as taken from prf+ (including the AEAD salt). Throws RangeError for unsupported
 * transforms or a missing/invalid AES key length.
 */
export function encrKeyLength(encrId: number, keyLengthBits: number | undefined): number {
  switch (encrId) {
    case EncrId.ENCR_AES_CBC:
    case EncrId.ENCR_AES_GCM_8:
    case EncrId.ENCR_AES_GCM_12:
    case EncrId.ENCR_AES_GCM_16: {
      if (keyLengthBits !== 128 && keyLengthBits !== 192 && keyLengthBits !== 256) {
        throw new RangeError(`ENCR ${encrId}: key length ${keyLengthBits} bits is not 128/192/256`);
      }
      return keyLengthBits / 8 + (encrId === EncrId.ENCR_AES_CBC ? 0 : AEAD_SALT_LEN);
    }
    case EncrId.ENCR_CHACHA20_POLY1305:
      return CHACHA20_KEY_LEN + AEAD_SALT_LEN;
    default:
      throw new RangeError(`unsupported ENCR transform ${encrId}`);
  }
}

/** INTEG key bytes (RFC 2404 / RFC 4868: the key is the full hash output length). */
export function integKeyLength(integId: number): number {
  switch (integId) {
    case IntegId.NONE:
      return 0;
    case IntegId.AUTH_HMAC_SHA1_96:
      return 20;
    case IntegId.AUTH_HMAC_SHA2_256_128:
      return 32;
    case IntegId.AUTH_HMAC_SHA2_384_192:
      return 48;
    case IntegId.AUTH_HMAC_SHA2_512_256:
      return 64;
    default:
      throw new RangeError(`unsupported INTEG transform ${integId}`);
  }
}

function firstOf(p: Proposal, type: TransformType) {
  return p.transforms.find((t) => t.type === type);
}

/**
 * Key lengths for a *selected* IKE proposal (one transform per type). encrKeyLen includes the AEAD
 * salt; integKeyLen is 0 for AEAD. Throws RangeError when ENCR or PRF is missing or unsupported.
 */
export function ikeKeyLengths(proposal: Proposal): { encrKeyLen: number; integKeyLen: number; prfId: number } {
  const encr = firstOf(proposal, TransformType.ENCR);
  const prf = firstOf(proposal, TransformType.PRF);
  if (!encr) throw new RangeError('IKE proposal has no ENCR transform');
  if (!prf) throw new RangeError('IKE proposal has no PRF transform');
  const encrKeyLen = encrKeyLength(encr.id, encr.keyLength);
  const integ = firstOf(proposal, TransformType.INTEG);
  const integKeyLen = isAeadEncr(encr.id) ? 0 : integKeyLength(integ?.id ?? IntegId.NONE);
  if (!isAeadEncr(encr.id) && integKeyLen === 0) throw new RangeError('non-AEAD proposal has no INTEG transform');
  return { encrKeyLen, integKeyLen, prfId: prf.id };
}

/** Same for an ESP proposal (no PRF). */
export function espKeyLengths(proposal: Proposal): { encrKeyLen: number; integKeyLen: number } {
  const encr = firstOf(proposal, TransformType.ENCR);
  if (!encr) throw new RangeError('ESP proposal has no ENCR transform');
  const encrKeyLen = encrKeyLength(encr.id, encr.keyLength);
  const integ = firstOf(proposal, TransformType.INTEG);
  const integKeyLen = isAeadEncr(encr.id) ? 0 : integKeyLength(integ?.id ?? IntegId.NONE);
  if (!isAeadEncr(encr.id) && integKeyLen === 0) throw new RangeError('non-AEAD proposal has no INTEG transform');
  return { encrKeyLen, integKeyLen };
}

function sliceIkeKeys(prf: Prf, skeyseed: Buffer, nonceI: Buffer, nonceR: Buffer, spiI: Buffer, spiR: Buffer,
  encrKeyLen: number, integKeyLen: number): IkeKeys {
  const seed = Buffer.concat([nonceI, nonceR, spiI, spiR]);
  const p = prf.outLen;
  const total = 3 * p + 2 * integKeyLen + 2 * encrKeyLen;
  const km = prfPlus(prf, skeyseed, seed, total);
  let off = 0;
  const take = (n: number): Buffer => {
    const b = Buffer.from(km.subarray(off, off + n)); // own copy: independent lifetimes
    off += n;
    return b;
  };
  const keys: IkeKeys = {
    skD: take(p),
    skAi: take(integKeyLen),
    skAr: take(integKeyLen),
    skEi: take(encrKeyLen),
    skEr: take(encrKeyLen),
    skPi: take(p),
    skPr: take(p),
  };
  km.fill(0);
  return keys;
}

/** RFC 7296 §2.14: keys of a new IKE SA from IKE_SA_INIT. The SPIs are the final 8-byte SPIs. */
export function deriveIkeKeys(prf: Prf, sharedSecret: Buffer, nonceI: Buffer, nonceR: Buffer, spiI: Buffer,
  spiR: Buffer, encrKeyLen: number, integKeyLen: number): IkeKeys {
  // the nonces concatenated are the HMAC key (HMAC PRFs take any key length)
  const skeyseed = prf.compute(Buffer.concat([nonceI, nonceR]), sharedSecret);
  const keys = sliceIkeKeys(prf, skeyseed, nonceI, nonceR, spiI, spiR, encrKeyLen, integKeyLen);
  skeyseed.fill(0);
  return keys;
}

/**
 * RFC 7296 §2.18: keys of the IKE SA that replaces an old one. `prf` is the NEW SA's PRF,
 * `oldSkD` the old SA's SK_d; nonceI/nonceR and spiI/spiR are from the rekey exchange, the
 * "I" values being those of the peer that sent the CREATE_CHILD_SA request.
 */
export function deriveRekeyedIkeKeys(prf: Prf, oldSkD: Buffer, sharedSecret: Buffer, nonceI: Buffer, nonceR: Buffer,
  spiI: Buffer, spiR: Buffer, encrKeyLen: number, integKeyLen: number): IkeKeys {
  const skeyseed = prf.compute(oldSkD, Buffer.concat([sharedSecret, nonceI, nonceR]));
  const keys = sliceIkeKeys(prf, skeyseed, nonceI, nonceR, spiI, spiR, encrKeyLen, integKeyLen);
  skeyseed.fill(0);
  return keys;
}

export type EncTransformFactory = (spec: EncTransformSpec, encrKey: Buffer, integKey: Buffer) => EncTransform;

/** The EncTransform spec for a selected proposal (IKE or ESP). */
export function encSpecFor(proposal: Proposal): EncTransformSpec {
  const encr = firstOf(proposal, TransformType.ENCR);
  if (!encr) throw new RangeError('proposal has no ENCR transform');
  const integ = firstOf(proposal, TransformType.INTEG);
  const aeadCipher = isAeadEncr(encr.id);
  return {
    encr: encr.id,
    encrKeyBits: encr.id === EncrId.ENCR_CHACHA20_POLY1305 ? 256 : (encr.keyLength ?? 0),
    integ: aeadCipher ? IntegId.NONE : (integ?.id ?? IntegId.NONE),
  };
}

/**
 * SK payload crypto for one IKE SA. RFC 7296 §2.14: messages sent by the original initiator use
 * SK_ei/SK_ai, the other direction SK_er/SK_ar, whether request or response. After an IKE rekey
 * the peer that started the rekey is the original initiator of the new SA (§2.18).
 * `factory` defaults to createEncTransform from src/crypto/aead.ts (override in tests).
 */
export function skCryptoFor(proposal: Proposal, keys: IkeKeys, weAreOriginalInitiator: boolean,
  factory?: EncTransformFactory): SkCrypto {
  const make = factory ?? createEncTransform;
  const spec = encSpecFor(proposal);
  const i = (): EncTransform => make(spec, keys.skEi, keys.skAi);
  const r = (): EncTransform => make(spec, keys.skEr, keys.skAr);
  return weAreOriginalInitiator ? { enc: i(), dec: r() } : { enc: r(), dec: i() };
}

/**
 * RFC 7296 §2.17 child SA KEYMAT. nonceI/nonceR are from the exchange that created the child
 * (IKE_SA_INIT nonces for the IKE_AUTH child) in requester | responder order; dhSecret is the
 * PFS g^ir of a CREATE_CHILD_SA with KE, else null. `prf` is the IKE SA's PRF.
 */
export function deriveChildKeys(prf: Prf, skD: Buffer, nonceI: Buffer, nonceR: Buffer, dhSecret: Buffer | null,
  espProposal: Proposal): ChildKeys {
  const { encrKeyLen, integKeyLen } = espKeyLengths(espProposal);
  const seed = dhSecret ? Buffer.concat([dhSecret, nonceI, nonceR]) : Buffer.concat([nonceI, nonceR]);
  const km = prfPlus(prf, skD, seed, 2 * (encrKeyLen + integKeyLen));
  let off = 0;
  const take = (n: number): Buffer => {
    const b = Buffer.from(km.subarray(off, off + n));
    off += n;
    return b;
  };
  const keys: ChildKeys = {
    encrKeyI: take(encrKeyLen),
    integKeyI: take(integKeyLen),
    encrKeyR: take(encrKeyLen),
    integKeyR: take(integKeyLen),
  };
  km.fill(0);
  return keys;
}

/** RestOfIDPayload / IDx' (RFC 7296 §2.15): ID Type | 3 reserved bytes | identification data. */
export function encodeIdBody(idType: number, data: Buffer): Buffer {
  const out = Buffer.alloc(4 + data.length);
  out[0] = idType;
  data.copy(out, 4);
  return out;
}

/**
 * RFC 7296 §2.15 signed octets: RealMessage | NonceData(peer) | prf(SK_p, IDx').
 * Initiator: RealMessage1, Nr, SK_pi, IDi'. Responder: RealMessage2, Ni, SK_pr, IDr'.
 * The nonce is the nonce data only (no payload header).
 */
export function signedOctets(prf: Prf, realMessage: Buffer, peerNonce: Buffer, skP: Buffer,
  idPayloadBody: Buffer): Buffer {
  return Buffer.concat([realMessage, peerNonce, prf.compute(skP, idPayloadBody)]);
}

/** RFC 7296 §2.15 shared-key AUTH data: prf(prf(PSK, "Key Pad for IKEv2"), <signed octets>). */
export function pskAuthData(prf: Prf, psk: Buffer, realMessage: Buffer, peerNonce: Buffer, skP: Buffer,
  idPayloadBody: Buffer): Buffer {
  const padded = prf.compute(psk, KEY_PAD);
  const auth = prf.compute(padded, signedOctets(prf, realMessage, peerNonce, skP, idPayloadBody));
  padded.fill(0);
  return auth;
}
