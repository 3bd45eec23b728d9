// The consumer side: a job names entry keys; for each, the worker applies the newest desired change
// and looks again afterwards, so that a change recorded while it was writing is not left to
// chance. The keys that failed transiently go back to BullMQ, alone in the job, for a retry with
// backoff; those that failed for good fail the job once and are kept in it for inspection.
import { Queue, RateLimitError, UnrecoverableError, Worker } from 'bullmq';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BaseLogger } from 'pino';
import { isVmsError } from '../errors.ts';
import type { Change, EntryKey } from '../model.ts';
import { TransientKubeError } from '../writer/transient-kube-error.ts';
import type { ApplyResult, Writer } from '../writer/writer.ts';
import { Slots } from '../concurrency.ts';
import { APPLY_JOB_NAME, APPLY_QUEUE_NAME, applyJobId, jobKeys, LEGACY_APPLY_QUEUE_NAME } from './change-queue.ts';
import type { ApplyJobData, SingleApplyJobData } from './change-queue.ts';
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
  /** Entries applied at once by this worker (and jobs active at once: each holds up to APPLY_BATCH entries). */
  concurrency: number;
  queueName?: string;
  /** Told of every apply and every failure (retried ones too, with `final: false`), for metrics. */
  onResult?: (key: EntryKey, outcome: ApplyOutcome, info: ApplyOutcomeInfo) => void;
  logger?: Pick<BaseLogger, 'debug' | 'warn' | 'error'>;
  /** Takes the worker's and its connection's errors instead of `logger` (a Redis outage is said once, not per retry). */
  errors?: RedisErrorLog;
  /** Reads and applies per entry of a job before an entry still changing is handed to a new job (default 10). */
  maxPasses?: number;
  /** Longest queue-wide pause a 429's Retry-After may impose (default 60 s). */
  maxRateLimitMs?: number;
  /**
   * How long a job stays locked to a worker that stopped renewing it (a crashed process) before
   * another worker takes it over (BullMQ's lockDuration and stalledInterval; default 30 s).
   */
  lockDurationMs?: number;
}

/** How applying one key of a job ended: an error, or nothing left to do. */
interface KeyOutcome {
  key: EntryKey;
  error?: Error;
  /** Not started: the worker is closing. */
  left?: boolean;
}

/** A coded error of ours that is not a transient failure of the Kubernetes API: trying again would not help. */
function isPermanent(err: Error): boolean {
  return !(err instanceof TransientKubeError) && isVmsError(err);
}

/** The pause a 429 with Retry-After asks of the whole client, or 0. */
function retryAfter(err: Error): number {
  return err instanceof TransientKubeError && err.status === 429 && err.retryAfterMs !== undefined ? Math.max(1, err.retryAfterMs) : 0;
}

/** A running apply worker. */
export interface ApplyWorker {
  worker: Worker<ApplyJobData | SingleApplyJobData, number>;
  /** Waits for jobs in flight to finish (or, with `force`, leaves them to be taken over), then closes the connections opened here. */
  close(force?: boolean): Promise<void>;
  /**
   * Drops every connection at once, Redis answering or not: for a shutdown whose close did not
   * end in time (BullMQ's close waits on Redis, and a second close returns the first one's
   * promise). Jobs in flight are left to be taken over. Resolves when the connections are gone,
   * which may be never while Redis is away: do not wait on it unbounded.
   */
  disconnect(): Promise<void>;
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
  // The queue a job's retried keys go back to when others of the job failed for good; made when first needed.
  let retryQueue: Queue<ApplyJobData> | undefined;
  const retries = (): Queue<ApplyJobData> => {
    if (!retryQueue) {
      retryQueue = new Queue<ApplyJobData>(options.queueName ?? APPLY_QUEUE_NAME, { connection: ownConnection ?? (options.connection as Redis), prefix: options.prefix });
      retryQueue.on('error', (err: Error) => (options.errors ? options.errors.report('apply worker', err) : logger?.error({ err: err.message }, 'apply worker error')));
    }
    return retryQueue;
  };

