// The newest desired change per entry, kept apart from the jobs. A job carries only the key and
// applies whatever is newest when it runs, so the order in which jobs run, retry or coalesce
// never decides the outcome: the newest observation does.
import type { Redis } from 'ioredis';
import { type Change, type EntryKey, SCOPE_ANNOTATION } from '../model.ts';
import { annotationOfEntry, nameOfEntry, plainChange } from '../desired-entry.ts';
import { canonicalStamp } from '../stamp.ts';
import { redisReady } from './redis.ts';

/**
 * How far an observation that decides about a whole scope (a complete listing) or about a few
 * names of it (a refresh) has got. `listed`: it has read what it decides about and is about to
 * read the cluster and plan; from then on a delete from an older observation of those entries is
 * void, since the newer one decides about them itself and must not see an entry it keeps removed
 * behind its back. `planned`: its changes are recorded; from then on an older upsert is void too,
 * so a slower, older listing cannot bring back an entry for an instance the newer one saw
 * stopped. (An older upsert is voided only once the newer decisions are in: an observation that
 * dies in between must not take away what the older one wanted, while a void delete can only
 * ever keep an entry.)
 */
export type ListingPhase = 'listed' | 'planned';

/** Which apply job is to apply a recorded change, and where jobs are kept. */
export interface ApplyClaim {
  jobId: string;
  /** The Redis key of a job is this followed by its id (BullMQ's `<prefix>:<queue>:<id>`). */
  jobKeyPrefix: string;
}

/** What recording a change for an apply job did (see DesiredStore.recordFor). */
export type RecordOutcome = 'claimed' | 'pending' | 'superseded';

/** The newest change per entry key. */
export interface DesiredStore {
  /**
   * Keeps `change` unless a newer one is there, or unless a newer observation of its scope (or of
   * its name in that scope) made it void (confirm); true when it is now the newest.
   */
  record(change: Change): Promise<boolean>;
  /**
   * record(), and the claim of an apply job on the key: `claimed` when the job `claim.jobId` is to
   * apply it (the caller queues that job), `pending` when another job that has not taken the key
   * yet (see takeMany) will, or `superseded` when the change is not the newest.
   */
  recordFor(change: Change, claim: ApplyClaim): Promise<RecordOutcome>;
  /** recordFor() of each change, for one claim, in one go; the outcomes in the order of `changes`. */
  recordForMany(changes: readonly Change[], claim: ApplyClaim): Promise<RecordOutcome[]>;
  /** The newest change for `key`, or null when none is known or a newer observation made it void. */
  get(key: EntryKey): Promise<Change | null>;
  /** get() of each key, in one go. */
  getMany(keys: readonly EntryKey[]): Promise<Array<Change | null>>;
  /**
   * getMany(), by the job `jobId` that is about to apply the keys: each key's claim is let go if
   * it is that job's, so that a change recorded from now on queues a job of its own.
   */
  takeMany(keys: readonly EntryKey[], jobId: string): Promise<Array<Change | null>>;
  /**
   * Says that an observation of `scopeKey` stamped `observedAt` reached `phase` (see
   * ListingPhase): for the whole scope, or only for the entries named `names` (a refresh).
   */
  confirm(scopeKey: string, observedAt: string, phase: ListingPhase, names?: readonly string[]): Promise<void>;
}

// Compare-and-set in one step, so two producers recording at once cannot both win with the older
// one last. Stamps arrive in canonical form (fixed width, unreadable ones empty), so comparing
// them as strings compares the instants. Equal times: the later record wins. A change that a
// newer observation of its scope (KEYS[2], field ARGV[4]) or of its name (KEYS[3]) made void is
// refused; the caller passes the marks of the phase that voids this kind of change.
//
// The record also keeps which apply job is to apply it (field q, the job's id), so that a burst of
// changes to one entry queues one job, not one per change: a newer change finds the claim of a
// job that exists, has not finished and has not taken the key yet (takeMany lets the claim go), and
// queues nothing (2). Any other claim, a job that was never added (its producer died), is gone or
// ended, is taken over by the caller's job (1), so a change never waits on a job that will not
// come.
const RECORD_SCRIPT = `
if ARGV[4] ~= '' then
  local scope = redis.call('HGET', KEYS[2], ARGV[4])
  if scope and scope > ARGV[1] then
    return 0
  end
  local name = redis.call('GET', KEYS[3])
  if name and name > ARGV[1] then
    return 0
  end
end
local current = redis.call('HGET', KEYS[1], 'at')
if current and current > ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'at', ARGV[1], 'change', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[5] == '' then
  return 1
end
local claim = redis.call('HGET', KEYS[1], 'q')
if claim and claim ~= ARGV[5] then
  local job = ARGV[6] .. claim
  if redis.call('EXISTS', job) == 1 and redis.call('HEXISTS', job, 'finishedOn') == 0 then
    return 2
  end
end
redis.call('HSET', KEYS[1], 'q', ARGV[5])
return 1
`;

