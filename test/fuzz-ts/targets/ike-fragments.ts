// Fuzz target: IKEv2 fragments (RFC 7383 SKF) as an authenticated peer could send them. The input
// is a list of records [u16 length][body]; each body is byte 0 = Next Payload, bytes 1-2 Fragment
// Number, 3-4 Total Fragments, then the plaintext. Each record becomes one SKF datagram, decoded by
// decodeFragment (pass-through cipher, null-sk.ts) and fed to one FragmentReassembler
// (src/ike/wire/fragments.ts), whose completed message is checked like decodeMessage's.
import { decodeFragment, FragmentReassembler } from '../../../src/ike/wire/fragments.js';
import { invariant } from './check.js';
import { IKE_HEADER_SIZE, ikeHeader, NULL_ICV_LEN, NULL_IV_LEN, nullSk } from './null-sk.js';

export const maxLen = 8192;

const IKE_AUTH = 35;
const SKF = 53;
const SKF_HEADER = 8;

export function fuzz(data: Buffer): void {
  const reasm = new FragmentReassembler();
  let off = 0;
  let messageId = 1;
  while (off + 2 <= data.length) {
    const len = data.readUInt16BE(off);
    off += 2;
    const body = data.subarray(off, off + len);
    off += len;
    if (body.length < 5) {
      messageId++; // a short record switches to the next message ID
      continue;
    }
    const plain = body.subarray(5);
    const total = IKE_HEADER_SIZE + SKF_HEADER + NULL_IV_LEN + plain.length + NULL_ICV_LEN;
    const dg = Buffer.alloc(total);
    ikeHeader(IKE_AUTH, SKF, messageId, total).copy(dg, 0);
    dg[IKE_HEADER_SIZE] = body[0]!;
    dg.writeUInt16BE(total - IKE_HEADER_SIZE, IKE_HEADER_SIZE + 2);
    body.copy(dg, IKE_HEADER_SIZE + 4, 1, 5);
    plain.copy(dg, IKE_HEADER_SIZE + SKF_HEADER + NULL_IV_LEN);
    const f = decodeFragment(dg, nullSk);
    if (!f.ok) {
      // decodeFragment turns a thrown non-ParseError into String(e): "TypeError: ..." and the like
      invariant(!/^[A-Za-z]*Error\b/.test(f.detail), `decodeFragment: ${f.detail}`);
      continue;
    }
    const m = reasm.add(f);
    if (m && !m.ok) invariant(!m.detail.startsWith('decoder error:'), `reassembled: ${m.detail}`);
  }
}
