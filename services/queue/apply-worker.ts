// The consumer side: a job names an entry key; the worker applies the newest desired change of
// that key and looks again afterwards, so that a change recorded while it was writing is not left
// to chance. Transient failures go back to BullMQ for a retry with backoff; permanent ones fail the
// job once and keep it for inspection.
import { RateLimitError, UnrecoverableError, Worker } from 'bullmq';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BaseLogger } from 'pino';
import { isVmsError } from '../errors.ts';
import type { EntryKey } from '../model.ts';
import { TransientKubeError } from '../writer/transient-kube-error.ts';
import type { ApplyResult, Writer } from '../writer/writer.ts';
import { APPLY_QUEUE_NAME } from './change-queue.ts';
import type { ApplyJobData } from './change-queue.ts';
import type { DesiredStore } from './desired-store.ts';
import { createRedis, type RedisErrorLog } from './redis.ts';

/** What one pass of a job did: a result, or the error it failed with. */
export type ApplyOutcome = ApplyResult | Error;

/** Whether an error outcome is the last word on the job, or will be tried again. */
export interface ApplyOutcomeInfo {
  /** True for results, permanent errors and errors on the last attempt; false when BullMQ retries. */
  final: boolean;
  /** Attempts used before this one. */
  attemptsMade: number;
}

/** Options of startApplyWorker. */
export interface ApplyWorkerOptions {
  /** A Redis URL (a connection is made and closed here) or a worker-role client the caller closes. */
  connection: Redis | string;
  /** The queue's key prefix; must match the producer's. */
  prefix: string;
  store: DesiredStore;
  writer: Pick<Writer, 'apply'>;
  /** Jobs processed at once by this worker. */
  concurrency: number;
  queueName?: string;
  /** Told of every apply and every failure (retried ones too, with `final: false`), for metrics. */
  onResult?: (key: EntryKey, outcome: ApplyOutcome, info: ApplyOutcomeInfo) => void;
  logger?: Pick<BaseLogger, 'debug' | 'warn' | 'error'>;
  /** Takes the worker's and its connection's errors instead of `logger` (a Redis outage is said once, not per retry). */
  errors?: RedisErrorLog;
  /** Applies per job before the rest is left to the job queued behind it (default 10). */
  maxPasses?: number;
  /** Longest queue-wide pause a 429's Retry-After may impose (default 60 s). */
  maxRateLimitMs?: number;
  /**
   * How long a job stays locked to a worker that stopped renewing it (a crashed process) before
   * another worker takes it over (BullMQ's lockDuration and stalledInterval; default 30 s).
   */
  lockDurationMs?: number;
}

/** A running apply worker. */
export interface ApplyWorker {
  worker: Worker<ApplyJobData, ApplyResult | null>;
  /** Waits for jobs in flight to finish, then closes the connections opened here. */
  close(): Promise<void>;
}

/**
 * How often a job may be found stalled (its process died or its lock lapsed) and be run again
 * before BullMQ fails it. Every job here is safe to run again (an apply brings an entry to the
 * newest recorded state; a resync or refresh reads the cloud anew), so a job is not given up
 * because processes died under it: short of this many deaths in a row it always runs again.
 */
export const STALLS_FORGIVEN = 1000;

// A limiter must be configured for a manual rate limit (worker.rateLimit) to hold other workers
// back too; this one is high enough never to limit on its own.
const PASS_THROUGH_LIMITER = { max: 1_000_000, duration: 1000 };

/** Starts a BullMQ worker that applies queued changes with `writer`. */
export function startApplyWorker(options: ApplyWorkerOptions): ApplyWorker {
  const { store, writer, onResult, logger } = options;
  const maxPasses = options.maxPasses ?? 10;
  const maxRateLimitMs = options.maxRateLimitMs ?? 60_000;
  const ownConnection =
    typeof options.connection === 'string'
      ? createRedis(options.connection, { role: 'worker', connectionName: 'vms-apply', ...(options.errors ? { errors: options.errors } : {}) })
      : undefined;

  const report = (key: EntryKey, outcome: ApplyOutcome, info: ApplyOutcomeInfo): void => {
    try {
      onResult?.(key, outcome, info);
    } catch (err) {
      logger?.warn({ key, err: (err as Error).message }, 'onResult callback failed');
    }
  };

  const processor = async (job: Job<ApplyJobData, ApplyResult | null>): Promise<ApplyResult | null> => {
    const key = job.data.key;
    let applied: string | undefined;
    let result: ApplyResult | null = null;
    for (let pass = 0; pass < maxPasses; pass++) {
      const change = await store.get(key);
      if (change === null) return result;
      const serialized = JSON.stringify(change);
      // Done when what is recorded now is what was just applied.
      if (serialized === applied) return result;
      try {
        // An entry whose newest recorded change is its delete does not hold its mesh service's
        // objects: their delete job may run before the entry's.
        result = await writer.apply(change, { pending: (entry) => store.get(entry) });
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        const jobError = await toJobError(error, key);
        const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        const final = jobError instanceof UnrecoverableError || (lastAttempt && !(jobError instanceof RateLimitError));
        report(key, error, { final, attemptsMade: job.attemptsMade });
        throw jobError;
      }
      applied = serialized;
      report(key, result, { final: true, attemptsMade: job.attemptsMade });
    }
    // Still changing: every newer record queued a job behind this one, which takes it from here.
    logger?.debug({ key, passes: maxPasses }, 'entry kept changing; leaving the rest to the next job');
    return result;
  };

  const worker: Worker<ApplyJobData, ApplyResult | null> = new Worker<ApplyJobData, ApplyResult | null>(
    options.queueName ?? APPLY_QUEUE_NAME,
    processor,
    {
      connection: ownConnection ?? (options.connection as Redis),
      prefix: options.prefix,
      concurrency: options.concurrency,
      limiter: PASS_THROUGH_LIMITER,
      maxStalledCount: STALLS_FORGIVEN,
      ...(options.lockDurationMs ? { lockDuration: options.lockDurationMs, stalledInterval: options.lockDurationMs } : {}),
    },
  );
  worker.on('error', (err: Error) => (options.errors ? options.errors.report('apply worker', err) : logger?.error({ err: err.message }, 'apply worker error')));
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    const fields = { key: job.data.key, attemptsMade: job.attemptsMade, err: err.message };
    if (final) logger?.warn(fields, 'apply job failed; kept as failed');
    else logger?.debug(fields, 'apply job failed; will be retried');
  });

  async function toJobError(err: Error, key: EntryKey): Promise<Error> {
    if (err instanceof TransientKubeError) {
      if (err.status === 429 && err.retryAfterMs !== undefined) {
        // The API server throttles this client as a whole: pause the queue, not just this job,
        // and do not count it as a failed attempt.
        const pauseMs = Math.max(1, Math.min(maxRateLimitMs, err.retryAfterMs));
        logger?.debug({ key, pauseMs }, 'Kubernetes API throttled us; pausing the apply queue');
        await worker.rateLimit(pauseMs);
        return new RateLimitError();
      }
      return err;
    }
    if (isVmsError(err)) return new UnrecoverableError(`${err.code}: ${err.message}`);
    return err;
  }

  return {
    worker,
    async close(): Promise<void> {
      await worker.close();
      if (ownConnection) await ownConnection.quit().catch(() => ownConnection.disconnect());
    },
  };
}
