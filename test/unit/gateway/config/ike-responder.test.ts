import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRANSMIT } from '../../../../src/ike/config/peer-config.js';
import { parseConfig } from '../../../../src/gateway/config/index.js';
import { configErrorOf, gatewayWith } from '../../../helpers/config.js';
import { DEFAULT_HALF_OPEN_TIMEOUT_SEC, DEFAULT_INIT_LIMITS } from '../../../../src/ike/init-guard.js';

const withIke = (yaml: string | null): string => gatewayWith('ike', yaml);
const errorOf = configErrorOf;

describe('gateway.ike (IKE_SA_INIT flood protection)', () => {
  it('defaults to the IKE core defaults', () => {
    const c = parseConfig(withIke(null), 't.yaml');
    expect(c.gateway.ike).toEqual({ ...DEFAULT_INIT_LIMITS, halfOpenTimeoutSec: DEFAULT_HALF_OPEN_TIMEOUT_SEC, retransmit: DEFAULT_RETRANSMIT });
    expect(parseConfig(withIke('{}'), 't.yaml').gateway.ike).toEqual(c.gateway.ike);
  });

  it('reads every threshold and the timeout as a duration', () => {
    const c = parseConfig(withIke('{ cookieThreshold: 0, cookieThresholdPerSource: 2, halfOpenPerSource: 8, halfOpenLimit: 200, halfOpenTimeout: 10s, retransmitTimeout: 2s, retransmitTries: 3 }'), 't.yaml');
    expect(c.gateway.ike).toEqual({
      cookieThreshold: 0, cookieThresholdPerSource: 2, halfOpenPerSource: 8, halfOpenLimit: 200, halfOpenTimeoutSec: 10,
      retransmit: { timeoutMs: 2000, tries: 3, base: DEFAULT_RETRANSMIT.base },
    });
  });

  it.each([
    ['{ cookieThreshold: -1 }', 'gateway.ike.cookieThreshold'],
    ['{ halfOpenPerSource: 0 }', 'gateway.ike.halfOpenPerSource'],
    ['{ halfOpenLimit: 1.5 }', 'gateway.ike.halfOpenLimit'],
    ['{ halfOpenTimeout: 0s }', 'gateway.ike.halfOpenTimeout'],
    ['{ halfOpenTimeout: 2h }', 'gateway.ike.halfOpenTimeout'],
    ['{ cookieTreshold: 3 }', 'gateway.ike.cookieTreshold'],
    ['{ retransmitTimeout: 0s }', 'gateway.ike.retransmitTimeout'],
    ['{ retransmitTries: 11 }', 'gateway.ike.retransmitTries'],
  ])('rejects %s, naming the field', (v, path) => {
    expect(errorOf(withIke(v)).path).toBe(path);
  });
});
