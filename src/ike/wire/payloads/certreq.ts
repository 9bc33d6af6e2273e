// RFC 7296 §3.7 Certificate Request Payload
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Cert Encoding |                                               |
// +-+-+-+-+-+-+-+-+                                               |
// ~                    Certification Authority                    ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// For encoding 4 (X.509) the CA field is a list of 20-byte SHA-1 hashes of CA SubjectPublicKeyInfo.
import { PayloadType } from '../constants.js';
import type { CertReqPayload } from '../types.js';
import { need } from '../check.js';

export const CERTREQ_HASH_SIZE = 20;

export function decode(body: Buffer, at: number): CertReqPayload {
  need('CERTREQ', body, at, 0, 1);
  return { type: PayloadType.CERTREQ, encoding: body[0]!, data: body.subarray(1) };
}

export function encodedLength(p: CertReqPayload): number {
  return 1 + p.data.length;
}

export function encode(p: CertReqPayload, buf: Buffer, off: number): number {
  buf[off] = p.encoding;
  p.data.copy(buf, off + 1);
  return off + 1 + p.data.length;
}

/** The 20-byte CA key hashes of an X.509 CERTREQ (a trailing partial hash is ignored). */
export function caHashes(p: CertReqPayload): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o + CERTREQ_HASH_SIZE <= p.data.length; o += CERTREQ_HASH_SIZE) {
    out.push(p.data.subarray(o, o + CERTREQ_HASH_SIZE));
  }
  return out;
}
