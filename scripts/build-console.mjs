#!/usr/bin/env node
// `npm run build:console`: bundles the web console (src/console, Preact + uPlot) with esbuild into
// dist/console: index.html, app.js and app.css (uPlot's stylesheet included), which the daemon
// serves at / of the management API (src/api/server.ts). No CDN and no external fonts: everything
// the page loads comes from these files. `--dev` keeps the bundle unminified with a source map.
import { mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'console');
const out = join(root, 'dist', 'console');
const dev = process.argv.includes('--dev');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(src, 'main.tsx') },
  bundle: true,
  outdir: out,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: !dev,
  sourcemap: dev ? 'linked' : false,
  legalComments: 'none',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': dev ? '"development"' : '"production"' },
});
copyFileSync(join(src, 'index.html'), join(out, 'index.html'));
console.log(`console built into ${out}`);
