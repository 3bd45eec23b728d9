import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CHECKPOINT_EVERY, runSliced, runSync, sortSliced } from './slices.ts';

interface Item {
  key: number;
  /** Where the item was before sorting: equal keys must keep this order. */
  at: number;
}

const byKey = (a: Item, b: Item): number => a.key - b.key;

function items(keys: readonly number[]): Item[] {
  return keys.map((key, at) => ({ key, at }));
}

describe('sortSliced', () => {
  it('gives what Array.prototype.sort gives, equal keys in their first order, for any run length', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 300 }), fc.integer({ min: 1, max: 40 }), (keys, run) => {
        const expected = items(keys).sort(byKey);
        const input = items(keys);
        const sorted = runSync(sortSliced(input, byKey, run));
        expect(sorted).toBe(input);
        expect(sorted).toEqual(expected);
      }),
    );
  });

  it('sorts strings in code-unit order across many runs, as the planner sorts keys', () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `ns-${i % 7}/vm-${(i * 7919) % 5000}`);
    const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    expect(runSync(sortSliced([...keys], compare, 64))).toEqual([...keys].sort(compare));
  });

  it('pauses at least once every CHECKPOINT_EVERY items it moves while merging', () => {
    const n = 20_000;
    const work = sortSliced(items(Array.from({ length: n }, (_, i) => (i * 7919) % 1000)), byKey, 1024);
    let pauses = 0;
    for (let step = work.next(); !step.done; step = work.next()) pauses++;
    // Five merge passes and a copy back move every item six times; the runs add one pause each.
    expect(pauses).toBeGreaterThanOrEqual(Math.floor((n * 5) / CHECKPOINT_EVERY));
  });

  it('returns the same order when run in slices with the event loop free in between', async () => {
    const keys = Array.from({ length: 30_000 }, (_, i) => (i * 104_729) % 3000);
    const sorted = await runSliced(sortSliced(items(keys), byKey), 0);
    expect(sorted).toEqual(items(keys).sort(byKey));
  });
});
