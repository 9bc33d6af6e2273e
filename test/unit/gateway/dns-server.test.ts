// The DNS responder's UDP shell on loopback: local answers, forwarding to a fake upstream socket (id
// remapped and restored, answers matched by id, source and question), retry on the next upstream,
// SERVFAIL on timeout or a full pending table, REFUSED with no upstream, counters, and close().
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/common/log.js';
import { DnsServer, parseUpstream } from '../../../src/gateway/dns-server.js';

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

async function udp(address = '127.0.0.1'): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, address, resolve));
  open.push({ close: () => new Promise<void>((r) => s.close(() => r())) });
  return s;
}

function nextMessage(s: Socket, timeoutMs = 3000): Promise<{ msg: Buffer; rinfo: RemoteInfo }> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      s.off('message', on);
      reject(new Error('no datagram'));
    }, timeoutMs);
    const on = (msg: Buffer, rinfo: RemoteInfo): void => {
      clearTimeout(t);
      s.off('message', on);
      resolve({ msg, rinfo });
    };
    s.on('message', on);
  });
}

function query(name: string, id: number, type: 'A' | 'AAAA' = 'A'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
}

async function ask(client: Socket, server: DnsServer, q: Buffer, timeoutMs?: number): Promise<dnsPacket.DecodedPacket & { rcode: string }> {
  const p = nextMessage(client, timeoutMs);
  client.send(q, server.port, '127.0.0.53');
  return dnsPacket.decode((await p).msg) as dnsPacket.DecodedPacket & { rcode: string };
}

async function start(upstream: string[], o: { upstreamTimeoutMs?: number; maxPending?: number } = {}): Promise<DnsServer> {
  const s = await DnsServer.start({ address: '127.0.0.53', port: 0, upstream, log: silentLogger, ...o });
  open.push(s);
  s.setRecords(new Map([['web.endpoint.internal', '10.2.100.10']]));
  return s;
}

