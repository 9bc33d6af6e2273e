/**
 * TEST AND BENCH TOOL: many OpenVPN 2.6-style clients in one process, over UDP. Each client runs
 * the control channel of test/helpers/ssl-test-client.ts (hard reset, TLS, key method 2 with
 * username/password, PUSH_REQUEST), takes its address, peer-id and cipher from the PUSH_REPLY,
 * derives the data keys as the real client does (TLS EKM when the server pushes tls-ekm in
 * protocol-flags or key-derivation, else the OpenVPN PRF) and then sends ICMP echo requests through the
 * data channel (P_DATA_V2), counting the replies. That is what a stock client does on the wire,
 * without a TUN device or a process per client, so hundreds of sessions fit on a small machine.
 *
 * Bounded everywhere: handshakes run `concurrency` at a time, every wait has a deadline, and
 * `stop()` closes every socket.
 */
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { serverKeysFromBlock } from '../../src/ssl/control/key-derivation.js';
import { DataChannel, DATA_IP, DATA_MAX_OVERHEAD } from '../../src/ssl/data/data-channel.js';
import { Opcode } from '../../src/ssl/wire/opcodes.js';
import { TestOvpnClient } from './ssl-test-client.js';

export interface LoadOptions {
  /** Server address and UDP port. */
  host: string;
  port: number;
  /** Local address to bind (all clients share it, each on its own port). */
  bind?: string;
  /** The CA that signed the server's certificate (PEM). */
  ca: string;
  /** Password login: the user name of client i, and the password. */
  user: (i: number) => string;
  password: string;
  clients: number;
  /** Handshakes in flight at once. */
  concurrency: number;
  /** Where the echo requests go (an address the server routes: the pool's first address, a VPC host). */
  pingTarget: string;
  /** Echo requests per client after all are up, and their ICMP payload size. */
  pingsPerClient: number;
  pingBytes: number;
  /** Echo requests in flight per client. */
  pingWindow: number;
  /** Deadline for all handshakes, and for all pings (ms). */
  connectTimeoutMs: number;
  pingTimeoutMs: number;
}

export interface LoadResult {
  clients: number;
  connected: number;
  failed: { user: string; error: string }[];
  /** From the first hard reset to the last PUSH_REPLY (ms), and handshakes per second over it. */
  connectMs: number;
  handshakesPerSec: number;
  /** Median and 95th percentile of one client's hard reset → PUSH_REPLY (ms). */
  handshakeP50Ms: number;
  handshakeP95Ms: number;
  pingsSent: number;
  pingsAnswered: number;
  /** Unanswered within 2 s. */
  pingsLost: number;
  /** Clients that got at least one echo reply. */
  clientsWithTraffic: number;
  pingMs: number;
  /** IP bytes sent plus received through the data channel during the ping phase, per second. */
  throughputBitsPerSec: number;
  /** The addresses the server assigned, distinct count. */
  distinctAddresses: number;
}

const MAX_IP = 1500;
/** An echo request unanswered this long is lost (the first ones may wait for ARP on the VPC side). */
const PING_TIMEOUT_MS = 2000;

class LoadClient {
  readonly sock: Socket;
  readonly ctl: TestOvpnClient;
  data: DataChannel | null = null;
  address = '';
  error = '';
  startedMs = 0;
  upMs = 0;
  private pushAskedMs = 0;
  sent = 0;
  answered = 0;
  inFlight = 0;
  bytes = 0;
  private readonly out = Buffer.alloc(MAX_IP + DATA_MAX_OVERHEAD + 64);
  private readonly echo: Buffer;
  /** echo requests in flight: sequence → when sent (ms) */
  private readonly inFlightSince = new Map<number, number>();
  lost = 0;

  constructor(
    readonly index: number,
    readonly user: string,
    private readonly o: LoadOptions,
  ) {
    this.sock = createSocket('udp4');
    this.ctl = new TestOvpnClient({ ca: o.ca, username: user, password: o.password }, (pkt) => this.sock.send(pkt, o.port, o.host));
    this.echo = Buffer.alloc(20 + 8 + o.pingBytes);
    this.sock.on('message', (m) => this.onMessage(m));
    this.sock.on('error', (e) => (this.error ||= `socket: ${e.message}`));
  }

