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

/**
 * What a memo computes, with the inputs it takes as arguments: a caller that maps a hundred
 * thousand instances passes a function made once and its inputs, not a closure made for each.
 */
type Compute<T, A, B, C> = (a: A, b: B, c: C) => T;

/**
 * A walk down one memo table's trie (Interner.memoWalk), a key at a time, for a path that is read
 * from somewhere (an instance's tags) rather than held in an array made for it. One walk per
 * table is reused: finish one (result) before starting the next on the same table.
 */
export class MemoWalk {
  readonly #table: { root: PathNode; size: number };
  /** Where the walk is; undefined once it left the trie (a full table grows no more nodes). */
  #node: PathNode | undefined;

  constructor(table: { root: PathNode; size: number }) {
    this.#table = table;
    this.#node = table.root;
  }

  /** Starts again at the root. */
  restart(): this {
    this.#node = this.#table.root;
    return this;
  }

  /** Walks on by `key`. */
  step(key: string): void {
    const node = this.#node;
    if (node === undefined) return;
    let child = node.next?.get(key);
    if (child === undefined && this.#table.size < MEMO_LIMIT) {
      child = {};
      (node.next ??= new Map()).set(key, child);
    }
    this.#node = child;
  }

  /** The result kept for the keys walked, or `compute`'s, kept while the table holds fewer than MEMO_LIMIT. */
  result<T, A = undefined, B = undefined, C = undefined>(compute: Compute<T, A, B, C>, a?: A, b?: B, c?: C): T {
    const node = this.#node;
    if (node?.done) return node.result as T;
    const result = compute(a as A, b as B, c as C);
    if (node !== undefined && this.#table.size < MEMO_LIMIT) {
      node.done = true;
      node.result = result;
      this.#table.size++;
    }
    return result;
  }
}

/** Shares equal string maps and strings. */
export class Interner {
  // Maps are found by walking their entries in order (a few Map lookups of short strings), which
  // costs far less than building a key for each map.
  readonly #root: Node = {};
  readonly #strings = new Map<string, string>();
  readonly #memos = new Map<string, Map<string, unknown>>();
  readonly #walks = new Map<string, MemoWalk>();
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
   * The result of `compute(a, b, c)` for `key` in `table`, computed once: for pure functions of a
   * tag value that most instances of a listing share (the ports tag, the label tags). Results are
   * shared, so they must never be changed. A table keeps at most MEMO_LIMIT results: where values
   * are mostly unique (a label per host), the rest are computed each time rather than held for the
   * listing.
   */
  memo<T, A = undefined, B = undefined, C = undefined>(table: string, key: string, compute: Compute<T, A, B, C>, a?: A, b?: B, c?: C): T {
    let results = this.#memos.get(table);
    if (!results) {
      results = new Map();
      this.#memos.set(table, results);
    }
    return remember(results, key, MEMO_LIMIT, compute, a, b, c);
  }

  /**
   * Interner.memo for a key made of several strings (each tag read and its value): the strings are
   * walked one by one, as maps are, rather than joined into a key string for every instance. Two
   * different sequences are two keys. The same limit of MEMO_LIMIT results a table holds.
   */
  memoPath<T>(table: string, path: readonly string[], compute: () => T): T {
    const walk = this.memoWalk(table);
    for (const key of path) walk.step(key);
    return walk.result(compute);
  }

  /** The walk of memo table `table` (memoPath), at its root: for a path walked key by key. */
  memoWalk(table: string): MemoWalk {
    const walk = this.#walks.get(table);
    if (walk !== undefined) return walk.restart();
    const created = new MemoWalk({ root: {}, size: 0 });
    this.#walks.set(table, created);
    return created;
  }

  /**
   * The result of `compute(a, b, c)` for `from` (an object, such as a memo's result) and `key`,
   * computed once while `from` lives: for what is derived from a shared result and a short value (the
   * labels of a tag set with a service name). Results are shared, so they must never be changed.
   */
  derived<T, A = undefined, B = undefined, C = undefined>(from: object, key: string, compute: Compute<T, A, B, C>, a?: A, b?: B, c?: C): T {
    let results = this.#derived.get(from);
    if (!results) {
      results = new Map();
      this.#derived.set(from, results);
    }
    return remember(results, key, Number.POSITIVE_INFINITY, compute, a, b, c);
  }

  /** One copy of each distinct string. */
  string<T extends string>(value: T): T {
    const known = this.#strings.get(value) as T | undefined;
    if (known !== undefined) return known;
    this.#strings.set(value, value);
    return value;
  }
}

/** The result kept for `key`, or `compute`'s, kept while `results` holds fewer than `limit`. */
function remember<T, A, B, C>(results: Map<string, unknown>, key: string, limit: number, compute: Compute<T, A, B, C>, a?: A, b?: B, c?: C): T {
  if (results.has(key)) return results.get(key) as T;
  const result = compute(a as A, b as B, c as C);
  if (results.size < limit) results.set(key, result);
  return result;
}
