// Packaging: `npm pack`, then `npm install -g` of the tarball into a temporary prefix with no network
// (--offline: npm may only read its cache), then the installed `vpcgw` on <prefix>/bin runs, checks
// the embedded default config, and packaging/vpcgw.service passes `systemd-analyze verify` pointed at
// that installed binary.
//
// The tarball bundles the runtime dependencies (package.json "bundleDependencies"): an install needs
// no registry at all, and the install script builds the native addon (and better-sqlite3's) from
// source with node-gyp against the running Node's headers (--nodedir), so it takes a few minutes.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const UNIT = join(ROOT, 'packaging', 'vpcgw.service');
const INSTALL_TIMEOUT_MS = 15 * 60_000;

let work = '';
let prefix = '';
let bin = '';

function run(cmd: string, args: string[], opts: { cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd ?? work, timeout: opts.timeout ?? 60_000, env: opts.env ?? process.env, input: opts.input });
}

function explain(r: SpawnSyncReturns<string>): string {
  return `exit ${r.status} ${r.signal ?? ''}\n${r.stdout}\n${r.stderr}`;
}

/** The folder holding include/node of the running Node (Debian: /usr; an official tarball: its root). */
function nodeDir(): string {
  const dir = dirname(dirname(process.execPath));
  if (!existsSync(join(dir, 'include', 'node', 'node_api.h'))) throw new Error(`no Node headers in ${dir}/include/node (Debian: apt install nodejs libnode-dev)`);
  return dir;
}

/** The unit with ExecStart's bare `vpcgw` replaced by `binary` (verify needs an executable path). */
function unitFor(binary: string, unitText = readFileSync(UNIT, 'utf8')): string {
  const out = unitText.replace(/^ExecStart=vpcgw /m, `ExecStart=${binary} `);
  if (out === unitText) throw new Error('packaging/vpcgw.service: no "ExecStart=vpcgw " line');
  return out;
}

function verify(unitText: string): SpawnSyncReturns<string> {
  const dir = mkdtempSync(join(work, 'unit-'));
  const path = join(dir, 'vpcgw.service');
  writeFileSync(path, unitText);
  return run('systemd-analyze', ['verify', path], { cwd: dir });
}

describe('npm pack + npm install -g --offline', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'vpcgw-pkg-'));
    prefix = join(work, 'prefix');
    bin = join(prefix, 'bin', 'vpcgw');
    // `npm pack` runs "prepare" (tsc -p tsconfig.build.json), so dist/ in the tarball is current
    const pack = run('npm', ['pack', '--pack-destination', work], { cwd: ROOT, timeout: 5 * 60_000 });
    if (pack.status !== 0) throw new Error(`npm pack failed: ${explain(pack)}`);
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new Error(`npm pack made no tarball: ${explain(pack)}`);
    const install = run(
      'npm',
      ['install', '-g', '--offline', '--no-audit', '--no-fund', `--nodedir=${nodeDir()}`, '--prefix', prefix, join(work, tgz)],
      { timeout: INSTALL_TIMEOUT_MS },
    );
    if (install.status !== 0) throw new Error(`npm install -g --offline failed: ${explain(install)}`);
  }, INSTALL_TIMEOUT_MS + 6 * 60_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the tarball holds dist/, the addon sources, the unit and the runtime dependencies, not the tests', () => {
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
    const list = run('tar', ['tzf', join(work, tgz)]).stdout.split('\n');
    expect(list).toContain('package/dist/cli.js');
    expect(list).toContain('package/binding.gyp');
    expect(list).toContain('package/src/native/addon.cc');
    expect(list).toContain('package/packaging/vpcgw.service');
    expect(list.some((f) => f.startsWith('package/node_modules/pino/'))).toBe(true);
    expect(list.some((f) => f.startsWith('package/test/'))).toBe(false);
    expect(list.some((f) => f.startsWith('package/src/') && f.endsWith('.ts'))).toBe(false);
    // dev dependencies stay out
    expect(list.some((f) => f.startsWith('package/node_modules/vitest/') || f.startsWith('package/node_modules/typescript/'))).toBe(false);
  });

  it('puts vpcgw on <prefix>/bin; --help exits 0; the install script built the native addon', () => {
    expect(existsSync(bin)).toBe(true);
    const r = run(bin, ['--help']);
    expect(r.status, explain(r)).toBe(0);
    expect(r.stdout).toMatch(/^usage: vpcgw <command>/);
    expect(existsSync(join(prefix, 'lib', 'node_modules', 'vpcgw', 'build', 'Release', 'vpcgw_native.node'))).toBe(true);
    // also through PATH, as a shell finds it
    const viaPath = run('sh', ['-c', 'vpcgw --help'], { env: { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` } });
    expect(viaPath.status, explain(viaPath)).toBe(0);
  });

  it('vpcgw check-config accepts the embedded default config (written by the installed code)', () => {
    const dataDir = join(work, 'data');
    const mod = join(prefix, 'lib', 'node_modules', 'vpcgw', 'dist', 'gateway', 'default-config.js');
    // the same call `vpcgw start` makes without --config: config file and PKI from the embedded default
    const write = run(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(mod)}); console.log(m.ensureDefaultConfig(${JSON.stringify(dataDir)}).path);`]);
    expect(write.status, explain(write)).toBe(0);
    const configPath = write.stdout.trim();
    expect(configPath).toBe(join(dataDir, 'vpcgw.yaml'));
    const r = run(bin, ['check-config', configPath]);
    expect(r.status, explain(r)).toBe(0);
    // and a broken one is refused (exit 1, one line naming the problem)
    writeFileSync(join(work, 'bad.yaml'), 'gateway: { name: gw1, publicAddresses: [not-an-ip], vpcSubnets: [10.2.0.0/16] }\n');
    const bad = run(bin, ['check-config', join(work, 'bad.yaml')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/publicAddresses/);
  });

  it('systemd-analyze verify accepts packaging/vpcgw.service run from the installed binary, without a warning', () => {
    const r = verify(unitFor(bin));
    expect(r.status, explain(r)).toBe(0);
    // verify exits 0 on settings it ignores; it prints a line for each, so there must be none
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
  });

  it('systemd-analyze verify does report a broken copy (the check above can fail)', () => {
    const broken = unitFor(bin).replace(/^ProtectSystem=strict$/m, 'ProtectSystem=strictest');
    const r = verify(broken);
    expect(`${r.stdout}${r.stderr}`).toMatch(/ProtectSystem|protect system/i);
    const missing = verify(unitFor(join(work, 'no-such-vpcgw')));
    expect(missing.status).not.toBe(0);
  });
});
