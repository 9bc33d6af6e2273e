// LinuxTun on a real TUN device in the root namespace: a unique name per run, test-only addresses
// in 198.18.0.0/15 (RFC 2544 benchmarking range). The kernel deletes the interface (and its routes)
// when the fd closes; afterAll closes everything this file opened.
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { PacketBatch } from '../../../src/common/batch.js';
import { IoError } from '../../../src/common/errors.js';
import { LinuxTun } from '../../../src/tun/linux-tun.js';
import { addAddress, addRoute, setLinkDown, setLinkUp } from '../../../src/tun/netcfg.js';
import { runAsNobody } from './as-nobody.js';
import { until } from '../../helpers/native-lab.js';

const tag = (process.pid % 10000).toString();
const opened: LinuxTun[] = [];
const sockets: dgram.Socket[] = [];

function openTun(suffix: string, mtu = 1400): LinuxTun {
  const t = LinuxTun.open({ name: `vpt${tag}${suffix}`, mtu });
  opened.push(t);
  return t;
}

afterAll(() => {
  for (const s of sockets) s.close();
  for (const t of opened) t.close();
});

function udp4(): dgram.Socket {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  return s;
}

function sum16(b: Buffer, start: number, end: number, acc = 0): number {
  for (let i = start; i < end; i += 2) acc += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  return acc;
}
function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

