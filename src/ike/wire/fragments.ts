// RFC 7383 IKEv2 message fragmentation: split an SK-protected message into SKF messages, decode
// one fragment, and reassemble a set.
//
// Sending: the inner payload chain is cut into chunks; every fragment is a full IKE message with
// the same header fields (its own Length), one SKF payload, and its own IV/ICV.
// Receiving:
// 1. decodeFragment() verifies and decrypts one datagram (state-free);
// 2. FragmentReassembler.add() collects fragments of one message ID; a larger Total restarts the
//    set, a smaller one drops the fragment (§2.6.1); limits bound memory (strongSwan: 255
//    fragments, 10000 bytes);
// 3. when complete, the plaintexts are joined in fragment order and parsed as one payload chain
//    starting with fragment 1's Next Payload.
import { IKE_HEADER_SIZE, PayloadType } from './constants.js';
import type { IkeHeader, Payload, UnknownPayload } from './types.js';
import { ParseError } from '../../common/errors.js';
import { decodeHeader, encodeHeader } from './header.js';
import { chainLength, decodeInnerPayloads, encodeChain, type DecodeResult, type SkCrypto } from './message.js';
import * as skp from './payloads/sk.js';
import { SKF_HEADER_SIZE, decodeFields, encodeFields } from './payloads/skf.js';

export const MAX_FRAGMENTS = 255;
export const MAX_REASSEMBLED_BYTES = 10000;

export type FragmentResult =
  | {
      ok: true;
      header: IkeHeader;
      fragmentNumber: number;
      totalFragments: number;
      /** first inner payload type (meaningful in fragment 1, 0 in the others) */
      nextPayload: number;
      /** decrypted content of this fragment (own copy) */
      plaintext: Buffer;
    }
  | { ok: false; reason: 'malformed' | 'integrity' | 'version'; detail: string; header?: IkeHeader };

/** Verifies and decrypts one SKF datagram. Never throws, never modifies `datagram`. */
export function decodeFragment(datagram: Buffer, sk: SkCrypto): FragmentResult {
  const buf = Buffer.from(datagram); // private copy: decrypted in place, never aliases the caller's buffer
  const header = decodeHeader(buf);
  if (!header) return { ok: false, reason: 'malformed', detail: `bad IKE header (${buf.length} bytes)` };
  try {
    if (header.version >> 4 !== 2) return { ok: false, reason: 'version', detail: `IKE major version ${header.version >> 4}`, header };
    if (header.length !== buf.length) return { ok: false, reason: 'malformed', detail: 'header length != datagram', header };
    if (header.nextPayload !== PayloadType.SKF) return { ok: false, reason: 'malformed', detail: 'first payload is not SKF', header };
    const off = IKE_HEADER_SIZE;
    if (buf.length < off + SKF_HEADER_SIZE) return { ok: false, reason: 'malformed', detail: 'truncated SKF', header };
    const len = buf.readUInt16BE(off + 2);
    if (off + len !== buf.length) return { ok: false, reason: 'malformed', detail: 'SKF must be the only payload', header };
    const f = decodeFields(buf, off);
    const nextPayload = buf[off]!;
    const r = skp.open(sk.dec, buf, 0, off + SKF_HEADER_SIZE, buf.length);
    if (!r.ok) return { ok: false, reason: r.reason, detail: r.detail, header };
    return {
      ok: true,
      header,
      fragmentNumber: f.fragmentNumber,
      totalFragments: f.totalFragments,
      nextPayload,
      plaintext: r.inner,
    };
  } catch (e) {
    return { ok: false, reason: 'malformed', detail: e instanceof ParseError ? e.message : String(e), header };
  }
}

/**
 * Encodes `payloads` as SKF fragments whose IKE messages are at most `maxMessageLen` bytes
 * (the UDP payload without the non-ESP marker). Returns one buffer per fragment, in order.
 * Throws RangeError if more than 255 fragments would be needed or maxMessageLen is too small.
 */
