import { describe, expect, it } from 'vitest';
import { type PushParams, buildPushReply, buildPushReplyParts, compressionFraming } from '../../../../src/ssl/control/push.js';
import { parsePeerInfo } from '../../../../src/ssl/control/key-method.js';

const PARAMS: PushParams = {
  ifconfig: { address: '10.8.0.2', netmask: '255.255.255.0' },
  routeGateway: '10.8.0.1',
  routes: [{ network: '10.20.0.0', netmask: '255.255.0.0' }],
  dns: ['10.8.0.1'],
  pingSec: 10,
  pingRestartSec: 60,
};
const PI_26 = parsePeerInfo('IV_VER=2.6.14\nIV_PROTO=990\nIV_LZO_STUB=1\nIV_COMP_STUB=1\nIV_COMP_STUBv2=1\n');
const OPTS = 'V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-client';
const OPTS_LZO = 'V4,dev-type tun,link-mtu 1542,tun-mtu 1500,proto UDPv4,comp-lzo,auth SHA1,keysize 128,key-method 2,tls-client';

describe('buildPushReply', () => {
  it('2.6 client: topology subnet, ifconfig, routes, DNS, ping, peer-id, cipher, protocol-flags (no dyn-tls-crypt)', () => {
    expect(buildPushReply(PARAMS, PI_26, 'AES-256-GCM', 3, OPTS)).toBe(
      'PUSH_REPLY,route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 60,ifconfig 10.8.0.2 255.255.255.0,' +
        'route 10.20.0.0 255.255.0.0,dhcp-option DNS 10.8.0.1,peer-id 3,cipher AES-256-GCM,protocol-flags cc-exit tls-ekm',
    );
  });
  it('EKM-capable client without cc-exit gets key-derivation tls-ekm; no DATA_V2 bit means no peer-id', () => {
    const s = buildPushReply(PARAMS, parsePeerInfo('IV_PROTO=8'), 'AES-128-GCM', 3);
    expect(s).toContain(',key-derivation tls-ekm');
    expect(s).not.toContain('protocol-flags');
    expect(s).not.toContain('peer-id');
  });
  it('old client without EKM: neither tls-ekm nor protocol-flags', () => {
    const s = buildPushReply(PARAMS, parsePeerInfo('IV_PROTO=2'), 'AES-256-GCM', 0);
    expect(s).not.toContain('tls-ekm');
    expect(s).toContain('peer-id 0');
  });
  it('compression refusal: stub-v2 when offered, else comp-lzo no; nothing without ,comp-lzo', () => {
    expect(compressionFraming(PI_26, OPTS)).toBe('none');
    expect(buildPushReply(PARAMS, PI_26, 'AES-256-GCM', 0, OPTS)).not.toMatch(/comp/);
    expect(compressionFraming(PI_26, OPTS_LZO)).toBe('stub-v2');
    expect(buildPushReply(PARAMS, PI_26, 'AES-256-GCM', 0, OPTS_LZO)).toContain(',compress stub-v2');
    const noV2 = parsePeerInfo('IV_PROTO=990\nIV_LZO_STUB=1\n');
    expect(compressionFraming(noV2, OPTS_LZO)).toBe('lzo-stub');
    expect(buildPushReply(PARAMS, noV2, 'AES-256-GCM', 0, OPTS_LZO)).toContain(',comp-lzo no');
  });
  it('refuses extra options with commas (they would split into two options)', () => {
    expect(() => buildPushReply({ ...PARAMS, extra: ['a,b'] }, PI_26, 'AES-256-GCM', 0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
  });
  it('splits long pushes with push-continuation, each part under 1000 chars', () => {
    const routes = Array.from({ length: 80 }, (_, i) => ({ network: `10.${i}.0.0`, netmask: '255.255.0.0' }));
    const parts = buildPushReplyParts({ ...PARAMS, routes }, PI_26, 'AES-256-GCM', 1, OPTS);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) {
      expect(p.startsWith('PUSH_REPLY,')).toBe(true);
      expect(p.length).toBeLessThanOrEqual(1000);
    }
    for (const p of parts.slice(0, -1)) expect(p.endsWith(',push-continuation 2')).toBe(true);
    expect(parts[parts.length - 1]!.endsWith(',push-continuation 1')).toBe(true);
    const all = parts.join(',');
    for (const r of routes) expect(all).toContain(`route ${r.network} 255.255.0.0`);
    expect(buildPushReplyParts(PARAMS, PI_26, 'AES-256-GCM', 1, OPTS)).toEqual([buildPushReply(PARAMS, PI_26, 'AES-256-GCM', 1, OPTS)]);
  });
});
