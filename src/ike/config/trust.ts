import type { X509Certificate } from 'node:crypto';
import { IdType } from '../wire/constants.js';
import type { CertAuthConfig } from './peer-config.js';
import { altNames, dnMatches, dnToString, normaliseSerial, subjectDer } from './x509.js';

/**
 * Trust decisions on a peer's certificate (RFC 5280 §6, reduced to what a site-to-site gateway
 * needs): the chain to a configured CA, validity of every link, revocation by the configured CRLs,
 * and whether an IKE identity is one the certificate vouches for.
 */

/** Intermediates a chain may pass through before reaching a CA (strongSwan's MAX_TRUST_PATH_LEN is 7). */
const MAX_CHAIN_DEPTH = 7;

export function certName(cert: X509Certificate): string {
  try {
    return `"${dnToString(subjectDer(cert))}"`;
  } catch {
    return `"${cert.subject.split('\n').join(', ')}"`;
  }
}

function validityProblem(cert: X509Certificate, nowMs: number): string | null {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (nowMs < from) return `certificate ${certName(cert)} is not valid yet (not before ${new Date(from).toISOString()})`;
  if (nowMs > to) return `certificate ${certName(cert)} expired on ${new Date(to).toISOString()}`;
  return null;
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Verifies the peer's end-entity certificate against the configured CAs, using `others` (the
 * peer's further CERT payloads) as intermediates. Returns null when trusted, else the reason.
 * `nowMs` is wall-clock time (the gateway's IKE clock is Date.now, src/gateway/ipsec.ts).
 */
export function verifyChain(ee: X509Certificate, others: readonly X509Certificate[], trust: CertAuthConfig, nowMs: number): string | null {
  const chain: X509Certificate[] = [ee];
  let cur = ee;
  let anchor: X509Certificate | undefined;
  for (let depth = 0; depth <= MAX_CHAIN_DEPTH; depth++) {
    anchor = trust.cas.find((ca) => ca.raw.equals(cur.raw) || issuedBy(cur, ca));
    if (anchor) break;
    const next = others.find((c) => c.ca && !chain.includes(c) && issuedBy(cur, c));
    if (!next) {
      return `certificate ${certName(cur)} is not issued by a configured CA (its issuer is "${cur.issuer.split('\n').join(', ')}"; trusted: ${trust.cas.map(certName).join(', ')})`;
    }
    chain.push(next);
    cur = next;
  }
  if (!anchor) return `certificate ${certName(ee)}: the chain to a configured CA is longer than ${MAX_CHAIN_DEPTH} links`;
  if (!anchor.raw.equals(cur.raw)) chain.push(anchor);
  for (const c of chain) {
    const p = validityProblem(c, nowMs);
    if (p) return p;
  }
  // each link against the CRLs of its issuer (the loader kept only CRLs signed by a configured CA)
  for (let i = 0; i + 1 < chain.length; i++) {
    const c = chain[i]!;
    const issuer = subjectDer(chain[i + 1]!);
    const serial = normaliseSerial(c.serialNumber);
    const crl = trust.crls.find((l) => dnMatches(l.issuer, issuer) && l.revokedSerials.has(serial));
    if (crl) return `certificate ${certName(c)} (serial ${serial}) is revoked by the CRL of "${dnToString(crl.issuer)}"`;
  }
  return null;
}

/**
 * strongSwan's rule for an identity and a certificate (x509_cert.c, has_subject): a DN must match
 * the subject; an FQDN, email or IP address must be one of the subjectAltNames. %any matches.
 */
export function certContainsId(cert: X509Certificate, id: { type: number; data: Buffer; any?: boolean }): boolean {
  if (id.any) return true;
  switch (id.type) {
    case IdType.ID_DER_ASN1_DN:
      return dnMatches(id.data, subjectDer(cert));
    case IdType.ID_FQDN: {
      const want = id.data.toString('latin1').toLowerCase();
      return altNames(cert).dns.some((d) => d.toLowerCase() === want);
    }
    case IdType.ID_RFC822_ADDR: {
      const want = id.data.toString('latin1').toLowerCase();
      return altNames(cert).email.some((e) => e.toLowerCase() === want);
    }
    case IdType.ID_IPV4_ADDR:
    case IdType.ID_IPV6_ADDR:
      return altNames(cert).ip.some((ip) => ip.equals(id.data));
    default:
      return false;
  }
}
