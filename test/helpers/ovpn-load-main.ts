/**
 * TEST AND BENCH TOOL: runs test/helpers/ovpn-load.ts as a program (bundled with esbuild by
 * `bundleLoadTool`, so it can run inside a network namespace with `ip netns exec`). Reads the
 * options as JSON from the file named by argv[2] (`user` is a prefix: client i is PREFIX<i+1>,
 * zero-padded to `userDigits`), prints the LoadResult as one JSON line.
 */
import { readFileSync } from 'node:fs';
import { runLoad, type LoadOptions } from './ovpn-load.js';

type FileOptions = Omit<LoadOptions, 'user'> & { userPrefix: string; userDigits: number };

const o = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as FileOptions;
const result = await runLoad({ ...o, user: (i) => `${o.userPrefix}${String(i + 1).padStart(o.userDigits, '0')}` });
process.stdout.write(`${JSON.stringify(result)}\n`);
