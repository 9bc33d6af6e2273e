#!/usr/bin/env node
// TEST HELPER: runs our SslServer with a real LinuxTun inside a network namespace, for the interop
// tests with the real openvpn client (test/interop/openvpn.test.ts). Plain JS over the compiled dist/.
//
//   ip netns exec NS node test/helpers/openvpn-runner.mjs CONFIG.json
//
// UDP uses the native batch socket (NativeUdp) unless VPCGW_RUNNER_DGRAM=1.
// CONFIG.json: { server: SslServerConfig with identity given as PEM *paths* (cert, key, clientCa),
//                tun: { name, mtu, address } , logLevel }
// Prints "READY udp=<port> tcp=<port>" once listening. SIGUSR2 prints "STATUS <json>" (clients and
// counters). SIGTERM stops the server and the TUN, and exits 0. Logs are pino JSON lines on stdout.
//
// The tunnel hooks are the project's native data plane (dist/dataplane/native-data-plane.js) over a
// TUN opened with offloads (TSO/GRO), as `vpcgw start` runs it: the SSL UDP socket is attached to its
// SSL offload (DataPlane.sslOffload), so UDP data packets are encrypted/decrypted in C++
// (VPCGW_SSL_NATIVE=0 keeps them in JS). When
// the native data plane is unavailable, or with VPCGW_DATAPLANE=ts, it is the TsDataPlane over a
// LinuxTun. VPCGW_RUNNER_MINI=1 uses a minimal stand-in instead (TUN batches routed by destination
// to the sessions' sinks; packets to the VPC written to the TUN once per turn).
// The first line of output says which: "DATAPLANE native|ts|mini".
import { readFileSync } from 'node:fs';
import pino from 'pino';

const dist = new URL('../../dist/', import.meta.url);
const { SslServer } = await import(new URL('gateway/ssl-server.js', dist).href);
const { LinuxTun } = await import(new URL('tun/linux-tun.js', dist).href);
const { addAddress, setIpForwarding } = await import(new URL('tun/netcfg.js', dist).href);
const { PrefixTable } = await import(new URL('common/ip.js', dist).href);
const { PacketBatch } = await import(new URL('common/batch.js', dist).href);

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const log = pino({ level: cfg.logLevel ?? 'info', base: undefined, redact: ['*.key', '*.password', '*.psk'] });

const mode = process.env.VPCGW_RUNNER_MINI === '1' ? 'mini' : await pickDataPlane();
let tun;
let nativeDp = null;
// cfg.queues > 1: the multi-queue data plane (one TUN queue and one SSL socket per queue, sessions
// steered by peer-id; src/dataplane/multi-queue.ts)
const queues = mode === 'native' ? Math.max(1, Number(cfg.queues ?? 1)) : 1;
if (mode === 'native' && queues > 1) {
  const { openMultiQueueTun, MultiQueueDataPlane } = await import(new URL('dataplane/multi-queue.js', dist).href);
  const tuns = openMultiQueueTun(cfg.tun.name, cfg.tun.mtu ?? 1500, queues, true);
  nativeDp = await MultiQueueDataPlane.start({ tuns, binds: tuns.map(() => []) }, { logger: log, ...(cfg.rxModerationUs === undefined ? {} : { rxModerationUs: cfg.rxModerationUs }) });
  tun = { name: tuns[0].name, stats: () => nativeDp.nativeStats(), close: () => {} };
} else if (mode === 'native') {
  const { openOffloadTun, NativeDataPlane } = await import(new URL('dataplane/native-data-plane.js', dist).href);
  const otun = openOffloadTun(cfg.tun.name, cfg.tun.mtu ?? 1500, true);
  // cfg.rxModerationUs: gateway.dataPlane.rxModerationUs (absent: the data plane's default)
  nativeDp = new NativeDataPlane(otun, [], { logger: log, ...(cfg.rxModerationUs === undefined ? {} : { rxModerationUs: cfg.rxModerationUs }) });
  tun = { name: otun.name, stats: () => nativeDp.nativeStats(), close: () => {} };
} else {
  tun = LinuxTun.open({ name: cfg.tun.name, mtu: cfg.tun.mtu ?? 1500, log });
}
addAddress(tun.name, cfg.tun.address);
setIpForwarding(true);
process.stdout.write(`DATAPLANE ${mode}${queues > 1 ? ` queues=${queues}` : ''}\n`);

