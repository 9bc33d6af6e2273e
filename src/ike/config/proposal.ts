// Proposal strings in strongSwan's swanctl syntax, and responder-side proposal selection
// (RFC 7296 §2.7, §3.3.6).
//
// Syntax: a comma-separated list of proposals; each proposal is algorithm keywords joined by '-':
//   "aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048", "aes128-aes256-sha256-ecp256-modp2048"
// - several keywords of one transform type are alternatives (RFC 7296 §3.3: same type = OR);
// - in IKE proposals an integrity keyword also adds the PRF on the same hash unless a prf* keyword
//   is given ("sha256" = HMAC_SHA2_256_128 + PRF_HMAC_SHA2_256); AEAD proposals need prf* explicitly;
// - ESP proposals get NO_EXT_SEQ unless esn/noesn is given; a DH group in ESP text means PFS for
//   CREATE_CHILD_SA; IKE_AUTH offers must drop it (stripDh), as strongSwan does;
// - "default" expands to strongSwan 5.9.8's default proposals restricted to what we implement.
import { ConfigError } from '../../common/errors.js';
import { DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType } from '../wire/constants.js';
import type { Proposal, Transform } from '../wire/types.js';

type Kw = { type: TransformType; id: number; keyLength?: number; alsoPrf?: number };

const KEYWORDS = new Map<string, Kw>();
function kw(names: string[], t: Kw): void {
  for (const n of names) KEYWORDS.set(n, t);
}

// ENCR
for (const bits of [128, 192, 256]) {
  kw([`aes${bits}`], { type: TransformType.ENCR, id: EncrId.ENCR_AES_CBC, keyLength: bits });
  // ICV length in bytes (gcm16) or bits (gcm128), as strongSwan accepts both
  kw([`aes${bits}gcm8`, `aes${bits}gcm64`], { type: TransformType.ENCR, id: EncrId.ENCR_AES_GCM_8, keyLength: bits });
  kw([`aes${bits}gcm12`, `aes${bits}gcm96`], { type: TransformType.ENCR, id: EncrId.ENCR_AES_GCM_12, keyLength: bits });
  kw([`aes${bits}gcm16`, `aes${bits}gcm128`, `aes${bits}gcm`], {
    type: TransformType.ENCR,
    id: EncrId.ENCR_AES_GCM_16,
    keyLength: bits,
  });
}
kw(['aes'], { type: TransformType.ENCR, id: EncrId.ENCR_AES_CBC, keyLength: 128 });
kw(['chacha20poly1305'], { type: TransformType.ENCR, id: EncrId.ENCR_CHACHA20_POLY1305 });
// INTEG (with the PRF it implies in IKE proposals)
kw(['sha1', 'sha'], { type: TransformType.INTEG, id: IntegId.AUTH_HMAC_SHA1_96, alsoPrf: PrfId.PRF_HMAC_SHA1 });
kw(['sha256', 'sha2_256'], { type: TransformType.INTEG, id: IntegId.AUTH_HMAC_SHA2_256_128, alsoPrf: PrfId.PRF_HMAC_SHA2_256 });
kw(['sha384', 'sha2_384'], { type: TransformType.INTEG, id: IntegId.AUTH_HMAC_SHA2_384_192, alsoPrf: PrfId.PRF_HMAC_SHA2_384 });
kw(['sha512', 'sha2_512'], { type: TransformType.INTEG, id: IntegId.AUTH_HMAC_SHA2_512_256, alsoPrf: PrfId.PRF_HMAC_SHA2_512 });
// PRF
kw(['prfsha1'], { type: TransformType.PRF, id: PrfId.PRF_HMAC_SHA1 });
kw(['prfsha256'], { type: TransformType.PRF, id: PrfId.PRF_HMAC_SHA2_256 });
kw(['prfsha384'], { type: TransformType.PRF, id: PrfId.PRF_HMAC_SHA2_384 });
kw(['prfsha512'], { type: TransformType.PRF, id: PrfId.PRF_HMAC_SHA2_512 });
// DH
kw(['modp2048'], { type: TransformType.DH, id: DhId.MODP_2048 });
kw(['modp3072'], { type: TransformType.DH, id: DhId.MODP_3072 });
kw(['modp4096'], { type: TransformType.DH, id: DhId.MODP_4096 });
kw(['ecp256'], { type: TransformType.DH, id: DhId.ECP_256 });
kw(['ecp384'], { type: TransformType.DH, id: DhId.ECP_384 });
kw(['ecp521'], { type: TransformType.DH, id: DhId.ECP_521 });
kw(['x25519', 'curve25519'], { type: TransformType.DH, id: DhId.CURVE25519 });
kw(['x448', 'curve448'], { type: TransformType.DH, id: DhId.CURVE448 });
// ESN
kw(['esn'], { type: TransformType.ESN, id: EsnId.ESN });
kw(['noesn'], { type: TransformType.ESN, id: EsnId.NO_ESN });

