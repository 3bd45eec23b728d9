import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest delay a Node.js timer keeps; a longer one fires after 1 ms instead (TimeoutOverflowWarning). */
export const MAX_DURATION_MS = 2_147_483_647;

/** A duration written as `500ms`, `30s`, `5m`, `1h` or a number of milliseconds; parsed to milliseconds. */
export const duration = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'must be a duration such as 500ms, 30s, 5m or 1h'),
  ])
  .transform((value) => {
    if (typeof value === 'number') return value;
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value)!;
    return Math.round(Number(match[1]) * UNITS[match[2]!]!);
  })
  // Durations become timers (listing timeouts, lock renewal, backoff): a longer one would not wait
  // longer but fire at once, so that `resync.timeout: 600h` would abandon every listing.
  .pipe(z.number().max(MAX_DURATION_MS, 'must be at most 596h (2147483647 ms), the longest delay a timer can wait'));
