// An entry in compact form (DesiredEntry, HeldEntry) equals, in `toEqual`, the WorkloadEntry it reads as.
import { expect } from 'vitest';
import { DesiredEntry, HeldEntry, plainEntry } from '../services/desired-entry.ts';

expect.addEqualityTesters([
  function desiredEntryAsPlain(a: unknown, b: unknown, customTesters) {
    const compact = (x: unknown): x is DesiredEntry | HeldEntry => x instanceof DesiredEntry || x instanceof HeldEntry;
    if (!compact(a) && !compact(b)) return undefined;
    const plain = (x: unknown): unknown => (compact(x) ? plainEntry(x) : x);
    return this.equals(plain(a), plain(b), customTesters);
  },
]);
