/**
 * The endpoint DNS responder's UDP shell: a socket on the gateway's DNS address (put on the TUN by
 * the daemon, so tunnelled sites and SSL VPN clients reach it), the decisions of the sans-I/O core
 * (src/vpcep/dns.ts) carried out, and the names that are not the endpoints' forwarded to upstream
 * resolvers (the VPC's DNS).
 *
 * Per query:
 *   1. the core decides: an answer (sent back at once), a forward, or nothing;
 *   2. a forward takes a slot of the pending table (at most `maxPending`; full -> SERVFAIL): the query
 *      is copied, its id replaced by a fresh random one not in use (so clients cannot collide with each
 *      other, and an off-path spoofer must guess it, RFC 5452 §4), and sent to the first upstream;
 *   3. an upstream datagram is taken only from the address and port the query went to, with that id
 *      and the same question (checkUpstreamAnswer); the client's id is put back and it is relayed;
 *   4. one coarse tick (TICK_MS) expires pending queries: the next upstream is tried once, then the
 *      client gets SERVFAIL.
 * With no upstream configured, other names get REFUSED (or NXDOMAIN inside the endpoints' zones).
 * UDP only: the responder's own answers always fit in 512 bytes; a truncated upstream answer (TC) is
 * relayed as it is, and a client's retry over TCP finds no listener (it then asks its next server).
 * Only counters per packet, never a log line; socket errors are logged once each.
 */
