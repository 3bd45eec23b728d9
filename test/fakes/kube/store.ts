// Storage for one resource, shaped for 100,000 objects: a Map for O(1) get, a sorted key index (as
// etcd orders `namespace/name`) for listing, and consistent paging: the first page with a limit
// snapshots the rest of the range, later pages read that snapshot by binary search, so each page
// costs O(page) and sees the list as of its resourceVersion, as etcd's MVCC read does.
import { badRequest, expired } from './status.ts';

/** A Kubernetes object as JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name?: string; namespace?: string; resourceVersion?: string };
  [key: string]: unknown;
}

/** A stored object version. `obj` is never mutated once stored; writes store a new Stored. */
export interface Stored {
  readonly obj: KubeObject;
  readonly rv: number;
  readonly namespace: string;
  readonly name: string;
  /** Serialized `obj` in UTF-8, made on first read and kept: lists of many objects then cost little. */
  json?: Buffer;
}

/**
 * The JSON of a stored object as UTF-8 bytes, cached. A list answer is these bytes put together:
 * built as one string instead, a page of 500 objects was copied three times over (joined,
 * flattened, encoded) on its way to the socket.
 */
export function storedJson(s: Stored): Buffer {
  if (s.json === undefined) s.json = Buffer.from(JSON.stringify(s.obj));
  return s.json;
}

interface Snapshot {
  keys: string[];
  items: Stored[];
  created: number;
}

/** One page of a list. */
export interface Page {
  items: Stored[];
  /** The resourceVersion the list reflects. */
  rv: number;
  continue?: string;
  remainingItemCount?: number;
}

/** What a list asks for. */
export interface PageQuery {
  namespace?: string;
  limit?: number;
  continueToken?: string;
  filter?: (s: Stored) => boolean;
  /** The server's current resourceVersion. */
  currentRv: number;
  now: number;
  snapshotTtlMs: number;
}

function lowerBound(arr: readonly string[], key: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function mergeSorted(a: string[], b: string[]): string[] {
  const out: string[] = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < a.length || j < b.length) {
    let next: string;
    if (j >= b.length || (i < a.length && a[i]! <= b[j]!)) next = a[i++]!;
    else next = b[j++]!;
    if (n === 0 || out[n - 1] !== next) out[n++] = next;
  }
  out.length = n;
  return out;
}

const CONTINUE_TOO_OLD =
  'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.';

/** The continue token the real server sends: base64url of `{"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}`. */
export function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
}

/** Reads a continue token; a malformed one is a 400. */
export function decodeContinue(token: string): { rv: number; start: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw badRequest('continue key is not valid: illegal base64 data');
  }
  const p = parsed as { v?: unknown; rv?: unknown; start?: unknown };
  if (p.v !== 'meta.k8s.io/v1') throw badRequest('continue key is not valid: server does not recognize this encoded version');
  if (typeof p.rv !== 'number' || p.rv <= 0) throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
  if (typeof p.start !== 'string' || p.start === '') throw badRequest('continue key is not valid: encoded start key empty (version meta.k8s.io/v1)');
  return { rv: p.rv, start: p.start };
}

/** The objects of one resource. */
export class ResourceStore {
  private readonly items = new Map<string, Stored>();
  private sorted: string[] = [];
  private pending: string[] = [];
  private tombstones = 0;
  private readonly snapshots = new Map<string, Snapshot>();
  /** How many continue snapshots are kept at most; the oldest go first. */
  maxSnapshots = 32;

  /** `namespace/name`, or `name` for cluster-scoped objects: etcd's key order. */
  static key(namespace: string, name: string): string {
    return namespace ? `${namespace}/${name}` : name;
  }

  get size(): number {
    return this.items.size;
  }

  get(namespace: string, name: string): Stored | undefined {
    return this.items.get(ResourceStore.key(namespace, name));
  }

