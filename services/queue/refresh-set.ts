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

// Keys, in this order in every script: due (sorted by due time), refs (id to reference JSON),
// attempts (id to failed tries), claimed (sorted by when the claim lapses), tokens (id to the token
// of its claim), behind (due times of events that came while their instance was claimed), and
// the claim's own record (the ids a token took).

// ARGV: delay ms, then id and reference JSON pairs. An instance being refreshed waits behind its
// claim, so that the due set holds only what can be claimed.
const REQUEST_SCRIPT = `${NOW}local due = now + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[4], id) then
    redis.call('ZADD', KEYS[6], due, id)
  else
    redis.call('ZADD', KEYS[1], due, id)
  end
  redis.call('HSET', KEYS[2], id, ARGV[i + 1])
  redis.call('HDEL', KEYS[3], id)
end
return #ARGV / 2
`;

// Ends the claim of an id (out of claimed and tokens); an event that waited behind it becomes due.
const END_CLAIM = `
local function endClaim(id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  local waited = redis.call('ZSCORE', KEYS[6], id)
  if waited then
    redis.call('ZREM', KEYS[6], id)
    redis.call('ZADD', KEYS[1], waited, id)
    return true
  end
  return false
end
`;

// ARGV: most to claim, lease ms, token. Returns the claimed ids, references and attempts made
// (flat), then the ms until the next reference is due (-1: none waits). Run twice with one token
// (ioredis sends a command again when the connection dropped before its answer), it answers with
// what that token took the first time.
const CLAIM_SCRIPT = `${NOW}${END_CLAIM}local out = {}
local function give(id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
end
if redis.call('EXISTS', KEYS[7]) == 1 then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[7])) do
    if redis.call('HGET', KEYS[5], id) == ARGV[3] then give(id) end
  end
else
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(lapsed) do
    -- The refresh that died is due now, whatever event waited behind it.
    endClaim(id)
    local due = redis.call('ZSCORE', KEYS[1], id)
    if not due or tonumber(due) > now then redis.call('ZADD', KEYS[1], now, id) end
  end
  local lease = now + tonumber(ARGV[2])
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[4], lease, id)
    redis.call('HSET', KEYS[5], id, ARGV[3])
    redis.call('SADD', KEYS[7], id)
    give(id)
  end
  if #out > 0 then redis.call('PEXPIRE', KEYS[7], ARGV[2]) end
end
local nextDue = -1
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #later > 0 then nextDue = tonumber(later[2]) - now end
out[#out + 1] = nextDue
return out
`;

// ARGV: token, retry delay ms (-1: done), then ids. A claim is ended only by its own token. A
// retried reference is due again after the delay unless an event made it due already (then its
// tries start again); a reference nothing waits for any more is forgotten.
const FINISH_SCRIPT = `${NOW}${END_CLAIM}local delay = tonumber(ARGV[2])
local ended = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[5], id) == ARGV[1] then
    ended = ended + 1
    if not endClaim(id) then
      if delay >= 0 then
        redis.call('ZADD', KEYS[1], now + delay, id)
        redis.call('HINCRBY', KEYS[3], id, 1)
      else
        redis.call('HDEL', KEYS[2], id)
        redis.call('HDEL', KEYS[3], id)
      end
    end
  end
end
redis.call('DEL', KEYS[7])
return ended
`;

// ARGV: token, lease ms, then ids. Extends the claims the token still holds.
const RENEW_SCRIPT = `${NOW}local renewed = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[5], ARGV[i]) == ARGV[1] then
    redis.call('ZADD', KEYS[4], 'XX', now + tonumber(ARGV[2]), ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
`;

