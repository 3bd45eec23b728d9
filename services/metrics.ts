// Prometheus metrics of one vm-mesh-sync process. Each Metrics owns its registry, so tests and
// several instances in one process never clash over the global one. Labels are scope keys, provider
// kinds and stable codes only: an instance id in a label would grow a series per VM.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ErrorCode } from './errors.ts';

/** The kinds of change the planner sends to the queue. */
export type EnqueuedOp = 'create' | 'update' | 'delete';

/** What applying one change did to the cluster. */
export type ApplyResult = 'created' | 'updated' | 'unchanged' | 'stale' | 'deleted' | 'absent' | 'conflict';

/** How a webhook request was answered when it was accepted (the kinds of a WebhookOutcome). */
export type WebhookOutcomeKind = 'refresh' | 'ignored' | 'reply';

/** Every op and result, so their counters exist at 0 before the first change and rate() works from the start. */
export const ENQUEUED_OPS: readonly EnqueuedOp[] = ['create', 'update', 'delete'];
/** See ENQUEUED_OPS. */
export const APPLY_RESULTS: readonly ApplyResult[] = ['created', 'updated', 'unchanged', 'stale', 'deleted', 'absent', 'conflict'];

/** Job counts by BullMQ state (`waiting`, `active`, `delayed`, `failed`, …), read when /metrics is scraped. */
export type QueueDepthSource = () => Promise<Record<string, number>>;

/**
 * The result of one resync of a scope. A failed resync only counts as a failure and a duration:
 * the gauges keep the last good picture rather than drop to the zeros of a listing that never came.
 */
export type ResyncRecord =
  | {
      ok: true;
      /** The provider kind of the scope. */
      provider: string;
      durationMs: number;
      instances: number;
      desired: number;
      /** Every skip of this resync; only their codes are counted. */
      skips: readonly { code: string }[];
      /** Deletes the guard held back in this scope (0 when none). */
      heldDeletes: number;
      /** When the resync ended, unix milliseconds; now when absent. */
      finishedAt?: number;
    }
  | { ok: false; durationMs: number };

/** Options of a Metrics. */
export interface MetricsOptions {
  /** Node.js process metrics under their standard names (process_*, nodejs_*); on by default. */
  defaultMetrics?: boolean;
  /** A queue depth source slower than this (Redis down) leaves the depth out of the scrape; default 2000 ms. */
  queueDepthTimeoutMs?: number;
}

