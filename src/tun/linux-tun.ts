/**
 * The Linux TUN device on the native addon (src/native/io/tun.cc).
 *
 * Read pipeline:
 *   1. native uv_poll wakes on readable; a C loop of read() fills this device's PacketBatch slots
 *      (slot i at i * slotSize + headroom, at most `readMax` bytes);
 *   2. native calls back once per filled batch with the count; we set `batch.count` and call
 *      `onBatch(batch)`; the batch is reused by the next wake-up.
 * Write: one write(2) per packet of the given batch, looped in C (a TUN takes one packet per write).
 */
import { PacketBatch } from '../common/batch.js';
import { IoError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { silentLogger } from '../common/log.js';
import { isNativeErrnoError, loadNative, statsByName, TUN_STAT, TUN_STAT_COUNT } from '../native/loader.js';
import type { NativeTunHandle } from '../native/loader.js';
import { setLinkUp, setMtu } from './netcfg.js';
import type { TunDevice, TunStats } from './tun-device.js';

// Implementation choices.
export const TUN_DEFAULT_MTU = 1400;
export const TUN_DEFAULT_BATCH = 64;
/** Room before each packet for headers written in place (ESP hdr + IV, OpenVPN op/peer-id + packet id). */
export const TUN_DEFAULT_HEADROOM = 64;
/** Room after each packet for trailers (ESP padding, pad length, next header, ICV). */
export const TUN_DEFAULT_TAILROOM = 64;

export interface LinuxTunOptions {
  /** Interface name; empty or missing lets the kernel choose (tun0, tun1...). */
  name?: string;
  /** Set on the link at open; default 1400. */
  mtu?: number;
  /** Bring the link up at open (default true). */
  up?: boolean;
  batchSize?: number;
  headroom?: number;
  tailroom?: number;
  log?: Logger;
}

/** Extra counters beyond TunStats. */
export interface LinuxTunStats extends TunStats {
  readErrors: number;
  pollErrors: number;
}

export class LinuxTun implements TunDevice {
  readonly name: string;
  readonly mtu: number;
  /** The batch handed to `onBatch` (owned by this device, reused every wake-up). */
  readonly batch: PacketBatch;
  private readonly handle: NativeTunHandle;
  private readonly counters = new Float64Array(TUN_STAT_COUNT);
  private readonly readMax: number;
  private readonly log: Logger;
  private onBatch: ((batch: PacketBatch) => void) | null = null;
  private closed = false;

  /** Opens (creates) the TUN, sets its MTU and brings it up. Throws IoError with one clear message. */
  static open(opts: LinuxTunOptions = {}): LinuxTun {
    return new LinuxTun(opts);
  }

  private constructor(opts: LinuxTunOptions) {
    const native = loadNative();
    this.log = opts.log ?? silentLogger;
    this.mtu = opts.mtu ?? TUN_DEFAULT_MTU;
    const headroom = opts.headroom ?? TUN_DEFAULT_HEADROOM;
    const tailroom = opts.tailroom ?? TUN_DEFAULT_TAILROOM;
    // The read size is the MTU: the kernel never queues a bigger packet on a TUN without offloads.
    this.readMax = this.mtu;
    const slotSize = roundUp(headroom + this.mtu + tailroom, 64);
    this.batch = new PacketBatch(opts.batchSize ?? TUN_DEFAULT_BATCH, slotSize, headroom);
    const wanted = opts.name ?? '';
    try {
      this.handle = new native.TunHandle(wanted, this.counters);
    } catch (e) {
      throw openError(wanted, e);
    }
    this.name = this.handle.name;
    try {
      setMtu(this.name, this.mtu);
      if (opts.up ?? true) setLinkUp(this.name);
    } catch (e) {
      this.handle.close();
      throw e;
    }
    this.log.info({ tun: this.name, mtu: this.mtu }, 'TUN opened');
  }

  get fd(): number {
    return this.handle.fd;
  }

  start(onBatch: (batch: PacketBatch) => void): void {
    if (this.closed) throw new IoError(`TUN ${this.name}: start after close`);
    if (this.onBatch) throw new IoError(`TUN ${this.name}: already started`);
    this.onBatch = onBatch;
    const b = this.batch;
    this.handle.start(b.buf, b.off, b.len, b.capacity, b.slotSize, b.headroom, this.readMax, (n) => this.deliver(n));
  }

  private deliver(n: number): void {
    if (this.closed || !this.onBatch) return;
    this.batch.count = n;
    this.onBatch(this.batch);
  }

  write(batch: PacketBatch): number {
    if (this.closed || batch.count === 0) return 0;
    return this.handle.write(batch.buf, batch.off, batch.len, batch.count);
  }

  stats(): LinuxTunStats {
    return statsByName(TUN_STAT, this.counters);
  }

  /** Stops polling and closes the fd; the kernel removes the (non-persistent) interface. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onBatch = null;
    this.handle.close();
    this.log.info({ tun: this.name }, 'TUN closed');
  }
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function openError(name: string, e: unknown): IoError {
  if (!isNativeErrnoError(e)) return new IoError(`cannot open /dev/net/tun: ${String(e)}`, e);
  const denied = e.errno === 1 /* EPERM */ || e.errno === 13; /* EACCES */
  // /dev/net/tun is usually mode 0666: without CAP_NET_ADMIN it is TUNSETIFF that fails with EPERM.
  const what = e.syscall === 'open' || denied ? 'cannot open /dev/net/tun' : `cannot create TUN device "${name || '(auto)'}"`;
  let hint = '';
  if (denied) hint = ' (vpcgw needs root or CAP_NET_ADMIN)';
  else if (e.errno === 2 /* ENOENT */ || e.errno === 19 /* ENODEV */) hint = ' (load the tun kernel module)';
  else if (e.errno === 16 /* EBUSY */) hint = ' (the name is in use by another device)';
  return new IoError(`${what}: ${e.message}${hint}`, e);
}
