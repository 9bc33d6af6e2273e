/**
 * The web console's files (the bundle scripts/build-console.mjs writes to dist/console/), served
 * at `/` of the management API's listener without authentication: they hold no data, everything
 * they show comes from /v1 with the user's session or token.
 *
 *  1. A path with a dot in its last segment is a file of the bundle (app.js, app.css, ...): served
 *     when it exists inside the folder, else 404.
 *  2. Any other path is a client-side route of the single-page app (`/connections/dc1`): it gets
 *     index.html, so a reload or a bookmark lands on the right page.
 *  3. Without the bundle (a checkout where `npm run build:console` has not run) the daemon runs as
 *     usual and `/` answers 404 saying how to build it.
 *
 * Every answer carries a Content-Security-Policy that allows only the gateway's own scripts, styles
 * and images (`data:` images, and inline styles because uPlot positions its chart elements with
 * style attributes), `nosniff` and `X-Frame-Options: DENY` (no framing: clickjacking).
 */
import { readFile, realpath } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';

export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
});

export const CONSOLE_MISSING_MESSAGE = 'the web console is not built: run `npm run build:console` (it writes dist/console/), then reload';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

export interface StaticFile {
  readonly status: 200 | 404;
  readonly type: string;
  readonly body: Buffer | string;
  /** 404 only: the bundle itself is missing (not just this file). */
  readonly missingBundle?: boolean;
}

/** True for the paths the console may serve (never /v1 or /metrics: those are the API's). */
export function isConsolePath(path: string): boolean {
  return !(path === '/v1' || path.startsWith('/v1/') || path === '/metrics' || path.startsWith('/metrics/') || path === '/healthz');
}

export class ConsoleFiles {
  private rootReal: string | null = null;

  /** `dir`: the bundle's folder (dist/console next to dist/cli.js). */
  constructor(readonly dir: string) {}

  /** The file for a request path (`/`, `/app.js`, `/connections/dc1`); never reads outside `dir`. */
  async resolve(path: string): Promise<StaticFile> {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return notFound(path);
    }
    const last = decoded.slice(decoded.lastIndexOf('/') + 1);
    if (decoded.includes('\0') || decoded.split('/').some((s) => s === '..')) return notFound(path);
    const index = await this.read('index.html');
    if (index === null) return { status: 404, type: 'text/plain; charset=utf-8', body: CONSOLE_MISSING_MESSAGE, missingBundle: true };
    if (!last.includes('.')) return { status: 200, type: TYPES['.html']!, body: index };
    const body = await this.read(decoded.replace(/^\/+/, ''));
    if (body === null) return notFound(path);
    return { status: 200, type: TYPES[extname(last).toLowerCase()] ?? 'application/octet-stream', body };
  }

  /** The file's bytes, or null when it is missing, not a file, or outside the folder (a symlink out). */
  private async read(rel: string): Promise<Buffer | null> {
    try {
      this.rootReal ??= await realpath(this.dir);
      const real = await realpath(join(this.rootReal, rel));
      if (!real.startsWith(this.rootReal + sep)) return null;
      return await readFile(real);
    } catch {
      this.rootReal = null; // the folder may appear later (a build while the daemon runs)
      return null;
    }
  }
}

function notFound(path: string): StaticFile {
  return { status: 404, type: 'text/plain; charset=utf-8', body: `no file ${path} in the web console` };
}
