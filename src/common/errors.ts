/**
 * One error base with a stable string `code`: messages may change, codes may not.
 * Expected per-packet failures are NOT exceptions (they are numeric drop reasons);
 * these are for configuration, negotiation and I/O failures.
 */
export class VpnError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
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
