// ESM loader hooks that run the repository's TypeScript sources directly under plain Node 20 (which
// cannot strip types): a relative `./x.js` import resolves to `./x.ts` when only the .ts exists,
// and .ts modules are transpiled one file at a time with the project's own TypeScript compiler.
// The fuzz engine needs a plain Node process (no vitest, no bundler) so that V8's block coverage
// maps onto the real source files and a watchdog can kill a hung input. Transpiled files are cached
// in the temp folder by content hash: every fuzz target is a new process, and loading the compiler
// alone takes a second.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CACHE = join(tmpdir(), 'vpcgw-fuzz-ts-cache');
let ts = null;

export async function resolve(specifier, context, next) {
  if (specifier.endsWith('.js') && (specifier.startsWith('.') || specifier.startsWith('/')) && context.parentURL?.startsWith('file:')) {
    const url = new URL(specifier, context.parentURL);
    if (!existsSync(fileURLToPath(url))) {
      const tsUrl = new URL(url.href.slice(0, -3) + '.ts');
      if (existsSync(fileURLToPath(tsUrl))) return { url: tsUrl.href, shortCircuit: true };
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const path = fileURLToPath(url);
  const text = readFileSync(path, 'utf8');
  const cached = join(CACHE, `${createHash('sha1').update(path).update('\0').update(text).digest('hex')}.js`);
  if (existsSync(cached)) return { format: 'module', source: readFileSync(cached, 'utf8'), shortCircuit: true };
  ts ??= (await import('typescript')).default;
  const out = ts.transpileModule(text, {
    fileName: path,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
  });
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${cached}.${process.pid}`;
  writeFileSync(tmp, out.outputText);
  renameSync(tmp, cached); // atomic: parallel runs never read half a file
  return { format: 'module', source: out.outputText, shortCircuit: true };
}