import { randomInt } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { IoError, VpnError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { checkUpstreamAnswer, EndpointDnsResponder, isValidRecord, RCODE_FORMERR, RCODE_NOTIMP, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL, type ForwardedQuestion } from '../vpcep/dns.js';

export const DNS_PORT = 53;
/** How long one upstream has to answer before the next is tried (or the client gets SERVFAIL). */
export const UPSTREAM_TIMEOUT_MS = 2000;
/** Forwarded queries in flight at once; beyond, SERVFAIL at once (bounded memory under a flood). */
export const MAX_PENDING = 1024;
/** Upstreams tried per query. */
const MAX_TRIES = 2;
const TICK_MS = 250;

export interface DnsServerOptions {
  /** the address to listen on (IPv4 or IPv6) */
  address: string;
  port?: number;
  /** upstream resolvers: "ADDR", "ADDR:PORT", "[V6]:PORT" (53 when no port) */
  upstream: readonly string[];
  log: Logger;
  /** tests shorten these */
  upstreamTimeoutMs?: number;
  maxPending?: number;
}

interface Upstream {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly text: string;
}

interface Pending {
  readonly clientId: number;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly question: ForwardedQuestion;
  /** the query as sent upstream (our id) */
  readonly query: Buffer;
  upstream: number;
  tries: number;
  deadline: number;
}

/** "ADDR" | "ADDR:PORT" | "[V6]:PORT" | bare IPv6 -> an upstream; throws ERR_INVALID_ARG. */
export function parseUpstream(text: string): Upstream {
  let address = text;
  let port = DNS_PORT;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) {
    address = v6[1]!;
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else if (isIP(text) === 0) {
    const m = /^([^:]+):(\d+)$/.exec(text);
    if (m) {
      address = m[1]!;
      port = Number(m[2]);
    }
  }
  const family = isIP(address);
  if (family === 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new VpnError('ERR_INVALID_ARG', `DNS upstream ${JSON.stringify(text)} is not ADDR or ADDR:PORT`);
  }
  return { address, port, family: family as 4 | 6, text };
}

function bind(type: 'udp4' | 'udp6', address: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type });
    const onError = (err: Error): void => {
      s.close();
      reject(new IoError(`DNS: cannot bind UDP ${address}:${port}`, err));
    };
    s.once('error', onError);
    s.bind(port, address, () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

function closeSocket(s: Socket | null): Promise<void> {
  if (!s) return Promise.resolve();
  return new Promise((resolve) => {
    try {
      s.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

export class DnsServer {
  private readonly core = new EndpointDnsResponder();
  private readonly pending = new Map<number, Pending>();
  private readonly counters = {
    queries: 0,
    answers: 0,
    nxdomain: 0,
    refused: 0,
    formerr: 0,
    notimp: 0,
    forwards: 0,
    upstreamAnswers: 0,
    upstreamStray: 0,
    retries: 0,
    timeouts: 0,
    servfail: 0,
    pendingFull: 0,
    drops: 0,
    sendErrors: 0,
  };
  private tick: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly upstreamTimeoutMs: number;
  private readonly maxPending: number;
  private readonly boundPort: number;

  private constructor(
    private readonly server: Socket,
    private readonly up4: Socket | null,
    private readonly up6: Socket | null,
    private readonly upstreams: readonly Upstream[],
    private readonly log: Logger,
    o: DnsServerOptions,
  ) {
    this.upstreamTimeoutMs = o.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS;
    this.maxPending = o.maxPending ?? MAX_PENDING;
    this.boundPort = server.address().port;
    server.on('message', (msg, rinfo) => this.onQuery(msg, rinfo));
    server.on('error', (err) => this.log.warn({ err }, 'DNS socket error'));
    for (const s of [up4, up6]) {
      if (!s) continue;
      s.on('message', (msg, rinfo) => this.onUpstream(msg, rinfo));
      s.on('error', (err) => this.log.warn({ err }, 'DNS upstream socket error'));
    }
    if (upstreams.length > 0) {
      this.tick = setInterval(() => this.expire(Date.now()), TICK_MS);
      this.tick.unref();
    }
  }

  /** Binds the server socket (and one upstream socket per address family in use). Throws IoError or ERR_INVALID_ARG. */
  static async start(o: DnsServerOptions): Promise<DnsServer> {
    const upstreams = o.upstream.map(parseUpstream);
    const family = isIP(o.address);
    if (family === 0) throw new VpnError('ERR_INVALID_ARG', `DNS listen address ${JSON.stringify(o.address)} is not an IP address`);
    const port = o.port ?? DNS_PORT;
    const server = await bind(family === 6 ? 'udp6' : 'udp4', o.address, port);
    let up4: Socket | null = null;
    let up6: Socket | null = null;
    try {
      if (upstreams.some((u) => u.family === 4)) up4 = await bind('udp4', '0.0.0.0', 0);
      if (upstreams.some((u) => u.family === 6)) up6 = await bind('udp6', '::', 0);
    } catch (err) {
      await Promise.all([closeSocket(server), closeSocket(up4)]);
      throw err;
    }
    const s = new DnsServer(server, up4, up6, upstreams, o.log, o);
    o.log.info({ address: o.address, port: s.port, upstream: upstreams.map((u) => u.text) }, 'DNS responder listening');
    return s;
  }

  /** The bound port (the one asked for, or the kernel's choice for 0). */
  get port(): number {
    return this.boundPort;
  }

  /**
   * Replaces the endpoint names (FQDN, any case -> IPv4). A record that is not a host name and an IPv4
   * address (the config loader refuses those) is left out with one warning, so it cannot take the
   * other names down with it.
   */
  setRecords(records: ReadonlyMap<string, string>): void {
    const ok = new Map<string, string>();
    const bad: string[] = [];
    for (const [name, addr] of records) {
      if (isValidRecord(name, addr)) ok.set(name, addr);
      else bad.push(name);
    }
    if (bad.length > 0) this.log.warn({ names: bad }, 'DNS records left out: not a host name with an IPv4 address');
    this.core.setRecords(ok);
  }

  /** Closes the sockets; pending queries are dropped unanswered. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.tick) clearInterval(this.tick);
    this.tick = null;
    this.pending.clear();
    await Promise.all([closeSocket(this.server), closeSocket(this.up4), closeSocket(this.up6)]);
  }

  /**
   * Counters since start: queries (datagrams received), answers (sent by the responder itself, of
   * which nxdomain, refused, formerr, notimp), forwards, upstreamAnswers (relayed), upstreamStray
   * (upstream datagrams that matched no pending query), retries, timeouts, servfail, pendingFull,
   * drops (no header, a response, a bug), sendErrors; and now: pending, records.
   */
  stats(): Record<string, number> {
    return { ...this.counters, pending: this.pending.size, records: this.core.size };
  }

  private onQuery(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed) return;
    this.counters.queries++;
    try {
      const d = this.core.decide(msg, this.upstreams.length > 0);
      if (d.kind === 'drop') {
        this.counters.drops++;
        return;
      }
      if (d.kind === 'answer') {
        this.countAnswer(d.rcode);
        this.send(this.server, d.reply, rinfo.port, rinfo.address);
        return;
      }
      if (this.pending.size >= this.maxPending) {
        this.counters.pendingFull++;
        this.fail(msg, rinfo.address, rinfo.port);
        return;
      }
      this.forward(msg, d.id, { name: d.name, type: d.type }, rinfo);
    } catch (err) {
      // a bug, not input: the core never throws on input
      this.counters.drops++;
      this.log.warn({ err }, 'DNS query handling failed');
    }
  }

  private countAnswer(rcode: number): void {
    if (rcode === RCODE_REFUSED) this.counters.refused++;
    else if (rcode === RCODE_NXDOMAIN) this.counters.nxdomain++;
    else if (rcode === RCODE_FORMERR) this.counters.formerr++;
    else if (rcode === RCODE_NOTIMP) this.counters.notimp++;
    this.counters.answers++;
  }

  private forward(msg: Buffer, clientId: number, question: ForwardedQuestion, rinfo: RemoteInfo): void {
    let id = randomInt(65536);
    for (let i = 0; this.pending.has(id) && i < 64; i++) id = randomInt(65536);
    if (this.pending.has(id)) {
      this.counters.pendingFull++;
      this.fail(msg, rinfo.address, rinfo.port);
      return;
    }
    const query = Buffer.from(msg);
    query.writeUInt16BE(id, 0);
    const p: Pending = {
      clientId,
      clientAddress: rinfo.address,
      clientPort: rinfo.port,
      question,
      query,
      upstream: 0,
      tries: 1,
      deadline: Date.now() + this.upstreamTimeoutMs,
    };
    this.pending.set(id, p);
    this.counters.forwards++;
    this.sendUpstream(p);
  }

  private sendUpstream(p: Pending): void {
    const u = this.upstreams[p.upstream]!;
    const sock = u.family === 6 ? this.up6 : this.up4;
    if (sock) this.send(sock, p.query, u.port, u.address);
  }

  private onUpstream(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed || msg.length < 2) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    const u = p ? this.upstreams[p.upstream]! : undefined;
    if (!p || !u || rinfo.address !== u.address || rinfo.port !== u.port) {
      this.counters.upstreamStray++;
      return;
    }
    const out = checkUpstreamAnswer(msg, p.question, p.clientId);
    if (!out) {
      this.counters.upstreamStray++;
      return;
    }
    this.pending.delete(id);
    this.counters.upstreamAnswers++;
    this.send(this.server, out, p.clientPort, p.clientAddress);
  }

  /** The coarse tick: retry on the next upstream once, then SERVFAIL. Work bounded by maxPending. */
  private expire(now: number): void {
    for (const [id, p] of this.pending) {
      if (p.deadline > now) continue;
      if (p.tries < Math.min(MAX_TRIES, this.upstreams.length)) {
        p.tries++;
        p.upstream = (p.upstream + 1) % this.upstreams.length;
        p.deadline = now + this.upstreamTimeoutMs;
        this.counters.retries++;
        this.sendUpstream(p);
        continue;
      }
      this.pending.delete(id);
      this.counters.timeouts++;
      const q = Buffer.from(p.query);
      q.writeUInt16BE(p.clientId, 0);
      this.fail(q, p.clientAddress, p.clientPort);
    }
  }

  private fail(query: Buffer, address: string, port: number): void {
    const reply = EndpointDnsResponder.failure(query, RCODE_SERVFAIL);
    if (!reply) return;
    this.counters.servfail++;
    this.send(this.server, reply, port, address);
  }

  private send(sock: Socket, buf: Buffer, port: number, address: string): void {
    try {
      sock.send(buf, port, address, (err) => {
        if (err) this.counters.sendErrors++;
      });
    } catch {
      this.counters.sendErrors++; // socket closed under us
    }
  }
}
