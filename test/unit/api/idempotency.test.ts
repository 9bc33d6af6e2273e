// The X-Client-Token cache on its own, with a fixed clock: replay, mismatch, window and bound.
import { describe, expect, it } from 'vitest';
import { IdempotencyCache, type StoredResponse } from '../../../src/api/idempotency.js';

const created = (id: string): StoredResponse => ({ status: 201, headers: { location: `/v1/x/${id}` }, body: `{"id":"${id}"}` });

describe('IdempotencyCache', () => {
  it('replays within the window, runs again after it', async () => {
    let now = 1000;
    let runs = 0;
    const c = new IdempotencyCache(10, 60_000, () => now);
    const exec = async () => created(`r${++runs}`);
    expect(await c.run('t', 'POST', '/v1/x', { a: 1 }, exec)).toEqual({ response: created('r1'), replayed: false });
    now += 59_999;
    expect(await c.run('t', 'POST', '/v1/x', { a: 1 }, exec)).toEqual({ response: created('r1'), replayed: true });
    now += 1;
    expect(await c.run('t', 'POST', '/v1/x', { a: 1 }, exec)).toEqual({ response: created('r2'), replayed: false });
  });

  it('refuses the token with another body or path', async () => {
    const c = new IdempotencyCache();
    await c.run('t', 'POST', '/v1/x', { a: 1 }, async () => created('r1'));
    await expect(c.run('t', 'POST', '/v1/x', { a: 2 }, async () => created('r2'))).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    await expect(c.run('t', 'POST', '/v1/y', { a: 1 }, async () => created('r2'))).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
  });

  it('forgets failures, so the token can be used again', async () => {
    const c = new IdempotencyCache();
    await expect(c.run('t', 'POST', '/v1/x', {}, async () => {
      throw new Error('refused');
    })).rejects.toThrow('refused');
    expect(c.size).toBe(0);
    expect((await c.run('t', 'POST', '/v1/x', {}, async () => created('r1'))).replayed).toBe(false);
  });

  it('holds at most maxEntries tokens, dropping the oldest', async () => {
    const c = new IdempotencyCache(3, 60_000, () => 0);
    for (const t of ['a', 'b', 'c', 'd']) await c.run(t, 'POST', '/v1/x', {}, async () => created(t));
    expect(c.size).toBe(3);
    expect((await c.run('a', 'POST', '/v1/x', {}, async () => created('a2'))).response).toEqual(created('a2'));
    expect((await c.run('d', 'POST', '/v1/x', {}, async () => created('d2'))).replayed).toBe(true);
  });

  it('refuses malformed tokens', async () => {
    const c = new IdempotencyCache();
    for (const t of ['', 'x'.repeat(65), 'with space', 'ümlaut']) {
      await expect(c.run(t, 'POST', '/v1/x', {}, async () => created('r'))).rejects.toMatchObject({ code: 'ERR_BAD_REQUEST' });
    }
  });
});
