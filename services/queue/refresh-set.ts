// The refreshes webhooks ask for, in Redis, one member per instance: a sorted set of references
// by the time they are due, and a sorted set of those being refreshed by when their claim lapses.
// An event pushes its instance's refresh out by the debounce (a burst of events is one refresh);
// a replica claims the due ones many at a time, so that a storm costs a few Redis round trips
// per batch instead of a queued job (three scripts) per event. At most one refresh of an
// instance runs at once: an event that comes meanwhile leaves one more waiting behind it. A claim
// whose replica died lapses, and its references are due again. Every time is Redis's clock.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { InstanceRef } from '../model.ts';

// Every script starts with Redis's time in milliseconds, `now`.
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// KEYS: due, refs, attempts. ARGV: delay ms, then id and reference JSON pairs.
const REQUEST_SCRIPT = `${NOW}local due = now + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], due, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
return #ARGV / 2
`;

// KEYS: due, refs, attempts, claimed, tokens. ARGV: most to claim, lease ms, token.
// Returns the claimed ids, references and attempts made (flat), then the ms until the next
// reference is due (-1: none waits).
const CLAIM_SCRIPT = `${NOW}local lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(lapsed) do
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('ZADD', KEYS[1], 'NX', now, id)
end
local most = tonumber(ARGV[1])
local out = {}
local taken = 0
-- Due references still claimed stay where they are; past them, at most a few pages are read.
local held = 0
for _ = 1, 10 do
  local page = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', held, most)
  for _, id in ipairs(page) do
    if redis.call('ZSCORE', KEYS[4], id) then
      held = held + 1
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), id)
      redis.call('HSET', KEYS[5], id, ARGV[3])
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
      out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
      taken = taken + 1
      if taken == most then break end
    end
  end
  if taken == most or #page < most then break end
end
local nextDue = -1
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #later > 0 then nextDue = tonumber(later[2]) - now end
out[#out + 1] = nextDue
return out
`;

// KEYS: due, refs, attempts, claimed, tokens. ARGV: token, retry delay ms (-1: done), then ids.
// A claim is ended only by its own token. A retried reference is due again after the delay unless
// a newer event made it due already; a reference nothing waits for any more is forgotten.
const FINISH_SCRIPT = `${NOW}local delay = tonumber(ARGV[2])
local ended = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[5], id) == ARGV[1] then
    redis.call('ZREM', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    ended = ended + 1
    if delay >= 0 then
      if redis.call('ZADD', KEYS[1], 'NX', now + delay, id) == 1 then
        redis.call('HINCRBY', KEYS[3], id, 1)
      end
    elseif not redis.call('ZSCORE', KEYS[1], id) then
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
    end
  end
end
return ended
`;

// KEYS: claimed, tokens. ARGV: token, lease ms, then ids. Extends the claims `token` still holds.
const RENEW_SCRIPT = `${NOW}local renewed = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
`;

// KEYS: due, claimed. Returns due now, due later, claimed.
const COUNTS_SCRIPT = `${NOW}return { redis.call('ZCOUNT', KEYS[1], '-inf', now), redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'), redis.call('ZCARD', KEYS[2]) }
`;

/** A reference a replica claimed, with the refresh attempts that failed before this one. */
export interface ClaimedRef {
  id: string;
  ref: InstanceRef;
  attemptsMade: number;
}

/** What one claim took. */
export interface Claim {
  /** Ends these references' claims (finish, retry); no other claim can. */
  token: string;
  refs: ClaimedRef[];
  /** References whose stored text could not be read: their claims are ended, they are dropped. */
  unreadable: string[];
  /** Milliseconds until the next reference is due (one claimed now does not count); undefined when none is waiting. */
  nextDueInMs: number | undefined;
}

/** The refreshes waiting and running, as /status shows them. */
export interface RefreshCounts {
  waiting: number;
  delayed: number;
  active: number;
}

interface RedisWithScripts extends Redis {
  vmsRefreshRequest(due: string, refs: string, attempts: string, ...argv: string[]): Promise<number>;
  vmsRefreshClaim(due: string, refs: string, attempts: string, claimed: string, tokens: string, most: string, leaseMs: string, token: string): Promise<Array<string | number>>;
  vmsRefreshFinish(due: string, refs: string, attempts: string, claimed: string, tokens: string, token: string, delayMs: string, ...ids: string[]): Promise<number>;
  vmsRefreshRenew(claimed: string, tokens: string, token: string, leaseMs: string, ...ids: string[]): Promise<number>;
  vmsRefreshCounts(due: string, claimed: string): Promise<number[]>;
}

