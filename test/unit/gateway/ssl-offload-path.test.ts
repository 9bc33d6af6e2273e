// OffloadDataPath (and NativeTcpDataPath, TcpOffloadDataPath) against a recording SslOffload: what it installs in the
// data plane, how it maps the offload's decrypt results, and the per-tick facts it derives from the
// offload's counters.
import { describe, expect, it } from 'vitest';
import { parsePrefix, type Prefix } from '../../../src/common/ip.js';
import type { SslOffload, SslSessionCounters } from '../../../src/dataplane/data-plane.js';
import { NativeTcpDataPath, OffloadDataPath, TcpOffloadDataPath } from '../../../src/gateway/ssl-offload-path.js';
import { DATA_IP, DATA_OCC_EXIT, DATA_PING, DROP_NO_KEY, DROP_OCC_OTHER, DROP_REPLAY, PACKET_ID_RENEG_THRESHOLD } from '../../../src/ssl/data/data-channel.js';
import { COMP_STUB_V2 } from '../../../src/ssl/data/compression.js';
import { OCC_EXIT_PAYLOAD } from '../../../src/ssl/data/special.js';
import { KEEP_COMPRESSION, TICK_RENEGOTIATE, TICK_RX_SEEN, TICK_SEND_FAILED, type DataPathStats, type SslDataPath } from '../../../src/ssl/server/data-path.js';

class RecordingOffload implements SslOffload {
  readonly calls: string[] = [];
  readonly sslSpan = new Uint32Array(2);
  decryptResult = 0;
  pingOk = true;
  counters: SslSessionCounters | undefined = undefined;
  attachSslUdp(): number {
    return 0;
  }
  detachSslUdp(): void {}
  installSslSession(): boolean {
    return true;
  }
  setSslRemote(peerId: number, bind: number, r: { address: string; port: number }): boolean {
    this.calls.push(`remote ${peerId} ${bind} ${r.address}:${r.port}`);
    return true;
  }
  setSslVirtualAddress(peerId: number, a: string | null): boolean {
    this.calls.push(`vaddr ${peerId} ${a}`);
    return true;
  }
  setSslCompression(peerId: number, mode: number): boolean {
    this.calls.push(`comp ${peerId} ${mode}`);
    return true;
  }
  setSslKey(peerId: number, k: { keyId: number }): boolean {
    this.calls.push(`key ${peerId} ${k.keyId}`);
    return true;
  }
  retireSslKey(peerId: number, keyId: number): boolean {
    this.calls.push(`retire ${peerId} ${keyId}`);
    return true;
  }
  removeSslSession(peerId: number): boolean {
    this.calls.push(`remove ${peerId}`);
    return true;
  }
  addSslRoute(p: Prefix, peerId: number): void {
    this.calls.push(`route ${p.len} ${peerId}`);
  }
  removeSslRoute(p: Prefix): boolean {
    this.calls.push(`unroute ${p.len}`);
    return true;
  }
  sslCounters(): SslSessionCounters | undefined {
    return this.counters;
  }
  sendSslPing(peerId: number): boolean {
    this.calls.push(`ping ${peerId}`);
    return this.pingOk;
  }
  sslSend(peerId: number, _b: Buffer, _o: number, len: number): boolean {
    this.calls.push(`send ${peerId} ${len}`);
    return true;
  }
  sslDecrypt(_p: number, _b: Buffer, off: number, len: number): number {
    this.sslSpan[0] = off;
    this.sslSpan[1] = len;
    return this.decryptResult;
  }
}

function counters(over: Partial<SslSessionCounters> = {}): SslSessionCounters {
  return {
    rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, pingsIn: 0, pingsOut: 0, msSinceRx: -1, msSinceTx: -1,
    sendKeyId: 0, sendPacketId: 1, compression: 0, drops: {}, ...over,
  };
}

const KEY = { keyId: 1, cipher: 'aes-256-gcm', encKey: Buffer.alloc(64), encImplicitIv: Buffer.alloc(8), decKey: Buffer.alloc(64), decImplicitIv: Buffer.alloc(8) };

