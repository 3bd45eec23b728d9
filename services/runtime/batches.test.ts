import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Batches } from './batches.ts';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Run {
  items: number[];
  finish: (ok: boolean) => void;
  done: boolean;
}

/** A step of a schedule: items arrive, a run in flight ends, or the event loop turns. */
type Step = { add: number } | { finish: number; ok: boolean } | { tick: true };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ add: fc.integer({ min: 1, max: 7 }) }),
  fc.record({ finish: fc.nat({ max: 5 }), ok: fc.boolean() }),
  fc.constant({ tick: true as const }),
);

describe('Batches', () => {
  it('runs every item exactly once, in order, within the limits, and settles each with its batch', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(stepArb, { maxLength: 40 }),
        async (inFlight, maxBatch, steps) => {
          const runs: Run[] = [];
          let running = 0;
          let maxRunning = 0;
          const batches = new Batches<number, string>(
            (items) => {
              running++;
              maxRunning = Math.max(maxRunning, running);
              return new Promise<string>((resolve, reject) => {
                const run: Run = {
                  items,
                  done: false,
                  finish: (ok) => {
                    run.done = true;
                    running--;
                    if (ok) resolve(`run ${runs.indexOf(run)}`);
                    else reject(new Error(`run ${runs.indexOf(run)} failed`));
                  },
                };
                runs.push(run);
              });
            },
            { inFlight, maxBatch },
          );
          const outcomes = new Map<number, string>();
          let next = 0;
          const finishAll = async (): Promise<void> => {
            for (;;) {
              await tick();
              const open = runs.filter((r) => !r.done);
              if (open.length === 0 && batches.waiting === 0) return;
              for (const r of open) r.finish(true);
            }
          };
          for (const step of steps) {
            if ('add' in step) {
              for (let k = 0; k < step.add; k++) {
                const item = next++;
                batches.add(item).then(
                  (r) => outcomes.set(item, r),
                  (err: Error) => outcomes.set(item, err.message),
                );
              }
            } else if ('finish' in step) {
              const open = runs.filter((r) => !r.done);
              if (open.length > 0) open[step.finish % open.length]!.finish(step.ok);
            } else await tick();
            expect(running).toBeLessThanOrEqual(inFlight);
          }
          await finishAll();
          await tick();
          expect(maxRunning).toBeLessThanOrEqual(inFlight);
          expect(runs.flatMap((r) => r.items)).toEqual(Array.from({ length: next }, (_, i) => i));
          for (const [i, run] of runs.entries()) {
            expect(run.items.length).toBeGreaterThan(0);
            expect(run.items.length).toBeLessThanOrEqual(maxBatch);
            for (const item of run.items) expect(outcomes.get(item)).toMatch(new RegExp(`^run ${i}( failed)?$`));
          }
          expect(outcomes.size).toBe(next);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('gathers what arrives while a run is in flight into the next batch', async () => {
    const seen: number[][] = [];
    let release: () => void = () => {};
    const batches = new Batches<number, void>(
      (items) => {
        seen.push(items);
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
      { inFlight: 1, maxBatch: 100 },
    );
    const first = batches.add(0);
    await tick();
    const rest = Array.from({ length: 10 }, (_, i) => batches.add(i + 1));
    await tick();
    expect(seen).toEqual([[0]]);
    release();
    await first;
    // The run's end is seen a turn later; the batch starts the turn after.
    await tick();
    await tick();
    expect(seen).toEqual([[0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]);
    release();
    await Promise.all(rest);
  });

  it('rejects the items of a run that throws instead of returning a promise', async () => {
    const batches = new Batches<number, void>(() => {
      throw new Error('boom');
    }, { inFlight: 1, maxBatch: 10 });
    await expect(batches.add(1)).rejects.toThrow('boom');
    await expect(batches.add(2)).rejects.toThrow('boom');
  });
});
