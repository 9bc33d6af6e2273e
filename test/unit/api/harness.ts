// The management API over real HTTPS on 127.0.0.1 with the in-memory service, and a small client.
import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { captureLogger, type CapturedLine } from '../../../src/common/log.js';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../../../src/api/server.js';
import { generateApiCertificate } from '../../../src/gateway/api-tls.js';
import { FAKE_TOKEN, FakeManagementService } from '../../helpers/fake-service.js';

let certCache: { cert: string; key: string } | null = null;
/** One certificate per test file: RSA key generation is the slow part. */
export function testCertificate(): { cert: string; key: string } {
  return (certCache ??= generateApiCertificate(['localhost', '127.0.0.1']));
}

export interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

export interface ReqOptions {
  token?: string | null;
  body?: unknown;
  /** Sent as is (for malformed JSON); overrides body. */
  raw?: string | Buffer;
  headers?: Record<string, string>;
}

export interface Harness {
  service: FakeManagementService;
  server: ApiServer;
  lines: CapturedLine[];
  req(method: string, path: string, o?: ReqOptions): Promise<Res>;
  close(): Promise<void>;
}

/** `extra`: more server options (the console's folder, a login back-off, a clock). */
export async function startHarness(
  service = new FakeManagementService(),
  extra: Partial<Omit<ApiServerOptions, 'service' | 'host' | 'port' | 'tls' | 'log'>> = {},
): Promise<Harness> {
  const tls = testCertificate();
  const log = captureLogger();
  const server = await startApiServer({ service, host: '127.0.0.1', port: 0, tls, log, ...extra });
  const req = (method: string, path: string, o: ReqOptions = {}): Promise<Res> => new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(o.headers ?? {}) };
    const token = o.token === undefined ? FAKE_TOKEN : o.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | Buffer | undefined;
    if (o.raw !== undefined) payload = o.raw;
    else if (o.body !== undefined) payload = JSON.stringify(o.body);
    if (payload !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const r = request({ host: '127.0.0.1', port: server.port, method, path, headers, ca: tls.cert, servername: 'localhost', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json });
      });
    });
    r.on('error', reject);
    if (payload !== undefined) r.write(payload);
    r.end();
  });
  return { service, server, lines: log.lines, req, close: () => server.close() };
}

export const CGW = { name: 'dc1', address: '192.0.2.1' };
export const CONN = {
  name: 'dc1-main',
  customerGateway: 'dc1',
  localSubnets: ['10.2.0.0/16'],
  remoteSubnets: ['10.1.0.0/16'],
  auth: { psk: 'a long random secret' },
};
