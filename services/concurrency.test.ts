import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mapLimited, Slots } from './concurrency.ts';

/** Lets `n` turns of the microtask queue pass: a task that takes a little while, deterministically. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

/** What a run saw: starts and failures as they happened, the most running at once, and what was running at the end. */
interface Trace {
  started: number[];
  events: string[];
  maxRunning: number;
  runningAtEnd: number;
}

/** Runs mapLimited over items whose task takes `cost[i]` turns and fails where `fails[i]` is set. */
async function traced(cost: readonly number[], limit: number, fails: readonly boolean[] = []): Promise<{ trace: Trace; outcome: PromiseSettledResult<number[]> }> {
  const trace: Trace = { started: [], events: [], maxRunning: 0, runningAtEnd: 0 };
  let running = 0;
  const items = cost.map((_, i) => i);
  const [outcome] = await Promise.allSettled([
    mapLimited(items, limit, async (item, index) => {
      expect(index).toBe(item);
      trace.started.push(item);
      trace.events.push(`start ${item}`);
      running++;
      trace.maxRunning = Math.max(trace.maxRunning, running);
      try {
        await turns(cost[item]!);
        if (fails[item]) {
          trace.events.push(`fail ${item}`);
          throw new Error(`item ${item} failed`);
        }
        return item * 10;
      } finally {
        running--;
      }
    }),
  ]);
  trace.runningAtEnd = running;
  return { trace, outcome: outcome! };
}

describe('mapLimited', () => {
  it.each([
    { name: 'no items', cost: [], limit: 3, started: [], maxRunning: 0 },
    { name: 'one at a time', cost: [2, 0, 1], limit: 1, started: [0, 1, 2], maxRunning: 1 },
    { name: 'a limit above the item count', cost: [3, 1], limit: 8, started: [0, 1], maxRunning: 2 },
    { name: 'a limit below the item count', cost: [5, 1, 1, 1, 1], limit: 2, started: [0, 1, 2, 3, 4], maxRunning: 2 },
  ])('$name: results in item order, items started in order, within the limit', async ({ cost, limit, started, maxRunning }) => {
    const { trace, outcome } = await traced(cost, limit);
    expect(outcome).toEqual({ status: 'fulfilled', value: cost.map((_, i) => i * 10) });
    expect(trace.started).toEqual(started);
    expect(trace.maxRunning).toBe(maxRunning);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses the limit %s', async (limit) => {
    await expect(mapLimited([1], limit, async (x) => x)).rejects.toThrow(RangeError);
  });

  it('takes a task that throws before it awaits as a failure like any other', async () => {
    const task = (item: number): Promise<number> => {
      if (item === 1) throw new Error('at once');
      return Promise.resolve(item);
    };
    await expect(mapLimited([0, 1, 2], 2, task)).rejects.toThrow('at once');
  });

  it('stops at the first failure: starts nothing after it and rejects with it once the running tasks ended', async () => {
    // Item 1 fails after 1 turn while item 0 (4 turns) still runs; items 2 and 3 are never started.
    const { trace, outcome } = await traced([4, 1, 0, 0], 2, [false, true, false, false]);
    expect(outcome.status).toBe('rejected');
    expect((outcome as PromiseRejectedResult).reason).toEqual(new Error('item 1 failed'));
    expect(trace.started).toEqual([0, 1]);
    expect(trace.runningAtEnd).toBe(0);
  });

  it('holds for any costs, limits and failures', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ cost: fc.nat({ max: 6 }), fails: fc.boolean() }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 8 }),
        async (specs, limit) => {
          const cost = specs.map((s) => s.cost);
          const fails = specs.map((s) => s.fails);
          const { trace, outcome } = await traced(cost, limit, fails);
          // Started in item order, never more than `limit` at once, nothing left running.
          expect(trace.started).toEqual(trace.started.map((_, i) => i));
          expect(trace.maxRunning).toBeLessThanOrEqual(limit);
          expect(trace.runningAtEnd).toBe(0);
          const failedStarted = trace.started.filter((i) => fails[i]);
          if (failedStarted.length === 0) {
            // No failure: every item ran once and the results are in item order.
            expect(trace.started).toHaveLength(specs.length);
            expect(outcome).toEqual({ status: 'fulfilled', value: cost.map((_, i) => i * 10) });
          } else {
            // A failure: the promise rejects with the first one. Another lane may still take one
            // item in the turn the failure happens, before its rejection reaches the helper; no
            // lane takes a second.
            const firstFailure = trace.events.findIndex((e) => e.startsWith('fail'));
            expect(trace.events.slice(firstFailure).filter((e) => e.startsWith('start')).length).toBeLessThan(limit);
            expect(outcome.status).toBe('rejected');
            const reason = (outcome as PromiseRejectedResult).reason as Error;
            expect(reason.message).toBe(`item ${trace.events[firstFailure]!.slice('fail '.length)} failed`);
          }
        },
      ),
    );
  });
});

describe('Slots', () => {
  it('lets `limit` holders in at once, the others in the order they asked, and a double release frees one slot', async () => {
    const slots = new Slots(2);
    const order: string[] = [];
    const a = await slots.acquire();
    const b = await slots.acquire();
    const waiting = ['c', 'd', 'e'].map((name) => slots.acquire().then((release) => (order.push(name), release)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual([]);
    a();
    a();
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['c']);
    b();
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['c', 'd']);
    (await waiting[0]!)();
    expect(await waiting[2]).toBeTypeOf('function');
    expect(order).toEqual(['c', 'd', 'e']);
  });

  it('refuses a limit below 1', () => {
    expect(() => new Slots(0)).toThrow(RangeError);
  });
});