/** A hand-built IPv4/UDP packet with correct IP and UDP checksums. */
function ipv4Udp(src: number[], dst: number[], sport: number, dport: number, payload: Buffer): Buffer {
  const p = Buffer.alloc(28 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(0x4000, 6); // DF
  p[8] = 64;
  p[9] = 17;
  Buffer.from(src).copy(p, 12);
  Buffer.from(dst).copy(p, 16);
  p.writeUInt16BE(fold(sum16(p, 0, 20)), 10);
  p.writeUInt16BE(sport, 20);
  p.writeUInt16BE(dport, 22);
  p.writeUInt16BE(8 + payload.length, 24);
  payload.copy(p, 28);
  const pseudo = sum16(p, 12, 20) + 17 + 8 + payload.length;
  const c = fold(sum16(p, 20, p.length, pseudo));
  p.writeUInt16BE(c === 0 ? 0xffff : c, 26);
  return p;
}

describe('LinuxTun', () => {
  it('opens with the requested name and MTU; netcfg gives it an address and a route', () => {
    const t = openTun('a', 1380);
    expect(t.name).toBe(`vpt${tag}a`);
    expect(t.mtu).toBe(1380);
    expect(readFileSync(`/sys/class/net/${t.name}/mtu`, 'utf8').trim()).toBe('1380');
    addAddress(t.name, '198.18.91.1/24');
    addRoute('198.18.92.0/24', t.name, { metric: 77 });
    const link = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'dev', t.name], { encoding: 'utf8' }))[0];
    expect(link.flags).toContain('UP');
    expect(link.addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`)).toContain('198.18.91.1/24');
    const routes = JSON.parse(execFileSync('ip', ['-j', 'route', 'show', 'dev', t.name], { encoding: 'utf8' }));
    expect(routes).toContainEqual(expect.objectContaining({ dst: '198.18.92.0/24', metric: 77 }));
  });

  it('lets the kernel choose the name when none is given', () => {
    const t = LinuxTun.open({ mtu: 1400 });
    opened.push(t);
    expect(t.name).toMatch(/^tun\d+$/);
    expect(existsSync(`/sys/class/net/${t.name}`)).toBe(true);
  });

  it('delivers a datagram routed into the TUN as an IPv4/UDP packet in a batch', async () => {
    const t = openTun('b');
    addAddress(t.name, '198.18.93.1/24');
    addRoute('198.18.94.0/24', t.name);
    const seen: Buffer[] = [];
    t.start((b) => {
      for (let i = 0; i < b.count; i++) {
        const p = b.packet(i);
        if (p[0]! >> 4 === 4 && p[9] === 17) seen.push(Buffer.from(p));
      }
    });
    const s = udp4();
    await new Promise<void>((r) => s.bind(0, '198.18.93.1', r));
    s.send(Buffer.from('vpcgw-hello'), 4321, '198.18.94.7');
    await until('the datagram on the TUN', () => seen.length >= 1);
    const p = seen[0]!;
    expect(p.length).toBe(20 + 8 + 11);
    expect(p.readUInt16BE(2)).toBe(p.length); // IP total length
    expect([...p.subarray(12, 16)]).toEqual([198, 18, 93, 1]);
    expect([...p.subarray(16, 20)]).toEqual([198, 18, 94, 7]);
    expect(p.readUInt16BE(20)).toBe(s.address().port);
    expect(p.readUInt16BE(22)).toBe(4321);
    expect(p.subarray(28).toString()).toBe('vpcgw-hello');
    // the batch slot starts after the headroom, so headers can be prepended in place
    expect(t.batch.off[0]).toBe(t.batch.headroom);
    expect(t.stats().rxPackets).toBeGreaterThanOrEqual(1);
  });

  it('delivers many queued packets in fewer batches than packets', async () => {
    const t = openTun('c');
    addAddress(t.name, '198.18.95.1/24');
    addRoute('198.18.96.0/24', t.name);
    const s = udp4();
    await new Promise<void>((r) => s.bind(0, '198.18.95.1', r));
    const N = 200;
    await new Promise<void>((resolve) => {
      let done = 0;
      for (let i = 0; i < N; i++) s.send(Buffer.from(`p${i}`), 5000, '198.18.96.9', () => ++done === N && resolve());
    });
    let udpPackets = 0;
    let batches = 0;
    const counts: number[] = [];
    t.start((b) => {
      batches++;
      counts.push(b.count);
      for (let i = 0; i < b.count; i++) if (b.packet(i)[9] === 17) udpPackets++;
    });
    await until('N UDP packets on the TUN', () => udpPackets >= N);
    expect(udpPackets).toBe(N);
    expect(batches).toBeLessThan(N / 10);
    expect(Math.max(...counts)).toBe(t.batch.capacity);
    expect(t.stats().readBatches).toBe(batches);
  });

  it('writes a hand-built IPv4/UDP packet that a local socket receives; refused packets are counted', async () => {
    const t = openTun('d');
    addAddress(t.name, '198.18.97.1/24');
    addRoute('198.18.98.0/24', t.name);
    const s = udp4();
    await new Promise<void>((r) => s.bind(0, '198.18.97.1', r));
    const got: { msg: string; from: string; port: number }[] = [];
    s.on('message', (m, r) => got.push({ msg: m.toString(), from: r.address, port: r.port }));

    const batch = new PacketBatch(4, 2048, 64);
    batch.push(Buffer.from([0x00, 1, 2, 3])); // not IPv4/IPv6: the kernel refuses it (EINVAL)
    batch.push(ipv4Udp([198, 18, 98, 5], [198, 18, 97, 1], 6000, s.address().port, Buffer.from('from-tun')));
    expect(t.write(batch)).toBe(1);
    await until('the datagram written to the TUN', () => got.length >= 1);
    expect(got[0]).toEqual({ msg: 'from-tun', from: '198.18.98.5', port: 6000 });
    const st = t.stats();
    expect(st.txPackets).toBe(1);
    expect(st.txBytes).toBe(28 + 8);
    expect(st.writeErrors).toBe(1);
  });

  it('keeps working after the link goes down and up: refused writes are counted, reads resume', async () => {
    const t = openTun('g');
    const s = udp4();
    let udpIn = 0;
    t.start((b) => {
      for (let i = 0; i < b.count; i++) if (b.packet(i)[9] === 17) udpIn++;
    });
    const setup = (): void => {
      addAddress(t.name, '198.18.103.1/24');
      addRoute('198.18.104.0/24', t.name);
    };
    setup();
    await new Promise<void>((r) => s.bind(0, '198.18.103.1', r));
    const pkt = new PacketBatch(1, 256, 0);
    pkt.push(ipv4Udp([198, 18, 104, 5], [198, 18, 103, 1], 7000, s.address().port, Buffer.from('w')));
    setLinkDown(t.name);
    expect(t.write(pkt)).toBe(0); // the kernel refuses writes on a down TUN (EIO)
    expect(t.stats().writeErrors).toBe(1);
    setLinkUp(t.name);
    setup(); // the kernel drops the device route while the link is down
    const got: string[] = [];
    s.on('message', (m) => got.push(m.toString()));
    expect(t.write(pkt)).toBe(1);
    s.send('r', 9, '198.18.104.5');
    await until('both directions', () => got.length >= 1 && udpIn >= 1);
    expect(got).toEqual(['w']);
  });

  it('close() stops callbacks, makes write return 0 and removes the interface', async () => {
    const t = openTun('e');
    let calls = 0;
    t.start(() => calls++);
    t.close();
    t.close(); // idempotent
    const batch = new PacketBatch(1, 256, 0);
    batch.push(ipv4Udp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, Buffer.from('x')));
    expect(t.write(batch)).toBe(0);
    await until('the interface to go', () => !existsSync(`/sys/class/net/${t.name}`));
    expect(calls).toBe(0);
    expect(() => t.start(() => {})).toThrow(IoError);
  });

  it('refuses a name already used by another TUN with a clear IoError', () => {
    const t = openTun('f');
    // a second non-multiqueue open of the same name is refused by the kernel (EBUSY)
    expect(() => LinuxTun.open({ name: t.name })).toThrow(/cannot create TUN device "vpt\d+f": Device or resource busy/);
  });

  it('fails with one clear IoError when not root', () => {
    const out = runAsNobody(`
      import { LinuxTun } from './src/tun/linux-tun.js';
      try { LinuxTun.open({ name: 'vptnobody0' }); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }
    `);
    expect(JSON.parse(out)).toEqual({
      name: 'IoError',
      code: 'ERR_IO',
      message: 'cannot open /dev/net/tun: Operation not permitted (vpcgw needs root or CAP_NET_ADMIN)',
    });
  });
});