const KNOWN = 'known algorithms: aes128|aes192|aes256, aes{128,192,256}gcm{8,12,16}, chacha20poly1305, ' +
  'sha1|sha256|sha384|sha512, prfsha1|prfsha256|prfsha384|prfsha512, ' +
  'modp2048|modp3072|modp4096|ecp256|ecp384|ecp521|x25519|curve25519|x448|curve448, esn|noesn, or "default"';

// strongSwan 5.9.8's default proposal (its `default` keyword, see proposal_create_default in
// src/libstrongswan/crypto/proposal/proposal.c), without the algorithms we do not implement.
const DEFAULT_DH = 'x25519-ecp256-ecp384-ecp521-modp3072-modp4096-modp2048';
const DEFAULT_PRF = 'prfsha256-prfsha384-prfsha512-prfsha1';
const DEFAULT_IKE = [
  `aes128-aes192-aes256-sha256-sha384-sha512-sha1-${DEFAULT_PRF}-${DEFAULT_DH}`,
  `aes128gcm16-aes192gcm16-aes256gcm16-aes128gcm12-aes192gcm12-aes256gcm12-aes128gcm8-aes192gcm8-aes256gcm8-chacha20poly1305-${DEFAULT_PRF}-${DEFAULT_DH}`,
];
const DEFAULT_ESP = ['aes128gcm16-aes192gcm16-aes256gcm16', 'aes128-aes192-aes256-sha256-sha384-sha512-sha1'];

const TYPE_ORDER = [TransformType.ENCR, TransformType.INTEG, TransformType.PRF, TransformType.DH, TransformType.ESN];

function isAead(id: number): boolean {
  return (
    id === EncrId.ENCR_AES_GCM_8 ||
    id === EncrId.ENCR_AES_GCM_12 ||
    id === EncrId.ENCR_AES_GCM_16 ||
    id === EncrId.ENCR_CHACHA20_POLY1305
  );
}

function sameTransform(a: Transform, b: Transform): boolean {
  return a.type === b.type && a.id === b.id && (a.keyLength ?? 0) === (b.keyLength ?? 0);
}

function parseOne(text: string, kind: 'ike' | 'esp', num: number, path: string, whole: string): Proposal {
  const by = new Map<TransformType, Transform[]>();
  const impliedPrf: Transform[] = [];
  const add = (list: Transform[], t: Transform) => {
    if (!list.some((x) => sameTransform(x, t))) list.push(t);
  };
  for (const token of text.split('-')) {
    const k = KEYWORDS.get(token.trim().toLowerCase());
    if (!k) throw new ConfigError(path, whole, `unknown algorithm "${token}"; ${KNOWN}`);
    const t: Transform = { type: k.type, id: k.id };
    if (k.keyLength !== undefined) t.keyLength = k.keyLength;
    if (!by.has(k.type)) by.set(k.type, []);
    add(by.get(k.type)!, t);
    if (k.alsoPrf !== undefined) add(impliedPrf, { type: TransformType.PRF, id: k.alsoPrf });
  }
  const encr = by.get(TransformType.ENCR) ?? [];
  if (encr.length === 0) throw new ConfigError(path, whole, `proposal "${text}" has no encryption algorithm`);
  const aead = encr.filter((t) => isAead(t.id)).length;
  if (aead !== 0 && aead !== encr.length) {
    throw new ConfigError(path, whole, `proposal "${text}" mixes AEAD and non-AEAD encryption; split it with ","`);
  }
  const integ = by.get(TransformType.INTEG) ?? [];
  if (aead) {
    if (integ.length) throw new ConfigError(path, whole, `proposal "${text}": AEAD ciphers take no integrity algorithm`);
  } else if (integ.length === 0) {
    throw new ConfigError(path, whole, `proposal "${text}" needs an integrity algorithm (e.g. sha256)`);
  }
  if (kind === 'ike') {
    if (by.has(TransformType.ESN)) throw new ConfigError(path, whole, `esn/noesn are for ESP proposals only`);
    if (!by.has(TransformType.PRF)) {
      if (impliedPrf.length === 0) {
        throw new ConfigError(path, whole, `AEAD IKE proposal "${text}" needs a PRF (e.g. prfsha256)`);
      }
      by.set(TransformType.PRF, impliedPrf);
    }
    if (!by.has(TransformType.DH)) throw new ConfigError(path, whole, `IKE proposal "${text}" needs a DH group (e.g. x25519)`);
  } else {
    if (by.has(TransformType.PRF)) throw new ConfigError(path, whole, `prf* is for IKE proposals only`);
    if (!by.has(TransformType.ESN)) by.set(TransformType.ESN, [{ type: TransformType.ESN, id: EsnId.NO_ESN }]);
  }
  const transforms: Transform[] = [];
  for (const type of TYPE_ORDER) transforms.push(...(by.get(type) ?? []));
  return { num, protocol: kind === 'ike' ? ProtocolId.IKE : ProtocolId.ESP, spi: Buffer.alloc(0), transforms };
}

