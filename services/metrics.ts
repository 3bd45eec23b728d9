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

/** One resync of a scope as this process ran it: `ok` is false when it failed or listed the scope incompletely. */
export interface ResyncRecord {
  ok: boolean;
  durationMs: number;
}

/**
 * What the shared status says of one scope, read when /metrics is scraped, so that every replica
 * shows the same figures whichever ran the scope last. The figures are those of the scope's last
 * complete resync; a failed one leaves them as they were rather than drop them to zeros.
 */
export interface ScopeGauges {
  scope: string;
  provider: string;
  /** Unix milliseconds of the last complete resync; undefined when there was none (the gauge is then 0). */
  lastSuccessAt: number | undefined;
  instances: number;
  desired: number;
  heldDeletes: number;
  skipCodes: Record<string, number>;
  /** Names the scope wants and another scope (or something not ours) holds, as of its last resync. */
  conflicts: number;
}

/** Where the scope gauges come from. */
export type ScopeGaugeSource = () => Promise<ScopeGauges[]>;

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
  private readonly refreshDepth: Gauge<'state'>;
  private readonly queueDepthErrors: Counter;
  private readonly resyncDuration: Histogram<'scope'>;
  private readonly resyncLastSuccess: Gauge<'scope'>;
  private readonly resyncFailures: Counter<'scope'>;
  private readonly deletesHeld: Gauge<'scope'>;
  private readonly conflicts: Gauge<'scope'>;
  private readonly webhookEvents: Counter<'provider' | 'outcome'>;
  private readonly refreshFailures: Counter<'provider' | 'code'>;
  private readonly webhookRejected: Counter<'provider' | 'code'>;
  private readonly queueDepthTimeoutMs: number;
  private queueDepthSource: QueueDepthSource | undefined;
  private pendingQueueDepth: Promise<void> = Promise.resolve();
  private refreshDepthSource: QueueDepthSource | undefined;
  private pendingRefreshDepth: Promise<void> = Promise.resolve();
  private scopeSource: ScopeGaugeSource | undefined;
  private pendingScopes: Promise<void> = Promise.resolve();

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    this.queueDepthTimeoutMs = options.queueDepthTimeoutMs ?? 2000;
    this.queueDepthSource = undefined;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];

    // The scope gauges are read from the shared status at each scrape: the first one to be
    // collected starts the read, the others wait for it.
    const scopes = () => this.pendingScopes;
    this.instancesSeen = new Gauge({
      name: 'vms_instances_seen',
      help: 'Instances listed in the last complete resync of a scope (shared by every replica).',
      labelNames: ['provider', 'scope'],
      registers,
      collect: () => {
        this.pendingScopes = this.collectScopes();
        return this.pendingScopes;
      },
    });
    this.entriesDesired = new Gauge({
      name: 'vms_entries_desired',
      help: 'WorkloadEntries the last complete resync of a scope wants.',
      labelNames: ['scope'],
      registers,
      collect: scopes,
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
      collect: scopes,
    });
    this.queueDepth = new Gauge({
      name: 'vms_queue_depth',
      help: 'Jobs in the change queue, by state.',
      labelNames: ['state'],
      registers,
      collect: () => {
        this.pendingQueueDepth = this.collectDepth(this.queueDepth, this.queueDepthSource);
        return this.pendingQueueDepth;
      },
    });
    this.refreshDepth = new Gauge({
      name: 'vms_refresh_depth',
      help: 'Instances to refresh after webhook events, by state: due (waiting), within their debounce or backoff (delayed), being refreshed (active).',
      labelNames: ['state'],
      registers,
      collect: () => {
        this.pendingRefreshDepth = this.collectDepth(this.refreshDepth, this.refreshDepthSource);
        return this.pendingRefreshDepth;
      },
    });
    // Registered after the depths and waiting for their reads, so a failure shows in the same scrape.
    this.queueDepthErrors = new Counter({
      name: 'vms_queue_depth_errors_total',
      help: 'Scrapes in which a queue depth (vms_queue_depth, vms_refresh_depth) could not be read (Redis unreachable or slow).',
      registers,
      collect: async () => {
        await Promise.all([this.pendingQueueDepth, this.pendingRefreshDepth]);
      },
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
      help: 'Unix time of the last complete resync of a scope, whichever replica ran it; 0 when there was none.',
      labelNames: ['scope'],
      registers,
      collect: scopes,
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
      collect: scopes,
    });
    this.conflicts = new Gauge({
      name: 'vms_conflicts',
      help: 'Entry names a scope wants that another scope (or an object not ours) holds, as of its last resync.',
      labelNames: ['scope'],
      registers,
      collect: scopes,
    });
    this.webhookEvents = new Counter({
      name: 'vms_webhook_events_total',
      help: 'Webhook requests accepted, by provider and outcome.',
      labelNames: ['provider', 'outcome'],
      registers,
    });
    this.refreshFailures = new Counter({
      name: 'vms_refresh_failures_total',
      help: 'Refreshes of an instance (from a webhook) that failed, each attempt, by provider and error code.',
      labelNames: ['provider', 'code'],
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

  /** Where vms_refresh_depth comes from; the runtime provides the refresh set's counts. */
  setRefreshDepthSource(source: QueueDepthSource | undefined): void {
    this.refreshDepthSource = source;
  }

  /** Where the scope gauges come from; the runtime provides the shared status. */
  setScopeSource(source: ScopeGaugeSource | undefined): void {
    this.scopeSource = source;
  }

  /** Records one resync this process ran; one that failed or listed incompletely counts as a failure. */
  recordResync(scopeKey: string, record: ResyncRecord): void {
    const scope = scopeKey;
    this.resyncDuration.observe({ scope }, record.durationMs / 1000);
    // The failure series exists from the first resync on, so increase() alerts see its first failure.
    this.resyncFailures.inc({ scope }, record.ok ? 0 : 1);
  }

  /** Records changes sent to the queue. */
  recordEnqueued(op: EnqueuedOp, count = 1): void {
    this.changesEnqueued.inc({ op }, count);
  }

  /** Records the changes of a plan sent to the queue, by operation (a resync's or a refresh's). */
  recordPlanEnqueued(summary: Readonly<Record<EnqueuedOp, number>>): void {
    for (const op of ENQUEUED_OPS) if (summary[op] > 0) this.recordEnqueued(op, summary[op]);
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
  /** A refresh of one instance failed (one attempt; BullMQ retries it). */
  recordRefreshFailure(provider: string, code: ErrorCode): void {
    this.refreshFailures.inc({ provider, code });
  }

  recordWebhookRejected(provider: string, code: ErrorCode): void {
    this.webhookRejected.inc({ provider, code });
  }

  /** Reads a scrape-time source, giving up after queueDepthTimeoutMs so a scrape never hangs on Redis. */
  private async bounded<T>(source: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        source(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out')), this.queueDepthTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async collectScopes(): Promise<void> {
    const source = this.scopeSource;
    if (!source) return;
    try {
      const all = await this.bounded(source);
      for (const gauge of [this.instancesSeen, this.entriesDesired, this.skips, this.resyncLastSuccess, this.deletesHeld, this.conflicts]) gauge.reset();
      for (const g of all) {
        const scope = g.scope;
        this.resyncLastSuccess.set({ scope }, g.lastSuccessAt === undefined ? 0 : Math.floor(g.lastSuccessAt / 1000));
        this.conflicts.set({ scope }, g.conflicts);
        if (g.lastSuccessAt === undefined) continue;
        this.instancesSeen.set({ provider: g.provider, scope }, g.instances);
        this.entriesDesired.set({ scope }, g.desired);
        this.deletesHeld.set({ scope }, g.heldDeletes);
        for (const [code, count] of Object.entries(g.skipCodes)) this.skips.set({ scope, code }, count);
      }
    } catch {
      // Redis down: the scope gauges keep their last values; vms_queue_depth_errors_total rises in
      // the same scrape, since the queue depth comes from the same Redis.
    }
  }

  private async collectDepth(gauge: Gauge<'state'>, source: QueueDepthSource | undefined): Promise<void> {
    gauge.reset();
    if (!source) return;
    try {
      const depths = await this.bounded(source);
      for (const [state, count] of Object.entries(depths)) {
        if (Number.isFinite(count)) gauge.set({ state }, count);
      }
    } catch {
      // A scrape must not fail because Redis is down; the missing depth and this counter say so.
      this.queueDepthErrors.inc();
    }
  }
}
