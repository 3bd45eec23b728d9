// The one bounded fan-out of the project: cloud describes and listings, Redis records, cluster
// reads and `sync --once` writes all run through mapLimited, so they share one behaviour on
// failure; askedAhead is how a listing asks for its next page while it reads one. Pure (no I/O of
// its own), so the provider threads import it too.

/**
 * `task` of each item, at most `limit` at once, started in the items' order; resolves to the
 * results in the items' order. After a task fails no further item is started, and the call
 * rejects with the first failure once the tasks already running have settled: nothing it started
 * is still running when it returns. A caller that wants every item tried catches inside `task`.
 */
export async function mapLimited<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  // A limit of 0 would silently do nothing, NaN would make every lane count wrong: both are bugs.
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`mapLimited: limit must be a whole number of at least 1, not ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await task(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
  return results;
}

/**
 * At most `limit` holders at once: `acquire` resolves, in the order asked, to a release function
 * once a slot is free. Releasing twice frees one slot only.
 */
export class Slots {
  readonly #waiting: Array<() => void> = [];
  #free: number;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`Slots: limit must be a whole number of at least 1, not ${limit}`);
    this.#free = limit;
  }

  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const next = this.#waiting.shift();
      // The slot passes straight to the next in line, or is free again.
      if (next) next();
      else this.#free++;
    };
  }
}

/**
 * A request made before its answer is wanted (the next page of a listing, asked for while one is
 * read): its failure is met where it is awaited, and is not an unhandled rejection meanwhile.
 */
export function askedAhead<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
