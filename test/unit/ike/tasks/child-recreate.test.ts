// Child selection by traffic selectors (src/ike/tasks/child-recreate.ts childFits, RFC 7296 §2.9).
import { describe, expect, it } from 'vitest';
import { childFits } from '../../../../src/ike/tasks/child-recreate.js';
import { prefixToTs } from '../../../../src/ike/config/traffic-selector.js';
import { parseProposals } from '../../../../src/ike/config/proposal.js';
import { parsePrefix } from '../../../../src/common/ip.js';
import type { ChildConfig } from '../../../../src/ike/config/peer-config.js';

const ts = (...list: string[]) => list.map((t) => prefixToTs(parsePrefix(t)!));

function child(localTs: string[], remoteTs: string[]): ChildConfig {
  return {
    name: 'c', localTs: localTs.map((t) => parsePrefix(t)!), remoteTs: remoteTs.map((t) => parsePrefix(t)!),
    espProposals: parseProposals('aes128gcm16', 'esp'), lifetimeSec: 3600, replayWindow: 0,
  };
}

// the peer's TSi is its side (our remote), its TSr ours
describe('childFits', () => {
  const db = child(['10.2.1.0/24', '10.2.2.0/24'], ['10.1.1.0/24', '10.1.2.0/24']);

  it.each([
    ['the exact selectors', ts('10.1.1.0/24', '10.1.2.0/24'), ts('10.2.1.0/24', '10.2.2.0/24'), true],
    ['one subnet pair of several', ts('10.1.2.0/24'), ts('10.2.1.0/24'), true],
    ['wider selectors (narrowed)', ts('10.1.0.0/16'), ts('10.2.0.0/16'), true],
    ['0.0.0.0/0 both sides (narrowed to ours)', ts('0.0.0.0/0'), ts('0.0.0.0/0'), true],
    ['our side matches, the peer\'s not', ts('10.1.9.0/24'), ts('10.2.1.0/24'), false],
    ['the peer\'s side matches, ours not', ts('10.1.1.0/24'), ts('10.2.9.0/24'), false],
    ['sides swapped', ts('10.2.1.0/24'), ts('10.1.1.0/24'), false],
    ['another family', ts('fd00::/64'), ts('fd01::/64'), false],
  ] as const)('%s: %s', (_name, tsi, tsr, fits) => {
    expect(childFits(db, tsi, tsr)).toBe(fits);
  });

  it('a route-based child (0.0.0.0/0 === 0.0.0.0/0) fits any IPv4 selectors', () => {
    const wide = child(['0.0.0.0/0'], ['0.0.0.0/0']);
    expect(childFits(wide, ts('10.1.0.0/16'), ts('10.2.0.0/16'))).toBe(true);
    expect(childFits(wide, ts('0.0.0.0/0'), ts('0.0.0.0/0'))).toBe(true);
  });
});
