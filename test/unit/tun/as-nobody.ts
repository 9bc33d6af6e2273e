// Runs a small ESM script as uid/gid 65534 (nobody) against our TS sources: the sources the script
// imports are transpiled with the project's TypeScript into a temporary tree readable by nobody.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

function transpileTree(srcDir: string, outDir: string): void {
  for (const ent of readdirSync(srcDir, { withFileTypes: true })) {
    const p = join(srcDir, ent.name);
    if (ent.isDirectory()) transpileTree(p, outDir);
    else if (ent.name.endsWith('.ts')) {
      const out = join(outDir, relative(root, p)).replace(/\.ts$/, '.js');
      mkdirSync(dirname(out), { recursive: true, mode: 0o755 });
      const js = ts.transpileModule(readFileSync(p, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      }).outputText;
      writeFileSync(out, js, { mode: 0o644 });
    }
  }
}

/** Returns the script's stdout. The script runs with cwd = a tree holding src/common, src/native and src/tun. */
export function runAsNobody(script: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'vpcgw-nobody-'));
  try {
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    for (const d of ['src/common', 'src/native', 'src/tun']) transpileTree(join(root, d), dir);
    writeFileSync(join(dir, 'main.mjs'), script, { mode: 0o644 });
    return execFileSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, 'main.mjs'],
      {
        cwd: dir,
        encoding: 'utf8',
        timeout: 10_000,
        env: { PATH: process.env.PATH ?? '', VPCGW_NATIVE: join(root, 'build/Release/vpcgw_native.node') },
      },
    ).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
