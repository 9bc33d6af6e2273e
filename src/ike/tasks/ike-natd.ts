import { createHash } from 'node:crypto';
import { IKE_NATT_PORT } from '../../common/ipsec-udp.js';
import { NotifyType } from '../wire/constants.js';
import type { IkeMessage, Payload } from '../wire/types.js';
import { bytesToIp, parseIp } from '../../common/ip.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { notify } from '../sa/ike-sa.js';
import type { Endpoint } from '../sa/types.js';
import { type IkeTask, type TaskStatus, findNotify } from './task.js';

/**
 * NAT detection (RFC 7296 §2.23).
 *
 * Each side sends NAT_DETECTION_SOURCE_IP = SHA-1(SPIi | SPIr | its own IP | its own port) and
 * NAT_DETECTION_DESTINATION_IP = SHA-1(SPIi | SPIr | the IP | port it sends to). The receiver
 * recomputes both from the addresses it sees: a source hash that matches none of the announced
 * ones means the peer is behind a NAT, a destination hash that does not match means we are.
 *
 * Forced encapsulation (the connection's `encap`, default on, as strongSwan's `encap = yes` and
 * what kernel-libipsec always does): our source hash is computed over a random address and port
 * 0, so every RFC-conforming peer believes we are behind a NAT and sends ESP in UDP to 4500
 * (RFC 3948). We still check the peer's hashes honestly, for the status and for rebinding.
 *
 * With encapsulation not forced both of our hashes are real. vpcgw has no raw ESP path (IP
 * protocol 50: neither data plane opens a raw socket, both carry ESP only inside UDP 4500), so when
 * the check finds no NAT at all a responder falls back to the faked source hash in its answer
 * (the peer then encapsulates anyway), and an initiator, whose hashes went out before it could
 * know, fails the IKE SA with a reason naming the setting (processResponse).
 */
export function natdHash(spiI: Buffer, spiR: Buffer, ep: Endpoint): Buffer {
  const ip = parseIp(ep.address);
  const port = Buffer.alloc(2);
  port.writeUInt16BE(ep.port, 0);
  return createHash('sha1').update(spiI).update(spiR).update(ip ? ip.bytes : Buffer.alloc(4)).update(port).digest();
}

/**
 * A random address of the IKE SA's family for the faked NAT_DETECTION_SOURCE_IP: RFC 7296 §2.23
 * hashes the IP address as sent (4 bytes for IPv4, 16 for IPv6), so the fake has the length a real
 * one would have on this SA. `random` is 4 or 16 bytes.
 */
export function fakeAddress(random: Buffer): string {
  const b = Buffer.from(random);
  b[0] = b.length === 16 ? 0xfd : b[0]! | 1; // never 0.x.x.x or :: (which read as "no address")
  return bytesToIp(b);
}

/** What the peer's NAT_DETECTION payloads say about the path, judged from the addresses we saw. */
export interface NatdResult {
  /** no announced source hash matched the address/port the message came from */
  peerBehindNat: boolean;
  /** the destination hash did not match the address/port it reached us on */
  weBehindNat: boolean;
}

/**
 * RFC 7296 §2.23: `srcHashes` are the peer's NAT_DETECTION_SOURCE_IP data (there may be several),
 * `dstHash` its NAT_DETECTION_DESTINATION_IP; `from` where the message came from, `to` where it
 * reached us.
 */
export function checkNatd(spiI: Buffer, spiR: Buffer, srcHashes: readonly Buffer[], dstHash: Buffer, from: Endpoint, to: Endpoint): NatdResult {
  const peerHash = natdHash(spiI, spiR, from);
  const ourHash = natdHash(spiI, spiR, to);
  return { peerBehindNat: !srcHashes.some((h) => h.equals(peerHash)), weBehindNat: !dstHash.equals(ourHash) };
}

/** Forced UDP encapsulation for this SA: the chosen config's, or for a responder any candidate's. */
function encapForced(sa: IkeSa): boolean {
  if (sa.cfg) return sa.cfg.encap !== false;
  return sa.candidates.length === 0 || sa.candidates.some((c) => c.encap !== false);
}

export class IkeNatdTask implements IkeTask {
  readonly type = 'IKE_NATD';
  failReason?: string;
  private peerSupports = false;

