// OffloadDataPath against a recording SslOffload: what it installs in the data plane, how it maps the
// offload's decrypt results, and the per-tick facts it derives from the offload's counters.
import { describe, expect, it } from 'vitest';
import { parsePrefix, type Prefix } from '../../../src/common/ip.js';
import type { SslOffload, SslSessionCounters } from '../../../src/dataplane/data-plane.js';
import { OffloadDataPath } from '../../../src/gateway/ssl-offload-path.js';
import { DATA_IP, DATA_OCC_EXIT, DATA_PING, DROP_NO_KEY, DROP_OCC_OTHER, DROP_REPLAY, PACKET_ID_RENEG_THRESHOLD } from '../../../src/ssl/data/data-channel.js';
import { COMP_STUB_V2 } from '../../../src/ssl/data/compression.js';
import { OCC_EXIT_PAYLOAD } from '../../../src/ssl/data/special.js';
import { KEEP_COMPRESSION, TICK_RENEGOTIATE, TICK_RX_SEEN, TICK_SEND_FAILED } from '../../../src/ssl/server/data-path.js';

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
