// What every fuzz target asserts (see test/fuzz-ts/engine.mjs for the contract): a hostile input
// may only end in the error the API documents for bad input (a ParseError returned or thrown, a
// ConfigError for config text), never in a TypeError, RangeError or any other throw. A target
// throws only for a finding; these helpers turn "expected" failures into normal returns.
import { ConfigError, ParseError, VpnError } from '../../../src/common/errors.js';

/** Thrown by a target for a broken invariant that is not an exception of the code under test. */
export class FuzzFinding extends Error {
  override name = 'FuzzFinding';
}

export function invariant(ok: boolean, message: string): asserts ok {
  if (!ok) throw new FuzzFinding(message);
}

/** Runs `fn`; a thrown ParseError is the documented outcome for bad input, anything else escapes. */
export function allowParseError<T>(fn: () => T): T | ParseError {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ParseError) return e;
    throw e;
  }
}

/** Runs `fn`; only a ConfigError may escape it. */
export function allowConfigError(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return;
    throw e;
  }
}

/** A VpnError of a kind the entry point does not document is a finding too. */
export function isVpnError(e: unknown): e is VpnError {
  return e instanceof VpnError;
}
