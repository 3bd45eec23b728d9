// What `serve` runs besides the HTTP server: the apply workers, one job scheduler per scope for the
// periodic resync, the resync/refresh workers, and the shared status. Redis is the only state
// shared between replicas, so any number of them can run side by side.
import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../config/schema.ts';
import { writerNamespaces } from '../mapping/index.ts';
import type { Provider } from '../../providers/provider.ts';
import { isVmsError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics, ScopeGauges } from '../metrics.ts';
import type { InstanceRef } from '../model.ts';
import { type ApplyWorker, STALLS_FORGIVEN, startApplyWorker } from '../queue/apply-worker.ts';
import { ChangeQueue } from '../queue/change-queue.ts';
import { RedisDesiredStore } from '../queue/desired-store.ts';
import { ScopeLeases } from '../queue/scope-lease.ts';
import { createRedis, RedisErrorLog, redisClock } from '../queue/redis.ts';
import type { Readiness } from '../server/server.ts';
import { type ReconcileDeps, refreshInstances, resyncScope, type ResyncResult, scopeOfRef } from '../sync/reconcile.ts';
import type { KubeApi } from '../writer/kube-api.ts';
import type { Writer } from '../writer/writer.ts';
import { Batches } from './batches.ts';
import { EventRecorder } from './event-recorder.ts';
import { type ScopeStatus, StatusStore } from './status-store.ts';

/** The queue of scope resyncs. */
export const RESYNC_QUEUE_NAME = 'vms-resync';
/** The queue of instance refreshes (from webhooks): one job per instance. */
export const REFRESH_QUEUE_NAME = 'vms-refresh';

/**
 * Refreshes run in batches: the instances of the refresh jobs that arrive while earlier batches
 * run are described (one cloud call per scope), planned and enqueued together. Up to
 * REFRESH_IN_FLIGHT batches of up to REFRESH_BATCH instances run at once, so that many refresh
 * jobs may be active.
 */
export const REFRESH_BATCH = 100;
export const REFRESH_IN_FLIGHT = 2;

/** The data of a resync job. */
export interface ResyncJobData {
  scopeKey: string;
}

/** The data of a refresh job. */
export interface RefreshJobData {
  ref: InstanceRef;
}

/**
 * The deduplication id of an instance's refresh: events for one instance coalesce into at most one
 * running and one waiting refresh, and the waiting one describes the instance after the newest event.
 */
export function refreshId(ref: InstanceRef): string {
  return [ref.provider, ref.account, ref.id].map((p) => p.replaceAll('%', '%25').replaceAll(':', '%3A')).join('|');
}

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

/** A scheduler id for a scope: scope keys contain ':', which BullMQ ids may not. */
export function schedulerId(scopeKey: string): string {
  return `resync-${scopeKey.replaceAll('%', '%25').replaceAll(':', '%3A')}`;
}

const KUBE_CHECK_TTL_MS = 10_000;

