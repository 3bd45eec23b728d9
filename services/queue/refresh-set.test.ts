// The refresh set on real Redis: debounce, one claim per instance at a time, tokens, lapsed
// claims, retries, and replicas claiming side by side. Each test has its own prefix and removes
// its keys afterwards.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { InstanceRef } from '../model.ts';
import { refreshId } from '../runtime/jobs.ts';
import { createRedis } from './redis.ts';
import { RefreshSet } from './refresh-set.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Long enough that nothing lapses or comes due by itself during a test. */
const LONG = 600_000;

let prefix: string;
let a: Redis;
let b: Redis;

beforeEach(() => {
  prefix = `{vmstest-${randomUUID().slice(0, 8)}}`;
  a = createRedis(REDIS_URL, { role: 'worker' });
  b = createRedis(REDIS_URL, { role: 'worker' });
});

afterEach(async () => {
  const keys = await a.keys(`${prefix}*`);
  if (keys.length > 0) await a.del(...keys);
  await Promise.all([a.quit(), b.quit()]);
});

function ref(id: string, region = 'eu-west-1'): InstanceRef {
  return { provider: 'aws', account: '123456789012', region, id };
}

function item(r: InstanceRef): { id: string; ref: InstanceRef } {
  return { id: refreshId(r), ref: r };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('RefreshSet', () => {
  it('holds a reference until its debounce has passed, and says when it is due', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1'))], LONG);
    const early = await set.claim(10, LONG);
    expect(early.refs).toEqual([]);
    expect(early.nextDueInMs).toBeGreaterThan(0);
    expect(early.nextDueInMs).toBeLessThanOrEqual(LONG);
    expect(await set.counts()).toEqual({ waiting: 0, delayed: 1, active: 0 });
  });

  it('keeps one member per instance: the newest reference and the newest due time win', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1', 'eu-west-1'))], LONG);
    await set.request([item(ref('i-1', 'eu-west-2'))], 0);
    const claim = await set.claim(10, LONG);
    expect(claim.refs).toEqual([{ id: refreshId(ref('i-1')), ref: ref('i-1', 'eu-west-2'), attemptsMade: 0 }]);
    expect(claim.nextDueInMs).toBeUndefined();
  });

  it('claims at most the number asked, the earliest due first', async () => {
    const set = new RefreshSet(a, prefix);
    for (let i = 0; i < 5; i++) await set.request([item(ref(`i-${i}`))], 0);
    const first = await set.claim(3, LONG);
    expect(first.refs.map((c) => c.ref.id)).toEqual(['i-0', 'i-1', 'i-2']);
    const second = await set.claim(3, LONG);
    expect(second.refs.map((c) => c.ref.id)).toEqual(['i-3', 'i-4']);
    expect(await set.counts()).toEqual({ waiting: 0, delayed: 0, active: 5 });
  });

  it('runs one refresh of an instance at a time: an event during its claim waits behind it, and is kept when the claim ends', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1'))], 0);
    const running = await set.claim(10, LONG);
    expect(running.refs).toHaveLength(1);
    await set.request([item(ref('i-1'))], 0);
    expect((await set.claim(10, LONG)).refs).toEqual([]);
    expect(await set.finish(running.token, [refreshId(ref('i-1'))])).toBe(1);
    const next = await set.claim(10, LONG);
    expect(next.refs.map((c) => c.ref.id)).toEqual(['i-1']);
    await set.finish(next.token, [refreshId(ref('i-1'))]);
    expect(await set.counts()).toEqual({ waiting: 0, delayed: 0, active: 0 });
    expect(await a.keys(`${prefix}*`)).toEqual([]);
  });

  it('instances being refreshed, with events waiting behind them, do not hide one that is due', async () => {
    const set = new RefreshSet(a, prefix);
    const held = Array.from({ length: 250 }, (_, i) => ref(`i-${i}`));
    await set.request(held.map(item), 0);
    const claims = [await set.claim(100, LONG), await set.claim(100, LONG), await set.claim(100, LONG)];
    expect(claims.map((c) => c.refs.length)).toEqual([100, 100, 50]);
    await set.request(held.map(item), 0);
    await set.request([item(ref('i-new'))], 0);
    expect((await set.claim(10, LONG)).refs.map((c) => c.ref.id)).toEqual(['i-new']);
    expect(await set.counts()).toEqual({ waiting: 0, delayed: 250, active: 251 });
    // Each waits for its own claim to end.
    await set.finish(claims[0]!.token, claims[0]!.refs.map((c) => c.id));
    expect((await set.claim(500, LONG)).refs.map((c) => c.ref.id)).toEqual(claims[0]!.refs.map((c) => c.ref.id).toSorted());
  });

  it('a claim sent again with its token (the answer was lost on a reconnect) gets what it took, and takes nothing more', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1')), item(ref('i-2'))], 0);
    const token = randomUUID();
    const keys = ['due', 'refs', 'attempts', 'claimed', 'tokens', 'behind'].map((k) => `${prefix}:refresh-${k}`);
    const claimAs = (t: string) => (a as unknown as { vmsRefreshClaim: (...args: string[]) => Promise<unknown[]> }).vmsRefreshClaim(...keys, `${prefix}:refresh-claim:${t}`, '10', String(LONG), t);
    const first = await claimAs(token);
    await set.request([item(ref('i-3'))], 0);
    const again = await claimAs(token);
    expect(again.slice(0, -1)).toHaveLength(6);
    expect(new Set(again.filter((_, i) => i % 3 === 0 && i < again.length - 1))).toEqual(new Set(first.filter((_, i) => i % 3 === 0 && i < first.length - 1)));
    expect((await set.claim(10, LONG)).refs.map((c) => c.ref.id)).toEqual(['i-3']);
  });

  it('the refresh of a lapsed claim is due at once, even when an event waits behind it', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1'))], 0);
    await set.claim(10, 1);
    await set.request([item(ref('i-1'))], LONG);
    await sleep(20);
    expect((await set.claim(10, LONG)).refs.map((c) => c.ref.id)).toEqual(['i-1']);
  });

  it('ends a claim only with its own token', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1'))], 0);
    const claim = await set.claim(10, LONG);
    expect(await set.finish(randomUUID(), [refreshId(ref('i-1'))])).toBe(0);
    expect(await set.retry(randomUUID(), [refreshId(ref('i-1'))], 0)).toBe(0);
    expect(await set.counts()).toEqual({ waiting: 0, delayed: 0, active: 1 });
    expect(await set.finish(claim.token, [refreshId(ref('i-1'))])).toBe(1);
  });

  it('gives the references of a lapsed claim (its replica died) to the next claim, attempts unchanged', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1')), item(ref('i-2'))], 0);
    const dead = await set.claim(10, 1);
    expect(dead.refs).toHaveLength(2);
    await sleep(20);
    const again = await new RefreshSet(b, prefix).claim(10, LONG);
    expect(again.refs.map((c) => [c.ref.id, c.attemptsMade])).toEqual([
      ['i-1', 0],
      ['i-2', 0],
    ]);
    // The dead claim's token no longer ends anything.
    expect(await set.finish(dead.token, [refreshId(ref('i-1'))])).toBe(0);
    expect(await set.counts()).toEqual({ waiting: 0, delayed: 0, active: 2 });
  });

  it('a renewed claim does not lapse; a renewal with another token extends nothing', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1')), item(ref('i-2'))], 0);
    const claim = await set.claim(10, 200);
    const ids = claim.refs.map((c) => c.id);
    expect(await set.renew(randomUUID(), ids, LONG)).toBe(0);
    expect(await set.renew(claim.token, [ids[0]!], LONG)).toBe(1);
    await sleep(250);
    // i-2's claim lapsed and is due again; i-1's holds.
    const next = await new RefreshSet(b, prefix).claim(10, LONG);
    expect(next.refs.map((c) => c.ref.id)).toEqual(['i-2']);
    expect(await set.finish(claim.token, ids)).toBe(1);
  });

  it('counts attempts across retries, and a new event starts them again', async () => {
    const set = new RefreshSet(a, prefix);
    const id = refreshId(ref('i-1'));
    await set.request([item(ref('i-1'))], 0);
    let claim = await set.claim(10, LONG);
    for (let attempt = 1; attempt <= 3; attempt++) {
      expect(await set.retry(claim.token, [id], 0)).toBe(1);
      claim = await set.claim(10, LONG);
      expect(claim.refs.map((c) => c.attemptsMade)).toEqual([attempt]);
    }
    await set.retry(claim.token, [id], LONG);
    expect(await set.counts()).toEqual({ waiting: 0, delayed: 1, active: 0 });
    expect((await set.claim(10, LONG)).refs).toEqual([]);
    await set.request([item(ref('i-1'))], 0);
    expect((await set.claim(10, LONG)).refs.map((c) => c.attemptsMade)).toEqual([0]);
  });

  it('keeps the due time of an event that came during a failed claim rather than the retry delay', async () => {
    const set = new RefreshSet(a, prefix);
    const id = refreshId(ref('i-1'));
    await set.request([item(ref('i-1'))], 0);
    const claim = await set.claim(10, LONG);
    await set.request([item(ref('i-1'))], 0);
    await set.retry(claim.token, [id], LONG);
    const next = await set.claim(10, LONG);
    expect(next.refs.map((c) => [c.ref.id, c.attemptsMade])).toEqual([['i-1', 0]]);
  });

  it('drops a member whose stored reference cannot be read, and says which', async () => {
    const set = new RefreshSet(a, prefix);
    await set.request([item(ref('i-1'))], 0);
    await a.zadd(`${prefix}:refresh-due`, 0, 'garbage');
    await a.hset(`${prefix}:refresh-refs`, 'garbage', '{not json');
    const claim = await set.claim(10, LONG);
    expect(claim.refs.map((c) => c.ref.id)).toEqual(['i-1']);
    expect(claim.unreadable).toEqual(['garbage']);
    expect(await a.hexists(`${prefix}:refresh-refs`, 'garbage')).toBe(0);
  });

  it('replicas claiming side by side refresh every reference once', async () => {
    const refs = Array.from({ length: 600 }, (_, i) => ref(`i-${i}`));
    await new RefreshSet(a, prefix).request(refs.map(item), 0);
    const seen: string[] = [];
    const replica = async (connection: Redis): Promise<void> => {
      const set = new RefreshSet(connection, prefix);
      for (;;) {
        const claim = await set.claim(37, LONG);
        if (claim.refs.length === 0) return;
        for (const c of claim.refs) seen.push(c.ref.id);
        await set.finish(claim.token, claim.refs.map((c) => c.id));
      }
    };
    await Promise.all([replica(a), replica(b), replica(a)]);
    expect(seen.toSorted()).toEqual(refs.map((r) => r.id).toSorted());
    expect(await a.keys(`${prefix}*`)).toEqual([]);
  });
});
