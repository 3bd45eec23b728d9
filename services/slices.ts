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
