/**
 * The pino subset the cores use. Cores receive a Logger through their constructor and never
 * import a global one, so tests can pass `silentLogger` or a capturing logger.
 */
export interface Logger {
  child(bindings: Record<string, unknown>): Logger;
  isLevelEnabled(level: string): boolean;
  trace(obj: unknown, msg?: string): void;
  debug(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

const noop = (): void => {};

export const silentLogger: Logger = {
  child: () => silentLogger,
  isLevelEnabled: () => false,
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
};

export interface CapturedLine {
  level: string;
  bindings: Record<string, unknown>;
  obj: unknown;
  msg: string | undefined;
}

/** A logger that records every line (tests check what was logged, and that secrets were not). */
export function captureLogger(lines: CapturedLine[] = [], bindings: Record<string, unknown> = {}): Logger & { lines: CapturedLine[] } {
  const mk = (level: string) => (obj: unknown, msg?: string) => {
    lines.push({ level, bindings, obj, msg });
  };
  return {
    lines,
    child: (b) => captureLogger(lines, { ...bindings, ...b }),
    isLevelEnabled: () => true,
    trace: mk('trace'),
    debug: mk('debug'),
    info: mk('info'),
    warn: mk('warn'),
    error: mk('error'),
  };
}
