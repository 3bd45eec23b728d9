// The indexes a listing builds hold one item per instance: the entry of each name, the first
// machine of each id, each slot's place in the listing. At 100,000 instances one Map of them is a
// hash table of about 3.6 MiB and one array 800 KiB (Node's V8 keeps 8-byte pointers). V8 puts
// every object over 128 KiB in a memory mapping of its own (its large-object space) instead of on
// the pages of its heap, and as a Map or an array grows, each table it outgrows stays mapped until
// the next full collection: a resync of 100,000 machines mapped about 36 MiB of them, which came
// on top of the heap's own pages at the resync's peak. The forms here hold the same items in parts
// that stay under that size, so that what they outgrow is garbage on pages V8 reuses, mostly young
// and collected within milliseconds.

/** How many maps a ShardedMap spreads its keys over: 100,000 keys are about 1,600 a map. */
const SHARD_BITS = 6;
const SHARDS = 1 << SHARD_BITS;

/**
 * How many keys one map of a ShardedMap takes before it is split: a Map of 4,096 keys has a table
 * just under 128 KiB, and the map that reaches this size grows to that table.
 */
const SPLIT_AT = 2048;

/**
 * How many characters of a key's end choose its map. Names and ids of a cloud's fleet differ at
 * the end (a counter, the tail of an id); the length counts too. 16 characters took twice as long
 * to hash, and a key is hashed for each lookup: planning 100,000 hashes about 500,000 keys.
 * Keys that end alike (host names of one domain) meet in one map, which is then split by a hash
 * of the whole key.
 */
const HASHED_TAIL = 8;

/** FNV-1a over a key's length and its characters from `from`, whose high bits mix best: the map it goes to. */
function fnv(key: string, from: number): number {
  const end = key.length;
  let h = Math.imul(0x811c9dc5 ^ end, 0x01000193);
  for (let i = from; i < end; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> (32 - SHARD_BITS);
}

/** The map a key goes to first: by its length and last HASHED_TAIL characters. */
export function shardOf(key: string): number {
  return fnv(key, key.length > HASHED_TAIL ? key.length - HASHED_TAIL : 0);
}

/** The map a key goes to within a split one: by all of it. */
export function wholeShardOf(key: string): number {
  return fnv(key, 0);
}

/** A map of a ShardedMap, or the maps it was split into. */
type Shard<V> = Map<string, V> | Array<Map<string, V> | undefined>;

/**
 * A Map from strings for an index that may hold one key per instance, spread over up to 64 Maps
 * (made as keys arrive) by the end of the key; a map that takes more than SPLIT_AT keys is split
 * into up to 64 by the whole key. Only what the indexes use: no size, and no iteration, whose
 * order would not be the order of insertion.
 */
export class ShardedMap<V> {
  readonly #shards: Array<Shard<V> | undefined> = new Array<Shard<V> | undefined>(SHARDS).fill(undefined);

  /**
   * The Map that holds `key`, or will once it is set there: a lookup and then a set of one key on
   * it hash the key once. Set nothing else on it.
   */
  mapFor(key: string): Map<string, V> {
    const at = shardOf(key);
    let shard = this.#shards[at];
    if (shard === undefined) {
      shard = new Map();
      this.#shards[at] = shard;
      return shard;
    }
    if (shard instanceof Map) {
      if (shard.size < SPLIT_AT) return shard;
      shard = split(shard);
      this.#shards[at] = shard;
    }
    return mapAt(shard, wholeShardOf(key));
  }

  get(key: string): V | undefined {
    return this.#find(key)?.get(key);
  }

  has(key: string): boolean {
    return this.#find(key)?.has(key) ?? false;
  }

  set(key: string, value: V): this {
    this.mapFor(key).set(key, value);
    return this;
  }

  #find(key: string): Map<string, V> | undefined {
    const shard = this.#shards[shardOf(key)];
    return shard === undefined || shard instanceof Map ? shard : shard[wholeShardOf(key)];
  }
}

/** A map's keys spread over up to 64 maps by the whole key. */
function split<V>(map: Map<string, V>): Array<Map<string, V> | undefined> {
  const parts = new Array<Map<string, V> | undefined>(SHARDS).fill(undefined);
  map.forEach((value, key) => mapAt(parts, wholeShardOf(key)).set(key, value));
  return parts;
}

/** The map at `at` of `maps`, made there if there is none. */
function mapAt<V>(maps: Array<Map<string, V> | undefined>, at: number): Map<string, V> {
  let map = maps[at];
  if (map === undefined) {
    map = new Map();
    maps[at] = map;
  }
  return map;
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

/** How many items a ChunkedArray keeps in one array: 64 KiB of pointers or of doubles. */
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
