// The folder map of README.md's "Architecture" section, checked: which folder of src/ may import which,
// and that the protocol cores do no I/O (no sockets, no timers, no wall clock). A change that crosses a
// boundary fails here with the file and the import, instead of quietly growing a room in the wrong place.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../../src/', import.meta.url).pathname;

/** Folder → the other folders of src/ it may import (null: anything; gateway/ is the wiring). */
const MAY_IMPORT: Record<string, readonly string[] | null> = {
  common: [],
  crypto: ['common'],
  ike: ['common', 'crypto'],
  esp: ['common', 'crypto'],
  ssl: ['common', 'crypto'],
  native: ['common'],
  tun: ['common', 'native'],
  net: ['common', 'native'],
  vpcep: ['common'],
  dataplane: ['common', 'crypto', 'esp', 'ssl', 'tun', 'net', 'native', 'vpcep'],
  store: ['common'],
  api: ['common'],
  gateway: null,
  console: [], // the web console (browser code) reaches the gateway only through the HTTP API
  '.': null, // src/cli.ts
};

/** The protocol cores take bytes and a time and return actions: no sockets, timers or clocks. */
const PURE = ['ike', 'esp', 'ssl'];
/** node:tls needs the wall clock for certificate validity; this file is the one wrapper around it. */
const PURE_EXEMPT = new Set(['ssl/control/tls-engine.ts']);
const IO_PATTERNS: readonly [RegExp, string][] = [
  [/from 'node:(dgram|net|fs|child_process)'/, 'imports an I/O module'],
  [/\bset(Timeout|Interval|Immediate)\s*\(/, 'starts a timer'],
  [/\bDate\.now\s*\(/, 'reads the wall clock'],
];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

function folderOf(relPath: string): string {
  const i = relPath.indexOf('/');
  return i < 0 ? '.' : relPath.slice(0, i);
}

/** Code without comments, so a comment that mentions setTimeout does not count. */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

const files = tsFiles(SRC).map((abs) => ({ abs, rel: relative(SRC, abs) }));

describe('architecture (README "Architecture")', () => {
  it('finds the source tree', () => {
    expect(files.length).toBeGreaterThan(50);
    for (const f of files) expect(Object.keys(MAY_IMPORT), `unknown folder for ${f.rel}`).toContain(folderOf(f.rel));
  });

  it('each folder imports only the folders its row allows', () => {
    const bad: string[] = [];
    for (const f of files) {
      const from = folderOf(f.rel);
      const allowed = MAY_IMPORT[from];
      if (allowed === null) continue;
      const text = stripComments(readFileSync(f.abs, 'utf8'));
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
        const target = relative(SRC, normalize(join(f.abs, '..', m[1]!)));
        if (target.startsWith('..')) continue;
        const to = folderOf(target);
        if (to !== from && !allowed.includes(to)) bad.push(`src/${f.rel} imports src/${target} (${from}/ may import ${allowed.join(', ') || 'nothing in src/'})`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('the protocol cores (ike, esp, ssl) do no I/O', () => {
    const bad: string[] = [];
    for (const f of files) {
      if (!PURE.includes(folderOf(f.rel)) || PURE_EXEMPT.has(f.rel)) continue;
      const text = stripComments(readFileSync(f.abs, 'utf8'));
      for (const [re, what] of IO_PATTERNS) if (re.test(text)) bad.push(`src/${f.rel} ${what}`);
    }
    expect(bad).toEqual([]);
  });
});
