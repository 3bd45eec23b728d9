// Refreshes come one job per instance, but describing and planning them one at a time costs a
// cloud call, a clock read and a plan per instance: under an event storm that, not the work, is
// the bottleneck. Batches gathers what arrives while earlier batches run and hands it over as one
// batch as soon as a run ends, so a lone event goes at once and a storm goes in large batches,
// with no timer and no added wait.

/** How many runs may be in flight at once, and how many items one run takes at most. */
export interface BatchLimits {
  inFlight: number;
  maxBatch: number;
}

/** Runs items in batches; each item's promise settles with the outcome of the batch that ran it. */
export class Batches<T, R> {
  readonly #run: (items: T[]) => Promise<R>;
  readonly #limits: BatchLimits;
  #waiting: Array<{ item: T; resolve: (r: R) => void; reject: (err: unknown) => void }> = [];
  #running = 0;
  #scheduled = false;

  constructor(run: (items: T[]) => Promise<R>, limits: BatchLimits) {
    if (limits.inFlight < 1 || limits.maxBatch < 1) throw new RangeError('inFlight and maxBatch must be at least 1');
    this.#run = run;
    this.#limits = limits;
  }

  /** Items waiting for a run. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Adds an item; it runs in the next batch that has room. */
  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Starts a run once the current turn of the event loop is over, so that items added together
   * (one webhook, one burst of jobs) go together.
   */
  #schedule(): void {
    if (this.#scheduled || this.#running >= this.#limits.inFlight) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#start();
    });
  }

  #start(): void {
    while (this.#running < this.#limits.inFlight && this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, this.#limits.maxBatch);
      this.#running++;
      let outcome: Promise<R>;
      try {
        outcome = this.#run(batch.map((b) => b.item));
      } catch (err) {
        outcome = Promise.reject(err);
      }
      outcome.then(
        (r) => {
          for (const b of batch) b.resolve(r);
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err);
        },
      ).finally(() => {
        this.#running--;
        if (this.#waiting.length > 0) this.#schedule();
      });
    }
  }
}
