import { resolve } from 'node:path';

/**
 * Where `vpcgw start` keeps its files when no --config is given, and the control socket's name:
 * the few facts every CLI command needs, in a module that loads nothing else (so `vpcgw status`
 * starts without the gateway's code).
 */

export const DEFAULT_DATA_DIR = './var';
export const DEFAULT_CONFIG_NAME = 'vpcgw.yaml';
export const CONTROL_SOCKET_NAME = 'vpcgw.sock';

/** $VPCGW_DATA_DIR, else ./var, resolved against `cwd`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  const fromEnv = env.VPCGW_DATA_DIR?.trim();
  return resolve(cwd, fromEnv || DEFAULT_DATA_DIR);
}