/** The running workers and schedulers of one `serve` process. */
export class Runtime {
  readonly #options: RuntimeOptions;
  readonly #producer: Redis;
  readonly #workerConnection: Redis;
  readonly #changes: ChangeQueue;
  readonly #resyncQueue: Queue<ResyncJobData>;
  readonly #refreshQueue: Queue<RefreshJobData>;
  readonly #status: StatusStore;
  readonly #leases: ScopeLeases;
  readonly #events: EventRecorder;
  readonly #deps: ReconcileDeps;
  readonly #refreshes: Batches<InstanceRef, BatchOutcome>;
  /** Every Redis connection's, queue's and worker's errors: an outage is said once, with a code. */
  readonly #redisErrors: RedisErrorLog;
  #applyWorker: ApplyWorker | undefined;
  #resyncWorker: Worker<ResyncJobData> | undefined;
  #refreshWorker: Worker<RefreshJobData> | undefined;
  #kubeCheck: { at: number; ok: boolean; detail: string } = { at: 0, ok: false, detail: 'not checked yet' };

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
      listOwned: async (keep) => {
        const owned = await options.writer.listOwned(keep);
        options.metrics.setOwnedEntries(owned.length);
        return owned;
      },
      findByName: (name) => options.writer.findByName(name),
      listForeign: () => options.writer.listForeign(),
      enqueue: (changes) => this.#changes.enqueue(changes),
      confirm: (scopeKey, observedAt, phase, names) => this.#changes.confirm(scopeKey, observedAt, phase, names),
      // Redis's clock, shared by every replica: their own clocks never order two observations.
      clock: redisClock(this.#producer),
    };
    this.#refreshes = new Batches((refs) => this.#refreshBatch(refs), { inFlight: REFRESH_IN_FLIGHT, maxBatch: REFRESH_BATCH });
    options.metrics.setQueueDepthSource(() => this.#changes.counts());
    options.metrics.setScopeSource(() => this.#scopeGauges());
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
    // A resync holds a whole scope in memory, so few run at once; a refresh job is one instance
    // that waits for its batch, so a batch's worth of them (and the next batch's) are active.
    this.#resyncWorker = new Worker<ResyncJobData>(RESYNC_QUEUE_NAME, (job) => this.#resync(job.data.scopeKey), { ...workerOptions, concurrency: 2 });
    this.#resyncWorker.on('error', (err) => this.#redisErrors.report('resync worker', err));
    this.#refreshWorker = new Worker<RefreshJobData>(REFRESH_QUEUE_NAME, (job) => this.#refresh(job), {
      ...workerOptions,
      concurrency: Math.max(config.queue.concurrency, REFRESH_BATCH * REFRESH_IN_FLIGHT),
    });
    this.#refreshWorker.on('error', (err) => this.#redisErrors.report('refresh worker', err));
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

