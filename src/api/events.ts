/**
 * GET /v1/events: server-sent events (the WHATWG HTML "Server-sent events" format,
 * `text/event-stream`) that tell the web console what changed, so it refetches at once instead of
 * polling:
 *
 *   event: change
 *   data: {"kind":"vpn-connection","name":"dc1-main"}
 *
 * plus a `: keepalive` comment every KEEPALIVE_MS (proxies and browsers keep an idle stream open).
 *
 * Limits and lifetime: at most MAX_STREAMS streams at once (the next is refused, 503 ERR_BUSY);
 * a stream opened with a console session ends when the session does (logout, expiry); the hub
 * subscribes to the service's changes and to session ends only while a stream is open, and one
 * timer serves every stream's keepalive, so closed streams leave no listener or timer behind.
 */
import type { ServerResponse } from 'node:http';
import type { ConsoleSessions } from './console-session.js';
import type { ChangeEvent, ManagementService } from './service.js';

export const MAX_STREAMS = 32;
export const KEEPALIVE_MS = 15_000;
/** How long a browser waits before reconnecting a dropped stream (the `retry:` field). */
export const RETRY_MS = 2000;

interface Stream {
  readonly res: ServerResponse;
  /** The console session it was opened with (null: a bearer token). */
  readonly sessionKey: string | null;
}

export class EventHub {
  private readonly streams = new Set<Stream>();
  private unsubscribe: (() => void) | null = null;
  private unlistenSessions: (() => void) | null = null;
  private keepalive: NodeJS.Timeout | null = null;

  constructor(
    private readonly service: ManagementService,
    private readonly sessions: ConsoleSessions,
    readonly limits: { readonly maxStreams: number; readonly keepaliveMs: number } = { maxStreams: MAX_STREAMS, keepaliveMs: KEEPALIVE_MS },
  ) {}

  get size(): number {
    return this.streams.size;
  }

  /** True while another stream may open. */
  hasRoom(): boolean {
    return this.streams.size < this.limits.maxStreams;
  }

  /**
   * Starts a stream on `res` (the caller checked auth and hasRoom): headers, the retry hint, then
   * events until the client goes, the session ends or `closeAll`.
   */
  open(res: ServerResponse, sessionKey: string | null, headers: Readonly<Record<string, string>>): void {
    const s: Stream = { res, sessionKey };
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${RETRY_MS}\n: connected\n\n`);
    this.streams.add(s);
    res.on('close', () => this.drop(s));
    this.attach();
  }

  /** Ends every stream (the server closes). */
  closeAll(): void {
    for (const s of [...this.streams]) s.res.end();
    for (const s of [...this.streams]) this.drop(s);
  }

  private attach(): void {
    if (this.unsubscribe === null && this.service.subscribe) this.unsubscribe = this.service.subscribe((e) => this.broadcast(e));
    this.unlistenSessions ??= this.sessions.onEnd((key) => {
      for (const s of [...this.streams]) {
        if (s.sessionKey === key) {
          s.res.end();
          this.drop(s);
        }
      }
    });
    if (this.keepalive === null) {
      this.keepalive = setInterval(() => {
        for (const s of this.streams) s.res.write(': keepalive\n\n');
      }, this.limits.keepaliveMs);
      this.keepalive.unref();
    }
  }

  private drop(s: Stream): void {
    if (!this.streams.delete(s) || this.streams.size > 0) return;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.unlistenSessions?.();
    this.unlistenSessions = null;
    if (this.keepalive !== null) clearInterval(this.keepalive);
    this.keepalive = null;
  }

  private broadcast(e: ChangeEvent): void {
    const frame = `event: change\ndata: ${JSON.stringify({ kind: e.kind, name: e.name })}\n\n`;
    for (const s of this.streams) s.res.write(frame);
  }
}
