// What `serve` runs besides the HTTP server, wired onto BullMQ: the apply workers, one job
// scheduler per scope for the periodic resync, the resync and refresh workers, and the resync job
// itself. Refresh batching (refreshes.ts), the status a resync leaves (resync-status.ts) and the
// readiness checks (readiness.ts) live beside it. Redis is the only state shared between
// replicas, so any number of them can run side by side.
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../config/schema.ts';
import type { Provider } from '../../providers/provider.ts';
import { isVmsError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { type InstanceRef, referenceProblem } from '../model.ts';
import { type ApplyWorker, STALLS_FORGIVEN, startApplyWorker } from '../queue/apply-worker.ts';
import { ChangeQueue } from '../queue/change-queue.ts';
import { RedisDesiredStore } from '../queue/desired-store.ts';
import { RefreshSet } from '../queue/refresh-set.ts';
import { ScopeLeases } from '../queue/scope-lease.ts';
import { createRedis, RedisErrorLog, redisClock } from '../queue/redis.ts';
import type { Readiness } from '../server/server.ts';
import { configuredScopes, type ReconcileDeps, resyncScope, type ResyncResult } from '../sync/reconcile.ts';
import { listingOf, shareListings } from '../sync/shared-listing.ts';
import { Slots } from '../concurrency.ts';
import type { KubeApi } from '../writer/kube-api.ts';
import type { Writer } from '../writer/writer.ts';
import { Batches } from './batches.ts';
import { EventRecorder } from './event-recorder.ts';
import { REFRESH_QUEUE_NAME, type RefreshJobData, refreshId, RESYNC_QUEUE_NAME, type ResyncJobData, schedulerId } from './jobs.ts';
import { ReadinessChecks } from './readiness.ts';
import { Refreshes } from './refreshes.ts';
import { failedResyncStatus, resyncStatus, scopeGauges } from './resync-status.ts';
import { StatusStore } from './status-store.ts';

/** A reference to mark due in the refresh set. */
type RefreshRequest = { id: string; ref: InstanceRef };

/** Most resyncs one replica runs at once. */
const MAX_RESYNCS_AT_ONCE = 16;
/**
 * Most of them listing the cloud, mapping or planning at once: each holds its scope's listing
 * being mapped and its desired entries (and the provider threads' heaps their pages), and a plan
 * indexes every owned entry.
 */
const WORKING_AT_ONCE = 2;
/** How long a close that timed out waits for its dropped connections to end before it returns. */
const FORCED_CLOSE_MS = 2000;

/** The collaborators of a runtime. */
export interface RuntimeOptions {
  config: Readonly<Config>;
  providers: readonly Provider[];
  api: KubeApi;
  writer: Writer;
  metrics: Metrics;
  logger: Logger;
  /** This replica's name (the pod name), for Events and /status. */
  instanceName?: string;
}

/** The running workers and schedulers of one `serve` process. */
export class Runtime {
  readonly #options: RuntimeOptions;
  readonly #producer: Redis;
  readonly #workerConnection: Redis;
  readonly #changes: ChangeQueue;
  readonly #resyncQueue: Queue<ResyncJobData>;
  /** Earlier versions' refresh jobs, counted in /status until none is left. */
  readonly #refreshQueue: Queue<RefreshJobData>;
  /** The refreshes webhooks ask for, on the producer connection: a request fails at once while Redis is away. */
  readonly #refreshSet: RefreshSet;
  readonly #status: StatusStore;
  readonly #leases: ScopeLeases;
  readonly #events: EventRecorder;
  readonly #deps: ReconcileDeps;
  /** Resyncs listing the cloud or planning at once (see #resyncHeld). */
  readonly #working = new Slots(WORKING_AT_ONCE);
  readonly #refreshes: Refreshes;
  readonly #readiness: ReadinessChecks;
  /** Every Redis connection's, queue's and worker's errors: an outage is said once, with a code. */
  readonly #redisErrors: RedisErrorLog;
  #applyWorker: ApplyWorker | undefined;
  #resyncWorker: Worker<ResyncJobData> | undefined;
  #refreshWorker: Worker<RefreshJobData> | undefined;
  /**
   * The refreshes webhooks ask for, stored together: those asked for while the event loop handles
   * one round of requests, or while an earlier store is on its way, go in one round trip.
   */
  readonly #refreshRequests = new Batches<RefreshRequest, void>((requests) => this.#requestRefreshes(requests), { inFlight: 1, maxBatch: 1000 });

  private constructor(options: RuntimeOptions) {
    this.#options = options;
    const { config, logger } = options;
    this.#redisErrors = new RedisErrorLog(logger, config.redis.url);
    this.#producer = createRedis(config.redis.url, { role: 'producer', connectionName: 'vms-producer', errors: this.#redisErrors });
    this.#workerConnection = createRedis(config.redis.url, { role: 'worker', connectionName: 'vms-worker', errors: this.#redisErrors });
    const store = new RedisDesiredStore(this.#producer, config.redis.prefix);
    this.#changes = new ChangeQueue({
      connection: this.#producer,
      prefix: config.redis.prefix,
      store,
      attempts: config.queue.attempts,
      backoffMs: config.queue.backoff,
      keepFailed: config.queue.keepFailed,
      logger,
      errors: this.#redisErrors,
    });
    this.#resyncQueue = new Queue<ResyncJobData>(RESYNC_QUEUE_NAME, { connection: this.#producer, prefix: config.redis.prefix });
    this.#resyncQueue.on('error', (err) => this.#redisErrors.report('resync queue', err));
    this.#refreshQueue = new Queue<RefreshJobData>(REFRESH_QUEUE_NAME, { connection: this.#producer, prefix: config.redis.prefix });
    this.#refreshQueue.on('error', (err) => this.#redisErrors.report('refresh queue', err));
    this.#refreshSet = new RefreshSet(this.#producer, config.redis.prefix);
    this.#status = new StatusStore(this.#producer, config.redis.prefix);
    this.#leases = new ScopeLeases(this.#producer, config.redis.prefix);
    this.#events = new EventRecorder(options.api, {
      logger,
      defaultNamespace: config.mapping.namespace.default,
      ...(options.instanceName ? { instance: options.instanceName } : {}),
    });
    this.#deps = {
      config,
      providers: options.providers,
      // Resyncs of many scopes at once share their listings of owned entries.
      listOwned: shareListings(
        listingOf(options.writer, (entries) => options.metrics.setOwnedEntries(entries)),
        configuredScopes(options.providers),
      ),
      findByNames: (names) => options.writer.findByNames(names),
      findByName: (name) => options.writer.findByName(name),
      listForeign: () => options.writer.listForeign(),
      listMeshServiceObjects: () => options.writer.listMeshServiceObjects(config.services),
      enqueue: (changes) => this.#changes.enqueue(changes),
      confirm: (scopeKey, observedAt, phase, names) => this.#changes.confirm(scopeKey, observedAt, phase, names),
      // Redis's clock, shared by every replica: their own clocks never order two observations.
      clock: redisClock(this.#producer),
    };
    this.#refreshes = new Refreshes({
      deps: this.#deps,
      // Claims ride the worker connection, which waits out a Redis outage instead of failing.
      set: new RefreshSet(this.#workerConnection, config.redis.prefix),
      metrics: options.metrics,
      logger,
      events: this.#events,
      leaseMs: config.queue.stalledAfter,
      backoffMs: config.queue.backoff,
      reportRedisError: (err) => this.#redisErrors.report('refresh set', err as Error),
    });
    this.#readiness = new ReadinessChecks({ config, redis: this.#producer, api: options.api, status: this.#status, scopeKeys: () => this.#scopeKeys() });
    options.metrics.setQueueDepthSource(() => this.#changes.counts());
    options.metrics.setRefreshDepthSource(() => this.#refreshCounts());
    // From the shared status: the same gauges on every replica.
    options.metrics.setScopeSource(async () => scopeGauges(this.#scopeKeys(), await this.#status.gauges()));
  }

  /** Starts workers and makes sure every scope has its scheduler, now and after every Redis reconnect. */
  static async start(options: RuntimeOptions): Promise<Runtime> {
    const runtime = new Runtime(options);
    try {
      await runtime.#startWorkers();
      await runtime.#ensureSchedulers();
    } catch (err) {
      // Workers and connections already started would keep running, and the process alive.
      await runtime.close(5000).catch(() => {});
      throw err;
    }
    // A Redis restarted without persistence comes back empty: the schedulers went with it, and
    // without them no scope would ever be resynced again (nor would /readyz recover). Putting them
    // back on each reconnect is harmless when they survived, since upserting is idempotent.
    runtime.#producer.on('ready', () => {
      runtime.#ensureSchedulers().catch((err: Error) => options.logger.warn({ err: err.message }, 'could not restore the resync schedulers after a Redis reconnect'));
    });
    return runtime;
  }

  async #startWorkers(): Promise<void> {
    const { config, writer, metrics, logger } = this.#options;
    this.#applyWorker = startApplyWorker({
      connection: config.redis.url,
      prefix: config.redis.prefix,
      // The worker's store rides the worker connection, which queues commands through a Redis
      // outage instead of failing them (and using up the job's attempts).
      store: new RedisDesiredStore(this.#workerConnection, config.redis.prefix),
      writer,
      concurrency: config.queue.concurrency,
      lockDurationMs: config.queue.stalledAfter,
      logger,
      errors: this.#redisErrors,
      onResult: (key, outcome, info) => {
        if (outcome instanceof Error) {
          // Failures BullMQ will retry are not news yet; the last one is.
          if (!info.final) return;
          const code = isVmsError(outcome) ? outcome.code : 'VMS_ERR_INTERNAL';
          metrics.recordWriteFailure(code);
          void this.#status.putWriteError({ key, code, message: outcome.message, at: new Date().toISOString() }).catch(() => {});
          this.#events.writeFailed(key, code, outcome.message);
        } else {
          metrics.recordApply(outcome);
          void this.#status.clearWriteError(key).catch(() => {});
        }
      },
    });
    const workerOptions = {
      connection: this.#workerConnection,
      prefix: config.redis.prefix,
      lockDuration: config.queue.stalledAfter,
      stalledInterval: config.queue.stalledAfter,
      maxStalledCount: STALLS_FORGIVEN,
    };
    // Every scope may resync at once, but only WORKING_AT_ONCE list the cloud or plan at a time; the
    // resyncs that reach the cluster while a listing of owned entries runs share the next one
    // (shareListings), so one listing of the whole cluster is held at a time.
    const resyncs = Math.max(1, Math.min(this.#scopeKeys().length, MAX_RESYNCS_AT_ONCE));
    this.#resyncWorker = new Worker<ResyncJobData>(RESYNC_QUEUE_NAME, (job) => this.#resync(job.data.scopeKey), { ...workerOptions, concurrency: resyncs });
    this.#resyncWorker.on('error', (err) => this.#redisErrors.report('resync worker', err));
    // Jobs of earlier versions (one instance each) become due in the refresh set.
    this.#refreshWorker = new Worker<RefreshJobData>(
      REFRESH_QUEUE_NAME,
      async (job) => {
        const ref = job.data?.ref;
        const problem = ref !== null && typeof ref === 'object' && typeof ref.provider === 'string' && typeof ref.id === 'string' ? referenceProblem(ref) : 'it names no instance';
        if (problem !== undefined) {
          logger.warn({ code: 'VMS_ERR_INTERNAL', job: job.id }, `a refresh job of an earlier version was dropped: ${problem}; the next resync covers its instance`);
          return;
        }
        await this.#requestRefreshes([{ id: refreshId(ref), ref }], 0);
      },
      { ...workerOptions, concurrency: 1 },
    );
    this.#refreshWorker.on('error', (err) => this.#redisErrors.report('refresh worker', err));
    this.#refreshes.start();
  }

  /** One scheduler per configured scope; schedulers of scopes no longer configured are removed. */
  async #ensureSchedulers(): Promise<void> {
    const { config, providers } = this.#options;
    const wanted = new Map<string, string>();
    for (const p of providers) for (const s of p.scopes()) wanted.set(schedulerId(s.key), s.key);
    for (const [id, scopeKey] of wanted) {
      await this.#resyncQueue.upsertJobScheduler(
        id,
        { every: config.resync.interval },
        { name: 'resync', data: { scopeKey }, opts: { attempts: 1, removeOnComplete: true, removeOnFail: 100 } },
      );
    }
    const existing = await this.#resyncQueue.getJobSchedulers();
    for (const s of existing) {
      if (s.key.startsWith('resync-') && !wanted.has(s.key)) await this.#resyncQueue.removeJobScheduler(s.key);
    }
    await this.#status.pruneScopes(new Set(wanted.values()));
  }

  async #resync(scopeKey: string): Promise<unknown> {
    const { logger } = this.#options;
    const release = await this.#leases.acquire(scopeKey);
    if (!release) {
      logger.info({ scope: scopeKey }, 'a resync of this scope is still running; this one is left out');
      return { skipped: 'a resync of this scope is still running' };
    }
    try {
      return await this.#resyncHeld(scopeKey);
    } finally {
      await release().catch((err: Error) => logger.warn({ scope: scopeKey, err: err.message }, 'could not release the resync lease; it lapses on its own'));
    }
  }

  async #resyncHeld(scopeKey: string): Promise<unknown> {
    const { metrics, logger } = this.#options;
    const started = performance.now();
    let result: ResyncResult;
    // A slot to list the cloud, map and plan in, given up while the resync waits for the cluster's
    // owned entries: meanwhile the next scopes list their clouds, and those that reach the cluster
    // during one listing share the next. Planning takes a slot again, since each plan indexes
    // every owned entry.
    let release = await this.#working.acquire();
    const listOwned = this.#deps.listOwned;
    const sharedListOwned: ReconcileDeps['listOwned'] = async (observed) => {
      release();
      try {
        return await listOwned(observed);
      } finally {
        release = await this.#working.acquire();
      }
    };
    try {
      result = await resyncScope({ ...this.#deps, listOwned: sharedListOwned }, scopeKey);
    } catch (err) {
      const durationMs = performance.now() - started;
      metrics.recordResync(scopeKey, { ok: false, durationMs });
      const previous = await this.#status.scope(scopeKey);
      await this.#status.putScope(failedResyncStatus(scopeKey, previous, { at: new Date().toISOString(), durationMs }, (err as Error).message));
      logger.error({ scope: scopeKey, err: (err as Error).message }, 'resync failed');
      throw err;
    } finally {
      release();
    }
    const { observation, plan } = result;
    const durationMs = performance.now() - started;
    // An incomplete listing is a failed resync for metrics and alerts: its figures are not the scope's.
    metrics.recordResync(scopeKey, { ok: observation.listing.complete, durationMs });
    metrics.recordPlanEnqueued(plan.summary);
    const previous = await this.#status.scope(scopeKey);
    const status = resyncStatus(result, previous, { at: new Date().toISOString(), durationMs });
    await this.#status.putScope(status);
    for (const h of plan.held) logger.warn({ scope: scopeKey, deletes: h.deletes.length }, h.reason);
    for (const p of observation.listing.problems) logger.warn({ scope: scopeKey, code: p.code, at: p.at }, p.message);
    for (const c of status.conflicts ?? []) {
      logger.warn({ scope: scopeKey, key: c.key, kind: c.kind, code: 'VMS_ERR_ENTRY_CONFLICT' }, c.reason);
      this.#events.conflict(c.key, c.reason);
    }
    for (const s of observation.skips) this.#events.skipped(s);
    return { scope: scopeKey, ...plan.summary };
  }

  /**
   * Marks a few instances (from a webhook) due for a refresh after the debounce; fast, no cloud
   * or cluster call. Resolves once Redis has them.
   */
  async refresh(_provider: string, refs: InstanceRef[]): Promise<void> {
    await Promise.all(refs.map((ref) => this.#refreshRequests.add({ id: refreshId(ref), ref })));
  }

  async #requestRefreshes(requests: RefreshRequest[], debounce = this.#options.config.queue.refreshDebounce): Promise<void> {
    // Each event for an instance pushes its waiting refresh out again.
    await this.#refreshSet.request(requests, debounce);
    this.#refreshes.wake(debounce);
  }

  /** Redis answers, the Kubernetes API answers, every scope has resynced or said why not. */
  async readiness(): Promise<Readiness> {
    return this.#readiness.readiness();
  }

  #scopeKeys(): string[] {
    return this.#options.providers.flatMap((p) => p.scopes().map((s) => s.key));
  }

  /** The /status document. */
  async status(): Promise<unknown> {
    const { config, instanceName } = this.#options;
    const [scopes, queue, refreshQueue, writeErrors] = await Promise.all([
      this.#status.scopes(),
      this.#changes.counts().catch((err: Error) => ({ error: err.message })),
      this.#refreshCounts().catch((err: Error) => ({ error: err.message })),
      this.#status.writeErrors(),
    ]);
    return {
      ownerId: config.ownerId,
      policy: config.policy,
      replica: instanceName ?? null,
      queue,
      refreshQueue,
      scopes: this.#scopeKeys().map((k) => scopes.get(k) ?? { scopeKey: k, lastResyncAt: '', error: 'no resync yet' }),
      writeErrors: writeErrors.slice(0, 100),
      writeErrorCount: writeErrors.length,
    };
  }

  /** Refreshes waiting (due), delayed (debounced or backing off) and active, earlier versions' jobs included. */
  async #refreshCounts(): Promise<Record<string, number>> {
    const [set, legacy] = await Promise.all([this.#refreshSet.counts(), this.#refreshQueue.getJobCounts('waiting', 'active', 'delayed', 'failed')]);
    return {
      waiting: set.waiting + (legacy.waiting ?? 0),
      active: set.active + (legacy.active ?? 0),
      delayed: set.delayed + (legacy.delayed ?? 0),
      failed: legacy.failed ?? 0,
    };
  }

  /**
   * Stops taking jobs, lets jobs in flight finish and closes Redis, all within `timeoutMs`; then
   * drops the connections, and waits for that at most FORCED_CLOSE_MS more. So it ends while Redis
   * is away too, when every graceful step would wait for an answer that never comes.
   */
  async close(timeoutMs = 30_000): Promise<void> {
    const graceful = (async () => {
      await Promise.all([this.#applyWorker?.close(), this.#resyncWorker?.close(), this.#refreshWorker?.close(), this.#refreshes.close()]);
      this.#events.close();
      // No write ends from here on: what the last ones cleared is said before Redis closes.
      await this.#status.flushClears();
      await Promise.all([this.#resyncQueue.close(), this.#refreshQueue.close(), this.#changes.close()]);
      await Promise.all([this.#producer.quit(), this.#workerConnection.quit()]);
    })();
    // A step that fails (a connection closed already) leaves the rest to the forced close below.
    const closed = await Promise.race([graceful.then(() => true, () => false), sleep(timeoutMs).then(() => false)]);
    if (closed) return;
    this.#options.logger.warn({ timeoutMs }, 'jobs still running or Redis not answering at shutdown; dropping the Redis connections (another replica picks the jobs up)');
    this.#events.close();
    // BullMQ's close(true) after a close() returns that close's promise, which waits on Redis.
    this.#redisErrors.dropping();
    for (const c of [this.#producer, this.#workerConnection]) c.disconnect();
    const dropped = Promise.allSettled([
      this.#applyWorker?.disconnect(),
      this.#resyncWorker?.disconnect(),
      this.#refreshWorker?.disconnect(),
      this.#resyncQueue.disconnect(),
      this.#refreshQueue.disconnect(),
      this.#changes.disconnect(),
    ]);
    await Promise.race([dropped, sleep(FORCED_CLOSE_MS)]);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

