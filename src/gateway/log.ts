import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { Logger } from '../common/log.js';
import type { LogLevel } from './config/types.js';

/**
 * The one root logger of the process. Cores get children of it through their
 * constructors. Secrets are kept out of log calls by the code; `redact` is only the safety net
 * for a PSK, key or password that slips into a logged object anyway.
 */

const SECRET_KEYS = ['psk', 'key', 'privateKey', 'password', 'secret', 'sharedSecret', 'authKey'];

/** pino redact paths: each secret key at the top level and up to three levels deep. */
export const REDACT_PATHS: readonly string[] = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

export const REDACTED = '(hidden)';

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** VPCGW_LOG_LEVEL (when valid) wins over the config's level. */
export function resolveLogLevel(configLevel: LogLevel | undefined, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const fromEnv = env.VPCGW_LOG_LEVEL?.trim().toLowerCase();
  if (fromEnv && (LEVELS as readonly string[]).includes(fromEnv)) return fromEnv as LogLevel;
  return configLevel ?? 'info';
}

export interface RootLoggerOptions {
  level?: LogLevel;
  /** Where lines go; stdout when not given. */
  destination?: DestinationStream;
  /** Bindings on every line, e.g. { gw: "gw1" }. */
  base?: Record<string, unknown>;
}

export type RootLogger = Logger & PinoLogger;

export function createRootLogger(opts: RootLoggerOptions = {}): RootLogger {
  const options = {
    level: opts.level ?? 'info',
    base: { pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
  };
  const p = opts.destination ? pino(options, opts.destination) : pino(options);
  return p as RootLogger;
}
