// Regenerates the committed seed corpus of every fuzz target (test/fuzz-ts/corpus/<target>/):
// recorded packets (test/recorded/ike, test/recorded/openvpn) and encodings of typical messages
// made with the codecs under test. Seeds are deterministic, so a rerun changes nothing unless the
// recordings or the encoders changed.
//   node --import ./test/fuzz-ts/register.mjs test/fuzz-ts/make-corpus.ts
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrf } from '../../src/crypto/prf.js';
import { deriveIkeKeys, ikeKeyLengths, skCryptoFor } from '../../src/ike/sa/keymat.js';
import { chainLength, decodeMessage, encodeChain, GENERIC_HEADER_SIZE } from '../../src/ike/wire/message.js';
import { PayloadType } from '../../src/ike/wire/constants.js';
import type { IkeMessage, Payload, UnknownPayload } from '../../src/ike/wire/types.js';
import { buildClientKeyMethod2, buildServerKeyMethod2 } from '../../src/ssl/control/key-method.js';
import { encodeAck } from '../../src/ssl/wire/ack.js';
import { writeDataV1Header, writeDataV2Header } from '../../src/ssl/wire/data-packet.js';
import { frameForTcp } from '../../src/ssl/wire/tcp-framing.js';
import { defaultConfigText } from '../../src/gateway/default-config.js';
import { selectorOf } from './targets/null-sk.js';
import dnsPacket from 'dns-packet';
import { icmpError4, tcp4, udp4 } from '../helpers/ip-packets.js';

const HERE = new URL('.', import.meta.url).pathname;
const REC = new URL('../recorded/', import.meta.url).pathname;
const OUT = join(HERE, 'corpus');
const corpus = new Map<string, Map<string, Buffer>>();

function seed(target: string, name: string, data: Buffer): void {
  let m = corpus.get(target);
  if (!m) corpus.set(target, (m = new Map()));
  m.set(name, data);
}

// ---- IKE: three recorded strongSwan exchanges, decrypted with the recorded shared secret ------
const PAYLOAD_TYPES = [33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 47, 48, 200]; // = ike-payload.ts
const innerChains: Array<[string, number, number, Buffer]> = [];

function ok(dg: Buffer, sk: Parameters<typeof decodeMessage>[1]): IkeMessage {
  const r = decodeMessage(dg, sk);
  if (!r.ok) throw new Error(`recorded datagram does not decode: ${r.detail}`);
  return r.msg;
}

for (const file of ['strongswan-cbc-sha256-x25519', 'strongswan-gcm256-ecp384', 'strongswan-chacha-modp2048']) {
  const fx = JSON.parse(readFileSync(join(REC, 'ike', `${file}.json`), 'utf8')) as { datagrams: Array<{ hex: string }>; keys: Record<string, string> };
  const dg = fx.datagrams.map((d) => Buffer.from(d.hex, 'hex'));
  const tag = file.replace('strongswan-', '');
  dg.forEach((d, i) => seed('ike-message', `${tag}-${i}`, d));
  const initReq = ok(dg[0]!, null);
  const initResp = ok(dg[1]!, null);
  const chosen = initResp.payloads.find((p) => p.type === PayloadType.SA)!;
  if (chosen.type !== PayloadType.SA) throw new Error('no SA');
  const prop = chosen.proposals[0]!;
  const nonce = (m: IkeMessage) => {
    const p = m.payloads.find((x) => x.type === PayloadType.NONCE);
    if (p?.type !== PayloadType.NONCE) throw new Error('no nonce');
    return p.nonce;
  };
  const { encrKeyLen, integKeyLen, prfId } = ikeKeyLengths(prop);
  const keys = deriveIkeKeys(createPrf(prfId), Buffer.from(fx.keys.sharedSecret!, 'hex'), nonce(initReq), nonce(initResp), initResp.header.spiI, initResp.header.spiR, encrKeyLen, integKeyLen);
  const skI = skCryptoFor(prop, keys, true);
  const skR = skCryptoFor(prop, keys, false);
  const msgs: Array<[string, IkeMessage]> = [['init-req', initReq], ['init-resp', initResp]];
  for (let i = 2; i < dg.length; i++) msgs.push([`sk-${i}`, ok(dg[i]!, i % 2 === 0 ? skR : skI)]);
  for (const [name, m] of msgs) {
    const all: Array<Payload | UnknownPayload> = [...m.payloads, ...m.skipped];
    if (name.startsWith('sk-')) {
      const chain = Buffer.alloc(chainLength(all));
      encodeChain(all, chain, 0);
      innerChains.push([`${tag}-${name}`, selectorOf(m.header.exchangeType, m.header.flags), all[0]?.type ?? 0, chain]);
    }
    for (const p of all) {
      const idx = PAYLOAD_TYPES.indexOf(p.type);
      if (idx < 0) continue;
      const b = Buffer.alloc(chainLength([p]));
      encodeChain([p], b, 0);
      seed('ike-payload', `${tag}-${name}-${p.type}`, Buffer.concat([Buffer.from([idx]), b.subarray(GENERIC_HEADER_SIZE)]));
    }
  }
}