  /**
   * A refresh job ends with its batch: it fails (and is retried) when its scope's part of the batch
   * fails. Each failure is one warn line naming the reference and one count, so none is silent.
   */
  async #refresh(job: Job<RefreshJobData>): Promise<RefreshOutcome> {
    const { ref } = job.data;
    try {
      const { failed, ...outcome } = await this.#refreshes.add(ref);
      const own = failed.get(refreshId(ref));
      if (own !== undefined) throw own;
      return outcome;
    } catch (err) {
      const code = isVmsError(err) ? err.code : 'VMS_ERR_INTERNAL';
      const attempt = job.attemptsMade + 1;
      const attempts = job.opts.attempts ?? 1;
      this.#options.metrics.recordRefreshFailure(ref.provider, code);
      this.#options.logger.warn(
        { code, ref, attempt, attempts, err: (err as Error).message },
        attempt >= attempts ? 'refresh of an instance failed for good; the next resync covers it' : 'refresh of an instance failed; it is tried again',
      );
      throw err;
    }
  }

  /**
   * Refreshes a batch. When it fails, each scope's references are refreshed again on their own, so
   * that one scope that cannot be described (a wrong account, a dead thread) fails only its own
   * jobs; `failed` says which, by refreshId.
   */
  async #refreshBatch(refs: InstanceRef[]): Promise<BatchOutcome> {
    try {
      return { ...(await this.#refreshGroup(refs)), failed: new Map() };
    } catch (err) {
      const groups = new Map<string, InstanceRef[]>();
      for (const ref of refs) {
        const key = scopeOfRef(this.#options.providers, ref)?.scope.key ?? '';
        const group = groups.get(key) ?? [];
        group.push(ref);
        groups.set(key, group);
      }
      if (groups.size === 1) throw err;
      const total: BatchOutcome = { batch: refs.length, changes: 0, skips: 0, unknown: 0, failed: new Map() };
      for (const group of groups.values()) {
        try {
          const part = await this.#refreshGroup(group);
          total.changes += part.changes;
          total.skips += part.skips;
          total.unknown += part.unknown;
        } catch (groupErr) {
          for (const ref of group) total.failed.set(refreshId(ref), groupErr);
        }
      }
      return total;
    }
  }

  async #refreshGroup(refs: InstanceRef[]): Promise<RefreshOutcome> {
    const result = await refreshInstances(this.#deps, refs);
    this.#countEnqueued(result.plan.summary);
    for (const s of result.skips) this.#events.skipped(s);
    return { batch: refs.length, changes: result.plan.changes.length, skips: result.skips.length, unknown: result.unknown.length };
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
    try {
      result = await resyncScope(this.#deps, scopeKey);
    } catch (err) {
      const durationMs = performance.now() - started;
      metrics.recordResync(scopeKey, { ok: false, durationMs });
      const previous = await this.#status.scope(scopeKey);
      await this.#status.putScope({
        ...(previous ?? emptyStatus(scopeKey)),
        lastResyncAt: new Date().toISOString(),
        durationMs,
        error: (err as Error).message,
      });
      logger.error({ scope: scopeKey, err: (err as Error).message }, 'resync failed');
      throw err;
    }
    const { observation, plan } = result;
    const durationMs = performance.now() - started;
    const complete = observation.listing.complete;
    // An incomplete listing is a failed resync for metrics and alerts: its figures are not the scope's.
    metrics.recordResync(scopeKey, { ok: complete, durationMs });
    this.#countEnqueued(plan.summary);
    const now = new Date().toISOString();
    const previous = await this.#status.scope(scopeKey);
    const skipCodes: Record<string, number> = {};
    for (const s of observation.skips) skipCodes[s.code] = (skipCodes[s.code] ?? 0) + 1;
    const conflicts = plan.conflicts.filter((c) => c.scopeKey === scopeKey);
    const lastComplete = complete
      ? {
          at: now,
          provider: observation.scope.provider,
          instances: result.instances,
          entries: observation.entries.length,
          heldDeletes: plan.held.reduce((n, h) => n + h.deletes.length, 0),
          skipCodes,
        }
      : previous?.lastComplete;
    await this.#status.putScope({
      scopeKey,
      lastResyncAt: now,
      lastSuccessAt: complete ? now : (previous?.lastSuccessAt ?? ''),
      durationMs,
      complete,
      instances: result.instances,
      entries: observation.entries.length,
      owned: result.owned,
      changes: plan.changes.length,
      held: plan.held.map((h) => ({ deletes: h.deletes.length, reason: h.reason })),
      problems: observation.listing.problems,
      skips: observation.skips,
      skipCount: observation.skips.length,
      error: '',
      conflicts: conflicts.map((c) => ({ key: c.key, kind: c.kind, ...(c.ownerScopeKey ? { ownerScopeKey: c.ownerScopeKey } : {}), reason: c.reason })),
      conflictCount: conflicts.length,
      ...(lastComplete ? { lastComplete } : {}),
    });
    for (const h of plan.held) logger.warn({ scope: scopeKey, deletes: h.deletes.length }, h.reason);
    for (const p of observation.listing.problems) logger.warn({ scope: scopeKey, code: p.code, at: p.at }, p.message);
    for (const c of conflicts) {
      logger.warn({ scope: scopeKey, key: c.key, kind: c.kind, code: 'VMS_ERR_ENTRY_CONFLICT' }, c.reason);
      this.#events.conflict(c.key, c.reason);
    }
    for (const s of observation.skips) this.#events.skipped(s);
    return { scope: scopeKey, ...plan.summary };
  }

  /** The scope gauges of /metrics, from the shared status: the same on every replica. */
  async #scopeGauges(): Promise<ScopeGauges[]> {
    const statuses = await this.#status.gauges();
    return this.#scopeKeys().map((scope) => {
      const status = statuses.get(scope);
      const last = status?.lastComplete;
      return {
        scope,
        provider: last?.provider ?? '',
        lastSuccessAt: last ? Date.parse(last.at) : undefined,
        instances: last?.instances ?? 0,
        desired: last?.entries ?? 0,
        heldDeletes: last?.heldDeletes ?? 0,
        skipCodes: last?.skipCodes ?? {},
        conflicts: status?.conflictCount ?? 0,
      };
    });
  }

  #countEnqueued(summary: { create: number; update: number; delete: number }): void {
    const { metrics } = this.#options;
    if (summary.create > 0) metrics.recordEnqueued('create', summary.create);
    if (summary.update > 0) metrics.recordEnqueued('update', summary.update);
    if (summary.delete > 0) metrics.recordEnqueued('delete', summary.delete);
  }

  /** Queues a refresh of a few instances (from a webhook); fast, no cloud or cluster call. */
  async refresh(_provider: string, refs: InstanceRef[]): Promise<void> {
    const opts = {
      attempts: 5,
      backoff: { type: 'exponential', delay: this.#options.config.queue.backoff },
      removeOnComplete: true,
      removeOnFail: 100,
    };
    const debounce = this.#options.config.queue.refreshDebounce;
    await this.#refreshQueue.addBulk(
      refs.map((ref) => ({
        name: 'refresh',
        data: { ref },
        opts:
          debounce > 0
            ? // Debounce: each event for the instance pushes its waiting refresh out again.
              { ...opts, delay: debounce, deduplication: { id: refreshId(ref), ttl: debounce, extend: true, reschedule: true } }
            : { ...opts, deduplication: { id: refreshId(ref), keepLastIfActive: true } },
      })),
    );
  }


  /** Redis answers, the Kubernetes API answers, every scope has resynced or said why not. */
  async readiness(): Promise<Readiness> {
    const checks: Readiness['checks'] = {};
    try {
      await this.#producer.ping();
      checks.redis = { ok: true };
    } catch (err) {
      checks.redis = { ok: false, detail: (err as Error).message };
    }
    checks.kubernetes = await this.#checkKube();
    if (checks.redis.ok) {
      const statuses = await this.#status.scopes();
      const pending = this.#scopeKeys().filter((k) => !statuses.has(k));
      checks.scopes = pending.length === 0 ? { ok: true } : { ok: false, detail: `no resync yet: ${pending.join(', ')}` };
    } else {
      checks.scopes = { ok: false, detail: 'unknown while Redis is unreachable' };
    }
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  async #checkKube(): Promise<{ ok: boolean; detail?: string }> {
    const now = Date.now();
    if (now - this.#kubeCheck.at > KUBE_CHECK_TTL_MS) {
      try {
        // A GET of an entry that need not exist: a 404 proves the API answers and we may read.
        // In a namespace we may read, so that a Role per allowed namespace suffices.
        const namespace = writerNamespaces(this.#options.config).namespaces.find((n) => !n.includes('*')) ?? 'default';
        await this.#options.api.getEntry(namespace, 'vm-mesh-sync-readiness-probe');
        this.#kubeCheck = { at: now, ok: true, detail: '' };
      } catch (err) {
        this.#kubeCheck = { at: now, ok: false, detail: (err as Error).message };
      }
    }
    return this.#kubeCheck.ok ? { ok: true } : { ok: false, detail: this.#kubeCheck.detail };
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
      this.#refreshQueue.getJobCounts('waiting', 'active', 'delayed', 'failed').catch((err: Error) => ({ error: err.message })),
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


  /** Stops taking jobs, lets jobs in flight finish (up to `timeoutMs`), closes Redis. */
  async close(timeoutMs = 30_000): Promise<void> {
    const graceful = Promise.all([this.#applyWorker?.close(), this.#resyncWorker?.close(), this.#refreshWorker?.close()]);
    const timedOut = await Promise.race([graceful.then(() => false), sleep(timeoutMs).then(() => true)]);
    if (timedOut) {
      this.#options.logger.warn({ timeoutMs }, 'jobs still running at shutdown; they will be picked up again by another replica');
      await Promise.allSettled([this.#applyWorker?.worker.close(true), this.#resyncWorker?.close(true), this.#refreshWorker?.close(true)]);
    }
    this.#events.close();
    await Promise.allSettled([this.#resyncQueue.close(), this.#refreshQueue.close(), this.#changes.close()]);
    await Promise.allSettled([this.#producer.quit(), this.#workerConnection.quit()]);
  }
}

/** What a refresh job returns: the figures of the batch it ran in. */
interface RefreshOutcome {
  batch: number;
  changes: number;
  skips: number;
  unknown: number;
}

/** A batch's outcome: its figures, and the error of each reference (by refreshId) whose scope failed. */
interface BatchOutcome extends RefreshOutcome {
  failed: Map<string, unknown>;
}

function emptyStatus(scopeKey: string): ScopeStatus {
  return {
    scopeKey,
    lastResyncAt: '',
    lastSuccessAt: '',
    durationMs: 0,
    complete: false,
    instances: 0,
    entries: 0,
    owned: 0,
    changes: 0,
    held: [],
    problems: [],
    skips: [],
    skipCount: 0,
    error: '',
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

