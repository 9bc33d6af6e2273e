import { X509Certificate, timingSafeEqual } from 'node:crypto';
import { bytesToIp } from '../../common/ip.js';
import { AuthMethod, CertEncoding, NotifyType, PayloadType } from '../wire/constants.js';
import type { AuthPayload, CertPayload, CertReqPayload, IdPayload, IkeMessage, Payload } from '../wire/types.js';
import { encodeIdBody, pskAuthData, signedOctets } from '../sa/keymat.js';
import { identityFromWire, identityMatches } from '../config/identity.js';
import type { CertAuthConfig, PeerConfig } from '../config/peer-config.js';
import { certContainsId, certName, verifyChain } from '../config/trust.js';
import { altNames, spkiSha1 } from '../config/x509.js';
import { signAuth, verifyAuth } from '../sa/pubkey-auth.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { notify } from '../sa/ike-sa.js';
import { type IkeTask, type TaskStatus, TaskBase, findNotify, findPayload, firstErrorNotify } from './task.js';
import { authRejectedByPeer, peerAuthFailed, peerError, peerIdMismatch, typedId, type IkeFailure } from '../failure.js';

// RFC 7296 §2.15: authentication of the IKE SA, with a pre-shared key (method 2, Shared Key MIC)
// or a certificate: RFC 7427 digital signatures (method 14) or the classic RSA (1) and ECDSA
// (RFC 4754: 9, 10, 11) methods, with CERT and CERTREQ payloads (§3.6, §3.7).

export class IkeAuthTask extends TaskBase implements IkeTask {
  readonly type = 'IKE_AUTH';

  constructor(private readonly sa: IkeSa, private readonly now: () => number) {
    super();
  }

  /* IKE_AUTH request: SK { IDi [CERT+] [N(INITIAL_CONTACT)] [CERTREQ] [IDr] AUTH (+ SA TSi TSr from CHILD_CREATE) } --> */
  buildRequest(out: Payload[]): TaskStatus {
    const sa = this.sa;
    const cfg = sa.cfg!;
    const idBody = encodeIdBody(cfg.localId.type, cfg.localId.data);
    out.push({ type: PayloadType.IDi, idType: cfg.localId.type, data: cfg.localId.data } as IdPayload);
    if (cfg.cert) pushCerts(out, cfg.cert);
    if (!sa.ctx.hasOtherIkeSa(cfg, sa)) out.push(notify(NotifyType.INITIAL_CONTACT));
    if (cfg.cert) {
      const req = caCertReq([cfg]);
      if (req) out.push(req);
    }
    if (!cfg.remoteId.any) out.push({ type: PayloadType.IDr, idType: cfg.remoteId.type, data: cfg.remoteId.data } as IdPayload);
    out.push(this.ownAuth(cfg, sa.initRequest, sa.nonceR, sa.keys!.skPi, idBody));
    sa.state = 'AUTH_SENT';
    return 'done';
  }

  /* <-- IKE_AUTH response: SK { IDr [CERT+] AUTH SA TSi TSr } | SK { N(AUTHENTICATION_FAILED) } */
  processResponse(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const cfg = sa.cfg!;
    if (findNotify(msg, NotifyType.AUTHENTICATION_FAILED)) {
      const hint = cfg.cert
        ? `check that the peer trusts the CA of our certificate ${certName(cfg.cert.cert)} and expects our ID ${JSON.stringify(cfg.localId.text)}`
        : `check that both sides use the same PSK and that the peer expects our ID ${JSON.stringify(cfg.localId.text)}`;
      sa.reportFailure(authRejectedByPeer(!!cfg.cert, cfg.localId.text));
      return this.fail(`peer rejected our authentication (AUTHENTICATION_FAILED): ${hint}`);
    }
    const idr = findPayload(msg, PayloadType.IDr);
    const auth = findPayload(msg, PayloadType.AUTH);
    if (!idr || !auth) {
      const err = firstErrorNotify(msg);
      sa.reportFailure(peerError(`IKE_AUTH failed: peer answered ${err !== undefined ? NotifyType[err] ?? err : 'without IDr/AUTH'}`));
      return this.fail(`IKE_AUTH failed: peer answered ${err !== undefined ? NotifyType[err] ?? err : 'without IDr/AUTH'}`);
    }
    if (!identityMatches(cfg.remoteId, idr)) {
      sa.reportFailure(peerIdMismatch(typedId(identityFromWire(idr.idType, idr.data)), cfg.remoteId.text));
      return this.fail(`peer identity ${identityFromWire(idr.idType, idr.data).text} does not match the configured ${cfg.remoteId.text}`);
    }
    const problem = this.verifyPeer(cfg, msg, auth, sa.initResponse, sa.nonceI, sa.keys!.skPr, idr);
    if (problem) {
      sa.reportFailure(peerAuthFailed(typedId(identityFromWire(idr.idType, idr.data)), problem, !cfg.cert));
      return this.fail(`authentication of peer ${identityFromWire(idr.idType, idr.data).text} failed: ${problem}`);
    }
    sa.peerId = identityFromWire(idr.idType, idr.data);
    sa.established(this.now());
    return 'done';
  }