// Returns due now, due later (and waiting behind a claim), claimed.
const COUNTS_SCRIPT = `${NOW}return { redis.call('ZCOUNT', KEYS[1], '-inf', now), redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') + redis.call('ZCARD', KEYS[6]), redis.call('ZCARD', KEYS[4]) }
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

type Keys = [due: string, refs: string, attempts: string, claimed: string, tokens: string, behind: string, claim: string];

interface RedisWithScripts extends Redis {
  vmsRefreshRequest(...keysAndArgs: string[]): Promise<number>;
  vmsRefreshClaim(...keysAndArgs: string[]): Promise<Array<string | number>>;
  vmsRefreshFinish(...keysAndArgs: string[]): Promise<number>;
  vmsRefreshRenew(...keysAndArgs: string[]): Promise<number>;
  vmsRefreshCounts(...keysAndArgs: string[]): Promise<number[]>;
}

const KEY_COUNT = 7;

/** The refresh set under `<prefix>:refresh-*`; the prefix's hash tag keeps it in one Redis Cluster slot. */
export class RefreshSet {
  readonly #redis: RedisWithScripts;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    const scripted = redis as unknown as Partial<RedisWithScripts>;
    if (typeof scripted.vmsRefreshRequest !== 'function') {
      redis.defineCommand('vmsRefreshRequest', { numberOfKeys: KEY_COUNT, lua: REQUEST_SCRIPT });
      redis.defineCommand('vmsRefreshClaim', { numberOfKeys: KEY_COUNT, lua: CLAIM_SCRIPT });
      redis.defineCommand('vmsRefreshFinish', { numberOfKeys: KEY_COUNT, lua: FINISH_SCRIPT });
      redis.defineCommand('vmsRefreshRenew', { numberOfKeys: KEY_COUNT, lua: RENEW_SCRIPT });
      redis.defineCommand('vmsRefreshCounts', { numberOfKeys: KEY_COUNT, lua: COUNTS_SCRIPT });
    }
    this.#redis = redis as RedisWithScripts;
    this.#prefix = prefix;
  }

  /** Every key a script may touch; the last is the record of `token`'s claim. */
  #keys(token = ''): Keys {
    const p = this.#prefix;
    return [`${p}:refresh-due`, `${p}:refresh-refs`, `${p}:refresh-attempts`, `${p}:refresh-claimed`, `${p}:refresh-tokens`, `${p}:refresh-behind`, `${p}:refresh-claim:${token}`];
  }

  /**
   * Makes each reference due `delayMs` from now, wherever it was due before: a burst of events for
   * one instance is one refresh, after the last. One being refreshed gets one more refresh, due
   * once the running one ends. `id` names an instance (refreshId); its newest reference is the one
   * refreshed.
   */
  async request(items: ReadonlyArray<{ id: string; ref: InstanceRef }>, delayMs: number): Promise<void> {
    if (items.length === 0) return;
    const argv = [String(Math.max(0, Math.round(delayMs)))];
    for (const { id, ref } of items) argv.push(id, JSON.stringify(ref));
    await this.#redis.vmsRefreshRequest(...this.#keys(), ...argv);
  }

  /**
   * Claims up to `most` due references for `leaseMs` (renew extends it). Claims of a replica that
   * died lapse and are due again.
   */
  async claim(most: number, leaseMs: number): Promise<Claim> {
    const token = randomUUID();
    const out = await this.#redis.vmsRefreshClaim(...this.#keys(token), String(most), String(leaseMs), token);
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
    return this.#redis.vmsRefreshFinish(...this.#keys(token), token, '-1', ...ids);
  }

  /** Ends the claims of `ids` under `token` as failed: each is due again after `delayMs`, one more attempt made. */
  async retry(token: string, ids: readonly string[], delayMs: number): Promise<number> {
    if (ids.length === 0) return 0;
    return this.#redis.vmsRefreshFinish(...this.#keys(token), token, String(Math.max(0, Math.round(delayMs))), ...ids);
  }

  /** Extends the claims of `ids` that `token` still holds to `leaseMs` from now, while they are refreshed. */
  async renew(token: string, ids: readonly string[], leaseMs: number): Promise<number> {
    if (ids.length === 0) return 0;
    return this.#redis.vmsRefreshRenew(...this.#keys(token), token, String(leaseMs), ...ids);
  }

  async counts(): Promise<RefreshCounts> {
    const [waiting, delayed, active] = await this.#redis.vmsRefreshCounts(...this.#keys());
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
