import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedArray, ShardedMap, ShardedSet, shardOf, wholeShardOf } from './shards.ts';

/** Names and ids of fleets of 100,000: a cloud's counters and ids, host names of one domain, long names that end alike. */
const FLEETS: Record<string, (i: number) => string> = {
  counters: (i) => `vm-${String(i).padStart(6, '0')}`,
  'instance ids': (i) => `i-0${((i * 2654435761) >>> 0).toString(16).padStart(16, '0')}`,
  'host names of one domain': (i) => `web-${String(i).padStart(5, '0')}.prod.eu-west-1.example.com`,
  'names that end alike': (i) => `a-long-shared-prefix-${i}-and-a-long-shared-suffix`,
};

/** Bytes in V8's large-object spaces (old and young): objects over 128 KiB. */
function largeObjectBytes(): number {
  return getHeapSpaceStatistics()
    .filter((s) => s.space_name === 'large_object_space' || s.space_name === 'new_large_object_space')
    .reduce((sum, s) => sum + s.space_used_size, 0);
}

/** A full collection, so that what a measurement finds in the large-object spaces is what it made. */
const gc: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/** What building `make` adds to the large-object spaces, the result held. */
function largeObjectGrowth(make: () => unknown): number {
  gc();
  const before = largeObjectBytes();
  const made = make();
  const growth = largeObjectBytes() - before;
  expect(made).toBeDefined();
  return growth;
}

describe('ShardedMap', () => {
  it('answers as a Map does, whatever the keys and the order of sets', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ maxLength: 40 }), fc.integer())), fc.array(fc.string({ maxLength: 40 })), (sets, probes) => {
        const map = new Map<string, number>();
        const sharded = new ShardedMap<number>();
        for (const [key, value] of sets) {
          map.set(key, value);
          expect(sharded.set(key, value)).toBe(sharded);
        }
        for (const key of [...sets.map(([k]) => k), ...probes]) {
          expect(sharded.get(key)).toBe(map.get(key));
          expect(sharded.has(key)).toBe(map.has(key));
          expect(sharded.mapFor(key).get(key)).toBe(map.get(key));
        }
      }),
    );
  });

  it.each(Object.entries(FLEETS))('answers as a Map does for %s, across the splits of its maps', (_, nameOf) => {
    const map = new Map<string, number>();
    const sharded = new ShardedMap<number>();
    // A lookup and then a set through mapFor, as the indexes do; every key set twice.
    for (const round of [1, 2]) {
      for (let i = 0; i < 20_000; i++) {
        const key = nameOf(i);
        const at = sharded.mapFor(key);
        expect(at.get(key)).toBe(map.get(key));
        at.set(key, i * round);
        map.set(key, i * round);
      }
    }
    for (let i = 0; i < 20_500; i++) {
      expect(sharded.get(nameOf(i))).toBe(map.get(nameOf(i)));
      expect(sharded.has(nameOf(i))).toBe(i < 20_000);
    }
  });

  it.each(Object.entries(FLEETS))('holds 100,000 %s without a table in the large-object space', (_, nameOf) => {
    const keys = Array.from({ length: 100_000 }, (_, i) => nameOf(i));
    const growth = largeObjectGrowth(() => {
      const sharded = new ShardedMap<number>();
      for (let i = 0; i < keys.length; i++) sharded.mapFor(keys[i]!).set(keys[i]!, i);
      return sharded;
    });
    expect(growth).toBeLessThan(128 * 1024);
  });

  it('where one Map of the same keys puts its table in the large-object space', () => {
    const keys = Array.from({ length: 100_000 }, (_, i) => FLEETS.counters!(i));
    const growth = largeObjectGrowth(() => new Map(keys.map((k, i) => [k, i])));
    expect(growth).toBeGreaterThan(1024 * 1024);
  });

  it('sends keys that end alike to one map first, and spreads them by the whole key', () => {
    const a = 'host-1.example.com';
    const b = 'host-2.example.com';
    expect(shardOf(a)).toBe(shardOf(b));
    expect(wholeShardOf(a)).not.toBe(wholeShardOf(b));
  });
});

describe('ShardedSet', () => {
  it('answers as a Set does', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 })), fc.array(fc.string({ maxLength: 40 })), (adds, probes) => {
        const set = new Set<string>();
        const sharded = new ShardedSet();
        for (const key of adds) {
          set.add(key);
          expect(sharded.add(key)).toBe(sharded);
        }
        for (const key of [...adds, ...probes]) expect(sharded.has(key)).toBe(set.has(key));
      }),
    );
  });
});

describe('ChunkedArray', () => {
  it('holds what an array holds, across chunks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20_000 }), fc.array(fc.tuple(fc.nat(), fc.integer())), (n, writes) => {
        const array: number[] = [];
        const chunked = new ChunkedArray<number>();
        for (let i = 0; i < n; i++) {
          array.push(i * 3);
          expect(chunked.push(i * 3)).toBe(i);
        }
        for (const [at, value] of writes) {
          if (n === 0) break;
          array[at % n] = value;
          chunked.set(at % n, value);
        }
        expect(chunked.length).toBe(n);
        const items: number[] = [];
        chunked.forEach((item) => items.push(item));
        expect(items).toEqual(array);
        for (const i of [0, n - 1, Math.floor(n / 2), 8191, 8192, 16_384]) expect(chunked.at(i)).toBe(array[i]);
      }),
      { numRuns: 30 },
    );
  });

  it.each([[-1], [3], [1.5], [Number.NaN]])('has no item at %s and refuses to set one there', (index) => {
    const chunked = new ChunkedArray<string>();
    for (const item of ['a', 'b', 'c']) chunked.push(item);
    expect(chunked.at(index)).toBeUndefined();
    expect(() => chunked.set(index, 'x')).toThrow(RangeError);
  });

  it('holds 100,000 items without an array in the large-object space, where one array has one', () => {
    const objects = Array.from({ length: 100_000 }, (_, i) => ({ i }));
    const chunked = largeObjectGrowth(() => {
      const list = new ChunkedArray<{ i: number }>();
      for (const o of objects) list.push(o);
      return list;
    });
    const plain = largeObjectGrowth(() => {
      const list: Array<{ i: number }> = [];
      for (const o of objects) list.push(o);
      return list;
    });
    expect(chunked).toBeLessThan(128 * 1024);
    expect(plain).toBeGreaterThan(512 * 1024);
  });
});
