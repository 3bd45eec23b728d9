// The newest desired change per entry, kept apart from the jobs. A job carries only the key and
// applies whatever is newest when it runs, so the order in which jobs run, retry or coalesce
// never decides the outcome: the newest observation does.
import type { Redis } from 'ioredis';
import type { Change, EntryKey } from '../model.ts';
import { canonicalStamp } from '../stamp.ts';
import { redisReady } from './redis.ts';

/** The newest change per entry key. */
export interface DesiredStore {
  /** Keeps `change` unless a newer one is there; true when it is now the newest. */
  record(change: Change): Promise<boolean>;
  /** The newest change for `key`, or null when none is known. */
  get(key: EntryKey): Promise<Change | null>;
}

// Compare-and-set in one step, so two producers recording at once cannot both win with the older
// one last. Stamps arrive in canonical form (fixed width, unreadable ones empty), so comparing
// them as strings compares the instants. Equal times: the later record wins.
const RECORD_SCRIPT = `
local current = redis.call('HGET', KEYS[1], 'at')
if current and current > ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'at', ARGV[1], 'change', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

const RECORD_COMMAND = 'vmsRecordDesired';

type RedisWithRecord = Redis & {
  vmsRecordDesired(key: string, at: string, change: string, ttlMs: number): Promise<number>;
};

/** Options of RedisDesiredStore. */
export interface RedisDesiredStoreOptions {
  /** How long a record outlives its last update (default 24 h), so that the store does not grow forever. */
  ttlMs?: number;
}

/** DesiredStore in Redis, shared by every replica; keys `<prefix>:desired:<namespace>/<name>`. */
export class RedisDesiredStore implements DesiredStore {
  readonly #redis: RedisWithRecord;
  readonly #prefix: string;
  readonly #ttlMs: number;

  constructor(redis: Redis, prefix: string, options: RedisDesiredStoreOptions = {}) {
    if (typeof (redis as unknown as Partial<RedisWithRecord>)[RECORD_COMMAND] !== 'function') {
      redis.defineCommand(RECORD_COMMAND, { numberOfKeys: 1, lua: RECORD_SCRIPT });
    }
    this.#redis = redis as RedisWithRecord;
    this.#prefix = prefix;
    this.#ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
  }

  /** The Redis key of an entry's record; the prefix's hash tag keeps it in the queue's slot. */
  keyOf(key: EntryKey): string {
    return `${this.#prefix}:desired:${key}`;
  }

  async record(change: Change): Promise<boolean> {
    // A producer connection has no offline queue: wait for it instead of failing while it connects.
    if (this.#redis.status !== 'ready') await redisReady(this.#redis);
    const won = await this.#redis.vmsRecordDesired(
      this.keyOf(change.key),
      canonicalStamp(change.observedAt),
      JSON.stringify(change),
      this.#ttlMs,
    );
    return Number(won) === 1;
  }

  async get(key: EntryKey): Promise<Change | null> {
    if (this.#redis.status !== 'ready') await redisReady(this.#redis);
    const raw = await this.#redis.hget(this.keyOf(key), 'change');
    return raw === null ? null : (JSON.parse(raw) as Change);
  }
}

/** DesiredStore in this process's memory, for `sync --once` and tests. */
export class MemoryDesiredStore implements DesiredStore {
  readonly #records = new Map<EntryKey, { at: string; change: Change }>();

  async record(change: Change): Promise<boolean> {
    const at = canonicalStamp(change.observedAt);
    const current = this.#records.get(change.key);
    if (current && current.at > at) return false;
    // A copy, so that later changes to the caller's object cannot rewrite history.
    this.#records.set(change.key, { at, change: structuredClone(change) });
    return true;
  }

  async get(key: EntryKey): Promise<Change | null> {
    const current = this.#records.get(key);
    return current ? structuredClone(current.change) : null;
  }

  /** How many keys are recorded. */
  get size(): number {
    return this.#records.size;
  }
}