  /* --> IKE_AUTH request: SK { IDi [CERT+] [CERTREQ] [IDr] AUTH SA TSi TSr } */
  processRequest(msg: IkeMessage): TaskStatus {
    const sa = this.sa;
    const idi = findPayload(msg, PayloadType.IDi);
    const auth = findPayload(msg, PayloadType.AUTH);
    if (!idi || !auth) return this.failWith(NotifyType.AUTHENTICATION_FAILED, 'IKE_AUTH request without IDi/AUTH (EAP is not supported)');
    const idr = findPayload(msg, PayloadType.IDr);
    const peerId = identityFromWire(idi.idType, idi.data);
    // pick the config by the peer's identity among those that matched its address (and our ID if it named one)
    const matching = sa.candidates.filter((c) => identityMatches(c.remoteId, idi) && (!idr || identityMatches(c.localId, idr)));
    const cfg = matching.find((c) => !c.remoteId.any) ?? matching[0];
    if (!cfg) {
      sa.reportFailure(noConnectionFor(sa.candidates, typedId(peerId), idr ? typedId(identityFromWire(idr.idType, idr.data)) : null, idi));
      return this.failWith(NotifyType.AUTHENTICATION_FAILED, `no connection for peer identity ${peerId.text}${idr ? ` asking for ${identityFromWire(idr.idType, idr.data).text}` : ''}`);
    }
    sa.chooseConfig(cfg);
    const problem = this.verifyPeer(cfg, msg, auth, sa.initRequest, sa.nonceR, sa.keys!.skPi, idi);
    if (problem) {
      sa.reportFailure(peerAuthFailed(typedId(peerId), problem, !cfg.cert));
      return this.failWith(NotifyType.AUTHENTICATION_FAILED, `authentication of ${peerId.text} failed: ${problem}`);
    }
    sa.peerId = peerId;
    if (findNotify(msg, NotifyType.INITIAL_CONTACT)) sa.initialContact = true;
    return 'done';
  }

  /* <-- IKE_AUTH response: SK { IDr [CERT+] AUTH (+ SA TSi TSr from CHILD_CREATE) } */
  buildResponse(out: Payload[]): TaskStatus {
    const sa = this.sa;
    const cfg = sa.cfg!;
    const idBody = encodeIdBody(cfg.localId.type, cfg.localId.data);
    out.push({ type: PayloadType.IDr, idType: cfg.localId.type, data: cfg.localId.data } as IdPayload);
    if (cfg.cert) pushCerts(out, cfg.cert);
    out.push(this.ownAuth(cfg, sa.initResponse, sa.nonceI, sa.keys!.skPr, idBody));
    sa.established(this.now());
    return 'done';
  }

  /** Our AUTH payload over RealMessage | peer nonce | prf(SK_p, ID'). */
  private ownAuth(cfg: PeerConfig, realMessage: Buffer, nonce: Buffer, skP: Buffer, idBody: Buffer): AuthPayload {
    const sa = this.sa;
    if (!cfg.cert) {
      return { type: PayloadType.AUTH, method: AuthMethod.SHARED_KEY_MIC, data: pskAuthData(sa.prf!, cfg.psk, realMessage, nonce, skP, idBody) };
    }
    // RFC 7427 §4: method 14 only when both sides announced hashes; otherwise the key's classic method
    const peerHashes = sa.offeredSignatureHashes ? sa.peerSignatureHashes : null;
    const signed = signAuth(cfg.cert.key, signedOctets(sa.prf!, realMessage, nonce, skP, idBody), peerHashes);
    return { type: PayloadType.AUTH, method: signed.method, data: signed.data };
  }