export function encodeFragments(
  header: { spiI: Buffer; spiR: Buffer; exchangeType: number; flags: number; messageId: number },
  payloads: ReadonlyArray<Payload | UnknownPayload>,
  sk: SkCrypto,
  maxMessageLen: number,
): Buffer[] {
  const enc = sk.enc;
  const inner = Buffer.alloc(chainLength(payloads));
  encodeChain(payloads, inner, 0);
  const bl = Math.max(1, enc.blockLen);
  const room = maxMessageLen - IKE_HEADER_SIZE - SKF_HEADER_SIZE - enc.ivLen - enc.icvLen;
  const chunkMax = Math.floor(room / bl) * bl - 1; // chunk + pad length byte fills whole blocks
  if (chunkMax < 1) throw new RangeError(`fragment size ${maxMessageLen} leaves no room for data`);
  const total = Math.max(1, Math.ceil(inner.length / chunkMax));
  if (total > MAX_FRAGMENTS) throw new RangeError(`${total} fragments needed, at most ${MAX_FRAGMENTS}`);
  const first = payloads.length > 0 ? payloads[0]!.type : PayloadType.NONE;
  const out: Buffer[] = [];
  for (let i = 0; i < total; i++) {
    const chunk = inner.subarray(i * chunkMax, Math.min(inner.length, (i + 1) * chunkMax));
    const skfLen = SKF_HEADER_SIZE + skp.bodyLength(enc, chunk.length);
    const buf = Buffer.alloc(IKE_HEADER_SIZE + skfLen);
    encodeHeader(header, PayloadType.SKF, buf.length, buf, 0);
    const off = IKE_HEADER_SIZE;
    buf[off] = i === 0 ? first : PayloadType.NONE;
    buf.writeUInt16BE(skfLen, off + 2);
    encodeFields({ fragmentNumber: i + 1, totalFragments: total }, buf, off);
    const ivOff = off + SKF_HEADER_SIZE;
    chunk.copy(buf, ivOff + enc.ivLen);
    skp.seal(enc, buf, 0, ivOff, chunk.length);
    out.push(buf);
  }
  return out;
}

/**
 * Collects the fragments of one message (RFC 7383 §2.6). Feed it the results of decodeFragment
 * for one IKE SA and direction; add() returns null until the set is complete, then the decoded
 * message. A fragment for another message ID starts a new set.
 */
export class FragmentReassembler {
  private messageId = -1;
  private total = 0;
  private parts: Array<Buffer | undefined> = [];
  private first = 0;
  private bytes = 0;
  private header: IkeHeader | null = null;

  constructor(
    private readonly maxFragments = MAX_FRAGMENTS,
    private readonly maxBytes = MAX_REASSEMBLED_BYTES,
  ) {}

  reset(): void {
    this.messageId = -1;
    this.total = 0;
    this.parts = [];
    this.first = 0;
    this.bytes = 0;
    this.header = null;
  }

  /** Number of distinct fragments held for the current message. */
  get held(): number {
    return this.parts.filter((p) => p !== undefined).length;
  }

  add(f: Extract<FragmentResult, { ok: true }>): DecodeResult | null {
    if (f.totalFragments > this.maxFragments) return null;
    if (f.header.messageId !== this.messageId || f.totalFragments > this.total) {
      // new message, or a larger Total: drop what we have and start again
      this.reset();
      this.messageId = f.header.messageId;
      this.total = f.totalFragments;
      this.parts = new Array(f.totalFragments).fill(undefined);
    } else if (f.totalFragments < this.total) {
      return null; // §2.6.1: stale fragment of an older, smaller set
    }
    const i = f.fragmentNumber - 1;
    if (this.parts[i] !== undefined) return null; // duplicate
    if (this.bytes + f.plaintext.length > this.maxBytes) {
      this.reset();
      return null;
    }
    this.parts[i] = f.plaintext;
    this.bytes += f.plaintext.length;
    if (i === 0) {
      this.first = f.nextPayload;
      this.header = f.header;
    }
    if (this.parts.some((p) => p === undefined)) return null;
    const whole = Buffer.concat(this.parts as Buffer[]);
    const header = { ...(this.header ?? f.header), length: IKE_HEADER_SIZE + whole.length, nextPayload: PayloadType.SKF };
    const first = this.first;
    this.reset();
    return decodeInnerPayloads(header, first, whole);
  }
}
