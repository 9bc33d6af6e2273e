// NAT traversal in the TypeScript data plane: an authenticated ESP packet from a new address:port
// moves the inbound SA's peer and is reported once ('peer-moved'); setSaRemote moves an outbound
// SA; forged packets move nothing; sendNatKeepalive sends the RFC 3948 §2.3 one-byte datagram.
import { describe, expect, it } from 'vitest';
import { MemoryTun } from '../../../src/tun/memory-tun.js';
import { MemoryUdpNetwork } from '../../../src/net/memory-udp.js';
import type { MemoryDatagram } from '../../../src/net/memory-udp.js';
import { TsDataPlane } from '../../../src/dataplane/ts-data-plane.js';
import type { SaEvent, SaParams } from '../../../src/dataplane/data-plane.js';
import { ipv4Packet, keys, P, SUITES } from '../esp/packets.js';

async function settle(turns = 12): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

const SPI_TO_B = 0xb0000001;
const SPI_TO_A = 0xa0000001;
const A = '192.0.2.1';
const B = '192.0.2.2';
const NAT_PORT = 40001;
const SITE_A = [P('10.1.0.0/16')];
const SITE_B = [P('10.2.0.0/16')];
const S = SUITES[0]!;

function params(dir: 'in' | 'out', spi: number, keySeed: number, local: string, remote: string, over: Partial<SaParams> = {}): SaParams {
  const k = keys(S, keySeed);
  return {
    direction: dir, spi, encr: S.encr, encrKeyBits: S.encrKeyBits, integ: S.integ, encrKey: k.encrKey, integKey: k.integKey,
    localAddr: local, localPort: 4500, remoteAddr: remote, remotePort: 4500, localTs: [], remoteTs: [], ...over,
  };
}

/** A behind a "NAT" that rewrites its source port to `natPort.value`; B is the gateway under test. */
function natted() {
  const net = new MemoryUdpNetwork();
  const wire: MemoryDatagram[] = [];
  const natPort = { value: 4500 };
  net.filter = (d) => {
    if (d.fromPort === 4500 && d.toAddr === B) (d as { fromPort: number }).fromPort = natPort.value;
    wire.push(d);
    return true;
  };
  const tunA = new MemoryTun({ name: 'a0' });
  const tunB = new MemoryTun({ name: 'b0' });
  const dpA = new TsDataPlane(tunA, [net.bind(A, 4500)]);
  const dpB = new TsDataPlane(tunB, [net.bind(B, 4500)]);
  dpA.installSa(params('out', SPI_TO_B, 1, A, B, { localTs: SITE_A, remoteTs: SITE_B }));
  dpB.installSa(params('in', SPI_TO_B, 1, B, A, { localTs: SITE_B, remoteTs: SITE_A }));
  dpB.installSa(params('out', SPI_TO_A, 2, B, A, { localTs: SITE_B, remoteTs: SITE_A }));
  dpA.addRoute(SITE_B[0]!, SPI_TO_B);
  dpB.addRoute(SITE_A[0]!, SPI_TO_A);
  const events: SaEvent[] = [];
  dpB.onSaEvent((e) => events.push(e));
  const attacker = net.bind('198.51.100.7', 4500);
  return { net, wire, natPort, tunA, tunB, dpA, dpB, events, attacker };
}

describe('TsDataPlane: NAT rebinding and keepalives', () => {
  it('an authenticated packet from a new port moves the inbound SA once; setSaRemote moves the outbound SA', async () => {
    const t = natted();
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1', 84, 1));
    await settle();
    expect(t.events).toEqual([]); // same endpoint as installed
    t.natPort.value = NAT_PORT; // the NAT mapping changes
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1', 84, 2), ipv4Packet('10.1.0.1', '10.2.0.1', 84, 3));
    await settle();
    expect(t.tunB.written.length).toBe(3);
    // reported once for the batch of two packets from the new endpoint
    expect(t.events).toEqual([{ spi: SPI_TO_B, direction: 'in', kind: 'peer-moved', remote: { family: 4, address: A, port: NAT_PORT } }]);
    // the gateway then moves the sibling outbound SA: B's packets go to the new mapping
    expect(t.dpB.setSaRemote(SPI_TO_A, 'out', { family: 4, address: A, port: NAT_PORT })).toBe(true);
    t.tunB.inject(ipv4Packet('10.2.0.1', '10.1.0.1', 64, 4));
    await settle();
    const last = t.wire.at(-1)!;
    expect(last.data.readUInt32BE(0)).toBe(SPI_TO_A);
    expect([last.toAddr, last.toPort]).toEqual([A, NAT_PORT]);
    expect(t.dpB.saCounters(SPI_TO_A, 'out')!.seq).toBe(1); // keys and sequence numbers kept
    expect(t.dpB.setSaRemote(0x12345678, 'out', { family: 4, address: A, port: 1 })).toBe(false);
    expect(t.dpB.setSaRemote(SPI_TO_A, 'out', { family: 6, address: '2001:db8::1', port: 1 })).toBe(false);
    t.dpA.close();
    t.dpB.close();
  });

  it('a forged packet (bad ICV) from another endpoint moves nothing', async () => {
    const t = natted();
    t.tunA.inject(ipv4Packet('10.1.0.1', '10.2.0.1', 84, 1));
    await settle();
    const esp = Buffer.from(t.wire.at(-1)!.data);
    esp.writeUInt32BE(esp.readUInt32BE(4) + 1, 4); // fresh sequence number, ICV no longer matches
    t.attacker.sendTo(esp, 4, B, 4500);
    await settle();
    expect(t.dpB.dropCounters().ICV).toBe(1);
    expect(t.events).toEqual([]);
    t.dpA.close();
    t.dpB.close();
  });

  it('sendNatKeepalive sends one 0xFF byte without the non-ESP marker; the peer counts it', async () => {
    const t = natted();
    expect(t.dpA.sendNatKeepalive({ family: 4, address: B, port: 4500 }, { family: 4, address: A, port: 4500 })).toBe(true);
    await settle();
    expect(t.wire.at(-1)!.data).toEqual(Buffer.from([0xff]));
    expect(t.dpB.stats().natKeepalives).toBe(1);
    expect(Object.values(t.dpB.dropCounters()).every((n) => n === 0)).toBe(true);
    expect(t.dpA.sendNatKeepalive({ family: 4, address: B, port: 4500 }, { family: 4, address: A, port: 999 })).toBe(false);
    t.dpA.close();
    t.dpB.close();
  });
});