// The newest change of each record (KEYS), its claim let go if it is the job ARGV[1]'s (an empty
// ARGV[1] takes nothing).
const TAKE_SCRIPT = `
local changes = {}
for i, key in ipairs(KEYS) do
  if ARGV[1] ~= '' and redis.call('HGET', key, 'q') == ARGV[1] then
    redis.call('HDEL', key, 'q')
  end
  changes[i] = redis.call('HGET', key, 'change')
end
return changes
`;

// The marks changes are judged against: for the i-th change, its scope's mark (field ARGV[i] of
// the hash KEYS[2i-1]) and its name's mark (KEYS[2i]).
const MARKS_SCRIPT = `
local marks = {}
for i, scope in ipairs(ARGV) do
  marks[2 * i - 1] = redis.call('HGET', KEYS[2 * i - 1], scope)
  marks[2 * i] = redis.call('GET', KEYS[2 * i])
end
return marks
`;

// Moves a scope's mark (KEYS[1], field ARGV[1]) forward, never back.
const CONFIRM_SCOPE_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (not current) or current < ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
`;

// Moves each name's mark (KEYS) forward, never back; the marks expire like records do.
const CONFIRM_NAMES_SCRIPT = `
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if (not current) or current < ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return 1
`;

type RedisWithScripts = Redis & {
  vmsRecordDesired(
    key: string,
    scopeMarks: string,
    nameMark: string,
    at: string,
    change: string,
    ttlMs: number,
    scopeKey: string,
    jobId: string,
    jobKeyPrefix: string,
  ): Promise<number>;
  vmsTakeDesired(numberOfKeys: number, ...keysThenArgs: string[]): Promise<Array<string | null>>;
  vmsDesiredMarks(numberOfKeys: number, ...keysThenArgs: string[]): Promise<Array<string | null>>;
  vmsConfirmScope(scopeMarks: string, scopeKey: string, at: string): Promise<number>;
  vmsConfirmNames(numberOfKeys: number, ...keysThenArgs: string[]): Promise<number>;
};

/** Options of RedisDesiredStore. */
export interface RedisDesiredStoreOptions {
  /** How long a record (and a name's mark) outlives its last update (default 24 h), so that the store does not grow forever. */
  ttlMs?: number;
}

/**
 * DesiredStore in Redis, shared by every replica: records `<prefix>:desired:<namespace>/<name>`;
 * per phase, the scopes' marks in the hash `<prefix>:desired-<phase>` and the names' marks in
 * `<prefix>:desired-<phase>:<scope>|<name>`.
 */
export class RedisDesiredStore implements DesiredStore {
  readonly #redis: RedisWithScripts;
  readonly #prefix: string;
  readonly #ttlMs: number;

  constructor(redis: Redis, prefix: string, options: RedisDesiredStoreOptions = {}) {
    const scripted = redis as unknown as Partial<RedisWithScripts>;
    if (typeof scripted.vmsRecordDesired !== 'function') {
      redis.defineCommand('vmsRecordDesired', { numberOfKeys: 3, lua: RECORD_SCRIPT });
      redis.defineCommand('vmsTakeDesired', { lua: TAKE_SCRIPT });
      redis.defineCommand('vmsDesiredMarks', { lua: MARKS_SCRIPT });
      redis.defineCommand('vmsConfirmScope', { numberOfKeys: 1, lua: CONFIRM_SCOPE_SCRIPT });
      redis.defineCommand('vmsConfirmNames', { lua: CONFIRM_NAMES_SCRIPT });
    }
    this.#redis = redis as RedisWithScripts;
    this.#prefix = prefix;
    this.#ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
  }

  /** The Redis key of an entry's record; the prefix's hash tag keeps it in the queue's slot. */
  keyOf(key: EntryKey): string {
    return `${this.#prefix}:desired:${key}`;
  }

  #scopeMarks(phase: ListingPhase): string {
    return `${this.#prefix}:desired-${phase}`;
  }

  #nameMark(phase: ListingPhase, scopeKey: string, name: string): string {
    return `${this.#prefix}:desired-${phase}:${scopeKey}|${name}`;
  }

  async record(change: Change): Promise<boolean> {
    return (await this.#record(change, undefined)) !== 0;
  }

  async recordFor(change: Change, claim: ApplyClaim): Promise<RecordOutcome> {
    return recordOutcome(await this.#record(change, claim));
  }

  /**
   * One pipeline: a socket write for the whole batch rather than one per change, which is most
   * of what recording costs this process when a resync changes many entries.
   */
  async recordForMany(changes: readonly Change[], claim: ApplyClaim): Promise<RecordOutcome[]> {
    if (changes.length === 0) return [];
    if (this.#redis.status !== 'ready') await redisReady(this.#redis);
    const pipeline = this.#redis.pipeline() as unknown as RedisWithScripts;
    for (const change of changes) pipeline.vmsRecordDesired(...this.#recordArgs(change, claim));
    const replies = (await (pipeline as unknown as ReturnType<Redis['pipeline']>).exec()) ?? [];
    return replies.map(([err, outcome]) => {
      if (err) throw err;
      return recordOutcome(Number(outcome));
    });
  }

  async #record(change: Change, claim: ApplyClaim | undefined): Promise<number> {
    // A producer connection has no offline queue: wait for it instead of failing while it connects.
    if (this.#redis.status !== 'ready') await redisReady(this.#redis);
    return Number(await this.#redis.vmsRecordDesired(...this.#recordArgs(change, claim)));
  }

  /** The record script's keys and arguments for `change`. */
  #recordArgs(change: Change, claim: ApplyClaim | undefined): Parameters<RedisWithScripts['vmsRecordDesired']> {
    const { scopeKey, name, phase } = decidedBy(change);
    return [
      this.keyOf(change.key),
      this.#scopeMarks(phase),
      this.#nameMark(phase, scopeKey, name),
      canonicalStamp(change.observedAt),
      JSON.stringify(change),
      this.#ttlMs,
      scopeKey,
      claim?.jobId ?? '',
      claim?.jobKeyPrefix ?? '',
    ];
  }

  async get(key: EntryKey): Promise<Change | null> {
    if (this.#redis.status !== 'ready') await redisReady(this.#redis);
    return this.#unlessVoid(await this.#redis.hget(this.keyOf(key), 'change'));
  }

  async getMany(keys: readonly EntryKey[]): Promise<Array<Change | null>> {
    return this.takeMany(keys, '');
  }

  async takeMany(keys: readonly EntryKey[], jobId: string): Promise<Array<Change | null>> {
    if (keys.length === 0) return [];
    if (this.#redis.status !== 'ready') await redisReady(this.#redis);
    const raws = await this.#redis.vmsTakeDesired(keys.length, ...keys.map((k) => this.keyOf(k)), jobId);
    const changes = raws.map((raw) => (raw === null ? null : (JSON.parse(raw) as Change)));
    // Every change's marks in one more round trip, for those a scope decides about.
    const judged: Array<{ index: number; change: Change }> = [];
    const markKeys: string[] = [];
    const scopeKeys: string[] = [];
    changes.forEach((change, index) => {
      if (change === null) return;
      const { scopeKey, name, phase } = decidedBy(change);
      if (scopeKey === '') return;
      judged.push({ index, change });
      markKeys.push(this.#scopeMarks(phase), this.#nameMark(phase, scopeKey, name));
      scopeKeys.push(scopeKey);
    });
    if (judged.length === 0) return changes;
    const marks = await this.#redis.vmsDesiredMarks(markKeys.length, ...markKeys, ...scopeKeys);
    judged.forEach(({ index, change }, j) => {
      if (isVoid(change, marks[2 * j]) || isVoid(change, marks[2 * j + 1])) changes[index] = null;
    });
    return changes;
  }

  async #unlessVoid(raw: string | null): Promise<Change | null> {
    if (raw === null) return null;
    const change = JSON.parse(raw) as Change;
    const { scopeKey, name, phase } = decidedBy(change);
    if (scopeKey === '') return change;
    // Both marks in one round trip: two commands written back to back. Not a pipeline object, which
    // copies every script defined on the connection (BullMQ's dozens) each time it is made.
    const [scopeMark, nameMark] = await Promise.all([this.#redis.hget(this.#scopeMarks(phase), scopeKey), this.#redis.get(this.#nameMark(phase, scopeKey, name))]);
    return isVoid(change, scopeMark) || isVoid(change, nameMark) ? null : change;
  }

  async confirm(scopeKey: string, observedAt: string, phase: ListingPhase, names?: readonly string[]): Promise<void> {
    if (this.#redis.status !== 'ready') await redisReady(this.#redis);
    const at = canonicalStamp(observedAt);
    // A planned observation was listed too: both marks move, so the phases never disagree.
    for (const p of phasesUpTo(phase)) {
      if (names === undefined) await this.#redis.vmsConfirmScope(this.#scopeMarks(p), scopeKey, at);
      else if (names.length > 0) {
        const keys = names.map((n) => this.#nameMark(p, scopeKey, n));
        await this.#redis.vmsConfirmNames(keys.length, ...keys, at, String(this.#ttlMs));
      }
    }
  }
}

/** What the record script's answer means for a change recorded for a claim. */
function recordOutcome(outcome: number): RecordOutcome {
  return outcome === 1 ? 'claimed' : outcome === 2 ? 'pending' : 'superseded';
}

/** DesiredStore in this process's memory, for tests. */
export class MemoryDesiredStore implements DesiredStore {
  readonly #records = new Map<EntryKey, { at: string; change: Change }>();
  /** Marks by phase, then by `scope` (whole scope) or `scope|name`. */
  readonly #marks: Record<ListingPhase, Map<string, string>> = { listed: new Map(), planned: new Map() };
  /** Each key's claim: the apply job that has not taken it yet. With no queue to ask, a claim holds until taken. */
  readonly #claims = new Map<EntryKey, string>();

  async record(change: Change): Promise<boolean> {
    const at = canonicalStamp(change.observedAt);
    if (this.#isVoid(change)) return false;
    const current = this.#records.get(change.key);
    if (current && current.at > at) return false;
    // A copy, so that later changes to the caller's object cannot rewrite history.
    this.#records.set(change.key, { at, change: structuredClone(plainChange(change)) });
    return true;
  }

  async recordForMany(changes: readonly Change[], claim: ApplyClaim): Promise<RecordOutcome[]> {
    const outcomes: RecordOutcome[] = [];
    for (const change of changes) outcomes.push(await this.recordFor(change, claim));
    return outcomes;
  }

  async recordFor(change: Change, claim: ApplyClaim): Promise<RecordOutcome> {
    if (!(await this.record(change))) return 'superseded';
    const held = this.#claims.get(change.key);
    if (held !== undefined && held !== claim.jobId) return 'pending';
    this.#claims.set(change.key, claim.jobId);
    return 'claimed';
  }

  async get(key: EntryKey): Promise<Change | null> {
    const current = this.#records.get(key);
    if (!current || this.#isVoid(current.change)) return null;
    return structuredClone(current.change);
  }

  async getMany(keys: readonly EntryKey[]): Promise<Array<Change | null>> {
    return Promise.all(keys.map((key) => this.get(key)));
  }

  async takeMany(keys: readonly EntryKey[], jobId: string): Promise<Array<Change | null>> {
    for (const key of keys) if (this.#claims.get(key) === jobId) this.#claims.delete(key);
    return this.getMany(keys);
  }

  async confirm(scopeKey: string, observedAt: string, phase: ListingPhase, names?: readonly string[]): Promise<void> {
    const at = canonicalStamp(observedAt);
    for (const p of phasesUpTo(phase)) {
      for (const field of names === undefined ? [scopeKey] : names.map((n) => `${scopeKey}|${n}`)) {
        const current = this.#marks[p].get(field);
        if (current === undefined || current < at) this.#marks[p].set(field, at);
      }
    }
  }

  #isVoid(change: Change): boolean {
    const { scopeKey, name, phase } = decidedBy(change);
    if (scopeKey === '') return false;
    return isVoid(change, this.#marks[phase].get(scopeKey)) || isVoid(change, this.#marks[phase].get(`${scopeKey}|${name}`));
  }

  /** How many keys are recorded. */
  get size(): number {
    return this.#records.size;
  }
}

/** The phases an observation that reached `phase` has passed. */
function phasesUpTo(phase: ListingPhase): ListingPhase[] {
  return phase === 'planned' ? ['listed', 'planned'] : ['listed'];
}

/**
 * Which observations a change is judged against: its scope (a delete names it, an upsert's entry
 * carries it), its entry name, and the phase of a newer observation from which on it is void.
 */
function decidedBy(change: Change): { scopeKey: string; name: string; phase: ListingPhase } {
  return change.op === 'delete'
    ? { scopeKey: change.scopeKey, name: change.name, phase: 'listed' }
    : { scopeKey: annotationOfEntry(change.entry, SCOPE_ANNOTATION) ?? '', name: nameOfEntry(change.entry), phase: 'planned' };
}

/** True when a newer observation (its mark) started after the change's observation. */
function isVoid(change: Change, mark: string | null | undefined): boolean {
  return mark !== undefined && mark !== null && mark > canonicalStamp(change.observedAt);
}
