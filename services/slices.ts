// Heavy pure work (reading a large inventory, mapping and planning a large scope) is written as a
// generator that yields at cheap checkpoints. The same code then runs two ways: at once, for
// `plan`, tests and small inputs (runSync), or in slices of a few milliseconds with the event loop
// free in between (runSliced), so that `serve` keeps answering probes and renewing its queue locks
// while it plans a hundred thousand entries. Nothing here knows what the work is.

/** Work that yields (nothing) whenever it may be paused, and returns its result at the end. */
export type Sliced<T> = Generator<void, T, void>;

/** How many items a loop handles between two checkpoints: cheap enough to check the clock that often. */
export const CHECKPOINT_EVERY = 256;

/** Runs sliced work to its end without pausing. */
export function runSync<T>(work: Sliced<T>): T {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
  }
}

/** How long one slice may hold the event loop, in milliseconds. */
export const SLICE_MS = 8;

/**
 * Runs sliced work, giving the event loop back (setImmediate: timers and I/O run first) whenever
 * a slice has taken `sliceMs`.
 */
export async function runSliced<T>(work: Sliced<T>, sliceMs = SLICE_MS): Promise<T> {
  let started = performance.now();
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
    if (performance.now() - started >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      started = performance.now();
    }
  }
}

/** How many items a sliced sort sorts at once before it merges: a run of keys takes a millisecond or two, and fewer runs mean fewer merge passes. */
export const SORT_RUN = 4096;

/**
 * Sorts `items` in place, as `items.sort(compare)` does (stably, so with the same result), as
 * sliced work: runs of `run` items sorted at once, then merged pairwise with a checkpoint every
 * CHECKPOINT_EVERY items moved. A hundred thousand keys sorted at once hold the event loop for
 * tens of milliseconds.
 */
export function* sortSliced<T>(items: T[], compare: (a: T, b: T) => number, run = SORT_RUN): Sliced<T[]> {
  const n = items.length;
  if (n <= run) return items.sort(compare);
  for (let start = 0; start < n; start += run) {
    const sorted = items.slice(start, start + run).sort(compare);
    for (let k = 0; k < sorted.length; k++) items[start + k] = sorted[k]!;
    yield;
  }
  let from = items;
  let to = new Array<T>(n);
  let moved = 0;
  for (let width = run; width < n; width *= 2) {
    for (let left = 0; left < n; left += 2 * width) {
      const mid = Math.min(left + width, n);
      const end = Math.min(left + 2 * width, n);
      let i = left;
      let j = mid;
      for (let k = left; k < end; k++) {
        // Ties go to the left run: the order of equal items stays as it was.
        to[k] = j >= end || (i < mid && compare(from[i]!, from[j]!) <= 0) ? from[i++]! : from[j++]!;
        if (++moved % CHECKPOINT_EVERY === 0) yield;
      }
    }
    [from, to] = [to, from];
  }
  if (from !== items) {
    for (let k = 0; k < n; k++) {
      items[k] = from[k]!;
      if (++moved % CHECKPOINT_EVERY === 0) yield;
    }
  }
  return items;
}
