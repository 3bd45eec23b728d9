// One resync of a scope at a time, across replicas: a lease in Redis (SET NX PX with a token of
// our own, released only by its holder). A resync that finds the lease taken ends at once; the
// one holding it covers the scope. Without it a resync slower than `resync.interval` would have
// its next run start beside it and hold the scope twice in memory.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/** Leases on scopes, one holder each. */
export class ScopeLeases {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  /**
   * Takes the lease of `scopeKey` for at most `ttlMs` (so that a holder that died frees it);
   * resolves to a release function, or undefined when another holder has it.
   */
  async acquire(scopeKey: string, ttlMs: number): Promise<(() => Promise<void>) | undefined> {
    const key = `${this.#prefix}:resync-lease:${scopeKey}`;
    const token = randomUUID();
    const taken = await this.#redis.set(key, token, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
    if (taken !== 'OK') return undefined;
    return async () => {
      await this.#redis.eval(RELEASE, 1, key, token);
    };
  }
}