  async open(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.sock.once('error', reject);
      this.sock.bind({ address: this.o.bind, port: 0 }, () => {
        this.sock.off('error', reject);
        resolve();
      });
    });
  }

  start(): void {
    this.startedMs = performance.now();
    this.ctl.start(Date.now());
  }

  get up(): boolean {
    return this.data !== null;
  }

  /** Retransmits, PUSH_REQUEST once the keys exist (again each second until the reply). */
  tick(nowMs: number): void {
    if (this.up || this.error) return;
    this.ctl.tick(Date.now());
    if (this.ctl.errors.length) {
      this.error = this.ctl.errors.join('; ');
      return;
    }
    const ks = this.ctl.keys.get(this.ctl.currentKeyId);
    if (ks?.serverKm2 && nowMs - this.pushAskedMs >= 1000) {
      this.pushAskedMs = nowMs;
      this.ctl.sendText('PUSH_REQUEST');
    }
    for (const c of this.ctl.commands) {
      if (c.startsWith('AUTH_FAILED')) this.error = c;
      else if (c.startsWith('PUSH_REPLY')) this.onPush(c);
    }
    this.ctl.commands.length = 0;
  }

  private onPush(reply: string): void {
    const opts = reply.split(',');
    const arg = (name: string): string | undefined => opts.find((x) => x.startsWith(`${name} `))?.slice(name.length + 1);
    const peerId = Number(arg('peer-id') ?? 'NaN');
    const cipher = arg('cipher');
    const ifconfig = arg('ifconfig');
    const ks = this.ctl.keys.get(this.ctl.currentKeyId);
    if (!Number.isInteger(peerId) || !cipher || !ifconfig || !ks) {
      this.error = `PUSH_REPLY without peer-id, cipher or ifconfig: ${reply}`;
      return;
    }
    // OpenVPN 2.6 servers say it in protocol-flags, 2.5 ones with key-derivation
    const ekm = arg('key-derivation') === 'tls-ekm' || (arg('protocol-flags') ?? '').split(' ').includes('tls-ekm');
    const block = ekm ? ks.ekmBlock : ks.prfBlock;
    if (!block) {
      this.error = 'no key block';
      return;
    }
    const k = serverKeysFromBlock(block, cipher);
    const dc = new DataChannel({ peerId }, Date.now());
    // the client's direction is the server's other way round
    dc.installKey({ keyId: ks.keyId, cipher, encKey: k.decKey, encImplicitIv: k.decImplicitIv, decKey: k.encKey, decImplicitIv: k.encImplicitIv }, Date.now());
    this.address = ifconfig.split(' ')[0]!;
    this.data = dc;
    this.upMs = performance.now();
    this.writeEchoHeader();
  }

  private onMessage(m: Buffer): void {
    const op = m[0]! >> 3;
    if (op === Opcode.P_DATA_V2 || op === Opcode.P_DATA_V1) {
      const dc = this.data;
      if (!dc || dc.decrypt(m, 0, m.length, Date.now()) !== DATA_IP) return;
      this.onIp(m, dc.outOff, dc.outLen);
      return;
    }
    this.ctl.receive(m, Date.now());
  }

  /** An echo reply to one of ours: ICMP type 0 with our identifier and a sequence in flight. */
  private onIp(b: Buffer, off: number, len: number): void {
    if (len < 28 || b[off]! >> 4 !== 4 || b[off + 9] !== 1) return;
    const ihl = (b[off]! & 15) * 4;
    if (b[off + ihl] !== 0 || b.readUInt16BE(off + ihl + 4) !== (this.index & 0xffff)) return;
    const seq = b.readUInt16BE(off + ihl + 6);
    if (!this.inFlightSince.delete(seq)) return;
    this.answered++;
    this.inFlight--;
    this.bytes += len;
  }

  private writeEchoHeader(): void {
    const e = this.echo;
    e[0] = 0x45;
    e.writeUInt16BE(e.length, 2);
    e[8] = 64;
    e[9] = 1;
    writeIp4(e, 12, this.address);
    writeIp4(e, 16, this.o.pingTarget);
    e.writeUInt16BE(0, 10);
    e.writeUInt16BE(checksum(e, 0, 20), 10);
    e[20] = 8; // echo request
    e.writeUInt16BE(this.index & 0xffff, 24);
    for (let i = 28; i < e.length; i++) e[i] = i & 0xff;
  }

  /** Sends the next echo request (the caller keeps the window). */
  sendPing(): void {
    const dc = this.data!;
    const e = this.echo;
    const seq = this.sent & 0xffff;
    e.writeUInt16BE(seq, 26);
    e.writeUInt16BE(0, 22);
    e.writeUInt16BE(checksum(e, 20, e.length - 20), 22);
    const n = dc.encrypt(e, 0, e.length, this.out, 0, Date.now());
    if (n === 0) return;
    this.inFlightSince.set(seq, performance.now());
    this.sent++;
    this.inFlight++;
    this.bytes += e.length;
    // dgram sends later from the buffer it was given: each packet needs its own copy
    this.sock.send(Buffer.from(this.out.subarray(0, n)), this.o.port, this.o.host);
  }

  /** Echo requests unanswered for `timeoutMs` count as lost and free their slot in the window. */
  expire(nowMs: number, timeoutMs: number): void {
    for (const [seq, t] of this.inFlightSince) {
      if (nowMs - t < timeoutMs) continue;
      this.inFlightSince.delete(seq);
      this.inFlight--;
      this.lost++;
    }
  }

  resetCounts(): void {
    this.inFlightSince.clear();
    this.sent = this.answered = this.inFlight = this.lost = this.bytes = 0;
  }

  close(): void {
    try {
      this.sock.close();
    } catch {
      // already closed
    }
  }
}

