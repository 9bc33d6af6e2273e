/**
 * The control-channel core as the session manager uses it: SslSession (src/ssl/session.ts), or a
 * fake in tests. One per client session; it reports through `onAction`, also asynchronously (the TLS
 * engine answers outside any call).
 */
import { SslSession, type PushParams, type SslAction, type SslSessionOptions } from '../session.js';

export interface ControlSession {
  receiveControl(pkt: Buffer, now: number): void;
  tick(now: number): void;
  nextDeadline(): number;
  setPush(p: PushParams): void;
  reject(reason: string): void;
  sendControlText(t: string): void;
  close(reason: string): void;
  /** starts a server-side renegotiation (SOFT_RESET); false if one is under way */
  renegotiate?(now: number): boolean;
  readonly state: string;
}

export interface ControlSessionFactory {
  isInitialPacket(pkt: Buffer): boolean;
  create(opts: SslSessionOptions, peerId: number, onAction: (a: SslAction) => void): ControlSession;
}

export const defaultSessionFactory: ControlSessionFactory = {
  isInitialPacket: (pkt) => SslSession.isInitialPacket(pkt),
  create: (opts, peerId, onAction) => new SslSession(opts, peerId, onAction),
};
