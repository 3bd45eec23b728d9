// A desired entry in compact form (DesiredEntry) equals, in `toEqual`, the WorkloadEntry it reads as.
import { expect } from 'vitest';
import { DesiredEntry, plainEntry } from '../services/desired-entry.ts';

expect.addEqualityTesters([
  function desiredEntryAsPlain(a: unknown, b: unknown, customTesters) {
    if (!(a instanceof DesiredEntry) && !(b instanceof DesiredEntry)) return undefined;
    const plain = (x: unknown): unknown => (x instanceof DesiredEntry ? plainEntry(x) : x);
    return this.equals(plain(a), plain(b), customTesters);
  },
]);