async function pickDataPlane() {
  if (process.env.VPCGW_DATAPLANE === 'ts') return 'ts';
  try {
    const { nativeSslAvailable } = await import(new URL('dataplane/native-data-plane.js', dist).href);
    return nativeSslAvailable() ? 'native' : 'ts';
  } catch {
    return 'ts';
  }
}

class MiniTunnel {
  constructor(dev) {
    this.dev = dev;
    this.routes = new PrefixTable();
    this.out = new PacketBatch(64, 2048, 0);
    this.pending = false;
    this.noRoute = 0;
  }
  writeToTun(buf, off, len) {
    if (this.out.count >= this.out.capacity) this.flush();
    const i = this.out.count++;
    const o = i * this.out.slotSize;
    buf.copy(this.out.buf, o, off, off + len);
    this.out.off[i] = o;
    this.out.len[i] = len;
    if (!this.pending) {
      this.pending = true;
      setImmediate(() => this.flush());
    }
  }
  flush() {
    this.pending = false;
    if (this.out.count === 0) return;
    this.dev.write(this.out);
    this.out.count = 0;
  }
  addSinkRoute(prefix, sink) {
    this.routes.insert(prefix, sink);
  }
  removeSinkRoute(prefix) {
    this.routes.remove(prefix);
  }
  onTunBatch(b) {
    const touched = new Set();
    for (let i = 0; i < b.count; i++) {
      const off = b.off[i];
      const len = b.len[i];
      if (len < 20 || b.buf[off] >> 4 !== 4) continue;
      const sink = this.routes.lookup(b.buf, off + 16, 4);
      if (!sink) {
        this.noRoute++;
        continue;
      }
      sink.push(b.buf, off, len);
      touched.add(sink);
    }
    for (const s of touched) s.flush();
  }
}

let tunnel;
if (mode === 'mini') {
  tunnel = new MiniTunnel(tun);
  tun.start((b) => tunnel.onTunBatch(b));
} else if (mode === 'native') {
  tunnel = nativeDp;
} else {
  const { TsDataPlane } = await import(new URL('dataplane/ts-data-plane.js', dist).href);
  tunnel = new TsDataPlane(tun, [], { logger: log });
}

const s = cfg.server;
// a tls-crypt / tls-auth key is given as a file path: read it as the gateway's config loader does
let tlsWrap;
if (s.tlsWrap) {
  const { parseStaticKey, parseTlsCryptV2ServerKey } = await import(new URL('ssl/wire/tls-wrap.js', dist).href);
  const text = readFileSync(s.tlsWrap.keyFile, 'utf8');
  if (s.tlsWrap.kind === 'tls-crypt-v2') {
    tlsWrap = { kind: 'tls-crypt-v2', serverKey: parseTlsCryptV2ServerKey(text, 'server.tlsWrap.keyFile') };
  } else {
    const key = parseStaticKey(text, 'server.tlsWrap.keyFile');
    tlsWrap = s.tlsWrap.kind === 'tls-crypt' ? { kind: 'tls-crypt', key } : { kind: 'tls-auth', key, direction: s.tlsWrap.direction, digest: s.tlsWrap.digest };
  }
}
const config = Object.freeze({
  ...s,
  tlsWrap,
  identity: Object.freeze({
    cert: readFileSync(s.identity.cert, 'utf8'),
    key: readFileSync(s.identity.key, 'utf8'),
    clientCa: readFileSync(s.identity.clientCa, 'utf8'),
  }),
});
// UDP through the batch NativeUdp (recvmmsg/sendmmsg) unless VPCGW_RUNNER_DGRAM=1
let udpBind;
if (process.env.VPCGW_RUNNER_DGRAM !== '1') {
  const { NativeUdp } = await import(new URL('net/native-udp.js', dist).href);
  udpBind = (address, port) => NativeUdp.bind({ address, port, log, reusePort: tunnel.sslOffload?.sslReusePort ?? false });
}
const server = new SslServer({ config, log, tunnel, udpBind });
await server.start();
process.stdout.write(`READY udp=${server.udpPort} tcp=${server.tcpPort}\n`);

process.on('SIGUSR2', () => {
  process.stdout.write(`STATUS ${JSON.stringify({ clients: server.status(), counters: server.counters, halfOpen: server.core.halfOpenSessions, pool: server.pool.stats(), tun: tun.stats() })}\n`);
});
let stopping = false;
process.on('SIGTERM', async () => {
  if (stopping) return;
  stopping = true;
  await server.stop();
  await nativeDp?.close();
  tun.close();
  process.exit(0);
});
