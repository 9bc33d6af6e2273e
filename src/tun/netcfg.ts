/**
 * Linux network configuration over rtnetlink (native, src/native/io/netlink.cc) and /proc/sys.
 * No `ip` process is spawned. Every failure is an IoError naming the operation and the object,
 * e.g. `addRoute 10.9.0.0/16 dev vpcgw0: ENODEV: No such device`.
 */
import { writeFileSync } from 'node:fs';
import { IoError } from '../common/errors.js';
import { maskBytes, parseIp, parsePrefix } from '../common/ip.js';
import { errnoText, loadNative } from '../native/loader.js';

const EEXIST = 17;
const ESRCH = 3;
const ENODEV = 19;

function check(errno: number, what: string): void {
  if (errno !== 0) throw new IoError(`${what}: ${errnoText(errno)}`, Object.assign(new Error(errnoText(errno)), { errno }));
}

/** Brings a link up. */
export function setLinkUp(name: string): void {
  check(loadNative().nlLink(name, 1, 0), `setLinkUp ${name}`);
}

/** Takes a link down. */
export function setLinkDown(name: string): void {
  check(loadNative().nlLink(name, 0, 0), `setLinkDown ${name}`);
}

export function setMtu(name: string, mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new IoError(`setMtu ${name}: invalid MTU ${mtu}`);
  check(loadNative().nlLink(name, -1, mtu), `setMtu ${name} ${mtu}`);
}

/** Parses "10.2.0.1/24" or "fd00::1/64" (host bits allowed: it is an interface address). */
function parseIfAddr(prefixText: string, op: string): { family: 4 | 6; bytes: Buffer; len: number } {
  const slash = prefixText.indexOf('/');
  const ip = parseIp(slash < 0 ? prefixText : prefixText.slice(0, slash));
  const max = ip?.family === 6 ? 128 : 32;
  const lenText = slash < 0 ? String(max) : prefixText.slice(slash + 1);
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : -1;
  if (!ip || len < 0 || len > max) throw new IoError(`${op} ${prefixText}: not an address/prefix`);
  return { family: ip.family, bytes: ip.bytes, len };
}

/** Adds an address ("10.2.0.1/24", "fd00::1/64") to a link. Adding an address that is already there is fine. */
export function addAddress(name: string, prefixText: string): void {
  const a = parseIfAddr(prefixText, `addAddress ${name}`);
  const rc = loadNative().nlAddr(true, name, a.family, a.bytes, a.len);
  if (rc !== EEXIST) check(rc, `addAddress ${prefixText} dev ${name}`);
}

/** Removes an address from a link. */
export function delAddress(name: string, prefixText: string): void {
  const a = parseIfAddr(prefixText, `delAddress ${name}`);
  check(loadNative().nlAddr(false, name, a.family, a.bytes, a.len), `delAddress ${prefixText} dev ${name}`);
}

function parseRoutePrefix(prefixText: string, op: string): { family: 4 | 6; bytes: Buffer; len: number } {
  const p = parsePrefix(prefixText, true);
  if (!p) throw new IoError(`${op} ${prefixText}: not a prefix`);
  return { family: p.family, bytes: maskBytes(p.bytes, p.len), len: p.len };
}

export interface RouteOptions {
  /** Route priority (lower wins); default: the kernel's (0 for IPv4, 1024 for IPv6). */
  metric?: number;
}

/** Adds (or replaces) a device route: the equivalent of `ip route replace PREFIX dev DEV [metric M]`. */
export function addRoute(prefixText: string, dev: string, opts: RouteOptions = {}): void {
  const p = parseRoutePrefix(prefixText, 'addRoute');
  const metric = opts.metric ?? -1;
  check(loadNative().nlRoute(true, p.family, p.bytes, p.len, dev, metric), `addRoute ${prefixText} dev ${dev}`);
}

/** Deletes a device route; deleting a route that does not exist is fine. */
export function delRoute(prefixText: string, dev: string, opts: RouteOptions = {}): void {
  const p = parseRoutePrefix(prefixText, 'delRoute');
  const metric = opts.metric ?? -1;
  const rc = loadNative().nlRoute(false, p.family, p.bytes, p.len, dev, metric);
  // ESRCH: no such route; ENODEV: the device (and so its routes) is already gone.
  if (rc !== ESRCH && rc !== ENODEV) check(rc, `delRoute ${prefixText} dev ${dev}`);
}

/** Writes net.ipv4.ip_forward and net.ipv6.conf.all.forwarding. `procRoot` is for tests. */
export function setIpForwarding(on: boolean, procRoot = '/proc/sys/net'): void {
  const v = on ? '1\n' : '0\n';
  for (const f of [`${procRoot}/ipv4/ip_forward`, `${procRoot}/ipv6/conf/all/forwarding`]) {
    try {
      writeFileSync(f, v);
    } catch (e) {
      throw new IoError(`setIpForwarding ${on}: cannot write ${f}: ${(e as Error).message}`, e);
    }
  }
}
