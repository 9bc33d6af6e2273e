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
 * NAT detection (RFC 7296 §2.23). A userspace gateway cannot send raw ESP (IP protocol 50), so —
 * like strongSwan with `encap = yes` or kernel-libipsec — we always FAKE our
 * NAT_DETECTION_SOURCE_IP (hash of a random address, port 0). Every RFC-conforming peer then
 * believes we are behind a NAT and uses UDP-encapsulated ESP on port 4500 (RFC 3948), and the
 * initiator floats to 4500 after IKE_SA_INIT.
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

export class IkeNatdTask implements IkeTask {
  readonly type = 'IKE_NATD';
  private peerSupports = false;

  constructor(private readonly sa: IkeSa) {}

  /** Four single random bytes, drawn one at a time (the order recorded exchanges were made with). */
  private randomV4(): Buffer {
    const ctx = this.sa.ctx;
    return Buffer.from([ctx.random(1)[0]!, ctx.random(1)[0]!, ctx.random(1)[0]!, ctx.random(1)[0]!]);
  }

  private addPayloads(out: Payload[]): void {
    const sa = this.sa;
    const fake = { address: fakeAddress(sa.remote.address.includes(':') ? sa.ctx.random(16) : this.randomV4()), port: 0 };
    out.push(notify(NotifyType.NAT_DETECTION_SOURCE_IP, natdHash(sa.spiI, sa.spiR, fake)));
    out.push(notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natdHash(sa.spiI, sa.spiR, sa.remote)));
  }

  buildRequest(out: Payload[]): TaskStatus {
    this.addPayloads(out);
    return 'done';
  }

  processResponse(msg: IkeMessage): TaskStatus {
    this.inspect(msg);
    if (this.peerSupports) {
      // float to 4500 right away (RFC 7296 §2.23): IKE_AUTH goes out with the non-ESP marker
      const sa = this.sa;
      sa.local = { address: sa.local.address, port: IKE_NATT_PORT };
      sa.remote = { address: sa.remote.address, port: IKE_NATT_PORT };
    } else {
      this.sa.log.warn({}, 'peer sent no NAT_DETECTION payloads: it may not support UDP-encapsulated ESP, which vpcgw requires');
    }
    return 'done';
  }

  processRequest(msg: IkeMessage): TaskStatus {
    this.inspect(msg);
    return 'done';
  }

  buildResponse(out: Payload[]): TaskStatus {
    if (this.peerSupports) this.addPayloads(out);
    return 'done';
  }

  private inspect(msg: IkeMessage): void {
    const sa = this.sa;
    const src = msg.payloads.filter((p) => p.type === 41 && (p as { notifyType: number }).notifyType === NotifyType.NAT_DETECTION_SOURCE_IP);
    const dst = findNotify(msg, NotifyType.NAT_DETECTION_DESTINATION_IP);
    if (src.length === 0 || !dst) return;
    this.peerSupports = true;
    const spiR = msg.header.spiR;
    const peerHash = natdHash(sa.spiI, spiR, sa.remote);
    const peerBehindNat = !src.some((p) => (p as { data: Buffer }).data.equals(peerHash));
    const ourHash = natdHash(sa.spiI, spiR, sa.local);
    const weBehindNat = !dst.data.equals(ourHash);
    sa.natDetected = true; // we fake ours, so UDP encapsulation is always on
    sa.log.debug({ peerBehindNat, weBehindNat }, `NAT detection: peer ${peerBehindNat ? 'is' : 'is not'} behind NAT, we ${weBehindNat ? 'are' : 'are not'}`);
  }
}
