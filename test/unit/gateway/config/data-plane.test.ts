import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../src/gateway/config/index.js';
import { configErrorOf, gatewayWith } from '../../../helpers/config.js';
import { AUTO_QUEUES, resolveQueues } from '../../../../src/dataplane/multi-queue.js';

const withDataPlane = (yaml: string | null): string => gatewayWith('dataPlane', yaml);
const errorOf = configErrorOf;

describe('gateway.dataPlane.queues', () => {
  it('defaults to auto, which runs the measured default of one queue', () => {
    const c = parseConfig(withDataPlane(null), '/etc/vpcgw/t.yaml');
    expect(c.gateway.dataPlane).toEqual({ queues: 'auto', rxModerationUs: 200 });
    expect(resolveQueues(c.gateway.dataPlane.queues)).toBe(AUTO_QUEUES);
    expect(AUTO_QUEUES).toBe(1);
    expect(parseConfig(withDataPlane('{}'), '/etc/vpcgw/t.yaml').gateway.dataPlane.queues).toBe('auto');
  });

  it('accepts auto and 1..16', () => {
    expect(parseConfig(withDataPlane('{ queues: auto }'), 't.yaml').gateway.dataPlane.queues).toBe('auto');
    expect(parseConfig(withDataPlane('{ queues: 2 }'), 't.yaml').gateway.dataPlane.queues).toBe(2);
    expect(parseConfig(withDataPlane('{ queues: 16 }'), 't.yaml').gateway.dataPlane.queues).toBe(16);
    expect(resolveQueues(2)).toBe(2);
  });

  it.each([['0'], ['17'], ['1.5'], ['"2"'], ['-1'], ['max'], ['[2]']])('rejects queues: %s, naming the path', (v) => {
    const e = errorOf(withDataPlane(`{ queues: ${v} }`));
    expect(e.path).toBe('gateway.dataPlane.queues');
    expect(e.message).toMatch(/"auto" or an integer from 1 to 16/);
  });

  it('rejects unknown keys under dataPlane', () => {
    expect(errorOf(withDataPlane('{ queue: 2 }')).path).toBe('gateway.dataPlane.queue');
    expect(errorOf(withDataPlane('4')).path).toBe('gateway.dataPlane');
  });
});

describe('gateway.dataPlane.rxModerationUs', () => {
  it('defaults to 200 µs and accepts 0 (off) up to 10,000', () => {
    expect(parseConfig(withDataPlane(null), 't.yaml').gateway.dataPlane.rxModerationUs).toBe(200);
    expect(parseConfig(withDataPlane('{ rxModerationUs: 0 }'), 't.yaml').gateway.dataPlane.rxModerationUs).toBe(0);
    expect(parseConfig(withDataPlane('{ rxModerationUs: 10000 }'), 't.yaml').gateway.dataPlane.rxModerationUs).toBe(10000);
  });

  it.each([['-1'], ['10001'], ['1.5'], ['"200"']])('rejects rxModerationUs: %s, naming the path and value', (v) => {
    const e = errorOf(withDataPlane(`{ rxModerationUs: ${v} }`));
    expect(e.path).toBe('gateway.dataPlane.rxModerationUs');
    expect(e.message).toMatch(/0 to 10000|0\.\.10000|from 0/);
  });
});
