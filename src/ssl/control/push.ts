/**
 * PUSH_REPLY building and the server's pushed-option policy (OpenVPN 2.6 `push.c`,
 * `send_push_reply`, `prepare_push_reply`).
 *
 * Shared contract with the data channel (D2): `compressionFraming()` says which stub framing
 * the data channel must use for a client, and `buildPushReply()` pushes the matching option:
 *   'none'     client has no compression option (2.6 default)        -> push nothing
 *   'stub-v2'  client has ",comp-lzo" and IV_COMP_STUBv2=1            -> push "compress stub-v2"
 *              (no framing byte; strip a "0x50 0x00" prefix if one ever appears)
 *   'lzo-stub' client has ",comp-lzo" without IV_COMP_STUBv2          -> push "comp-lzo no"
 *              (0xFA byte in front of every payload, both directions)
 */
import { VpnError } from '../../common/errors.js';
import { IV_PROTO_CC_EXIT_NOTIFY, IV_PROTO_DATA_V2, IV_PROTO_TLS_KEY_EXPORT, ivProto } from './key-method.js';

export interface PushParams {
  /** our tunnel address; informational (topology subnet uses routeGateway) */
  ifconfigLocal?: string;
  ifconfig: { address: string; netmask: string };
  routeGateway: string;
  routes: { network: string; netmask: string }[];
  dns: string[];
  pingSec: number;
  pingRestartSec: number;
  /** extra option lines, pushed verbatim after ours (no commas allowed) */
  extra?: string[];
}

export type CompressionFraming = 'none' | 'lzo-stub' | 'stub-v2';

/** The stock server splits pushes at about 1 KB; the client's read buffer is about 2 KB. */
export const PUSH_PART_MAX = 1000;

export function compressionFraming(peerInfo: Map<string, string>, clientOptions: string): CompressionFraming {
  if (!/(^|,)comp-lzo(,|$)/.test(clientOptions)) return 'none';
  return peerInfo.get('IV_COMP_STUBv2') === '1' ? 'stub-v2' : 'lzo-stub';
}

/** Whether the session derives data keys with the TLS exporter (and pushes tls-ekm). */
export function usesEkm(peerInfo: Map<string, string>): boolean {
  return (ivProto(peerInfo) & IV_PROTO_TLS_KEY_EXPORT) !== 0;
}

/** The pushed options, in the stock server's order, without the "PUSH_REPLY," prefix. */
export function pushOptions(params: PushParams, peerInfo: Map<string, string>, cipher: string, peerId: number, clientOptions = '', allowEkm = true): string[] {
  const proto = ivProto(peerInfo);
  const o: string[] = [];
  o.push(`route-gateway ${params.routeGateway}`);
  o.push('topology subnet');
  o.push(`ping ${params.pingSec}`);
  o.push(`ping-restart ${params.pingRestartSec}`);
  o.push(`ifconfig ${params.ifconfig.address} ${params.ifconfig.netmask}`);
  for (const r of params.routes) o.push(`route ${r.network} ${r.netmask}`);
  for (const d of params.dns) o.push(`dhcp-option DNS ${d}`);
  if (proto & IV_PROTO_DATA_V2) o.push(`peer-id ${peerId}`);
  o.push(`cipher ${cipher}`);
  const ekm = allowEkm && usesEkm(peerInfo);
  if (proto & IV_PROTO_CC_EXIT_NOTIFY) {
    // only what we implement: no dyn-tls-crypt (a 2.6 client would switch its control channel to tls-crypt)
    o.push(ekm ? 'protocol-flags cc-exit tls-ekm' : 'protocol-flags cc-exit');
  } else if (ekm) {
    o.push('key-derivation tls-ekm');
  }
  const comp = compressionFraming(peerInfo, clientOptions);
  if (comp === 'stub-v2') o.push('compress stub-v2');
  else if (comp === 'lzo-stub') o.push('comp-lzo no');
  for (const e of params.extra ?? []) {
    if (e.includes(',')) throw new VpnError('ERR_INVALID_ARG', `pushed option contains a comma: ${e}`);
    o.push(e);
  }
  return o;
}

/** The whole reply as one string ("PUSH_REPLY,opt,opt,..."), without the terminating NUL. */
export function buildPushReply(params: PushParams, peerInfo: Map<string, string>, cipher: string, peerId: number, clientOptions = ''): string {
  return ['PUSH_REPLY', ...pushOptions(params, peerInfo, cipher, peerId, clientOptions)].join(',');
}

/**
 * The reply as the messages to send: one if it fits in PUSH_PART_MAX, otherwise several, each
 * but the last ending in ",push-continuation 2" and the last in ",push-continuation 1".
 */
export function buildPushReplyParts(
  params: PushParams,
  peerInfo: Map<string, string>,
  cipher: string,
  peerId: number,
  clientOptions = '',
  allowEkm = true,
): string[] {
  const opts = pushOptions(params, peerInfo, cipher, peerId, clientOptions, allowEkm);
  const whole = ['PUSH_REPLY', ...opts].join(',');
  if (whole.length <= PUSH_PART_MAX) return [whole];
  const parts: string[] = [];
  const tail = ',push-continuation 2';
  let cur = 'PUSH_REPLY';
  for (const opt of opts) {
    if (cur.length + 1 + opt.length + tail.length > PUSH_PART_MAX && cur !== 'PUSH_REPLY') {
      parts.push(cur + tail);
      cur = 'PUSH_REPLY';
    }
    cur += ',' + opt;
  }
  parts.push(cur + ',push-continuation 1');
  return parts;
}