/** The refresh set under `<prefix>:refresh-*`; the prefix's hash tag keeps it in one Redis Cluster slot. */
export class RefreshSet {
  readonly #redis: RedisWithScripts;
  readonly #keys: readonly [string, string, string, string, string];

  constructor(redis: Redis, prefix: string) {
    const scripted = redis as unknown as Partial<RedisWithScripts>;
    if (typeof scripted.vmsRefreshRequest !== 'function') {
      redis.defineCommand('vmsRefreshRequest', { numberOfKeys: 3, lua: REQUEST_SCRIPT });
      redis.defineCommand('vmsRefreshClaim', { numberOfKeys: 5, lua: CLAIM_SCRIPT });
      redis.defineCommand('vmsRefreshFinish', { numberOfKeys: 5, lua: FINISH_SCRIPT });
      redis.defineCommand('vmsRefreshRenew', { numberOfKeys: 2, lua: RENEW_SCRIPT });
      redis.defineCommand('vmsRefreshCounts', { numberOfKeys: 2, lua: COUNTS_SCRIPT });
    }
    this.#redis = redis as RedisWithScripts;
    this.#keys = [`${prefix}:refresh-due`, `${prefix}:refresh-refs`, `${prefix}:refresh-attempts`, `${prefix}:refresh-claimed`, `${prefix}:refresh-tokens`];
  }

  /**
   * Makes each reference due `delayMs` from now, wherever it was due before: a burst of events for
   * one instance is one refresh, after the last. `id` names an instance (refreshId); its newest
   * reference is the one refreshed.
   */
  async request(items: ReadonlyArray<{ id: string; ref: InstanceRef }>, delayMs: number): Promise<void> {
    if (items.length === 0) return;
    const [due, refs, attempts] = this.#keys;
    const argv = [String(Math.max(0, Math.round(delayMs)))];
    for (const { id, ref } of items) argv.push(id, JSON.stringify(ref));
    await this.#redis.vmsRefreshRequest(due, refs, attempts, ...argv);
  }

  /**
   * Claims up to `most` due references for `leaseMs` (renew extends it); references another claim
   * holds stay due until it ends. Claims of a replica that died lapse and are due again.
   */
  async claim(most: number, leaseMs: number): Promise<Claim> {
    const token = randomUUID();
    const out = await this.#redis.vmsRefreshClaim(...this.#keys, String(most), String(leaseMs), token);
    const nextDue = Number(out[out.length - 1]);
    const refs: ClaimedRef[] = [];
    const unreadable: string[] = [];
    for (let i = 0; i + 2 < out.length; i += 3) {
      const id = String(out[i]);
      const ref = parseRef(String(out[i + 1]));
      if (ref === undefined) unreadable.push(id);
      else refs.push({ id, ref, attemptsMade: Number(out[i + 2]) || 0 });
    }
    if (unreadable.length > 0) await this.finish(token, unreadable);
    return { token, refs, unreadable, nextDueInMs: nextDue >= 0 ? nextDue : undefined };
  }

  /** Ends the claims of `ids` under `token`: refreshed, they are forgotten unless an event made them due again. */
  async finish(token: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.#redis.vmsRefreshFinish(...this.#keys, token, '-1', ...ids);
  }

  /** Ends the claims of `ids` under `token` as failed: each is due again after `delayMs`, one more attempt made. */
  async retry(token: string, ids: readonly string[], delayMs: number): Promise<number> {
    if (ids.length === 0) return 0;
    return this.#redis.vmsRefreshFinish(...this.#keys, token, String(Math.max(0, Math.round(delayMs))), ...ids);
  }

  /** Extends the claims of `ids` that `token` still holds to `leaseMs` from now, while they are refreshed. */
  async renew(token: string, ids: readonly string[], leaseMs: number): Promise<number> {
    if (ids.length === 0) return 0;
    const [, , , claimed, tokens] = this.#keys;
    return this.#redis.vmsRefreshRenew(claimed, tokens, token, String(leaseMs), ...ids);
  }

  async counts(): Promise<RefreshCounts> {
    const [due, , , claimed] = this.#keys;
    const [waiting, delayed, active] = await this.#redis.vmsRefreshCounts(due, claimed);
    return { waiting: waiting ?? 0, delayed: delayed ?? 0, active: active ?? 0 };
  }
}

function parseRef(text: string): InstanceRef | undefined {
  try {
    const ref = JSON.parse(text) as InstanceRef | null;
    return ref !== null && typeof ref === 'object' && typeof ref.provider === 'string' && typeof ref.id === 'string' ? ref : undefined;
  } catch {
    return undefined;
  }
}
