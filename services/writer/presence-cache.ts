// Remembers, for a while, that something exists in the cluster (a service account), so that
// thousands of entries naming it cost one GET. Bounded: the oldest key is forgotten first.

/** A bounded set of keys that expire after a time to live. */
export class PresenceCache {
  readonly #ttlMs: number;
  readonly #maxSize: number;
  readonly #now: () => number;
  readonly #expiresAt = new Map<string, number>();

  constructor(options: { ttlMs: number; maxSize: number; now?: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#maxSize = Math.max(1, options.maxSize);
    this.#now = options.now ?? Date.now;
  }

  /** True when `key` was added less than the TTL ago, or less than `maxAgeMs` ago when given. */
  has(key: string, maxAgeMs?: number): boolean {
    const at = this.#expiresAt.get(key);
    if (at === undefined) return false;
    const now = this.#now();
    if (at <= now) {
      this.#expiresAt.delete(key);
      return false;
    }
    return maxAgeMs === undefined || at - this.#ttlMs + maxAgeMs > now;
  }

  /** Marks `key` present from now on, for one TTL. */
  add(key: string): void {
    this.#expiresAt.delete(key);
    this.#expiresAt.set(key, this.#now() + this.#ttlMs);
    while (this.#expiresAt.size > this.#maxSize) {
      const oldest = this.#expiresAt.keys().next();
      if (oldest.done) break;
      this.#expiresAt.delete(oldest.value);
    }
  }

  /** Forgets `key`, e.g. after the cluster said it is gone. */
  delete(key: string): void {
    this.#expiresAt.delete(key);
  }

  /** How many keys are remembered, expired ones included until they are looked up. */
  get size(): number {
    return this.#expiresAt.size;
  }
}