  set(s: Stored): void {
    const key = ResourceStore.key(s.namespace, s.name);
    if (!this.items.has(key)) this.pending.push(key);
    this.items.set(key, s);
  }

  delete(namespace: string, name: string): Stored | undefined {
    const key = ResourceStore.key(namespace, name);
    const s = this.items.get(key);
    if (s) {
      this.items.delete(key);
      this.tombstones++;
    }
    return s;
  }

  /** Forgets every continue snapshot: later pages of lists under way get 410 Expired. */
  expireSnapshots(): void {
    this.snapshots.clear();
  }

  private index(): string[] {
    if (this.pending.length > 0) {
      this.pending.sort();
      this.sorted = mergeSorted(this.sorted, this.pending);
      this.pending = [];
    }
    if (this.tombstones > 0) {
      this.sorted = this.sorted.filter((k) => this.items.has(k));
      this.tombstones = 0;
    }
    return this.sorted;
  }

  private range(keys: string[], namespace: string | undefined): [number, number] {
    if (namespace === undefined || namespace === '') return [0, keys.length];
    // '0' sorts right after '/', so [ns/, ns0) is exactly the namespace.
    return [lowerBound(keys, `${namespace}/`), lowerBound(keys, `${namespace}0`)];
  }

  /** Number of objects, in one namespace or in all. */
  count(namespace?: string): number {
    if (!namespace) return this.items.size;
    const [lo, hi] = this.range(this.index(), namespace);
    return hi - lo;
  }

  /** Every object in key order, in one namespace or in all. */
  all(namespace?: string): Stored[] {
    const keys = this.index();
    const [lo, hi] = this.range(keys, namespace);
    const out: Stored[] = [];
    for (let i = lo; i < hi; i++) out.push(this.items.get(keys[i]!)!);
    return out;
  }

  /** One page of a list; see the file comment for the consistency it gives. */
  page(q: PageQuery): Page {
    const limit = q.limit && q.limit > 0 ? q.limit : undefined;
    let keys: string[];
    let at: (i: number) => Stored;
    let start: number;
    let end: number;
    let rv: number;
    const snapKey = (r: number) => `${q.namespace ?? ''}|${r}`;
    if (q.continueToken) {
      const tok = decodeContinue(q.continueToken);
      const snap = this.snapshots.get(snapKey(tok.rv));
      if (!snap || q.now - snap.created > q.snapshotTtlMs) {
        if (snap) this.snapshots.delete(snapKey(tok.rv));
        throw expired(CONTINUE_TOO_OLD);
      }
      keys = snap.keys;
      at = (i) => snap.items[i]!;
      start = lowerBound(keys, tok.start);
      end = keys.length;
      rv = tok.rv;
    } else {
      keys = this.index();
      const items = this.items;
      at = (i) => items.get(keys[i]!)!;
      [start, end] = this.range(keys, q.namespace);
      rv = q.currentRv;
    }
    const out: Stored[] = [];
    let i = start;
    let lastKey = '';
    while (i < end && (limit === undefined || out.length < limit)) {
      const s = at(i);
      lastKey = keys[i]!;
      i++;
      if (!q.filter || q.filter(s)) out.push(s);
    }
    const page: Page = { items: out, rv };
    if (limit !== undefined && i < end) {
      if (!q.continueToken && !this.snapshots.has(snapKey(rv))) {
        // The whole range, not just the rest: another first page at this resourceVersion may share it.
        const snapKeys = keys.slice(start, end);
        this.snapshots.set(snapKey(rv), { keys: snapKeys, items: snapKeys.map((k) => this.items.get(k)!), created: q.now });
        while (this.snapshots.size > this.maxSnapshots) {
          const oldest = this.snapshots.keys().next().value;
          if (oldest === undefined) break;
          this.snapshots.delete(oldest);
        }
      }
      page.continue = encodeContinue(rv, `${lastKey}\u0000`);
      if (!q.filter) page.remainingItemCount = end - i;
    }
    return page;
  }
}
