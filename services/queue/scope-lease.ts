// One resync of a scope at a time, across replicas: a lease in Redis (SET NX PX with a token of
// our own), renewed while its holder works and released only by its holder. A resync that finds
// the lease taken ends at once; the one holding it covers the scope. Without it a resync slower
// than `resync.interval` would have its next run start beside it and hold the scope twice in
// memory. A holder that dies stops renewing, and the lease lapses within its time to live.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

/** How long a lease lives without renewal; it is renewed at a third of that. */
export const LEASE_TTL_MS = 60_000;

/** Leases on scopes, one holder each. */
export class ScopeLeases {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ttlMs: number;

  constructor(redis: Redis, prefix: string, ttlMs = LEASE_TTL_MS) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ttlMs = ttlMs;
  }

  /**
   * Takes the lease of `scopeKey` and keeps it until released; resolves to the release function,
   * or undefined when another holder has it.
   */
  async acquire(scopeKey: string): Promise<(() => Promise<void>) | undefined> {
    const key = `${this.#prefix}:resync-lease:${scopeKey}`;
    const token = randomUUID();
    const taken = await this.#redis.set(key, token, 'PX', this.#ttlMs, 'NX');
    if (taken !== 'OK') return undefined;
    const renewal = setInterval(() => {
      // A renewal that fails (Redis away) is tried again; the lease lapses if none gets through.
      this.#redis.eval(RENEW, 1, key, token, String(this.#ttlMs)).catch(() => {});
    }, Math.max(1, Math.floor(this.#ttlMs / 3)));
    renewal.unref();
    return async () => {
      clearInterval(renewal);
      await this.#redis.eval(RELEASE, 1, key, token);
    };
  }
}
