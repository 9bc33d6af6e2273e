import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { VpnError, IoError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { startApiServer } from '../api/server.js';
import { AuthBackoff } from '../ssl/server/auth-backoff.js';
import { Store } from '../store/store.js';
import { loadConfigFile, readConfigDocument, type GatewayConfig } from './config/index.js';
import type { ControlHandlers } from './control.js';
import { Gateway, type GatewayOptions } from './daemon.js';
import { loadOrCreateApiCertificate } from './api-tls.js';
import { GatewayMetrics } from './metrics.js';
import { issueServerClientCert, revokeClientCert } from './client-profile.js';
import { exportPeerConfig } from './peer-export.js';
import { GatewayService, type PlanStep } from './service.js';
import { TRAFFIC_STEP_SEC } from './traffic-history.js';

/**
 * One running gateway process as `vpcgw start` makes it: the resource store in the data dir, the
 * management service over it, the daemon (src/gateway/daemon.ts) running the config the store
 * holds, the control socket and the HTTPS API serving the same service.
 *
 *  1. The start-up document: `--config FILE`, else `<dataDir>/vpcgw.yaml` (written from the
 *     embedded default when missing). It names the data dir.
 *  2. The store `<dataDir>/vpcgw.db` (0600). With `--config` the file is applied to it (created,
 *     updated, deleted to match), so a gateway run from a file behaves as the file says. Without,
 *     the file only seeds an empty store: after that the store (changed through the API, the CLI,
 *     `vpcgw apply`) is the configuration.
 *  3. The daemon starts with the store's config; changes go live through the service.
 *  4. The API listens on gateway.api.listen with a configured or generated certificate.
 */

export const STORE_FILE = 'vpcgw.db';
/** How often live states are compared for the event stream (GET /v1/events). */
export const STATE_POLL_MS = 1000;

export interface RunOptions {
  /** The start-up document. */
  configPath: string;
  /** true: `--config` given (apply the file); false: the default file (seeds an empty store only). */
  explicit: boolean;
  controlPath: string;
  log: Logger;
  gatewayOptions: Partial<GatewayOptions>;
}

export interface RunningGateway {
  readonly gateway: Gateway;
  readonly service: GatewayService;
  readonly config: GatewayConfig;
  /** https://host:port of the API, or null when gateway.api.enabled is false. */
  readonly apiUrl: string | null;
  readonly apiFingerprint: string | null;
  /** What applying the start-up file changed in the store (empty when it matched). */
  readonly plan: readonly PlanStep[];
  stop(): Promise<void>;
}

export async function runGateway(o: RunOptions): Promise<RunningGateway> {
  const fileCfg = loadConfigFile(o.configPath);
  const dataDir = fileCfg.gateway.dataDir;
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new IoError(`cannot create the data dir ${dataDir}: ${(e as Error).message}`, e);
  }
  const store = Store.open(join(dataDir, STORE_FILE), { log: o.log });
  let gateway: Gateway | null = null;
  let api: { close(): Promise<void> } | null = null;
  const timers: NodeJS.Timeout[] = [];
  const guard = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      o.log.warn({ err, what }, 'console data: a periodic task failed');
    }
  };
  try {
    let metrics: GatewayMetrics | null = null;
    const service = new GatewayService({
      store,
      baseDir: dataDir,
      log: o.log.child({ svc: 'resources' }),
      source: o.configPath,
      metrics: () => (metrics ? metrics.metrics() : Promise.resolve('')),
      textActions: {
        'peer-config': (cfg, name, q) => {
          const format = q.format ?? 'swanctl';
          if (format !== 'swanctl' && format !== 'libreswan') throw new VpnError('ERR_BAD_REQUEST', `format ${format} is not valid: swanctl or libreswan`);
          const out = exportPeerConfig(cfg, name, format);
          return { text: out.text, filename: out.filename };
        },
      },
    });
    let plan: PlanStep[] = [];
    if (o.explicit || !service.isSeeded()) {
      const raw = readConfigDocument(readFileSync(o.configPath, 'utf8'), o.configPath);
      plan = (await service.applyDocument(raw, dirname(o.configPath))).plan;
    }
    const config = service.config();
    gateway = new Gateway({
      config,
      log: o.log,
      controlPath: o.controlPath,
      // the VPC endpoints' approval decisions live in the store, beside the config
      endpointStates: () => service.endpointStates(),
      ...o.gatewayOptions,
      controlHandlers: { ...controlHandlers(service), ...o.gatewayOptions.controlHandlers },
    });
    service.attach(gateway);
    const gw = gateway;
    metrics = new GatewayMetrics({ status: () => gw.status(), dropCounters: () => gw.dropCounters() });
    await gateway.start();
    // the console's live data: traffic history samples, and state changes for the event stream
    // (compared each second, so a page shows a change within 2 s; nothing is done while nobody listens)
    service.sampleTraffic(Date.now());
    timers.push(setInterval(() => guard('traffic sample', () => service.sampleTraffic(Date.now())), TRAFFIC_STEP_SEC * 1000));
    timers.push(setInterval(() => guard('state poll', () => service.pollStates()), STATE_POLL_MS));
    for (const t of timers) t.unref();
    let apiUrl: string | null = null;
    let apiFingerprint: string | null = null;
    const a = config.gateway.api;
    if (a.enabled) {
      const tls = loadOrCreateApiCertificate({ dataDir, certFile: a.cert ?? undefined, keyFile: a.key ?? undefined, hosts: [a.host], log: o.log });
      const server = await startApiServer({
        service,
        host: a.host,
        port: a.port,
        tls: { cert: tls.cert, key: tls.key },
        log: o.log.child({ api: 'https' }),
        // the web console's failed logins back off per address as the SSL VPN's password logins do
        loginBackoff: new AuthBackoff(),
      });
      api = server;
      apiUrl = `https://${server.address.includes(':') ? `[${server.address}]` : server.address}:${server.port}`;
      apiFingerprint = tls.fingerprintSha256;
      gateway.setApiInfo({ url: apiUrl, fingerprintSha256: apiFingerprint });
    }
    return {
      gateway,
      service,
      config,
      apiUrl,
      apiFingerprint,
      plan,
      async stop() {
        for (const t of timers) clearInterval(t);
        if (api) await api.close().catch(() => undefined);
        await gw.stop();
        store.close();
      },
    };
  } catch (e) {
    for (const t of timers) clearInterval(t);
    if (api) await api.close().catch(() => undefined);
    if (gateway) await gateway.stop().catch(() => undefined);
    store.close();
    throw e;
  }
}

