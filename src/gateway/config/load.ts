import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError } from '../../common/errors.js';
import type { GatewayConfig } from './types.js';
import { readConfig } from './sections.js';

/** A ConfigError whose message we word ourselves (YAML syntax, unreadable file). */
function configError(path: string, message: string): ConfigError {
  const e = new ConfigError(path, null, '');
  e.message = `config ${path}: ${message}`;
  return e;
}

function lineCol(text: string, pos: number): string {
  let line = 1;
  let col = 1;
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) { line++; col = 1; } else col++;
  }
  return `line ${line}, column ${col}`;
}

/**
 * Parses and validates config text. `source` names it in messages (a file path or a label);
 * relative paths in the config resolve against `baseDir` (default: the folder of `source`).
 * Returns a deeply frozen GatewayConfig or throws the first ConfigError. YAML syntax errors give
 * only the position, never the offending text (it may be a PSK line).
 */
export function parseConfig(text: string, source: string, baseDir: string = dirname(resolve(source))): GatewayConfig {
  const raw = readConfigDocument(text, source);
  return configFromDocument(raw, source, baseDir);
}

/**
 * Validates a config document that is already data (the YAML read to JS, or one assembled from the
 * resource store): the same tables, rules and errors as a file. Relative paths resolve against `baseDir`.
 */
export function configFromDocument(raw: unknown, source: string, baseDir: string): GatewayConfig {
  const sections = readConfig(raw, { baseDir, done: {} });
  return deepFreeze({ source, ...sections });
}

/** The YAML text as data (no validation): for `vpcgw apply`, which stores entries as written. */
export function readConfigDocument(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, merge: false });
  const err = doc.errors[0];
  if (err) throw configError(`${source} (${lineCol(text, err.pos[0])})`, `YAML syntax: ${err.message}`);
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw configError(source, `YAML: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Freezes a config tree in place (Buffers inside prefixes are left as they are: they cannot be frozen). */
function deepFreeze<T>(v: T): T {
  if (v === null || typeof v !== 'object' || Object.isFrozen(v) || Buffer.isBuffer(v) || ArrayBuffer.isView(v)) return v;
  for (const k of Object.keys(v as object)) deepFreeze((v as Record<string, unknown>)[k]);
  return Object.freeze(v);
}

export interface LoadOptions {
  /** Also check that files the config names (certificates, keys) are readable. Default true. */
  checkFiles?: boolean;
}

/** Reads, parses and validates a config file; see parseConfig. */
export function loadConfigFile(path: string, opts: LoadOptions = {}): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw configError(path, `cannot read the config file (${code})`);
  }
  const cfg = parseConfig(text, path);
  if (opts.checkFiles !== false) {
    cfg.vpnServers.forEach((s, i) => {
      checkReadable(s.serverCert.cert, `vpnServers[${i}].serverCert.cert`);
      checkReadable(s.serverCert.key, `vpnServers[${i}].serverCert.key`);
      if (s.clientCa) checkReadable(s.clientCa, `vpnServers[${i}].clientCa`);
    });
  }
  return cfg;
}

function checkReadable(file: string, path: string): void {
  try {
    accessSync(file, constants.R_OK);
  } catch (e) {
    throw new ConfigError(path, file, `a readable file (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
