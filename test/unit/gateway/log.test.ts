import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REDACTED, createRootLogger, resolveLogFormat } from '../../../src/gateway/log.js';
import { buildDistFor } from '../../helpers/dp-runner.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const DIST_LOG = `${ROOT}dist/gateway/log.js`;

function capture(): { lines: string[]; write(s: string): void } {
  const lines: string[] = [];
  return { lines, write: (s: string) => void lines.push(s) };
}

describe('log format', () => {
  it('JSON lines unless stdout is a terminal; VPCGW_LOG_FORMAT overrides, an invalid value is ignored', () => {
    expect(resolveLogFormat(false, {})).toBe('json');
    expect(resolveLogFormat(true, {})).toBe('pretty');
    expect(resolveLogFormat(true, { VPCGW_LOG_FORMAT: 'json' })).toBe('json');
    expect(resolveLogFormat(false, { VPCGW_LOG_FORMAT: ' Pretty ' })).toBe('pretty');
    expect(resolveLogFormat(true, { VPCGW_LOG_FORMAT: 'xml' })).toBe('pretty');
    expect(resolveLogFormat(false, { VPCGW_LOG_FORMAT: 'xml' })).toBe('json');
  });

  it('json: one object per line with time, level, bindings and message; secrets redacted', () => {
    const dest = capture();
    const log = createRootLogger({ destination: dest, base: { gw: 'gw1' } });
    log.info({ conn: 'dc1', auth: { psk: 'very secret' } }, 'connection up');
    expect(dest.lines).toHaveLength(1);
    const o = JSON.parse(dest.lines[0]!) as Record<string, unknown>;
    expect(o).toMatchObject({ level: 30, gw: 'gw1', conn: 'dc1', msg: 'connection up', auth: { psk: REDACTED } });
    expect(o.time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(dest.lines[0]).not.toContain('very secret');
  });

  it('pretty: a human-readable line, fields below it, the same fields redacted, no colors when not asked', () => {
    const dest = capture();
    const log = createRootLogger({ destination: dest, format: 'pretty', base: { gw: 'gw1' } });
    log.warn({ conn: 'dc1', password: 'hunter2', err: new Error('boom') }, 'peer did not answer');
    const text = dest.lines.join('');
    expect(text).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] WARN: peer did not answer\n/);
    expect(text).toContain('gw: "gw1"');
    expect(text).toContain(`password: "${REDACTED}"`);
    expect(text).toContain('conn: "dc1"');
    expect(text).toMatch(/err: \{[\s\S]*"message": "boom"/);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('\u001b['); // no ANSI colors
    expect(text).not.toContain('{"level"');
  });

  it('pretty with colors writes ANSI escapes; every line is written before the call returns', () => {
    const dest = capture();
    const log = createRootLogger({ destination: dest, format: 'pretty', colorize: true });
    for (let i = 0; i < 3; i++) log.info({ i }, 'line');
    expect(dest.lines).toHaveLength(3);
    expect(dest.lines[0]).toContain('\u001b[');
  });

  it('on a real pseudo-terminal (script -qc) the default logger prints pretty lines; on a pipe JSON', { timeout: 240_000 }, () => {
    if (!existsSync(DIST_LOG)) buildDistFor(DIST_LOG);
    const prog = `import('${DIST_LOG}').then((m) => { const l = m.createRootLogger({ base: { gw: 'tty1' } }); l.info({ psk: 'x1y2' }, 'hello from a tty'); })`;
    const env = { ...process.env, VPCGW_LOG_FORMAT: '' };
    // script(1) runs the command on a new pseudo-terminal and copies what it prints to our stdout
    const tty = spawnSync('script', ['-qec', `node -e "${prog}"`, '/dev/null'], { encoding: 'utf8', env, timeout: 60_000 });
    expect(tty.status, tty.stderr).toBe(0);
    // eslint-disable-next-line no-control-regex
    const plain = tty.stdout.replace(/\u001b\[[0-9;]*m/g, '');
    expect(plain).toMatch(/\] INFO: hello from a tty\r?\n/);
    expect(plain).toContain('gw: "tty1"');
    expect(plain).toContain(`psk: "${REDACTED}"`);
    expect(tty.stdout).toContain('\u001b['); // colored on a terminal
    const piped = spawnSync('node', ['-e', prog], { encoding: 'utf8', env, timeout: 60_000 });
    expect(piped.status, piped.stderr).toBe(0);
    expect(JSON.parse(piped.stdout.trim())).toMatchObject({ gw: 'tty1', msg: 'hello from a tty', psk: REDACTED });
    // the override on a terminal
    const forced = spawnSync('script', ['-qec', `node -e "${prog}"`, '/dev/null'], { encoding: 'utf8', env: { ...env, VPCGW_LOG_FORMAT: 'json' }, timeout: 60_000 });
    expect(JSON.parse(forced.stdout.trim())).toMatchObject({ msg: 'hello from a tty' });
  });
});