/** The control socket's resource methods: the same service the HTTPS API serves. */
export function controlHandlers(service: GatewayService): ControlHandlers {
  const str = (p: unknown, k: string, required = true): string | undefined => {
    const v = (p as Record<string, unknown> | null)?.[k];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || !v) throw new VpnError('ERR_BAD_REQUEST', `params.${k} (a string) is required`);
    return v;
  };
  return {
    'token.create': (p) => service.createToken(str(p, 'name', false) ?? 'cli'),
    // `vpcgw admin`: the web console's password logins (the password travels only over this root-only socket)
    'admin.add': (p) => service.addAdmin(str(p, 'name')!, str(p, 'password')!),
    'admin.remove': (p) => service.removeAdmin(str(p, 'name')!),
    'admin.list': () => ({ admins: service.listAdmins() }),
    'resource.list': (p) => service.list(str(p, 'kind')!, { limit: 2000, filters: (p as { filters?: Record<string, string> }).filters }),
    'resource.get': (p) => service.get(str(p, 'kind')!, str(p, 'id')!),
    'resource.create': (p) => service.create(str(p, 'kind')!, (p as { body?: unknown }).body),
    'resource.replace': (p) => service.replace(str(p, 'kind')!, str(p, 'id')!, (p as { body?: unknown }).body),
    'resource.delete': async (p) => {
      await service.delete(str(p, 'kind')!, str(p, 'id')!);
      return { deleted: true };
    },
    'resource.action': (p) => service.action(
      str(p, 'kind')!, str(p, 'id')!, str(p, 'action')!, (p as { query?: Record<string, string> }).query ?? {}, (p as { body?: unknown }).body ?? null,
    ),
    // `vpcgw pki issue-client`: a certificate and key for a user from the server's CA (never stored here)
    'client.issue': (p) => {
      const server = service.get('vpn-server', str(p, 'server')!) as { name: string };
      return issueServerClientCert(service.config(), server.name, str(p, 'user')!);
    },
    // `vpcgw pki revoke-client`: onto the CRL, then the user's session ends at once (HALT: a revoked
    // client should not come back to be refused in a loop) through the API's disconnect action
    'client.revoke': async (p) => {
      const server = service.get('vpn-server', str(p, 'server')!) as { name: string };
      const r = revokeClientCert(service.config(), server.name, str(p, 'target')!);
      const disconnected: string[] = [];
      for (const user of new Set(r.revoked.map((x) => x.user).filter((u) => u !== ''))) {
        try {
          await service.action('vpn-server', server.name, 'disconnect', { client: user, halt: 'true' }, null);
          disconnected.push(user);
        } catch (err) {
          // not online, or the server is not running: nothing to end
          if (!(err instanceof VpnError) || (err.code !== 'ERR_NOT_FOUND' && err.code !== 'ERR_STATE')) throw err;
        }
      }
      return { ...r, disconnected };
    },
    apply: (p) => {
      const text = str(p, 'text')!;
      const source = str(p, 'source')!;
      return service.applyDocument(readConfigDocument(text, source), str(p, 'baseDir')!, { dryRun: (p as { dryRun?: boolean }).dryRun === true });
    },
  };
}
