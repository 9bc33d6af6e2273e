/**
 * OpenVPN over TCP: every packet is preceded by a u16 length (of the packet only, not counting
 * the 2 bytes). OpenVPN `socket.c` stream_buf.
 *
 *   +--------+--------+-------------------- ... -----+
 *   | len (u16, BE)   | packet (len bytes)            |
 *   +--------+--------+-------------------- ... -----+
 *
 * `TcpDeframer` is an incremental parser with explicit state. Chunks from the socket go in through
 * `push(chunk)`; each complete frame is handed to `onFrame(buf, off, len)`. A frame wholly inside one
 * chunk is delivered as a view of that chunk (no copy); only a frame that crosses chunk boundaries is
 * copied, into a buffer of its own. Views alias the caller's chunk: copy before keeping one if the caller
 * reuses its chunks (node:net does not). On the native data plane the shell runs the C++ twin of
 * this parser instead (src/native/core/ovpn-tcp.cc, through SslOffload.sslTcpChunk).
 */
import { VpnError } from '../../common/errors.js';

export const TCP_LENGTH_SIZE = 2;
export const TCP_MAX_FRAME = 0xffff;

const STATE_LEN = 0; // reading the 2-byte length (possibly split)
const STATE_BODY = 1; // assembling a body that crossed a chunk boundary

const EMPTY = Buffer.alloc(0);

export type FrameHandler = (buf: Buffer, off: number, len: number) => void;

export class TcpDeframer {
  private state = STATE_LEN;
  /** first length byte when the length itself was split across chunks, else -1 */
  private lenHi = -1;
  private need = 0;
  private have = 0;
  private asm: Buffer = EMPTY;
  /** frames whose length is 0 or above `maxFrame` put the parser into a failed state */
  private failedReason: string | null = null;
  framesIn = 0;
  copiedFrames = 0;

  constructor(
    private readonly onFrame: FrameHandler,
    private readonly maxFrame = TCP_MAX_FRAME,
  ) {}

  /** Non-null once the stream carried an impossible length; the caller should close the connection. */
  get failed(): string | null {
    return this.failedReason;
  }

  /** Feeds one chunk. Returns false if the stream is (now) broken. */
  push(chunk: Buffer): boolean {
    if (this.failedReason) return false;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.state === STATE_BODY) {
        const take = Math.min(this.need - this.have, n - i);
        chunk.copy(this.asm, this.have, i, i + take);
        this.have += take;
        i += take;
        if (this.have === this.need) {
          this.state = STATE_LEN;
          this.framesIn++;
          this.copiedFrames++;
          const frame = this.asm;
          this.asm = EMPTY;
          this.onFrame(frame, 0, this.need);
          if (this.failedReason) return false;
        }
        continue;
      }
      // STATE_LEN
      let len: number;
      if (this.lenHi >= 0) {
        len = (this.lenHi << 8) | chunk[i]!;
        this.lenHi = -1;
        i += 1;
      } else if (n - i >= 2) {
        len = (chunk[i]! << 8) | chunk[i + 1]!;
        i += 2;
      } else {
        this.lenHi = chunk[i]!;
        i += 1;
        break;
      }
      if (len === 0 || len > this.maxFrame) {
        this.failedReason = `bad frame length ${len}`;
        return false;
      }
      if (n - i >= len) {
        // whole frame in this chunk: deliver a view, no copy
        this.framesIn++;
        this.onFrame(chunk, i, len);
        i += len;
        if (this.failedReason) return false;
      } else {
        this.state = STATE_BODY;
        this.need = len;
        this.have = 0;
        this.asm = Buffer.allocUnsafe(len);
      }
    }
    return true;
  }

  /** Marks the stream broken (e.g. the consumer rejected a frame). */
  fail(reason: string): void {
    this.failedReason = reason;
  }

  /** Bytes of an incomplete frame currently buffered (0 when between frames). */
  get pendingBytes(): number {
    return (this.state === STATE_BODY ? TCP_LENGTH_SIZE + this.have : 0) + (this.lenHi >= 0 ? 1 : 0);
  }
}

/** Writes the 2-byte length for a packet of `len` bytes at buf[off]; returns off + 2. */
export function writeTcpLength(buf: Buffer, off: number, len: number): number {
  buf[off] = (len >>> 8) & 0xff;
  buf[off + 1] = len & 0xff;
  return off + TCP_LENGTH_SIZE;
}

/** A framed copy of one packet (control-plane sends). */
export function frameForTcp(packet: Buffer): Buffer {
  if (packet.length === 0 || packet.length > TCP_MAX_FRAME) throw new VpnError('ERR_INVALID_ARG', `packet length ${packet.length} cannot be framed`);
  const out = Buffer.allocUnsafe(packet.length + TCP_LENGTH_SIZE);
  writeTcpLength(out, 0, packet.length);
  packet.copy(out, TCP_LENGTH_SIZE);
  return out;
}
