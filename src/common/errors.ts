/**
 * One error base with a stable string `code`: messages may change, codes may not.
 * Expected per-packet failures are NOT exceptions (they are numeric drop reasons);
 * these are for configuration, negotiation and I/O failures.
 *
 * Every code in use is listed here, with what it means; the management API and the CLI print
 * them, so a code once published is never renamed. Add new codes at the end of their group.
 */
export const ERROR_CODES = {
  // ---- input: wire, config, requests ----
  ERR_PARSE: 'a wire message could not be decoded (ParseError: offset and structure)',
  ERR_CONFIG: 'a configuration field is invalid (ConfigError: path, value, what is allowed)',
  ERR_BAD_REQUEST: 'a control or API request is malformed',
  ERR_REQUEST_TOO_LARGE: 'a control or API request exceeds its size limit',
  ERR_UNKNOWN_METHOD: 'the control socket does not know the requested method',
  ERR_BAD_RESPONSE: 'the daemon answered with something the client cannot read',
  ERR_INVALID_ARG: 'a programming interface was called with an argument outside its contract',
  // ---- state ----
  ERR_STATE: 'the operation is not possible in the object\'s current state',
  ERR_NOT_ROOT: 'the command needs root (TUN, raw sockets, routes)',
  ERR_NOT_RUNNING: 'no daemon answers on the control socket',
  ERR_START: 'the daemon could not start',
  ERR_TIMEOUT: 'an operation did not complete in time',
  ERR_ACCESS: 'permission denied',
  ERR_INTERNAL: 'a bug: an unexpected exception at a boundary',
  ERR_UNKNOWN_CONNECTION: 'no VPN connection has that name',
  ERR_NOT_FOUND: 'no resource of that kind has that id or name',
  ERR_CONFLICT: 'the change conflicts with another resource (a name in use, a reference to it)',
  ERR_UNAUTHORIZED: 'the API request carries no valid bearer token',
  ERR_STORE_VERSION: 'the store file was written by a newer vpcgw (a schema version this one does not know)',
  ERR_FORBIDDEN: 'the request is authenticated but not allowed (a console session\'s write without its CSRF token)',
  ERR_RATE_LIMITED: 'too many failed logins from this address: wait before trying again',
  ERR_BUSY: 'the server is at a limit it keeps (for example concurrent event streams): try again later',
  // ---- protocols and crypto ----
  ERR_NEGOTIATION: 'IKE negotiation failed (NegotiationError carries the Notify to send)',
  ERR_SA: 'a security association cannot be installed or used',
  ERR_SSL_SESSION: 'an SSL VPN session operation failed',
  ERR_CRYPTO_KEY: 'key material has the wrong size or form',
  ERR_CRYPTO_UNSUPPORTED: 'an algorithm is not supported',
  // ---- I/O and the native addon ----
  ERR_IO: 'a system call failed (IoError wraps the errno error as cause)',
  ERR_NATIVE_UNAVAILABLE: 'the native addon or one of its features cannot be loaded',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A code read from outside (a daemon's answer): itself when listed, else ERR_BAD_RESPONSE. */
export function asErrorCode(code: unknown): ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : 'ERR_BAD_RESPONSE';
}

export class VpnError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A wire decode failure: where (byte offset) and in what. The caller drops the packet. */
export class ParseError extends VpnError {
  readonly offset: number;
  readonly what: string;
  constructor(what: string, offset: number, message: string) {
    super('ERR_PARSE', `${what} @${offset}: ${message}`);
    this.offset = offset;
    this.what = what;
  }
}

/** A configuration error names the path of the field, the value and what is allowed. */
export class ConfigError extends VpnError {
  readonly path: string;
  constructor(path: string, value: unknown, allowed: string) {
    super('ERR_CONFIG', `config ${path}: ${fmtValue(value)} is not valid: ${allowed}`);
    this.path = path;
  }
}

/** Negotiation failure that carries the IKE Notify type to send. */
export class NegotiationError extends VpnError {
  readonly notify: number;
  constructor(notify: number, message: string) {
    super('ERR_NEGOTIATION', message);
    this.notify = notify;
  }
}

/** Wraps a system error (errno) from sockets, TUN, netlink. */
export class IoError extends VpnError {
  constructor(message: string, cause?: unknown) {
    super('ERR_IO', message, { cause });
  }
}

function fmtValue(v: unknown): string {
  if (v === undefined) return '(missing)';
  try {
    const s = JSON.stringify(v);
    return s.length > 80 ? s.slice(0, 77) + '...' : s;
  } catch {
    return String(v);
  }
}
