import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { TwoPeers, peerConfig, A_ADDR, B_ADDR } from './helpers.js';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType, ProtocolId } from '../../src/ike/wire/constants.js';
import type { IkeMessage, Payload, Proposal, TrafficSelector } from '../../src/ike/wire/types.js';
import { decodeMessage, encodeMessage } from '../../src/ike/wire/message.js';
import { IkeSa, notify } from '../../src/ike/sa/ike-sa.js';
import { spiToBuffer } from '../../src/ike/sa/child-sa.js';
import type { Endpoint, IkeAction } from '../../src/ike/sa/types.js';
import { deriveChildKeys, deriveRekeyedIkeKeys, ikeKeyLengths, skCryptoFor } from '../../src/ike/sa/keymat.js';
import { parseProposals } from '../../src/ike/config/proposal.js';
import { prefixToTs, tsToString } from '../../src/ike/config/traffic-selector.js';
import { createKeyExchange, type KeyExchange } from '../../src/crypto/dh.js';
import { createPrf } from '../../src/crypto/prf.js';
import type { IkeTask, TaskStatus } from '../../src/ike/tasks/task.js';
import { findNotify, findPayload } from '../../src/ike/tasks/task.js';
import { IkeDeleteTask } from '../../src/ike/tasks/ike-delete.js';
import { ChildDeleteTask } from '../../src/ike/tasks/child-delete.js';
import type { IkeManager } from '../../src/ike/ike-manager.js';
import { parsePrefix, formatPrefix, type Prefix } from '../../src/common/ip.js';
import { parseConfig } from '../../src/gateway/config/load.js';
import { IpsecController } from '../../src/gateway/ipsec.js';
import type { DataPlane } from '../../src/dataplane/data-plane.js';
import { captureLogger } from '../../src/common/log.js';

// A is vpcgw's side (the responder of every rekey); B plays strongSwan: it set the tunnel up and
// starts the rekeys with the small test-only initiator tasks below (built from the codecs and keymat).

function sasOf(m: IkeManager): IkeSa[] {
  return [...(m as unknown as { sas: Map<string, IkeSa> }).sas.values()];
}

function pair(o: { espA?: string; espB?: string } = {}) {
  const a = peerConfig({ name: 'a2b', local: A_ADDR, remote: B_ADDR, localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], esp: o.espA });
  const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'], esp: o.espB });
  const p = new TwoPeers([a], [b]);
  p.run(p.b.initiate('b2a', p.now), 'b');
  expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
  return { p, saA: () => sasOf(p.a), saB: sasOf(p.b)[0]! };
}

function ts(list: string[]): TrafficSelector[] {
  return list.map((t) => prefixToTs(parsePrefix(t)!));
}

/** Test-only CHILD_SA rekey initiator: N(REKEY_SA) SA Ni [KEi] TSi TSr --> */
class TestChildRekey implements IkeTask {
  readonly type = 'TEST_CHILD_REKEY';
  readonly spiIn = 0x0b0b0000 + Math.floor(Math.random() * 0xffff);
  readonly nonceI = Buffer.alloc(32, 0x5a);
  ke: KeyExchange | null = null;
  resp: IkeMessage | null = null;
  constructor(private readonly o: { rekeySpi: number | null; esp: string; keGroup?: number; tsi?: string[]; tsr?: string[] }) {}
  buildRequest(out: Payload[]): TaskStatus {
    if (this.o.rekeySpi !== null) out.push(notify(NotifyType.REKEY_SA, Buffer.alloc(0), ProtocolId.ESP, spiToBuffer(this.o.rekeySpi)));
    out.push({ type: PayloadType.SA, proposals: parseProposals(this.o.esp, 'esp').map((p) => ({ ...p, spi: spiToBuffer(this.spiIn) })) });
    out.push({ type: PayloadType.NONCE, nonce: this.nonceI });
    if (this.o.keGroup) {
      this.ke = createKeyExchange(this.o.keGroup);
      out.push({ type: PayloadType.KE, group: this.o.keGroup, data: this.ke.publicKey });
    }
    out.push({ type: PayloadType.TSi, selectors: ts(this.o.tsi ?? ['10.2.0.0/16']) });
    out.push({ type: PayloadType.TSr, selectors: ts(this.o.tsr ?? ['10.1.0.0/16']) });
    return 'done';
  }
  processResponse(msg: IkeMessage): TaskStatus {
    this.resp = msg;
    return 'done';
  }
}

