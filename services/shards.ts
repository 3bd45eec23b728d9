// The indexes a listing builds hold one item per instance: the entry of each name, the first
// machine of each id, each slot's place in the listing. At 100,000 instances one Map of them is a
// hash table of about 1.8 MiB and one array 400 KiB. V8 puts every object over 128 KiB in a memory
// mapping of its own (its large-object space) instead of on the pages of its heap, and as a Map or
// an array grows, each table it outgrows stays mapped until the next full collection: a resync
// of 100,000 machines mapped about 36 MiB of them, which came on top of the heap's own pages at
// the resync's peak. The forms here hold the same items in parts that stay under that size, so
// that what they outgrow is garbage on pages V8 reuses, mostly young and collected within
// milliseconds.

/** How many maps a ShardedMap spreads its keys over: 100,000 keys are about 1,600 a map. */
const SHARD_BITS = 6;

/**
 * How many characters of a key's end choose its map. Names and ids of one fleet differ at the
 * end (a counter, the tail of an id) more than at the start (a shared prefix); the length counts
 * too. Keys of one length that differ only before their last 8 characters share a map, which is
 * then as large as one Map would be, and as correct. 16 characters took twice as long to hash,
 * and a key is hashed for each lookup: planning 100,000 hashes about 500,000 keys.
 */
const HASHED_TAIL = 8;

/** The map a key goes to: FNV-1a over the key's length and its last HASHED_TAIL characters, whose high bits mix best. */
export function shardOf(key: string): number {
  const end = key.length;
  let h = Math.imul(0x811c9dc5 ^ end, 0x01000193);
  for (let i = end > HASHED_TAIL ? end - HASHED_TAIL : 0; i < end; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> (32 - SHARD_BITS);
}

/**
 * A Map from strings for an index that may hold one key per instance, spread over up to 64 Maps
 * (made as keys arrive). Only what the indexes use: no size, and no iteration, whose order would
 * not be the order of insertion.
 */
export class ShardedMap<V> {
  readonly #shards: Array<Map<string, V> | undefined> = new Array<Map<string, V> | undefined>(1 << SHARD_BITS).fill(undefined);

  /** The Map that holds `key` (and others): a lookup and then a set of one key on it hash the key once. */
  mapFor(key: string): Map<string, V> {
    const at = shardOf(key);
    let shard = this.#shards[at];
    if (shard === undefined) {
      shard = new Map();
      this.#shards[at] = shard;
    }
    return shard;
  }

  get(key: string): V | undefined {
    return this.#shards[shardOf(key)]?.get(key);
  }

  has(key: string): boolean {
    return this.#shards[shardOf(key)]?.has(key) ?? false;
  }

  set(key: string, value: V): this {
    this.mapFor(key).set(key, value);
    return this;
  }
}

/** A Set of strings as ShardedMap holds them. */
export class ShardedSet {
  readonly #map = new ShardedMap<true>();

  has(key: string): boolean {
    return this.#map.has(key);
  }

  add(key: string): this {
    this.#map.set(key, true);
    return this;
  }
}

/** How many items a ChunkedArray keeps in one array: 32 KiB of pointers, 64 KiB of doubles. */
const CHUNK_BITS = 13;
const CHUNK_MASK = (1 << CHUNK_BITS) - 1;

/** An array that only grows at its end, in arrays of 8,192 items. */
export class ChunkedArray<T> {
  readonly #chunks: T[][] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  /** Appends an item; gives its index. */
  push(item: T): number {
    const chunk = this.#length >>> CHUNK_BITS;
    if (chunk === this.#chunks.length) this.#chunks.push([]);
    this.#chunks[chunk]!.push(item);
    return this.#length++;
  }

  /** The item at an index, undefined at one that is not an index of an item. */
  at(index: number): T | undefined {
    return this.#holds(index) ? this.#chunks[index >>> CHUNK_BITS]![index & CHUNK_MASK] : undefined;
  }

  /** Replaces the item at an index below the length. */
  set(index: number, item: T): void {
    if (!this.#holds(index)) throw new RangeError(`index ${index} is outside 0..${this.#length - 1}`);
    this.#chunks[index >>> CHUNK_BITS]![index & CHUNK_MASK] = item;
  }

  #holds(index: number): boolean {
    return Number.isInteger(index) && index >= 0 && index < this.#length;
  }

  /** Calls `each` with every item in order: an iterator would make a result object per item. */
  forEach(each: (item: T) => void): void {
    for (const chunk of this.#chunks) for (let i = 0; i < chunk.length; i++) each(chunk[i]!);
  }
}
