import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../../src/common/errors.js';
import {
  type ClientKeyMethod2,
  buildClientKeyMethod2,
  buildServerKeyMethod2,
  chooseCipher,
  makeServerKeyMethod2,
  parseClientKeyMethod2,
  parsePeerInfo,
  parseServerKeyMethod2,
  splitCommands,
} from '../../../../src/ssl/control/key-method.js';

const PEER_INFO = 'IV_VER=2.6.14\nIV_PLAT=linux\nIV_NCP=2\nIV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nIV_PROTO=990\n';
const OPTIONS = 'V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-client';

function sample(over: Partial<ClientKeyMethod2> = {}): ClientKeyMethod2 {
  return {
    keyMethod: 2,
    preMaster: Buffer.alloc(48, 1),
    random1: Buffer.alloc(32, 2),
    random2: Buffer.alloc(32, 3),
    options: OPTIONS,
    username: null,
    password: null,
    peerInfoText: PEER_INFO,
    ...over,
  };
}

describe('client key-method-2', () => {
  it('parses what the 2.6 client writes (empty user/pass as u16 0) and reports the bytes used', () => {
    const b = buildClientKeyMethod2(sample());
    // layout check by hand: 4 zero + method + 48 + 32 + 32, options length includes the NUL
    expect(b.readUInt32BE(0)).toBe(0);
    expect(b[4]).toBe(2);
    expect(b.readUInt16BE(117)).toBe(OPTIONS.length + 1);
    const r = parseClientKeyMethod2(Buffer.concat([b, Buffer.from('PUSH_REQUEST\0')]));
    if (r === null || r instanceof ParseError) throw new Error('parse failed');
    expect(r.used).toBe(b.length);
    expect(r.km2.options).toBe(OPTIONS);
    expect(r.km2.username).toBeNull();
    expect(r.km2.password).toBeNull();
    expect(r.km2.preMaster.equals(Buffer.alloc(48, 1))).toBe(true);
    expect(r.km2.random2.equals(Buffer.alloc(32, 3))).toBe(true);
    expect(parsePeerInfo(r.km2.peerInfoText).get('IV_PROTO')).toBe('990');
  });

  it('reads username and password before the peer-info', () => {
    const b = buildClientKeyMethod2(sample({ username: 'alice', password: 's3cret' }));
    const r = parseClientKeyMethod2(b);
    if (r === null || r instanceof ParseError) throw new Error('parse failed');
    expect(r.km2.username).toBe('alice');
    expect(r.km2.password).toBe('s3cret');
    expect(parsePeerInfo(r.km2.peerInfoText).get('IV_VER')).toBe('2.6.14');
  });

  it('asks for more bytes at every truncation point (TLS data events are not record-aligned)', () => {
    const b = buildClientKeyMethod2(sample());
    for (let n = 0; n < b.length; n++) expect(parseClientKeyMethod2(b.subarray(0, n))).toBeNull();
  });

  it('rejects key method 1, a non-zero prefix, missing NULs and oversized fields', () => {
    const b = buildClientKeyMethod2(sample());
    const m1 = Buffer.from(b);
    m1[4] = 1;
    expect(parseClientKeyMethod2(m1)).toBeInstanceOf(ParseError);
    const nz = Buffer.from(b);
    nz[2] = 1;
    expect(parseClientKeyMethod2(nz)).toBeInstanceOf(ParseError);
    const nonul = Buffer.from(b);
    nonul[117 + 2 + OPTIONS.length] = 0x41; // the options string's NUL
    expect(parseClientKeyMethod2(nonul)).toBeInstanceOf(ParseError);
    const big = Buffer.from(b);
    big.writeUInt16BE(600, 117);
    expect(parseClientKeyMethod2(big)).toBeInstanceOf(ParseError);
  });
});

describe('server key-method-2', () => {
  it('has no pre_master and empty user/pass/peer-info, and round-trips', () => {
    const m = makeServerKeyMethod2('V4,dev-type tun,tls-server');
    const b = buildServerKeyMethod2(m);
    expect(b.length).toBe(4 + 1 + 64 + 2 + m.options.length + 1 + 6);
    expect(b.subarray(b.length - 6).equals(Buffer.alloc(6))).toBe(true);
    const r = parseServerKeyMethod2(b);
    if (r === null || r instanceof ParseError) throw new Error('parse failed');
    expect(r.used).toBe(b.length);
    expect(r.km2.random1.equals(m.random1)).toBe(true);
    expect(r.km2.options).toBe(m.options);
  });
});

describe('peer-info and cipher choice', () => {
  it('parses VAR=value lines', () => {
    const m = parsePeerInfo('IV_VER=2.6.14\r\nIV_PLAT=linux\nbogus\nUV_X=a=b\n');
    expect(m.get('IV_VER')).toBe('2.6.14');
    expect(m.get('UV_X')).toBe('a=b');
    expect(m.has('bogus')).toBe(false);
  });
  it('picks the first server cipher the client offers', () => {
    const server = ['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305'];
    expect(chooseCipher(server, parsePeerInfo('IV_CIPHERS=CHACHA20-POLY1305:AES-128-GCM'))).toBe('AES-128-GCM');
    expect(chooseCipher(server, parsePeerInfo('IV_CIPHERS=chacha20-poly1305'))).toBe('CHACHA20-POLY1305');
    expect(chooseCipher(server, parsePeerInfo('IV_CIPHERS=BF-CBC:AES-256-CBC'))).toBeNull();
    expect(chooseCipher(server, parsePeerInfo('IV_NCP=2'))).toBe('AES-256-GCM'); // 2.4-style client
    expect(chooseCipher(server, parsePeerInfo('IV_VER=2.3.0'))).toBeNull();
  });
  it('splits NUL-terminated commands and keeps an unterminated rest', () => {
    const r = splitCommands(Buffer.from('PUSH_REQUEST\0EXIT\r\n\0PART'));
    expect(r.commands).toEqual(['PUSH_REQUEST', 'EXIT']);
    expect(r.rest.toString()).toBe('PART');
  });
});