  constructor(private readonly sa: IkeSa) {}

  /** Four single random bytes, drawn one at a time (the order recorded exchanges were made with). */
  private randomV4(): Buffer {
    const ctx = this.sa.ctx;
    return Buffer.from([ctx.random(1)[0]!, ctx.random(1)[0]!, ctx.random(1)[0]!, ctx.random(1)[0]!]);
  }

  private addPayloads(out: Payload[], fake: boolean): void {
    const sa = this.sa;
    const source = fake ? { address: fakeAddress(sa.remote.address.includes(':') ? sa.ctx.random(16) : this.randomV4()), port: 0 } : sa.local;
    out.push(notify(NotifyType.NAT_DETECTION_SOURCE_IP, natdHash(sa.spiI, sa.spiR, source)));
    out.push(notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natdHash(sa.spiI, sa.spiR, sa.remote)));
  }

  buildRequest(out: Payload[]): TaskStatus {
    this.sa.natFaked = encapForced(this.sa);
    this.addPayloads(out, this.sa.natFaked);
    return 'done';
  }

  processResponse(msg: IkeMessage): TaskStatus {
    this.inspect(msg);
    const sa = this.sa;
    if (!this.peerSupports) {
      sa.log.warn({}, 'peer sent no NAT_DETECTION payloads: it may not support UDP-encapsulated ESP, which vpcgw requires');
      return 'done';
    }
    if (!sa.natDetected) {
      // honest hashes went out and neither side is behind a NAT: the peer will send raw ESP (IP
      // protocol 50), which vpcgw can neither receive nor send
      this.failReason = 'no NAT between the peers and encap is off: ESP would be raw IP protocol 50, which vpcgw does not support (set encap: true)';
      sa.log.warn({ conn: sa.cfg?.name ?? null }, 'no NAT detected and UDP encapsulation not forced: vpcgw has no raw ESP path, giving up');
      return 'fail';
    }
    // RFC 7296 §2.23: with a NAT in the path the initiator floats to 4500 at once: IKE_AUTH goes
    // out with the non-ESP marker
    sa.local = { address: sa.local.address, port: IKE_NATT_PORT };
    sa.remote = { address: sa.remote.address, port: IKE_NATT_PORT };
    return 'done';
  }

  processRequest(msg: IkeMessage): TaskStatus {
    this.sa.natFaked = encapForced(this.sa);
    this.inspect(msg);
    return 'done';
  }

  buildResponse(out: Payload[]): TaskStatus {
    const sa = this.sa;
    if (!this.peerSupports) return 'done';
    if (!sa.natDetected) {
      // no NAT on the path, encapsulation not forced: we still need ESP in UDP (no raw ESP path),
      // so we answer with the faked source hash; the peer then encapsulates as if we were behind a NAT
      sa.log.info({}, 'no NAT detected; UDP encapsulation kept (vpcgw has no raw ESP path)');
      sa.natFaked = true;
      sa.natDetected = true;
    }
    this.addPayloads(out, sa.natFaked);
    return 'done';
  }

  private inspect(msg: IkeMessage): void {
    const sa = this.sa;
    const src = msg.payloads.filter((p) => p.type === 41 && (p as { notifyType: number }).notifyType === NotifyType.NAT_DETECTION_SOURCE_IP);
    const dst = findNotify(msg, NotifyType.NAT_DETECTION_DESTINATION_IP);
    if (src.length === 0 || !dst) return;
    this.peerSupports = true;
    const r = checkNatd(sa.spiI, msg.header.spiR, src.map((p) => (p as { data: Buffer }).data), dst.data, sa.remote, sa.local);
    sa.peerBehindNat = r.peerBehindNat;
    sa.weBehindNat = r.weBehindNat;
    // ESP goes in UDP when a NAT is on the path or we fake one (RFC 3948)
    sa.natDetected = r.peerBehindNat || r.weBehindNat || sa.natFaked;
    sa.log.debug(
      { peerBehindNat: r.peerBehindNat, weBehindNat: r.weBehindNat, encapForced: sa.natFaked },
      `NAT detection: peer ${r.peerBehindNat ? 'is' : 'is not'} behind NAT, we ${r.weBehindNat ? 'are' : 'are not'}`,
    );
  }
}
