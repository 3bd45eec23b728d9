// Applies a plan's changes in this process, a few at a time (the `sync --once` path; `serve`
// sends them through the queue instead).
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
  let next = 0;
  const runOne = async (): Promise<void> => {
    while (next < changes.length) {
      const change = changes[next++]!;
      try {
        const result = await writer.applyWithRetry(change, { maxAttempts: options.maxAttempts, baseDelayMs: options.baseDelayMs });
        outcome.results[result] = (outcome.results[result] ?? 0) + 1;
      } catch (err) {
        outcome.failed.push({ change, error: err as Error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, changes.length) }, runOne));
  return outcome;
}