for (const [name, selector, first, chain] of innerChains) {
  // SK plaintext: inner chain, then the Pad Length byte (no padding: the null transform has blockLen 4)
  const pad = (4 - ((chain.length + 1) % 4)) % 4;
  seed('ike-sk', name, Buffer.concat([Buffer.from([selector, first]), chain, Buffer.alloc(pad), Buffer.from([pad])]));
  if (chain.length === 0) continue;
  // the same chain in two SKF fragments: records of [u16 len][next, u16 number, u16 total, plaintext + Pad Length]
  const half = chain.length >> 1;
  const frag = (next: number, n: number, part: Buffer) => {
    const body = Buffer.concat([Buffer.from([next, 0, n, 0, 2]), part, Buffer.from([0])]);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(body.length);
    return Buffer.concat([len, body]);
  };
  seed('ike-fragments', name, Buffer.concat([frag(first, 1, chain.subarray(0, half)), frag(0, 2, chain.subarray(half))]));
}

// ---- OpenVPN: the recorded 2.6.14 control channel ---------------------------------------------
const ovpn = JSON.parse(readFileSync(join(REC, 'openvpn', 'udp-control-2.6.14.json'), 'utf8')) as { packets: Array<{ dir: string; hex: string }> };
const pkts = ovpn.packets.map((p) => Buffer.from(p.hex, 'hex'));
pkts.forEach((p, i) => {
  // a few of each kind keep the corpus small: resets, ACKs, the first TLS records
  if (i < 12) seed('ssl-control', `udp-2.6.14-${i}`, p);
  if (i < 6) seed('ssl-ack', `udp-2.6.14-${i}`, Buffer.concat([Buffer.from([9]), p]));
});
seed('ssl-tcp-framing', 'udp-2.6.14-first8', Buffer.concat([Buffer.from([0, 0]), ...pkts.slice(0, 8).map((p) => frameForTcp(p))]));
seed('ssl-tcp-framing', 'small-max-frame', Buffer.concat([Buffer.from([1, 7]), ...pkts.slice(0, 3).map((p) => frameForTcp(p))]));
const ack = Buffer.alloc(1 + 1 + 3 * 4 + 8);
encodeAck({ ids: [1, 2, 3], remoteSessionId: Buffer.from('2cd00dec3f8dd425', 'hex') }, ack, 1);
seed('ssl-ack', 'three-ids', ack);

const v2 = Buffer.alloc(1 + 8 + 40);
writeDataV2Header(v2, 1, 0, 7, 1);
seed('ssl-data-header', 'v2', v2);
const v1 = Buffer.alloc(1 + 5 + 40);
writeDataV1Header(v1, 1, 1, 42);
seed('ssl-data-header', 'v1', v1);

const random = Buffer.alloc(32, 0xaa);
const peerInfo = 'IV_VER=2.6.14\nIV_PLAT=linux\nIV_TCPNL=1\nIV_MTU=1600\nIV_NCP=2\nIV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nIV_PROTO=990\nIV_LZO_STUB=1\nIV_COMP_STUB=1\nIV_COMP_STUBv2=1\n';
const options = 'V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto UDPv4,cipher AES-256-GCM,auth [null-digest],keysize 256,key-method 2,tls-client';
seed('ssl-key-method', 'client', buildClientKeyMethod2({ keyMethod: 2, preMaster: Buffer.alloc(48, 0x55), random1: random, random2: random, options, username: null, password: null, peerInfoText: peerInfo }));
seed('ssl-key-method', 'client-userpass', buildClientKeyMethod2({ keyMethod: 2, preMaster: Buffer.alloc(48, 0x55), random1: random, random2: random, options, username: 'alice', password: 'secret', peerInfoText: peerInfo }));
seed('ssl-key-method', 'server', buildServerKeyMethod2({ random1: random, random2: random, options: options.replace('tls-client', 'tls-server') }));
seed('ssl-key-method', 'commands', Buffer.from('PUSH_REQUEST\0AUTH_FAILED\0EXIT\0RESTART,partial'));

// ReliableChannel ops (ssl-reliable.ts): [op, u32]
const ops = (list: Array<[number, number]>) => Buffer.concat(list.map(([op, v]) => Buffer.from([op, v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255])));
seed('ssl-reliable', 'handshake', ops([[0, 0], [3, 0], [3, 0], [4, 10], [5, 0], [2, 0x09], [0, 1], [0, 3], [0, 2], [4, 3000], [5, 1]]));
seed('ssl-reliable', 'retransmit', ops([[3, 0], [3, 0], [3, 0], [4, 0], [4, 2500], [4, 70000], [2, 0x0a], [4, 100]]));

