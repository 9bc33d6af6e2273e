// NAT traversal in the native data plane over a real TUN and loopback UDP: an ICV-verified ESP
// packet from a new address:port moves the inbound SA's peer and is reported once ('peer-moved');
// setSaRemote moves the outbound SA (sequence numbers kept); a forged packet moves nothing;
// sendNatKeepalive sends the one-byte RFC 3948 §2.3 keepalive. Needs root (TUN, routes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { PacketBatch } from '../../../src/common/batch.js';
import { createEncTransform } from '../../../src/crypto/aead.js';
import type { SaEvent, SaParams } from '../../../src/dataplane/data-plane.js';
import { NativeDataPlane } from '../../../src/dataplane/native-data-plane.js';
import { espDecap } from '../../../src/esp/decap.js';
import { espEncap } from '../../../src/esp/encap.js';
import { EspSa, EspSpan } from '../../../src/esp/esp-sa.js';
import { NativeUdp } from '../../../src/net/native-udp.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress, addRoute } from '../../../src/tun/netcfg.js';
import { P } from '../esp/packets.js';
import { icmpEcho, until } from '../../helpers/native-lab.js';

const SPI_IN = 0x11120001;
const SPI_OUT = 0x22230001;
const LOCAL_NET = '10.214.1.0/24';
const REMOTE_NET = '10.214.2.0/24';
const GW_ADDR = '10.214.1.1';
const KEY_IN = randomBytes(20);
const KEY_OUT = randomBytes(20);

let tun: LinuxTun;
let udp: NativeUdp;
/** the peer's first NAT mapping, its second one, and an attacker */
let peers: NativeUdp[];
const got: Buffer[][] = [[], [], []];
let dp: NativeDataPlane;
const events: SaEvent[] = [];
let peerOut: EspSa;

function saParams(dir: 'in' | 'out'): SaParams {
  return {
    direction: dir, spi: dir === 'in' ? SPI_IN : SPI_OUT, encr: 20, encrKeyBits: 128, integ: 0,
    encrKey: dir === 'in' ? KEY_IN : KEY_OUT, integKey: Buffer.alloc(0),
    localAddr: '127.0.0.1', localPort: udp.port, remoteAddr: '127.0.0.1', remotePort: peers[0]!.port,
    localTs: [P(LOCAL_NET)], remoteTs: [P(REMOTE_NET)],
  };
}

function peerSa(spi: number, key: Buffer, dir: 'in' | 'out'): EspSa {
  return new EspSa({
    spi, direction: dir, transform: createEncTransform({ encr: 20, encrKeyBits: 128, integ: 0 }, key, Buffer.alloc(0)),
    localTs: [P(REMOTE_NET)], remoteTs: [P(LOCAL_NET)], localAddr: '127.0.0.1', localPort: 1, remoteAddr: '127.0.0.1', remotePort: 1,
  });
}

function seal(inner: Buffer): Buffer {
  const b = Buffer.alloc(2048);
  inner.copy(b, 64);
  const span = new EspSpan();
  expect(espEncap(peerOut, b, 64, inner.length, b.length, span)).toBe(0);
  return Buffer.from(b.subarray(span.off, span.off + span.len));
}

/** echo replies (ICMP type 0) the peer socket `i` received, decrypted */
function replies(i: number): number[] {
  const seqs: number[] = [];
  for (const d of got[i]!) {
    if (d.length < 8 || d.readUInt32BE(0) !== SPI_OUT) continue;
    const b = Buffer.from(d);
    const span = new EspSpan();
    const probe = peerSa(SPI_OUT, KEY_OUT, 'in'); // a fresh window: only decrypting, not replay-checking
    if (espDecap(probe, b, 0, b.length, span) === 0 && b[span.off + 20] === 0) seqs.push(b.readUInt16BE(span.off + 26));
  }
  return seqs;
}