function writeIp4(b: Buffer, off: number, text: string): void {
  const p = text.split('.').map(Number);
  for (let i = 0; i < 4; i++) b[off + i] = p[i]!;
}

function checksum(b: Buffer, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i + 1 < len; i += 2) s += b.readUInt16BE(off + i);
  if (len & 1) s += b[off + len - 1]! << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Runs the whole load: connect every client, then the pings; closes everything before returning. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const clients: LoadClient[] = [];
  for (let i = 0; i < o.clients; i++) clients.push(new LoadClient(i, o.user(i), o));
  try {
    await Promise.all(clients.map((c) => c.open()));
    const t0 = performance.now();
    const deadline = t0 + o.connectTimeoutMs;
    let next = 0;
    // connect: keep `concurrency` handshakes in flight
    while (performance.now() < deadline) {
      const pending = clients.filter((c) => c.startedMs > 0 && !c.up && !c.error).length;
      for (let k = pending; k < o.concurrency && next < clients.length; k++) clients[next++]!.start();
      const now = performance.now();
      for (const c of clients) if (c.startedMs > 0) c.tick(now);
      if (next === clients.length && clients.every((c) => c.up || c.error)) break;
      await sleep(20);
    }
    const ups = clients.filter((c) => c.up);
    const connectMs = ups.length ? Math.max(...ups.map((c) => c.upMs)) - t0 : performance.now() - t0;

    // warm-up: one echo answered, so the first burst does not wait on ARP on the way (not counted)
    const w = ups[0];
    if (w) {
      const until = performance.now() + 5000;
      while (w.answered === 0 && performance.now() < until) {
        w.expire(performance.now(), 500);
        if (w.inFlight === 0) w.sendPing();
        await sleep(10);
      }
      w.resetCounts();
    }
    // pings: every client keeps `pingWindow` echo requests in flight until it sent pingsPerClient
    const p0 = performance.now();
    const pingDeadline = p0 + o.pingTimeoutMs;
    while (performance.now() < pingDeadline) {
      let busy = false;
      const now = performance.now();
      for (const c of ups) {
        c.expire(now, PING_TIMEOUT_MS);
        while (c.sent < o.pingsPerClient && c.inFlight < o.pingWindow) c.sendPing();
        if (c.inFlight > 0 || c.sent < o.pingsPerClient) busy = true;
      }
      if (!busy) break;
      await sleep(5);
    }
    const pingMs = performance.now() - p0;
    const hs = ups.map((c) => c.upMs - c.startedMs);
    const bytes = ups.reduce((n, c) => n + c.bytes, 0);
    return {
      clients: o.clients,
      connected: ups.length,
      failed: clients.filter((c) => !c.up).map((c) => ({ user: c.user, error: c.error || (c.startedMs ? 'no PUSH_REPLY before the deadline' : 'not started') })),
      connectMs: Math.round(connectMs),
      handshakesPerSec: connectMs > 0 ? Math.round((ups.length / connectMs) * 1000 * 10) / 10 : 0,
      handshakeP50Ms: Math.round(percentile(hs, 50)),
      handshakeP95Ms: Math.round(percentile(hs, 95)),
      pingsSent: ups.reduce((n, c) => n + c.sent, 0),
      pingsAnswered: ups.reduce((n, c) => n + c.answered, 0),
      pingsLost: ups.reduce((n, c) => n + c.lost, 0),
      clientsWithTraffic: ups.filter((c) => c.answered > 0).length,
      pingMs: Math.round(pingMs),
      throughputBitsPerSec: pingMs > 0 ? Math.round((bytes * 8 * 1000) / pingMs) : 0,
      distinctAddresses: new Set(ups.map((c) => c.address)).size,
    };
  } finally {
    for (const c of clients) c.close();
  }
}