// ---- config: the text `vpcgw start` writes, and one with every section filled in ---------------
seed('config', 'default', Buffer.from(defaultConfigText({ vpcSubnet: '10.2.0.0/16', psk: 'x'.repeat(32), clientCidr: '10.8.0.0/24', localId: '192.0.2.2' })));
seed('config', 'full', Buffer.from(`gateway:
  name: gw1
  dataDir: ./var
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
  tun: { name: vpcgw0, mtu: 1400 }
  logLevel: info
customerGateways:
  - { name: dc1, address: 192.0.2.1, id: 192.0.2.1 }
vpnConnections:
  - name: dc1-main
    customerGateway: dc1
    localSubnets: [10.2.0.0/16]
    remoteSubnets: [10.1.0.0/16]
    auth: { psk: correct-horse-battery }
    ike: { proposals: aes128gcm16-prfsha256-x25519, lifetime: 4h, localId: 192.0.2.2 }
    esp: { proposals: aes128gcm16, lifetime: 1h, replayWindow: 1024 }
    startAction: start
    dpd: { interval: 30s }
vpnServers:
  - name: p2c
    protocols: [udp, tcp]
    port: 1194
    listen: 0.0.0.0
    clientCidr: 10.8.0.0/24
    localSubnets: [10.2.0.0/16]
    dnsServers: [10.2.0.53]
    dataCiphers: [AES-256-GCM, AES-128-GCM, CHACHA20-POLY1305]
    auth: { type: cert }
    serverCert: { cert: server.crt, key: server.key }
    clientCa: ca.crt
    maxConnections: 100
    clientToClient: false
`));

// management API bodies (config-entry.ts): byte 0 = section index, then the JSON
const entries: Array<[number, string, unknown]> = [
  [0, 'gateway', { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'], tun: { name: 'vpcgw0', mtu: 1400 }, logLevel: 'info' }],
  [1, 'customer-gateway', { name: 'dc2', address: '198.51.100.1', id: 'dc2.example.org' }],
  [2, 'vpn-connection', { name: 'dc1-b', customerGateway: 'dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.3.0.0/16'], auth: { psk: 'correct-horse-battery' }, ike: { proposals: 'aes256gcm16-prfsha384-ecp384', lifetime: '4h' }, esp: { proposals: 'aes128gcm16', replayWindow: 1024 }, dpd: { interval: '30s' } }],
  [3, 'vpn-server', { name: 'p2c', protocols: ['udp'], port: 1194, clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], auth: { type: 'cert' }, serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt' }],
];
for (const [i, name, body] of entries) seed('config-entry', name, Buffer.concat([Buffer.from([i]), Buffer.from(JSON.stringify(body))]));

// the policy stage (vpcep-policy.ts): byte 0 = direction (4: outbound) | origin index (0..3) | clock step
const TCP_SYN = 0x02;
const ctl = (outbound: boolean, origin: number) => Buffer.from([(outbound ? 4 : 0) | origin | 0x20]);
const synToE = tcp4('10.1.0.5', 40000, '10.2.100.10', 80, TCP_SYN);
seed('vpcep-policy', 'tcp-syn-endpoint', Buffer.concat([ctl(false, 1), synToE]));
seed('vpcep-policy', 'udp-endpoint', Buffer.concat([ctl(false, 3), udp4('10.9.1.1', 5000, '10.2.100.10', 53, 'query')]));
seed('vpcep-policy', 'udp-closed-endpoint', Buffer.concat([ctl(false, 1), udp4('10.1.0.5', 5000, '10.2.100.11', 53, 'query')]));
seed('vpcep-policy', 'acl-tcp', Buffer.concat([ctl(false, 3), tcp4('10.8.0.2', 41000, '10.4.0.1', 443, TCP_SYN)]));
seed('vpcep-policy', 'reply-from-backend', Buffer.concat([ctl(true, 0), tcp4('10.3.0.10', 8080, '10.2.100.10', 1024, 0x12)]));
seed('vpcep-policy', 'icmp-error-from-backend', Buffer.concat([ctl(true, 0), icmpError4('10.3.0.10', '10.2.100.10', 3, 3, udp4('10.2.100.10', 1024, '10.3.0.10', 5353, 'query'))]));

// the endpoint DNS responder (dns-responder.ts): queries as clients send them
const dnsQuery = (id: number, name: string, type: string) => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: type as 'A', name, class: 'IN' }] });
seed('dns-responder', 'a-endpoint', dnsQuery(1, 'web.endpoint.internal', 'A'));
seed('dns-responder', 'aaaa-endpoint', dnsQuery(2, 'WEB.Endpoint.Internal', 'AAAA'));
seed('dns-responder', 'a-other', dnsQuery(3, 'example.com', 'A'));
seed('dns-responder', 'a-parent', dnsQuery(4, 'endpoint.internal', 'A'));
seed('dns-responder', 'edns', dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'A', name: 'db.svc.example.org' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer] }));

rmSync(OUT, { recursive: true, force: true });
for (const [target, seeds] of corpus) {
  mkdirSync(join(OUT, target), { recursive: true });
  for (const [name, data] of seeds) writeFileSync(join(OUT, target, name), data);
  console.log(`${target}: ${seeds.size} seeds`);
}
