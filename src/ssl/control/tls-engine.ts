/**
 * The only wrapper around node:tls in src/ssl: a TLS endpoint that runs over an
 * in-memory byte pipe instead of a socket. The OpenVPN control channel carries the TLS byte
 * stream inside reliable P_CONTROL_V1 packets (OpenVPN ssl.c, the BIO pair of ssl_openssl.c), so:
 *
 *   peer ciphertext ──feedCiphertext()──▶ [Duplex ▶ TLSSocket] ──onPlaintext──▶ km2 / commands
 *   writePlaintext() ──▶ [TLSSocket ▶ Duplex] ──onCiphertext──▶ P_CONTROL_V1 payloads
 *
 * node:tls is asynchronous: callbacks fire on later ticks, never inside the call that fed the
 * bytes. One engine = one TLS session = one OpenVPN key state; a renegotiation makes a new one.
 * After `destroy()` no callback fires any more.
 */
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { VpnError } from '../../common/errors.js';

export interface TlsEngineHandlers {
  /** TLS records to carry to the peer (in order). The buffer is owned by the receiver. */
  onCiphertext(data: Buffer): void;
  /** decrypted application data (not aligned to TLS records) */
  onPlaintext(data: Buffer): void;
  /** handshake finished; for a server with a client CA, `peer` says whether the client cert verified */
  onSecure(info: TlsSecureInfo): void;
  /** fatal TLS error (alert, bad record, ...): the engine is dead */
  onError(err: Error): void;
}

export interface TlsSecureInfo {
  protocol: string; // 'TLSv1.3'
  cipher: string; // 'TLS_AES_256_GCM_SHA384'
  /** subject CN of the peer certificate, '' if none */
  peerCn: string;
  /** null if the peer certificate verified against the configured CA, else the reason (e.g. 'CERT_HAS_EXPIRED') */
  peerVerifyError: string | null;
}

export interface TlsEngineOptions {
  role: 'server' | 'client';
  cert?: string; // PEM
  key?: string; // PEM
  /** server: CA for client certificates (requests one); client: CA for the server certificate */
  ca?: string;
  /** PEM CRL(s) of that CA: a listed certificate fails verification with CERT_REVOKED */
  crl?: string;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
}

export interface TlsEngine {
  feedCiphertext(data: Buffer): void;
  /** one call = one TLS record (Node 20 writes each `write` as its own record(s)) */
  writePlaintext(data: Buffer): void;
  /** RFC 5705 exporter, no context (OpenVPN calls OpenSSL without one). Only after onSecure. */
  exportKeyingMaterial(length: number, label: string): Buffer;
  readonly isSecure: boolean;
  destroy(): void;
}

export function createTlsEngine(opts: TlsEngineOptions, h: TlsEngineHandlers): TlsEngine {
  return new NodeTlsEngine(opts, h);
}

class NodeTlsEngine implements TlsEngine {
  private readonly pipe: Duplex;
  private readonly sock: tls.TLSSocket;
  private dead = false;
  isSecure = false;

