// Fuzz target: OpenVPN key-method 2 (src/ssl/control/key-method.ts): the client's and the server's
// km2 message as it comes out of the TLS tunnel, then what the server does with the text inside
// (parsePeerInfo, ivProto, chooseCipher) and the NUL-separated control commands (splitCommands).
// parse* returns null (need more bytes) or a ParseError for bad input, never throws.
import { ParseError } from '../../../src/common/errors.js';
import { chooseCipher, ivProto, parseClientKeyMethod2, parsePeerInfo, parseServerKeyMethod2, splitCommands } from '../../../src/ssl/control/key-method.js';
import { allowParseError, invariant } from './check.js';

export const maxLen = 16384;
export const dictionary = ['IV_PROTO=', 'IV_CIPHERS=', 'IV_VER=2.6.14\n', 'IV_NCP=2\n', 'AES-256-GCM:CHACHA20-POLY1305', '\0', '\n', 'V4,dev-type tun,link-mtu 1559'];

export function fuzz(data: Buffer): void {
  const c = allowParseError(() => parseClientKeyMethod2(data));
  if (c !== null && !(c instanceof ParseError)) {
    invariant(c.used <= data.length, `km2 used ${c.used} of ${data.length} bytes`);
    const info = parsePeerInfo(c.km2.peerInfoText);
    ivProto(info);
    chooseCipher(['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305'], info);
  }
  const s = allowParseError(() => parseServerKeyMethod2(data));
  if (s !== null && !(s instanceof ParseError)) invariant(s.used <= data.length, `server km2 used ${s.used} of ${data.length} bytes`);
  const { commands, rest } = splitCommands(data);
  invariant(rest.length <= data.length && commands.length <= data.length, 'splitCommands output larger than input');
  parsePeerInfo(data.toString('utf8'));
}
