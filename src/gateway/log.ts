import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import type { Logger } from '../common/log.js';
import type { LogLevel } from './config/types.js';

/**
 * The one root logger of the process. Cores get children of it through their
 * constructors. Secrets are kept out of log calls by the code; `redact` is only the safety net
 * for a PSK, key or password that slips into a logged object anyway.
 *
 * Lines are JSON (one object per line, for journald and log shippers) unless stdout is a terminal,
 * where pino-pretty turns each line into "time LEVEL (bindings): message" with the fields below it.
 * VPCGW_LOG_FORMAT=json|pretty overrides the guess. Redaction happens before formatting, so both
 * formats hide the same fields.
 */

const SECRET_KEYS = [
  'psk', 'key', 'privateKey', 'password', 'secret', 'sharedSecret', 'authKey',
  // the management API and web console: bearer tokens, password hashes, session cookies, CSRF tokens
  'token', 'passwordHash', 'cookie', 'csrf', 'authorization',
];

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

export type LogFormat = 'json' | 'pretty';

export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/** VPCGW_LOG_FORMAT (when valid) wins; otherwise human-readable on a terminal, JSON lines elsewhere. */
export function resolveLogFormat(isTTY: boolean, env: NodeJS.ProcessEnv = process.env): LogFormat {
  const fromEnv = env.VPCGW_LOG_FORMAT?.trim().toLowerCase();
  if (fromEnv && (LOG_FORMATS as readonly string[]).includes(fromEnv)) return fromEnv as LogFormat;
  return isTTY ? 'pretty' : 'json';
}

export interface RootLoggerOptions {
  level?: LogLevel;
  /** Where lines go; stdout when not given. */
  destination?: DestinationStream;
  /** Bindings on every line, e.g. { gw: "gw1" }. */
  base?: Record<string, unknown>;
  /**
   * Line format. Default: resolveLogFormat() for stdout (pretty on a terminal, VPCGW_LOG_FORMAT
   * overrides); JSON for a given destination.
   */
  format?: LogFormat;
  /** Colors in the pretty format; default: when writing to stdout and it is a terminal. */
  colorize?: boolean;
  /** Environment for VPCGW_LOG_FORMAT; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export type RootLogger = Logger & PinoLogger;

export function createRootLogger(opts: RootLoggerOptions = {}): RootLogger {
  const options = {
    level: opts.level ?? 'info',
    base: { pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
  };
  const stdoutTTY = process.stdout.isTTY === true;
  const format = opts.format ?? (opts.destination ? 'json' : resolveLogFormat(stdoutTTY, opts.env));
  if (format === 'pretty') {
    const out: DestinationStream = opts.destination ?? process.stdout;
    return pino(options, prettyDestination(out, opts.colorize ?? (!opts.destination && stdoutTTY))) as RootLogger;
  }
  const p = opts.destination ? pino(options, opts.destination) : pino(options);
  return p as RootLogger;
}

/**
 * A destination that formats each JSON line with pino-pretty in the calling tick and writes it on:
 * no worker thread and no async transform, so the last lines before an exit are not lost.
 */
function prettyDestination(out: DestinationStream, colorize: boolean): DestinationStream {
  const prettify = prettyFactory({ colorize, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname' });
  return {
    write(line: string): void {
      out.write(prettify(line));
    },
  };
}
