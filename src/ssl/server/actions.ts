/** What the SSL VPN session manager asks its shell to do. */
import type { SslEndpoint } from './data-path.js';

export type SslServerAction =
  /** a control-channel packet: a datagram to `to` (conn -1) or a TCP frame on connection `conn` */
  | { kind: 'sendControl'; conn: number; to: SslEndpoint; packet: Buffer }
  /**
   * an IP packet from a client to the VPC, at buf[off, off+len). Per-packet: one object reused by the
   * manager, valid until its next call (copy or write it before then)
   */
  | WriteToTun
  /** end a TCP connection: gracefully after the session closed, or at once (`abort`, a broken stream) */
  | { kind: 'closeConnection'; conn: number; abort: boolean }
  /**
   * check a client's username/password (the shell calls its Authenticator and answers with
   * `passwordVerdict(check, ...)`). `password` must never be logged or kept.
   */
  | { kind: 'verifyPassword'; check: number; user: string; password: string; server: string; source: string }
  /** a client authenticated and holds a virtual address */
  | { kind: 'sessionUp'; peerId: number; user: string; address: string }
  /** a session ended (reported once, also for sessions that never authenticated) */
  | { kind: 'sessionDown'; peerId: number; user: string; reason: string };

export class WriteToTun {
  readonly kind = 'writeToTun' as const;
  /** the session the packet came from (the shell gives it the session's policy origin) */
  peerId = 0;
  buf: Buffer = Buffer.alloc(0);
  off = 0;
  len = 0;
  /** the sending session's origin for the data path's policy stage (0: none) */
  origin = 0;
}
