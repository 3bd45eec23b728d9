// Applies a plan's changes in this process, a few at a time (the `sync --once` path; `serve`
// sends them through the queue instead).
import { mapLimited } from '../concurrency.ts';
import type { Change } from '../model.ts';
import type { ApplyResult, Writer } from '../writer/writer.ts';

/** What happened to a batch of changes. */
export interface ApplyOutcome {
  /** How many changes ended in each result. */
  results: Partial<Record<ApplyResult, number>>;
  failed: Array<{ change: Change; error: Error }>;
}

/** Retry settings for transient failures. */
export interface ApplyOptions {
  concurrency: number;
  maxAttempts: number;
  baseDelayMs: number;
}

/** Applies every change with retries; one failure never stops the others. */
export async function applyChanges(writer: Pick<Writer, 'applyWithRetry'>, changes: readonly Change[], options: ApplyOptions): Promise<ApplyOutcome> {
  const outcome: ApplyOutcome = { results: {}, failed: [] };
  // Every change is tried: a failure is kept here, never thrown to mapLimited (which would stop).
  await mapLimited(changes, options.concurrency, async (change) => {
    try {
      const result = await writer.applyWithRetry(change, { maxAttempts: options.maxAttempts, baseDelayMs: options.baseDelayMs });
      outcome.results[result] = (outcome.results[result] ?? 0) + 1;
    } catch (err) {
      outcome.failed.push({ change, error: err as Error });
    }
  });
  return outcome;
}