  /** Checks the peer's AUTH (and certificate) for `cfg`; null when it verifies, else why not. */
  private verifyPeer(cfg: PeerConfig, msg: IkeMessage, auth: AuthPayload, realMessage: Buffer, nonce: Buffer, skP: Buffer, id: IdPayload): string | null {
    const idBody = encodeIdBody(id.idType, id.data);
    if (!cfg.cert) {
      if (auth.method !== AuthMethod.SHARED_KEY_MIC) return `connection ${cfg.name} expects a pre-shared key, the peer used AUTH method ${AuthMethod[auth.method] ?? auth.method}`;
      const expected = pskAuthData(this.sa.prf!, cfg.psk, realMessage, nonce, skP, idBody);
      return expected.length === auth.data.length && timingSafeEqual(expected, auth.data) ? null : 'pre-shared keys differ';
    }
    if (auth.method === AuthMethod.SHARED_KEY_MIC) return `connection ${cfg.name} expects a certificate, the peer used a pre-shared key`;
    const certs: X509Certificate[] = [];
    for (const p of msg.payloads) {
      if (p.type !== PayloadType.CERT) continue;
      if (p.encoding !== CertEncoding.X509_SIGNATURE) continue; // other encodings (hash and URL, raw keys) are not supported
      try {
        certs.push(new X509Certificate(Buffer.from(p.data)));
      } catch {
        return 'a CERT payload does not hold a readable X.509 certificate';
      }
    }
    const ee = certs[0];
    if (!ee) return 'the peer sent no X.509 certificate (CERT payload)';
    if (!certContainsId(ee, { type: id.idType, data: id.data })) {
      const names = altNames(ee);
      const sans = [...names.dns.map((d) => `DNS:${d}`), ...names.email.map((e) => `email:${e}`), ...names.ip.map((ip) => `IP:${bytesToIp(ip)}`)];
      return `its identity ${identityFromWire(id.idType, id.data).text} is not in its certificate ${certName(ee)} (subjectAltNames: ${sans.join(', ') || 'none'})`;
    }
    const chainProblem = verifyChain(ee, certs.slice(1), cfg.cert, this.now());
    if (chainProblem) return chainProblem;
    return verifyAuth(ee.publicKey, auth.method, auth.data, signedOctets(this.sa.prf!, realMessage, nonce, skP, idBody), this.sa.offeredSignatureHashes);
  }
}

/**
 * Why no connection takes the peer's IKE_AUTH: its IDi matches none of the connections configured
 * for its address, or it matches but the peer asks for an ID of ours (IDr) we do not use.
 */
function noConnectionFor(candidates: readonly PeerConfig[], peerId: string, askedFor: string | null, idi: IdPayload): IkeFailure {
  const byPeer = candidates.filter((c) => identityMatches(c.remoteId, idi));
  if (byPeer.length === 0) return peerIdMismatch(peerId, [...new Set(candidates.map((c) => c.remoteId.text))].join(' or '));
  const ours = [...new Set(byPeer.map((c) => c.localId.text))].join(' or ');
  return {
    code: 'PEER_ID_MISMATCH',
    message: `peer ${peerId} asks for our ID ${askedFor ?? '?'}, but we use ${ours}`,
    hint: `set ike.localId to ${askedFor ?? '?'}, or have the peer expect ${ours} as our ID (remote id / rightid)`,
  };
}

/** CERT payloads: our end-entity certificate first, then the intermediates (RFC 7296 §3.6). */
function pushCerts(out: Payload[], cert: CertAuthConfig): void {
  out.push({ type: PayloadType.CERT, encoding: CertEncoding.X509_SIGNATURE, data: cert.cert.raw } as CertPayload);
  for (const c of cert.chain) out.push({ type: PayloadType.CERT, encoding: CertEncoding.X509_SIGNATURE, data: c.raw } as CertPayload);
}

const caHashCache = new WeakMap<X509Certificate, Buffer>();

/** CERTREQ naming the CAs the given configs trust (SHA-1 of each CA's SubjectPublicKeyInfo), or null. */
export function caCertReq(cfgs: readonly PeerConfig[]): CertReqPayload | null {
  const hashes: Buffer[] = [];
  for (const c of cfgs) {
    for (const ca of c.cert?.cas ?? []) {
      let h = caHashCache.get(ca);
      if (!h) {
        h = spkiSha1(ca.publicKey);
        caHashCache.set(ca, h);
      }
      if (!hashes.some((x) => x.equals(h!))) hashes.push(h);
    }
  }
  return hashes.length > 0 ? { type: PayloadType.CERTREQ, encoding: CertEncoding.X509_SIGNATURE, data: Buffer.concat(hashes) } : null;
}
