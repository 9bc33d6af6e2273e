import { parseProposals } from '../../ike/config/proposal.js';
import { ConfigError, VpnError } from '../../common/errors.js';

/** Proposals as the IKE config parser returns them. */
export type ParsedProposals = ReturnType<typeof parseProposals>;

/**
 * Validates a proposal string ("aes128gcm16-prfsha256-x25519,aes256-sha256-modp2048") with the IKE
 * config parser; any failure becomes a ConfigError that names `path`.
 */
export function checkProposals(text: string, kind: 'ike' | 'esp', path: string): ParsedProposals {
  try {
    return parseProposals(text, kind, path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const why = e instanceof VpnError || e instanceof Error ? e.message : String(e);
    throw new ConfigError(path, text, `a ${kind} proposal list (${why})`);
  }
}