  const report = (key: EntryKey, outcome: ApplyOutcome, info: ApplyOutcomeInfo): void => {
    try {
      onResult?.(key, outcome, info);
    } catch (err) {
      logger?.warn({ key, err: (err as Error).message }, 'onResult callback failed');
    }
  };

  // Every key of every active job takes a slot: `concurrency` writes at once per worker, however
  // the keys are spread over jobs.
  const slots = new Slots(options.concurrency);

  /** Applies one change; an error is returned, not thrown. */
  const applyOne = async (job: Job<ApplyJobData | SingleApplyJobData>, key: EntryKey, change: Change, worker: Worker): Promise<KeyOutcome> => {
    const release = await slots.acquire();
    try {
      // A worker that is closing finishes what it started and leaves the rest queued.
      if (worker.closing) return { key, left: true };
      // An entry whose newest recorded change is its delete does not hold its mesh service's
      // objects: their delete job may run before the entry's.
      const result = await writer.apply(change, { pending: (entry) => store.get(entry) });
      report(key, result, { final: true, attemptsMade: job.attemptsMade });
      return { key };
    } catch (err) {
      return { key, error: err instanceof Error ? err : new Error(String(err)) };
    } finally {
      release();
    }
  };

  const processor = async (job: Job<ApplyJobData | SingleApplyJobData>, worker: Worker): Promise<number> => {
    const keys = jobKeys(job.data);
    const outcomes: KeyOutcome[] = [];
    // Each pass reads the keys' newest changes in two round trips and applies those not applied
    // yet; the keys it applied are read again, until what is recorded is what was applied.
    const applied = new Map<EntryKey, string>();
    let reading = keys;
    for (let pass = 0; pass < maxPasses && reading.length > 0; pass++) {
      // The first read lets go of the job's claims: a change recorded from now on queues a job.
      const changes = pass === 0 ? await store.takeMany(reading, job.id ?? '') : await store.getMany(reading);
      const work: Array<{ key: EntryKey; change: Change; serialized: string }> = [];
      reading.forEach((key, i) => {
        const change = changes[i];
        if (change === null || change === undefined) return;
        const serialized = JSON.stringify(change);
        if (serialized !== applied.get(key)) work.push({ key, change, serialized });
      });
      const results = await Promise.all(work.map((w) => applyOne(job, w.key, w.change, worker)));
      reading = [];
      results.forEach((outcome, i) => {
        if (outcome.error === undefined && !outcome.left) {
          applied.set(outcome.key, work[i]!.serialized);
          reading.push(outcome.key);
        } else outcomes.push(outcome);
      });
    }
    // Entries applied on the last pass were not read again: a job of another worker may have
    // applied a newer change before this write landed. Still changing, they go to a new job, as do
    // those a closing worker did not start (at no cost of an attempt).
    const failures = outcomes.filter((o): o is KeyOutcome & { error: Error } => o.error !== undefined);
    const left = outcomes.filter((o) => o.left).map((o) => o.key);
    if (reading.length > 0) logger?.debug({ keys: reading, passes: maxPasses }, 'entries kept changing; a new job takes them from here');
    const again = [...reading, ...left];
    if (again.length > 0) await queueAgain(job, again, { attempts: job.opts.attempts ?? 1, delay: 0 });
    if (failures.length === 0) return keys.length;

    // The API server throttles this client as a whole: pause the queue, not just these keys, and
    // do not count it as a failed attempt.
    const pauseMs = Math.max(0, ...failures.map((f) => retryAfter(f.error)));
    const attemptsLeft = (job.opts.attempts ?? 1) - job.attemptsMade - (pauseMs > 0 ? 0 : 1);
    const permanent = failures.filter((f) => isPermanent(f.error));
    const transient = failures.filter((f) => !isPermanent(f.error));
    for (const f of permanent) report(f.key, f.error, { final: true, attemptsMade: job.attemptsMade });
    for (const f of transient) report(f.key, f.error, { final: attemptsLeft < 1, attemptsMade: job.attemptsMade });
    if (pauseMs > 0) {
      logger?.debug({ keys: transient.length, pauseMs }, 'Kubernetes API throttled us; pausing the apply queue');
      await worker.rateLimit(Math.min(maxRateLimitMs, pauseMs));
    }
    if (permanent.length === 0) {
      // BullMQ retries the job with only these keys, or keeps it failed with them.
      await keepOnly(job, transient.map((f) => f.key));
      if (pauseMs > 0) throw new RateLimitError();
      throw transient[0]!.error;
    }
    // The job fails for good with the keys refused for good; those that failed transiently go on
    // in a job of their own with the attempts this one had left, or, with none left, stay here too.
    let kept = permanent;
    if (transient.length > 0 && attemptsLeft >= 1) {
      const backoff = job.opts.backoff;
      const baseMs = typeof backoff === 'number' ? backoff : (backoff?.delay ?? 0);
      await queueAgain(job, transient.map((f) => f.key), { attempts: attemptsLeft, delay: pauseMs > 0 ? pauseMs : baseMs * 2 ** job.attemptsMade });
    } else kept = [...permanent, ...transient];
    await keepOnly(job, kept.map((f) => f.key));
    const first = kept[0]!.error as Error & { code?: string };
    const more = kept.length > 1 ? ` (and ${kept.length - 1} more: ${kept.slice(1).map((f) => f.key).join(', ')})` : '';
    throw new UnrecoverableError(`${first.code ? `${first.code}: ` : ''}${first.message}${more}`);
  };

