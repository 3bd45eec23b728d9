// The producer side: every change is recorded in the DesiredStore, and a job that says only
// "look at this key" is queued. BullMQ's deduplication keeps at most one waiting and one active
// job per key, so a burst of observations of one VM costs a write or two, not one per observation.
import { Queue } from 'bullmq';
import type { JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BaseLogger } from 'pino';
import { mapLimited } from '../concurrency.ts';
import type { Change, EntryKey } from '../model.ts';
import type { DesiredStore, ListingPhase } from './desired-store.ts';
import { idPart } from './job-id.ts';
import { type RedisErrorLog, redisReady } from './redis.ts';

/** The queue every replica's apply workers take from. */
export const APPLY_QUEUE_NAME = 'vms-apply';

/** The one kind of job on that queue. */
export const APPLY_JOB_NAME = 'apply';

/** A job's data: which entry to bring to its newest desired state. */
export interface ApplyJobData {
  key: EntryKey;
}

/** What enqueue did with a batch of changes. */
export interface EnqueueResult {
  /** Changes that were the newest for their key when recorded; a job for the key is queued or already waiting. */
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

// Enough records in flight to keep the connection busy without building a huge command backlog.
const RECORD_CONCURRENCY = 64;
const ADD_BATCH = 500;

/** A deduplication id for `key`. Entry keys are `namespace/name` and never contain ':', but one would split BullMQ's key names. */
export function deduplicationId(key: EntryKey): string {
  return idPart(key);
}

/** Puts changes on the apply queue, newest observation per entry winning. */
export class ChangeQueue {
  /** The BullMQ queue, for metrics and admin tools. */
  readonly queue: Queue<ApplyJobData>;
  readonly #connection: Redis;
  readonly #store: DesiredStore;
  readonly #jobOptions: JobsOptions;

  constructor(options: ChangeQueueOptions) {
    this.#connection = options.connection;
    this.#store = options.store;
    this.queue = new Queue<ApplyJobData>(options.queueName ?? APPLY_QUEUE_NAME, {
      connection: options.connection,
      prefix: options.prefix,
    });
    const logger = options.logger;
    const errors = options.errors;
    this.queue.on('error', (err: Error) => (errors ? errors.report('apply queue', err) : logger?.error({ err: err.message }, 'apply queue error')));
    this.#jobOptions = {
      attempts: options.attempts,
      backoff: { type: 'exponential', delay: options.backoffMs, jitter: 0.5 },
      removeOnComplete: true,
      removeOnFail: { count: options.keepFailed },
    };
  }

  /** Records every change and queues a job for each key that got a newer desired state. */
  async enqueue(changes: readonly Change[]): Promise<EnqueueResult> {
    if (changes.length === 0) return { enqueued: 0, superseded: 0 };
    await redisReady(this.#connection);
    const newest = new Set<EntryKey>();
    let enqueued = 0;
    let superseded = 0;
    await mapLimited(changes, RECORD_CONCURRENCY, async (change) => {
      if (await this.#store.record(change)) {
        enqueued++;
        newest.add(change.key);
      } else {
        superseded++;
      }
    });

    // addBulk goes through the same Lua scripts as add (deduplication included), in one pipeline.
    const keys = [...newest];
    for (let i = 0; i < keys.length; i += ADD_BATCH) {
      await this.queue.addBulk(
        keys.slice(i, i + ADD_BATCH).map((key) => ({
          name: APPLY_JOB_NAME,
          data: { key },
          opts: { ...this.#jobOptions, deduplication: { id: deduplicationId(key), keepLastIfActive: true } },
        })),
      );
    }
    return { enqueued, superseded };
  }

  /** An observation of the scope (or of `names` in it), stamped `observedAt`, reached `phase`: older changes of those entries become void (see ListingPhase). */
  async confirm(scopeKey: string, observedAt: string, phase: ListingPhase, names?: readonly string[]): Promise<void> {
    await this.#store.confirm(scopeKey, observedAt, phase, names);
  }

  /** Jobs by state: waiting, active, delayed, prioritized, failed, completed. */
  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed');
  }

  /** Closes the queue; the connection stays open for its owner to close. */
  async close(): Promise<void> {
    await this.queue.close();
  }
}