describe('DnsServer', () => {
  it('answers endpoint names itself and counts them', async () => {
    const s = await start([]);
    const c = await udp();
    const a = await ask(c, s, query('Web.Endpoint.Internal', 4242));
    expect(a.id).toBe(4242);
    expect(a.rcode).toBe('NOERROR');
    expect(a.answers![0]).toMatchObject({ type: 'A', data: '10.2.100.10', name: 'Web.Endpoint.Internal' });
    const aaaa = await ask(c, s, query('web.endpoint.internal', 1, 'AAAA'));
    expect(aaaa.rcode).toBe('NOERROR');
    expect(aaaa.answers).toEqual([]);
    expect(s.stats()).toMatchObject({ queries: 2, answers: 2, forwards: 0, records: 1 });
  });

  it('leaves a malformed record out (one warning) and serves the others', async () => {
    const s = await start([]);
    s.setRecords(new Map([['web.endpoint.internal', '10.2.100.10'], ['bad name', '10.2.100.11'], ['v6.endpoint.internal', 'fd00::1']]));
    expect(s.stats().records).toBe(1);
    const c = await udp();
    expect((await ask(c, s, query('web.endpoint.internal', 1))).answers).toHaveLength(1);
  });

  it('without upstream: REFUSED for other names, NXDOMAIN inside the endpoints\' zone', async () => {
    const s = await start([]);
    const c = await udp();
    expect((await ask(c, s, query('example.com', 1))).rcode).toBe('REFUSED');
    expect((await ask(c, s, query('other.endpoint.internal', 2))).rcode).toBe('NXDOMAIN');
    expect(s.stats()).toMatchObject({ refused: 1, nxdomain: 1 });
  });

  it('forwards other names with a fresh id and relays the upstream answer with the client\'s id', async () => {
    const up = await udp('127.0.0.3');
    const s = await start([`127.0.0.3:${up.address().port}`]);
    const c = await udp();
    const replied = (async () => {
      const { msg, rinfo } = await nextMessage(up);
      const q = dnsPacket.decode(msg);
      expect(q.questions![0]).toMatchObject({ name: 'example.com', type: 'A' });
      up.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ type: 'A', name: 'example.com', ttl: 60, data: '93.184.216.34' }] }), rinfo.port, rinfo.address);
    })();
    const a = await ask(c, s, query('example.com', 0xbeef));
    await replied;
    expect(a.id).toBe(0xbeef);
    expect(a.answers![0]).toMatchObject({ data: '93.184.216.34' });
    expect(s.stats()).toMatchObject({ queries: 1, forwards: 1, upstreamAnswers: 1, pending: 0 });
  });

  it('ignores answers from another source port or for another question, then takes the right one', async () => {
    const up = await udp('127.0.0.3');
    const spoofer = await udp('127.0.0.3');
    const s = await start([`127.0.0.3:${up.address().port}`]);
    const c = await udp();
    const replied = (async () => {
      const { msg, rinfo } = await nextMessage(up);
      const q = dnsPacket.decode(msg);
      const good = dnsPacket.encode({ type: 'response', id: q.id, questions: q.questions, answers: [{ type: 'A', name: 'example.com', ttl: 60, data: '1.1.1.1' }] });
      const wrongQ = dnsPacket.encode({ type: 'response', id: q.id, questions: [{ type: 'A', name: 'evil.com' }], answers: [{ type: 'A', name: 'evil.com', ttl: 60, data: '6.6.6.6' }] });
      spoofer.send(good, rinfo.port, rinfo.address); // right id and question, wrong source port
      up.send(wrongQ, rinfo.port, rinfo.address); // right source, wrong question
      await new Promise((r) => setTimeout(r, 100));
      up.send(good, rinfo.port, rinfo.address);
    })();
    const a = await ask(c, s, query('example.com', 7));
    await replied;
    expect(a.answers![0]).toMatchObject({ data: '1.1.1.1' });
    expect(s.stats()).toMatchObject({ upstreamStray: 2, upstreamAnswers: 1 });
  });

  it('tries the next upstream after a timeout, and answers SERVFAIL when none answers', async () => {
    const dead = await udp('127.0.0.3');
    const up = await udp('127.0.0.4');
    const s = await start([`127.0.0.3:${dead.address().port}`, `127.0.0.4:${up.address().port}`], { upstreamTimeoutMs: 100 });
    const c = await udp();
    const replied = (async () => {
      const { msg, rinfo } = await nextMessage(up);
      const q = dnsPacket.decode(msg);
      up.send(dnsPacket.encode({ type: 'response', id: q.id, questions: q.questions, answers: [] }), rinfo.port, rinfo.address);
    })();
    expect((await ask(c, s, query('example.com', 11))).rcode).toBe('NOERROR');
    await replied;
    expect(s.stats()).toMatchObject({ retries: 1, upstreamAnswers: 1 });
    // both silent now
    const a = await ask(c, s, query('example.net', 12));
    expect(a.id).toBe(12);
    expect(a.rcode).toBe('SERVFAIL');
    expect(s.stats()).toMatchObject({ timeouts: 1, servfail: 1, pending: 0 });
  });

  it('a full pending table answers SERVFAIL at once (bounded memory)', async () => {
    const up = await udp('127.0.0.3');
    const s = await start([`127.0.0.3:${up.address().port}`], { maxPending: 1, upstreamTimeoutMs: 5000 });
    const c = await udp();
    c.send(query('one.example', 1), s.port, '127.0.0.53');
    await nextMessage(up);
    const a = await ask(c, s, query('two.example', 2));
    expect(a.id).toBe(2);
    expect(a.rcode).toBe('SERVFAIL');
    expect(s.stats()).toMatchObject({ pendingFull: 1, pending: 1 });
  });

  it('drops what has no header, answers garbage FORMERR, and keeps serving', async () => {
    const s = await start([]);
    const c = await udp();
    c.send(Buffer.from([1, 2, 3]), s.port, '127.0.0.53');
    const g = await ask(c, s, Buffer.from('12340100000100000000000040', 'hex'));
    expect(g.rcode).toBe('FORMERR');
    expect((await ask(c, s, query('web.endpoint.internal', 3))).answers).toHaveLength(1);
    expect(s.stats()).toMatchObject({ queries: 3, drops: 1, formerr: 1 });
  });

  it('refuses a malformed upstream or listen address, and reports a busy port as ERR_IO', async () => {
    await expect(DnsServer.start({ address: '127.0.0.53', port: 0, upstream: ['dns.example'], log: silentLogger })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
    await expect(DnsServer.start({ address: 'localhost', port: 0, upstream: [], log: silentLogger })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
    const s = await start([]);
    await expect(DnsServer.start({ address: '127.0.0.53', port: s.port, upstream: [], log: silentLogger })).rejects.toMatchObject({ code: 'ERR_IO' });
    await s.close();
    await s.close();
  });

  it('parses upstream forms', () => {
    expect(parseUpstream('10.2.0.2')).toMatchObject({ address: '10.2.0.2', port: 53, family: 4 });
    expect(parseUpstream('10.2.0.2:5353')).toMatchObject({ address: '10.2.0.2', port: 5353 });
    expect(parseUpstream('fd00::53')).toMatchObject({ address: 'fd00::53', port: 53, family: 6 });
    expect(parseUpstream('[fd00::53]:5353')).toMatchObject({ address: 'fd00::53', port: 5353, family: 6 });
    for (const bad of ['10.2.0.2:0', '10.2.0.2:70000', '[fd00::53]:x', '']) expect(() => parseUpstream(bad)).toThrow();
  });
});
