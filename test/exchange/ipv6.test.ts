// IKEv2 between two in-process peers over IPv6 endpoints, with IPv4 and IPv6 traffic selectors in
// one CHILD_SA (RFC 7296 §2.9 narrowing per family, §2.23 NAT detection over 16-byte addresses).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatPrefix } from '../../src/common/ip.js';
import { NotifyType } from '../../src/ike/wire/constants.js';
import { decodeMessage } from '../../src/ike/wire/message.js';
import type { NotifyPayload } from '../../src/ike/wire/types.js';
import { TwoPeers, peerConfig } from './helpers.js';

const A6 = '2001:db8:ff::1';
const B6 = '2001:db8:ff::2';

/** TwoPeers routes by A's IPv4 address; this one delivers to whichever side owns the IPv6 destination. */
class TwoPeers6 extends TwoPeers {
  override run(actions: Parameters<TwoPeers['run']>[0], origin: 'a' | 'b'): void {
    const queue: { actions: typeof actions; origin: 'a' | 'b' }[] = [{ actions, origin }];
    for (let steps = 0; queue.length > 0 && steps < 1000; steps++) {
      const { actions: acts, origin: o } = queue.shift()!;
      (o === 'a' ? this.actionsA : this.actionsB).push(...acts);
      for (const act of acts) {
        if (act.kind !== 'send') continue;
        const idx = this.wire.length;
        this.wire.push(act);
        if (!this.filter(act, idx)) continue;
        const target = act.to.address === A6 ? 'a' : 'b';
        const mgr = target === 'a' ? this.a : this.b;
        queue.push({ actions: mgr.receive(act.datagram, act.from, act.to, this.now), origin: target });
      }
    }
  }
}

function pair(ts: { aLocal: string[]; aRemote: string[]; bLocal: string[]; bRemote: string[] }): TwoPeers6 {
  const a = peerConfig({ name: 'a2b', local: A6, remote: B6, localTs: ts.aLocal, remoteTs: ts.aRemote });
  const b = peerConfig({ name: 'b2a', local: B6, remote: A6, localTs: ts.bLocal, remoteTs: ts.bRemote });
  return new TwoPeers6([a], [b]);
}

function notifies(datagram: Buffer, type: NotifyType): Buffer[] {
  const r = decodeMessage(datagram, null);
  if (!r.ok) throw new Error('IKE_SA_INIT did not decode');
  return r.msg.payloads.filter((p) => p.type === 41 && (p as NotifyPayload).notifyType === type).map((p) => (p as NotifyPayload).data);
}

describe('IKEv2 over IPv6 endpoints with IPv4 and IPv6 traffic selectors', () => {
  it('one CHILD_SA for both families; the responder narrows the IPv6 selector; ports float to 4500 over IPv6', () => {
    const p = pair({
      aLocal: ['10.1.0.0/16', 'fd00:1::/48'], aRemote: ['10.2.0.0/16', 'fd00:2::/48'],
      // the responder's IPv6 VPC side is narrower than what the initiator asks for
      bLocal: ['10.2.0.0/16', 'fd00:2::/64'], bRemote: ['10.1.0.0/16', 'fd00:1::/48'],
    });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    const [ia] = p.installs('a');
    const [ib] = p.installs('b');
    expect(ia!.localTs.map(formatPrefix)).toEqual(['10.1.0.0/16', 'fd00:1::/48']);
    expect(ia!.remoteTs.map(formatPrefix)).toEqual(['10.2.0.0/16', 'fd00:2::/64']);
    expect(ib!.localTs.map(formatPrefix)).toEqual(['10.2.0.0/16', 'fd00:2::/64']);
    expect(ib!.remoteTs.map(formatPrefix)).toEqual(['10.1.0.0/16', 'fd00:1::/48']);
    expect(ia!.remote).toEqual({ address: B6, port: 4500 });
    expect(ib!.remote).toEqual({ address: A6, port: 4500 });
    expect(p.wire[2]!.to).toMatchObject({ address: B6, port: 4500 });
  });

  it('IKE_SA_INIT: NAT_DETECTION_DESTINATION_IP hashes the peer\'s 16-byte address (RFC 7296 §2.23)', () => {
    const p = pair({ aLocal: ['fd00:1::/48'], aRemote: ['fd00:2::/48'], bLocal: ['fd00:2::/48'], bRemote: ['fd00:1::/48'] });
    p.run(p.a.initiate('a2b', p.now), 'a');
    const req = p.wire[0]!.datagram;
    const spiI = req.subarray(0, 8);
    const want = createHash('sha1').update(spiI).update(Buffer.alloc(8))
      .update(Buffer.from('20010db800ff00000000000000000002', 'hex')).update(Buffer.from([0x01, 0xf4])).digest();
    expect(notifies(req, NotifyType.NAT_DETECTION_DESTINATION_IP)).toEqual([want]);
    // the faked source hash is not the real one (so the peer floats to 4500 and encapsulates ESP)
    const real = createHash('sha1').update(spiI).update(Buffer.alloc(8))
      .update(Buffer.from('20010db800ff00000000000000000001', 'hex')).update(Buffer.from([0x01, 0xf4])).digest();
    const src = notifies(req, NotifyType.NAT_DETECTION_SOURCE_IP);
    expect(src).toHaveLength(1);
    expect(src[0]!.equals(real)).toBe(false);
    expect(p.installs('a')).toHaveLength(1);
  });

  it('IPv6 proposed against an IPv4-only policy: TS_UNACCEPTABLE, the IKE SA stays up without a child', () => {
    const p = pair({ aLocal: ['fd00:1::/48'], aRemote: ['fd00:2::/48'], bLocal: ['10.2.0.0/16'], bRemote: ['10.1.0.0/16'] });
    p.run(p.a.initiate('a2b', p.now), 'a');
    expect(p.installs('a')).toHaveLength(0);
    expect(p.installs('b')).toHaveLength(0);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.logText('a')).toMatch(/TS_UNACCEPTABLE/);
    expect(p.logText('b')).toMatch(/fd00:1::\/48/);
  });
});
