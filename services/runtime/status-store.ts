// The picture every replica shares, in Redis: per scope the last resync and what it found, and
// per entry the last write error. `/status`, `/readyz` and `explain` read it; any replica may
// have done the work.
import type { Redis } from 'ioredis';
import type { Problem, Skip } from '../model.ts';

/** What the last complete resync of a scope found: the figures the scope gauges show. */
export interface CompleteResync {
  /** RFC 3339 time that resync ended. */
  at: string;
  provider: string;
  instances: number;
  entries: number;
  heldDeletes: number;
  /** Skips by code. */
  skipCodes: Record<string, number>;
}

/** An entry the scope wants and does not get, because it belongs to another scope (or is not ours). */
export interface ScopeConflict {
  key: string;
  kind: string;
  /** The scope that keeps the entry, when it is ours. */
  ownerScopeKey?: string;
  reason: string;
}

/** What the last resync of one scope found. */
export interface ScopeStatus {
  scopeKey: string;
  /** RFC 3339 time the last resync (successful or not) ended. */
  lastResyncAt: string;
  /** RFC 3339 time of the last resync whose listing was complete; empty when none was. */
  lastSuccessAt: string;
  durationMs: number;
  complete: boolean;
  instances: number;
  entries: number;
  owned: number;
  changes: number;
  held: Array<{ deletes: number; reason: string }>;
  problems: Problem[];
  /** Skipped instances (at most MAX_SKIPS kept), and how many there were in all. */
  skips: Skip[];
  skipCount: number;
  /** Why the resync failed outright (provider error, cluster unreachable); empty when it ran. */
  error: string;
  /** Names the scope wants that another scope (or something not ours) holds; at most MAX_SKIPS kept. */
  conflicts?: ScopeConflict[];
  conflictCount?: number;
  /** The last resync whose listing was complete; absent until there is one. */
  lastComplete?: CompleteResync;
}

/** The small part of a scope's status that /metrics reads at every scrape. */
export type ScopeGaugeStatus = Pick<ScopeStatus, 'lastComplete' | 'conflictCount'>;

/** The last failure to write one entry. */
export interface WriteError {
  key: string;
  code: string;
  message: string;
  at: string;
}

/** Skips kept per scope; the rest are counted only, so a huge scope cannot bloat Redis. */
export const MAX_SKIPS = 1000;
/** Write errors kept in all. */
export const MAX_WRITE_ERRORS = 10_000;

/** How long the successes whose errors are to be forgotten are gathered for one HDEL. */
const CLEAR_WINDOW_MS = 100;

/** Scope statuses and write errors shared through Redis. */
export class StatusStore {
  readonly #redis: Redis;
  readonly #scopes: string;
  /** Per scope, the ScopeGaugeStatus alone: a scrape must not parse a thousand skips per scope. */
  readonly #gauges: string;
  readonly #errors: string;
  /** Entries whose errors are to be forgotten at the next HDEL (clearWriteError). */
  readonly #clearing = new Set<string>();
  #cleared: Promise<void> | undefined;
  /** Ends the window of the HDEL to come now (flushClears). */
  #clearNow: (() => void) | undefined;
  readonly #clearWindowMs: number;

  /** `clearWindowMs`: how long successes are gathered for one HDEL (CLEAR_WINDOW_MS). */
  constructor(redis: Redis, prefix: string, options: { clearWindowMs?: number } = {}) {
    this.#redis = redis;
    this.#clearWindowMs = options.clearWindowMs ?? CLEAR_WINDOW_MS;
    this.#scopes = `${prefix}:status:scopes`;
    this.#gauges = `${prefix}:status:gauges`;
    this.#errors = `${prefix}:status:write-errors`;
  }

  /** Records a scope's resync. */
  async putScope(status: ScopeStatus): Promise<void> {
    const stored: ScopeStatus = { ...status, skips: status.skips.slice(0, MAX_SKIPS), conflicts: status.conflicts?.slice(0, MAX_SKIPS) ?? [] };
    const gauges: ScopeGaugeStatus = { lastComplete: status.lastComplete, conflictCount: status.conflictCount ?? 0 };
    await this.#redis.multi().hset(this.#scopes, status.scopeKey, JSON.stringify(stored)).hset(this.#gauges, status.scopeKey, JSON.stringify(gauges)).exec();
  }

  /** Every scope's last status, by scope key. */
  async scopes(): Promise<Map<string, ScopeStatus>> {
    const all = await this.#redis.hgetall(this.#scopes);
    return new Map(Object.entries(all).map(([k, v]) => [k, JSON.parse(v) as ScopeStatus]));
  }

  /** One scope's last status, or undefined before its first resync. */
  async scope(scopeKey: string): Promise<ScopeStatus | undefined> {
    const value = await this.#redis.hget(this.#scopes, scopeKey);
    return value ? (JSON.parse(value) as ScopeStatus) : undefined;
  }

  /** Every scope's gauge figures, by scope key. */
  async gauges(): Promise<Map<string, ScopeGaugeStatus>> {
    const all = await this.#redis.hgetall(this.#gauges);
    return new Map(Object.entries(all).map(([k, v]) => [k, JSON.parse(v) as ScopeGaugeStatus]));
  }

  /** Removes scopes that are no longer configured. */
  async pruneScopes(keep: ReadonlySet<string>): Promise<void> {
    const keys = await this.#redis.hkeys(this.#scopes);
    const stale = keys.filter((k) => !keep.has(k));
    if (stale.length > 0) await this.#redis.multi().hdel(this.#scopes, ...stale).hdel(this.#gauges, ...stale).exec();
  }

  /** Remembers why an entry could not be written; when the store is full, only entries already in it are updated. */
  async putWriteError(error: WriteError): Promise<void> {
    // Newer than a success of the same entry still waiting to be forgotten.
    this.#clearing.delete(error.key);
    const count = await this.#redis.hlen(this.#errors);
    // A full store must still replace an entry's old error, or explain would show a stale reason.
    if (count >= MAX_WRITE_ERRORS && !(await this.#redis.hexists(this.#errors, error.key))) return;
    await this.#redis.hset(this.#errors, error.key, JSON.stringify(error));
  }

  /**
   * Forgets an entry's error once a write succeeded. Every write that succeeds asks this, so the
   * keys asked for within a window (CLEAR_WINDOW_MS) are forgotten with one HDEL: in an event
   * storm a write ends in most turns of the event loop, and a command per turn was a socket write
   * each. A process that stops calls flushClears, so that no success is left unsaid.
   */
  clearWriteError(key: string): Promise<void> {
    this.#clearing.add(key);
    if (this.#cleared === undefined) {
      const window = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#clearWindowMs).unref();
        this.#clearNow = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#cleared = window.then(async () => {
        const keys = [...this.#clearing];
        this.#clearing.clear();
        this.#cleared = undefined;
        this.#clearNow = undefined;
        if (keys.length > 0) await this.#redis.hdel(this.#errors, ...keys);
      });
    }
    return this.#cleared;
  }

  /** Forgets at once the errors whose successes wait for their window; resolves when that is done. */
  flushClears(): Promise<void> {
    this.#clearNow?.();
    return this.#cleared ?? Promise.resolve();
  }

  /** The last write error of an entry, if any. */
  async writeError(key: string): Promise<WriteError | null> {
    const value = await this.#redis.hget(this.#errors, key);
    return value ? (JSON.parse(value) as WriteError) : null;
  }

  /** All remembered write errors. */
  async writeErrors(): Promise<WriteError[]> {
    const all = await this.#redis.hvals(this.#errors);
    return all.map((v) => JSON.parse(v) as WriteError);
  }
}
