import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedArray, ShardedMap, ShardedSet, shardOf } from './shards.ts';

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

  it('spreads the names of a fleet over its maps', () => {
    // A counter at the end, ids that differ in their last characters, a long shared prefix.
    const fleets = [
      Array.from({ length: 100_000 }, (_, i) => `vm-${String(i).padStart(6, '0')}`),
      Array.from({ length: 100_000 }, (_, i) => `i-0${(i * 2654435761 >>> 0).toString(16).padStart(16, '0')}`),
      Array.from({ length: 100_000 }, (_, i) => `a-very-long-shared-prefix-of-an-azure-resource-group-${i}`),
    ];
    for (const names of fleets) {
      const counts = new Map<number, number>();
      for (const name of names) counts.set(shardOf(name), (counts.get(shardOf(name)) ?? 0) + 1);
      expect(counts.size).toBe(64);
      // Well under the 8,192 keys past which a Map's table is a large object of V8's.
      expect(Math.max(...counts.values())).toBeLessThan(4_096);
    }
  });

  it('keys whose ends are equal share a map and stay apart in it', () => {
    const prefix = (p: string) => `${p}-ending-the-same`;
    expect(shardOf(prefix('a'))).toBe(shardOf(prefix('b')));
    const sharded = new ShardedMap<string>().set(prefix('a'), 'a').set(prefix('b'), 'b');
    expect([sharded.get(prefix('a')), sharded.get(prefix('b'))]).toEqual(['a', 'b']);
    expect(sharded.mapFor(prefix('a'))).toBe(sharded.mapFor(prefix('b')));
    expect(sharded.mapFor(prefix('a')).size).toBe(2);
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
});