beforeAll(() => {
  tun = LinuxTun.open({ name: `ndnt${randomBytes(2).toString('hex')}`, mtu: 1400 });
  addAddress(tun.name, `${GW_ADDR}/24`);
  addRoute(REMOTE_NET, tun.name);
  udp = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
  peers = [0, 1, 2].map((i) => {
    const p = NativeUdp.bind({ address: '127.0.0.1', port: 0 });
    p.start((b: PacketBatch) => {
      for (let j = 0; j < b.count; j++) got[i]!.push(Buffer.from(b.packet(j)));
    });
    return p;
  });
  dp = new NativeDataPlane(tun, [udp]);
  dp.onSaEvent((e) => events.push(e));
  dp.installSa(saParams('in'));
  dp.installSa(saParams('out'));
  dp.addRoute(P(REMOTE_NET), SPI_OUT);
  peerOut = peerSa(SPI_IN, KEY_IN, 'out');
});

afterAll(() => {
  dp?.close();
  tun?.close();
  udp?.close();
  for (const p of peers ?? []) p.close();
});

describe('NativeDataPlane: NAT rebinding and keepalives', () => {
  it('ESP from the installed endpoint reports nothing; from a new port: one peer-moved event', async () => {
    peers[0]!.sendTo(seal(icmpEcho('10.214.2.7', GW_ADDR, 0x51, 1)), 4, '127.0.0.1', udp.port);
    await until('reply on the first mapping', () => replies(0).includes(1));
    expect(events).toEqual([]);
    peers[1]!.sendTo(seal(icmpEcho('10.214.2.7', GW_ADDR, 0x51, 2)), 4, '127.0.0.1', udp.port);
    peers[1]!.sendTo(seal(icmpEcho('10.214.2.7', GW_ADDR, 0x51, 3)), 4, '127.0.0.1', udp.port);
    await until('peer-moved', () => events.length >= 1 && dp.saCounters(SPI_IN, 'in')!.packets === 3);
    expect(events).toEqual([{ spi: SPI_IN, direction: 'in', kind: 'peer-moved', remote: { family: 4, address: '127.0.0.1', port: peers[1]!.port } }]);
    // until the gateway moves the outbound SA, replies still go to the old mapping
    await until('replies 2 and 3 on the old mapping', () => replies(0).includes(3));
    expect(replies(1)).toEqual([]);
  });

  it('setSaRemote moves the outbound SA: replies go to the new mapping, sequence numbers continue', async () => {
    const seq = dp.saCounters(SPI_OUT, 'out')!.seq;
    expect(dp.setSaRemote(SPI_OUT, 'out', { family: 4, address: '127.0.0.1', port: peers[1]!.port })).toBe(true);
    expect(dp.setSaRemote(0x999, 'out', { family: 4, address: '127.0.0.1', port: 1 })).toBe(false);
    peers[1]!.sendTo(seal(icmpEcho('10.214.2.7', GW_ADDR, 0x51, 4)), 4, '127.0.0.1', udp.port);
    await until('reply on the new mapping', () => replies(1).includes(4));
    expect(dp.saCounters(SPI_OUT, 'out')!.seq).toBe(seq + 1);
    expect(events).toHaveLength(1); // no new move: the inbound SA already has this endpoint
  });

  it('a forged packet (bad ICV) from another endpoint moves nothing', async () => {
    const before = dp.dropCounters().ICV!;
    const bad = seal(icmpEcho('10.214.2.7', GW_ADDR, 0x51, 5));
    bad[bad.length - 1]! ^= 1;
    peers[2]!.sendTo(bad, 4, '127.0.0.1', udp.port);
    await until('ICV drop', () => dp.dropCounters().ICV! > before);
    expect(events).toHaveLength(1);
  });

  it('sendNatKeepalive sends one 0xFF byte without the non-ESP marker', async () => {
    const n = got[0]!.length;
    expect(dp.sendNatKeepalive({ family: 4, address: '127.0.0.1', port: peers[0]!.port }, { family: 4, address: '127.0.0.1', port: udp.port })).toBe(true);
    await until('keepalive', () => got[0]!.length > n);
    expect(got[0]![n]).toEqual(Buffer.from([0xff]));
  });
});
