// Bounds checks shared by the payload codecs. Every codec reads only after one of these passed,
// and reports the absolute byte offset in the message so a dropped packet can be explained.
import { ParseError } from '../../common/errors.js';

/** Throws ParseError unless `body` has at least `off + n` bytes. `at` is body's offset in the message. */
export function need(what: string, body: Buffer, at: number, off: number, n: number): void {
  if (off + n > body.length) {
    throw new ParseError(what, at + off, `need ${n} bytes, have ${Math.max(0, body.length - off)}`);
  }
}

export function fail(what: string, at: number, message: string): never {
  throw new ParseError(what, at, message);
}
