// Resource Graph's quota reset header, read as a retry delay.
import { describe, expect, it } from 'vitest';
import { quotaResetDelay } from './clients.ts';

describe('quotaResetDelay', () => {
  it.each<[string | undefined, number | undefined]>([
    ['00:00:05', 5000],
    ['00:01:02.5', 62_500],
    ['1:00:00', 3_600_000],
    [' 00:00:00 ', 0],
    ['5', undefined],
    ['00:60:00', undefined],
    [undefined, undefined],
  ])('%s → %s', (value, delay) => {
    expect(quotaResetDelay(value)).toBe(delay);
  });
});