/** The metrics of vm-mesh-sync, with methods named after what happened in the domain. */
export class Metrics {
  /** This instance's registry, for metrics the runtime adds of its own. */
  readonly registry: Registry;
  private readonly instancesSeen: Gauge<'provider' | 'scope'>;
  private readonly entriesDesired: Gauge<'scope'>;
  private readonly entriesOwned: Gauge;
  private readonly changesEnqueued: Counter<'op'>;
  private readonly changesApplied: Counter<'result'>;
  private readonly writeFailures: Counter<'code'>;
  private readonly skips: Gauge<'scope' | 'code'>;
  private readonly queueDepth: Gauge<'state'>;
  private readonly queueDepthErrors: Counter;
  private readonly resyncDuration: Histogram<'scope'>;
  private readonly resyncLastSuccess: Gauge<'scope'>;
  private readonly resyncFailures: Counter<'scope'>;
  private readonly deletesHeld: Gauge<'scope'>;
  private readonly webhookEvents: Counter<'provider' | 'outcome'>;
  private readonly webhookRejected: Counter<'provider' | 'code'>;
  private readonly queueDepthTimeoutMs: number;
  private queueDepthSource: QueueDepthSource | undefined;
  private pendingQueueDepth: Promise<void> = Promise.resolve();
  /** Skip codes set per scope, so the next resync of the scope can drop the ones that are gone. */
  private readonly skipCodesByScope = new Map<string, Set<string>>();

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    this.queueDepthTimeoutMs = options.queueDepthTimeoutMs ?? 2000;
    this.queueDepthSource = undefined;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];

    this.instancesSeen = new Gauge({
      name: 'vms_instances_seen',
      help: 'Instances listed in the last complete resync of a scope.',
      labelNames: ['provider', 'scope'],
      registers,
    });
    this.entriesDesired = new Gauge({
      name: 'vms_entries_desired',
      help: 'WorkloadEntries the last complete resync of a scope wants.',
      labelNames: ['scope'],
      registers,
    });
    this.entriesOwned = new Gauge({
      name: 'vms_entries_owned',
      help: 'WorkloadEntries in the cluster carrying this installation’s owner labels, as last read.',
      registers,
    });
    this.changesEnqueued = new Counter({
      name: 'vms_changes_enqueued_total',
      help: 'Changes sent to the queue, by operation.',
      labelNames: ['op'],
      registers,
    });
    this.changesApplied = new Counter({
      name: 'vms_changes_applied_total',
      help: 'Changes applied to the cluster, by result.',
      labelNames: ['result'],
      registers,
    });
    this.writeFailures = new Counter({
      name: 'vms_write_failures_total',
      help: 'Changes the writer gave up on, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.skips = new Gauge({
      name: 'vms_skips',
      help: 'Instances skipped in the last complete resync of a scope, by skip code.',
      labelNames: ['scope', 'code'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'vms_queue_depth',
      help: 'Jobs in the change queue, by state.',
      labelNames: ['state'],
      registers,
      collect: () => {
        this.pendingQueueDepth = this.collectQueueDepth();
        return this.pendingQueueDepth;
      },
    });
    // Registered after vms_queue_depth and waiting for its read, so a failure shows in the same scrape.
    this.queueDepthErrors = new Counter({
      name: 'vms_queue_depth_errors_total',
      help: 'Scrapes in which the queue depth could not be read (Redis unreachable or slow).',
      registers,
      collect: () => this.pendingQueueDepth,
    });
    this.resyncDuration = new Histogram({
      name: 'vms_resync_duration_seconds',
      help: 'How long a resync of a scope took, listing to plan, failed ones included.',
      labelNames: ['scope'],
      // Listings run from a fraction of a second (static) to the 120 s default time-out.
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.resyncLastSuccess = new Gauge({
      name: 'vms_resync_last_success_timestamp_seconds',
      help: 'Unix time of the last complete resync of a scope.',
      labelNames: ['scope'],
      registers,
    });
    this.resyncFailures = new Counter({
      name: 'vms_resync_failures_total',
      help: 'Resyncs of a scope that failed or listed the scope incompletely.',
      labelNames: ['scope'],
      registers,
    });
    this.deletesHeld = new Gauge({
      name: 'vms_deletes_held',
      help: 'Deletes the deletion guard held back in the last complete resync of a scope.',
      labelNames: ['scope'],
      registers,
    });
    this.webhookEvents = new Counter({
      name: 'vms_webhook_events_total',
      help: 'Webhook requests accepted, by provider and outcome.',
      labelNames: ['provider', 'outcome'],
      registers,
    });
    this.webhookRejected = new Counter({
      name: 'vms_webhook_rejected_total',
      help: 'Webhook requests answered with an error, by provider and error code.',
      labelNames: ['provider', 'code'],
      registers,
    });

    for (const op of ENQUEUED_OPS) this.changesEnqueued.inc({ op }, 0);
    for (const result of APPLY_RESULTS) this.changesApplied.inc({ result }, 0);
  }

  /** The content type of text(), for the /metrics answer. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Where queue depths come from; the runtime provides it once the queue exists. */
  setQueueDepthSource(source: QueueDepthSource | undefined): void {
    this.queueDepthSource = source;
  }

  /** Records one resync of a scope; the skip series of the scope are replaced by this resync's. */
  recordResync(scopeKey: string, record: ResyncRecord): void {
    const scope = scopeKey;
    this.resyncDuration.observe({ scope }, record.durationMs / 1000);
    if (!record.ok) {
      this.resyncFailures.inc({ scope });
      return;
    }
    // The failure series exists from the first success on, so increase() alerts see its first failure.
    this.resyncFailures.inc({ scope }, 0);
    this.instancesSeen.set({ provider: record.provider, scope }, record.instances);
    this.entriesDesired.set({ scope }, record.desired);
    this.deletesHeld.set({ scope }, record.heldDeletes);
    this.resyncLastSuccess.set({ scope }, Math.floor((record.finishedAt ?? Date.now()) / 1000));

    const counts = new Map<string, number>();
    for (const skip of record.skips) counts.set(skip.code, (counts.get(skip.code) ?? 0) + 1);
    const previous = this.skipCodesByScope.get(scope);
    if (previous) {
      for (const code of previous) if (!counts.has(code)) this.skips.remove({ scope, code });
    }
    for (const [code, count] of counts) this.skips.set({ scope, code }, count);
    this.skipCodesByScope.set(scope, new Set(counts.keys()));
  }

  /** Records changes sent to the queue. */
  recordEnqueued(op: EnqueuedOp, count = 1): void {
    this.changesEnqueued.inc({ op }, count);
  }

  /** Records one change applied to the cluster. */
  recordApply(result: ApplyResult): void {
    this.changesApplied.inc({ result });
  }

  /** Records one change the writer gave up on. */
  recordWriteFailure(code: ErrorCode): void {
    this.writeFailures.inc({ code });
  }

  /** Sets how many entries we own in the cluster. */
  setOwnedEntries(count: number): void {
    this.entriesOwned.set(count);
  }

  /** Records one accepted webhook request. `provider` must be a configured provider kind. */
  recordWebhook(provider: string, outcome: WebhookOutcomeKind): void {
    this.webhookEvents.inc({ provider, outcome });
  }

  /** Records one webhook request answered with an error. `provider` must be a configured kind or `unknown`. */
  recordWebhookRejected(provider: string, code: ErrorCode): void {
    this.webhookRejected.inc({ provider, code });
  }

  private async collectQueueDepth(): Promise<void> {
    const source = this.queueDepthSource;
    this.queueDepth.reset();
    if (!source) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      const depths = await Promise.race([
        source(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('queue depth timed out')), this.queueDepthTimeoutMs);
        }),
      ]);
      for (const [state, count] of Object.entries(depths)) {
        if (Number.isFinite(count)) this.queueDepth.set({ state }, count);
      }
    } catch {
      // A scrape must not fail because Redis is down; the missing depth and this counter say so.
      this.queueDepthErrors.inc();
    } finally {
      clearTimeout(timer);
    }
  }
}