  /** Leaves only `keys` in the job, for its retry or for inspection once it failed. */
  const keepOnly = async (job: Job<ApplyJobData | SingleApplyJobData>, keys: EntryKey[]): Promise<void> => {
    const current = jobKeys(job.data);
    if (keys.length === current.length) return;
    await job.updateData({ keys });
  };

  /** Queues `keys` again in a new job with `attempts` and after `delay`. */
  const queueAgain = async (job: Job<ApplyJobData | SingleApplyJobData>, keys: EntryKey[], opts: { attempts: number; delay: number }): Promise<void> => {
    await retries().add(APPLY_JOB_NAME, { keys }, { ...job.opts, ...opts, jobId: applyJobId() });
  };

  const start = (queueName: string, concurrency: number): Worker<ApplyJobData | SingleApplyJobData, number> => {
    const started: Worker<ApplyJobData | SingleApplyJobData, number> = new Worker<ApplyJobData | SingleApplyJobData, number>(queueName, (job) => processor(job, started), {
      connection: ownConnection ?? (options.connection as Redis),
      prefix: options.prefix,
      concurrency,
      limiter: PASS_THROUGH_LIMITER,
      maxStalledCount: STALLS_FORGIVEN,
      ...(options.lockDurationMs ? { lockDuration: options.lockDurationMs, stalledInterval: options.lockDurationMs } : {}),
    });
    started.on('error', (err: Error) => (options.errors ? options.errors.report('apply worker', err) : logger?.error({ err: err.message }, 'apply worker error')));
    started.on('failed', (job, err) => {
      if (!job) return;
      const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
      const fields = { keys: jobKeys(job.data), attemptsMade: job.attemptsMade, err: err.message };
      if (final) logger?.warn(fields, 'apply job failed; kept as failed');
      else logger?.debug(fields, 'apply job failed; will be retried');
    });
    return started;
  };
  const worker = start(options.queueName ?? APPLY_QUEUE_NAME, options.concurrency);
  // Jobs of one entry that earlier versions queued, until their queue is empty; their writes share the slots.
  const legacy = options.queueName ? undefined : start(LEGACY_APPLY_QUEUE_NAME, options.concurrency);

  return {
    worker,
    async close(force = false): Promise<void> {
      await Promise.all([worker.close(force), legacy?.close(force)]);
      await retryQueue?.close();
      if (ownConnection) await ownConnection.quit().catch(() => ownConnection.disconnect());
    },
    async disconnect(): Promise<void> {
      ownConnection?.disconnect();
      await Promise.allSettled([worker.disconnect(), legacy?.disconnect(), retryQueue?.disconnect()]);
    },
  };
}
