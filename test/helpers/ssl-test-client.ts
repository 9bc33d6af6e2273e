/**
 * TEST HELPER: a small OpenVPN-2.6-like *client* control channel, built from our own wire codec,
 * reliability layer and TLS engine (client role), to drive SslSession in-process. It does what
 * the real client does on the control channel: hard reset, TLS, km2 (right after TLS), reads the
 * server km2 as one message, NUL-separated commands after it, PUSH_REQUEST on demand, SOFT_RESET
 * renegotiation from either side, and derives the same data keys (EKM or PRF) for comparison.
 */
import { randomBytes } from 'node:crypto';
import { ParseError } from '../../src/common/errors.js';
import { ReliableChannel } from '../../src/ssl/control/reliable.js';
import { type TlsEngine, createTlsEngine } from '../../src/ssl/control/tls-engine.js';
import { type ServerKeyMethod2, buildClientKeyMethod2, parseServerKeyMethod2, splitCommands } from '../../src/ssl/control/key-method.js';
import { EKM_LABEL, KEY_BLOCK_SIZE, prfKeyBlock } from '../../src/ssl/control/key-derivation.js';
import { decodeControlPacket, encodeControlPacket } from '../../src/ssl/wire/control-packet.js';
import { Opcode, nextKeyId } from '../../src/ssl/wire/opcodes.js';

export const CLIENT_PEER_INFO_26 = [
  'IV_VER=2.6.14',
  'IV_PLAT=linux',
  'IV_TCPNL=1',
  'IV_MTU=1600',
  'IV_NCP=2',
  'IV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305',
  'IV_PROTO=990',
  'IV_LZO_STUB=1',
  'IV_COMP_STUB=1',
  'IV_COMP_STUBv2=1',
  '',
].join('\n');

export const CLIENT_OPTIONS_26 = 'V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-client';

export interface TestClientOptions {
  cert?: string;
  key?: string;
  ca: string;
  peerInfo?: string;
  options?: string;
  tlsMaxVersion?: 'TLSv1.2' | 'TLSv1.3';
  username?: string;
  password?: string;
}

interface ClientKeyState {
  keyId: number;
  rel: ReliableChannel;
  tls: TlsEngine | null;
  secure: boolean;
  peerResetSeen: boolean;
  preMaster: Buffer;
  random1: Buffer;
  random2: Buffer;
  plain: Buffer;
  serverKm2: ServerKeyMethod2 | null;
  /** 256-byte key blocks as the client would derive them */
  ekmBlock: Buffer | null;
  prfBlock: Buffer | null;
}

export class TestOvpnClient {
  readonly sid = randomBytes(8);
  serverSid: Buffer | null = null;
  readonly keys = new Map<number, ClientKeyState>();
  currentKeyId = 0;
  readonly commands: string[] = [];
  readonly errors: string[] = [];
  readonly sent: Buffer[] = [];
  nowMs = 0;

  constructor(
    private readonly opts: TestClientOptions,
    private readonly out: (pkt: Buffer) => void,
  ) {}

  start(now: number): void {
    this.nowMs = now;
    const ks = this.newKeyState(0);
    ks.rel.enqueue(Opcode.P_CONTROL_HARD_RESET_CLIENT_V2, Buffer.alloc(0));
    this.flush();
  }

  /** Client-initiated renegotiation: SOFT_RESET with the next key id. */
  renegotiate(now: number): number {
    this.nowMs = now;
    const keyId = nextKeyId(this.currentKeyId);
    const ks = this.newKeyState(keyId);
    ks.rel.enqueue(Opcode.P_CONTROL_SOFT_RESET_V1, Buffer.alloc(0));
    this.flush();
    return keyId;
  }

  sendText(text: string, keyId = this.currentKeyId): void {
    this.keys.get(keyId)!.tls!.writePlaintext(Buffer.from(text + '\0'));
  }

  receive(pkt: Buffer, now: number): void {
    this.nowMs = now;
    const p = decodeControlPacket(pkt);
    if (p instanceof ParseError) {
      this.errors.push(`bad packet from server: ${p.message}`);
      return;
    }
    if (this.serverSid === null) {
      if (p.opcode !== Opcode.P_CONTROL_HARD_RESET_SERVER_V2) return;
      this.serverSid = Buffer.from(p.sessionId);
    } else if (!p.sessionId.equals(this.serverSid)) {
      this.errors.push('server session id changed');
      return;
    }
    if (p.ack.remoteSessionId && !p.ack.remoteSessionId.equals(this.sid)) {
      this.errors.push('ack for another session');
      return;
    }
    let ks = this.keys.get(p.keyId);
    if (!ks && p.opcode === Opcode.P_CONTROL_SOFT_RESET_V1) {
      // server-initiated renegotiation: answer with our own SOFT_RESET for that key id
      ks = this.newKeyState(p.keyId);
      ks.rel.enqueue(Opcode.P_CONTROL_SOFT_RESET_V1, Buffer.alloc(0));
    }
    if (!ks) return;
    ks.rel.onAcks(p.ack.ids);
    if (p.messageId !== null) {
      ks.rel.onReceive(p.messageId, p.opcode, p.payload);
      for (const m of ks.rel.takeDeliverable()) {
        if (m.messageId === 0) ks.peerResetSeen = true;
        else if (m.opcode === Opcode.P_CONTROL_V1) ks.tls?.feedCiphertext(m.payload);
      }
    }
    // the client starts TLS once its reset has been ACKed and the server's reset arrived
    this.maybeStartTls(ks);
    this.flush();
  }

