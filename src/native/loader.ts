/**
 * Loader and typings for the vpcgw N-API addon (build/Release/vpcgw_native.node, built by
 * `npm install` / `node-gyp rebuild` from src/native: io/ for the TUN, UDP and rtnetlink handles,
 * core/ and engine/ for the data plane). src/tun, src/net and src/dataplane reach the addon only
 * through this module.
 *
 * Stats arrays: native code updates a Float64Array in place (indices below), so reading counters
 * costs no call into native and nothing is allocated per packet or per batch.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { VpnError } from '../common/errors.js';

/** Indices into the TUN stats array. */
export const TUN_STAT = {
  rxPackets: 0,
  rxBytes: 1,
  txPackets: 2,
  txBytes: 3,
  readBatches: 4,
  writeErrors: 5,
  readErrors: 6,
  pollErrors: 7,
} as const;
export const TUN_STAT_COUNT = 8;

/** Indices into the UDP stats array. */
export const UDP_STAT = {
  rxPackets: 0,
  rxBytes: 1,
  txPackets: 2,
  txBytes: 3,
  sendErrors: 4,
  recvErrors: 5,
  recvBatches: 6,
  pollErrors: 7,
  icmpErrors: 8,
  truncated: 9,
} as const;
export const UDP_STAT_COUNT = 10;

/**
 * A stats array read out by name through an index table (TUN_STAT, NATIVE_DP_STAT, ...): one
 * property per table key, in the table's order.
 */
export function statsByName<K extends string>(index: Readonly<Record<K, number>>, stats: ArrayLike<number>): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const [k, i] of Object.entries(index) as [K, number][]) out[k] = stats[i]!;
  return out;
}

export interface NativeTunHandle {
  readonly name: string;
  readonly fd: number;
  start(
    buf: Buffer,
    off: Uint32Array,
    len: Uint32Array,
    capacity: number,
    slotSize: number,
    headroom: number,
    readMax: number,
    cb: (count: number) => void,
  ): void;
  write(buf: Buffer, off: Uint32Array, len: Uint32Array, count: number): number;
  close(): void;
}

export interface NativeUdpHandle {
  readonly port: number;
  readonly fd: number;
  start(
    buf: Buffer,
    off: Uint32Array,
    len: Uint32Array,
    family: Uint8Array,
    addr: Buffer,
    port: Uint16Array,
    capacity: number,
    slotSize: number,
    headroom: number,
    readMax: number,
    cb: (count: number) => void,
    localFamily?: Uint8Array,
    localAddr?: Buffer,
  ): void;
  send(buf: Buffer, off: Uint32Array, len: Uint32Array, family: Uint8Array, addr: Buffer, port: Uint16Array, count: number): number;
  sendTo(data: Uint8Array, family: number, addr: Uint8Array, port: number): boolean;
  close(): void;
  /** SO_ATTACH_REUSEPORT_CBPF: the group member is (first 4 payload bytes) % groupSize (ESP SPI) */
  steerBySpi?(groupSize: number): void;
  /** SO_ATTACH_REUSEPORT_CBPF: P_DATA_V2 to member (peer-id % groupSize), every other datagram to 0 */
  steerByPeerId?(groupSize: number): void;
}

export interface NativeAddon {
  readonly abiVersion: number;
  TunHandle: new (name: string, stats: Float64Array) => NativeTunHandle;
  /** flags: 1 SO_REUSEADDR, 2 SO_REUSEPORT (older addons ignore them) */
  UdpHandle: new (family: 4 | 6, addr: Buffer, port: number, ipv6Only: boolean, stats: Float64Array, flags?: number) => NativeUdpHandle;
  /** Returns 0 or a positive errno. `up`: -1 leave, 0 down, 1 up; `mtu` 0 leaves it. */
  nlLink(name: string, up: number, mtu: number): number;
  nlAddr(add: boolean, name: string, family: 4 | 6, addr: Buffer, prefixLen: number): number;
  nlRoute(add: boolean, family: 4 | 6, dst: Buffer, prefixLen: number, dev: string, metric: number): number;
  strerror(errno: number): string;
  /** Opens a TUN for the data-plane engine: [fd, kernel name]; vnetHdr adds virtio_net_hdr + TSO. */
  openTun(name: string, vnetHdr: boolean, multiQueue: boolean): [number, string];
  /** Closes an fd openTun returned that no engine took over. */
  closeFd(fd: number): void;
}

/** An error thrown by the addon: message is strerror(errno). */
export interface NativeErrnoError extends Error {
  errno: number;
  syscall: string;
}

let cached: NativeAddon | undefined;

/**
 * Candidate paths of an addon file: `envOverride` first (an explicit path from the environment:
 * $VPCGW_NATIVE, $VPCGW_NATIVE_TEST), then build/Release/<file> beside each ancestor of this
 * module (src/native under vitest, dist/native or dist/src/native compiled).
 */
export function addonCandidates(file: string, envOverride?: string): string[] {
  const out: string[] = [];
  if (envOverride) out.push(envOverride);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    out.push(join(dir, 'build', 'Release', file));
    dir = dirname(dir);
  }
  return out;
}

/** Requires the first existing candidate; ERR_NATIVE_UNAVAILABLE listing the paths tried when none. */
export function requireAddon(file: string, envOverride?: string): unknown {
  const tried = addonCandidates(file, envOverride);
  const require = createRequire(import.meta.url);
  for (const p of tried) {
    if (existsSync(p)) return require(p);
  }
  throw new VpnError('ERR_NATIVE_UNAVAILABLE', `vpcgw native addon ${file} not built (run \`npm run build\`); tried: ${tried.join(', ')}`);
}

/** Loads the addon once; throws VpnError ERR_NATIVE_UNAVAILABLE (listing the paths tried) when it is not built. */
export function loadNative(): NativeAddon {
  if (!cached) cached = requireAddon('vpcgw_native.node', process.env.VPCGW_NATIVE) as NativeAddon;
  return cached;
}

/** "EPERM: Operation not permitted" style text for an errno (positive). */
export function errnoText(errno: number): string {
  let name = `errno ${errno}`;
  try {
    name = getSystemErrorName(-errno);
  } catch {
    // unknown errno: keep the number
  }
  return `${name}: ${loadNative().strerror(errno)}`;
}

export function isNativeErrnoError(e: unknown): e is NativeErrnoError {
  return e instanceof Error && typeof (e as Partial<NativeErrnoError>).errno === 'number';
}

/**
 * One ESP SA as the addon reads it (src/native/engine/parse-args.h turns it into an esp::SaConfig):
 * the data plane's installSa and the test addon's EspCore both take these fields.
 */
export interface NativeEspSaConfig {
  inbound: boolean;
  spi: number;
  encr: number;
  encrKeyBits: number;
  integ: number;
  encrKey: Buffer;
  integKey: Buffer;
  replayWindow: number;
  /** RFC 4303 §2.2.1 extended sequence numbers */
  esn: boolean;
  initialSeq: number;
  /** with ESN: high 32 bits of the last used outbound sequence number */
  initialSeqHi: number;
  /** packed selectors: 18 bytes each (family, length, 16 address bytes) */
  localTs: Buffer;
  remoteTs: Buffer;
  softBytes: number;
  hardBytes: number;
  softPackets: number;
  hardPackets: number;
}
