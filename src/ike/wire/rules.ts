// Which payloads each exchange may carry (RFC 7296 §1.2–§1.5, §3; strongSwan 5.9.8
// src/libcharon/encoding/message.c rule tables: ike_sa_init_i_rules and its siblings).
// Two uses: decodeMessage checks the payload TYPES and their maximum counts (checkPayloadTypes)
// on the generic headers alone, before any payload body is decoded, so a message full of payloads
// its exchange cannot carry costs no decoding work; checkRules checks a decoded message in full
// (minimum counts too) so tasks can assume counts. Payload ORDER is free.
// Unknown non-critical payloads (msg.skipped) are not counted.
import { ExchangeType, HeaderFlag, PayloadType } from './constants.js';
import type { IkeMessage } from './types.js';

export interface PayloadRule {
  type: PayloadType;
  min: number;
  max: number; // Infinity = any number
}

export interface ExchangeRules {
  /** every payload must be inside SK (IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL) */
  encrypted: boolean;
  payloads: readonly PayloadRule[];
}

const ANY = Infinity;
const r = (type: PayloadType, min: number, max: number): PayloadRule => ({ type, min, max });

const INIT_REQUEST: ExchangeRules = {
  encrypted: false,
  payloads: [r(PayloadType.SA, 1, 1), r(PayloadType.KE, 1, 1), r(PayloadType.NONCE, 1, 1), r(PayloadType.N, 0, ANY), r(PayloadType.V, 0, ANY)],
};
// an N alone is a complete (error) response: SA/KE/Nr are checked by the task
const INIT_RESPONSE: ExchangeRules = {
  encrypted: false,
  payloads: [
    r(PayloadType.SA, 0, 1),
    r(PayloadType.KE, 0, 1),
    r(PayloadType.NONCE, 0, 1),
    r(PayloadType.N, 0, ANY),
    r(PayloadType.V, 0, ANY),
    r(PayloadType.CERTREQ, 0, ANY),
  ],
};
const AUTH_REQUEST: ExchangeRules = {
  encrypted: true,
  payloads: [
    r(PayloadType.IDi, 1, 1),
    r(PayloadType.IDr, 0, 1),
    r(PayloadType.AUTH, 0, 1),
    r(PayloadType.CERT, 0, ANY),
    r(PayloadType.CERTREQ, 0, ANY),
    r(PayloadType.N, 0, ANY),
    r(PayloadType.V, 0, ANY),
    r(PayloadType.CP, 0, 1),
    r(PayloadType.SA, 0, 1),
    r(PayloadType.TSi, 0, 1),
    r(PayloadType.TSr, 0, 1),
  ],
};
// AUTH_FAILED-only responses carry nothing but N
const AUTH_RESPONSE: ExchangeRules = {
  encrypted: true,
  payloads: [
    r(PayloadType.IDr, 0, 1),
    r(PayloadType.AUTH, 0, 1),
    r(PayloadType.CERT, 0, ANY),
    r(PayloadType.CERTREQ, 0, ANY),
    r(PayloadType.N, 0, ANY),
    r(PayloadType.V, 0, ANY),
    r(PayloadType.CP, 0, 1),
    r(PayloadType.SA, 0, 1),
    r(PayloadType.TSi, 0, 1),
    r(PayloadType.TSr, 0, 1),
  ],
};
const CHILD_REQUEST: ExchangeRules = {
  encrypted: true,
  payloads: [
    r(PayloadType.SA, 1, 1),
    r(PayloadType.NONCE, 1, 1),
    r(PayloadType.KE, 0, 1),
    r(PayloadType.TSi, 0, 1),
    r(PayloadType.TSr, 0, 1),
    r(PayloadType.N, 0, ANY),
    r(PayloadType.V, 0, ANY),
    r(PayloadType.CP, 0, 1),
  ],
};
const CHILD_RESPONSE: ExchangeRules = {
  encrypted: true,
  payloads: [
    r(PayloadType.SA, 0, 1),
    r(PayloadType.NONCE, 0, 1),
    r(PayloadType.KE, 0, 1),
    r(PayloadType.TSi, 0, 1),
    r(PayloadType.TSr, 0, 1),
    r(PayloadType.N, 0, ANY),
    r(PayloadType.V, 0, ANY),
    r(PayloadType.CP, 0, 1),
  ],
};
const INFORMATIONAL: ExchangeRules = {
  encrypted: true,
  payloads: [r(PayloadType.N, 0, ANY), r(PayloadType.D, 0, ANY), r(PayloadType.V, 0, ANY), r(PayloadType.CP, 0, 1)],
};

/** The rule table for an exchange and direction, or null for exchanges we do not implement. */
export function rulesFor(exchangeType: number, isResponse: boolean): ExchangeRules | null {
  switch (exchangeType) {
    case ExchangeType.IKE_SA_INIT:
      return isResponse ? INIT_RESPONSE : INIT_REQUEST;
    case ExchangeType.IKE_AUTH:
      return isResponse ? AUTH_RESPONSE : AUTH_REQUEST;
    case ExchangeType.CREATE_CHILD_SA:
      return isResponse ? CHILD_RESPONSE : CHILD_REQUEST;
    case ExchangeType.INFORMATIONAL:
      return INFORMATIONAL;
    default:
      return null;
  }
}

/**
 * Checks the types of a message's payloads (those the codecs decode, in any order) against the
 * table: each type must be allowed, and no more often than its maximum. Minimum counts are left to
 * checkRules and the tasks. Returns null when they conform, else a reason for the log.
 */
export function checkPayloadTypes(rules: ExchangeRules, types: readonly number[]): string | null {
  const counts = new Map<number, number>();
  for (const type of types) {
    const rule = rules.payloads.find((x) => x.type === type);
    if (!rule) return `payload type ${type} not allowed here`;
    const n = (counts.get(type) ?? 0) + 1;
    if (n > rule.max) return `${n} payloads of type ${type}, at most ${rule.max}`;
    counts.set(type, n);
  }
  return null;
}

/**
 * Checks a decoded message against its exchange's table. Returns null when it conforms, else a
 * reason for the log (the caller drops it, or answers INVALID_SYNTAX for an authenticated request).
 */
export function checkRules(msg: IkeMessage): string | null {
  const rules = rulesFor(msg.header.exchangeType, (msg.header.flags & HeaderFlag.R) !== 0);
  if (!rules) return `unsupported exchange type ${msg.header.exchangeType}`;
  if (rules.encrypted && !msg.encrypted) return 'message must be encrypted';
  if (!rules.encrypted && msg.encrypted) return 'message must not be encrypted';
  const counts = new Map<number, number>();
  for (const p of msg.payloads) counts.set(p.type, (counts.get(p.type) ?? 0) + 1);
  for (const type of counts.keys()) {
    if (!rules.payloads.some((x) => x.type === type)) return `payload type ${type} not allowed here`;
  }
  for (const rule of rules.payloads) {
    const n = counts.get(rule.type) ?? 0;
    if (n < rule.min) return `missing payload type ${rule.type}`;
    if (n > rule.max) return `${n} payloads of type ${rule.type}, at most ${rule.max}`;
  }
  return null;
}