/**
 * Parses a strongSwan proposal list. Proposal numbers are 1..n in order; SPIs are empty (the
 * caller fills in ESP/rekey SPIs). Throws ConfigError(path, text, ...) naming the known keywords.
 */
export function parseProposals(text: string, kind: 'ike' | 'esp', path = 'proposals'): Proposal[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) throw new ConfigError(path, text, `a non-empty proposal list; ${KNOWN}`);
  const expanded: string[] = [];
  for (const p of parts) {
    if (p.toLowerCase() === 'default') expanded.push(...(kind === 'ike' ? DEFAULT_IKE : DEFAULT_ESP));
    else expanded.push(p);
  }
  if (expanded.length > 255) throw new ConfigError(path, text, 'at most 255 proposals');
  return expanded.map((p, i) => parseOne(p, kind, i + 1, path, text));
}

/** Copies without DH transforms: the IKE_AUTH child offer (no KE in IKE_AUTH, RFC 7296 §1.2). */
export function stripDh(proposals: readonly Proposal[]): Proposal[] {
  return proposals.map((p) => ({ ...p, transforms: p.transforms.filter((t) => t.type !== TransformType.DH) }));
}

/** The DH group of a proposal (its first DH transform), 0 if none. */
export function dhGroupOf(p: Proposal): number {
  return p.transforms.find((t) => t.type === TransformType.DH)?.id ?? 0;
}

/** INTEG NONE / DH NONE (ID 0): "no such transform" (RFC 7296 §3.3.2). */
function isNone(t: Transform): boolean {
  return (t.type === TransformType.INTEG || t.type === TransformType.DH) && t.id === 0;
}

/**
 * Transforms of a type as a selection sees them: INTEG/DH NONE count as absent (AEAD offers may
 * carry INTEG NONE, non-PFS offers DH NONE), and a missing ESN type as NO_ESN for ESP.
 */
function candidates(p: Proposal, type: TransformType): Transform[] {
  const list = p.transforms.filter((t) => t.type === type && !isNone(t) && !(t as { unknownAttributes?: boolean }).unknownAttributes);
  if (list.length === 0 && type === TransformType.ESN && p.protocol === ProtocolId.ESP) {
    return [{ type: TransformType.ESN, id: EsnId.NO_ESN }];
  }
  return list;
}

/**
 * ESN choice: NO_ESN whenever both sides allow it, whatever our configured order; ESN only when the
 * offer (or our config) leaves nothing else. strongSwan's userspace ESP (kernel-libipsec) refuses SAs
 * with extended sequence numbers (libipsec's ipsec_sa.c: "ESN not supported"), so a peer offering
 * "esn-noesn" gets the 32-bit mode every ESP implementation runs.
 */
function preferNoEsn(ours: Transform[]): Transform[] {
  return ours.length > 1 ? [...ours].sort((a, b) => Number(a.id !== EsnId.NO_ESN) - Number(b.id !== EsnId.NO_ESN)) : ours;
}

function match(offer: Proposal, cfg: Proposal): Proposal | null {
  if (offer.protocol !== cfg.protocol) return null;
  const chosen: Transform[] = [];
  for (const type of TYPE_ORDER) {
    const ours = candidates(cfg, type);
    const theirs = candidates(offer, type);
    if (ours.length === 0 && theirs.length === 0) {
      // the offer may spell "none" explicitly (INTEG NONE with AEAD, DH NONE without PFS): echo it
      const none = offer.transforms.find((t) => t.type === type && isNone(t));
      if (none) chosen.push({ type, id: 0 });
      continue;
    }
    const pick = (type === TransformType.ESN ? preferNoEsn(ours) : ours).find((o) => theirs.some((t) => sameTransform(o, t)));
    if (!pick) return null;
    // echo exactly one transform of each type that was OFFERED (§3.3.6); an implied NO_ESN is not echoed
    if (offer.transforms.some((t) => t.type === type)) chosen.push({ ...pick });
  }
  // own copy of the SPI: the offer may be a view into a received datagram
  return { num: offer.num, protocol: offer.protocol, spi: Buffer.from(offer.spi), transforms: chosen };
}

/**
 * Responder's choice (RFC 7296 §2.7): the first configured proposal, in our preference order, that
 * some offered proposal can satisfy; within it, per transform type our most preferred transform
 * that was offered (key length must match). Returns exactly one transform per offered type, with
 * the offered proposal number and a copy of its SPI (for ESP the caller puts its own SPI in), or null.
 * Also usable by an initiator to check a response: selectProposal([chosen], ourOffer).
 */