  constructor(
    private readonly opts: TlsEngineOptions,
    private readonly h: TlsEngineHandlers,
  ) {
    const self = this;
    this.pipe = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        if (!self.dead) self.safe(() => h.onCiphertext(Buffer.from(chunk)));
        cb();
      },
    });
    const secureContext = secureContextFor(opts);
    if (opts.role === 'server') {
      this.sock = new tls.TLSSocket(this.pipe, {
        isServer: true,
        secureContext,
        requestCert: opts.ca !== undefined,
        // we verify ourselves after the handshake so the reason can be reported and logged
        rejectUnauthorized: false,
      });
      this.sock.on('secure', () => this.secured());
    } else {
      this.sock = tls.connect({
        socket: this.pipe,
        secureContext,
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      });
      this.sock.on('secureConnect', () => this.secured());
    }
    this.sock.on('data', (d: Buffer) => {
      if (!this.dead) this.safe(() => h.onPlaintext(d));
    });
    this.sock.on('error', (err: Error) => this.fail(err));
    this.sock.on('close', () => this.fail(new VpnError('ERR_SSL_SESSION', 'TLS session closed')));
  }

  feedCiphertext(data: Buffer): void {
    if (!this.dead) this.pipe.push(Buffer.from(data));
  }

  writePlaintext(data: Buffer): void {
    if (!this.dead) this.sock.write(data);
  }

  exportKeyingMaterial(length: number, label: string): Buffer {
    // no context argument at all: OpenVPN's EKM (RFC 5705) uses none, and an empty one gives other bytes
    return (this.sock.exportKeyingMaterial as (n: number, l: string) => Buffer)(length, label);
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.sock.destroy();
    this.pipe.destroy();
  }

  private secured(): void {
    if (this.dead) return;
    this.isSecure = true;
    const peer = this.sock.getPeerX509Certificate();
    const info: TlsSecureInfo = {
      protocol: this.sock.getProtocol() ?? '',
      cipher: this.sock.getCipher()?.standardName ?? '',
      peerCn: peer ? subjectCn(peer) : '',
      peerVerifyError: this.verifyPeer(peer),
    };
    this.safe(() => this.h.onSecure(info));
  }

  /** OpenSSL's verdict on the peer chain (Node keeps it on the handle when rejectUnauthorized is off). */
  private verifyPeer(peer: X509Certificate | undefined): string | null {
    if (this.opts.ca === undefined) return null;
    if (!peer) return 'NO_PEER_CERTIFICATE';
    const handle = (this.sock as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
    if (handle && typeof handle.verifyError === 'function') {
      const e = handle.verifyError();
      return e ? (e.code ?? e.message) : null;
    }
    return fallbackVerify(peer, this.opts.ca);
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    try {
      this.h.onError(err);
    } catch {
      // the handler's own failure has nowhere better to go; the engine is dead either way
    }
    this.sock.destroy();
  }

  /** A throwing handler must not become an unhandled exception in a stream callback. */
  private safe(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err instanceof Error ? err : new VpnError('ERR_INTERNAL', String(err)));
    }
  }
}

/**
 * Parsing PEM keys and certificates for every key state (every client, every renegotiation)
 * is wasted work: keep the few contexts in use (normally one per server identity).
 */
const CONTEXT_CACHE_SIZE = 8;
const contextCache = new Map<string, tls.SecureContext>();

function secureContextFor(opts: TlsEngineOptions): tls.SecureContext {
  const k = [opts.role, opts.cert ?? '', opts.key ?? '', opts.ca ?? '', opts.crl ?? '', opts.minVersion ?? '', opts.maxVersion ?? ''].join('\0');
  let ctx = contextCache.get(k);
  if (ctx) {
    contextCache.delete(k);
    contextCache.set(k, ctx); // most recently used last
    return ctx;
  }
  ctx = tls.createSecureContext({
    cert: opts.cert,
    key: opts.key,
    ca: opts.ca,
    // with a CRL Node sets X509_V_FLAG_CRL_CHECK (and _ALL) on the store: every chain must be covered
    crl: opts.crl,
    minVersion: opts.minVersion ?? 'TLSv1.2',
    maxVersion: opts.maxVersion ?? 'TLSv1.3',
  });
  contextCache.set(k, ctx);
  if (contextCache.size > CONTEXT_CACHE_SIZE) contextCache.delete(contextCache.keys().next().value!);
  return ctx;
}

function subjectCn(c: X509Certificate): string {
  for (const line of c.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return '';
}

/** Direct issuer + validity check, used only if Node's internal verify result is unavailable. */
function fallbackVerify(peer: X509Certificate, caPem: string): string | null {
  const now = Date.now();
  if (Date.parse(peer.validTo) < now) return 'CERT_HAS_EXPIRED';
  if (Date.parse(peer.validFrom) > now) return 'CERT_NOT_YET_VALID';
  const cas = caPem.split(/(?=-----BEGIN CERTIFICATE-----)/).filter((s) => s.includes('BEGIN CERTIFICATE'));
  for (const pem of cas) {
    const ca = new X509Certificate(pem);
    if (peer.checkIssued(ca) && peer.verify(ca.publicKey)) return null;
  }
  return 'UNABLE_TO_VERIFY_LEAF_SIGNATURE';
}
