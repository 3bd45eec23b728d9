// The body of refresh jobs (instances named by webhook events). Jobs are gathered into batches that
// are described, planned and enqueued together; a refresh job ends with its batch.
import type { Job } from 'bullmq';
import { isVmsError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { InstanceRef } from '../model.ts';
import { type ReconcileDeps, refreshInstances, scopeOfRef } from '../sync/reconcile.ts';
import { Batches } from './batches.ts';
import type { EventRecorder } from './event-recorder.ts';
import { REFRESH_BATCH, REFRESH_IN_FLIGHT, type RefreshJobData, refreshId } from './jobs.ts';

/** What a refresh job returns: the figures of the batch it ran in. */
export interface RefreshOutcome {
  batch: number;
  changes: number;
  skips: number;
  unknown: number;
}

/** A batch's outcome: its figures, and the error of each reference (by refreshId) whose scope failed. */
interface BatchOutcome extends RefreshOutcome {
  failed: Map<string, unknown>;
}

/** What refreshing needs. */
export interface RefreshesOptions {
  deps: ReconcileDeps;
  metrics: Metrics;
  logger: Logger;
  events: EventRecorder;
}

/** Runs refresh jobs in batches. */
export class Refreshes {
  readonly #options: RefreshesOptions;
  readonly #batches: Batches<InstanceRef, BatchOutcome>;

  constructor(options: RefreshesOptions) {
    this.#options = options;
    this.#batches = new Batches((refs) => this.#batch(refs), { inFlight: REFRESH_IN_FLIGHT, maxBatch: REFRESH_BATCH });
  }

  /**
   * A refresh job: it fails (and is retried) when its scope's part of the batch fails. Each failure
   * is one warn line naming the reference and one count, so none is silent.
   */
  async run(job: Job<RefreshJobData>): Promise<RefreshOutcome> {
    const { ref } = job.data;
    try {
      const { failed, ...outcome } = await this.#batches.add(ref);
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
  async #batch(refs: InstanceRef[]): Promise<BatchOutcome> {
    try {
      return { ...(await this.#group(refs)), failed: new Map() };
    } catch (err) {
      const groups = new Map<string, InstanceRef[]>();
      for (const ref of refs) {
        const key = scopeOfRef(this.#options.deps.providers, ref)?.scope.key ?? '';
        const group = groups.get(key) ?? [];
        group.push(ref);
        groups.set(key, group);
      }
      if (groups.size === 1) throw err;
      const total: BatchOutcome = { batch: refs.length, changes: 0, skips: 0, unknown: 0, failed: new Map() };
      for (const group of groups.values()) {
        try {
          const part = await this.#group(group);
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

  async #group(refs: InstanceRef[]): Promise<RefreshOutcome> {
    const result = await refreshInstances(this.#options.deps, refs);
    this.#options.metrics.recordPlanEnqueued(result.plan.summary);
    for (const s of result.skips) this.#options.events.skipped(s);
    return { batch: refs.length, changes: result.plan.changes.length, skips: result.skips.length, unknown: result.unknown.length };
  }
}
