import { PacketBatch } from '../../../src/common/batch.js';
import { parseIp } from '../../../src/common/ip.js';
import type { Endpoint } from '../../../src/common/endpoint.js';
import type { UdpStats } from '../../../src/net/udp-bind.js';
import type { TunDevice, TunStats } from '../../../src/tun/tun-device.js';
import type { GatewayPlatform, GatewayUdp, TunnelContext, TunnelController } from '../../../src/gateway/daemon.js';

/** In-memory OS for the daemon (GatewayPlatform) and a recording tunnel controller, shared by the gateway tests. */

export class FakeTun implements TunDevice {
  closed = false;
  onBatch: ((b: PacketBatch) => void) | null = null;
  constructor(readonly name: string, readonly mtu: number) {}
  start(cb: (b: PacketBatch) => void): void {
    this.onBatch = cb;
  }
  write(): number {
    return 0;
  }
  stats(): TunStats {
    return { rxPackets: 3, rxBytes: 300, txPackets: 0, txBytes: 0, readBatches: 1, writeErrors: 0 };
  }
  close(): void {
    this.closed = true;
  }
}

export class FakeUdp implements GatewayUdp {
  readonly family: 4 | 6 = 4;
  closed = false;
  onBatch: ((b: PacketBatch) => void) | null = null;
  sent: { data: Buffer; addr: string; port: number }[] = [];
  constructor(readonly address: string, readonly port: number) {}
  start(cb: (b: PacketBatch) => void): void {
    this.onBatch = cb;
  }
  send(b: PacketBatch): number {
    for (let i = 0; i < b.count; i++) {
      const fam = b.family[i] === 6 ? 6 : 4;
      const addr = b.addr.subarray(i * 16, i * 16 + (fam === 4 ? 4 : 16));
      this.sent.push({ data: Buffer.from(b.packet(i)), addr: [...addr].join('.'), port: b.port[i]! });
    }
    return b.count;
  }
  sendTo(data: Uint8Array, _f: 4 | 6, addr: Uint8Array | string, port: number): boolean {
    this.sent.push({ data: Buffer.from(data), addr: String(addr), port });
    return true;
  }
  stats(): UdpStats {
    return { rxPackets: 0, rxBytes: 0, txPackets: this.sent.length, txBytes: 0, sendErrors: 0, recvErrors: 0 };
  }
  close(): void {
    this.closed = true;
  }
  /** Delivers datagrams as the native bind would: one batch, sender in each slot. */
  deliver(datagrams: Buffer[], from = '192.0.2.1', port = 4500): void {
    const b = new PacketBatch(8, 2048, 0);
    for (const d of datagrams) b.push(d, 4, parseIp(from)!.bytes, port);
    this.onBatch!(b);
    b.buf.fill(0xee); // the daemon must not keep views into a reused batch
  }
}

export class FakePlatform implements GatewayPlatform {
  root = true;
  failBind: string | null = null;
  tun: FakeTun | null = null;
  udp: FakeUdp[] = [];
  routes = new Set<string>();
  addresses: string[] = [];
  forwarding = false;
  isRoot(): boolean {
    return this.root;
  }
  openTun(cfg: { name: string; mtu: number }): TunDevice {
    this.tun = new FakeTun(cfg.name, cfg.mtu);
    return this.tun;
  }
  addAddress(dev: string, p: string): void {
    this.addresses.push(`${p} dev ${dev}`);
  }
  enableForwarding(): void {
    this.forwarding = true;
  }
  bindUdp(address: string, port: number): GatewayUdp {
    if (this.failBind === `${address}:${port}`) throw new Error(`bind ${address}:${port}: EADDRINUSE`);
    const u = new FakeUdp(address, port);
    this.udp.push(u);
    return u;
  }
  addRoute(p: string, dev: string): void {
    this.routes.add(`${p} dev ${dev}`);
  }
  delRoute(p: string, dev: string): void {
    this.routes.delete(`${p} dev ${dev}`);
  }
  bind(address: string, port: number): FakeUdp {
    return this.udp.find((u) => u.address === address && u.port === port)!;
  }
}

/** A recording controller in the shape of the IKE side (src/gateway/ipsec.ts). */
export class RecordingController implements TunnelController {
  received: { msg: Buffer; from: Endpoint; local: Endpoint }[] = [];
  ticks: number[] = [];
  deadline = Infinity;
  started = false;
  stopped = false;
  throwOnReceive = false;
  constructor(readonly ctx: TunnelContext) {}
  start(): void {
    this.started = true;
  }
  stop(): void {
    this.stopped = true;
  }
  status() {
    return this.ctx.config.vpnConnections.map((c) => ({ name: c.name, state: 'ESTABLISHED' as const, children: [] }));
  }
  initiate(): void {}
  terminate(): void {}
  receiveIke(msg: Buffer, from: Endpoint, local: Endpoint): void {
    if (this.throwOnReceive) throw new Error('controller bug');
    this.received.push({ msg, from, local });
  }
  tick(now: number): void {
    this.ticks.push(now);
    this.deadline = Infinity;
  }
  nextDeadline(): number {
    return this.deadline;
  }
}