/** Test-only IKE_SA rekey initiator: SA(IKE, SPIi') Ni KEi --> */
class TestIkeRekey implements IkeTask {
  readonly type = 'TEST_IKE_REKEY';
  readonly spiI = Buffer.from('1122334455667788', 'hex');
  readonly nonceI = Buffer.alloc(32, 0x3c);
  readonly ke = createKeyExchange(31);
  resp: IkeMessage | null = null;
  buildRequest(out: Payload[]): TaskStatus {
    out.push({ type: PayloadType.SA, proposals: parseProposals('aes128gcm16-prfsha256-x25519', 'ike').map((p) => ({ ...p, spi: this.spiI })) });
    out.push({ type: PayloadType.NONCE, nonce: this.nonceI });
    out.push({ type: PayloadType.KE, group: 31, data: this.ke.publicKey });
    return 'done';
  }
  processResponse(msg: IkeMessage): TaskStatus {
    this.resp = msg;
    return 'done';
  }
}

function installsOf(actions: IkeAction[]) {
  return actions.filter((x) => x.kind === 'installChildSa').map((x) => (x as Extract<IkeAction, { kind: 'installChildSa' }>).params);
}

function rekeyChild(p: TwoPeers, saB: IkeSa, o: ConstructorParameters<typeof TestChildRekey>[0]): TestChildRekey {
  const t = new TestChildRekey(o);
  p.run(saB.queueExchange(ExchangeType.CREATE_CHILD_SA, [t], p.now), 'b');
  expect(t.resp).not.toBeNull();
  return t;
}

