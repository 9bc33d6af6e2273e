import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { IoError, VpnError, asErrorCode } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/log.js';

/**
 * The control socket: a unix stream socket that speaks newline-delimited JSON.
 *
 *   request:  { "id": 1, "method": "status", "params": {...} }\n
 *   response: { "id": 1, "result": ... }\n   or   { "id": 1, "error": { "code": "ERR_...", "message": "..." } }\n
 *
 * A connection may carry several requests; each response carries its request's id. The socket
 * file is created with mode 0600 (root only), and a stale file left by a dead daemon is removed
 * at start. A live daemon on the same path is an error, never silently taken over.
 */

/** A method handler: gets the request's params, returns the result (or a promise of it). Throw a VpnError to answer with its code. */
export type ControlHandler = (params: unknown) => unknown;
export type ControlHandlers = Readonly<Record<string, ControlHandler>>;

export interface ControlRequest {
  id: number | string;
  method: string;
  params?: unknown;
}

export interface ControlErrorBody {
  code: string;
  message: string;
}

/** An error answered by the daemon, or a failure to reach it; `code` is stable. */
export class ControlError extends VpnError {}

// implementation choices
export const CONTROL_MAX_LINE_BYTES = 1 << 20;
export const CONTROL_DEFAULT_TIMEOUT_MS = 5_000;
const SOCKET_MODE = 0o600;

export interface ControlServerOptions {
  path: string;
  handlers: ControlHandlers;
  log?: Logger;
}

export class ControlServer {
  readonly path: string;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private closed = false;

  private constructor(path: string, server: Server) {
    this.path = path;
    this.server = server;
  }

  /** Removes a stale socket file, listens on `path` with mode 0600, and serves `handlers`. */
  static async listen(opts: ControlServerOptions): Promise<ControlServer> {
    const log = opts.log ?? silentLogger;
    await removeStaleSocket(opts.path);
    const server = createServer();
    const cs = new ControlServer(opts.path, server);
    server.on('connection', (sock) => cs.serve(sock, opts.handlers, log));
    // umask makes the socket 0600 from the first instant; chmod below is belt and braces
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      throw new IoError(`cannot listen on control socket ${opts.path}: ${(e as Error).message}`, e);
    } finally {
      process.umask(oldMask);
    }
    chmodSync(opts.path, SOCKET_MODE);
    server.on('error', (e) => log.error({ err: e }, 'control socket error'));
    log.debug({ path: opts.path }, 'control socket listening');
    return cs;
  }

  /** Stops accepting, drops open connections and removes the socket file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone (server.close unlinks on some platforms)
    }
  }

  private serve(sock: Socket, handlers: ControlHandlers, log: Logger): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setEncoding('utf8');
    let buf = '';
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > CONTROL_MAX_LINE_BYTES) {
        writeLine(sock, { id: null, error: { code: 'ERR_REQUEST_TOO_LARGE', message: `request longer than ${CONTROL_MAX_LINE_BYTES} bytes` } });
        sock.end();
        buf = '';
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) void this.dispatch(sock, line, handlers, log);
      }
    });
  }

  private async dispatch(sock: Socket, line: string, handlers: ControlHandlers, log: Logger): Promise<void> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
    } catch {
      writeLine(sock, { id: null, error: { code: 'ERR_BAD_REQUEST', message: 'request is not valid JSON' } });
      return;
    }
    if (typeof req !== 'object' || req === null || typeof req.method !== 'string' || (typeof req.id !== 'number' && typeof req.id !== 'string')) {
      writeLine(sock, { id: (req as { id?: unknown })?.id ?? null, error: { code: 'ERR_BAD_REQUEST', message: 'expected {"id", "method", "params"}' } });
      return;
    }
    const handler = Object.hasOwn(handlers, req.method) ? handlers[req.method] : undefined;
    if (!handler) {
      writeLine(sock, { id: req.id, error: { code: 'ERR_UNKNOWN_METHOD', message: `unknown method "${req.method}"; known: ${Object.keys(handlers).join(', ')}` } });
      return;
    }
    try {
      const result = await handler(req.params);
      writeLine(sock, { id: req.id, result: result === undefined ? null : result });
    } catch (e) {
      const code = e instanceof VpnError ? e.code : 'ERR_INTERNAL';
      const message = e instanceof Error ? e.message : String(e);
      if (!(e instanceof VpnError)) log.error({ method: req.method, err: message }, 'control handler failed');
      writeLine(sock, { id: req.id, error: { code, message } });
    }
  }
}

function writeLine(sock: Socket, obj: unknown): void {
  if (!sock.destroyed && sock.writable) sock.write(`${JSON.stringify(obj)}\n`);
}

/**
 * If `path` exists: a socket nobody answers on is removed; a socket a live process answers on is
 * an error (another daemon runs); anything that is not a socket is an error (we never delete it).
 */
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new IoError(`control socket path ${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new IoError(`another vpcgw is already running on control socket ${path}`);
  unlinkSync(path);
}

export interface ControlCallOptions {
  timeoutMs?: number;
}

/**
 * Sends one request to the daemon and returns its result. Rejects with a ControlError: the
 * daemon's own error code, ERR_NOT_RUNNING when nothing listens, ERR_TIMEOUT after `timeoutMs`.
 */
export function controlCall(path: string, method: string, params?: unknown, opts: ControlCallOptions = {}): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? CONTROL_DEFAULT_TIMEOUT_MS;
  const id = 1;
  return new Promise((resolve, reject) => {
    let done = false;
    let buf = '';
    const sock = connect(path);
    const finish = (err: Error | null, value?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new ControlError('ERR_TIMEOUT', `no answer from vpcgw on ${path} within ${timeoutMs} ms`)), timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify({ id, method, params: params ?? {} })}\n`));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        finish(new ControlError('ERR_NOT_RUNNING', `vpcgw is not running (no control socket at ${path})`));
      } else if (e.code === 'EACCES') {
        finish(new ControlError('ERR_ACCESS', `no permission to use the control socket ${path} (run as root)`));
      } else {
        finish(new ControlError('ERR_IO', `control socket ${path}: ${e.message}`));
      }
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let res: { id?: unknown; result?: unknown; error?: ControlErrorBody };
      try {
        res = JSON.parse(buf.slice(0, nl));
      } catch {
        finish(new ControlError('ERR_BAD_RESPONSE', 'the daemon sent a response that is not JSON'));
        return;
      }
      if (res.error) finish(new ControlError(asErrorCode(res.error.code), String(res.error.message)));
      else finish(null, res.result);
    });
    sock.on('close', () => finish(new ControlError('ERR_IO', `vpcgw closed the control socket ${path} without answering`)));
  });
}
