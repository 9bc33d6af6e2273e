// Self-test target (test/fuzz-ts/fuzz-ts.test.ts): the toy parser of tlv.ts with its 'hang' bug; the
// fuzzer must report it. The same target with the bug switched off must pass.
import { allowParseError } from '../targets/check.js';
import { parseTlv } from './tlv.js';

export const maxLen = 64;
// record headers that lead to the bugs (libFuzzer would learn them from its comparison tracing)
export const dictionary = [Buffer.from([0x17, 0x01]), Buffer.from([0x2a, 0x00]), Buffer.from([0x33, 0x01])];

export function fuzz(data: Buffer): void {
  allowParseError(() => parseTlv(data, process.env.FUZZ_TS_SELFTEST_FIXED ? [] : ['hang']));
}
