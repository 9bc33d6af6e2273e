import { join } from 'node:path';
import { build } from 'esbuild';
import { REPO_ROOT } from './vpcgw.js';

/** Bundles test/helpers/ovpn-load-main.ts into one ES module at `outFile` (node built-ins stay imports). */
export async function bundleLoadTool(outFile: string): Promise<string> {
  await build({
    entryPoints: [join(REPO_ROOT, 'test/helpers/ovpn-load-main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: outFile,
    logLevel: 'error',
  });
  return outFile;
}