  tick(now: number): void {
    this.nowMs = now;
    this.flush();
  }

  nextDeadline(): number {
    let d = Infinity;
    for (const ks of this.keys.values()) d = Math.min(d, ks.rel.nextDeadline());
    return d;
  }

  private newKeyState(keyId: number): ClientKeyState {
    const ks: ClientKeyState = {
      keyId,
      rel: new ReliableChannel(),
      tls: null,
      secure: false,
      peerResetSeen: false,
      preMaster: randomBytes(48),
      random1: randomBytes(32),
      random2: randomBytes(32),
      plain: Buffer.alloc(0),
      serverKm2: null,
      ekmBlock: null,
      prfBlock: null,
    };
    this.keys.set(keyId, ks);
    return ks;
  }

  private maybeStartTls(ks: ClientKeyState): void {
    if (ks.tls !== null || !ks.rel.allAcked() || !ks.peerResetSeen) return;
    ks.tls = createTlsEngine(
      { role: 'client', cert: this.opts.cert, key: this.opts.key, ca: this.opts.ca, maxVersion: this.opts.tlsMaxVersion },
      {
        onCiphertext: (d) => {
          for (let off = 0; off < d.length; off += 1100) ks.rel.enqueue(Opcode.P_CONTROL_V1, d.subarray(off, Math.min(off + 1100, d.length)));
          this.flush();
        },
        onSecure: () => {
          ks.secure = true;
          ks.tls!.writePlaintext(
            buildClientKeyMethod2({
              keyMethod: 2,
              preMaster: ks.preMaster,
              random1: ks.random1,
              random2: ks.random2,
              options: this.opts.options ?? CLIENT_OPTIONS_26,
              username: this.opts.username ?? null,
              password: this.opts.password ?? null,
              peerInfoText: this.opts.peerInfo ?? CLIENT_PEER_INFO_26,
            }),
          );
        },
        onPlaintext: (d) => this.onPlain(ks, d),
        onError: (e) => this.errors.push(`tls(${ks.keyId}): ${e.message}`),
      },
    );
  }

  private onPlain(ks: ClientKeyState, d: Buffer): void {
    ks.plain = Buffer.concat([ks.plain, d]);
    if (!ks.serverKm2) {
      const r = parseServerKeyMethod2(ks.plain);
      if (r === null) return;
      if (r instanceof ParseError) {
        this.errors.push(`bad server km2: ${r.message}`);
        return;
      }
      ks.serverKm2 = r.km2;
      // like the real client, a single read: the rest of the record is thrown away
      if (r.used !== ks.plain.length) this.errors.push('server km2 shared a TLS read with other data');
      ks.plain = Buffer.alloc(0);
      ks.ekmBlock = ks.tls!.exportKeyingMaterial(KEY_BLOCK_SIZE, EKM_LABEL);
      ks.prfBlock = prfKeyBlock({
        preMaster: ks.preMaster,
        clientRandom1: ks.random1,
        serverRandom1: r.km2.random1,
        clientRandom2: ks.random2,
        serverRandom2: r.km2.random2,
        clientSessionId: this.sid,
        serverSessionId: this.serverSid!,
      });
      this.currentKeyId = ks.keyId;
      return;
    }
    const { commands, rest } = splitCommands(ks.plain);
    ks.plain = Buffer.from(rest);
    this.commands.push(...commands);
  }

  private flush(): void {
    for (const ks of this.keys.values()) {
      for (const m of ks.rel.collectSends(this.nowMs)) {
        const ids = this.serverSid ? ks.rel.takeAcks(4, true) : [];
        this.emit({ opcode: m.opcode, keyId: ks.keyId, sessionId: this.sid, ack: { ids, remoteSessionId: ids.length ? this.serverSid : null }, messageId: m.messageId, payload: m.payload });
      }
      while (this.serverSid && ks.rel.hasPendingAcks()) {
        const ids = ks.rel.takeAcks(8, true);
        this.emit({ opcode: Opcode.P_ACK_V1, keyId: ks.keyId, sessionId: this.sid, ack: { ids, remoteSessionId: this.serverSid }, messageId: null, payload: Buffer.alloc(0) });
      }
    }
  }

  private emit(p: Parameters<typeof encodeControlPacket>[0]): void {
    const b = encodeControlPacket(p);
    this.sent.push(b);
    this.out(b);
  }
}