describe('OffloadDataPath', () => {
  it('installs keys, compression, address, route and remote in the offload; close removes route and session', () => {
    const o = new RecordingOffload();
    const p = new OffloadDataPath(o, 7, 3, 0);
    p.installKey(KEY, COMP_STUB_V2);
    p.installKey({ ...KEY, keyId: 2 }, KEEP_COMPRESSION);
    p.retireKey(1);
    p.attach(parsePrefix('10.8.0.2/32')!, '10.8.0.2');
    p.setRemote({ family: 4, address: '192.0.2.9', port: 4000 });
    p.send(Buffer.alloc(60), 0, 60);
    p.close();
    p.close();
    p.send(Buffer.alloc(60), 0, 60);
    expect(o.calls).toEqual([`key 7 1`, `comp 7 ${COMP_STUB_V2}`, 'key 7 2', 'retire 7 1', 'vaddr 7 10.8.0.2', 'route 32 7', 'remote 7 3 192.0.2.9:4000', 'send 7 60', 'unroute 32', 'remove 7']);
    expect(p.stats().cipher).toBe('AES-256-GCM');
  });

  it('maps the offload results to DATA_* and counts the drops decided in JavaScript', () => {
    const o = new RecordingOffload();
    const p = new OffloadDataPath(o, 0, 0, 0);
    const buf = Buffer.alloc(64);
    o.decryptResult = 0;
    expect(p.decrypt(buf, 24, 40)).toBe(DATA_IP);
    expect([p.outOff, p.outLen]).toEqual([24, 40]);
    o.decryptResult = 1;
    expect(p.decrypt(buf, 0, 16)).toBe(DATA_PING);
    o.decryptResult = 2;
    OCC_EXIT_PAYLOAD.copy(buf);
    expect(p.decrypt(buf, 0, OCC_EXIT_PAYLOAD.length)).toBe(DATA_OCC_EXIT);
    buf[OCC_EXIT_PAYLOAD.length - 1] = 1; // another OCC message
    expect(p.decrypt(buf, 0, OCC_EXIT_PAYLOAD.length)).toBe(DROP_OCC_OTHER);
    o.decryptResult = -1;
    expect(p.decrypt(buf, 0, 40)).toBe(DROP_NO_KEY);
    o.decryptResult = DROP_REPLAY;
    expect(p.decrypt(buf, 0, 40)).toBe(DROP_REPLAY); // counted natively
    o.counters = counters({ drops: { replay: 1, occOther: 2 } });
    expect(p.stats().drops).toEqual({ replay: 1, occOther: 3, noKey: 1 });
  });

  it('tick: traffic seen in the counters, a ping after pingSec without output, renegotiation near the packet-id limit', () => {
    const o = new RecordingOffload();
    const p = new OffloadDataPath(o, 4, 0, 0);
    expect(p.tick(1000, 10)).toBe(0); // no native session counters yet
    o.counters = counters({ rxPackets: 3, txPackets: 2 });
    expect(p.tick(2000, 10)).toBe(TICK_RX_SEEN);
    expect(p.tick(11_999, 10)).toBe(0);
    expect(o.calls).toEqual([]);
    expect(p.tick(12_000, 10)).toBe(0);
    expect(o.calls).toEqual(['ping 4']);
    o.pingOk = false;
    expect(p.tick(22_000, 10)).toBe(TICK_SEND_FAILED);
    o.counters = counters({ rxPackets: 3, txPackets: 2, sendPacketId: PACKET_ID_RENEG_THRESHOLD });
    expect(p.tick(22_100, 10)).toBe(TICK_RENEGOTIATE);
  });
});

/** the TypeScript sending side of a TCP session, recorded */
class RecordingTx implements SslDataPath {
  readonly calls: string[] = [];
  outOff = 0;
  outLen = 0;
  tickResult = 0;
  installKey(k: { keyId: number }, comp: number): void {
    this.calls.push(`key ${k.keyId} ${comp}`);
  }
  retireKey(keyId: number): void {
    this.calls.push(`retire ${keyId}`);
  }
  attach(p: Prefix, a: string): void {
    this.calls.push(`attach ${p.len} ${a}`);
  }
  setRemote(): void {
    this.calls.push('remote');
  }
  decrypt(): number {
    this.calls.push('decrypt');
    return DATA_IP;
  }
  send(_b: Buffer, _o: number, len: number): void {
    this.calls.push(`send ${len}`);
  }
  tick(_now: number, pingSec: number): number {
    this.calls.push(`tick ${pingSec}`);
    return this.tickResult;
  }
  countDrop(): void {}
  stats(): DataPathStats {
    return { cipher: 'AES-256-GCM', bytesIn: 0, bytesOut: 500, packetsIn: 0, packetsOut: 5, drops: { tooBig: 1 } };
  }
  close(): void {
    this.calls.push('close');
  }
}

