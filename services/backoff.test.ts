import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffCeiling, jitteredBackoff } from './backoff.ts';

describe('backoff', () => {
  it.each([
    { base: 500, attempt: 1, random: 0, max: undefined, wait: 250 },
    { base: 500, attempt: 1, random: 0.999, max: undefined, wait: 499 },
    { base: 500, attempt: 3, random: 0, max: undefined, wait: 1000 },
    { base: 400, attempt: 2, random: 1, max: undefined, wait: 800 },
    { base: 100, attempt: 10, random: 0, max: 5, wait: 1600 },
    { base: 100, attempt: 10, random: 0, max: undefined, wait: 25_600 },
    { base: 3, attempt: 1, random: 0, max: undefined, wait: 1 },
  ])('retry $attempt of base $base, random $random, at most $max doublings: $wait ms', ({ base, attempt, random, max, wait }) => {
    expect(jitteredBackoff(base, attempt, () => random, max)).toBe(wait);
  });

  it('waits a whole number of milliseconds between half the ceiling and the ceiling, never less for a later retry', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 20 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.option(fc.nat({ max: 8 }), { nil: undefined }),
        (base, attempt, r, max) => {
          const ceiling = backoffCeiling(base, attempt, max);
          const wait = jitteredBackoff(base, attempt, () => r, max);
          expect(Number.isInteger(wait)).toBe(true);
          expect(wait).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
          expect(wait).toBeLessThanOrEqual(ceiling);
          expect(jitteredBackoff(base, attempt + 1, () => r, max)).toBeGreaterThanOrEqual(wait);
        },
      ),
    );
  });
});
