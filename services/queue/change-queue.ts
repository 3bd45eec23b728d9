// The producer side: every change is recorded in the DesiredStore, and a job that says only
// "look at these keys" is queued, for up to APPLY_BATCH keys at once: a job costs a few Redis
// scripts wherever it has one entry or a hundred. A key is claimed by the job that is to apply it
// (DesiredStore.recordFor), so a burst of observations of one VM queues one job until that job
// takes the key, and costs a write or two, not one per observation.
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BaseLogger } from 'pino';
import type { Change, EntryKey } from '../model.ts';
import type { DesiredStore, ListingPhase } from './desired-store.ts';
import { type RedisErrorLog, redisReady } from './redis.ts';

/** The queue every replica's apply workers take from. */
export const APPLY_QUEUE_NAME = 'vms-apply-batches';

/**
 * The queue of earlier versions, one entry per job. Workers of this version drain it too, and
 * never put jobs on it: during a rolling update, a worker of an earlier version would take a job
 * of many entries for one of none and drop it.
 */
export const LEGACY_APPLY_QUEUE_NAME = 'vms-apply';

/** The one kind of job on that queue. */
export const APPLY_JOB_NAME = 'apply';

/** A job's data: which entries to bring to their newest desired state. */
export interface ApplyJobData {
  keys: EntryKey[];
}

/** The data of a job queued by an earlier version, one entry per job; still taken. */
export interface SingleApplyJobData {
  key: EntryKey;
}

/** The keys of a job, whichever version queued it. */
export function jobKeys(data: ApplyJobData | SingleApplyJobData): EntryKey[] {
  return 'keys' in data ? data.keys : [data.key];
}

/** Most keys per apply job. */
export const APPLY_BATCH = 100;

/** A new apply job's id: BullMQ takes no ':' and no integer. */
export function applyJobId(): string {
  return `apply-${randomUUID()}`;
}

/** What enqueue did with a batch of changes. */
export interface EnqueueResult {
  /** Changes that were the newest for their key when recorded; a job for the key is queued or already claims it. */
  enqueued: number;
  /** Changes older than what was already recorded for their key; dropped. */
  superseded: number;
}

/** Options of ChangeQueue. */
export interface ChangeQueueOptions {
  /** A producer connection (createRedis role 'producer'); the caller closes it. */
  connection: Redis;
  /** Key prefix of the queue; `{vms}` keeps every key in one Redis Cluster slot. */
  prefix: string;
  store: DesiredStore;
  /** Tries per job before it is kept as failed (config queue.attempts). */
  attempts: number;
  /** First retry delay, doubling each time (config queue.backoff). */
  backoffMs: number;
  /** Failed jobs kept for inspection (config queue.keepFailed). */
  keepFailed: number;
  queueName?: string;
  logger?: Pick<BaseLogger, 'warn' | 'error'>;
  /** Takes the queue's errors instead of `logger` (a Redis outage is said once, not per retry). */
  errors?: RedisErrorLog;
}

/** Puts changes on the apply queue, newest observation per entry winning. */
export class ChangeQueue {
  /** The BullMQ queue, for metrics and admin tools. */
  readonly queue: Queue<ApplyJobData>;
  readonly #connection: Redis;
  readonly #store: DesiredStore;
  readonly #jobOptions: JobsOptions;
  /** The Redis key of a job of this queue, but for its id. */
  readonly #jobKeyPrefix: string;
  /** Earlier versions' queue, counted until it is empty (absent with a queue name of the caller's). */
  readonly #legacy: Queue | undefined;

  constructor(options: ChangeQueueOptions) {
    this.#connection = options.connection;
    this.#store = options.store;
    this.queue = new Queue<ApplyJobData>(options.queueName ?? APPLY_QUEUE_NAME, {
      connection: options.connection,
      prefix: options.prefix,
    });
    this.#jobKeyPrefix = this.queue.toKey('');
    this.#legacy = options.queueName ? undefined : new Queue(LEGACY_APPLY_QUEUE_NAME, { connection: options.connection, prefix: options.prefix });
    const logger = options.logger;
    const errors = options.errors;
    for (const q of [this.queue, this.#legacy]) q?.on('error', (err: Error) => (errors ? errors.report('apply queue', err) : logger?.error({ err: err.message }, 'apply queue error')));
    this.#jobOptions = {
      attempts: options.attempts,
      backoff: { type: 'exponential', delay: options.backoffMs, jitter: 0.5 },
      removeOnComplete: true,
      removeOnFail: { count: options.keepFailed },
    };
  }

  /**
   * Records every change and queues the keys that got a newer desired state, up to APPLY_BATCH
   * per job, leaving out those a queued job has claimed already. Each batch's job is queued as soon
   * as its changes are recorded, so the workers start on a large plan while the rest is recorded.
   */
  async enqueue(changes: readonly Change[]): Promise<EnqueueResult> {
    if (changes.length === 0) return { enqueued: 0, superseded: 0 };
    await redisReady(this.#connection);
    let enqueued = 0;
    let superseded = 0;
    for (let i = 0; i < changes.length; i += APPLY_BATCH) {
      const claim = { jobId: applyJobId(), jobKeyPrefix: this.#jobKeyPrefix };
      const claimed = new Set<EntryKey>();
      const batch = changes.slice(i, i + APPLY_BATCH);
      const outcomes = await this.#store.recordForMany(batch, claim);
      for (let k = 0; k < batch.length; k++) {
        if (outcomes[k] === 'superseded') superseded++;
        else enqueued++;
        if (outcomes[k] === 'claimed') claimed.add(batch[k]!.key);
      }
      // One add per job, once its records have said which keys are its own.
      if (claimed.size > 0) await this.queue.add(APPLY_JOB_NAME, { keys: [...claimed] }, { ...this.#jobOptions, jobId: claim.jobId });
    }
    return { enqueued, superseded };
  }

  /** An observation of the scope (or of `names` in it), stamped `observedAt`, reached `phase`: older changes of those entries become void (see ListingPhase). */
  async confirm(scopeKey: string, observedAt: string, phase: ListingPhase, names?: readonly string[]): Promise<void> {
    await this.#store.confirm(scopeKey, observedAt, phase, names);
  }

  /** Jobs by state (waiting, active, delayed, prioritized, failed, completed), those of earlier versions' queue included. */
  async counts(): Promise<Record<string, number>> {
    const states = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;
    const [current, legacy] = await Promise.all([this.queue.getJobCounts(...states), this.#legacy ? this.#legacy.getJobCounts(...states) : {}]);
    return Object.fromEntries(states.map((state) => [state, (current[state] ?? 0) + ((legacy as Record<string, number>)[state] ?? 0)]));
  }

  /** Closes the queue; the connection stays open for its owner to close. */
  async close(): Promise<void> {
    await Promise.all([this.queue.close(), this.#legacy?.close()]);
  }

  /** Drops the queue's connections at once, Redis answering or not (see ApplyWorker.disconnect). */
  async disconnect(): Promise<void> {
    await Promise.allSettled([this.queue.disconnect(), this.#legacy?.disconnect()]);
  }
}