describe('CHILD_SA rekey, vpcgw responding', () => {
  it('installs a new child with the keys the initiator derives, keeps the old one until its DELETE, then removes only the old', () => {
    const { p, saA, saB } = pair();
    const oldA = p.installs('a')[0]!;
    const before = p.actionsA.length;
    const t = rekeyChild(p, saB, { rekeySpi: saB.children[0]!.spiIn, esp: 'aes128gcm16' });
    const resp = t.resp!;
    const saP = findPayload(resp, PayloadType.SA)!;
    const nr = findPayload(resp, PayloadType.NONCE)!;
    expect(findPayload(resp, PayloadType.KE)).toBeUndefined();
    const chosen = saP.proposals[0]!;
    // the peer (exchange initiator) is "I": its outbound keys are the first KEYMAT slice
    const keys = deriveChildKeys(saB.prf!, saB.keys!.skD, t.nonceI, nr.nonce, null, chosen as Proposal);
    const installs = installsOf(p.actionsA.slice(before));
    expect(installs).toHaveLength(1);
    const n = installs[0]!;
    expect(n.spiIn).toBe(chosen.spi.readUInt32BE(0));
    expect(n.spiOut).toBe(t.spiIn);
    expect(n.spiIn).not.toBe(oldA.spiIn);
    expect(n.encrKeyIn.equals(keys.encrKeyI)).toBe(true);
    expect(n.encrKeyOut.equals(keys.encrKeyR)).toBe(true);
    expect(n.encrKeyOut.equals(oldA.encrKeyOut)).toBe(false);
    expect(n.remoteTs.map(formatPrefix)).toEqual(['10.2.0.0/16']);
    let children = p.a.status()[0]!.children;
    expect(children.map((c) => c.state)).toEqual(['REKEYED', 'INSTALLED']);
    expect(p.deletes('a')).toHaveLength(0);

    // the peer deletes the old child: only the old SAs leave the data plane
    p.run(saB.queueExchange(ExchangeType.INFORMATIONAL, [new ChildDeleteTask(saB, saB.children[0]!.spiIn)], p.now), 'b');
    // make-before-break: the new outbound takes over only now, and the old inbound
    // SA lingers for packets still in flight
    expect(p.actionsA.filter((x) => x.kind === 'activateChildSa')).toEqual([{ kind: 'activateChildSa', connection: 'a2b', spiOut: n.spiOut }]);
    expect(n.activateOutbound).toBe(false);
    expect(p.deletes('a')).toEqual([{ kind: 'deleteChildSa', connection: 'a2b', spiIn: oldA.spiIn, spiOut: oldA.spiOut, inboundGraceMs: 5000 }]);
    children = p.a.status()[0]!.children;
    expect(children).toHaveLength(1);
    expect(children[0]!.spiIn).toBe(n.spiIn.toString(16).padStart(8, '0'));
    expect(saA()[0]!.children[0]!.state).toBe('INSTALLED');

    // and it can be rekeyed again (the second hourly rekey)
    const t2 = rekeyChild(p, saB, { rekeySpi: t.spiIn, esp: 'aes128gcm16' });
    expect(findPayload(t2.resp!, PayloadType.SA)).toBeDefined();
    expect(p.a.status()[0]!.children.map((c) => c.state)).toEqual(['REKEYED', 'INSTALLED']);
    expect(p.a.connectionCounters('a2b')).toEqual({ ikeRekeys: 0, childRekeys: 2, dpdFailures: 0 });
  });

  it('narrows the traffic selectors as at creation', () => {
    const { p, saB } = pair();
    const t = rekeyChild(p, saB, { rekeySpi: saB.children[0]!.spiIn, esp: 'aes128gcm16', tsi: ['10.2.0.0/16'], tsr: ['10.0.0.0/8'] });
    expect(findPayload(t.resp!, PayloadType.TSr)!.selectors.map(tsToString)).toEqual(['10.1.0.0/16']);
    expect(findPayload(t.resp!, PayloadType.TSi)!.selectors.map(tsToString)).toEqual(['10.2.0.0/16']);
    const n = p.installs('a').at(-1)!;
    expect(n.localTs.map(formatPrefix)).toEqual(['10.1.0.0/16']);
  });

  it('with PFS: answers KEr of the group and mixes g^ir into KEYMAT', () => {
    const { p, saB } = pair({ espA: 'aes128gcm16-x25519', espB: 'aes128gcm16-x25519' });
    const t = rekeyChild(p, saB, { rekeySpi: saB.children[0]!.spiIn, esp: 'aes128gcm16-x25519', keGroup: 31 });
    const ker = findPayload(t.resp!, PayloadType.KE)!;
    expect(ker.group).toBe(31);
    const secret = t.ke!.computeSecret(ker.data)!;
    const chosen = findPayload(t.resp!, PayloadType.SA)!.proposals[0]!;
    const nr = findPayload(t.resp!, PayloadType.NONCE)!.nonce;
    const keys = deriveChildKeys(saB.prf!, saB.keys!.skD, t.nonceI, nr, secret, chosen as Proposal);
    const n = p.installs('a').at(-1)!;
    expect(n.spiOut).toBe(t.spiIn);
    expect(n.encrKeyIn.equals(keys.encrKeyI)).toBe(true);
    expect(n.encrKeyOut.equals(keys.encrKeyR)).toBe(true);
  });

  it('PFS with the wrong group: INVALID_KE_PAYLOAD naming our group, nothing installed, SA kept', () => {
    const { p, saB } = pair({ espA: 'aes128gcm16-x25519', espB: 'aes128gcm16-x25519' });
    const n0 = p.installs('a').length;
    const t = rekeyChild(p, saB, { rekeySpi: saB.children[0]!.spiIn, esp: 'aes128gcm16-ecp256-x25519', keGroup: 19 });
    const n = findNotify(t.resp!, NotifyType.INVALID_KE_PAYLOAD)!;
    expect(n.data.readUInt16BE(0)).toBe(31);
    expect(findPayload(t.resp!, PayloadType.SA)).toBeUndefined();
    expect(p.installs('a')).toHaveLength(n0);
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.a.status()[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
  });

  it('an unknown REKEY_SA SPI gets CHILD_SA_NOT_FOUND; no matching proposal gets NO_PROPOSAL_CHOSEN', () => {
    const { p, saB } = pair();
    const t = rekeyChild(p, saB, { rekeySpi: 0x12345678, esp: 'aes128gcm16' });
    expect(findNotify(t.resp!, NotifyType.CHILD_SA_NOT_FOUND)).toBeDefined();
    const t2 = rekeyChild(p, saB, { rekeySpi: saB.children[0]!.spiIn, esp: 'aes256-sha512' });
    expect(findNotify(t2.resp!, NotifyType.NO_PROPOSAL_CHOSEN)).toBeDefined();
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.a.status()[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
    expect(p.installs('a')).toHaveLength(1);
  });

  it('an additional CHILD_SA (no REKEY_SA) is still refused with NO_ADDITIONAL_SAS, keeping the IKE SA', () => {
    const { p, saB } = pair();
    const t = rekeyChild(p, saB, { rekeySpi: null, esp: 'aes128gcm16' });
    expect(findNotify(t.resp!, NotifyType.NO_ADDITIONAL_SAS)).toBeDefined();
    expect(p.a.status()[0]!.state).toBe('ESTABLISHED');
    expect(p.installs('a')).toHaveLength(1);
  });
});

describe('IKE_SA rekey, vpcgw responding', () => {
  it('derives the new keys, moves the children, speaks MID 0 with the flipped role, and survives the old SA\'s delete', () => {
    const { p, saA, saB } = pair();
    const oldA = saA()[0]!;
    const child = oldA.children[0]!;
    const t = new TestIkeRekey();
    p.run(saB.queueExchange(ExchangeType.CREATE_CHILD_SA, [t], p.now), 'b');
    const resp = t.resp!;
    const chosen = findPayload(resp, PayloadType.SA)!.proposals[0]!;
    expect(chosen.protocol).toBe(ProtocolId.IKE);
    expect(chosen.spi).toHaveLength(8);
    const ker = findPayload(resp, PayloadType.KE)!;
    const nr = findPayload(resp, PayloadType.NONCE)!.nonce;
    const lens = ikeKeyLengths(chosen as Proposal);
    const keys = deriveRekeyedIkeKeys(createPrf(lens.prfId), saB.keys!.skD, t.ke.computeSecret(ker.data)!, t.nonceI, nr,
      t.spiI, chosen.spi, lens.encrKeyLen, lens.integKeyLen);

    const sas = saA();
    expect(sas).toHaveLength(2);
    const newA = sas.find((s) => s !== oldA)!;
    expect(newA.spiI.equals(t.spiI)).toBe(true);
    expect(newA.spiR.equals(chosen.spi)).toBe(true);
    expect(newA.initiator).toBe(false);
    expect(newA.keys!.skD.equals(keys.skD)).toBe(true);
    expect(newA.keys!.skEi.equals(keys.skEi)).toBe(true);
    expect(newA.children).toEqual([child]);
    expect(oldA.children).toHaveLength(0);
    expect(oldA.state).toBe('REKEYED');

    // the peer, now original initiator, sends on the new SA with MID 0 and the I flag
    const skB = skCryptoFor(chosen as Proposal, keys, true);
    const dpd = encodeMessage({ spiI: t.spiI, spiR: chosen.spi, exchangeType: ExchangeType.INFORMATIONAL, flags: HeaderFlag.I, messageId: 0 }, [], skB);
    const out = p.a.receive(dpd, { address: B_ADDR, port: 4500 }, { address: A_ADDR, port: 4500 }, p.now);
    const sent = out.filter((x) => x.kind === 'send') as Extract<IkeAction, { kind: 'send' }>[];
    expect(sent).toHaveLength(1);
    const answer = decodeMessage(sent[0]!.datagram, skB);
    expect(answer.ok).toBe(true);
    if (!answer.ok) return;
    expect(answer.msg.header.messageId).toBe(0);
    expect(answer.msg.header.flags).toBe(HeaderFlag.R); // response, and we are no longer the original initiator

    // D(IKE) on the old SA: it goes, the moved child stays installed
    p.run(saB.queueExchange(ExchangeType.INFORMATIONAL, [new IkeDeleteTask(saB, () => p.now, 'rekeyed')], p.now), 'b');
    expect(saA()).toEqual([newA]);
    expect(p.deletes('a')).toHaveLength(0);
    const st = p.a.status();
    expect(st).toHaveLength(1);
    expect(st[0]!.state).toBe('ESTABLISHED');
    expect(st[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
    expect(p.a.connectionCounters('a2b')).toEqual({ ikeRekeys: 1, childRekeys: 0, dpdFailures: 0 });
  });

  it('drops a replaced IKE SA locally when the peer never deletes it, keeping the moved children', () => {
    const { p, saA, saB } = pair();
    const oldA = saA()[0]!;
    const t = new TestIkeRekey();
    p.run(saB.queueExchange(ExchangeType.CREATE_CHILD_SA, [t], p.now), 'b');
    expect(oldA.state).toBe('REKEYED');
    expect(saA()).toHaveLength(2);
    p.filter = () => false; // the peer's D(IKE) never comes
    p.tick(29_999);
    expect(saA()).toHaveLength(2);
    p.tick(1);
    expect(saA()).toHaveLength(1);
    expect(saA()[0]!.state).toBe('ESTABLISHED');
    expect(p.deletes('a')).toHaveLength(0);
    expect(p.a.status()[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
  });

  it('with a KE of the wrong group: INVALID_KE_PAYLOAD, the SA stays', () => {
    const { p, saA, saB } = pair();
    const t = new (class extends TestIkeRekey {
      override buildRequest(out: Payload[]): TaskStatus {
        const ke = createKeyExchange(19);
        out.push({ type: PayloadType.SA, proposals: parseProposals('aes128gcm16-prfsha256-ecp256-x25519', 'ike').map((p) => ({ ...p, spi: this.spiI })) });
        out.push({ type: PayloadType.NONCE, nonce: this.nonceI });
        out.push({ type: PayloadType.KE, group: 19, data: ke.publicKey });
        return 'done';
      }
    })();
    p.run(saB.queueExchange(ExchangeType.CREATE_CHILD_SA, [t], p.now), 'b');
    expect(findNotify(t.resp!, NotifyType.INVALID_KE_PAYLOAD)!.data.readUInt16BE(0)).toBe(31);
    expect(saA()).toHaveLength(1);
    expect(saA()[0]!.state).toBe('ESTABLISHED');
  });
});

describe('gateway routes across a CHILD_SA rekey', () => {
  it('re-points the routes to the new outbound SPI; deleting the old child leaves them', () => {
    const routes = new Map<string, number>();
    const sas = new Set<string>();
    const dp = {
      onSaEvent() {},
      installSa(s: { spi: number; direction: string }) { sas.add(`${s.direction}:${s.spi}`); },
      removeSa(spi: number, direction: string) { sas.delete(`${direction}:${spi}`); },
      addRoute(prefix: Prefix, spi: number) { routes.set(formatPrefix(prefix), spi); },
      removeRoute(prefix: Prefix) { routes.delete(formatPrefix(prefix)); },
      saCounters() { return undefined; },
    } as unknown as DataPlane;
    const yaml = stringify({
      gateway: { name: 'gw', dataDir: '/tmp', publicAddresses: [A_ADDR], vpcSubnets: ['10.1.0.0/16'] },
      customerGateways: [{ name: 'cgw1', address: B_ADDR, id: B_ADDR }],
      vpnConnections: [{
        name: 'c1', customerGateway: 'cgw1', localSubnets: ['10.1.0.0/16'], remoteSubnets: ['10.2.0.0/16'],
        auth: { psk: 'test-fixture-psk-not-a-secret' }, ike: { proposals: 'aes128gcm16-prfsha256-x25519', localId: A_ADDR },
        esp: { proposals: 'aes128gcm16' }, startAction: 'none',
      }],
    });
    const b = peerConfig({ name: 'b2a', local: B_ADDR, remote: A_ADDR, localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] });
    const p = new TwoPeers([], [b]);
    const toB: { d: Buffer; from: Endpoint; to: Endpoint }[] = [];
    const ctrl = new IpsecController({
      config: parseConfig(yaml, '/tmp/rekey-test.yaml'), log: captureLogger(), dataPlane: dp,
      sendIke: (d, to, local) => { toB.push({ d: Buffer.from(d), from: local, to }); return true; },
    }, { now: () => p.now });
    // B's datagrams go to the controller, the controller's to B, until quiet
    const pump = (acts: IkeAction[]) => {
      for (let i = 0; i < 100; i++) {
        for (const a of acts) if (a.kind === 'send') ctrl.receiveIke(a.datagram, { family: 4, ...a.from }, { family: 4, ...a.to });
        acts = [];
        for (const m of toB.splice(0)) acts.push(...p.b.receive(m.d, m.from, m.to, p.now));
        if (acts.length === 0 && toB.length === 0) return;
      }
    };
    pump(p.b.initiate('b2a', p.now));
    const saB = sasOf(p.b)[0]!;
    const oldOut = saB.children[0]!.spiIn;
    expect(routes.get('10.2.0.0/16')).toBe(oldOut);
    const oldIn = saB.children[0]!.spiOut;
    const t = new TestChildRekey({ rekeySpi: oldOut, esp: 'aes128gcm16' });
    pump(saB.queueExchange(ExchangeType.CREATE_CHILD_SA, [t], p.now));
    // both new SAs are installed, but traffic keeps using the old outbound SA until the peer deletes it
    expect(sas.has(`out:${t.spiIn}`)).toBe(true);
    expect(routes.get('10.2.0.0/16')).toBe(oldOut);
    pump(saB.queueExchange(ExchangeType.INFORMATIONAL, [new ChildDeleteTask(saB, oldOut)], p.now));
    expect(sas.has(`out:${oldOut}`)).toBe(false);
    expect(routes.get('10.2.0.0/16')).toBe(t.spiIn);
    expect(ctrl.status()[0]!.children).toHaveLength(1);
    // status: the IKE SA's establishment time and age, and the rekey counted for the connection
    const established = p.now;
    p.now += 7000;
    expect(ctrl.status()[0]).toMatchObject({
      name: 'c1', state: 'ESTABLISHED', establishedAt: new Date(established).toISOString(), ikeSaAgeSec: 7,
      ikeRekeys: 0, childRekeys: 1, dpdFailures: 0,
    });
    p.now -= 7000;
    // the old inbound SA outlives the DELETE by 5 s, then the tick removes it
    expect(sas.has(`in:${oldIn}`)).toBe(true);
    expect(ctrl.nextDeadline()).toBe(p.now + 5000);
    p.now += 5000;
    ctrl.tick(p.now);
    expect(sas.has(`in:${oldIn}`)).toBe(false);
    expect(routes.get('10.2.0.0/16')).toBe(t.spiIn);
  });
});
