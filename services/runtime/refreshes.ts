// Refreshes of instances named by webhook events. The events only mark their instances due in the
// refresh set (services/queue/refresh-set.ts); this loop claims what is due, many references at a
// time, and refreshes each claim as one batch: described (one cloud call per scope), planned and
// enqueued together. A lone event goes at once, a storm in large batches, with no timer and no
// added wait. A reference whose scope fails is due again after a backoff, up to REFRESH_ATTEMPTS
// tries; then the next resync covers it.
import { isVmsError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { InstanceRef } from '../model.ts';
import { Slots } from '../concurrency.ts';
import type { Claim, ClaimedRef, RefreshSet } from '../queue/refresh-set.ts';
import { type ReconcileDeps, refreshInstances, scopeOfRef } from '../sync/reconcile.ts';
import type { EventRecorder } from './event-recorder.ts';
import { REFRESH_ATTEMPTS, REFRESH_BATCH, REFRESH_IN_FLIGHT, refreshId } from './jobs.ts';

/** How long a replica that finds nothing due waits before it looks again, when nothing wakes it sooner. */
const IDLE_POLL_MS = 1000;
/** How long it waits after the refresh set could not be read. */
const ERROR_PAUSE_MS = 1000;

/** What refreshing needs. */
export interface RefreshesOptions {
  deps: ReconcileDeps;
  /** The refresh set on a connection that waits out a Redis outage. */
  set: RefreshSet;
  metrics: Metrics;
  logger: Logger;
  events: EventRecorder;
  /** How long a claim holds its references before another replica may take them (queue.stalledAfter). */
  leaseMs: number;
  /** The first retry's delay, doubling with each further one (queue.backoff). */
  backoffMs: number;
  /** Says a Redis error once per outage instead of once per try. */
  reportRedisError?: (err: unknown) => void;
}

/** The loop that claims due references and refreshes them. */
export class Refreshes {
  readonly #options: RefreshesOptions;
  readonly #slots = new Slots(REFRESH_IN_FLIGHT);
  readonly #running = new Set<Promise<void>>();
  #loop: Promise<void> | undefined;
  #closed = false;
  /** Ends the loop's current wait. */
  #wakeNow: (() => void) | undefined;
  /** Set by a wake that came while the loop was not waiting: its next wait ends at once. */
  #woken = false;
  #wakeTimer: NodeJS.Timeout | undefined;
  #wakeAt = Number.POSITIVE_INFINITY;

  constructor(options: RefreshesOptions) {
    this.#options = options;
  }

  /** Starts claiming. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Makes the loop look for due references in `afterMs` (now by default), if it would not sooner. */
  wake(afterMs = 0): void {
    if (afterMs <= 0) {
      this.#signal();
      return;
    }
    const at = Date.now() + afterMs;
    if (at >= this.#wakeAt) return;
    clearTimeout(this.#wakeTimer);
    this.#wakeAt = at;
    this.#wakeTimer = setTimeout(() => {
      this.#wakeAt = Number.POSITIVE_INFINITY;
      this.#signal();
    }, afterMs);
    this.#wakeTimer.unref();
  }

  /** Stops claiming and waits for the batches in flight; what is still due stays for the next replica. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#wakeTimer);
    this.#signal();
    await this.#loop;
    await Promise.allSettled([...this.#running]);
  }

  async #run(): Promise<void> {
    const { set, leaseMs, logger } = this.#options;
    while (!this.#closed) {
      const release = await this.#slots.acquire();
      if (this.#closed) {
        release();
        break;
      }
      let claim: Claim;
      try {
        claim = await set.claim(REFRESH_BATCH, leaseMs);
      } catch (err) {
        release();
        this.#options.reportRedisError?.(err);
        await this.#wait(ERROR_PAUSE_MS);
        continue;
      }
      for (const id of claim.unreadable) logger.warn({ code: 'VMS_ERR_INTERNAL', refresh: id }, 'a waiting refresh could not be read and was dropped; the next resync covers its instance');
      if (claim.refs.length === 0) {
        release();
        await this.#wait(Math.min(claim.nextDueInMs ?? IDLE_POLL_MS, IDLE_POLL_MS));
        continue;
      }
      const batch = this.#refreshClaim(claim)
        .catch((err: unknown) => {
          logger.error({ code: 'VMS_ERR_INTERNAL', err: errorMessage(err), refs: claim.refs.length }, 'a batch of refreshes failed; it is refreshed again once its claim lapses');
        })
        .finally(() => {
          release();
          this.#running.delete(batch);
          // What came due while the batch ran (and references it held) can be claimed now.
          this.wake();
        });
      this.#running.add(batch);
    }
  }

  #signal(): void {
    if (this.#wakeNow) this.#wakeNow();
    else this.#woken = true;
  }

  /** Waits `ms`, or less if woken (or woken since the last wait). */
  #wait(ms: number): Promise<void> {
    if (this.#closed || this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        this.#wakeNow = undefined;
        resolve();
      };
      timer = setTimeout(done, Math.max(1, ms));
      timer.unref();
      this.#wakeNow = done;
    });
  }

  /** Refreshes one claim and ends it: done references are forgotten, failed ones are due again or given up. */
  async #refreshClaim(claim: Claim): Promise<void> {
    const { set, logger, leaseMs } = this.#options;
    const ids = claim.refs.map((c) => c.id);
    // The claim lapses only when this replica stops renewing it (it died).
    const renewal = setInterval(() => {
      set.renew(claim.token, ids, leaseMs).catch(() => {});
    }, Math.max(1, Math.floor(leaseMs / 3)));
    renewal.unref();
    let failed: Map<string, unknown>;
    try {
      failed = await this.#batch(claim.refs.map((c) => c.ref));
    } catch (err) {
      failed = new Map(claim.refs.map((c) => [c.id, err]));
    } finally {
      clearInterval(renewal);
    }
    const done: string[] = [];
    const retries = new Map<number, string[]>();
    for (const c of claim.refs) {
      if (!failed.has(c.id)) {
        done.push(c.id);
        continue;
      }
      const err = failed.get(c.id);
      const attempt = c.attemptsMade + 1;
      this.#reportFailure(c, err, attempt);
      if (attempt >= REFRESH_ATTEMPTS) done.push(c.id);
      else {
        const delay = this.#options.backoffMs * 2 ** c.attemptsMade;
        retries.set(delay, [...(retries.get(delay) ?? []), c.id]);
      }
    }
    try {
      await set.finish(claim.token, done);
      for (const [delay, ids] of retries) {
        await set.retry(claim.token, ids, delay);
        this.wake(delay);
      }
    } catch (err) {
      // The claim lapses after its lease and its references are refreshed again.
      logger.warn({ err: errorMessage(err), refs: claim.refs.length }, 'could not end a claim of refreshes; they are refreshed again once it lapses');
    }
  }

  #reportFailure(c: ClaimedRef, err: unknown, attempt: number): void {
    const code = isVmsError(err) ? err.code : 'VMS_ERR_INTERNAL';
    this.#options.metrics.recordRefreshFailure(c.ref.provider, code);
    this.#options.logger.warn(
      { code, ref: c.ref, attempt, attempts: REFRESH_ATTEMPTS, err: errorMessage(err) },
      attempt >= REFRESH_ATTEMPTS ? 'refresh of an instance failed for good; the next resync covers it' : 'refresh of an instance failed; it is tried again',
    );
  }

  /**
   * Refreshes a batch. When it fails, each scope's references are refreshed again on their own, so
   * that one scope that cannot be described (a wrong account, a dead thread) fails only its own
   * references; the answer holds the error of each that failed, by refreshId.
   */
  async #batch(refs: InstanceRef[]): Promise<Map<string, unknown>> {
    const failed = new Map<string, unknown>();
    try {
      await this.#group(refs);
      return failed;
    } catch (err) {
      const groups = new Map<string, InstanceRef[]>();
      for (const ref of refs) {
        const key = scopeOfRef(this.#options.deps.providers, ref)?.scope.key ?? '';
        const group = groups.get(key) ?? [];
        group.push(ref);
        groups.set(key, group);
      }
      if (groups.size === 1) throw err;
      for (const group of groups.values()) {
        try {
          await this.#group(group);
        } catch (groupErr) {
          for (const ref of group) failed.set(refreshId(ref), groupErr);
        }
      }
      return failed;
    }
  }

  async #group(refs: InstanceRef[]): Promise<void> {
    const result = await refreshInstances(this.#options.deps, refs);
    this.#options.metrics.recordPlanEnqueued(result.plan.summary);
    for (const s of result.skips) this.#options.events.skipped(s);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
