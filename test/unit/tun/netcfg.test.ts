// netcfg over rtnetlink against a real TUN (unique name, test-only addresses), checked with `ip -j`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IoError } from '../../../src/common/errors.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress, addRoute, delAddress, delRoute, setIpForwarding, setLinkDown, setLinkUp, setMtu } from '../../../src/tun/netcfg.js';

const tun = LinuxTun.open({ name: `vpn${process.pid % 10000}cfg`, mtu: 1400, up: false });
afterAll(() => tun.close());

function ipj(...args: string[]): any[] {
  return JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8' }) || '[]');
}
const addrs = (): string[] => ipj('addr', 'show', 'dev', tun.name)[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
const routes = (v6 = false): any[] => ipj(...(v6 ? ['-6'] : []), 'route', 'show', 'dev', tun.name);

describe('netcfg', () => {
  it('sets the link up and down and changes the MTU', () => {
    expect(ipj('link', 'show', 'dev', tun.name)[0].flags).not.toContain('UP');
    setLinkUp(tun.name);
    expect(ipj('link', 'show', 'dev', tun.name)[0].flags).toContain('UP');
    setMtu(tun.name, 1280);
    expect(readFileSync(`/sys/class/net/${tun.name}/mtu`, 'utf8').trim()).toBe('1280');
    setLinkDown(tun.name);
    expect(ipj('link', 'show', 'dev', tun.name)[0].flags).not.toContain('UP');
    setLinkUp(tun.name);
  });

  it('adds IPv4 and IPv6 addresses (adding twice is fine) and removes them', () => {
    addAddress(tun.name, '198.18.99.1/24');
    addAddress(tun.name, '198.18.99.1/24');
    addAddress(tun.name, 'fd18:99::1/64');
    expect(addrs()).toEqual(expect.arrayContaining(['198.18.99.1/24', 'fd18:99::1/64']));
    delAddress(tun.name, 'fd18:99::1/64');
    expect(addrs()).not.toContain('fd18:99::1/64');
  });

  it('adds, replaces and deletes IPv4 and IPv6 routes; deleting a missing route is fine', () => {
    addRoute('198.18.100.0/24', tun.name, { metric: 10 });
    addRoute('198.18.100.0/24', tun.name, { metric: 10 }); // replace: no EEXIST
    addRoute('fd18:100::/48', tun.name);
    expect(routes()).toContainEqual(expect.objectContaining({ dst: '198.18.100.0/24', metric: 10 }));
    expect(routes(true)).toContainEqual(expect.objectContaining({ dst: 'fd18:100::/48' }));
    delRoute('198.18.100.0/24', tun.name, { metric: 10 });
    delRoute('fd18:100::/48', tun.name);
    expect(routes().map((r) => r.dst)).not.toContain('198.18.100.0/24');
    expect(routes(true).map((r) => r.dst)).not.toContain('fd18:100::/48');
    expect(() => delRoute('198.18.100.0/24', tun.name)).not.toThrow();
    expect(() => delRoute('198.18.101.0/24', 'vpcgw-nodev')).not.toThrow();
  });

  it('reports failures as IoError naming the operation and the object', () => {
    const err = (f: () => void): IoError => {
      try {
        f();
      } catch (e) {
        return e as IoError;
      }
      throw new Error('did not throw');
    };
    const e1 = err(() => addRoute('198.18.102.0/24', 'vpcgw-nodev'));
    expect(e1).toBeInstanceOf(IoError);
    expect(e1.code).toBe('ERR_IO');
    expect(e1.message).toBe('addRoute 198.18.102.0/24 dev vpcgw-nodev: ENODEV: No such device');
    expect(err(() => setMtu(tun.name, 20)).message).toMatch(/setMtu .*: invalid MTU 20/);
    expect(err(() => addAddress(tun.name, '198.18.1.1/40')).message).toMatch(/not an address\/prefix/);
    expect(err(() => setLinkUp('vpcgw-nodev')).message).toBe('setLinkUp vpcgw-nodev: ENODEV: No such device');
  });

  it('setIpForwarding writes the IPv4 and IPv6 forwarding switches', () => {
    const root = mkdtempSync(join(tmpdir(), 'vpcgw-proc-'));
    try {
      mkdirSync(join(root, 'ipv4'));
      mkdirSync(join(root, 'ipv6/conf/all'), { recursive: true });
      setIpForwarding(true, root);
      expect(readFileSync(join(root, 'ipv4/ip_forward'), 'utf8')).toBe('1\n');
      expect(readFileSync(join(root, 'ipv6/conf/all/forwarding'), 'utf8')).toBe('1\n');
      setIpForwarding(false, root);
      expect(readFileSync(join(root, 'ipv4/ip_forward'), 'utf8')).toBe('0\n');
      expect(() => setIpForwarding(true, join(root, 'missing'))).toThrow(/setIpForwarding true: cannot write .*missing\/ipv4\/ip_forward/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