export function selectProposal(offered: readonly Proposal[], configured: readonly Proposal[]): Proposal | null {
  for (const cfg of configured) {
    for (const offer of offered) {
      const m = match(offer, cfg);
      if (m) return m;
    }
  }
  return null;
}

/**
 * Initiator's check of a responder's SA (RFC 7296 §3.3.6): exactly one transform per type, every
 * type of the offer with the same number present, each transform drawn from that offer.
 */
export function isValidResponseProposal(chosen: Proposal, offered: readonly Proposal[]): boolean {
  const offer = offered.find((p) => p.num === chosen.num && p.protocol === chosen.protocol);
  if (!offer) return false;
  for (const type of TYPE_ORDER) {
    const got = chosen.transforms.filter((t) => t.type === type);
    const had = offer.transforms.filter((t) => t.type === type);
    if (had.length === 0 && got.length === 0) continue;
    if (got.length !== 1) {
      // AEAD offers may list INTEG NONE; a responder may omit it
      if (got.length === 0 && had.every(isNone)) continue;
      return false;
    }
    if (!had.some((t) => sameTransform(t, got[0]!))) return false;
  }
  return chosen.transforms.every((t) => TYPE_ORDER.includes(t.type));
}

// ---- names for logs (strongSwan style) -----------------------------------------------------

const ENCR_NAMES: Record<number, string> = {
  [EncrId.ENCR_3DES]: '3DES_CBC',
  [EncrId.ENCR_NULL]: 'NULL',
  [EncrId.ENCR_AES_CBC]: 'AES_CBC',
  [EncrId.ENCR_AES_CTR]: 'AES_CTR',
  [EncrId.ENCR_AES_GCM_8]: 'AES_GCM_8',
  [EncrId.ENCR_AES_GCM_12]: 'AES_GCM_12',
  [EncrId.ENCR_AES_GCM_16]: 'AES_GCM_16',
  [EncrId.ENCR_CHACHA20_POLY1305]: 'CHACHA20_POLY1305',
};
const INTEG_NAMES: Record<number, string> = {
  [IntegId.NONE]: 'NONE',
  [IntegId.AUTH_HMAC_SHA1_96]: 'HMAC_SHA1_96',
  [IntegId.AUTH_HMAC_SHA2_256_128]: 'HMAC_SHA2_256_128',
  [IntegId.AUTH_HMAC_SHA2_384_192]: 'HMAC_SHA2_384_192',
  [IntegId.AUTH_HMAC_SHA2_512_256]: 'HMAC_SHA2_512_256',
};
const PRF_NAMES: Record<number, string> = {
  [PrfId.PRF_HMAC_SHA1]: 'PRF_HMAC_SHA1',
  [PrfId.PRF_HMAC_SHA2_256]: 'PRF_HMAC_SHA2_256',
  [PrfId.PRF_HMAC_SHA2_384]: 'PRF_HMAC_SHA2_384',
  [PrfId.PRF_HMAC_SHA2_512]: 'PRF_HMAC_SHA2_512',
};
const DH_NAMES: Record<number, string> = {
  [DhId.NONE]: 'NONE',
  [DhId.MODP_2048]: 'MODP_2048',
  [DhId.MODP_3072]: 'MODP_3072',
  [DhId.MODP_4096]: 'MODP_4096',
  [DhId.ECP_256]: 'ECP_256',
  [DhId.ECP_384]: 'ECP_384',
  [DhId.ECP_521]: 'ECP_521',
  [DhId.CURVE25519]: 'CURVE_25519',
};

function transformName(t: Transform): string {
  switch (t.type) {
    case TransformType.ENCR: {
      const n = ENCR_NAMES[t.id] ?? `ENCR_${t.id}`;
      return t.keyLength !== undefined ? `${n}_${t.keyLength}` : n;
    }
    case TransformType.INTEG:
      return INTEG_NAMES[t.id] ?? `INTEG_${t.id}`;
    case TransformType.PRF:
      return PRF_NAMES[t.id] ?? `PRF_${t.id}`;
    case TransformType.DH:
      return DH_NAMES[t.id] ?? `DH_${t.id}`;
    case TransformType.ESN:
      return t.id === EsnId.ESN ? 'EXT_SEQ' : t.id === EsnId.NO_ESN ? 'NO_EXT_SEQ' : `ESN_${t.id}`;
    default:
      return `T${t.type}_${t.id}`;
  }
}

/** "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519" (strongSwan's log format). */
export function proposalToString(p: Proposal): string {
  return p.transforms.map(transformName).join('/');
}
