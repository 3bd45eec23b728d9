// Many entries of one listing carry equal small maps and strings: the ownership labels, the
// `app`/`version` labels of one service, its ports, a zone's locality. An interner hands out one
// shared, frozen copy of each, so that a hundred thousand entries hold a few hundred such maps
// rather than a hundred thousand; freezing makes a change to a shared map an error, not a leak
// into other entries. One interner lives as long as one listing (a mapping run, a list of the
// cluster), so nothing accumulates across resyncs.

/** A step of the map trie: the map with exactly the keys and values on the way here, and the ways on. */
interface Node {
  map?: Readonly<Record<string, unknown>>;
  next?: Map<string, Map<unknown, Node>>;
}

/** A step of a memo trie (Interner.memoPath): the result for the keys on the way here, and the ways on. */
interface PathNode {
  done?: true;
  result?: unknown;
  next?: Map<string, PathNode>;
}

/** Results one memo table keeps (Interner.memo, Interner.memoPath). */
export const MEMO_LIMIT = 4096;

/** Shares equal string maps and strings. */
export class Interner {
  // Maps are found by walking their entries in order (a few Map lookups of short strings), which
  // costs far less than building a key for each map.
  readonly #root: Node = {};
  readonly #strings = new Map<string, string>();
  readonly #memos = new Map<string, Map<string, unknown>>();
  readonly #paths = new Map<string, { root: PathNode; size: number }>();
  readonly #derived = new WeakMap<object, Map<string, unknown>>();

  /** One frozen copy of each distinct map (same keys, same order, same values). */
  map<T extends Record<string, string | number>>(value: T): T {
    let node = this.#root;
    for (const k in value) {
      node.next ??= new Map();
      let byValue = node.next.get(k);
      if (!byValue) {
        byValue = new Map();
        node.next.set(k, byValue);
      }
      const v = value[k];
      let child = byValue.get(v);
      if (!child) {
        child = {};
        byValue.set(v, child);
      }
      node = child;
    }
    node.map ??= Object.freeze(value);
    return node.map as T;
  }

  /**
   * The result of `compute` for `key` in `table`, computed once: for pure functions of a tag value
   * that most instances of a listing share (the ports tag, the label tags). Results are shared, so
   * they must never be changed. A table keeps at most MEMO_LIMIT results: where values are mostly
   * unique (a label per host), the rest are computed each time rather than held for the listing.
   */
  memo<T>(table: string, key: string, compute: () => T): T {
    let results = this.#memos.get(table);
    if (!results) {
      results = new Map();
      this.#memos.set(table, results);
    }
    return remember(results, key, compute, MEMO_LIMIT);
  }

  /**
   * Interner.memo for a key made of several strings (each tag read and its value): the strings are
   * walked one by one, as maps are, rather than joined into a key string for every instance. Two
   * different sequences are two keys. The same limit of MEMO_LIMIT results a table holds.
   */
  memoPath<T>(table: string, path: readonly string[], compute: () => T): T {
    let memo = this.#paths.get(table);
    if (!memo) {
      memo = { root: {}, size: 0 };
      this.#paths.set(table, memo);
    }
    const full = memo.size >= MEMO_LIMIT;
    let node = memo.root;
    for (const step of path) {
      let child = node.next?.get(step);
      if (!child) {
        // A full table grows no more nodes either.
        if (full) return compute();
        child = {};
        (node.next ??= new Map()).set(step, child);
      }
      node = child;
    }
    if (node.done) return node.result as T;
    const result = compute();
    if (!full) {
      node.done = true;
      node.result = result;
      memo.size++;
    }
    return result;
  }

  /**
   * The result of `compute` for `from` (an object, such as a memo's result) and `key`, computed
   * once while `from` lives: for what is derived from a shared result and a short value (the
   * labels of a tag set with a service name). Results are shared, so they must never be changed.
   */
  derived<T>(from: object, key: string, compute: () => T): T {
    let results = this.#derived.get(from);
    if (!results) {
      results = new Map();
      this.#derived.set(from, results);
    }
    return remember(results, key, compute, Number.POSITIVE_INFINITY);
  }

  /** One copy of each distinct string. */
  string(value: string): string {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    this.#strings.set(value, value);
    return value;
  }
}

/** The result kept for `key`, or `compute`'s, kept while `results` holds fewer than `limit`. */
function remember<T>(results: Map<string, unknown>, key: string, compute: () => T, limit: number): T {
  if (results.has(key)) return results.get(key) as T;
  const result = compute();
  if (results.size < limit) results.set(key, result);
  return result;
}