describe('TcpOffloadDataPath (a TCP session: native receive side, TypeScript send side)', () => {
  const key = { keyId: 1, cipher: 'AES-256-GCM', encKey: Buffer.alloc(32), encImplicitIv: Buffer.alloc(8), decKey: Buffer.alloc(32), decImplicitIv: Buffer.alloc(8) };

  it('keys go to both sides, the inner source to the offload, the route to the sending side (no SSL route)', () => {
    const off = new RecordingOffload();
    const tx = new RecordingTx();
    const p = new TcpOffloadDataPath(off, 5, tx, 0);
    p.installKey(key, COMP_STUB_V2, 10);
    p.attach(parsePrefix('10.8.0.6/32')!, '10.8.0.6');
    p.setRemote();
    p.retireKey(1);
    p.close();
    expect(off.calls).toEqual(['key 5 1', `comp 5 ${COMP_STUB_V2}`, 'vaddr 5 10.8.0.6', 'retire 5 1', 'remove 5']);
    expect(tx.calls).toEqual([`key 1 ${COMP_STUB_V2}`, 'attach 32 10.8.0.6', 'retire 1', 'close']);
  });

  it('decrypt uses the native session; send the TypeScript one', () => {
    const off = new RecordingOffload();
    const tx = new RecordingTx();
    const p = new TcpOffloadDataPath(off, 5, tx, 0);
    off.decryptResult = DATA_PING;
    expect(p.decrypt(Buffer.alloc(40), 2, 30)).toBe(DATA_PING);
    p.send(Buffer.alloc(100), 0, 100, 1);
    expect(tx.calls).toEqual(['send 100']);
  });

  it('tick: pings and renegotiation from the sending side, traffic seen from the native counters', () => {
    const off = new RecordingOffload();
    const tx = new RecordingTx();
    const p = new TcpOffloadDataPath(off, 5, tx, 0);
    off.counters = counters({ rxPackets: 3, sendPacketId: PACKET_ID_RENEG_THRESHOLD }); // the native send side is unused
    expect(p.tick(1000, 10)).toBe(TICK_RX_SEEN);
    expect(off.calls).not.toContain('ping 5');
    expect(tx.calls).toEqual(['tick 10']);
    tx.tickResult = TICK_RENEGOTIATE;
    expect(p.tick(2000, 10)).toBe(TICK_RENEGOTIATE);
  });

  it('stats: in from the native session, out from the TypeScript one, drops merged', () => {
    const off = new RecordingOffload();
    const p = new TcpOffloadDataPath(off, 5, new RecordingTx(), 0);
    off.counters = counters({ rxPackets: 4, rxBytes: 4000, pingsIn: 1, drops: { replay: 2, tooBig: 1 } });
    expect(p.stats()).toEqual({ cipher: 'AES-256-GCM', bytesIn: 4000, bytesOut: 500, packetsIn: 3, packetsOut: 5, drops: { replay: 2, tooBig: 2 } });
  });
});

describe('NativeTcpDataPath (a TCP session wholly in the native data plane)', () => {
  it('keys, address and the SSL route go to the offload; no remote (one connection per session); send and pings are native', () => {
    const o = new RecordingOffload();
    const p = new NativeTcpDataPath(o, 6, 0);
    p.installKey(KEY, COMP_STUB_V2);
    p.attach(parsePrefix('10.8.0.7/32')!, '10.8.0.7');
    p.setRemote();
    p.send(Buffer.alloc(80), 0, 80);
    o.counters = counters({ rxPackets: 1 });
    expect(p.tick(20_000, 10)).toBe(TICK_RX_SEEN);
    p.close();
    expect(o.calls).toEqual([`key 6 1`, `comp 6 ${COMP_STUB_V2}`, 'vaddr 6 10.8.0.7', 'route 32 6', 'send 6 80', 'ping 6', 'unroute 32', 'remove 6']);
  });
});
